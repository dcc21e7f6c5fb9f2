"""Parser and reward behaviour on hand-written outputs (paper notes §5, §7)."""

from __future__ import annotations

import copy
import json

import orjson
import pytest

from imagine.io import DataError
from imagine.tasks.travelplanner.evaluator.checks_batch import BatchChecker
from imagine.tasks.travelplanner.parse import NO_ERRORS, REFLECTION_END, REFLECTION_MARKER, parse_output
from imagine.tasks.travelplanner.schema import annotated_plan, query_from_record
from imagine.tasks.travelplanner.student.reward import RewardConfig, compute_rewards
from tests.conftest import TP


def render(plan, reflection: str | None = NO_ERRORS, fence=True):
    think = "I compare flights and hotels." if reflection is None else (
        f"I compare flights and hotels.\n{REFLECTION_MARKER}\n{reflection}\n{REFLECTION_END}")
    body = json.dumps(plan)
    return f"<think>{think}</think>\n" + (f"```json\n{body}\n```" if fence else body)


@pytest.fixture(scope="module")
def first():
    if not (TP / "train.jsonl").is_file():
        pytest.skip("shared TravelPlanner data missing")
    rec = orjson.loads((TP / "train.jsonl").read_bytes().splitlines()[0])
    return query_from_record(rec), annotated_plan(rec)


def test_parse_good_output(first):
    _, plan = first
    for fence in (True, False):
        p = parse_output(render(plan, fence=fence))
        assert p.format_ok and p.has_reflection and p.plan == plan and p.error is None


@pytest.mark.parametrize("text, error", [
    ("no tags at all", "no </think> closing tag"),
    ("<think>x</think>", "no JSON list in the answer"),
    ("<think>x</think>[{\"days\": 1", "answer is not valid JSON"),
    ("<think>x</think>{\"days\": 1}", "no JSON list in the answer"),
    ("<think>x</think>[]", "plan is an empty list"),
    ("<think>x</think>[1, 2]", "day 1 is a int, not an object"),
    ("<think>x</think>[{\"days\": 1}]", "day 1 lacks key 'current_city'"),
    ("x</think>[]", "no <think> opening tag before </think>"),
    ("<think>a<think>b</think>[]", "nested <think> tag"),
])
def test_parse_failures_are_typed(text, error):
    p = parse_output(text)
    assert not p.format_ok and p.error.startswith(error)


def test_open_tag_may_live_in_the_prompt(first):
    _, plan = first
    text = render(plan)[len("<think>"):]
    assert not parse_output(text).format_ok
    assert parse_output(text, require_open_tag=False).format_ok


def test_reflection_detection():
    assert parse_output(f"<think>{REFLECTION_MARKER} fine</think>[]").has_reflection
    assert not parse_output("<think>REFLECT on it</think>[]").has_reflection
    # the marker outside the think span does not count
    assert not parse_output(f"<think>x</think>{REFLECTION_MARKER}[]").has_reflection


def test_reward_components(tp_db, first):
    q, plan = first
    checker = BatchChecker(tp_db)
    cfg = RewardConfig()
    broken = copy.deepcopy(plan)
    broken[1]["lunch"] = "Nope, Rockford"  # sandbox fails -> ungated -> hard ratio 0
    over = copy.deepcopy(q)
    over.budget = 100  # budget fails: 1 applicable hard constraint, 0 passed
    texts = [render(plan), render(plan, reflection=None), "garbage", render(broken), render(plan)]
    queries = [q, q, q, q, over]
    r = compute_rewards(checker, queries, texts, cfg)
    assert r[0].total == pytest.approx(2.5) and r[0].final_pass
    assert r[1].total == pytest.approx(1.5) and r[1].reflection == -0.5
    assert r[2].total == -1.0 and not r[2].format_ok and r[2].error
    assert r[3].commonsense == pytest.approx(7 / 8) and r[3].hard == 0.0
    assert r[3].total == pytest.approx(7 / 8 + 0.5)
    assert r[4].commonsense == 1.0 and r[4].hard == 0.0 and r[4].total == pytest.approx(1.5)
    weighted = compute_rewards(checker, [q], [render(plan)], RewardConfig(commonsense_weight=2, hard_weight=0,
                                                                        reflection_bonus=0.25, format_penalty=-3))
    assert weighted[0].total == pytest.approx(2.25)
    assert compute_rewards(checker, [q], ["x"], RewardConfig(format_penalty=-3))[0].total == -3


def test_reward_is_strict_by_default(tp_db, first):
    q, plan = first
    exploit = copy.deepcopy(plan)
    exploit[1]["lunch"] = ", Rockford"  # Q8: an empty name matches every restaurant officially
    checker = BatchChecker(tp_db)
    strict = compute_rewards(checker, [q], [render(exploit)])[0]
    official = compute_rewards(checker, [q], [render(exploit)], RewardConfig(strict=False))[0]
    assert official.final_pass and not strict.final_pass and strict.total < official.total


def test_query_records_tolerant_and_strict():
    q = query_from_record({"org": "A", "dest": "B", "days": "3", "people_number": "2.0", "budget": 900,
                           "local_constraint": "{'house rule': 'pets', 'cuisine': None, 'room type': None, "
                                               "'transportation': None}", "date": "['2022-03-01']"})
    assert (q.days, q.people_number, q.local_constraint["house rule"], q.visiting_city_number) == (3, 2, "pets", 1)
    with pytest.raises(DataError, match="field 'budget'"):
        query_from_record({"org": "A", "dest": "B", "days": 3, "people_number": 1, "budget": "lots",
                           "local_constraint": {}}, "q.jsonl:7: ")
    with pytest.raises(DataError, match="q.jsonl:7: missing field"):
        query_from_record({"org": "A"}, "q.jsonl:7: ")
