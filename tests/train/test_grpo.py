"""End-to-end ``train.py grpo`` on CPU: learning, exact resume, and the FSDP2 -> engine weight sync.

The letters toy task (reward = share of one letter in the completion) goes through the same task
seam as TravelPlanner, so a tiny random model shows learning in a few dozen steps.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from imagine.rollout import has_vllm
from tests.conftest import ROOT
from tests.helpers import tiny_model_and_tokenizer
from tests.train.launch import ENV, kill_after_checkpoint, metrics, run_train, run_worker, train_command

pytestmark = pytest.mark.slow

# Same-machine, same-seed reruns are bit-identical on CPU; the tolerance only absorbs JSON rounding.
RESUME_RTOL = 1e-9
# Trainer (FSDP2, fused log-prob kernel) vs engine (transformers forward) after a sync, fp32.
SYNC_ATOL = 1e-4


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("grpo_model")
    tiny_model_and_tokenizer(base)
    return base / "m"


def letters_args(out_dir, model_dir, *extra):
    return ["--config", "configs/grpo/tiny_cpu.yaml", f"out_dir={out_dir}", f"model.path={model_dir}",
            "task.name=letters", "task.options={}", "rollout.group_size=8", "rollout.prompts_per_step=4",
            "rollout.max_tokens=8", "rollout.max_model_len=256", "train.lr=3e-3", "train.warmup_steps=0",
            "log.wandb_mode=disabled", *extra]


def run(args, nproc=1):
    return run_train("grpo", args, nproc)


def test_two_process_grpo_raises_mean_reward(tmp_path, model_dir):
    engine = "vllm" if has_vllm() else "torch"
    out = tmp_path / "learn"
    run(letters_args(out, model_dir, f"rollout.engine={engine}", "train.max_steps=30", "checkpoint.every=0",
                     "checkpoint.export_hf=false"), nproc=2)
    rewards = [metrics(out)[s]["reward"] for s in range(1, 31)]
    first, last = sum(rewards[:5]) / 5, sum(rewards[-5:]) / 5
    # Measured: ~0.015 -> ~0.10. Each step averages 32 completions, so noise is a few thousandths.
    assert last > first + 0.03, rewards
    rec = metrics(out)[30]
    # The engine samples in the update's precision (rollout.dtype=auto), fp32 here, so only kernels
    # differ: measured ~2.5e-7 nat per token with vLLM. Sampling in vLLM's default bf16 gave ~1e-3.
    assert rec["rollouts"] == 32 and rec["logp_mismatch_mean"] < 1e-5
    for key in ("entropy", "clip_fraction", "is_weight_mean", "time/sync", "sample_tokens_per_s", "adv_std"):
        assert key in rec, key


def test_killed_and_resumed_run_reproduces_the_uninterrupted_one(tmp_path, model_dir):
    common = ["rollout.engine=torch", "train.max_steps=6", "checkpoint.every=3", "checkpoint.export_hf=false",
              "train.mini_batches=2", "loss.kl_coef=0.05"]  # old and reference log-probs on the path too
    whole = tmp_path / "whole"
    run(letters_args(whole, model_dir, *common))
    killed = tmp_path / "killed"
    kill_after_checkpoint(train_command("grpo", letters_args(killed, model_dir, *common), 1),
                          killed / "checkpoints" / "step_00000003")
    assert not (killed / "checkpoints" / "step_00000006").exists()  # killed, not finished
    log = run(letters_args(killed, model_dir, *common))
    assert "resumed from" in log.stdout + log.stderr
    a, b = metrics(whole), metrics(killed)
    for step in (4, 5, 6):
        for key in ("reward", "loss", "grad_norm", "kl_mean", "adv_abs_mean"):
            assert b[step][key] == pytest.approx(a[step][key], rel=RESUME_RTOL, abs=1e-12), (step, key)


def test_shared_prompts_train_like_one_row_per_completion(tmp_path, model_dir):
    """``train.share_prompts`` packs each prompt once with its completions: only the update's
    arithmetic order changes, so the same seeds sample the same rollouts and the losses agree.
    Two ranks, so the packed attention also runs under FSDP2 with filler micro-batches."""
    common = ["rollout.engine=torch", "train.max_steps=3", "checkpoint.every=0", "checkpoint.export_hf=false",
              "train.mini_batches=2", "loss.kl_coef=0.05", "loss.name=gspo", "train.micro_batch_size=5"]
    runs = {}
    for share in ("false", "true"):
        run(letters_args(tmp_path / share, model_dir, *common, f"train.share_prompts={share}"), nproc=2)
        runs[share] = metrics(tmp_path / share)
    for step in (1, 2, 3):
        plain, shared = runs["false"][step], runs["true"][step]
        assert shared["reward"] == plain["reward"], step  # same weights to float rounding: same samples
        # (GSPO's ratio and IS means are sequence means per micro-batch, token-weighted across them,
        # so they move with how rows are grouped into micro-batches)
        for key in ("loss", "grad_norm", "kl_mean", "logp_mismatch_mean"):
            assert shared[key] == pytest.approx(plain[key], rel=1e-4, abs=1e-7), (step, key)


def test_async_rollouts_learn_and_stay_one_update_behind(tmp_path, model_dir):
    """rollout.async_steps=1: a step's batch was sampled during the previous update, so it is one
    update old; truncated IS (on by default) corrects it and the policy still learns."""
    engine = "vllm" if has_vllm() else "torch"
    common = [f"rollout.engine={engine}", "train.max_steps=30", "checkpoint.every=0", "checkpoint.export_hf=false"]
    out = tmp_path / "async"
    run(letters_args(out, model_dir, "rollout.async_steps=1", *common))
    rewards = [metrics(out)[s]["reward"] for s in range(1, 31)]
    assert sum(rewards[-5:]) / 5 > sum(rewards[:5]) / 5 + 0.03, rewards
    recs = metrics(out)
    # Step 1 samples with the start weights either way (kernel-level mismatch, fp32 on both sides); from
    # step 2 on the trainer is one update ahead of the engine: 0.13 falling to 0.005 as the lr decays.
    kernels = recs[1]["logp_mismatch_mean"]
    assert kernels < 1e-5
    assert all(recs[s]["logp_mismatch_mean"] > 3 * kernels for s in range(2, 31))
    assert sum(recs[s]["logp_mismatch_mean"] for s in range(2, 31)) / 29 > 10 * kernels


def test_async_run_killed_and_resumed_reproduces_the_uninterrupted_one(tmp_path, model_dir):
    """The checkpoint keeps the batch sampled for the next step: its weights no longer exist."""
    common = ["rollout.engine=torch", "rollout.async_steps=1", "train.max_steps=6", "checkpoint.every=3",
              "checkpoint.export_hf=false"]
    whole = tmp_path / "whole"
    run(letters_args(whole, model_dir, *common))
    state = json.loads((whole / "checkpoints" / "step_00000003" / "trainer_state.json").read_text())
    assert len(state["pending"]["rounds"][0]["rollouts"]) == 32 and state["pending"]["times"]["rollout"] > 0
    killed = tmp_path / "killed"
    kill_after_checkpoint(train_command("grpo", letters_args(killed, model_dir, *common), 1),
                          killed / "checkpoints" / "step_00000003")
    assert not (killed / "checkpoints" / "step_00000006").exists()  # killed, not finished
    run(letters_args(killed, model_dir, *common))
    a, b = metrics(whole), metrics(killed)
    for step in (4, 5, 6):
        for key in ("reward", "loss", "grad_norm", "logp_mismatch_mean", "is_weight_mean"):
            assert b[step][key] == pytest.approx(a[step][key], rel=RESUME_RTOL, abs=1e-12), (step, key)
    # The restored batch keeps the time it was sampled in: no tokens/s divided by zero after a resume.
    assert b[4]["time/rollout"] > 0 and b[4]["sample_tokens_per_s"] < 1e7


@pytest.mark.parametrize("extra, nproc, message", [
    (["rollout.async_steps=2"], 1, "rollout.async_steps must be 0 (on-policy) or 1"),
    (["rollout.async_steps=1", "rollout.sleep_between_steps=true"], 1, "sleep_between_steps"),
    (["rollout.async_steps=1", "loss.is_cap=null"], 1, "loss.is_cap=null"),
    (["rollout.async_steps=1", "rollout.engine=torch"], 2, "rollout.async_steps=1 runs in one process"),
])
def test_bad_async_settings_exit_2_naming_the_key(tmp_path, model_dir, extra, nproc, message):
    args = letters_args(tmp_path / "x", model_dir, *extra)
    proc = subprocess.run(train_command("grpo", args, nproc), cwd=ROOT, env=ENV, capture_output=True, text=True,
                          timeout=300)
    # one process exits 2 like every config error; torchrun reports a failed rank as 1
    assert proc.returncode == (2 if nproc == 1 else 1) and message in proc.stderr, proc.stderr[-3000:]


def test_fsdp_policy_syncs_into_the_engine_on_every_rank(tmp_path, model_dir):
    run_worker("tests.train.grpo_sync_worker", model_dir, tmp_path)
    lines = [json.loads(p.read_text()) for p in sorted(tmp_path.glob("rank*.json"))]
    assert sorted(x["rank"] for x in lines) == [0, 1]
    for x in lines:
        assert x["gap"] < SYNC_ATOL, x
        assert x["moved"] > 100 * SYNC_ATOL, x  # the step changed the engine's answers


def test_bad_loss_name_exits_2_naming_the_key(tmp_path, model_dir):
    args = letters_args(tmp_path / "x", model_dir, "loss.name=grpoo")
    proc = subprocess.run(train_command("grpo", args, 1), cwd=ROOT, env=ENV, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and "loss" in proc.stderr and "grpoo" in proc.stderr, proc.stderr[-2000:]


def test_list_losses_prints_the_registry():
    proc = subprocess.run([sys.executable, "train.py", "grpo", "--list-losses"], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    names = [line.split()[0] for line in proc.stdout.splitlines()]
    assert names == ["cispo", "dapo", "dr_grpo", "grpo", "gspo"]


@pytest.mark.parametrize("precision, dtype, expected", [
    ("fp32", "auto", "float32"), ("bf16", "auto", "bfloat16"), ("fp32", "bfloat16", "bfloat16"),
    ("bf16", "float32", "float32")])
def test_engine_samples_in_the_update_precision_unless_told_otherwise(monkeypatch, model_dir, precision, dtype,
                                                                    expected):
    """vLLM's own ``auto`` turns an fp32 checkpoint into a bf16 engine: the run must not inherit that."""
    import torch

    import imagine.rollout.vllm_engine as vllm_engine
    from imagine.config import load_config
    from imagine.train import grpo
    from imagine.train.config import GRPOConfig
    from imagine.train.dist import DistInfo

    seen = {}
    monkeypatch.setattr(vllm_engine, "VLLMEngine", lambda model_dir, **kw: seen.update(kw))
    cfg = load_config(GRPOConfig, ROOT / "configs/grpo/tiny_cpu.yaml",
                      [f"model.path={model_dir}", "rollout.max_model_len=256", f"train.precision={precision}",
                       f"rollout.dtype={dtype}"])
    grpo.build_engine(cfg, DistInfo(0, 1, 0, torch.device("cpu")))
    assert seen["dtype"] == expected


@pytest.mark.parametrize("extra, message", [
    (("rollout.dtype=fp16",), "rollout.dtype"),
    # checked before vLLM starts, whose own refusal is a page of pydantic
    (("rollout.engine=vllm", "rollout.max_model_len=100000"), "rollout.max_model_len: 100000 is longer than")])
def test_bad_engine_settings_exit_2_naming_the_key(tmp_path, model_dir, extra, message):
    args = letters_args(tmp_path / "o", model_dir, *extra)
    proc = subprocess.run(train_command("grpo", args, 1), cwd=ROOT, env=ENV, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr[-2000:]
