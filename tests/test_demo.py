"""`imagine demo` end to end at toy size: every stage runs through its real entry point, the summary
compares the three systems on held-out queries, and a rerun resumes instead of redoing work."""

from __future__ import annotations

import subprocess
import sys

import orjson
import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow

TOY = ["--queries", "10", "--eval-queries", "3", "--sft-steps", "2", "--student-max-tokens", "8",
       "--engine", "torch", "--sft-set", "log.wandb_mode=disabled", "--sft-set", "model.train_tokenizer_vocab_size=400",
       "--sft-set", "train.samples_per_step=2"]


def demo(out, *extra):
    return subprocess.run([sys.executable, "-m", "imagine", "demo", "--out", str(out), *TOY, *extra],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_demo_runs_every_stage_then_resumes(tmp_path):
    out = tmp_path / "demo"
    first = demo(out)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    summary = (out / "summary.md").read_text()
    assert "| Final Pass Rate |" in summary and "student (SFT)" in summary
    student = orjson.loads((out / "student_metrics.json").read_bytes())
    assert student["queries"] == 3
    rollouts = (out / "student_rollouts.jsonl").read_text().splitlines()
    assert len(rollouts) == 3
    assert (out / "sft" / "hf" / "config.json").exists()
    teacher = (out / "mas" / "sft.jsonl").read_text().splitlines()
    assert 0 < len(teacher) <= 10

    again = demo(out)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("done already") == 8
    assert len((out / "student_rollouts.jsonl").read_text().splitlines()) == 3  # not appended twice


def test_demo_failed_stage_names_itself_and_exits_nonzero(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("no_such_key: 1\n")
    proc = demo(tmp_path / "demo", "--mas-config", str(bad))
    assert proc.returncode != 0
    assert "no_such_key" in proc.stderr and "stage 'teacher' failed" in proc.stderr
