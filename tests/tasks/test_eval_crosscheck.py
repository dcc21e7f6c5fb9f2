"""The batch checker against the per-plan reference on thousands of perturbed plans (official and strict
modes), the indexed lookups against full-table scans, and the parser/checker/reward never raising."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imagine.tasks.travelplanner.evaluator.checks_batch import BatchChecker
from imagine.tasks.travelplanner.evaluator.evaluate import evaluate_reference
from imagine.tasks.travelplanner.evaluator.lookup import IndexedLookup, ScanLookup
from imagine.tasks.travelplanner.evaluator.perturb import perturbed_pairs
from imagine.tasks.travelplanner.parse import REFLECTION_MARKER, check_plan_shape, parse_output
from imagine.tasks.travelplanner.student.reward import RewardConfig, compute_rewards


@pytest.fixture(scope="module")
def base(train_pairs):
    return train_pairs


def verdicts(r):
    return (r.delivered, r.commonsense, r.hard)


def test_batch_equals_reference_on_perturbed_plans(tp_db, base):
    pairs = perturbed_pairs(tp_db, base, 4000, seed=1)
    batch = BatchChecker(tp_db).check(pairs)
    indexed = IndexedLookup(tp_db)
    mismatches = []
    outcomes = set()
    for (q, p), b in zip(pairs, batch):
        ref = evaluate_reference(indexed, q, p)
        if verdicts(ref) != verdicts(b):
            mismatches.append((q, p, ref, b))
        outcomes.add((b.delivered, b.gated, b.final_pass))
    assert not mismatches, mismatches[:2]
    # the perturbations reach every outcome class, so the comparison is not vacuous
    assert {(False, False, False), (True, False, False), (True, True, False), (True, True, True)} <= outcomes


def test_indexed_lookup_equals_table_scans(tp_db, base):
    pairs = perturbed_pairs(tp_db, base, 150, seed=2)
    scan, indexed = ScanLookup(tp_db), IndexedLookup(tp_db)
    for strict in (False, True):
        for q, p in pairs:
            assert verdicts(evaluate_reference(scan, q, p, strict)) == verdicts(evaluate_reference(indexed, q, p, strict))


def test_strict_mode_never_passes_more_than_needed(tp_db, base):
    """Strict closes loopholes: annotated plans still pass; Q1/Q8/Q9 exploits fail."""
    checker = BatchChecker(tp_db)
    q2_users = 0
    for q, p in base:
        r = checker.check_one(q, p, strict=True)
        if not r.final_pass:
            # one annotated plan visits another city's attractions on a stay day, which only the
            # official Q2 character-iteration bug lets through
            assert {k for k, v in r.commonsense.items() if not v} == {"is_valid_information_in_current_city"}
            q2_users += 1
    assert q2_users == 1
    q, p = base[0]
    import copy

    exploit = copy.deepcopy(p)
    exploit[1]["attraction"] = "Totally Fake Place, Rockford"  # Q1
    assert checker.check_one(q, exploit).final_pass
    assert not checker.check_one(q, exploit, strict=True).final_pass
    exploit = copy.deepcopy(p)
    exploit[1]["lunch"] = ", Rockford"  # Q8
    assert checker.check_one(q, exploit).final_pass
    assert not checker.check_one(q, exploit, strict=True).final_pass
    exploit = copy.deepcopy(p)
    exploit[0]["transportation"] = "Flight F9999999, from St. Petersburg to Rockford"  # Q9
    assert checker.check_one(q, exploit).final_pass
    assert not checker.check_one(q, exploit, strict=True).final_pass


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)
day_dicts = st.fixed_dictionaries(
    {}, optional={k: st.one_of(st.text(max_size=40), st.none(), st.integers(), st.just("-"),
                               st.sampled_from(["from St. Petersburg to Rockford", "Rockford", "from Rockford to",
                                                "Flight Number: F3573659, from St. Petersburg to Rockford",
                                                "flight number F1", "Taxi", "Subway, Rockford", "a;b;"]))
              for k in ("days", "current_city", "transportation", "breakfast", "attraction", "lunch", "dinner",
                        "accommodation")})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=st.one_of(json_values, st.lists(day_dicts, max_size=8)))
def test_checker_never_raises_and_paths_agree(tp_db, base, plan):
    q = base[0][0]
    for strict in (False, True):
        b = BatchChecker(tp_db).check_one(q, plan, strict=strict)
        r = evaluate_reference(IndexedLookup(tp_db), q, plan, strict)
        assert verdicts(b) == verdicts(r)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.one_of(
    st.text(max_size=200),
    st.builds(lambda a, j: f"<think>{a}</think>{j}", st.text(max_size=50), json_values.map(json.dumps)),
    st.builds(lambda a, j: f"<think>{a}\n{REFLECTION_MARKER}\nNo errors.</think>\n```json\n{j}\n```",
              st.text(max_size=50), st.lists(day_dicts, max_size=8).map(json.dumps)),
))
def test_parser_and_reward_never_raise(tp_db, base, text):
    """Beyond not raising: the verdict is consistent with what was parsed, and the reward follows it."""
    parsed = parse_output(text)
    if parsed.format_ok:
        assert parsed.error is None and parsed.think is not None
        assert parsed.plan and check_plan_shape(parsed.plan) is None
    else:
        assert parsed.error
    if (text.startswith("<think>") and text.endswith("\n```") and text.count("<think>") == 1
            and text.count("</think>") == 1 and text.count("```") == 2):
        # the well-formed template around a list of (possibly broken) days: only the days can fail it
        assert parsed.format_ok == (check_plan_shape(json.loads(text.split("```json\n", 1)[1][:-4])) is None)
    cfg = RewardConfig()
    reward = compute_rewards(BatchChecker(tp_db), [base[0][0]], [text], cfg)[0]
    assert reward.format_ok == parsed.format_ok
    if not parsed.format_ok:
        assert reward.total == cfg.format_penalty and reward.error == parsed.error
    else:
        assert reward.reflection == (cfg.reflection_bonus if parsed.has_reflection else -cfg.reflection_bonus)
        assert 0.0 <= reward.commonsense <= 1.0 and 0.0 <= reward.hard <= 1.0
        assert reward.total == pytest.approx(reward.commonsense + reward.hard + reward.reflection)


def test_strict_checks_flight_dates_and_three_day_destination(tp_db, base):
    import copy

    checker = BatchChecker(tp_db)
    q, p = base[0]
    moved = copy.deepcopy(q)
    moved.date = ["2022-03-10", "2022-03-11", "2022-03-12"]
    assert checker.check_one(moved, p).final_pass  # Q6: officially dates are ignored
    r = checker.check_one(moved, p, strict=True)
    assert not r.commonsense["is_valid_information_in_sandbox"]
    other = copy.deepcopy(q)
    other.dest = "Pensacola"
    assert checker.check_one(other, p).final_pass  # Q7
    assert not checker.check_one(other, p, strict=True).commonsense["is_reasonable_visiting_city"]
