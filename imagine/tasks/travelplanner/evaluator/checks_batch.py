"""Batch checker: many (query, plan) pairs, official semantics, thousands of plans per second.

Where the reference checker runs thirteen independent functions that each re-parse the plan and
scan tables, this one parses every day once (memoized string helpers), answers every lookup from the
database's per-city indexes (memoized across the whole batch, so the thousands of rollouts of a GRPO
step that name the same restaurants cost one search each), and derives all thirteen verdicts from
that one parsed view.

Plans on which the official code would crash, or whose shape is unusual (a non-dict day, a missing
key, a non-string field, an unparseable ``from``), are few; they are handed to the reference checker,
which reproduces the crash points exactly. ``strict`` mode also runs on the reference checker.
"""

from __future__ import annotations

import math
from typing import Any

from imagine.tasks.travelplanner import strings as S
from imagine.tasks.travelplanner.evaluator.checks_reference import (
    HOUSE_RULES,
    ROOM_TYPES,
    valid_city_sequence,
)
from imagine.tasks.travelplanner.evaluator.evaluate import PlanResult, evaluate_reference, garbage_result
from imagine.tasks.travelplanner.evaluator.lookup import IndexedLookup
from imagine.tasks.travelplanner.schema import Query

_DAY_KEYS = ("current_city", "transportation", "breakfast", "lunch", "dinner", "attraction", "accommodation")
_MEALS = ("breakfast", "lunch", "dinner")


class _Day:
    """One evaluated day, parsed once."""

    __slots__ = ("unit", "cur", "travel", "a", "b", "trans", "meals", "attr_items", "acc",
                 "acc_row", "acc_matches", "meal_rows", "mode", "cur_city")

    def __init__(self, unit: dict):
        self.unit = unit
        self.cur = unit["current_city"]
        self.trans = unit["transportation"]
        self.meals = [unit[m] for m in _MEALS]
        attraction = unit["attraction"]
        self.attr_items = attraction.split(";")[:-1] if attraction and attraction != "-" else []
        self.acc = unit["accommodation"]


def _regular(plan: list, n: int) -> bool:
    """True when the fast path reproduces the official result without any crash point."""
    for i in range(n):
        unit = plan[i]
        if type(unit) is not dict:
            return False
        for key in _DAY_KEYS:
            if type(unit.get(key)) is not str:
                return False
        cur = unit["current_city"]
        if cur == "":
            return False  # Q16 can crash the current-city check
        if "from" in cur and S.from_to(cur)[0] is None:
            return False  # TypeError in the official route checks
        trans = unit["transportation"]
        lower = trans.lower()
        if "flight number" in lower:
            if "Flight Number: " not in trans:
                return False  # Q9: IndexError
            if S.from_to(trans)[0] is None and S.from_to(cur)[0] is None:
                return False  # ValueError in the sandbox check
    return True


class BatchChecker:
    def __init__(self, db):
        self.db = db
        self.lookup = IndexedLookup(db)
        self.city_state = db.city_state

    def check(self, pairs: list[tuple[Query, Any]], strict: bool = False) -> list[PlanResult]:
        return [self.check_one(q, plan, strict) for q, plan in pairs]

    def check_one(self, q: Query, plan: Any, strict: bool = False) -> PlanResult:
        if not plan:
            return PlanResult(delivered=False)
        if type(plan) is not list:
            return garbage_result(plan)
        n = min(q.days, len(plan))
        if strict or not _regular(plan, n):
            return evaluate_reference(self.lookup, q, plan, strict=strict)
        return self._fast(q, plan, n)

    # ------------------------------------------------------------------ fast path
    def _fast(self, q: Query, plan: list, n: int) -> PlanResult:
        db = self.db
        days = [_Day(plan[i]) for i in range(n)]
        reasons: dict[str, str] = {}
        bp = S.before_parenthesis
        for d in days:
            if "from" in d.cur:
                a, b = S.from_to(d.cur)
                d.travel, d.a, d.b = True, bp(a), bp(b)
            else:
                d.travel, d.a, d.b = False, None, None
                d.cur_city = bp(d.cur)
            lower = d.trans.lower()
            d.mode = ("Taxi" if "taxi" in lower else "Self-driving" if "self-driving" in lower
                      else "Flight" if "flight" in lower else None) if _filled(d.trans) else None
            d.meal_rows = [db.find_restaurant(*S.name_city(m)) if _filled(m) else None for m in d.meals]
            if _filled(d.acc):
                d.acc_row, d.acc_matches = db.find_accommodation(*S.name_city(d.acc))
            else:
                d.acc_row, d.acc_matches = None, 0

        cs: dict[str, bool] = {}
        cs["is_reasonable_visiting_city"] = self._route(q, days, reasons)
        cs["is_valid_restaurants"] = _no_repeats([m for d in days for m in d.meals if _filled(m)],
                                                 "is_valid_restaurants", reasons)
        cs["is_valid_attractions"] = _no_repeats([x for d in days for x in d.attr_items],
                                                 "is_valid_attractions", reasons)
        cs["is_valid_accommodation"] = self._min_nights(days, reasons)
        cs["is_valid_transportation"] = _transport_modes(days, reasons)
        cs["is_valid_information_in_current_city"] = _current_city(days, reasons)
        cs["is_valid_information_in_sandbox"] = self._sandbox(days, reasons)
        cs["is_not_absent"] = _not_absent(q, plan, days, reasons)
        if not (cs["is_not_absent"] and cs["is_valid_information_in_sandbox"]):
            return PlanResult(True, cs, None, reasons)

        lc = q.local_constraint
        hard: dict[str, bool | None] = {
            "valid_cuisine": self._cuisine(q, days, reasons) if lc.get("cuisine") else None,
            "valid_room_rule": _room_rule(lc.get("house rule"), days, reasons),
            "valid_transportation": _transport_rule(lc.get("transportation"), days, reasons),
            "valid_room_type": _room_type(lc.get("room type"), days, reasons),
        }
        total = self._cost(q, days)
        hard["valid_cost"] = total <= q.budget
        if not hard["valid_cost"]:
            reasons["valid_cost"] = f"The total cost {total:g} exceeds the budget {q.budget}."
        return PlanResult(True, cs, hard, reasons)

    def _route(self, q: Query, days: list[_Day], reasons: dict) -> bool:
        cities: list[str] = []
        for i, d in enumerate(days):
            if d.travel:
                if i == 0 and d.a != q.org:
                    return _fail(reasons, "is_reasonable_visiting_city", f"The first day's city should be {q.org}.")
                cities += (d.a, d.b)
            else:
                cities.append(d.cur_city)
        if cities[0] != cities[-1]:
            return _fail(reasons, "is_reasonable_visiting_city", "The trip should be a closed circle.")
        if not valid_city_sequence(cities):
            return _fail(reasons, "is_reasonable_visiting_city", "The city sequence is invalid.")
        last = len(cities) - 1
        for idx, city in enumerate(cities):
            state = self.city_state.get(city)
            if state is None:
                return _fail(reasons, "is_reasonable_visiting_city", f"{city} is not a valid city.")
            if q.days > 3 and 0 < idx < last and state != q.dest:
                return _fail(reasons, "is_reasonable_visiting_city", f"{city} is not in {q.dest}.")
        return True

    def _min_nights(self, days: list[_Day], reasons: dict) -> bool:
        i = 0
        while i < len(days):
            j = i
            while j + 1 < len(days) and days[j + 1].acc == days[i].acc:
                j += 1
            d = days[i]
            nights = j - i + 1
            if d.acc not in ("-", "") and d.acc_matches == 1 and nights < d.acc_row.minimum_nights:
                return _fail(reasons, "is_valid_accommodation",
                             f"The accommodation {d.acc} does not obey the minimum nights rule.")
            i = j + 1
        return True

    def _sandbox(self, days: list[_Day], reasons: dict) -> bool:
        db = self.db
        bp = S.before_parenthesis
        for i, d in enumerate(days):
            if _filled(d.trans):
                lower = d.trans.lower()
                a, b = S.from_to(d.trans)
                if a is None:
                    a, b = S.from_to(d.cur)
                if "flight number" in lower:
                    if not db.has_flight(S.flight_number(d.trans), bp(a), bp(b)):
                        return _fail(reasons, "is_valid_information_in_sandbox",
                                     f"The flight number in day {i + 1} is invalid in the sandbox.")
                elif "self-driving" in lower or "taxi" in lower:
                    a, b = (bp(a), bp(b)) if a is not None else ("-", "-")
                    mode = "self-driving" if "self-driving" in lower else "taxi"
                    if db.transport_cost(a, b, mode) is None:
                        return _fail(reasons, "is_valid_information_in_sandbox",
                                     f"The {mode} in day {i + 1} is invalid in the sandbox.")
            for meal, row in zip(_MEALS, d.meal_rows):
                if row is not None and row[1] < 1:
                    return _fail(reasons, "is_valid_information_in_sandbox",
                                 f"The {meal} in day {i + 1} is invalid in the sandbox.")
            for item in d.attr_items:
                if not db.find_attraction(*S.name_city(item)):
                    return _fail(reasons, "is_valid_information_in_sandbox",
                                 f"The attraction {item} in day {i + 1} is invalid in the sandbox.")
            if _filled(d.acc) and d.acc_matches < 1:
                return _fail(reasons, "is_valid_information_in_sandbox",
                             f"The accommodation in day {i + 1} is invalid in the sandbox.")
        return True

    def _cuisine(self, q: Query, days: list[_Day], reasons: dict) -> bool:
        wanted = q.local_constraint["cuisine"]
        found: set = set()
        for d in days:
            for meal, row in zip(d.meals, d.meal_rows):
                if row is None:
                    continue
                if S.name_city(meal)[1] == q.org:
                    break  # Q3
                if row[0] is not None:
                    cuisines = row[0].cuisines
                    for c in wanted:
                        if c in cuisines:
                            found.add(c)
        if len(found) == len(wanted):
            return True
        for c in wanted:
            if c not in found:
                return _fail(reasons, "valid_cuisine", f"The cuisine {c} is not satisfied.")
        return _fail(reasons, "valid_cuisine",
                     f"crash: ValueError: malformed cuisine constraint {wanted!r} (the official evaluator crashes)")

    def _cost(self, q: Query, days: list[_Day]) -> float:
        db = self.db
        people = q.people_number
        total = 0.0
        for d in days:
            if _filled(d.trans):
                a, b = S.from_to(d.trans)
                if a is None:
                    a, b = S.from_to(d.cur)
                if a is not None:
                    lower = d.trans.lower()
                    if "flight number" in lower:
                        flight = db.flight_by_number.get(S.flight_number(d.trans))
                        if flight is not None:
                            total += flight.price * people
                    elif "self-driving" in lower:
                        total += db.transport_cost(S.before_parenthesis(a), S.before_parenthesis(b),
                                                   "self-driving") * math.ceil(people / 5)
                    elif "taxi" in lower:
                        total += db.transport_cost(S.before_parenthesis(a), S.before_parenthesis(b),
                                                   "taxi") * math.ceil(people / 4)
            for row in d.meal_rows:
                if row is not None and row[0] is not None:
                    total += row[0].cost * people
            if d.acc_row is not None:
                total += d.acc_row.price * math.ceil(people / d.acc_row.maximum_occupancy)
        return total


def _filled(value: Any) -> bool:
    return bool(value) and value != "-"


def _fail(reasons: dict, name: str, message: str) -> bool:
    reasons[name] = message
    return False


def _no_repeats(items: list[str], name: str, reasons: dict) -> bool:
    seen: set[str] = set()
    for item in items:
        if item in seen:
            return _fail(reasons, name, f"{item!r} is repeated.")
        seen.add(item)
    return True


def _transport_modes(days: list[_Day], reasons: dict) -> bool:
    if not _filled(days[0].trans):
        return _fail(reasons, "is_valid_transportation", "The transportation in day 1 should not be empty.")
    modes = {d.mode for d in days if _filled(d.trans)}
    if ("Self-driving" in modes and "Flight" in modes) or ("Taxi" in modes and "Self-driving" in modes):
        return _fail(reasons, "is_valid_transportation", "The transportation is conflicting.")
    return True


def _current_city(days: list[_Day], reasons: dict) -> bool:
    name = "is_valid_information_in_current_city"
    for i, d in enumerate(days):
        # Off travel days the official code iterates over the characters of the city (Q2).
        cities = (d.a, d.b) if d.travel else d.cur_city
        if _filled(d.trans) and any(c not in d.trans for c in cities):
            return _fail(reasons, name, f"The transportation in day {i + 1} is invalid city choice.")
        for meal in d.meals:
            if _filled(meal) and not any(c in meal for c in cities):
                return _fail(reasons, name, f"The meal in day {i + 1} is invalid city choice.")
        for item in d.attr_items:
            if not any(c in item for c in cities):
                return _fail(reasons, name, f"The attraction in day {i + 1} is invalid city choice.")
        if _filled(d.acc) and cities[-1] not in d.acc:
            return _fail(reasons, name, f"The accommodation in day {i + 1} is invalid city choice.")
    return True


def _not_absent(q: Query, plan: list, days: list[_Day], reasons: dict) -> bool:
    name = "is_not_absent"
    if sum(1 for d in days if d.cur != S.SENTINEL_CITY) != q.days:
        return _fail(reasons, name, "Invalid Days")
    visited: set[str] = set()
    for i, d in enumerate(days):
        if d.travel:
            if i == 0 and d.a != q.org:
                return _fail(reasons, name, f"The first day's city should be {q.org}.")
            visited.add(d.a)
            visited.add(d.b)
        else:
            visited.add(d.cur_city)
    visited.discard(q.org)
    if len(visited) != q.visiting_city_number:
        return _fail(reasons, name, "The number of visiting cities is wrong.")
    last_day = q.days - 1
    filled = 0
    for i, d in enumerate(days):
        cur = d.cur
        if ("from " in cur or "to " in cur) and d.trans in ("", "-"):
            return _fail(reasons, name, f"No transportation in day {i + 1} is not allowed.")
        if "from " not in cur and " to " not in cur and d.unit["attraction"] in ("", "-"):
            return _fail(reasons, name, f"No attraction in day {i + 1} is not allowed.")
        if i != last_day and d.acc in ("", "-"):
            return _fail(reasons, name, f"No accommodation in day {i + 1} is not allowed.")
        if "from " not in cur and any(m in ("", "-") for m in d.meals):
            return _fail(reasons, name, f"No meal in day {i + 1} is not allowed.")
        for value in d.unit.values():
            if value and value != "-":
                filled += 1
    if filled / (6 * q.days) < 0.5:
        return _fail(reasons, name, "The absent information is more than 50%.")
    return True


def _room_rule(rule: Any, days: list[_Day], reasons: dict) -> bool | None:
    if rule is None:
        return None
    forbidden = HOUSE_RULES.get(rule)
    if forbidden is not None:
        for d in days:
            if d.acc_row is not None and forbidden in d.acc_row.house_rules:
                return _fail(reasons, "valid_room_rule", f"The house rule should be {rule}.")
    return True


def _transport_rule(rule: Any, days: list[_Day], reasons: dict) -> bool | None:
    if rule is None:
        return None
    for d in days:
        if _filled(d.trans):
            if rule == "no flight" and "Flight" in d.trans:
                return _fail(reasons, "valid_transportation", "The transportation should not be flight.")
            if rule == "no self-driving" and "Self-driving" in d.trans:
                return _fail(reasons, "valid_transportation", "The transportation should not be self-driving.")
    return True


def _room_type(rule: Any, days: list[_Day], reasons: dict) -> bool | None:
    if rule is None:
        return None
    for d in days:
        row = d.acc_row
        if row is None:
            continue
        if rule == "not shared room":
            bad = row.room_type == "Shared room"
        else:
            bad = rule in ROOM_TYPES and row.room_type != ROOM_TYPES[rule]
        if bad:
            return _fail(reasons, "valid_room_type", f"The room type should be {rule}.")
    return True
