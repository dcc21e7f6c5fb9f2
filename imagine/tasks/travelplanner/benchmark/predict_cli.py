"""``imagine predict``: a trained model on the official validation or test split -> a leaderboard file.

Validation rows carry the structured query fields, so with ``--db`` the same run also prints the
official metrics; test rows do not, and the leaderboard scores the file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from imagine.tasks.travelplanner.reference import REFERENCE_STYLES


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict", help="plan every query of an official split with a model; write the submission file",
        description="Plan every row of the official TravelPlanner validation or test split with a Hugging "
                    "Face model and write the official submission JSONL (dataset order, one line per row). "
                    "Prompts are built from the query text and the row's reference information only. "
                    "An interrupted run resumes when rerun with the same --out.",
    )
    p.add_argument("--split", required=True, help="official split rows: .jsonl, .csv or .parquet")
    p.add_argument("--model", required=True, help="Hugging Face model directory (an exported checkpoint)")
    p.add_argument("--out", required=True, help="submission JSONL ({idx, query, plan} per line)")
    p.add_argument("--engine", default=None, choices=["vllm", "torch"], help="default: vllm when installed")
    p.add_argument("--max-tokens", dest="max_tokens", type=int, default=4096)
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, default=None, help="only the first N rows")
    p.add_argument("--reference-style", dest="reference_style", default="compact", choices=REFERENCE_STYLES,
                   help="must match the teacher config the student was trained on")
    p.add_argument("--prompt-version", dest="prompt_version", default="v1")
    p.add_argument("--max-model-len", dest="max_model_len", type=int, default=None,
                   help="context length (default: the model's max_position_embeddings); longer prompts are "
                        "not generated and get an empty plan")
    p.add_argument("--chunk", type=int, default=64, help="rows generated between two appends to --out")
    p.add_argument("--db", default=None, help="official database directory: score a validation split locally")
    p.add_argument("--json", dest="json_out", default=None, help="write the metrics and the run summary here")
    p.set_defaults(func=run)


def build_engine(kind: str | None, model_dir: str, max_model_len: int):
    from imagine.rollout import has_vllm, make_engine

    kind = kind or ("vllm" if has_vllm() else "torch")
    if not (Path(model_dir) / "config.json").is_file():
        from imagine.io import DataError

        raise DataError(f"{model_dir}: not a Hugging Face model directory (no config.json)")
    return make_engine(kind, model_dir, **({"max_model_len": max_model_len} if kind == "vllm" else {}))


def level_days_table(cells: dict[str, dict[str, dict[str, float]]]) -> str:
    """The six metrics per (level, days) cell, one row per cell."""
    short = ("Delivery", "CS micro", "CS macro", "Hard micro", "Hard macro", "Final")
    lines = [f"{'level':<7}{'days':>5}  " + "  ".join(f"{s:>10}" for s in short)]
    for level in ("easy", "medium", "hard"):
        for days, values in sorted(cells.get(level, {}).items(), key=lambda kv: int(kv[0])):
            lines.append(f"{level:<7}{days:>5}  " + "  ".join(f"{100 * v:9.1f}%" for v in values.values()))
    return "\n".join(lines)


def missing_flights(rows, db) -> int:
    """Warn when the database lacks flights the split offers: plans taking them would fail Within Sandbox
    through no fault of the model (a flights subset instead of the official table)."""
    offered = {f["Flight Number"] for r in rows for value in r.reference.ref.values() if isinstance(value, list)
               for f in value if "Flight Number" in f}
    missing = offered - {f.number for f in db.flights}
    if missing:
        print(f"warning: {len(missing)} of the {len(offered)} flights in the split's reference information are not "
              "in the database's flights table; plans taking them fail 'Within Sandbox'. Score with the official "
              "flights table (flights/clean_Flights_2022.csv).", file=sys.stderr)
    return len(missing)


def score(rows, plans, db_dir: str) -> tuple[str, dict]:
    """Official metrics of a validation run, as text and as the ``--json`` record."""
    from imagine.sandbox.database import Database
    from imagine.tasks.travelplanner.benchmark.splits import validation_queries
    from imagine.tasks.travelplanner.evaluator.checks_batch import BatchChecker
    from imagine.tasks.travelplanner.evaluator.metrics import counts, format_table, metrics, per_cell_metrics

    queries = validation_queries(rows)
    db = Database(db_dir)
    missing_flights(rows, db)
    checker = BatchChecker(db)
    results = [checker.check_one(q, p) for q, p in zip(queries, plans)]
    values, cnt, cells = metrics(results, queries), counts(results, queries), per_cell_metrics(results, queries)
    text = format_table(values, cnt) + "\n\n" + level_days_table(cells)
    return text, {**values, "counts": {k: {"passed": n, "total": d} for k, (n, d) in cnt.items()},
                  "by_level_days": cells}


def run(args: argparse.Namespace) -> int:
    from imagine.io import atomic_write_json
    from imagine.rollout import max_positions
    from imagine.tasks.travelplanner.benchmark.predict import (
        PredictSettings,
        format_suspicious,
        read_submission,
        suspicious,
    )
    from imagine.tasks.travelplanner.benchmark.predict import run as predict_rows
    from imagine.tasks.travelplanner.benchmark.splits import load_split, validation_queries

    rows = load_split(args.split, args.limit)
    validation = validation_queries(rows) is not None
    print(f"predict: {len(rows)} rows from {args.split} ({'validation: structured fields present' if validation else 'test: query and reference only'})",
          file=sys.stderr)
    context = args.max_model_len or max_positions(args.model)
    settings = PredictSettings(style=args.reference_style, prompt_version=args.prompt_version,
                               max_tokens=args.max_tokens, temperature=args.temperature, seed=args.seed,
                               chunk=args.chunk, max_model_len=context)
    from imagine.tasks.travelplanner.benchmark.predict import done_lines

    engine = None
    if done_lines(Path(args.out), rows) < len(rows):
        engine = build_engine(args.engine, args.model, context)
    stats = predict_rows(rows, engine, args.out, settings) if engine is not None else None
    plans = read_submission(args.out, rows)
    report = suspicious(rows, plans, args.out)
    print(f"wrote {args.out}: {len(plans)} lines, one per row, in split order", file=sys.stderr)
    if stats is not None and stats.generated:
        print(f"generated {stats.generated} rows, {stats.completion_tokens:,} tokens in {stats.seconds:.1f}s "
              f"({stats.tokens_per_s:,.1f} tokens/s)", file=sys.stderr)
        for rule, n in sorted(stats.fixes.counts.items()):
            print(f"  format rule applied {n:5d}x: {rule}", file=sys.stderr)
    print(format_suspicious(report, len(rows)), file=sys.stderr)
    record = {"split": args.split, "model": args.model, "rows": len(rows), "suspicious": report}
    if stats is not None:
        record.update(tokens=stats.completion_tokens, seconds=stats.seconds, tokens_per_s=stats.tokens_per_s,
                      format_rules=stats.fixes.counts)
    if validation and args.db:
        text, values = score(rows, plans, args.db)
        print(text)
        record["metrics"] = values
    elif validation:
        print("validation split: pass --db DIR (the official database) to print the official metrics",
              file=sys.stderr)
    if args.json_out:
        atomic_write_json(args.json_out, record)
    return 0
