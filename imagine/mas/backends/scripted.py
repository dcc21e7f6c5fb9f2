"""A teacher without a model: for offline runs, tests and the demo.

- Reasoner: the exact sandbox solver, narrated step by step, with a configurable rate and mix of the
  mistakes LLM planners make (a repeated or misplaced restaurant, an invented attraction, a missing
  night, a pricier stay, a wrong flight number). For queries with no feasible plan it answers the
  closest plan it finds with the hard constraints relaxed, as a model would.
- Judges: the evaluator, each missing a real error with its own rate (and rarely raising a false
  alarm), so the "either judge flags" rule visibly matters.
- Reflector: names the violated constraints with the evaluator's reasons and repairs them with the
  solver (with a configurable success rate); what it cannot repair it says so and keeps.

Every random choice is seeded by (run seed, query id, role), never by call order, so a resumed or
re-ordered run writes the same traces.
"""

from __future__ import annotations

import asyncio
import copy
import random
import re
import time
from typing import Any

from imagine.mas.backends.base import BackendError, ChatContext, ChatResult
from imagine.mas.config import MISTAKES, ScriptedConfig
from imagine.mas.template import render_plan
from imagine.tasks.travelplanner.evaluator.checks_batch import BatchChecker
from imagine.tasks.travelplanner.evaluator.evaluate import PAPER_NAMES
from imagine.tasks.travelplanner.generation.solver import solve
from imagine.tasks.travelplanner.reference import default_cities, reference_cities, travel_days

MEALS = ("breakfast", "lunch", "dinner")


def _estimate_tokens(text: str) -> int:
    return max(1, len(text) // 4)


def _city_of(day: dict) -> str:
    city = str(day.get("current_city", ""))
    return city.split(" to ", 1)[1] if city.startswith("from ") and " to " in city else city


def _split_name(value: str) -> tuple[str, str]:
    name, _, city = value.rpartition(", ")
    return (name, city) if name else (value, "")


def _transport(db, origin: str, dest: str, when: str, people: int) -> str:
    """The cheapest way to make one leg, written as the solver writes it; '-' if there is none."""
    options: list[tuple[float, str]] = []
    for f in db.flights_by_leg_date.get((origin, dest, when), []):
        options.append((f.price * people, f"Flight Number: {f.number}, from {origin} to {dest}, "
                                          f"Departure Time: {f.dep_time}, Arrival Time: {f.arr_time}"))
    route = db.routes.get((origin, dest))
    if route is not None:
        for mode, word in (("self-driving", "Self-driving"), ("taxi", "Taxi")):
            cost = route.cost(mode)
            if cost is not None:
                options.append((cost, f"{word}, from {origin} to {dest}, duration: {route.duration}, "
                                      f"distance: {route.distance}, cost: {cost}"))
    return min(options)[1] if options else "-"


def best_effort_plan(db, query) -> list[dict]:
    """A complete-looking plan on the official schedule when even the relaxed solver finds none (a leg
    with no transport at all): what a model answers anyway, and a Reflector cannot repair."""
    ref = query.extra.get("reference_information")
    cities = (reference_cities(ref) if isinstance(ref, dict) else []) or default_cities(db, query)
    moves = travel_days(query.days, len(cities))
    stops = [query.org, *cities, query.org]
    plan = []
    used: set[str] = set()
    for d in range(1, query.days + 1):
        stop = sum(1 for m in moves if m <= d)  # index into stops of where the day ends
        here = stops[min(stop, len(stops) - 1)]
        day = {"days": d, "current_city": here, "transportation": "-", "breakfast": "-", "attraction": "-",
               "lunch": "-", "dinner": "-", "accommodation": "-"}
        if d in moves:
            origin = stops[stop - 1]
            when = query.date[d - 1] if d - 1 < len(query.date) else ""
            day["current_city"] = f"from {origin} to {here}"
            day["transportation"] = _transport(db, origin, here, when, query.people_number)
        if here != query.org:
            rows = sorted(db.restaurants_by_city.get(here, []), key=lambda r: r.cost)
            free = [r for r in rows if f"{r.name}, {here}" not in used]
            slots = ("dinner",) if d in moves else MEALS
            for slot, row in zip(slots, free):
                day[slot] = f"{row.name}, {here}"
                used.add(day[slot])
            sights = db.attractions_by_city.get(here, [])
            if sights and d not in moves:
                day["attraction"] = f"{sights[(d - 1) % len(sights)].name}, {here};"
            stays = sorted(db.accommodations_by_city.get(here, []), key=lambda h: h.price)
            if stays and d < query.days:
                day["accommodation"] = f"{stays[0].name}, {here}"
        plan.append(day)
    return plan


_DROPPED_PREFIXES = ("Task:", "Candidate cities", "Meals: the cheapest", "Compared ")
_DROPPED_TAILS = re.compile(r"; (alternatives|skipped)\b[^;]*$")


def concise(trace: list[str]) -> list[str]:
    """The solver's decisions without its alternatives and bookkeeping lines."""
    out = []
    for line in trace:
        if line.startswith(_DROPPED_PREFIXES):
            continue
        out.append(_DROPPED_TAILS.sub("", line).rstrip(".") + ".")
    return out


_MINIMAL_EDITS = (
    (re.compile(r"^(Leg .+?) on \d{4}-\d\d-\d\d: take (flight \S+?|self-driving|taxi)\b.*$"), r"\1: \2."),
    (re.compile(r"^(Stay in .+?: .+) \([^()]*\$[^()]*\)\.$"), r"\1."),
    (re.compile(r" \(\$\d+(?:\.\d+)?\)"), ""),      # a meal's price alone
    (re.compile(r"\(\$\d+(?:\.\d+)?, "), "("),       # a meal's price before the cuisines it covers
    (re.compile(r"^(\d+ combinations were over budget);.*$"), r"\1."),
    (re.compile(r" at \$\d+(?:\.\d+)? in total for \d+ (?:people|person)"), ""),
)


def minimal(trace: list[str]) -> list[str]:
    """The concise decisions without prices, dates or sums: what to take, where to stay and eat.

    A small student cannot do the arithmetic the concise lines spell out, and learning to predict
    those numbers costs it the steps it needs to learn to copy flight numbers and names."""
    out = []
    for line in concise(trace):
        if line.startswith("Total $"):
            continue
        for pattern, repl in _MINIMAL_EDITS:
            line = pattern.sub(repl, line)
        out.append(line)
    return out


class ScriptedTeacher:
    """One object serves all roles; each role gets a thin :class:`ScriptedBackend` view of it."""

    def __init__(self, db, cfg: ScriptedConfig, seed: int = 0):
        self.db, self.cfg, self.seed = db, cfg, seed
        self.checker = BatchChecker(db)

    def _rng(self, ctx: ChatContext, what: str) -> random.Random:
        return random.Random(f"mas-{self.seed}-{ctx.query_id}-{what}")

    def _solve(self, ctx: ChatContext) -> tuple[list[dict] | None, list[str], str]:
        res = solve(self.db, ctx.query, rng=self._rng(ctx, "plan"))
        return res.plan, list(res.trace), res.status

    # ------------------------------------------------------------------ reasoner
    def reason(self, ctx: ChatContext) -> tuple[str, str]:
        plan, trace, status = self._solve(ctx)
        if plan is None:
            relaxed = copy.deepcopy(ctx.query)
            relaxed.budget = 10**9
            relaxed.local_constraint = dict.fromkeys(relaxed.local_constraint)
            res = solve(self.db, relaxed, rng=self._rng(ctx, "plan"))
            trace.append("No plan satisfies every constraint of the query; I relax the budget and the "
                         "local constraints and give the closest plan I can build.")
            trace += res.trace
            plan = res.plan
            if plan is None:
                plan = best_effort_plan(self.db, ctx.query)
                trace.append("Some legs have no transportation at all; I keep the schedule and mark them '-'.")
        else:
            rng = self._rng(ctx, "mistake")
            if rng.random() < self.cfg.mistake_rate:
                kinds = [k for k in MISTAKES if self.cfg.mistake_mix.get(k, 0) > 0]
                if kinds:
                    kind = rng.choices(kinds, [self.cfg.mistake_mix[k] for k in kinds])[0]
                    line = self._inject(kind, plan, rng)
                    if line:
                        trace.append(line)
        if self.cfg.narration == "concise":
            trace = concise(trace)
        elif self.cfg.narration == "minimal":
            trace = minimal(trace)
        reasoning = "\n".join(trace)
        return reasoning, render_plan(plan)

    def _inject(self, kind: str, plan: list[dict], rng: random.Random) -> str | None:
        """Apply one mistake in place and return the reasoning line that 'justifies' it."""
        days = [d for d in plan if isinstance(d, dict) and d]
        meals = [(d, m) for d in days for m in MEALS if d.get(m, "-") != "-"]
        if kind == "wrong_flight":
            flights = [d for d in days if str(d.get("transportation", "")).startswith("Flight Number:")]
            if flights:
                day = rng.choice(flights)
                head, _, rest = day["transportation"].partition(",")
                number = head.split(":", 1)[1].strip()
                wrong = number[:-1] + str((int(number[-1]) + 1) % 10) if number[-1:].isdigit() else number + "1"
                day["transportation"] = f"Flight Number: {wrong},{rest}"
                return f"On day {day['days']} I take flight {wrong}, the one that fits the schedule best."
            kind = "repeated_restaurant"
        if kind == "repeated_restaurant" and len(meals) >= 2:
            (d1, m1), (d2, m2) = rng.sample(meals, 2)
            d2[m2] = d1[m1]
            return f"Day {d2['days']} {m2}: {d1[m1]} again, it was good value."
        if kind == "wrong_city_restaurant" and meals:
            day, meal = rng.choice(meals)
            city = _city_of(day)
            others = [c for c in self.db.restaurants_by_city if c != city]
            if others:
                other = rng.choice(sorted(others))
                row = rng.choice(self.db.restaurants_by_city[other])
                day[meal] = f"{row.name}, {city}"
                return f"Day {day['days']} {meal}: {row.name}, {city}, well rated."
        if kind == "invented_attraction":
            visits = [d for d in days if d.get("attraction", "-") != "-"]
            if visits:
                day = rng.choice(visits)
                city = _city_of(day)
                name = rng.choice(["Grand", "Old Town", "Riverside", "Central"]) + f" {city} Observation Tower"
                day["attraction"] = f"{name}, {city};" + day["attraction"].split(";", 1)[-1]
                return f"Day {day['days']}: I add {name}, a landmark of {city}."
        if kind == "missing_accommodation":
            stays = [d for d in days[:-1] if d.get("accommodation", "-") != "-"]
            if stays:
                day = rng.choice(stays)
                day["accommodation"] = "-"
                return f"Day {day['days']}: no need to book a room that night."
        if kind == "pricier_stay":
            stays = [d for d in days if d.get("accommodation", "-") != "-"]
            if stays:
                name, city = _split_name(rng.choice(stays)["accommodation"])
                rows = self.db.accommodations_by_city.get(city, [])
                if rows:
                    best = max(rows, key=lambda r: (r.review_rate, r.price))
                    for d in stays:
                        if d["accommodation"] == f"{name}, {city}":
                            d["accommodation"] = f"{best.name}, {city}"
                    return f"In {city} I prefer {best.name}: the best reviews are worth the price."
        return None

    # ------------------------------------------------------------------ judges
    def _failures(self, ctx: ChatContext) -> dict[str, str]:
        """Violated constraints (paper names) with the evaluator's reason; empty when the plan passes."""
        plan = ctx.plan
        if not plan:
            return {"Delivery": "no plan in the answer"}
        result = self.checker.check([(ctx.query, plan)])[0]
        failed: dict[str, str] = {}
        for group in (result.commonsense or {}, result.hard or {}):
            for name, ok in group.items():
                if ok is False:
                    failed[PAPER_NAMES.get(name, name)] = result.reasons.get(name, "")
        return failed

    def judge(self, ctx: ChatContext) -> str:
        rng = self._rng(ctx, f"judge{ctx.judge_index}")
        rates = self.cfg.judge_miss_rates
        miss = rates[ctx.judge_index] if ctx.judge_index < len(rates) else rates[-1]
        if self._failures(ctx):
            return "No errors." if rng.random() < miss else "Errors exist."
        return "Errors exist." if rng.random() < self.cfg.judge_false_alarm_rate else "No errors."

    # ------------------------------------------------------------------ reflector
    def reflect(self, ctx: ChatContext) -> str:
        failed = self._failures(ctx)
        if not failed:
            text = ("Let me re-check the plan against every constraint: the cities, transportation, meals, "
                    "attractions, accommodations and the budget are all consistent with the reference "
                    "information. I find no error; the plan stands.")
            return text + "\n\n" + render_plan(ctx.plan)
        lines = ["Let me check my plan against each constraint."]
        for name, reason in failed.items():
            lines.append(f"- {name}: violated" + (f" ({reason.rstrip('.')})." if reason else "."))
        fixed, _, status = self._solve(ctx)
        rng = self._rng(ctx, "reflect")
        if fixed is not None and rng.random() < self.cfg.reflector_fix_rate:
            changes = self._diff(ctx.plan if isinstance(ctx.plan, list) else [], fixed)
            lines.append("To correct this I rebuild the affected parts from the reference information:")
            lines += changes[:12] or ["- I rebuild the plan from scratch."]
            lines.append("Now every constraint holds and the total stays within the budget.")
            return "\n".join(lines) + "\n\n" + render_plan(fixed)
        if status == "infeasible":
            lines.append("No plan within the reference information satisfies every constraint; I keep the "
                         "closest plan.")
        else:
            lines.append("I could not find a correction that removes every violation; I keep the plan.")
        return "\n".join(lines) + "\n\n" + render_plan(ctx.plan if ctx.plan else [])

    @staticmethod
    def _diff(old: list, new: list[dict]) -> list[str]:
        out = []
        for i, day in enumerate(new):
            before = old[i] if i < len(old) and isinstance(old[i], dict) else {}
            for key, value in day.items():
                if key != "days" and before.get(key) != value:
                    out.append(f"- Day {day.get('days', i + 1)} {key}: {before.get(key, '-')} -> {value}")
        return out


class ScriptedBackend:
    """The :class:`ChatBackend` face of one scripted role."""

    def __init__(self, teacher: ScriptedTeacher, role: str):
        self.teacher, self.role = teacher, role

    async def chat(self, messages: list[dict], *, context: ChatContext | None = None, **sampling: Any) -> ChatResult:
        if context is None or context.query is None:
            raise BackendError("the scripted teacher needs the structured query (ChatContext)")
        start = time.monotonic()
        if self.teacher.cfg.latency_s > 0:
            await asyncio.sleep(self.teacher.cfg.latency_s)
        reasoning = None
        if self.role == "reasoner":
            reasoning, text = self.teacher.reason(context)
        elif self.role == "judge":
            text = self.teacher.judge(context)
        elif self.role == "reflector":
            text = self.teacher.reflect(context)
        else:
            raise BackendError(f"unknown scripted role {self.role!r}")
        prompt_tokens = sum(_estimate_tokens(m.get("content", "")) for m in messages)
        completion = _estimate_tokens(text) + (_estimate_tokens(reasoning) if reasoning else 0)
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion}
        return ChatResult(text, reasoning, usage, time.monotonic() - start)

    async def aclose(self) -> None:
        return None
