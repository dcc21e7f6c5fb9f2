"""The six official metrics and the per (level, days) breakdowns (eval spec §7).

Denominators are computed from the query file exactly as the official script hard-codes them for its
splits: N queries, 8N commonsense items, and the sum over queries of 1 (budget) + the number of set
local constraints. Undelivered and ungated plans stay in every denominator.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from imagine.tasks.travelplanner.evaluator.evaluate import COMMONSENSE, HARD, PAPER_NAMES, PlanResult
from imagine.tasks.travelplanner.schema import Query

METRIC_NAMES = (
    "Delivery Rate",
    "Commonsense Constraint Micro Pass Rate",
    "Commonsense Constraint Macro Pass Rate",
    "Hard Constraint Micro Pass Rate",
    "Hard Constraint Macro Pass Rate",
    "Final Pass Rate",
)


def counts(results: Sequence[PlanResult], queries: Sequence[Query]) -> dict[str, tuple[int, int]]:
    """(numerator, denominator) of every metric."""
    if len(results) != len(queries):
        raise ValueError(f"{len(results)} results for {len(queries)} queries")
    n = len(queries)
    hard_items = sum(1 + q.n_local_constraints for q in queries)
    delivered = cs_micro = cs_macro = hard_micro = hard_macro = final = 0
    for r in results:
        if not r.delivered:
            continue
        delivered += 1
        cs_micro += sum(1 for v in r.commonsense.values() if v is True)
        if r.hard is None:
            continue
        if all(r.commonsense.values()):
            cs_macro += 1
        hard_micro += sum(1 for v in r.hard.values() if v is True)
        if r.hard_pass:
            hard_macro += 1
            if r.commonsense_pass:
                final += 1
    return {
        "Delivery Rate": (delivered, n),
        "Commonsense Constraint Micro Pass Rate": (cs_micro, 8 * n),
        "Commonsense Constraint Macro Pass Rate": (cs_macro, n),
        "Hard Constraint Micro Pass Rate": (hard_micro, hard_items),
        "Hard Constraint Macro Pass Rate": (hard_macro, n),
        "Final Pass Rate": (final, n),
    }


def metrics(results: Sequence[PlanResult], queries: Sequence[Query]) -> dict[str, float]:
    return {name: (num / den if den else 0.0) for name, (num, den) in counts(results, queries).items()}


def breakdown(results: Sequence[PlanResult], queries: Sequence[Query]) -> dict[str, Any]:
    """Per level and days: true/false/total per constraint (paper names), as the official script reports.

    Hard constraints count only the queries that set them (budget counts every gated query)."""
    table: dict[str, dict[str, dict[str, dict[str, int]]]] = {}
    for r, q in zip(results, queries):
        cell = table.setdefault(q.level, {}).setdefault(str(q.days), {})
        verdicts: list[tuple[str, bool | None]] = []
        if r.commonsense is not None:
            verdicts += [(k, r.commonsense[k]) for k in COMMONSENSE]
        if r.hard is not None:
            verdicts += [(k, r.hard[k]) for k in HARD]
        for key, value in verdicts:
            if value is None:
                continue
            box = cell.setdefault(PAPER_NAMES[key], {"true": 0, "false": 0, "total": 0})
            box["true" if value else "false"] += 1
            box["total"] += 1
    return table


def per_cell_metrics(results: Sequence[PlanResult], queries: Sequence[Query]) -> dict[str, dict[str, dict]]:
    """The six metrics restricted to each (level, days) cell."""
    cells: dict[tuple[str, int], list[int]] = {}
    for i, q in enumerate(queries):
        cells.setdefault((q.level, q.days), []).append(i)
    out: dict[str, dict[str, dict]] = {}
    for (level, days), idx in sorted(cells.items()):
        out.setdefault(level, {})[str(days)] = metrics([results[i] for i in idx], [queries[i] for i in idx])
    return out


def format_table(values: dict[str, float], counts_: dict[str, tuple[int, int]] | None = None) -> str:
    width = max(len(k) for k in values)
    lines = []
    for name, value in values.items():
        extra = ""
        if counts_ is not None:
            num, den = counts_[name]
            extra = f"  ({num}/{den})"
        lines.append(f"{name:<{width}}  {100 * value:6.2f}%{extra}")
    return "\n".join(lines)
