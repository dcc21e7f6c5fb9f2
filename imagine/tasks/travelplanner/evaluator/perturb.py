"""Random perturbations of valid plans and queries.

The cross-check between the batch checker and the reference checker is only as good as the plans it
sees; annotated plans pass everything. These mutations reproduce the mistakes models make and the
quirks of eval spec §8 (suffixes, substring names, case changes, missing keys, ``None``, wrong cities,
broken ``from``/``to``, flight-number variants, repeated meals, truncation), so that thousands of
perturbed plans exercise every branch of both implementations. The benchmark uses them too.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable

from imagine.tasks.travelplanner.schema import Query

FIELDS = ("current_city", "transportation", "breakfast", "attraction", "lunch", "dinner", "accommodation")
CUISINES = ["Chinese", "American", "Italian", "Mexican", "Indian", "Mediterranean", "French"]


def _day(plan: list, rng: random.Random) -> dict | None:
    days = [d for d in plan if isinstance(d, dict) and d]
    return rng.choice(days) if days else None


def _other_restaurant(db, rng: random.Random, city: str | None = None) -> str:
    cities = [city] if city and city in db.restaurants_by_city else list(db.restaurants_by_city)
    c = rng.choice(cities)
    return f"{rng.choice(db.restaurants_by_city[c]).name}, {c}"


def _other_accommodation(db, rng: random.Random) -> str:
    c = rng.choice(list(db.accommodations_by_city))
    return f"{rng.choice(db.accommodations_by_city[c]).name}, {c}"


def _other_attraction(db, rng: random.Random) -> str:
    c = rng.choice(list(db.attractions_by_city))
    return f"{rng.choice(db.attractions_by_city[c]).name}, {c};"


def _mutations(db) -> list[Callable[[list, Query, random.Random], None]]:
    def set_field(plan, q, rng):
        d = _day(plan, rng)
        if d is None:
            return
        key = rng.choice(FIELDS)
        d[key] = rng.choice(["-", "", None, "Eat at home", d.get(key), 7, "-"])

    def drop_key(plan, q, rng):
        d = _day(plan, rng)
        if d:
            d.pop(rng.choice(FIELDS), None)

    def suffix(plan, q, rng):
        d = _day(plan, rng)
        key = rng.choice(["breakfast", "lunch", "dinner", "accommodation", "attraction"])
        if d and isinstance(d.get(key), str) and d[key] != "-":
            d[key] = d[key] + rng.choice(["; Cost: 20", ".", " ", "$", ";", " (Illinois)"])

    def substring(plan, q, rng):
        d = _day(plan, rng)
        key = rng.choice(["breakfast", "lunch", "dinner", "accommodation"])
        if d and isinstance(d.get(key), str) and ", " in d[key]:
            name, city = d[key].rsplit(", ", 1)
            cut = rng.randint(0, max(0, len(name) - 1))
            d[key] = f"{name[:cut]}, {city}"

    def swap_meal(plan, q, rng):
        d = _day(plan, rng)
        if d:
            key = rng.choice(["breakfast", "lunch", "dinner"])
            same = rng.random() < 0.5
            d[key] = _other_restaurant(db, rng, q.dest if same else None)

    def repeat(plan, q, rng):
        a, b = _day(plan, rng), _day(plan, rng)
        key = rng.choice(["breakfast", "lunch", "dinner", "attraction"])
        if a and b and key in a:
            b[key] = a[key]

    def swap_accommodation(plan, q, rng):
        d = _day(plan, rng)
        if d:
            d["accommodation"] = _other_accommodation(db, rng)

    def add_attraction(plan, q, rng):
        d = _day(plan, rng)
        if d:
            extra = _other_attraction(db, rng)
            cur = d.get("attraction")
            d["attraction"] = (cur + extra) if isinstance(cur, str) and cur != "-" else extra.rstrip(";" if rng.random() < 0.3 else "")

    def transport(plan, q, rng):
        d = _day(plan, rng)
        if not d:
            return
        t = d.get("transportation")
        options = [
            "Taxi", "-", "Self-driving, from A to B",
            f"Taxi, from {q.org} to {q.dest}, duration: 1 hour, distance: 10 km, cost: 10",
            f"Self-driving, from {q.org} to {q.dest}, duration: 1 hour, distance: 10 km, cost: 10",
            f"self-driving, from {q.dest} to {q.org}",
            f"Flight Number: F{rng.randint(1000000, 9999999)}, from {q.org} to {q.dest}",
            f"Flight F1234567, from {q.org} to {q.dest}",
        ]
        if isinstance(t, str):
            options += [t.replace("Flight Number:", "flight Number:"), t.replace("Flight Number:", "flight number:"),
                        t.lower(), t.replace("Self-driving", "self-driving"), t.upper()]
            if db.flights:
                f = rng.choice(db.flights)
                options.append(f"Flight Number: {f.number}, from {f.origin} to {f.dest}, Departure Time: {f.dep_time}")
        d["transportation"] = rng.choice(options)

    def current_city(plan, q, rng):
        d = _day(plan, rng)
        if not d or not isinstance(d.get("current_city"), str):
            return
        c = d["current_city"]
        options = [c.replace("(", " ("), c + "(State)", f"from {q.org}", f"from {q.org} to", "",
                   c.replace("from ", ""), f"from {q.dest} to {q.org}", q.dest, q.org,
                   rng.choice(list(db.city_state)), c.replace(" to ", " - ")]
        d["current_city"] = rng.choice(options)

    def truncate(plan, q, rng):
        k = rng.randint(0, len(plan))
        del plan[k:]
        if not plan and rng.random() < 0.5:
            plan.append({})

    def pad(plan, q, rng):
        plan.extend([{}] * rng.randint(1, 3))

    def reorder(plan, q, rng):
        if len(plan) > 2:
            i, j = rng.sample(range(len(plan)), 2)
            plan[i], plan[j] = plan[j], plan[i]

    return [set_field, drop_key, suffix, substring, swap_meal, repeat, swap_accommodation, add_attraction,
            transport, current_city, truncate, pad, reorder]


def perturb_query(q: Query, rng: random.Random) -> Query:
    q = copy.deepcopy(q)
    lc = q.local_constraint
    choice = rng.randrange(7)
    if choice == 0:
        lc["cuisine"] = rng.sample(CUISINES, rng.choice([1, 2, 4]))
    elif choice == 1:
        lc["house rule"] = rng.choice(["smoking", "parties", "children under 10", "visitors", "pets"])
    elif choice == 2:
        lc["room type"] = rng.choice(["shared room", "not shared room", "private room", "entire room"])
    elif choice == 3:
        lc["transportation"] = rng.choice(["no flight", "no self-driving"])
    elif choice == 4:
        q.people_number = rng.randint(1, 8)
    elif choice == 5:
        q.budget = int(q.budget * rng.uniform(0.5, 1.5))
    else:
        lc["cuisine"] = rng.choice([["Chinese", "Chinese"], "Chinese", []])
    return q


def perturbed_pairs(db, base: list[tuple[Query, list]], n: int, seed: int = 0,
                    max_mutations: int = 3) -> list[tuple[Query, list]]:
    """``n`` (query, plan) pairs: each a base pair with 0..max_mutations plan mutations and sometimes a
    changed query."""
    rng = random.Random(seed)
    mutations = _mutations(db)
    out = []
    for _ in range(n):
        q, plan = rng.choice(base)
        plan = copy.deepcopy(plan)
        for _ in range(rng.randint(0, max_mutations)):
            rng.choice(mutations)(plan, q, rng)
        if rng.random() < 0.3:
            q = perturb_query(q, rng)
        out.append((q, plan))
    return out
