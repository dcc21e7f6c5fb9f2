"""Stage-1 query generation: distribution, schema, §11 budgets, dedup, determinism, eval round trip."""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from datetime import date, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from imagine.cli import main
from imagine.io import DataError, read_jsonl
from imagine.sandbox.database import Database
from imagine.sandbox.synth import SynthConfig, synthesize
from imagine.tasks.travelplanner.evaluator.checks_batch import BatchChecker
from imagine.tasks.travelplanner.generation import templates
from imagine.tasks.travelplanner.generation.budget import BudgetRejected, estimate_budget, r100
from imagine.tasks.travelplanner.generation.dedup import ExcludeSet, first_date
from imagine.tasks.travelplanner.generation.generate import GenConfig, Generator, cell_schedule, parse_mix
from imagine.tasks.travelplanner.generation.solver import solve
from imagine.tasks.travelplanner.schema import query_from_record
from tests.conftest import TP, require_shared


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    return synthesize(tmp_path_factory.mktemp("gen") / "db", SynthConfig(seed=0))


@pytest.fixture(scope="module")
def db(world):
    return Database(world)


@pytest.fixture(scope="module")
def records(db):
    return list(Generator(db, GenConfig(n=90, seed=3)).records())


# ------------------------------------------------------------------ budget (spec §11)
def _fake_db():
    F = lambda p: SimpleNamespace(price=p, distance=300.0)  # noqa: E731
    H = lambda p, occ: SimpleNamespace(price=p, maximum_occupancy=occ, house_rules="No pets",  # noqa: E731
                                       room_type="Entire home/apt")
    R = lambda c: SimpleNamespace(cost=c, cuisines="Tea, Chinese")  # noqa: E731
    dates = [f"2022-03-{d:02d}" for d in range(1, 8)]
    return SimpleNamespace(
        flights_by_leg={("A", "X"): [F(100), F(300)]},
        flights_by_leg_date={("A", "X", dates[0]): [F(100)], ("A", "X", dates[3]): [F(300)]},
        accommodations_by_city={"X": [H(200, 2), H(400, 4)]},
        restaurants_by_city={"X": [R(20), R(40)]},
    ), dates


def test_budget_formula_hand_checked():
    fake, dates = _fake_db()
    none = {"house rule": None, "cuisine": None, "room type": None, "transportation": None}
    # 3 days, easy: lowest 100*2+200*3+20*9 = 980, average 200*2+300*3+30*9 = 1570 -> r100(1275) = 1300
    est = estimate_budget(fake, "A", ["X"], dates[:3], 1, "easy", none, 3)
    assert (est.lowest, est.average, est.highest) == (980, 1570, 2160)
    assert est.budget == 1300
    # medium, 2 people: k = 1.5 -> r100(1912.5) = 1900 (both hotels hold 2)
    assert estimate_budget(fake, "A", ["X"], dates[:3], 2, "medium", none, 3).budget == 1900
    # 7 days, medium, 4 people: only the 400 hotel holds 4; flights on the query dates only (100, 300)
    # lowest 100*4+400*7+20*21 = 3620, average 200*4+400*7+30*21 = 4230, highest 300*4+400*7+40*21 = 4840
    # r100((4230+4840)/2) = r100(4535) = 4500; k = 3 -> 13500
    est = estimate_budget(fake, "A", ["X"], dates, 4, "medium", none, 7)
    assert (est.lowest, est.average, est.highest, est.budget) == (3620, 4230, 4840, 13500)
    # 5 days, easy: flights on dates[0..4] -> 100 and 300; average 200*3+300*5+30*15 = 2550
    assert estimate_budget(fake, "A", ["X"], dates[:5], 1, "easy", none, 5).budget == 2600
    # hard filters: the pets rule removes every listing -> the official generator resamples
    with pytest.raises(BudgetRejected):
        estimate_budget(fake, "A", ["X"], dates[:3], 2, "hard", dict(none, **{"house rule": "pets"}), 3)


def test_a_database_without_cities_is_a_data_error():
    """imagine queries gen builds the generator outside any except: a plain ValueError was a traceback."""
    empty = SimpleNamespace(root="db", city_state={}, state_cities={}, flights=[])
    with pytest.raises(DataError, match="db: the database has no cities"):
        Generator(empty, GenConfig(n=1))


def test_r100_is_bankers_rounding():
    assert [r100(x) for x in (250, 350, 1250, 1251, 49.9)] == [200, 400, 1200, 1300, 0]


# ------------------------------------------------------------------ records
def test_cells_are_balanced_and_records_valid(db, records):
    cells = Counter((r["level"], r["days"]) for r in records)
    assert set(cells.values()) == {10} and len(cells) == 9
    for rec in records:
        q = query_from_record(rec)
        assert rec["id"].startswith("gen-3-")
        assert q.visiting_city_number == {3: 1, 5: 2, 7: 3}[q.days]
        d0 = date.fromisoformat(q.date[0])
        assert q.date == [(d0 + timedelta(days=i)).isoformat() for i in range(q.days)]
        assert q.date[-1] <= "2022-03-31" and q.date[0] >= "2022-03-01"
        org_state = db.city_state[q.org]
        if q.days == 3:
            assert q.dest in db.city_state and db.city_state[q.dest] != org_state
        else:
            assert q.dest in db.state_cities and q.dest != org_state and len(db.state_cities[q.dest]) > 3
        lc = q.local_constraint
        set_keys = [k for k, v in lc.items() if v is not None]
        if q.level == "easy":
            assert q.people_number == 1 and not set_keys
        else:
            assert 2 <= q.people_number <= 8
            assert len(set_keys) == (1 if q.level == "medium" else 3)
            assert q.level == "hard" or "transportation" not in set_keys
        if lc["cuisine"]:
            assert len(lc["cuisine"]) == (2 if q.level == "medium" else 4)
        if lc["room type"] in ("shared room", "not shared room"):
            assert q.people_number <= 2
        ref = rec["reference_information"]
        assert sum(k.startswith("Accommodations in ") for k in ref) == q.visiting_city_number
        assert sum(k.startswith("Flight from ") for k in ref) == q.visiting_city_number + 1
        assert q.org in q.query and f"${q.budget:,}" in q.query
    statuses = Counter((r["level"], r["feasible"]) for r in records)
    for level in ("easy", "medium", "hard"):  # both outcomes occur at every level
        assert statuses[(level, True)] > 0 and statuses[(level, False)] > 0, statuses


def test_feasible_flag_matches_a_passing_witness(db, records):
    """The flag is the solver's verdict (None only where it ran out of time), and a 'feasible' query
    comes with a witness the evaluator passes."""
    checker = BatchChecker(db)
    flags = Counter()
    for rec in records:
        q = query_from_record(rec)
        result = solve(db, q, time_limit_s=GenConfig().solve_time_limit_s)
        assert rec["feasible"] == {"feasible": True, "infeasible": False}.get(result.status), rec["id"]
        flags[rec["feasible"]] += 1
        if result.status == "feasible":
            assert checker.check_one(q, result.plan).final_pass, rec["id"]
        else:
            assert result.plan is None, rec["id"]
    assert flags[True] > 0 and flags[False] > 0, flags


def test_no_duplicates_within_a_run(records):
    keys = [(r["org"], r["dest"], r["days"], r["date"][0]) for r in records]
    assert len(set(keys)) == len(keys)


def test_exclude_structured_records(db, records, tmp_path):
    path = tmp_path / "prev.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records[:40]) + "\n")
    exclude = ExcludeSet(Generator.places(db))
    exclude.load(path)
    gen = Generator(db, GenConfig(n=90, seed=3), exclude)
    again = list(gen.records())
    old = {(r["org"], r["dest"], r["days"], r["date"][0]) for r in records[:40]}
    assert not old & {(r["org"], r["dest"], r["days"], r["date"][0]) for r in again}
    assert gen.rejections["duplicate of an --exclude query"] >= 40


def test_exclude_natural_language(db, records):
    rec = next(r for r in records if r["days"] == 3)
    exclude = ExcludeSet(Generator.places(db))
    d = date.fromisoformat(rec["date"][0])
    text = (f"Please plan a trip to {rec['dest']} from {rec['org']} starting on March {d.day}th, 2022, "
            f"for {rec['days']} days.")
    assert exclude.add_text(text)
    assert exclude.hit(rec["org"], rec["dest"], rec["days"], rec["date"])  # roles swapped: still a hit
    assert not exclude.hit(rec["org"], rec["dest"], rec["days"], ["2022-03-30"])
    assert first_date("from March 22nd to March 24th, 2022") == "2022-03-22"


def test_official_exclude_files_parse(db):
    require_shared()
    exclude = ExcludeSet(Generator.places(Database(TP / "database")))
    for name in ("train.jsonl", "validation_example_plans.jsonl", "test_queries.jsonl"):
        exclude.load(TP / name)
    assert exclude.sources[str(TP / "train.jsonl")] == 45
    assert exclude.sources[str(TP / "validation_example_plans.jsonl")] >= 170  # texts naming 2 places + a date
    assert exclude.sources[str(TP / "test_queries.jsonl")] >= 950


# ------------------------------------------------------------------ mix, templates
def test_mix_parsing_and_schedule():
    mix = parse_mix("easy:3=1,hard=2")
    assert mix[("easy", 3)] == 1 and mix[("hard", 7)] == 2 and ("medium", 5) not in mix
    counts = Counter(cell_schedule(70, mix, random.Random(0)))
    assert counts[("easy", 3)] == 10 and counts[("hard", 5)] == 20
    for bad in ("easy:4=1", "nope=1", "easy=x", "easy=0"):
        with pytest.raises(ValueError):
            parse_mix(bad)


def test_templates_cover_every_wording():
    assert len(templates.EASY) >= 10 and len(templates.GROUP) >= 10
    base = dict(org="Austin", dest="Ohio", days=5, visiting_city_number=2,
                date=[f"2022-03-0{i}" for i in range(1, 6)], people_number=3, budget=4500, level="hard")
    values = {"house rule": list(templates.HOUSE_RULE), "room type": list(templates.ROOM_TYPE),
              "transportation": list(templates.TRANSPORT), "cuisine": [["Chinese", "Indian", "French", "Mexican"]]}
    keywords = {"parties": "part", "smoking": "smok", "children under 10": "children under 10", "visitors": "visitor",
                "pets": "pet", "entire room": "entire", "private room": "private", "shared room": "shared",
                "not shared room": "shared", "no flight": "fl", "no self-driving": "self-driving"}
    for key, options in values.items():
        for value in options:
            for seed in range(6):
                lc = {"house rule": None, "cuisine": None, "room type": None, "transportation": None, key: value}
                q = query_from_record(dict(base, local_constraint=lc, query=""))
                text = templates.render_query(q, random.Random(seed))
                assert "Austin" in text and "Ohio" in text and "$4,500" in text and "March 1st" in text
                word = "Mexican" if key == "cuisine" else keywords[value]
                assert word.lower() in text.lower(), (value, text)


# ------------------------------------------------------------------ CLI
def test_cli_deterministic_resumable_and_evaluable(world, tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    args = ["queries", "gen", "--db", str(world), "--n", "36", "--seed", "5", "--no-progress"]
    assert main(args + ["--out", str(a)]) == 0
    lines = a.read_text().splitlines(keepends=True)
    b.write_text("".join(lines[:15]) + lines[15][:40])  # an interrupted run with a torn last line
    assert main(args + ["--out", str(b)]) == 0
    assert a.read_bytes() == b.read_bytes()
    report = json.loads(Path(f"{b}.report.json").read_text())
    assert report["resumed_from"] == 15 and report["written"] == 21
    # the records load in `imagine eval` unchanged; witnesses of feasible queries pass there
    db = Database(world)
    plans = []
    recs = read_jsonl(a)
    for i, rec in enumerate(recs):
        result = solve(db, query_from_record(rec))
        plans.append({"idx": i + 1, "plan": result.plan or []})
    (tmp_path / "plans.jsonl").write_text("\n".join(json.dumps(p) for p in plans) + "\n")
    assert main(["eval", "--db", str(world), "--queries", str(a), "--plans", str(tmp_path / "plans.jsonl"),
                 "--json", str(tmp_path / "m.json")]) == 0
    metrics = json.loads((tmp_path / "m.json").read_text())
    final = metrics.get("Final Pass Rate", metrics.get("metrics", {}).get("Final Pass Rate"))
    assert final == pytest.approx(sum(r["feasible"] is True for r in recs) / len(recs))
    assert main(["queries", "gen", "--db", str(world), "--n", "3", "--out", str(tmp_path / "c.jsonl"),
                 "--mix", "bad"]) == 2
    # resuming someone else's file (another seed) is refused rather than silently mixed
    assert main(["queries", "gen", "--db", str(world), "--n", "40", "--seed", "6", "--no-progress",
                 "--out", str(a)]) == 2


@pytest.mark.slow
def test_paper_scale_run_is_fast(world, tmp_path):
    t0 = time.perf_counter()
    out = tmp_path / "q.jsonl"
    assert main(["queries", "gen", "--db", str(world), "--n", "4105", "--seed", "0", "--no-progress",
                 "--out", str(out)]) == 0
    elapsed = time.perf_counter() - t0
    recs = read_jsonl(out)
    assert len(recs) == 4105 and elapsed < 180
    cells = Counter((r["level"], r["days"]) for r in recs)
    assert max(cells.values()) - min(cells.values()) <= 1
