"""Score a plan the way the official ``eval.py`` does: delivery, the 8 commonsense constraints, the gate,
then the 5 hard constraints (eval spec §5-§7).

Where the official code raises (Q11, Q16, Q18) the affected constraint fails and ``reasons`` records
``crash: ...``; nothing here raises on any plan.

This module is the bottom of the evaluator: the batch checker (``checks_batch.py``) builds on its
result type and falls back to its reference path, so nothing here imports the batch checker. To
score plans against a database, use ``BatchChecker(db).check_one``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from imagine.tasks.travelplanner.evaluator.checks_reference import ReferenceChecker
from imagine.tasks.travelplanner.schema import Query

COMMONSENSE = (
    "is_reasonable_visiting_city", "is_valid_restaurants", "is_valid_attractions", "is_valid_accommodation",
    "is_valid_transportation", "is_valid_information_in_current_city", "is_valid_information_in_sandbox",
    "is_not_absent",
)
HARD = ("valid_cuisine", "valid_room_rule", "valid_transportation", "valid_room_type", "valid_cost")
PAPER_NAMES = {
    "is_reasonable_visiting_city": "Reasonable City Route", "is_valid_restaurants": "Diverse Restaurants",
    "is_valid_attractions": "Diverse Attractions", "is_valid_accommodation": "Minimum Nights Stay",
    "is_valid_transportation": "Non-conf. Transportation",
    "is_valid_information_in_current_city": "Within Current City",
    "is_valid_information_in_sandbox": "Within Sandbox", "is_not_absent": "Complete Information",
    "valid_cuisine": "Cuisine", "valid_room_rule": "Room Rule", "valid_transportation": "Transportation",
    "valid_room_type": "Room Type", "valid_cost": "Budget",
}
_REFERENCE_METHODS = {
    "is_reasonable_visiting_city": "reasonable_visiting_city", "is_valid_restaurants": "valid_restaurants",
    "is_valid_attractions": "valid_attractions", "is_valid_accommodation": "valid_accommodation",
    "is_valid_transportation": "valid_transportation",
    "is_valid_information_in_current_city": "information_in_current_city",
    "is_valid_information_in_sandbox": "information_in_sandbox", "is_not_absent": "not_absent",
    "valid_cuisine": "cuisine", "valid_room_rule": "room_rule", "valid_transportation": "transportation",
    "valid_room_type": "room_type", "valid_cost": "cost",
}


@dataclass
class PlanResult:
    delivered: bool
    commonsense: dict[str, bool] | None = None
    hard: dict[str, bool | None] | None = None
    reasons: dict[str, str] = field(default_factory=dict)

    @property
    def gated(self) -> bool:
        """The official script evaluates hard constraints only for complete, sandbox-valid plans."""
        return self.hard is not None

    @property
    def commonsense_pass(self) -> bool:
        return self.commonsense is not None and all(self.commonsense.values())

    @property
    def hard_pass(self) -> bool:
        return self.hard is not None and not any(v is False for v in self.hard.values())

    @property
    def final_pass(self) -> bool:
        return self.commonsense_pass and self.hard_pass

    @property
    def commonsense_ratio(self) -> float:
        if not self.commonsense:
            return 0.0
        return sum(self.commonsense.values()) / len(self.commonsense)

    @property
    def hard_ratio(self) -> float:
        """Share of applicable hard constraints passed; 0 when not gated (the official gate)."""
        if not self.hard:
            return 0.0
        applicable = [v for v in self.hard.values() if v is not None]
        return sum(applicable) / len(applicable) if applicable else 0.0

    def to_record(self, idx: int | None = None) -> dict[str, Any]:
        rec: dict[str, Any] = {} if idx is None else {"idx": idx}
        rec.update({"commonsense": self.commonsense, "hard": self.hard, "reasons": self.reasons})
        return rec


def _run(checker: ReferenceChecker, name: str, reasons: dict[str, str]) -> bool | None:
    try:
        verdict, message = getattr(checker, _REFERENCE_METHODS[name])()
    except Exception as exc:  # noqa: BLE001 - the Q11 policy: a crash fails this constraint
        reasons[name] = f"crash: {type(exc).__name__}: {exc}"
        return False
    if message and verdict is not True:
        reasons[name] = message
    return verdict


def garbage_result(plan: Any) -> PlanResult:
    """A truthy plan that is not a list is 'delivered' officially, then crashes every check."""
    reason = f"crash: plan is a {type(plan).__name__}, not a list of day dicts"
    return PlanResult(True, dict.fromkeys(COMMONSENSE, False), None, dict.fromkeys(COMMONSENSE, reason))


def evaluate_reference(lookup, query: Query, plan: Any, strict: bool = False) -> PlanResult:
    """Per-plan reference path: each constraint run independently with the given lookup."""
    if not plan:
        return PlanResult(delivered=False)
    if not isinstance(plan, list):
        return garbage_result(plan)
    reasons: dict[str, str] = {}
    checker = ReferenceChecker(lookup, query, plan, strict=strict)
    commonsense = {name: bool(_run(checker, name, reasons)) for name in COMMONSENSE}
    if not (commonsense["is_not_absent"] and commonsense["is_valid_information_in_sandbox"]):
        return PlanResult(True, commonsense, None, reasons)
    hard = {name: _run(checker, name, reasons) for name in HARD}
    return PlanResult(True, commonsense, hard, reasons)
