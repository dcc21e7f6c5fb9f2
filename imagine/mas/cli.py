"""``imagine mas run`` and ``imagine mas report``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    mas = sub.add_parser("mas", help="the multi-agent teacher: run it over queries, report on its traces")
    msub = mas.add_subparsers(dest="mas_command", metavar="ACTION")
    msub.required = True

    run = msub.add_parser(
        "run", help="run Reasoner -> 2 Judges -> Reflector over a query file (resumable)",
        description="Append one trace per query to OUT/traces.jsonl (a rerun skips recorded queries), then "
                    "write the SFT dataset OUT/sft.jsonl from all traces.",
    )
    run.add_argument("--config", default=None, help="YAML config (configs/mas/*.yaml); default: scripted teacher")
    run.add_argument("--queries", required=True, help="queries JSONL (e.g. from `imagine queries gen`)")
    run.add_argument("--out", required=True, help="output directory")
    run.add_argument("--db", default=None, help="database directory (overrides the config's db)")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="config override, e.g. --set scripted.mistake_rate=0.3 (repeatable)")
    run.add_argument("--limit", type=int, default=None, help="only the first N queries of the file")
    run.add_argument("--retry-failed", dest="retry_failed", action="store_true",
                     help="rerun queries recorded as failed (their new record supersedes the old)")
    run.add_argument("--no-progress", dest="progress", action="store_false", help="no per-query lines on stderr")
    run.set_defaults(func=_run)

    rep = msub.add_parser("report", help="MAS vs first-answer metrics, judges, tokens, cost, throughput")
    rep.add_argument("dir", help="output directory of `imagine mas run`")
    rep.set_defaults(func=_report)


def _run(args: argparse.Namespace) -> int:
    from imagine.config import load_config
    from imagine.errors import UserError
    from imagine.mas.config import MasConfig
    from imagine.mas.dataset import SFT_FILE, build_dataset
    from imagine.mas.runner import load_queries, read_traces, run_sync, stderr_progress
    from imagine.sandbox.database import Database

    cfg = load_config(MasConfig, args.config, args.overrides)
    db_dir = args.db or cfg.db
    if not db_dir:
        raise UserError("no database: give --db or set db in the config")
    cfg.db = str(db_dir)
    if not Path(db_dir).is_dir():
        raise UserError(f"database directory {db_dir} does not exist")
    queries = load_queries(args.queries)
    if args.limit is not None:
        queries = queries[: args.limit]
    db = Database(db_dir)
    summary = run_sync(cfg, db, queries, args.out, retry_failed=args.retry_failed,
                       progress=stderr_progress if args.progress else None)
    traces = read_traces(args.out)
    n = build_dataset(traces, [qid for qid, _ in queries], Path(args.out) / SFT_FILE)
    state = "interrupted" if summary.interrupted else "done"
    print(f"imagine mas run: {state}: {summary.finished} finished, {summary.failed} failed, {summary.skipped} "
          f"already recorded, {summary.seconds:.1f} s; {n} samples in {Path(args.out) / SFT_FILE}")
    if summary.interrupted:
        print("imagine mas run: rerun the same command to resume", file=sys.stderr)
        return 130
    return 0


def _report(args: argparse.Namespace) -> int:
    from imagine.errors import UserError
    from imagine.io import atomic_write_bytes
    from imagine.mas.report import render, summarize
    from imagine.mas.runner import TRACES

    if not (Path(args.dir) / TRACES).exists():
        raise UserError(f"{Path(args.dir) / TRACES} does not exist (run `imagine mas run` first)")
    text = render(summarize(args.dir))
    atomic_write_bytes(Path(args.dir) / "report.md", text.encode())
    print(text, end="")
    return 0
