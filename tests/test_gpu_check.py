"""`make gpu-check` on a machine without a GPU, and its driver's isolation of one check from another.

The checks themselves need CUDA; what CI can prove is that the script runs nothing and exits 0
without a GPU, that a check's failure or hang becomes a row of the table instead of ending the run,
and that any failed check makes the exit status non-zero.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from imagine.bench import gpu_check
from tests.helpers import INTERPRETER_LOOPS_REASON, interpreter_loops_break

ROOT = Path(__file__).resolve().parents[1]


def test_without_a_gpu_it_says_so_runs_nothing_and_exits_0(tmp_path):
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run([sys.executable, "-m", "imagine.bench.gpu_check", "--work", str(tmp_path / "w")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "no CUDA GPU" in proc.stdout and "nothing was run" in proc.stdout
    assert not (tmp_path / "w").exists()  # no check created its scratch directory


def test_a_failing_check_does_not_hide_the_others(monkeypatch, capsys):
    ran = []

    def fake_child(name, work, limit):
        ran.append(name)
        ok = name != "sft"
        return gpu_check._result(ok, [[name, "numbers", "ok" if ok else "FAILED"]], "" if ok else "boom")

    monkeypatch.setattr(gpu_check, "gpu_available", lambda: True)
    monkeypatch.setattr(gpu_check, "run_child", fake_child)
    assert gpu_check.main([]) == 1
    out = capsys.readouterr().out
    assert ran == gpu_check.DEFAULT_CHECKS  # the opt-in ones stay out of the 10 minutes
    assert sum(gpu_check.CHECK_LIMITS[n] for n in ran) <= 600 and set(ran) < set(gpu_check.CHECKS)
    for name in ran:
        assert f"| {name} | numbers |" in out
    assert "FAILED: sft" in out and "boom" in out


def test_a_real_child_reports_its_failure_as_a_row(tmp_path):
    """The logprob check raises on a CPU machine (no CUDA device); the child still hands the parent a
    result row naming the error, with the traceback as detail."""
    result = gpu_check.run_child("logprob", tmp_path, limit=120)
    assert result["ok"] is False
    assert result["rows"][0][0] == "logprob" and result["rows"][0][2] == "ERROR"
    assert "Traceback" in result["detail"]


def test_a_hanging_child_is_killed_with_what_it_started(tmp_path):
    """A check that hangs (here: a child that started a grandchild, as sft starts train.py) is cut at
    its limit, and its whole process group goes with it, so nothing keeps the GPU busy."""
    marker = tmp_path / "grandchild.pid"
    script = ("import subprocess, sys, time; "
              f"p = subprocess.Popen(['sleep', '120']); open({str(marker)!r}, 'w').write(str(p.pid)); "
              "time.sleep(120)")
    start = time.perf_counter()
    result = gpu_check.run_child("sft", tmp_path, limit=3, command=[sys.executable, "-c", script])
    assert time.perf_counter() - start < 30
    assert result["ok"] is False and result["rows"][0][2] == "TIMEOUT"
    status = Path(f"/proc/{int(marker.read_text())}/status")
    time.sleep(0.2)
    # Gone, or a zombie waiting for whichever process adopted it to reap it: not running either way.
    assert not status.exists() or "\nState:\tZ" in status.read_text()


@pytest.mark.parametrize("name", list(gpu_check.CHECKS))
def test_every_check_has_a_time_limit_and_the_default_set_fits_ten_minutes(name):
    assert name in gpu_check.CHECK_LIMITS
    assert sum(gpu_check.CHECK_LIMITS[n] for n in gpu_check.DEFAULT_CHECKS) <= 600


def test_the_opt_in_check_runs_when_named(monkeypatch, capsys):
    ran = []
    monkeypatch.setattr(gpu_check, "gpu_available", lambda: True)
    monkeypatch.setattr(gpu_check, "run_child", lambda name, work, limit: ran.append((name, limit)) or
                        gpu_check._result(True, [[name, "numbers", "ok"]]))
    assert gpu_check.main(["--checks", "grpo_fast"]) == 0
    assert ran == [("grpo_fast", gpu_check.CHECK_LIMITS["grpo_fast"])]
    assert "train.compile=true" in gpu_check.GRPO_FAST
    assert {"rollout.enforce_eager=false", "rollout.sleep_between_steps=true"} == set(gpu_check.GRPO_FAST_VLLM)


def test_without_vllm_the_vllm_check_is_reported_as_not_run_not_as_passed(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(gpu_check.importlib.util, "find_spec", lambda name: None)
    result = gpu_check.check_vllm(tmp_path)
    assert result["skipped"] and result["rows"][0][2] == "SKIPPED"

    monkeypatch.setattr(gpu_check, "gpu_available", lambda: True)
    monkeypatch.setattr(gpu_check, "run_child", lambda name, work, limit: gpu_check.CHECKS[name](work)
                        if name == "vllm" else gpu_check._result(True, [[name, "numbers", "ok"]]))
    assert gpu_check.main(["--checks", "logprob", "vllm", "--work", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "NOT RUN: vllm" in out and "all checks passed" not in out


@pytest.mark.slow
def test_the_grpo_check_needs_nothing_but_the_repository(monkeypatch, tmp_path):
    """The check as a lent GPU machine runs it, on CPU here: the repository alone, no `runs/`, no
    ../shared (neither travels there), TorchEngine because vLLM is not there. Only the device differs."""
    monkeypatch.setattr(gpu_check, "vllm_importable", lambda: False)
    monkeypatch.setattr(gpu_check, "GRPO_COMMAND", [a if a != "train.device=cuda" else "train.device=cpu"
                                                    for a in gpu_check.GRPO_COMMAND])
    monkeypatch.setattr(gpu_check, "ROOT", ROOT)
    result = gpu_check.check_grpo(tmp_path)
    assert result["ok"], result["detail"]
    what, numbers, verdict = result["rows"][0]
    assert "TorchEngine" in what and verdict == "ok"
    assert f"{gpu_check.GRPO_STEPS} steps" in numbers and "mismatch mean" in numbers
    assert not any("runs/" in arg or "shared" in arg for arg in gpu_check.GRPO_COMMAND)


def test_a_budget_reports_the_checks_that_no_longer_fit_as_not_run_and_the_report_keeps_the_table(
        monkeypatch, capsys, tmp_path):
    """One device call can then queue the opt-in checks behind the default ones without outliving it."""
    ran = []
    monkeypatch.setattr(gpu_check, "gpu_available", lambda: True)
    monkeypatch.setattr(gpu_check, "run_child", lambda name, work, limit: ran.append(name) or
                        gpu_check._result(True, [[name, "numbers", "ok"]]))
    budget = gpu_check.CHECK_LIMITS["logprob"] + gpu_check.CHECK_LIMITS["grpo"] + 5
    report = tmp_path / "out" / "gpu_check.md"
    argv = ["--checks", "logprob", "grpo_fast", "grpo", "--budget", str(budget), "--work", str(tmp_path / "w"),
            "--report", str(report)]
    assert gpu_check.main(argv) == 0
    assert ran == ["logprob", "grpo"]  # grpo_fast's 240 s did not fit; the shorter grpo after it did
    out = capsys.readouterr().out
    assert "NOT RUN: grpo_fast" in out and "| grpo_fast |" in out and "all checks passed" not in out
    text = report.read_text()
    assert "| logprob | numbers | ok |" in text and "NOT RUN: grpo_fast" in text and "torch " in text


@pytest.mark.slow
def test_the_sft_check_trains_and_reads_its_metrics_on_a_cpu_sized_model(tmp_path):
    """The check's own plumbing (data, config, train.py, metrics), at CPU scale: on a GPU only the model
    size, the device and the precision change."""
    model = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
             "num_key_value_heads": 2, "head_dim": 16, "tie_word_embeddings": True}
    result = gpu_check.check_sft(tmp_path, model=model, steps=4, device="cpu", precision="fp32",
                                 tokens_per_micro_batch=2048)
    assert result["ok"], result["detail"]
    what, numbers, verdict = result["rows"][0]
    assert "attention sdpa" in what and numbers.startswith("4 steps, loss ") and verdict == "ok"


@pytest.mark.slow
@pytest.mark.skipif(interpreter_loops_break(), reason=INTERPRETER_LOOPS_REASON)
def test_the_logprob_check_compares_both_backends_with_naive_at_interpreter_scale(tmp_path):
    script = ("import json, pathlib; from imagine.bench import gpu_check; "
              f"r = gpu_check.check_logprob(pathlib.Path({str(tmp_path)!r}), tokens=(40,), hidden_size=32, "
              "vocab=96, device='cpu'); print(json.dumps(r))")
    env = dict(os.environ, TRITON_INTERPRET="1")
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    names = [row[0] for row in result["rows"]]
    assert names == ["logprob naive N=40", "logprob torch N=40", "logprob triton N=40"]
    # memory is not measured on CPU, so only correctness can decide here
    assert all(row[2].startswith("ok") or "memory MISSED" in row[2] for row in result["rows"][1:]), result["rows"]
    assert all("WRONG" not in row[2] for row in result["rows"])
