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
    monkeypatch.setattr(gpu_check, "vllm_importable", lambda: False)
    result = gpu_check.check_vllm(tmp_path)
    assert result["skipped"] and result["rows"][0][2] == "SKIPPED"

    monkeypatch.setattr(gpu_check, "gpu_available", lambda: True)
    monkeypatch.setattr(gpu_check, "run_child", lambda name, work, limit: gpu_check.CHECKS[name](work)
                        if name == "vllm" else gpu_check._result(True, [[name, "numbers", "ok"]]))
    assert gpu_check.main(["--checks", "logprob", "vllm", "--work", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "gpu-check: vllm NOT RUN" in out and "NOT RUN: vllm" in out and "all checks passed" not in out
    # a run that proved nothing does not exit 0
    assert gpu_check.main(["--checks", "vllm", "--work", str(tmp_path)]) == 1
    assert "nothing ran; NOT RUN: vllm" in capsys.readouterr().out


@pytest.mark.slow
def test_the_grpo_check_needs_nothing_but_the_repository(monkeypatch, tmp_path):
    """The check as a lent GPU machine runs it, on CPU here: the repository alone, no `runs/`, no
    ../shared (neither travels there), TorchEngine because vLLM is not there. Only the device differs."""
    monkeypatch.setattr(gpu_check, "vllm_importable", lambda: False)
    monkeypatch.setattr(gpu_check, "GRPO_COMMAND", [a if a != "train.device=cuda" else "train.device=cpu"
                                                    for a in gpu_check.GRPO_COMMAND])
    result = gpu_check.check_grpo(tmp_path)
    assert result["ok"], result["detail"]
    what, numbers, verdict = result["rows"][0]
    assert "TorchEngine" in what and verdict == "ok"
    assert f"{gpu_check.GRPO_STEPS} steps" in numbers and "mismatch mean" in numbers
    # what the run loaded: the model, the outputs and the task all inside the scratch directory
    from imagine.config import load_config
    from imagine.train.config import GRPOConfig

    cfg = load_config(GRPOConfig, ROOT / "configs/grpo/tiny_cpu.yaml",
                      [*gpu_check.GRPO_COMMAND[4:], f"model.path={tmp_path / 'model'}", f"out_dir={tmp_path / 'run'}"])
    assert cfg.task.name == "letters" and cfg.task.options == {}
    assert (tmp_path / "model" / "config.json").exists() and (tmp_path / "run" / "metrics.jsonl").exists()


@pytest.mark.parametrize("check, precision", [("grpo", "fp32"), ("grpo_fast", "bf16"), ("grpo_shared", "bf16")])
def test_each_grpo_check_runs_in_the_precision_its_mismatch_bar_is_for(monkeypatch, tmp_path, check, precision):
    """The bar must follow the precision the update ran in; "auto" would be bf16 on CUDA."""
    import imagine.bench.grpo_bench as grpo_bench

    calls = []
    monkeypatch.setattr(grpo_bench, "build_letters_model", lambda work: work / "model")
    monkeypatch.setattr(gpu_check, "_train_run", lambda what, command, out_dir, bar: calls.append((command, bar)))
    gpu_check.CHECKS[check](tmp_path)
    (command, bar), = calls
    assert [a for a in command if a.startswith("train.precision=")] == [f"train.precision={precision}"]
    assert bar == gpu_check.MISMATCH_BARS[precision]


def test_a_grpo_run_whose_engine_disagrees_with_the_trainer_fails_the_check(tmp_path):
    """Weight sync and the engine's log-probs are what a GPU run of GRPO is there to prove."""
    (tmp_path / "metrics.jsonl").write_text("".join(
        json.dumps({"reward": 0.1, "loss": 0.5, "logp_mismatch_mean": mean, "logp_mismatch_max": 1.0,
                    "seconds": 2.0}) + "\n" for mean in (0.2, 0.3, 0.25)))
    result = gpu_check._train_run("grpo", [str(ROOT / "train.py"), "--help"], tmp_path,
                                  gpu_check.MISMATCH_BARS["fp32"])
    assert result["ok"] is False and result["rows"][0][2] == "engine MISMATCH"
    assert gpu_check._train_run("grpo", [str(ROOT / "train.py"), "--help"], tmp_path, 0.5)["ok"] is True


def test_the_kernels_check_fails_when_the_triton_tests_were_skipped():
    passed = "....\n75 passed, 1 skipped in 13.61s"
    launcher = "SKIPPED [1] tests/kernels/test_triton_interpreter.py:31: Triton runs in this process\n"
    assert gpu_check.kernels_result(0, launcher + passed, "", "NVIDIA H200")["ok"] is True
    skipped = "SKIPPED [6] tests/kernels/test_triton_interpreter.py:53: runs in the TRITON_INTERPRET=1 child\n"
    result = gpu_check.kernels_result(0, skipped + passed, "", "NVIDIA H200")
    assert result["ok"] is False and result["rows"][0][2] == "Triton tests SKIPPED"
    result = gpu_check.kernels_result(1, "1 failed, 74 passed in 9s", "warning: late stderr", "NVIDIA H200")
    assert result["ok"] is False and result["rows"][0][1] == "1 failed, 74 passed in 9s"
    assert gpu_check.kernels_result(0, launcher + passed, "", "no GPU")["ok"] is False


def test_a_budget_reports_the_checks_that_no_longer_fit_as_not_run_and_the_report_keeps_the_table(
        monkeypatch, capsys, tmp_path):
    """One device call can then queue the opt-in checks behind the default ones without outliving it."""
    clock = [0.0]
    ran = []

    def child(name, work, limit):
        ran.append(name)
        clock[0] += 135.0 if name == "logprob" else 10.0  # the time each check takes
        return gpu_check._result(True, [[name, "numbers", "ok"]])

    monkeypatch.setattr(gpu_check, "gpu_available", lambda: True)
    monkeypatch.setattr(gpu_check, "run_child", child)
    monkeypatch.setattr(gpu_check.time, "perf_counter", lambda: clock[0])
    report = tmp_path / "out" / "gpu_check.md"
    # 300 s: logprob (limit 150) runs and takes 135; grpo_fast's 240 > 165 left; grpo's 80 fits and takes 10;
    # grpo_shared's 80 fits the 155 left; kernels' 150 no longer fits the 145 left after it.
    argv = ["--checks", "logprob", "grpo_fast", "grpo", "grpo_shared", "kernels", "--budget", "300",
            "--work", str(tmp_path / "w"), "--report", str(report)]
    assert gpu_check.main(argv) == 0
    assert ran == ["logprob", "grpo", "grpo_shared"]
    out = capsys.readouterr().out
    assert "NOT RUN: grpo_fast, kernels" in out and "| grpo_fast |" in out and "all checks passed" not in out
    text = report.read_text()
    assert "| logprob | numbers | ok |" in text and "NOT RUN: grpo_fast" in text and "torch " in text


def test_without_a_gpu_the_report_says_nothing_ran(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_check, "gpu_available", lambda: False)
    assert gpu_check.main(["--report", str(tmp_path / "r.md")]) == 0
    assert "nothing was run" in (tmp_path / "r.md").read_text()


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
