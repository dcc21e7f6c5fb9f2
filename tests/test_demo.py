"""`imagine demo --quick` end to end, run once: every stage through its real entry point, every output of
the contract present, the published numbers equal to what `imagine eval` computes from the published
submissions, and a rerun of a finished demo doing nothing."""

from __future__ import annotations

import subprocess
import sys

import orjson
import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow

METRICS = ("Delivery Rate", "Commonsense Constraint Micro Pass Rate", "Commonsense Constraint Macro Pass Rate",
           "Hard Constraint Micro Pass Rate", "Hard Constraint Macro Pass Rate", "Final Pass Rate")
MODELS = ("base", "sft", "grpo", "reasoner", "teacher")
STUDENTS = ("base", "sft", "grpo")


def demo(out, *extra):
    return subprocess.run([sys.executable, "-m", "imagine", "demo", "--quick", "--out", str(out), *extra],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "demo"
    proc = demo(out)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return out, proc


def test_every_artifact_exists(finished):
    out, proc = finished
    assert "== stage times: world" in proc.stdout
    results = orjson.loads((out / "results.json").read_bytes())
    n = results["heldout_queries"]
    heldout = [orjson.loads(line) for line in (out / "heldout.jsonl").read_bytes().splitlines()]
    assert n == len(heldout) > 0 and all(q["feasible"] is True for q in heldout)
    train_keys = {(q["org"], q["dest"], q["days"], tuple(q["date"]))
                  for q in map(orjson.loads, (out / "queries.jsonl").read_bytes().splitlines())}
    assert not train_keys & {(q["org"], q["dest"], q["days"], tuple(q["date"])) for q in heldout}
    assert set(results["models"]) == set(MODELS)
    for m, entry in results["models"].items():
        assert all(0.0 <= entry[k] <= 1.0 for k in METRICS), m
        assert entry["tokens_per_answer"] >= 0 and entry["seconds_per_answer"] >= 0
        assert "no_errors_share" in entry and "no_errors_honest" in entry
        rows = [orjson.loads(line) for line in (out / "eval" / f"{m}.jsonl").read_bytes().splitlines()]
        assert [r["idx"] for r in rows] == list(range(n))
        assert all(("text" if m in STUDENTS else "plan") in r for r in rows)
    for m in STUDENTS:
        assert 0.0 <= results["models"][m]["sampled_final_pass"] <= 1.0
    assert sum(results["models"][m]["tokens_per_answer"] for m in STUDENTS) > 0
    for stage in ("world", "tokenizer", "copy-data", "warmup", "warmup-restart", "sft", "grpo", "report"):
        assert f"] {stage}: " in proc.stdout, stage
    # base is the untrained init, exported before the warm-up's first step
    assert (out / "warmup" / "hf_step0" / "config.json").exists() and (out / "grpo" / "hf" / "config.json").exists()
    assert orjson.loads((out / "sft" / "config.json").read_bytes())["model"]["path"] == str(out / "warmup" / "hf")
    # the warm restart: the second warm-up stage resumed the first one's run instead of starting over
    steps = [orjson.loads(line)["step"] for line in (out / "warmup" / "metrics.jsonl").read_bytes().splitlines()]
    assert steps == list(range(1, len(steps) + 1)) and len(steps) > 2
    report = (out / "report.md").read_text()
    assert "| multi-agent teacher |" in report and "| SFT+GRPO |" in report
    for png in ("sft_loss.png", "grpo_reward.png", "grpo_rollouts.png", "heldout_final_pass.png"):
        assert (out / "plots" / png).stat().st_size > 1000, png
        assert f"plots/{png}" in report


def test_published_numbers_are_the_evaluators(finished, tmp_path):
    out, _ = finished
    results = orjson.loads((out / "results.json").read_bytes())
    for m in MODELS:
        scored = tmp_path / f"{m}.json"
        proc = subprocess.run([sys.executable, "-m", "imagine", "eval", "--db", str(out / "world"),
                               "--queries", str(out / "heldout.jsonl"), "--plans", str(out / "eval" / f"{m}.jsonl"),
                               "--json", str(scored)], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-2000:]
        official = orjson.loads(scored.read_bytes())
        for k in METRICS:
            assert results["models"][m][k] == official[k], (m, k)


def test_rerunning_a_finished_demo_does_nothing(finished):
    out, first = finished
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    again = demo(out)
    assert again.returncode == 0, again.stderr[-3000:]
    stages = first.stdout.count("== [")
    assert again.stdout.count("done already") == stages
    assert "$ " not in again.stdout
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before


def test_a_bad_config_fails_before_any_stage(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("no_such_key: 1\n")
    proc = demo(tmp_path / "demo", "--mas-config", str(bad))
    assert proc.returncode != 0 and "no_such_key" in proc.stderr
    assert "== [" not in proc.stdout


def test_a_failed_stage_names_itself_and_exits_nonzero(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("no_such_key: 1\n")
    proc = demo(tmp_path / "demo", "--sft-config", str(bad))
    assert proc.returncode != 0
    assert "no_such_key" in proc.stderr and "stage 'sft' failed" in proc.stderr
    assert (tmp_path / "demo" / ".stages" / "teacher").exists() and not (tmp_path / "demo" / ".stages" / "sft").exists()
