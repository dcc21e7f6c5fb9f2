"""The solver: witnesses pass the official-semantics evaluator; 'infeasible' survives brute force."""

from __future__ import annotations

import itertools
import json
import random

import pytest

from imagine.sandbox.database import Database
from imagine.sandbox.synth import SynthConfig, synthesize
from imagine.tasks.travelplanner.evaluator.checks_batch import BatchChecker
from imagine.tasks.travelplanner.evaluator.evaluate import COMMONSENSE
from imagine.tasks.travelplanner.generation.generate import GenConfig, Generator
from imagine.tasks.travelplanner.generation.solver import solve
from imagine.tasks.travelplanner.reference import NO_ROUTE, build_reference, reference_cities
from imagine.tasks.travelplanner.schema import Query, query_from_record
from tests.conftest import TP, require_shared


def _assert_passes(db, query, plan):
    for strict in (False, True):  # honest witnesses pass the official semantics and the strict mode
        result = BatchChecker(db).check_one(query, plan, strict=strict)
        assert result.commonsense == {name: True for name in COMMONSENSE}, (strict, result.reasons)
        assert result.hard is not None and not any(v is False for v in result.hard.values()), result.reasons
        assert result.hard["valid_cost"] is True
    for day in plan:  # canonical format (spec §2)
        if day["attraction"] != "-":
            assert all(piece.endswith(";") for piece in [day["attraction"]])
        assert " (" not in day["current_city"]


@pytest.fixture(scope="module")
def train_pairs():
    require_shared()
    records = [json.loads(line) for line in (TP / "train.jsonl").read_text().splitlines()]
    refs = [json.loads(line) for line in (TP / "train_ref_info.jsonl").read_text().splitlines()]
    return records, refs


def test_train_queries_are_solved_and_witnesses_pass(tp_db, train_pairs):
    """Every official train query is human-verified feasible; the solver must find a passing plan."""
    records, refs = train_pairs
    for rec, ref in zip(records, refs):
        q = query_from_record(rec)
        q.extra["reference_information"] = ref
        result = solve(tp_db, q)
        assert result.status == "feasible", result.trace
        _assert_passes(tp_db, q, result.plan)
        assert result.cost <= q.budget
        assert any("Total $" in line for line in result.trace)


def test_minimum_cost_is_exact(tp_db, train_pairs):
    """With minimize, a budget one dollar under the optimum is infeasible and the optimum itself is not."""
    records, refs = train_pairs
    for i in (0, 20, 44):
        q = query_from_record(records[i])
        q.extra["reference_information"] = refs[i]
        best = solve(tp_db, q, minimize=True)
        assert best.status == "feasible"
        _assert_passes(tp_db, q, best.plan)
        q.budget = int(best.cost)
        assert solve(tp_db, q).status == "feasible"
        q.budget = int(best.cost) - 1
        tight = solve(tp_db, q)
        assert tight.status == "infeasible" and tight.plan is None
        assert "infeasible" in tight.trace[-1]


# ------------------------------------------------------------------ brute force on a tiny world
def _compositions(total: int, parts: int):
    return [c for c in itertools.product(range(1, total + 1), repeat=parts) if sum(c) == total]


def _transport_options(db, ref, a, b, when):
    out = []
    flights = ref.get(f"Flight from {a} to {b} on {when}")
    if isinstance(flights, list):
        for f in flights:
            out.append(f"Flight Number: {f['Flight Number']}, from {a} to {b}, Departure Time: {f['DepTime']}, "
                       f"Arrival Time: {f['ArrTime']}")
    for word in ("Self-driving", "Taxi"):
        if ref.get(f"{word} from {a} to {b}") not in (None, NO_ROUTE):
            route = db.routes[(a, b)]
            out.append(f"{word}, from {a} to {b}, duration: {route.duration}, distance: {route.distance}, cost: 0")
    return out


def _honest_plans(db, q: Query, ref: dict, cap: int):
    """Every plan a model could write from the reference (one stay per city, flights on their day,
    any subset of distinct restaurants that fits the meal slots); None when there are more than cap."""
    cities = reference_cities(ref)
    k, days = q.visiting_city_number, q.days
    count = 0
    plans = []
    for order in itertools.permutations(cities, k):
        for split in _compositions(days - 1, k):
            moves = [1]
            for n in split:
                moves.append(moves[-1] + n)
            stops = [q.org, *order, q.org]
            leg_options = [_transport_options(db, ref, stops[i], stops[i + 1], q.date[moves[i] - 1])
                           for i in range(k + 1)]
            stays = [sorted({f"{h.name}, {c}" for h in db.accommodations_by_city.get(c, [])
                             if _resolves(db.find_accommodation, h, c)}) for c in order]
            sights = [[f"{a.name}, {c}" for a in db.attractions_by_city.get(c, []) if ";" not in a.name]
                      for c in order]
            if any(len(s) < n - 1 for s, n in zip(sights, split)):
                continue
            meal_sets = []
            for c, n in zip(order, split):
                names = sorted({f"{r.name}, {c}" for r in db.restaurants_by_city.get(c, [])
                                if _resolves(db.find_restaurant, r, c)})
                need = 3 * (n - 1)
                meal_sets.append([s for size in range(need, min(len(names), need + 6) + 1)
                                  for s in itertools.combinations(names, size)])
            for transport in itertools.product(*leg_options):
                for stay in itertools.product(*stays):
                    for meals in itertools.product(*meal_sets):
                        count += 1
                        if count > cap:
                            return None
                        plan = _write(q, order, split, moves, transport, stay, sights, meals)
                        if plan is not None:
                            plans.append(plan)
    return plans


def _resolves(find, row, city) -> bool:
    """The honest domain: a name is written only if the evaluator's lookup lands on that very row."""
    name = row.name.strip()
    return "\n" not in name and find(name, city)[0] is row


def _write(q, order, split, moves, transport, stay, sights, meals):
    plan = [{"days": d, "current_city": "", "transportation": "-", "breakfast": "-", "attraction": "-",
             "lunch": "-", "dinner": "-", "accommodation": "-"} for d in range(1, q.days + 1)]
    stops = [q.org, *order, q.org]
    for i, text in enumerate(transport):
        plan[moves[i] - 1]["current_city"] = f"from {stops[i]} to {stops[i + 1]}"
        plan[moves[i] - 1]["transportation"] = text
    for i, city in enumerate(order):
        arrive, leave = moves[i], moves[i + 1]
        chosen = list(meals[i])
        need = 3 * (leave - arrive - 1)
        base, extra = chosen[:need], chosen[need:]
        for d in range(arrive, leave):
            plan[d - 1]["accommodation"] = stay[i]
        for j, d in enumerate(range(arrive + 1, leave)):
            plan[d - 1]["current_city"] = city
            plan[d - 1]["attraction"] = sights[i][j] + ";"
            plan[d - 1]["breakfast"], plan[d - 1]["lunch"], plan[d - 1]["dinner"] = base[3 * j: 3 * j + 3]
        for day_index in (arrive, leave):  # extras on the two travel days, wherever a slot is free
            for slot in ("breakfast", "lunch", "dinner"):
                if extra and plan[day_index - 1][slot] == "-":
                    plan[day_index - 1][slot] = extra.pop()
        if extra:
            return None
    return plan


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = synthesize(tmp_path_factory.mktemp("tiny") / "db", SynthConfig.tiny(seed=5))
    return Database(root)


def _tiny_queries(db, n: int) -> list[Query]:
    """Generated easy/medium 3- and 5-day queries, plus harder variants (extra constraints, budgets scaled)."""
    cfg = GenConfig(n=n, seed=11, mix={("easy", 3): 1, ("medium", 3): 1, ("easy", 5): 1})
    gen = Generator(db, cfg)
    rng = random.Random(0)
    out = []
    for rec in gen.records():
        base = query_from_record(rec)
        out.append(base)
        for _ in range(2):
            q = query_from_record(rec)
            q.budget = int(q.budget * rng.choice([0.5, 0.8, 1.3, 2.0]))
            lc = dict(q.local_constraint)
            lc[rng.choice(["house rule", "room type", "transportation", "cuisine"])] = None
            lc["house rule"] = lc["house rule"] or rng.choice([None, "pets", "smoking"])
            lc["transportation"] = rng.choice([None, "no flight", "no self-driving"])
            lc["cuisine"] = rng.choice([None, ["Chinese", "Tea"], ["BBQ"]])
            lc["room type"] = rng.choice([None, "not shared room", "entire room"])
            q.local_constraint = lc
            q.level = "hard"
            out.append(q)
    return out


def test_brute_force_agrees_on_a_tiny_world(tiny):
    checker = BatchChecker(tiny)
    checked = {"feasible": 0, "infeasible": 0}
    for q in _tiny_queries(tiny, 18):
        plans = _honest_plans(tiny, q, q.extra["reference_information"], cap=4000)
        if plans is None:
            continue
        pairs = [(q, p) for p in plans]
        official, strict = checker.check(pairs), checker.check(pairs, strict=True)
        exists = any(a.final_pass and b.final_pass for a, b in zip(official, strict))
        result = solve(tiny, q, time_limit_s=10)
        assert result.status in ("feasible", "infeasible")
        assert (result.status == "feasible") == exists, (q, result.trace)
        if result.plan is not None:
            _assert_passes(tiny, q, result.plan)
        checked[result.status] += 1
    assert checked["infeasible"] >= 5 and checked["feasible"] >= 5, checked


def test_without_reference_uses_the_whole_sandbox(tiny):
    gen = Generator(tiny, GenConfig(n=3, seed=2, mix={("easy", 3): 1}))
    for rec in gen.records():
        q = query_from_record({k: v for k, v in rec.items() if k != "reference_information"})
        with_ref = query_from_record(rec)
        free, bound = solve(tiny, q), solve(tiny, with_ref)
        if bound.status == "feasible":  # the reference is a subset of the sandbox
            assert free.status == "feasible"
            _assert_passes(tiny, q, free.plan)


def test_impossible_structure_is_infeasible(tiny):
    state = next(s for s, cs in tiny.state_cities.items() if len(cs) >= 3)
    org = next(c for c in tiny.city_state if tiny.city_state[c] != state)
    q = Query(org=org, dest=state, days=5, visiting_city_number=2, date=[f"2022-03-0{d}" for d in range(1, 6)],
              people_number=1, local_constraint={"house rule": None, "cuisine": ["Klingon"], "room type": None,
                                                 "transportation": None}, budget=10**6, level="hard")
    q.extra["reference_information"] = build_reference(tiny, q, sorted(tiny.state_cities[state])[:2])
    result = solve(tiny, q)
    assert result.status == "infeasible"
    assert any("Klingon" in line for line in result.trace)


def test_time_limit_gives_unknown_and_rng_varies_attractions(tp_db, train_pairs):
    records, refs = train_pairs
    q = query_from_record(records[1])
    q.extra["reference_information"] = refs[1]
    assert solve(tp_db, q, time_limit_s=0.0).status == "unknown"
    plans = [solve(tp_db, q, rng=random.Random(seed)).plan for seed in range(4)]
    for plan in plans:
        _assert_passes(tp_db, q, plan)
    assert len({json.dumps(p) for p in plans}) > 1
