"""String conventions of the official evaluator (eval spec §2), reproduced exactly.

These three helpers decide what a plan field *means* to the evaluator, so their edge cases (no
strip after removing a parenthetical, the last comma splits name from city, the shortest ``from A
to B``) are the quirks that plans pass or fail on. The ``strict`` variants close the loopholes.
"""

from __future__ import annotations

import re
from functools import lru_cache

# name, city: everything before the last comma is the name; the city is what follows (no commas).
_NAME_CITY = re.compile(r"(.*?),\s*([^,]+)$")
# Text before the first "(...)" group.
_BEFORE_PAREN = re.compile(r"^(.*?)\([^)]*\)")
# First "from A to B": A is the shortest text before a whitespace-delimited "to"; B runs to a comma.
_FROM_TO = re.compile(r"from\s+(.+?)\s+to\s+([^,]+)(?=[,\s]|$)")

SENTINEL_CITY = "You don't need to fill in the information for this or later days."


def before_parenthesis(text: str) -> str:
    """``'Toledo(Ohio)'`` -> ``'Toledo'``; ``'Toledo (Ohio)'`` -> ``'Toledo '`` (not stripped: Q5).

    Raises TypeError on a non-string, as the official code does."""
    m = _BEFORE_PAREN.search(text)
    return m.group(1) if m else text


@lru_cache(maxsize=1 << 16)
def name_city(text: str) -> tuple[str, str]:
    """Split ``'Name, City(State)'`` at its last comma -> (``'Name'``, ``'City'``); ('-', '-') if no comma."""
    m = _NAME_CITY.search(text)
    if not m:
        return "-", "-"
    return m.group(1).strip(), before_parenthesis(m.group(2).strip()).strip()


@lru_cache(maxsize=1 << 16)
def from_to(text: str) -> tuple[str | None, str | None]:
    m = _FROM_TO.search(text)
    if not m:
        return None, None
    return m.group(1), m.group(2)


def flight_number(text: str) -> str:
    """The id between ``'Flight Number: '`` and the next comma; IndexError without that exact text (Q9)."""
    return text.split("Flight Number: ")[1].split(",")[0]


# ---------------------------------------------------------------------------- strict variants
_FLIGHT_NUMBER_ANY = re.compile(r"flight\s*number\s*:\s*([^,\s]+)", re.IGNORECASE)


def strict_city(text: str) -> str:
    """Parenthetical removed *and* stripped (closes Q5)."""
    return before_parenthesis(text).strip()


def strict_flight_number(text: str) -> str | None:
    m = _FLIGHT_NUMBER_ANY.search(text)
    return m.group(1) if m else None


def strict_attraction_items(field: str) -> list[str]:
    """Every ``;``-separated item, the last one included (closes Q1), stripped, empties dropped."""
    return [p.strip() for p in field.split(";") if p.strip()]
