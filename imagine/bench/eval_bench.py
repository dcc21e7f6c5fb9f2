"""Evaluator throughput: batch checker vs per-plan reference, and the whole ``imagine eval`` process.

Plans are the 45 annotated train plans under random perturbations (imagine.tasks.travelplanner.evaluator.perturb),
so the mix of passing, failing, ungated and crash-prone plans resembles model output. Every row of
the table is measured in this one run, each on a freshly loaded database (cold lookup memo).

    python -m imagine.bench.eval_bench --out bench/results [--plans 10000] [--process-plans 20000]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

from imagine.bench.common import write_report
from imagine.io import write_jsonl
from imagine.sandbox.database import Database
from imagine.tasks.travelplanner.evaluator.checks_batch import BatchChecker
from imagine.tasks.travelplanner.evaluator.evaluate import evaluate_reference
from imagine.tasks.travelplanner.evaluator.lookup import IndexedLookup, ScanLookup
from imagine.tasks.travelplanner.evaluator.perturb import perturbed_pairs
from imagine.tasks.travelplanner.schema import annotated_plan, query_from_record

OFFICIAL_PLANS_PER_S = "4-6 (170-260 ms per plan, measured for the issue)"


def load_base(shared: Path):
    recs = [orjson.loads(x) for x in (shared / "train.jsonl").read_bytes().splitlines() if x.strip()]
    return recs, [(query_from_record(r), annotated_plan(r)) for r in recs]


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", default=str(Path(__file__).resolve().parents[2].parent / "shared" / "travelplanner"))
    ap.add_argument("--plans", type=int, default=10_000)
    ap.add_argument("--process-plans", type=int, default=20_000)
    ap.add_argument("--out", default="bench/results")
    args = ap.parse_args(argv)
    shared = Path(args.shared)
    db_dir = shared / "database"
    if not db_dir.is_dir():
        print(f"eval bench: {db_dir} not found", file=sys.stderr)
        return 2

    recs, base = load_base(shared)
    db = Database(db_dir)
    pairs = perturbed_pairs(db, base, args.plans, seed=0)
    rows = []

    db = Database(db_dir)
    t = timed(lambda: BatchChecker(db).check(pairs))
    rows.append(("batch checker (indexed, memoized)", len(pairs), t))
    db = Database(db_dir)
    lookup = IndexedLookup(db)
    t = timed(lambda: [evaluate_reference(lookup, q, p) for q, p in pairs])
    rows.append(("per-plan reference, indexed lookups", len(pairs), t))
    db = Database(db_dir)
    lookup = ScanLookup(db)
    t = timed(lambda: [evaluate_reference(lookup, q, p) for q, p in pairs])
    rows.append(("per-plan reference, table scans (official-style)", len(pairs), t))

    # The whole process: start-up, database load, JSON parsing, checking and writing outputs.
    big = perturbed_pairs(db, base, args.process_plans, seed=1)
    with tempfile.TemporaryDirectory() as tmp:
        qpath, ppath = Path(tmp) / "q.jsonl", Path(tmp) / "p.jsonl"
        # Official query fields only: the evaluator never reads reference_information, and 20k copies of
        # the train split's (about 29 KB each) would turn this into a JSON-parsing benchmark.
        write_jsonl(qpath, ({k: v for k, v in q.to_record().items() if k not in q.extra} for q, _ in big))
        write_jsonl(ppath, ({"idx": i + 1, "plan": p} for i, (_, p) in enumerate(big)))
        cmd = [sys.executable, "-m", "imagine", "eval", "--db", str(db_dir), "--queries", str(qpath),
               "--plans", str(ppath), "--json", str(Path(tmp) / "m.json"), "--per-plan", str(Path(tmp) / "pp.jsonl")]
        t = timed(lambda: subprocess.run(cmd, check=True, capture_output=True))
    process_row = ("`imagine eval` whole process", len(big), t)

    batch_rate = rows[0][1] / rows[0][2]
    scan_rate = rows[2][1] / rows[2][2]
    process_rate = process_row[1] / process_row[2]
    lines = [
        "# Evaluator throughput",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}. "
        f"Database: shared TravelPlanner tables. Plans: the 45 annotated train plans with 0-3 random "
        f"perturbations each (seed 0/1). One run, measured side by side.",
        "",
        "| path | plans | seconds | plans/s |",
        "|---|---:|---:|---:|",
    ]
    for name, n, secs in [*rows, process_row]:
        lines.append(f"| {name} | {n:,} | {secs:.2f} | {n / secs:,.0f} |")
    lines += [
        "",
        f"- Batch checker vs per-plan reference (table scans): **{batch_rate / scan_rate:.0f}x** (target >= 10x).",
        f"- Whole `imagine eval` process: **{process_rate:,.0f} plans/s** over {process_row[1]:,} plans "
        f"(target >= 5,000 plans/s; official evaluator: {OFFICIAL_PLANS_PER_S}).",
    ]
    write_report(Path(args.out) / "eval.md", "\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
