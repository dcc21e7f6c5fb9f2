"""Stage 1 of IMAGINE: new TravelPlanner queries recombined from the sandbox.

A candidate is sampled the way the official generator does it (eval spec §11): dates inside the
database's range, origin and destination (a city of another state for 3 days, a state with more than
3 cities for 5/7 days), level-specific people count and local constraints, and the §11 budget. It is
rejected, with a counted reason, when a rule of the official generator would resample it or when it
duplicates a query of this run or of an ``--exclude`` file. Accepted ones get natural-language text,
structured reference information and a ``feasible`` flag from the exact solver.

Each record draws from its own random stream (seed, index), so record *i* depends on earlier records
only through deduplication; resuming an interrupted output file replays the earlier candidates
(cheap: no solving, no reference) to rebuild that state, then continues with identical results.

``feasible`` is true (a witness plan passing every constraint exists within the reference information),
false (the exact search proves none exists) or null (the solver hit its time limit).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from imagine.io import DataError
from imagine.tasks.travelplanner.generation.budget import BudgetRejected, estimate_budget
from imagine.tasks.travelplanner.generation.dedup import ExcludeSet, PlaceFinder, record_key
from imagine.tasks.travelplanner.generation.solver import solve
from imagine.tasks.travelplanner.generation.templates import render_query
from imagine.tasks.travelplanner.reference import build_reference
from imagine.tasks.travelplanner.schema import Query

LEVELS = ("easy", "medium", "hard")
DAYS = (3, 5, 7)
CUISINES = ["Chinese", "American", "Italian", "Mexican", "Indian", "Mediterranean", "French"]
HOUSE_RULES = ["parties", "smoking", "children under 10", "visitors", "pets"]
HARD_KEYS = ["house rule", "cuisine", "room type", "transportation"]
HARD_WEIGHTS = [0.3, 0.1, 0.3, 0.3]
MEDIUM_KEYS = ["house rule", "cuisine", "room type"]


@dataclass
class GenConfig:
    n: int = 100
    seed: int = 0
    mix: dict[tuple[str, int], float] = field(default_factory=lambda: {(lv, d): 1.0 for lv in LEVELS for d in DAYS})
    solve_time_limit_s: float = 2.0
    max_attempts_per_query: int = 2000
    # The official 'no self-driving' floor for state destinations is 10 flights on the first day; it was
    # set for the full ~3.8M-row flights table. None = 10 on a table that size, else 3 (a synthetic
    # network has a few flights per pair and day, and 10 would remove 'no self-driving' from 5/7 days).
    min_state_flights: int | None = None


def parse_mix(text: str | None) -> dict[tuple[str, int], float]:
    """``"easy:3=1,hard:7=2"`` or ``"easy=1,hard=2"`` (all durations) or ``"3=1,7=1"`` (all levels)."""
    if not text:
        return {(lv, d): 1.0 for lv in LEVELS for d in DAYS}
    mix: dict[tuple[str, int], float] = {}
    for part in text.split(","):
        if "=" not in part:
            raise ValueError(f"--mix item {part!r}: expected CELL=WEIGHT")
        cell, weight_text = part.split("=", 1)
        try:
            weight = float(weight_text)
        except ValueError:
            raise ValueError(f"--mix item {part!r}: weight is not a number") from None
        if weight < 0:
            raise ValueError(f"--mix item {part!r}: negative weight")
        cell = cell.strip()
        if ":" in cell:
            level, day_text = cell.split(":", 1)
            levels, days = [level], [day_text]
        elif cell in LEVELS:
            levels, days = [cell], [str(d) for d in DAYS]
        else:
            levels, days = list(LEVELS), [cell]
        for level in levels:
            for day_text in days:
                if level not in LEVELS or day_text not in ("3", "5", "7"):
                    raise ValueError(f"--mix item {part!r}: unknown cell {level}:{day_text}")
                mix[(level, int(day_text))] = mix.get((level, int(day_text)), 0.0) + weight
    if not any(mix.values()):
        raise ValueError("--mix: all weights are zero")
    return mix


def cell_schedule(n: int, mix: dict[tuple[str, int], float], rng: random.Random) -> list[tuple[str, int]]:
    """Exact cell counts (largest remainder) in a shuffled order, so any prefix is roughly balanced."""
    total = sum(mix.values())
    cells = sorted(mix)
    raw = {c: n * mix[c] / total for c in cells}
    counts = {c: int(raw[c]) for c in cells}
    left = n - sum(counts.values())
    for c in sorted(cells, key=lambda c: (-(raw[c] - counts[c]), c))[:left]:
        counts[c] += 1
    schedule = [c for c in cells for _ in range(counts[c])]
    rng.shuffle(schedule)
    return schedule


def _weighted_without_replacement(rng: random.Random, items: list[str], weights: list[float], k: int) -> list[str]:
    items, weights, out = list(items), list(weights), []
    for _ in range(k):
        pick = rng.choices(range(len(items)), weights=weights)[0]
        out.append(items.pop(pick))
        weights.pop(pick)
    return out


class Generator:
    """Samples, filters and completes queries; ``rejections`` counts why candidates were dropped."""

    def __init__(self, db, cfg: GenConfig, exclude: ExcludeSet | None = None):
        self.db, self.cfg = db, cfg
        self.exclude = exclude
        self.rejections: Counter = Counter()
        self.seen: set[tuple] = set()
        self.cities = sorted(db.city_state)
        self.state_dests = sorted(s for s, cs in db.state_cities.items() if len(cs) > 3)
        self.dates = sorted({f.date for f in db.flights}) or [f"2022-03-{d:02d}" for d in range(1, 32)]
        self.min_state_flights = cfg.min_state_flights
        if self.min_state_flights is None:
            self.min_state_flights = 10 if len(db.flights) >= 1_000_000 else 3
        if not self.cities:
            raise DataError(f"{db.root}: the database has no cities")

    @staticmethod
    def places(db) -> PlaceFinder:
        return PlaceFinder(list(db.city_state) + list(db.state_cities))

    # ------------------------------------------------------------------ sampling
    def _dates(self, rng: random.Random, days: int) -> list[str]:
        from datetime import date, timedelta

        first, last = date.fromisoformat(self.dates[0]), date.fromisoformat(self.dates[-1])
        span = (last - first).days - days + 1
        if span < 0:
            raise BudgetRejected("database date range shorter than the trip")
        start = first + timedelta(days=rng.randint(0, span))
        return [(start + timedelta(days=i)).isoformat() for i in range(days)]

    def _constraints(self, rng: random.Random, level: str, people: int) -> dict:
        lc = {"house rule": None, "cuisine": None, "room type": None, "transportation": None}
        if level == "easy":
            return lc
        keys = [rng.choice(MEDIUM_KEYS)] if level == "medium" else _weighted_without_replacement(
            rng, HARD_KEYS, HARD_WEIGHTS, 3)
        for key in keys:
            if key == "house rule":
                lc[key] = rng.choice(HOUSE_RULES)
            elif key == "cuisine":
                lc[key] = rng.sample(CUISINES, 2 if level == "medium" else 4)
            elif key == "room type":
                options = ["entire room", "private room"]
                if people <= 2:
                    options += ["shared room", "not shared room"]
                lc[key] = rng.choice(options)
            else:
                lc[key] = rng.choice(["no flight", "no self-driving"])
        return lc

    def candidate(self, rng: random.Random, level: str, days: int) -> tuple[Query, list[str]]:
        """One sampled query (text and budget filled in) and the cities its reference covers."""
        org = rng.choice(self.cities)
        org_state = self.db.city_state[org]
        if days == 3:
            others = [c for c in self.cities if self.db.city_state[c] != org_state]
            if not others:
                raise BudgetRejected("no city in another state")
            dest = rng.choice(others)
            cities = [dest]
        else:
            states = [s for s in self.state_dests if s != org_state]
            if not states:
                raise BudgetRejected("no other state with more than 3 cities")
            dest = rng.choice(states)
            cities = rng.sample(sorted(self.db.state_cities[dest]), {5: 2, 7: 3}[days])
        dates = self._dates(rng, days)
        people = 1 if level == "easy" else (2 if rng.random() < 0.5 else rng.randint(3, 8))
        lc = self._constraints(rng, level, people)
        est = estimate_budget(self.db, org, cities, dates, people, level, lc, days, self.min_state_flights)
        if est.budget <= 0:
            raise BudgetRejected("budget rounds to zero")
        query = Query(org=org, dest=dest, days=days, visiting_city_number={3: 1, 5: 2, 7: 3}[days], date=dates,
                      people_number=people, local_constraint=lc, budget=est.budget, level=level)
        query.query = render_query(query, rng)
        return query, cities

    # ------------------------------------------------------------------ stream
    def records(self, start: int = 0) -> Iterator[dict]:
        """Yield records 0..n-1; those before ``start`` are only replayed (deduplication), not solved."""
        schedule = cell_schedule(self.cfg.n, self.cfg.mix, random.Random(f"imagine-mix-{self.cfg.seed}"))
        for i, (level, days) in enumerate(schedule):
            rng = random.Random(f"imagine-query-{self.cfg.seed}-{i}")
            for _attempt in range(self.cfg.max_attempts_per_query):
                try:
                    query, cities = self.candidate(rng, level, days)
                except BudgetRejected as exc:
                    self.rejections[exc.reason] += 1
                    continue
                key = record_key(query.org, query.dest, query.days, query.date)
                if key in self.seen:
                    self.rejections["duplicate within this run"] += 1
                    continue
                if self.exclude is not None and self.exclude.hit(query.org, query.dest, query.days, query.date):
                    self.rejections["duplicate of an --exclude query"] += 1
                    continue
                self.seen.add(key)
                break
            else:
                raise RuntimeError(f"record {i} ({level}, {days} days): no acceptable candidate in "
                                   f"{self.cfg.max_attempts_per_query} attempts; rejections so far: "
                                   f"{dict(self.rejections)}")
            if i < start:
                continue
            yield self.complete(i, query, cities)

    def complete(self, i: int, query: Query, cities: list[str]) -> dict:
        ref = build_reference(self.db, query, cities)
        query.extra = {"reference_information": ref}
        result = solve(self.db, query, time_limit_s=self.cfg.solve_time_limit_s)
        query.extra = {}
        rec = {"id": f"gen-{self.cfg.seed}-{i:06d}", **query.to_record()}
        rec["feasible"] = {"feasible": True, "infeasible": False}.get(result.status)
        rec["reference_information"] = ref
        return rec
