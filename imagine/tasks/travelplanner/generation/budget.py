"""The official budget estimate of a new query (eval spec §11), computed from the sandbox.

Why reproduce it exactly: the budget is what makes a query easy or tight. The official generator
prices a trip three ways (lowest, average, highest) as E(flight)·m_f + E(hotel)·m_h + E(meal)·m_r
and scales by the level's people factor; reusing it keeps generated queries as hard as the official
ones. The hard-level retry rules live here too, because they read the same filtered tables.
"""

from __future__ import annotations

from dataclasses import dataclass

MULTIPLIERS = {3: (2, 3, 9), 5: (3, 5, 15), 7: (4, 7, 21)}
RULE_TEXT = {"smoking": "No smoking", "parties": "No parties", "children under 10": "No children under 10",
             "visitors": "No visitors", "pets": "No pets"}
ROOM_TEXT = {"shared room": "Shared room", "private room": "Private room", "entire room": "Entire home/apt"}


class BudgetRejected(ValueError):
    """The official generator raises here and samples again; ``reason`` names the rule for the report."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def r100(x: float) -> int:
    """Python's ``round(x/100)*100``: banker's rounding on the quotient, as the official script does."""
    return int(round(x / 100) * 100)


@dataclass
class Estimate:
    lowest: float
    average: float
    highest: float
    budget: int


def _room_ok(room_type: str, wanted: str | None) -> bool:
    if wanted is None:
        return True
    if wanted == "not shared room":
        return room_type != "Shared room"
    return room_type == ROOM_TEXT.get(wanted)


def price_tables(db, org: str, cities: list[str], dates: list[str], people: int, level: str,
                 constraints: dict, days: int) -> tuple[list[float], list[float], list[float]]:
    """Flight prices, hotel prices and restaurant costs the official estimate averages over."""
    flights: list[float] = []
    for city in cities:
        if days == 3:  # a city destination: every date
            flights += [f.price for f in db.flights_by_leg.get((org, city), [])]
        else:  # a state destination: only the query dates
            for when in dates:
                flights += [f.price for f in db.flights_by_leg_date.get((org, city, when), [])]
    hotels, meals = [], []
    hard = level == "hard"
    rule = constraints.get("house rule") if hard else None
    room = constraints.get("room type") if hard else None
    cuisines = (constraints.get("cuisine") or []) if hard else []
    for city in cities:
        for h in db.accommodations_by_city.get(city, []):
            if level != "easy" and h.maximum_occupancy < people:
                continue
            if rule and RULE_TEXT[rule] in h.house_rules:
                continue
            if not _room_ok(h.room_type, room):
                continue
            hotels.append(h.price)
        for r in db.restaurants_by_city.get(city, []):
            if cuisines and not any(c in r.cuisines for c in cuisines):
                continue
            meals.append(r.cost)
    return flights, hotels, meals


def check_hard_rules(db, org: str, cities: list[str], dates: list[str], days: int, constraints: dict,
                     hotels: list[float], meals: list[float], min_state_flights: int = 10) -> None:
    """The official hard-level retries: too few hotels/restaurants, or transport that cannot work."""
    need = days
    if len(hotels) < need:
        raise BudgetRejected(f"hard filters leave fewer than {need} accommodations")
    if len(meals) < need:
        raise BudgetRejected(f"hard filters leave fewer than {need} restaurants")
    transport = constraints.get("transportation")
    if transport is None:
        return
    first_day = []
    for city in cities:
        first_day += db.flights_by_leg_date.get((org, city, dates[0]), [])
    if transport == "no self-driving":
        floor = 2 if days == 3 else min_state_flights
        if len(first_day) < floor:
            raise BudgetRejected(f"no self-driving: fewer than {floor} flights on the first day")
    elif transport == "no flight":
        if len(first_day) < 2:
            raise BudgetRejected("no flight: fewer than 2 flights on the first day")
        if first_day[0].distance > 800:
            raise BudgetRejected("no flight: first flight longer than 800 miles")


def estimate_budget(db, org: str, cities: list[str], dates: list[str], people: int, level: str,
                    constraints: dict, days: int, min_state_flights: int = 10) -> Estimate:
    """Budget of §11; raises :class:`BudgetRejected` where the official generator would resample."""
    flights, hotels, meals = price_tables(db, org, cities, dates, people, level, constraints, days)
    if level == "hard":
        check_hard_rules(db, org, cities, dates, days, constraints, hotels, meals, min_state_flights)
    if not flights:
        raise BudgetRejected("no flight prices to estimate from")
    if not hotels:
        raise BudgetRejected("no accommodation prices to estimate from")
    if not meals:
        raise BudgetRejected("no restaurant prices to estimate from")
    mf, mh, mr = MULTIPLIERS[days]

    def combo(pick) -> float:
        return pick(flights) * mf + pick(hotels) * mh + pick(meals) * mr

    lowest = combo(min)
    highest = combo(max)
    average = combo(lambda xs: sum(xs) / len(xs))
    k = 1.0 if level == "easy" else (0.75 * people if level == "medium" else 0.5 * people)
    if days == 3:
        budget = r100((average + lowest) / 2 * k)
    elif days == 5:
        budget = r100(average * k)
    else:
        budget = r100(r100((average + highest) / 2) * k)
    return Estimate(lowest, average, highest, budget)
