"""``imagine eval``: score a submission file against a query file with the official semantics.

Contract (other tooling depends on it): the i-th plan line is paired with the i-th query (``idx`` is
not used for pairing, as in the official script); a line holds ``plan`` (day dicts) or ``text`` (a
model output parsed first). ``--json`` writes the six metrics under their official names as
fractions, plus counts and breakdowns; ``--per-plan`` writes one verdict line per query.
"""

from __future__ import annotations

import argparse
import sys
import time

from imagine.io import DataError, atomic_write_json, dumps, iter_jsonl
from imagine.tasks.travelplanner.schema import query_from_record


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval", help="score plans with the official TravelPlanner evaluator semantics",
        description="Score plans against queries with the official TravelPlanner semantics (eval spec §5-§7).",
    )
    p.add_argument("--db", required=True, help="database directory in the official layout")
    p.add_argument("--queries", required=True, help="JSONL of query records (official fields)")
    p.add_argument("--plans", required=True, help='JSONL, one line per query: {"idx": i, "plan": [...]} or {"idx": i, "text": "..."}')
    p.add_argument("--per-plan", dest="per_plan", help="write per-query verdicts to this JSONL file")
    p.add_argument("--json", dest="json_out", help="write metrics, counts and breakdowns to this JSON file")
    p.add_argument("--strict", action="store_true", help="close the official loopholes (not for reported metrics)")
    p.set_defaults(func=run)


def load_plans(path: str) -> tuple[list, list]:
    """Plans in file order, and each line's ``idx`` (its 1-based position when absent)."""
    from imagine.tasks.travelplanner.parse import parse_output

    plans, ids = [], []
    for line, rec in iter_jsonl(path):
        if not isinstance(rec, dict):
            raise DataError(f"{path}:{line}: expected a JSON object with 'plan' or 'text'")
        ids.append(rec.get("idx", len(ids) + 1))
        if "plan" in rec:
            plans.append(rec["plan"])
        elif "text" in rec:
            text = rec["text"]
            if not isinstance(text, str):
                raise DataError(f"{path}:{line}: field 'text' must be a string")
            parsed = parse_output(text, require_think=False)
            plans.append(parsed.plan)
        else:
            raise DataError(f"{path}:{line}: expected a 'plan' or a 'text' field")
    return plans, ids


def run(args: argparse.Namespace) -> int:
    from imagine.sandbox.database import Database
    from imagine.tasks.travelplanner.evaluator.checks_batch import BatchChecker
    from imagine.tasks.travelplanner.evaluator.metrics import (
        breakdown,
        counts,
        format_table,
        metrics,
        per_cell_metrics,
    )

    t0 = time.perf_counter()
    queries = [query_from_record(rec, f"{args.queries}:{line}: ") for line, rec in iter_jsonl(args.queries)]
    plans, ids = load_plans(args.plans)
    if len(plans) != len(queries):
        raise DataError(f"{args.plans}: {len(plans)} plan lines for {len(queries)} queries in {args.queries}")
    db = Database(args.db)
    checker = BatchChecker(db)
    results = [checker.check_one(q, p, strict=args.strict) for q, p in zip(queries, plans)]
    values = metrics(results, queries)
    cnt = counts(results, queries)
    elapsed = time.perf_counter() - t0

    print(format_table(values, cnt))
    mode = "strict" if args.strict else "official"
    print(f"[{mode} mode] {len(queries)} plans in {elapsed:.2f}s ({len(queries) / max(elapsed, 1e-9):,.0f} plans/s)",
          file=sys.stderr)
    if args.per_plan:
        from imagine.io import atomic_write_bytes

        atomic_write_bytes(args.per_plan, b"".join(dumps(r.to_record(i)) + b"\n" for i, r in zip(ids, results)))
    if args.json_out:
        atomic_write_json(args.json_out, {
            **values,
            "counts": {k: {"passed": n, "total": d} for k, (n, d) in cnt.items()},
            "mode": mode,
            "by_level_days": per_cell_metrics(results, queries),
            "constraint_breakdown": breakdown(results, queries),
        })
    return 0
