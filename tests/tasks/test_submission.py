"""The official-format rules of docs/submission.md, and plans the official script would abort on."""

from __future__ import annotations

import random

import pytest

from imagine.tasks.travelplanner.benchmark.submission import Fixes, check_line, format_plan, plan_cities
from imagine.tasks.travelplanner.schema import PLAN_KEYS


def _day(n, **kw):
    day = {"days": n, "current_city": "Rockford", "transportation": "-", "breakfast": "Dial A Cake, Rockford",
           "attraction": "Burpee Museum, Rockford;", "lunch": "Flying Mango, Rockford",
           "dinner": "Cafe Southall, Rockford", "accommodation": "Pure luxury, Rockford"}
    day.update(kw)
    return day


def test_a_plan_already_in_the_official_format_is_unchanged():
    plan = [_day(1, current_city="from A to Rockford"), _day(2), _day(3, current_city="from Rockford to A",
                                                                     accommodation="-")]
    fixes = Fixes()
    assert format_plan(plan + [{}, {}], 3, fixes) == (plan, None)
    assert fixes.counts == {"days beyond the trip dropped": 2}


def test_each_rule():
    fixes = Fixes()
    plan, why = format_plan([
        {"day": 1, "current_city": "from A to Toledo (Ohio)", "transportation": "Self-driving, from A to Toledo (Ohio), x",
         "breakfast": "", "attraction": "Zoo (Big), Toledo (Ohio); Park, Toledo", "lunch": None,
         "dinner": "Grill (North), Toledo (Ohio)", "accommodation": ["Inn", "Toledo"], "cost": 12},
    ], 2, fixes)
    assert why is None
    assert plan == [
        {"days": 1, "current_city": "from A to Toledo(Ohio)", "transportation": "Self-driving, from A to Toledo(Ohio), x",
         "breakfast": "-", "attraction": "Zoo (Big), Toledo(Ohio); Park, Toledo;", "lunch": "-",
         "dinner": "Grill (North), Toledo(Ohio)", "accommodation": "Inn, Toledo"},
        {"days": 2, **{k: "-" for k in PLAN_KEYS[1:]}},
    ]
    assert set(fixes.counts) == {"space before '(' removed", "trailing ';' added to attraction", "extra key dropped",
                                 "empty or non-text field -> '-' or text", "missing or empty day -> all '-'"}


@pytest.mark.parametrize("plan, reason", [
    (None, "no plan parsed"), ([], "no plan parsed"), ("text", "no plan parsed"),
    ([1, 2, 3], "a day is not a JSON object"),
    ([_day(1, current_city="from Rockford")], "current_city has 'from' but no 'to'"),
    ([_day(1, transportation="flight number: F1, from A to B")], "without the exact 'Flight Number: '"),
    ([_day(1, transportation="Flight Number: F1")], "flight without 'from A to B'"),
])
def test_plans_that_cannot_be_submitted_become_empty(plan, reason):
    out, why = format_plan(plan, 3, Fixes())
    assert out == [] and reason in why


def test_garbage_never_raises_and_always_gives_a_readable_line():
    rng = random.Random(0)
    atoms = [None, "", "-", "from", "from X to", "to", 0, 1.5, True, [], {}, ["a"], {"x": 1}, "Flight Number: F",
             "A (B), C (D)", "from A (B) to C (D)", ";", "flight number"]
    for _ in range(3000):
        days = rng.choice((3, 5, 7))
        plan = [{rng.choice(PLAN_KEYS + ("day", "junk")): rng.choice(atoms) for _ in range(rng.randrange(10))}
                if rng.random() < 0.9 else rng.choice(atoms) for _ in range(rng.randrange(9))]
        out, _ = format_plan(plan, days, Fixes())
        assert check_line({"idx": 1, "query": "q", "plan": out}, 1, "q", days) is None


def test_check_line_rejects_what_the_leaderboard_cannot_read():
    good = {"idx": 3, "query": "q", "plan": [_day(1), _day(2), _day(3)]}
    assert check_line(good, 3, "q", 3) is None
    assert "idx" in check_line(good, 4, "q", 3)
    assert "query" in check_line(good, 3, "other", 3)
    assert "3 days" in check_line({**good, "plan": good["plan"][:2]}, 3, "q", 3)
    assert "exactly the keys" in check_line({**good, "plan": [{}, _day(2), _day(3)]}, 3, "q", 3)
    assert "exactly idx" in check_line({**good, "extra": 1}, 3, "q", 3)


def test_plan_cities():
    plan = [_day(1, current_city="from Minneapolis to Toledo(Ohio)"), _day(2, current_city="Toledo(Ohio)")]
    assert plan_cities(plan) == {"Minneapolis", "Toledo"}


def test_padding_a_short_plan_never_lets_it_pass(train_pairs, tp_db):
    from imagine.tasks.travelplanner.evaluator.checks_batch import BatchChecker

    checker = BatchChecker(tp_db)
    for query, plan in train_pairs:
        for keep in range(1, query.days):
            padded, _ = format_plan(plan[:keep], query.days, Fixes())
            assert len(padded) == query.days
            result = checker.check_one(query, padded)
            assert result.commonsense["is_not_absent"] is False and not result.final_pass
