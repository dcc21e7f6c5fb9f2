"""TravelPlanner query records.

The official data stores numbers as strings and ``local_constraint`` as a Python repr (eval spec §1);
generated queries store them natively. :func:`query_from_record` accepts both, so every tool reads
either file unchanged, and rejects anything else with an error naming the field.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Any

from imagine.io import DataError

PLAN_KEYS = ("days", "current_city", "transportation", "breakfast", "attraction", "lunch", "dinner",
             "accommodation")
CONSTRAINT_KEYS = ("house rule", "cuisine", "room type", "transportation")
QUERY_FIELDS = ("org", "dest", "days", "visiting_city_number", "date", "people_number", "local_constraint",
                "budget", "query", "level")
LEVELS = ("easy", "medium", "hard")
DAYS = (3, 5, 7)


@dataclass
class Query:
    org: str
    dest: str
    days: int
    visiting_city_number: int
    date: list[str]
    people_number: int
    local_constraint: dict[str, Any]
    budget: int
    query: str = ""
    level: str = "easy"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n_local_constraints(self) -> int:
        """Number of set local constraints; the official hard-micro denominator adds 1 (budget) to it."""
        return sum(1 for k in CONSTRAINT_KEYS if self.local_constraint.get(k) is not None)

    def to_record(self) -> dict[str, Any]:
        rec = {
            "org": self.org, "dest": self.dest, "days": self.days,
            "visiting_city_number": self.visiting_city_number, "date": list(self.date),
            "people_number": self.people_number, "local_constraint": dict(self.local_constraint),
            "budget": self.budget, "query": self.query, "level": self.level,
        }
        rec.update(self.extra)
        return rec


def _literal(value: Any, name: str, where: str) -> Any:
    if isinstance(value, str):
        try:
            return ast.literal_eval(value)
        except (ValueError, SyntaxError):
            raise DataError(f"{where}field {name!r}: cannot parse {value[:80]!r}") from None
    return value


def _int(value: Any, name: str, where: str) -> int:
    if isinstance(value, bool):
        raise DataError(f"{where}field {name!r}: expected an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            f = float(value.strip())
        except ValueError:
            pass
        else:
            if f.is_integer():
                return int(f)
    raise DataError(f"{where}field {name!r}: expected an integer, got {value!r}")


def query_from_record(rec: Any, where: str = "") -> Query:
    """Build a :class:`Query` from an official or generated record; ``where`` prefixes errors ("file:line: ")."""
    if not isinstance(rec, dict):
        raise DataError(f"{where}expected a JSON object with query fields, got {type(rec).__name__}")
    missing = [k for k in ("org", "dest", "days", "people_number", "local_constraint", "budget") if k not in rec]
    if missing:
        raise DataError(f"{where}missing field(s) {missing}")
    for key in ("org", "dest"):
        if not isinstance(rec[key], str):
            raise DataError(f"{where}field {key!r}: expected a string, got {rec[key]!r}")
    days = _int(rec["days"], "days", where)
    if days < 1:
        raise DataError(f"{where}field 'days': must be positive, got {days}")
    vcn = rec.get("visiting_city_number")
    vcn = _int(vcn, "visiting_city_number", where) if vcn is not None else {3: 1, 5: 2, 7: 3}.get(days, 1)
    lc = _literal(rec["local_constraint"], "local_constraint", where)
    if lc is None:
        lc = {}
    if not isinstance(lc, dict):
        raise DataError(f"{where}field 'local_constraint': expected a dict, got {lc!r}")
    lc = {k: lc.get(k) for k in CONSTRAINT_KEYS} | {k: v for k, v in lc.items() if k not in CONSTRAINT_KEYS}
    date = _literal(rec.get("date", []), "date", where) or []
    if not isinstance(date, list) or not all(isinstance(d, str) for d in date):
        raise DataError(f"{where}field 'date': expected a list of 'YYYY-MM-DD' strings, got {date!r}")
    query = rec.get("query", "")
    level = rec.get("level", "easy")
    if not isinstance(query, str):
        raise DataError(f"{where}field 'query': expected a string")
    if not isinstance(level, str):
        raise DataError(f"{where}field 'level': expected a string")
    extra = {k: v for k, v in rec.items() if k not in QUERY_FIELDS}
    return Query(
        org=rec["org"], dest=rec["dest"], days=days, visiting_city_number=vcn, date=list(date),
        people_number=_int(rec["people_number"], "people_number", where), local_constraint=lc,
        budget=_int(rec["budget"], "budget", where), query=query, level=level, extra=extra,
    )


def load_queries(path: str) -> list[Query]:
    from imagine.io import iter_jsonl

    return [query_from_record(rec, f"{path}:{line}: ") for line, rec in iter_jsonl(path)]


def annotated_plan(rec: dict) -> list[dict]:
    """The day dicts of a train record's ``annotated_plan`` (its first element is the query dict)."""
    plan = _literal(rec.get("annotated_plan", "[]"), "annotated_plan", "")
    if len(plan) == 2 and isinstance(plan[1], list):  # [query, [day, ...]]
        return plan[1]
    return list(plan[1:])
