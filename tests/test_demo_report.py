"""The demo's report from hand-made stage outputs, in seconds: the results.json contract, the ablation
kept apart from the five models, plots only where there is data, and the honesty arithmetic."""

from __future__ import annotations

import argparse

import orjson
import pytest

from imagine.demo import scale_of
from imagine.demo.evaluate import honesty
from imagine.demo.report import write_report
from imagine.tasks.travelplanner.evaluator.metrics import METRIC_NAMES


def entry(final: float, **extra) -> dict:
    return {**{k: final for k in METRIC_NAMES}, "tokens_per_answer": 10.0, "seconds_per_answer": 0.1,
            "no_errors_share": None, "no_errors_honest": None, **extra}


def write_lines(path, records):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))


def test_report_keeps_the_contract_and_plots_what_it_has(tmp_path):
    write_lines(tmp_path / "heldout.jsonl", [{"id": i} for i in range(3)])
    for m, v in {"base": 0.0, "sft": 0.3, "grpo": 0.6, "reasoner": 0.4, "teacher": 0.5,
                 "grpo_no_reflection_bonus": 0.55}.items():
        (tmp_path / "eval").mkdir(exist_ok=True)
        (tmp_path / "eval" / f"{m}.json").write_bytes(orjson.dumps(entry(v)))
    write_lines(tmp_path / "sft" / "metrics.jsonl", [{"step": s, "loss": 5.0 / s} for s in range(1, 6)])
    write_lines(tmp_path / "grpo" / "metrics.jsonl",
                [{"step": s, "reward": 0.1 * s, "reward/format_ok": 1.0, "reward/no_errors": 0.5,
                  "rollout/Final Pass Rate": 0.2, "rollout/No errors. is a final pass": None} for s in (1, 2, 2)])
    results = write_report(tmp_path)
    on_disk = orjson.loads((tmp_path / "results.json").read_bytes())
    assert on_disk == results and results["heldout_queries"] == 3
    import torch
    assert results["environment"]["packages"]["torch"] == torch.__version__ and "cores" in results["environment"]["cpu"]
    assert list(results["models"]) == ["base", "sft", "grpo", "reasoner", "teacher"]
    assert results["ablation"]["grpo_no_reflection_bonus"]["Final Pass Rate"] == 0.55
    report = (tmp_path / "report.md").read_text()
    assert "| SFT+GRPO | " in report and "| SFT+GRPO, reflection bonus 0 |" in report
    plots = sorted(p.name for p in (tmp_path / "plots").iterdir())
    # No grpo_ablation/metrics.jsonl: its curves are left out rather than drawn empty.
    assert plots == ["grpo_reward.png", "grpo_rollouts.png", "heldout_final_pass.png", "sft_loss.png"]


def test_honesty_counts_only_answers_that_claim_no_errors():
    assert honesty([True, True, False, False], [True, False, True, False]) == \
        {"no_errors_share": 0.5, "no_errors_honest": 0.5}
    assert honesty([False, False], [True, True]) == {"no_errors_share": 0.0, "no_errors_honest": None}


def test_quick_preset_and_flags_resolve_into_one_scale():
    args = argparse.Namespace(quick=True, queries=None, eval_queries=7, copy_steps=None, sft_steps=None,
                              grpo_from_step=None, grpo_steps=None, student_max_tokens=None, sft_config="", sft_set=[])
    scale = scale_of(args)
    assert scale.heldout_queries == 7 and scale.grpo_from_step <= scale.sft_steps
    with pytest.raises(ValueError, match="grpo_from_step"):
        scale_of(argparse.Namespace(**{**vars(args), "grpo_from_step": scale.sft_steps + 1}))
    # the warm restart must fall inside the warm-up
    assert 0 < scale.copy_restart_at < scale.copy_steps
    with pytest.raises(ValueError, match="copy_restart_at"):
        scale_of(argparse.Namespace(**{**vars(args), "copy_steps": scale.copy_restart_at}))
    with pytest.raises(ValueError, match="copy_steps must be positive"):
        scale_of(argparse.Namespace(**{**vars(args), "copy_steps": 0}))
