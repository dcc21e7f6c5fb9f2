"""Run the teacher over many queries: async, crash-safe, resumable.

Each query's whole trace is one line of ``traces.jsonl``, appended (flushed and fsynced) only when the
query has finished or definitively failed. A killed run therefore loses at most the queries in
flight, and a rerun skips every id already recorded, so no query is ever written twice. Failed
queries are retried on a rerun only with ``retry_failed`` (their new record then supersedes the old).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imagine.config import to_dict
from imagine.io import DataError, JsonlAppender, atomic_write_json, iter_jsonl
from imagine.mas.config import MasConfig
from imagine.mas.pipeline import QueryFailed, Teacher
from imagine.tasks.travelplanner.schema import QUERY_FIELDS, Query, query_from_record

TRACES = "traces.jsonl"
RUNS = "runs.jsonl"  # one line per invocation: counts and wall time, for the throughput line


def load_queries(path: str | Path) -> list[tuple[str, Query]]:
    """(id, Query) in file order; ids come from the record's ``id`` or its line number."""
    out: list[tuple[str, Query]] = []
    seen: set[str] = set()
    for line_no, rec in iter_jsonl(path):
        qid = str(rec.get("id") or rec.get("idx") or f"line-{line_no}") if isinstance(rec, dict) else ""
        query = query_from_record(rec, where=f"{path}:{line_no}")
        if qid in seen:
            raise DataError(f"{path}:{line_no}: duplicate query id {qid!r}")
        seen.add(qid)
        out.append((qid, query))
    return out


def read_traces(out_dir: str | Path) -> dict[str, dict]:
    """Latest record per query id (a killed writer's torn last line is ignored)."""
    path = Path(out_dir) / TRACES
    latest: dict[str, dict] = {}
    if path.exists():
        for _, rec in iter_jsonl(path, skip_partial_tail=True):
            latest[rec["id"]] = rec
    return latest


@dataclass
class RunSummary:
    total: int
    skipped: int
    finished: int
    failed: int
    seconds: float
    interrupted: bool = False


async def run_queries(cfg: MasConfig, db, queries: list[tuple[str, Query]], out_dir: str | Path, *,
                      retry_failed: bool = False, progress: Callable[[str], None] | None = None,
                      teacher: Teacher | None = None) -> RunSummary:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / "config.json", to_dict(cfg))
    done = read_traces(out_dir)
    todo = [(qid, q) for qid, q in queries
            if qid not in done or (retry_failed and done[qid].get("status") == "failed")]
    summary = RunSummary(total=len(queries), skipped=len(queries) - len(todo), finished=0, failed=0, seconds=0.0)
    teacher = teacher or Teacher(cfg, db)
    start = time.monotonic()
    appender = JsonlAppender(out_dir / TRACES)
    pending: asyncio.Queue = asyncio.Queue()
    for item in todo:
        pending.put_nowait(item)

    async def worker() -> None:
        while True:
            try:
                qid, query = pending.get_nowait()
            except asyncio.QueueEmpty:
                return
            calls: list[dict] = []
            t0 = time.monotonic()
            base = {"id": qid, "level": query.level, "days": query.days,
                    "prompt_version": cfg.prompt_version, "seed": cfg.seed,
                    "feasible": query.extra.get("feasible"),
                    "query": {k: v for k, v in query.to_record().items() if k in QUERY_FIELDS}}
            try:
                body = await teacher.run(qid, query, calls)
                record = {**base, "status": "finished", **body}
                summary.finished += 1
            except QueryFailed as exc:
                record = {**base, "status": "failed", "reason": str(exc)}
                summary.failed += 1
            except Exception as exc:  # noqa: BLE001 - a bug on one query must not sink the other queries
                record = {**base, "status": "failed", "reason": f"internal error: {type(exc).__name__}: {exc}"}
                summary.failed += 1
            record["calls"] = calls
            record["wall_s"] = round(time.monotonic() - t0, 4)
            appender.append(record)  # synchronous: a record is on disk before the next await
            if progress is not None:
                progress(f"{summary.finished + summary.failed}/{len(todo)} {qid} {record['status']}")

    workers = [asyncio.create_task(worker()) for _ in range(min(cfg.queries_in_flight, max(1, len(todo))))]
    try:
        await asyncio.gather(*workers)
    except asyncio.CancelledError:
        summary.interrupted = True
        for w in workers:
            w.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
    finally:
        appender.close()
        await teacher.aclose()
        summary.seconds = time.monotonic() - start
        with JsonlAppender(out_dir / RUNS) as log:
            log.append({"finished": summary.finished, "failed": summary.failed, "skipped": summary.skipped,
                        "seconds": round(summary.seconds, 3), "interrupted": summary.interrupted,
                        "queries_in_flight": cfg.queries_in_flight})
    return summary


def run_sync(cfg: MasConfig, db, queries: list[tuple[str, Query]], out_dir: str | Path, **kw: Any) -> RunSummary:
    """Run to completion; Ctrl-C (or SIGTERM) cancels the in-flight queries and returns what finished."""

    async def main() -> RunSummary:
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread / platform
                loop.add_signal_handler(sig, task.cancel)
        try:
            return await run_queries(cfg, db, queries, out_dir, **kw)
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(sig)

    return asyncio.run(main())


def stderr_progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
