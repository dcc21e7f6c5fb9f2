"""A model's plan -> one line of the official submission file, and the checks run before it is written.

The leaderboard runs the official script on the file, and that script aborts the whole run on some
plans a model can write (eval spec Q11): one bad line would cost every score. So each plan is brought
to the official format and nothing more (every rule is listed in ``docs/submission.md``; none can
turn a failing plan into a passing one), and a plan the official script would still crash on is
replaced by an empty plan, which it scores as not delivered.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from imagine.tasks.travelplanner.schema import PLAN_KEYS
from imagine.tasks.travelplanner.strings import before_parenthesis, from_to

NAME_FIELDS = ("breakfast", "lunch", "dinner", "accommodation")
_SPACE_PAREN = re.compile(r"\s+\(")
_FROM_TO_SPAN = re.compile(r"from\s+.+?\s+to\s+[^,]+")


@dataclass
class Fixes:
    """How many times each rule changed something, over a whole run (the summary prints them)."""

    counts: dict[str, int] = field(default_factory=dict)

    def add(self, rule: str, n: int = 1) -> None:
        if n:
            self.counts[rule] = self.counts.get(rule, 0) + n


def _tight(text: str) -> str:
    return _SPACE_PAREN.sub("(", text)


def _as_text(value: Any, key: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value if value.strip() else "-"
    if isinstance(value, list):
        items = [str(v) for v in value if v is not None and str(v).strip()]
        if not items:
            return "-"
        return "".join(f"{v};" for v in items) if key == "attraction" else ", ".join(items)
    return str(value)


def _city_part(text: str) -> str:
    """``Name, City (State)`` -> ``Name, City(State)``: only the city after the last comma is touched,
    since a name may hold ``" ("`` and must stay a substring of the database's."""
    name, comma, city = text.rpartition(",")
    return f"{name},{_tight(city)}" if comma else text


def _fix_day(day: dict[str, Any], number: int, fixes: Fixes) -> dict[str, Any]:
    out: dict[str, Any] = {}
    # The evaluator only tests that ``days`` is truthy; the format numbers days 1..n in order.
    if day.get("days", day.get("day")) not in (number, str(number)):
        fixes.add("days renumbered")
    out["days"] = number
    for key in PLAN_KEYS[1:]:
        if key not in day:
            fixes.add("missing field -> '-'")
        before = day.get(key)
        value = _as_text(before, key)
        if value != before and key in day:
            fixes.add("empty or non-text field -> '-' or text")
        if value != "-":
            if key == "attraction":
                body = value.rstrip()
                if not body.endswith(";"):
                    fixes.add("trailing ';' added to attraction")
                    body += ";"
                value = body
                fixed = "".join(f"{_city_part(p)};" for p in body[:-1].split(";"))
            elif key == "current_city":
                fixed = _tight(value)
            elif key == "transportation":
                m = _FROM_TO_SPAN.search(value)
                fixed = value[:m.start()] + _tight(m.group(0)) + value[m.end():] if m else value
            else:
                fixed = _city_part(value)
            if fixed != value:
                fixes.add("space before '(' removed")
            value = fixed
        out[key] = value
    dropped = [k for k in day if k not in PLAN_KEYS and k != "day"]
    fixes.add("extra key dropped", len(dropped))
    return out


def blank_day(number: int) -> dict[str, Any]:
    return {"days": number, **{k: "-" for k in PLAN_KEYS[1:]}}


def official_crash(plan: list[dict[str, Any]]) -> str | None:
    """Why the official script would abort on this (already formatted) plan, or None (eval spec Q9, Q11)."""
    for i, day in enumerate(plan, 1):
        city, transport = day["current_city"], day["transportation"]
        if "from" in city and from_to(city)[1] is None:
            return f"day {i}: current_city has 'from' but no 'to'"
        if transport in ("", "-"):
            continue
        low = transport.lower()
        if "flight number" in low:
            if "Flight Number: " not in transport:
                return f"day {i}: 'flight number' without the exact 'Flight Number: '"
            a, b = from_to(transport)
            if a is None:
                a, b = from_to(city)
            if a is None or b is None:
                return f"day {i}: flight without 'from A to B' in transportation or current_city"
    return None


def format_plan(plan: Any, days: int, fixes: Fixes) -> tuple[list[dict[str, Any]], str | None]:
    """(plan in the official format with exactly ``days`` entries, or ``[]``; why it is empty, if it is)."""
    if not isinstance(plan, list) or not plan:
        return [], "no plan parsed"
    entries = plan[:days]
    if any(not isinstance(d, dict) for d in entries):
        return [], "a day is not a JSON object"
    if len(plan) > days:
        fixes.add("days beyond the trip dropped", len(plan) - days)
    out = []
    for n in range(1, days + 1):
        if n <= len(entries) and entries[n - 1]:
            out.append(_fix_day(entries[n - 1], n, fixes))
        else:
            fixes.add("missing or empty day -> all '-'")
            out.append(blank_day(n))
    crash = official_crash(out)
    if crash:
        return [], f"the official evaluator would abort: {crash}"
    return out, None


def plan_cities(plan: list[dict[str, Any]]) -> set[str]:
    """Cities a plan stays in or travels between, as the evaluator reads them (parenthetical dropped)."""
    cities = set()
    for day in plan:
        city = day.get("current_city", "-")
        if not isinstance(city, str) or city == "-":
            continue
        if "from" in city:
            a, b = from_to(city)
            cities.update(before_parenthesis(x).strip() for x in (a, b) if x)
        else:
            cities.add(before_parenthesis(city).strip())
    return cities


def check_line(line: Any, idx: int, query: str, days: int) -> str | None:
    """Why a submission line is not one the official script reads for this row, or None."""
    if not isinstance(line, dict) or set(line) != {"idx", "query", "plan"}:
        return "not an object with exactly idx, query and plan"
    if line["idx"] != idx:
        return f"idx {line['idx']!r}, expected {idx}"
    if line["query"] != query:
        return "query text differs from the split's"
    plan = line["plan"]
    if not isinstance(plan, list) or len(plan) not in (0, days):
        return f"plan must be a list of {days} days (or empty)"
    for n, day in enumerate(plan, 1):
        if not isinstance(day, dict) or list(day) != list(PLAN_KEYS):
            return f"day {n} does not have exactly the keys {list(PLAN_KEYS)}"
        if day["days"] != n or any(not isinstance(day[k], str) for k in PLAN_KEYS[1:]):
            return f"day {n}: 'days' must be {n} and every other field text"
    if plan and official_crash(plan):
        return official_crash(plan)
    return None
