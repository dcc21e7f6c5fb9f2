"""The scripted teacher at its defaults: the MAS's final answers beat its Reasoner's first answers.

That margin is configured, not discovered: the Reasoner errs on ``mistake_rate`` of the feasible
queries, both Judges miss an error with probability ``0.3 * 0.4``, and the Reflector repairs a flagged
error with ``reflector_fix_rate``. So the team beating its Reasoner by 10 points checks the wiring
(verdicts reach the Reflector, its plan becomes the final answer), not the method; the Judges'
rates themselves are measured separately below.
"""

from __future__ import annotations

import asyncio
import copy
import math

from imagine.config import load_config
from imagine.io import read_jsonl
from imagine.mas.backends.base import ChatContext
from imagine.mas.backends.scripted import ScriptedBackend, ScriptedTeacher
from imagine.mas.config import MasConfig
from imagine.mas.dataset import build_dataset
from imagine.mas.pipeline import ERRORS_EXIST, judge_verdict
from imagine.mas.report import render, summarize
from imagine.mas.runner import load_queries, read_traces, run_sync
from imagine.tasks.travelplanner.evaluator.checks_batch import BatchChecker
from imagine.tasks.travelplanner.generation.solver import solve
from imagine.tasks.travelplanner.parse import parse_output
from imagine.tasks.travelplanner.schema import query_from_record


def test_mas_final_pass_clearly_beats_first_answer(world, world_db, tmp_path, capsys):
    """Follows from the config (module docstring); it fails when the pipeline loses the reflection."""
    db_dir, queries_path, _ = world
    cfg = load_config(MasConfig, "configs/mas/scripted.yaml", [f"db={db_dir}"])
    queries = load_queries(queries_path)
    summary = run_sync(cfg, world_db, queries, tmp_path)
    assert summary.finished == len(queries) and summary.failed == 0
    traces = read_traces(tmp_path)
    first = sum(t["eval"]["first"]["final_pass"] for t in traces.values()) / len(traces)
    final = sum(t["eval"]["final"]["final_pass"] for t in traces.values()) / len(traces)
    with capsys.disabled():
        print(f"\nscripted teacher on {len(traces)} generated queries: Reasoner first answer final pass "
              f"{first:.1%}, MAS final answer {final:.1%}")
    assert final >= first + 0.10

    # the two-judge rule matters: 'either flags' catches more real errors than each judge alone
    wrong = [t for t in traces.values() if not t["eval"]["first"]["final_pass"]]
    caught = [sum(t["judges"][j] == "Errors exist." for t in wrong) for j in range(2)]
    either = sum("Errors exist." in t["judges"] for t in wrong)
    assert either > max(caught)
    # a reflection happens exactly when a judge flags
    assert all(t["reflected"] == ("Errors exist." in t["judges"]) for t in traces.values())

    n = build_dataset(traces, [qid for qid, _ in queries], tmp_path / "sft.jsonl")
    rows = read_jsonl(tmp_path / "sft.jsonl")
    assert n == len(rows) > 0
    for row in rows:
        parsed = parse_output(row["messages"][-1]["content"])
        assert parsed.format_ok and parsed.has_reflection, parsed.error
        assert ("No errors." in parsed.think) != row["meta"]["reflected"]
    text = render(summarize(tmp_path))
    assert f"{100 * first:.1f}% | {100 * final:.1f}% |" in text  # the report's Final Pass Rate row


def test_judges_miss_and_false_alarm_at_their_configured_rates(world, world_db):
    """Each Judge, asked through its backend and read by the pipeline's verdict parser, misses a real
    error at its own configured rate and flags a correct plan at the false-alarm rate.

    The verdicts are seeded by query id, so the trials are many ids for a few plans; the tolerance is
    4.5 binomial standard deviations, tighter than the gap between the two Judges' rates, so judges
    swapped by index would fail too."""
    db_dir, _, records = world
    cfg = load_config(MasConfig, "configs/mas/scripted.yaml", [f"db={db_dir}"]).scripted
    miss_rates = cfg.judge_miss_rates
    assert len(miss_rates) == 2 and miss_rates[0] != miss_rates[1]
    teacher = ScriptedTeacher(world_db, cfg, seed=0)
    backend = ScriptedBackend(teacher, "judge")
    checker = BatchChecker(world_db)

    cases = []  # (query, plan, plan_is_wrong)
    for rec in records:
        if rec["feasible"] is not True:
            continue
        q = query_from_record(rec)
        good = solve(world_db, q).plan
        bad = copy.deepcopy(good)
        night = next(d for d in bad if d["accommodation"] != "-")
        night["accommodation"] = "-"
        assert checker.check_one(q, good).final_pass and not checker.check_one(q, bad).final_pass
        cases += [(rec["id"], q, good, False), (rec["id"], q, bad, True)]
        if len(cases) == 10:
            break
    trials = 600  # per plan and judge: 3000 wrong and 3000 right plans per judge

    async def verdicts(judge: int, wrong: bool) -> list[str]:
        replies = [await backend.chat([], context=ChatContext(role="judge", query_id=f"{qid}/{k}", query=q,
                                                              db=world_db, plan=plan, judge_index=judge))
                   for qid, q, plan, is_wrong in cases if is_wrong == wrong for k in range(trials)]
        return [judge_verdict(r.text)[0] for r in replies]

    def check(rate: float, flags: list[str], *, flagged_means_hit: bool) -> None:
        n = len(flags)
        observed = sum((f == ERRORS_EXIST) != flagged_means_hit for f in flags) / n
        tolerance = 4.5 * math.sqrt(rate * (1 - rate) / n)
        assert abs(observed - rate) <= tolerance, (rate, observed, n)

    for judge, rate in enumerate(miss_rates):
        check(rate, asyncio.run(verdicts(judge, wrong=True)), flagged_means_hit=True)
        check(cfg.judge_false_alarm_rate, asyncio.run(verdicts(judge, wrong=False)), flagged_means_hit=False)
