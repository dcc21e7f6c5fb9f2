"""An exact feasibility solver for TravelPlanner queries over the sandbox.

Why exact and not a heuristic: the ``feasible`` flag of a generated query and the witness plan of the
scripted teacher must both be trustworthy. Under the evaluator's semantics (eval spec §5-§6) the cost
of a plan separates into independent parts once the route is fixed: transport per leg, one stay per
city block, and a set of distinct meals. So the search enumerates the few routes (city order × nights
per city × transport family) and, for each, finds the cheapest parts exactly:

- transport: per leg the cheapest flight on that day / self-driving / taxi, inside a *family* that the
  Non-conf. Transportation rule allows: {flight, taxi} mixed per leg, or self-driving on every leg;
  the query's transportation constraint removes flights or self-driving;
- stay: the cheapest listing (price × ⌈people/occupancy⌉ × nights, read from the first row the
  evaluator's lookup would match) that passes the room type and house rule filters and whose minimum
  nights fit the block; one listing per block is optimal because cost is linear in nights;
- meals: every non-travel day needs three distinct restaurants of its city; travel days may add up to
  three more (shared by the two cities of that day), which only pays off for cuisine coverage. A small
  dynamic program over (meal count, covered-cuisine mask) per city, then over cities with the spare
  travel-day slots, gives the cheapest cuisine-covering set.

The plan it writes is *honest*, so it also passes the evaluator's strict mode: flights are taken on
the travel date, names are written in full and only when they resolve to their own row (no listing
shadowed by an earlier duplicate or longer name, Q8/Q13), minimum nights are always respected (also
where the official check skips a multi-match, Q12), and no meal is placed in the origin city (Q3).
"Infeasible" means no honest plan exists within the candidate cities and flights: the reference
information's when the query carries one (what a model sees), else the whole sandbox.
"""

from __future__ import annotations

import itertools
import math
import random
import time
from dataclasses import dataclass, field
from typing import Any

from imagine.tasks.travelplanner.reference import NO_ROUTE, reference_cities
from imagine.tasks.travelplanner.strings import name_city

INF = float("inf")
RULE_TEXT = {"smoking": "No smoking", "parties": "No parties", "children under 10": "No children under 10",
             "visitors": "No visitors", "pets": "No pets"}
ROOM_OK = {"not shared room": lambda t: t != "Shared room", "shared room": lambda t: t == "Shared room",
           "private room": lambda t: t == "Private room", "entire room": lambda t: t == "Entire home/apt"}


@dataclass
class SolveResult:
    status: str  # "feasible" | "infeasible" | "unknown"
    plan: list[dict] | None
    trace: list[str] = field(default_factory=list)
    cost: int | None = None


@dataclass
class _Leg:
    origin: str
    dest: str
    date: str
    options: dict[str, tuple[float, Any]]  # mode -> (total cost for the party, flight row or route)


def _splits(nights: int, parts: int) -> list[tuple[int, ...]]:
    """Positive compositions of ``nights``, balanced first (the official schedule comes first)."""
    out = [c for c in itertools.product(range(1, nights + 1), repeat=parts) if sum(c) == nights]
    out.sort(key=lambda c: (max(c) - min(c), c))
    return out


class _Solver:
    def __init__(self, db, query, time_limit_s: float, rng: random.Random | None, minimize: bool = False):
        self.minimize = minimize
        self.db, self.q = db, query
        self.people = int(query.people_number)
        self.deadline = time.perf_counter() + time_limit_s
        self.rng = rng
        lc = query.local_constraint or {}
        self.rule = lc.get("house rule")
        self.room = lc.get("room type")
        self.transport = lc.get("transportation")
        cuisine = lc.get("cuisine") or []
        self.cuisines = [cuisine] if isinstance(cuisine, str) else list(dict.fromkeys(cuisine))
        self.full_mask = (1 << len(self.cuisines)) - 1
        ref = query.extra.get("reference_information") if isinstance(query.extra, dict) else None
        self.ref = ref if isinstance(ref, dict) else None
        self.trace: list[str] = []
        self._stay_cache: dict[tuple[str, int], tuple[float, Any, dict]] = {}
        self._meal_cache: dict[str, tuple[list, list]] = {}

    # ---------------------------------------------------------------- candidates
    def candidate_cities(self) -> list[str]:
        if self.ref is not None:
            return reference_cities(self.ref)
        if self.q.days <= 3 or self.q.dest in self.db.city_state:
            return [self.q.dest]
        return sorted(self.db.state_cities.get(self.q.dest, []))

    def flights_on(self, origin: str, dest: str, when: str) -> list:
        if self.ref is not None:
            rows = self.ref.get(f"Flight from {origin} to {dest} on {when}")
            if not isinstance(rows, list):
                return []
            numbers = {r["Flight Number"] for r in rows}
            return [f for f in self.db.flights_by_leg_date.get((origin, dest, when), []) if f.number in numbers]
        return self.db.flights_by_leg_date.get((origin, dest, when), [])

    def leg(self, origin: str, dest: str, when: str) -> _Leg:
        options: dict[str, tuple[float, Any]] = {}
        best = None
        for f in self.flights_on(origin, dest, when):
            first = self.db.flight_by_number.get(f.number)  # the cost check reads the first row by number
            if first is None or not self.db.has_flight(f.number, origin, dest):
                continue
            cost = first.price * self.people
            if best is None or cost < best[0]:
                best = (cost, f)
        if best is not None:
            options["flight"] = best
        route = self.db.routes.get((origin, dest))
        if route is not None and route.km is not None:
            for mode, word, seats in (("self-driving", "Self-driving", 5), ("taxi", "Taxi", 4)):
                if self.ref is not None and self.ref.get(f"{word} from {origin} to {dest}") in (None, NO_ROUTE):
                    continue  # not in the reference information the model sees
                options[mode] = (route.cost(mode) * math.ceil(self.people / seats), route)
        return _Leg(origin, dest, when, options)

    def family_cost(self, legs: list[_Leg], family: str) -> tuple[float, list[str]]:
        """Cheapest modes per leg inside a family: 'air' = flight or taxi per leg, 'drive' = self-driving."""
        modes, total = [], 0.0
        for leg in legs:
            allowed = ["self-driving"] if family == "drive" else ["flight", "taxi"]
            if self.transport == "no flight":
                allowed = [m for m in allowed if m != "flight"]
            choices = [(leg.options[m][0], m) for m in allowed if m in leg.options]
            if not choices:
                return INF, []
            cost, mode = min(choices)
            total += cost
            modes.append(mode)
        return total, modes

    def stay(self, city: str, nights: int) -> tuple[float, Any, dict]:
        """Cheapest admissible listing for a block of ``nights`` in ``city``, and why others were skipped."""
        key = (city, nights)
        if key in self._stay_cache:
            return self._stay_cache[key]
        best: tuple[float, Any] = (INF, None)
        skipped = {"house rule": 0, "room type": 0, "minimum nights": 0}
        seen = set()
        for row in self.db.accommodations_by_city.get(city, []):
            text = f"{row.name}, {city}"
            if text in seen:
                continue
            seen.add(text)
            if not self.unambiguous(text, row, self.db.find_accommodation):
                continue
            if self.rule and RULE_TEXT.get(self.rule, "\0") in row.house_rules:
                skipped["house rule"] += 1
                continue
            if self.room and not ROOM_OK.get(self.room, lambda t: False)(row.room_type):
                skipped["room type"] += 1
                continue
            if nights < row.minimum_nights:  # checked even where the official code skips it (Q12)
                skipped["minimum nights"] += 1
                continue
            cost = row.price * math.ceil(self.people / row.maximum_occupancy) * nights
            if cost < best[0]:
                best = (cost, (text, row))
        self._stay_cache[key] = (best[0], best[1], skipped)
        return self._stay_cache[key]

    @staticmethod
    def unambiguous(text: str, row, find) -> bool:
        """True when the plan text ``Name, City`` resolves to ``row`` itself under both the official
        lookup (first row whose name contains it) and the strict one (first exact name): then cost,
        rules and cuisines read by either evaluator are this row's. Listings shadowed by an earlier row
        (exact duplicates, names contained in an earlier name) are never used."""
        name, city = name_city(text)
        if city != row.city or row.name.strip() != name:
            return False
        first, _count = find(name, city)
        return first is row

    def meal_table(self, city: str, max_count: int) -> tuple[list, list]:
        """dp[j][mask] = cheapest cost of j distinct restaurants of ``city`` whose cuisines cover ``mask``."""
        cached = self._meal_cache.get(city)
        if cached is not None and len(cached[0]) > max_count:
            return cached
        items = []
        seen = set()
        for row in self.db.restaurants_by_city.get(city, []):
            text = f"{row.name}, {city}"
            if text in seen:
                continue
            seen.add(text)
            if not self.unambiguous(text, row, self.db.find_restaurant):
                continue
            mask = 0
            for bit, cuisine in enumerate(self.cuisines):
                if cuisine in row.cuisines:
                    mask |= 1 << bit
            items.append((row.cost * self.people, mask, text))
        items.sort(key=lambda it: it[0])
        n_masks = self.full_mask + 1
        cost = [[INF] * n_masks for _ in range(max_count + 1)]
        pick: list[list[tuple]] = [[()] * n_masks for _ in range(max_count + 1)]
        cost[0][0] = 0.0
        for idx, (c, m, _) in enumerate(items):
            for j in range(min(idx + 1, max_count), 0, -1):
                row_prev, row = cost[j - 1], cost[j]
                for mask in range(n_masks):
                    if row_prev[mask] == INF:
                        continue
                    new_mask = mask | m
                    value = row_prev[mask] + c
                    if value < row[new_mask]:
                        row[new_mask] = value
                        pick[j][new_mask] = pick[j - 1][mask] + (idx,)
        self._meal_cache[city] = (cost, pick, items)
        return self._meal_cache[city]

    def meals(self, cities: list[str], required: list[int]) -> tuple[float, list]:
        """Cheapest cuisine-covering meal sets; returns per city (chosen texts, extras from prev/next day)."""
        extra_cap = 6 if self.cuisines else 0
        tables = [self.meal_table(c, r + extra_cap) for c, r in zip(cities, required)]
        # state: (covered mask, slots left on the travel day before the next city) -> (cost, choices)
        states: dict[tuple[int, int], tuple[float, tuple]] = {(0, 3): (0.0, ())}
        for (cost, _pick, _items), req in zip(tables, required):
            nxt: dict[tuple[int, int], tuple[float, tuple]] = {}
            for (mask, left), (base, chosen) in states.items():
                for extra in range(0, extra_cap + 1):
                    j = req + extra
                    if j >= len(cost):
                        break
                    from_prev = min(extra, left)
                    from_next = extra - from_prev
                    if from_next > 3:
                        break
                    for m, value in enumerate(cost[j]):
                        if value == INF:
                            continue
                        key = (mask | m, 3 - from_next)
                        total = base + value
                        if total < nxt.get(key, (INF,))[0]:
                            nxt[key] = (total, chosen + ((j, m, from_prev, from_next),))
            states = nxt
        best = min((v for (mask, _), v in states.items() if mask == self.full_mask), default=None,
                   key=lambda v: v[0])
        if best is None:
            return INF, []
        out = []
        for (j, m, from_prev, from_next), (_c, pick, items) in zip(best[1], tables):
            texts = [items[i][2] for i in pick[j][m]]
            out.append((texts, from_prev, from_next))
        return best[0], out

    def attractions(self, city: str) -> list[str]:
        texts = []
        for row in self.db.attractions_by_city.get(city, []):
            text = f"{row.name}, {city}"
            if ";" in row.name or text in texts:
                continue
            name, parsed_city = name_city(text)
            if parsed_city == city and self.db.find_attraction(name, parsed_city):
                texts.append(text)
        if self.rng is not None:
            self.rng.shuffle(texts)
        return texts

    # ---------------------------------------------------------------- search
    def solve(self) -> SolveResult:
        q, say = self.q, self.trace.append
        k, days = int(q.visiting_city_number), int(q.days)
        cons = {key: v for key, v in (q.local_constraint or {}).items() if v}
        say(f"Task: {days}-day trip from {q.org} to {q.dest} for {self.people} "
            f"{'person' if self.people == 1 else 'people'}, budget ${q.budget}, "
            f"constraints: {cons if cons else 'none'}.")
        cities = self.candidate_cities()
        if len(cities) < k or days - 1 < k:
            say(f"Only {len(cities)} candidate cities for {k} visits: no plan can exist.")
            return SolveResult("infeasible", None, self.trace)
        say(f"Candidate cities: {', '.join(cities)}; I must visit {k} of them and return to {q.org}.")
        orders = list(itertools.permutations(cities, k))
        splits = _splits(days - 1, k)
        families = ["air", "drive"]
        if self.transport == "no self-driving":
            families = ["air"]
        best_bound, reasons, tried = INF, {}, 0
        best: SolveResult | None = None
        best_lines: list[str] = []
        for order in orders:
            for split in splits:
                if time.perf_counter() > self.deadline:
                    if best is not None:
                        best.trace = self.trace + best_lines + ["Time limit reached; this is the cheapest plan found."]
                        return best
                    say(f"Time limit reached after {tried} routes without a plan within budget.")
                    return SolveResult("unknown", None, self.trace)
                tried += 1
                mark = len(self.trace)
                result = self.try_route(list(order), split, families, reasons)
                if isinstance(result, float):
                    best_bound = min(best_bound, result)
                    continue
                if not self.minimize:
                    return result
                lines = self.trace[mark:]
                del self.trace[mark:]  # keep only the cheapest route's explanation
                if best is None or result.cost < best.cost:
                    best, best_lines = result, lines
        if best is not None:
            best.trace = self.trace + [f"Compared {tried} route and night combinations; the cheapest is:"] + best_lines
            return best
        self.explain_failure(tried, best_bound, reasons)
        return SolveResult("infeasible", None, self.trace)

    def try_route(self, order: list[str], split: tuple[int, ...], families: list[str], reasons: dict):
        q, say = self.q, self.trace.append
        moves = [1]
        for n in split:
            moves.append(moves[-1] + n)
        stops = [q.org, *order, q.org]
        legs = [self.leg(stops[i], stops[i + 1], q.date[moves[i] - 1] if moves[i] - 1 < len(q.date) else "")
                for i in range(len(stops) - 1)]
        family_costs = [(self.family_cost(legs, fam), fam) for fam in families]
        family_costs = [(c, modes, fam) for (c, modes), fam in family_costs if c < INF]
        if not family_costs:
            reasons["transport"] = reasons.get("transport", 0) + 1
            return INF
        stays, stay_cost = [], 0.0
        for city, nights in zip(order, split):
            cost, choice, _skipped = self.stay(city, nights)
            if choice is None:
                reasons[f"no admissible stay in {city} for {nights} nights"] = 1
                return INF
            stays.append(choice)
            stay_cost += cost
        sights = []
        for city, nights in zip(order, split):
            texts = self.attractions(city)
            if len(texts) < nights - 1:
                reasons[f"too few attractions in {city}"] = 1
                return INF
            sights.append(texts)
        required = [3 * (n - 1) for n in split]
        meal_cost, meal_plan = self.meals(order, required)
        if meal_cost == INF:
            reasons["meals"] = reasons.get("meals", 0) + 1
            return INF
        for transport_cost, modes, _family in sorted(family_costs):
            total = transport_cost + stay_cost + meal_cost
            if total > q.budget:
                reasons["budget"] = reasons.get("budget", 0) + 1
                continue
            say(f"Route {' -> '.join(stops)} with nights {'/'.join(map(str, split))}: travel on days "
                f"{', '.join(map(str, moves))}.")
            for leg, mode in zip(legs, modes):
                cost, item = leg.options[mode]
                what = f"flight {item.number} at ${item.price:g} per person" if mode == "flight" else mode
                others = ", ".join(f"{m} ${c:g}" for m, (c, _) in sorted(leg.options.items()) if m != mode)
                say(f"Leg {leg.origin} -> {leg.dest} on {leg.date}: take {what} (${cost:g} for the party)"
                    f"{'; alternatives: ' + others if others else ''}.")
            for (text, row), city, nights in zip(stays, order, split):
                rooms = math.ceil(self.people / row.maximum_occupancy)
                skipped = self.stay(city, nights)[2]
                note = ", ".join(f"{v} failing {k}" for k, v in skipped.items() if v)
                say(f"Stay in {city} for {nights} night{'s' if nights > 1 else ''}: {text.rsplit(', ', 1)[0]} "
                    f"({row.room_type}, ${row.price:g} x {rooms} room{'s' if rooms > 1 else ''} x {nights})"
                    f"{'; skipped ' + note if note else ''}.")
            for city, (texts, _prev, _next) in zip(order, meal_plan):
                picked = []
                for text in texts:
                    row = self.db.find_restaurant(*name_city(text))[0]
                    served = [c for c in self.cuisines if c in row.cuisines]
                    picked.append(f"{text.rsplit(', ', 1)[0]} (${row.cost:g}"
                                  f"{', ' + '/'.join(served) if served else ''})")
                if picked:
                    say(f"Meals in {city}: {'; '.join(picked)}.")
            if self.cuisines:
                say(f"Meals cover the required cuisines {', '.join(self.cuisines)} at ${meal_cost:g} in total "
                    f"for {self.people} {'person' if self.people == 1 else 'people'}.")
            else:
                say(f"Meals: the cheapest distinct restaurants of each city, ${meal_cost:g} in total.")
            say(f"Total ${total:g} = transport ${transport_cost:g} + stays ${stay_cost:g} + meals ${meal_cost:g}"
                f" <= budget ${q.budget}: the plan is feasible.")
            plan = self.write_plan(order, split, moves, legs, modes, stays, sights, meal_plan)
            return SolveResult("feasible", plan, self.trace, int(total) if float(total).is_integer() else total)
        return float(min(c for c, _, _ in family_costs) + stay_cost + meal_cost)

    def explain_failure(self, tried: int, best_bound: float, reasons: dict) -> None:
        say = self.trace.append
        say(f"Checked {tried} route and night combinations.")
        for reason, count in reasons.items():
            if reason == "budget":
                say(f"{count} combinations were over budget; the cheapest costs ${best_bound:g} "
                    f"> ${self.q.budget}.")
            elif reason == "transport":
                say(f"{count} combinations had a leg with no allowed transport.")
            elif reason == "meals":
                say(f"{count} combinations could not cover the cuisines {', '.join(self.cuisines)} "
                    "with distinct restaurants.")
            else:
                say(f"Also: {reason}.")
        say("No plan satisfies every constraint: the query is infeasible.")

    # ---------------------------------------------------------------- plan text
    def write_plan(self, order, split, moves, legs, modes, stays, sights, meal_plan) -> list[dict]:
        q = self.q
        days = int(q.days)
        plan = [{"days": d, "current_city": "", "transportation": "-", "breakfast": "-", "attraction": "-",
                 "lunch": "-", "dinner": "-", "accommodation": "-"} for d in range(1, days + 1)]
        for i, (leg, mode) in enumerate(zip(legs, modes)):
            day = plan[moves[i] - 1]
            day["current_city"] = f"from {leg.origin} to {leg.dest}"
            cost, item = leg.options[mode]
            if mode == "flight":
                day["transportation"] = (f"Flight Number: {item.number}, from {leg.origin} to {leg.dest}, "
                                         f"Departure Time: {item.dep_time}, Arrival Time: {item.arr_time}")
            else:
                word = "Self-driving" if mode == "self-driving" else "Taxi"
                day["transportation"] = (f"{word}, from {leg.origin} to {leg.dest}, duration: {item.duration}, "
                                         f"distance: {item.distance}, cost: {item.cost(mode)}")
        for i, city in enumerate(order):
            arrive, leave = moves[i], moves[i + 1]
            for d in range(arrive, leave):
                plan[d - 1]["accommodation"] = stays[i][0]
            texts, from_prev, from_next = meal_plan[i]
            required = 3 * (leave - arrive - 1)
            stay_meals, extras = texts[:required], texts[required:]
            slot = 0
            for d in range(arrive + 1, leave):
                day = plan[d - 1]
                day["current_city"] = city
                day["attraction"] = sights[i][d - arrive - 1] + ";"
                for meal in ("breakfast", "lunch", "dinner"):
                    day[meal] = stay_meals[slot]
                    slot += 1
            self._place(plan[arrive - 1], extras[:from_prev], last=False)
            self._place(plan[leave - 1], extras[from_prev:from_prev + from_next], last=True)
        return plan

    @staticmethod
    def _place(day: dict, meals: list[str], last: bool) -> None:
        """Put extra meals on a travel day: the arriving city eats late, the departing one early."""
        slots = ["breakfast", "lunch", "dinner"]
        free = [s for s in slots if day[s] == "-"]
        order = free if last else list(reversed(free))
        for meal, slot in zip(meals, order):
            day[slot] = meal


def solve(db, query, *, time_limit_s: float = 2.0, rng: random.Random | None = None,
          minimize: bool = False) -> SolveResult:
    """Search for a plan passing all 8 commonsense and all applicable hard constraints (see module doc).

    By default the first route whose cheapest completion fits the budget is returned; ``minimize``
    scans every route and returns the cheapest plan (its cost is the true minimum under the rules).
    ``rng`` varies which attractions fill the sightseeing days (costless, so the verdict never changes),
    giving the scripted teacher varied witnesses. Past ``time_limit_s`` the status is "unknown".
    """
    return _Solver(db, query, time_limit_s, rng, minimize).solve()
