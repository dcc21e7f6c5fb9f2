"""Per-plan reference implementation of the 8 commonsense and 5 hard constraints.

Written to follow eval spec §5-§6 statement by statement, so that it raises where the official code
raises (a missing key, ``from`` without ``to``, the Q9 flight-number split, ...). The caller turns
such an exception into a failed constraint with its reason (the Q11 policy). The batch checker is a
second, faster implementation of the same semantics; the two are cross-checked in the tests.

``strict=True`` closes the loopholes that let an invalid plan pass (see ``docs/evaluator.md``):
Q1 (last attraction ignored), Q2 (non-travel-day city check), Q3 (cuisine skip), Q4 (case of the
transportation constraint), Q5 (space before a parenthetical), Q6 (flight dates), Q7 (3-day
destination), Q8 (substring names), Q9 (unrecognised flight text), Q10 (None as present), Q12
(min nights on several matches), Q18 (malformed cuisine lists).
"""

from __future__ import annotations

import math
from typing import Any

from imagine.tasks.travelplanner import strings as S
from imagine.tasks.travelplanner.schema import Query

MEALS = ("breakfast", "lunch", "dinner")
HOUSE_RULES = {
    "smoking": "No smoking", "parties": "No parties", "children under 10": "No children under 10",
    "visitors": "No visitors", "pets": "No pets",
}
ROOM_TYPES = {"shared room": "Shared room", "private room": "Private room", "entire room": "Entire home/apt"}

Verdict = tuple[bool | None, str | None]


def _filled(value: Any) -> bool:
    return bool(value) and value != "-"


class ReferenceChecker:
    """One query + plan. ``lookup`` is a ScanLookup (official-style scans) or IndexedLookup."""

    def __init__(self, lookup, query: Query, plan: list, strict: bool = False):
        self.lk = lookup
        self.q = query
        self.plan = plan
        self.strict = strict
        self.n = min(query.days, len(plan))

    # ------------------------------------------------------------ helpers
    def _city(self, text: str) -> str:
        return S.strict_city(text) if self.strict else S.before_parenthesis(text)

    def _pair(self, text: str) -> tuple[str, str]:
        a, b = S.from_to(text)
        return self._city(a), self._city(b)  # TypeError on None: official crash

    def _attraction_items(self, field: str) -> list[str]:
        return S.strict_attraction_items(field) if self.strict else field.split(";")[:-1]

    def _restaurant(self, text: str):
        name, city = S.name_city(text)
        row, n = self.lk.find_restaurant(name, city)
        if self.strict and row is not None and row.name.strip() != name:
            row, n = self._exact(self.lk.db.restaurants_by_city.get(city, ()), name)
        return row, n

    def _accommodation(self, text: str):
        name, city = S.name_city(text)
        row, n = self.lk.find_accommodation(name, city)
        if self.strict and row is not None and row.name.strip() != name:
            row, n = self._exact(self.lk.db.accommodations_by_city.get(city, ()), name)
        return row, n

    def _attraction_exists(self, text: str) -> bool:
        name, city = S.name_city(text)
        if self.strict:
            return any(a.name.strip() == name for a in self.lk.db.attractions_by_city.get(city, ()))
        return self.lk.find_attraction(name, city)

    @staticmethod
    def _exact(rows, name: str):
        hits = [r for r in rows if r.name.strip() == name]
        return (hits[0] if hits else None), len(hits)

    # ------------------------------------------------------------ commonsense
    def reasonable_visiting_city(self) -> Verdict:
        cities: list[str] = []
        for i in range(self.n):
            value = self.plan[i]["current_city"]
            if "from" in value:
                a, b = self._pair(value)
                if i == 0 and a != self.q.org:
                    return False, f"The first day's city should be {self.q.org}."
                cities += [a, b]
            else:
                cities.append(self._city(value))
        if cities[0] != cities[-1]:
            return False, "The trip should be a closed circle."
        if not valid_city_sequence(cities):
            return False, "The city sequence is invalid."
        for idx, city in enumerate(cities):
            if city not in self.lk.city_state:
                return False, f"{city} is not a valid city."
            inner = idx not in (0, len(cities) - 1)
            if inner and self.q.days > 3 and self.lk.city_state[city] != self.q.dest:
                return False, f"{city} is not in {self.q.dest}."
            if inner and self.strict and self.q.days == 3 and city != self.q.dest:
                return False, f"{city} is not the destination {self.q.dest}."
        return True, None

    def valid_restaurants(self) -> Verdict:
        seen: list = []
        for i in range(self.n):
            unit = self.plan[i]
            for meal in MEALS:
                if meal in unit and _filled(unit[meal]):
                    if unit[meal] in seen:
                        return False, f"The restaurant in day {i + 1} {meal} is repeated."
                    seen.append(unit[meal])
        return True, None

    def valid_attractions(self) -> Verdict:
        seen: list = []
        for i in range(self.n):
            unit = self.plan[i]
            if "attraction" in unit and _filled(unit["attraction"]):
                for item in self._attraction_items(unit["attraction"]):
                    if item in seen:
                        return False, f"The attraction '{item}' in day {i + 1} is repeated."
                    seen.append(item)
        return True, None

    def valid_accommodation(self) -> Verdict:
        values = []
        for i in range(self.n):
            unit = self.plan[i]
            if "accommodation" not in unit:
                return False, "No Accommodation Info."
            values.append(unit["accommodation"])
        for value, nights in consecutive_runs(values):
            if value in ("-", ""):
                continue
            if self.strict and value is None:
                continue  # reported by the completeness check in strict mode
            row, matches = self._accommodation(value)
            checked = matches == 1 or (self.strict and matches >= 1)
            if checked and nights < row.minimum_nights:
                return False, (f"The accommodation {value} does not obey the minimum nights rule "
                               f"({nights} < {row.minimum_nights:g}).")
        return True, None

    def valid_transportation(self) -> Verdict:
        first = self.plan[0]["transportation"]
        if not _filled(first):
            return False, "The transportation in day 1 should not be empty."
        modes = []
        for i in range(self.n):
            unit = self.plan[i]
            if "transportation" in unit and _filled(unit["transportation"]):
                modes.append(transport_mode(unit["transportation"]))
        if ("Self-driving" in modes and "Flight" in modes) or ("Taxi" in modes and "Self-driving" in modes):
            return False, "The transportation is conflicting."
        return True, None

    def information_in_current_city(self) -> Verdict:
        for i in range(self.n):
            unit = self.plan[i]
            current = unit["current_city"]
            if "from" in current:
                cities: Any = list(self._pair(current))
            elif self.strict:
                cities = [self._city(current)]
            else:
                cities = S.before_parenthesis(current)  # a str: the checks iterate characters (Q2)
            if "transportation" in unit and _filled(unit["transportation"]):
                for city in cities:
                    if city not in unit["transportation"]:
                        return False, f"The transportation in day {i + 1} is invalid city choice."
            for meal in MEALS:
                if meal in unit and _filled(unit[meal]) and not self._in_cities(unit[meal], cities):
                    return False, f"The {meal} in day {i + 1} is invalid city choice."
            if "attraction" in unit and _filled(unit["attraction"]):
                for item in self._attraction_items(unit["attraction"]):
                    if not self._in_cities(item, cities):
                        return False, f"The attraction in day {i + 1} is invalid city choice."
            if "accommodation" in unit and _filled(unit["accommodation"]):
                last = cities[-1]
                ok = (S.name_city(unit["accommodation"])[1] == last) if self.strict else (last in unit["accommodation"])
                if not ok:
                    return False, f"The accommodation in day {i + 1} is invalid city choice."
        return True, None

    def _in_cities(self, text: str, cities) -> bool:
        if self.strict:
            return S.name_city(text)[1] in cities
        return any(city in text for city in cities)

    def information_in_sandbox(self) -> Verdict:
        for i in range(self.n):
            unit = self.plan[i]
            value = unit["transportation"]
            if _filled(value):
                verdict = self._transport_in_sandbox(i, unit, value)
                if verdict is not None:
                    return verdict
            for meal in MEALS:
                if meal in unit and _filled(unit[meal]):
                    if self._restaurant(unit[meal])[1] < 1:
                        return False, f"The {meal} in day {i + 1} is invalid in the sandbox."
            if "attraction" in unit and _filled(unit["attraction"]):
                for item in self._attraction_items(unit["attraction"]):
                    if not self._attraction_exists(item):
                        return False, f"The attraction {item} in day {i + 1} is invalid in the sandbox."
            if "accommodation" in unit and _filled(unit["accommodation"]):
                if self._accommodation(unit["accommodation"])[1] < 1:
                    return False, f"The accommodation in day {i + 1} is invalid in the sandbox."
        return True, None

    def _transport_in_sandbox(self, i: int, unit: dict, value: str) -> Verdict | None:
        a, b = S.from_to(value)
        if a is None or b is None:
            a, b = S.from_to(unit["current_city"])
        lower = value.lower()
        if self.strict:
            if "flight" in lower:
                number = S.strict_flight_number(value)
                if number is None or a is None:
                    return False, f"The flight in day {i + 1} has no parseable number and route."
                flight = self.lk.first_flight(number)
                if not self.lk.has_flight(number, self._city(a), self._city(b)):
                    return False, f"The flight number in day {i + 1} is invalid in the sandbox."
                if self.q.date and i < len(self.q.date) and flight is not None:
                    if self.q.date[i] not in self.lk.db.flight_dates.get(number, ()):
                        return False, f"The flight in day {i + 1} does not fly on {self.q.date[i]}."
                return None
            if "self-driving" in lower or "taxi" in lower:
                if a is None:
                    return False, f"The transportation in day {i + 1} has no parseable route."
                mode = "self-driving" if "self-driving" in lower else "taxi"
                if self.lk.transport_cost(self._city(a), self._city(b), mode) is None:
                    return False, f"The {mode} in day {i + 1} is invalid in the sandbox."
                return None
            return False, f"The transportation in day {i + 1} is not a flight, self-driving or taxi."
        if "flight number" in lower:
            if a is None or b is None:
                raise ValueError(f"The transportation {value} in day {i + 1} can not be parsed.")
            a, b = S.before_parenthesis(a), S.before_parenthesis(b)
            if not self.lk.has_flight(S.flight_number(value), a, b):
                return False, f"The flight number in day {i + 1} is invalid in the sandbox."
        elif "self-driving" in lower or "taxi" in lower:
            if a is None or b is None:
                a, b = "-", "-"
            else:
                a, b = S.before_parenthesis(a), S.before_parenthesis(b)
            mode = "self-driving" if "self-driving" in lower else "taxi"
            if self.lk.transport_cost(a, b, mode) is None:
                return False, f"The {mode} in day {i + 1} is invalid in the sandbox."
        return None

    def not_absent(self) -> Verdict:
        q, plan, n = self.q, self.plan, self.n
        sentinel = S.SENTINEL_CITY
        filled_days = [u for u in plan[:n] if u != {} and u["current_city"] != sentinel]
        if len(filled_days) != q.days:
            return False, "Invalid Days"
        visited: set[str] = set()
        for i in range(n):
            current = plan[i]["current_city"]
            if "from" in current:
                a, b = self._pair(current)
                if i == 0 and a != q.org:
                    return False, f"The first day's city should be {q.org}."
                visited.update((a, b))
            else:
                visited.add(self._city(current))
        visited.discard(q.org)
        if len(visited) != q.visiting_city_number:
            return False, "The number of visiting cities is wrong."
        for i in range(n):
            unit = plan[i]
            for key in ("transportation", "breakfast", "lunch", "dinner", "attraction", "accommodation"):
                if key not in unit:
                    return False, f"No {key} info in day {i + 1}."
                if self.strict and unit[key] is None:
                    return False, f"The {key} in day {i + 1} is null."
            current = unit["current_city"]
            if ("from " in current or "to " in current) and unit["transportation"] in ("", "-"):
                return False, f"No transportation in day {i + 1} is not allowed."
            if "from " not in current and " to " not in current and unit["attraction"] in ("", "-"):
                return False, f"No attraction in day {i + 1} is not allowed."
            if i != q.days - 1 and unit["accommodation"] in ("", "-"):
                return False, f"No accommodation in day {i + 1} is not allowed."
            meals_missing = any(unit[m] in ("", "-") for m in MEALS)
            if meals_missing and "from " not in current:
                return False, f"No meal in day {i + 1} is not allowed."
        filled = sum(1 for i in range(n) for key in plan[i] if _filled(plan[i][key]))
        if filled / (6 * q.days) < 0.5:
            return False, "The absent information is more than 50%."
        return True, None

    # ------------------------------------------------------------ hard
    def cuisine(self) -> Verdict:
        wanted = self.q.local_constraint.get("cuisine")
        if not wanted:
            return None, None
        if self.strict and (not isinstance(wanted, list) or len(set(wanted)) != len(wanted)):
            return False, f"Malformed cuisine constraint {wanted!r}."
        found: set = set()
        for i in range(self.n):
            unit = self.plan[i]
            for meal in MEALS:
                if not _filled(unit[meal]):
                    continue
                name, city = S.name_city(unit[meal])
                if city == self.q.org:
                    if self.strict:
                        continue
                    break  # Q3: the official `continue` skips the rest of this day's meals
                row, _ = self._restaurant(unit[meal])
                if row is not None:
                    for c in wanted:
                        if c in row.cuisines:
                            found.add(c)
        if len(found) == len(wanted):
            return True, None
        for c in wanted:
            if c not in found:
                return False, f"The cuisine {c} is not satisfied."
        # Q18: a repeated entry or a bare string ends here; the official check returns a bare None
        # and its aggregation then crashes. We fail the constraint and say why.
        raise ValueError(f"malformed cuisine constraint {wanted!r} (the official evaluator crashes)")

    def room_rule(self) -> Verdict:
        rule = self.q.local_constraint.get("house rule")
        if rule is None:
            return None, None
        for i in range(self.n):
            unit = self.plan[i]
            if _filled(unit["accommodation"]):
                row, _ = self._accommodation(unit["accommodation"])
                if row is not None and rule in HOUSE_RULES and HOUSE_RULES[rule] in row.house_rules:
                    return False, f"The house rule should be {rule}."
        return True, None

    def transportation(self) -> Verdict:
        rule = self.q.local_constraint.get("transportation")
        if rule is None:
            return None, None
        for i in range(self.n):
            value = self.plan[i]["transportation"]
            if _filled(value):
                text = value.lower() if self.strict else value
                flight_word, drive_word = ("flight", "self-driving") if self.strict else ("Flight", "Self-driving")
                if rule == "no flight" and flight_word in text:
                    return False, "The transportation should not be flight."
                if rule == "no self-driving" and drive_word in text:
                    return False, "The transportation should not be self-driving."
        return True, None

    def room_type(self) -> Verdict:
        rule = self.q.local_constraint.get("room type")
        if rule is None:
            return None, None
        for i in range(self.n):
            unit = self.plan[i]
            if _filled(unit["accommodation"]):
                row, _ = self._accommodation(unit["accommodation"])
                if row is None:
                    continue
                kind = row.room_type
                if rule == "not shared room":
                    bad = kind == "Shared room"
                else:
                    bad = rule in ROOM_TYPES and kind != ROOM_TYPES[rule]
                if bad:
                    return False, f"The room type should be {rule}."
        return True, None

    def total_cost(self) -> float:
        q = self.q
        total = 0.0
        for i in range(self.n):
            unit = self.plan[i]
            value = unit["transportation"]
            if _filled(value):
                a, b = S.from_to(value)
                if a is None or b is None:
                    a, b = S.from_to(unit["current_city"])
                if a is not None and b is not None:
                    lower = value.lower()
                    if "flight number" in lower:
                        number = S.strict_flight_number(value) if self.strict else S.flight_number(value)
                        flight = self.lk.first_flight(number) if number is not None else None
                        if flight is not None:
                            total += flight.price * q.people_number
                    elif "self-driving" in lower or "taxi" in lower:
                        mode, seats = ("self-driving", 5) if "self-driving" in lower else ("taxi", 4)
                        cost = self.lk.transport_cost(self._city(a), self._city(b), mode)
                        if cost is None:
                            raise TypeError(f"no {mode} cost for day {i + 1} (the official code crashes)")
                        total += cost * math.ceil(q.people_number / seats)
            for meal in MEALS:
                if _filled(unit[meal]):
                    row, _ = self._restaurant(unit[meal])
                    if row is not None:
                        total += row.cost * q.people_number
            if _filled(unit["accommodation"]):
                row, _ = self._accommodation(unit["accommodation"])
                if row is not None:
                    total += row.price * math.ceil(q.people_number / row.maximum_occupancy)
        return total

    def cost(self) -> Verdict:
        total = self.total_cost()
        if total <= self.q.budget:
            return True, None
        return False, f"The total cost {total:g} exceeds the budget {self.q.budget}."


def transport_mode(value: str) -> str | None:
    lower = value.lower()
    if "taxi" in lower:
        return "Taxi"
    if "self-driving" in lower:
        return "Self-driving"
    if "flight" in lower:
        return "Flight"
    return None


def consecutive_runs(values: list) -> list[tuple[Any, int]]:
    runs: list[list] = []
    for v in values:
        if runs and runs[-1][0] == v:
            runs[-1][1] += 1
        else:
            runs.append([v, 1])
    return [(v, n) for v, n in runs]


def valid_city_sequence(cities: list[str]) -> bool:
    """Runs of the same city; a city may come back only at the very end, and a middle city must stay
    at least two consecutive entries (arrive one day, leave a later day)."""
    if len(cities) < 3:
        return False
    seen: set[str] = set()
    i, last = 0, len(cities) - 1
    while i < len(cities):
        city = cities[i]
        if city in seen and i != 0 and i != last:
            return False
        count = 0
        while i < len(cities) and cities[i] == city:
            count += 1
            i += 1
        if count == 1 and 0 < i - 1 < last:
            return False
        seen.add(city)
    return True
