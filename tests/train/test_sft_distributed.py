"""End-to-end ``train.py sft`` runs on CPU/gloo with a tiny Qwen3 model.

Three runs on the same data and seed share one module fixture (process start-up dominates):

- A: ``torchrun --nproc_per_node=2``, 6 steps, checkpoints at 3 and 6, HF export;
- B: one process, same config;
- C: ``torchrun --nproc_per_node=2`` started fresh from A's step-3 checkpoint, run to step 6;
- K: A's command killed (SIGKILL) once its step-3 checkpoint exists, then started again as is
  (``checkpoint.resume=auto``);
- elastic (only for the tests that ask for it): A's step-3 checkpoint resumed on one process, B's
  on two (DCP reshards model and optimizer; the sampler and RNG states carry over).

Each step holds 6 conversations in micro-batches of at most 128 tokens, so gradient accumulation,
uneven micro-batch counts across ranks and the global token normalisation are all exercised.
"""

from __future__ import annotations

import json

import pytest
import torch

from tests.train.launch import kill_after_checkpoint, metrics, run_train, train_command

pytestmark = pytest.mark.slow

# Same data and seed on 1 vs 2 processes: the sums run in another order, nothing else differs.
FSDP_VS_SINGLE_RTOL = 1e-5


def _overrides(out_dir, data, tokenizer):
    return [
        f"out_dir={out_dir}", f"data.train_path={data}", f"model.tokenizer={tokenizer}",
        "data.max_seq_len=128", "train.tokens_per_micro_batch=128", "train.samples_per_step=6",
        "train.max_steps=6", "train.lr=3e-3", "train.warmup_steps=1", "checkpoint.every=3",
        "data.tokenizer_backend=tiktoken",
    ]


def _run(args, nproc):
    return run_train("sft", args, nproc, timeout=400)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, sft_data, tiny_tokenizer_dir):
    base = tmp_path_factory.mktemp("sftruns")
    config = ["--config", "configs/sft/tiny_cpu.yaml"]
    a, b, c = base / "a", base / "b", base / "c"
    _run(config + _overrides(a, sft_data, tiny_tokenizer_dir), nproc=2)
    _run(config + _overrides(b, sft_data, tiny_tokenizer_dir), nproc=1)
    resume = a / "checkpoints" / "step_00000003"
    log_c = _run(config + _overrides(c, sft_data, tiny_tokenizer_dir) + [f"checkpoint.resume={resume}"], nproc=2)

    k = base / "k"
    args_k = config + _overrides(k, sft_data, tiny_tokenizer_dir)
    kill_after_checkpoint(train_command("sft", args_k, 2), k / "checkpoints" / "step_00000003")
    killed_steps = sorted(metrics(k))
    log_k = _run(args_k, nproc=2)
    return {"a": a, "b": b, "c": c, "log_c": log_c.stdout, "k": k, "log_k": log_k.stdout,
            "killed_steps": killed_steps}


def test_two_process_loss_goes_down(runs):
    m = metrics(runs["a"])
    assert sorted(m) == [1, 2, 3, 4, 5, 6]
    assert m[6]["loss"] < m[1]["loss"] - 0.5, [m[s]["loss"] for s in m]
    assert all(r["micro_batches"] >= 2 for r in m.values())  # accumulation really happened


def test_fsdp_losses_equal_single_process(runs):
    two, one = metrics(runs["a"]), metrics(runs["b"])
    for step in range(1, 7):
        assert two[step]["target_tokens"] == one[step]["target_tokens"]
        assert two[step]["loss"] == pytest.approx(one[step]["loss"], rel=FSDP_VS_SINGLE_RTOL), step
        assert two[step]["grad_norm"] == pytest.approx(one[step]["grad_norm"], rel=1e-4), step


def test_resume_reproduces_steps_exactly(runs):
    assert "resumed from" in runs["log_c"]
    full, resumed = metrics(runs["a"]), metrics(runs["c"])
    assert sorted(resumed) == [4, 5, 6]
    for step in (4, 5, 6):
        for key in ("loss", "grad_norm", "lr", "target_tokens"):
            assert resumed[step][key] == full[step][key], (step, key)


def test_killed_run_resumes_from_its_last_checkpoint(runs):
    assert 6 not in runs["killed_steps"], "the run finished before it could be killed"
    assert "resumed from" in runs["log_k"] and "step_00000003" in runs["log_k"]
    full, after_kill = metrics(runs["a"]), metrics(runs["k"])  # the last record of a step wins
    for step in range(1, 7):
        assert after_kill[step]["loss"] == full[step]["loss"], step
        assert after_kill[step]["grad_norm"] == full[step]["grad_norm"], step


def test_checkpoints_are_complete_and_atomic(runs):
    ckpts = sorted(p.name for p in (runs["a"] / "checkpoints").iterdir())
    assert ckpts == ["step_00000003", "step_00000006"]  # no leftover temp directories
    state = json.loads((runs["a"] / "checkpoints" / "step_00000006" / "trainer_state.json").read_text())
    assert state["step"] == 6 and state["world_size"] == 2 and state["sampler"]["offset"] == 36 % 24
    assert {f"rng_rank{r}.pt" for r in range(2)} <= {p.name for p in (runs["a"] / "checkpoints" / "step_00000006").iterdir()}


def test_export_loads_in_transformers_with_the_trainers_logits(runs, tiny_tokenizer_dir):
    import torch.distributed.checkpoint as dcp
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from imagine.models.tiny import TinyModelSpec, build_tiny_model
    from imagine.train.model import CausalLMLogProb

    torch.set_num_threads(1)
    exported = AutoModelForCausalLM.from_pretrained(str(runs["a"] / "hf"), dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(str(runs["a"] / "hf"))
    assert tok.chat_template == AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir)).chat_template

    # the trainer's weights at step 6, read back from its sharded checkpoint
    trainer = CausalLMLogProb(build_tiny_model(TinyModelSpec(), vocab_size=exported.config.vocab_size, seed=123))
    state = {"model": trainer.state_dict()}
    dcp.load(state, checkpoint_id=str(runs["a"] / "checkpoints" / "step_00000006"))
    trainer.load_state_dict(state["model"])
    trainer.eval()
    ids = torch.tensor([tok.apply_chat_template([{"role": "user", "content": "Plan a 3-day trip."}],
                                                add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]])
    with torch.no_grad():
        torch.testing.assert_close(exported(ids).logits, trainer.lm(ids).logits, rtol=0, atol=1e-6)
        fresh = CausalLMLogProb(build_tiny_model(TinyModelSpec(), vocab_size=exported.config.vocab_size, seed=123))
        assert (fresh.lm(ids).logits - exported(ids).logits).abs().max() > 1e-3  # the comparison can fail


@pytest.fixture(scope="module")
def elastic(runs, tmp_path_factory, sft_data, tiny_tokenizer_dir):
    base = tmp_path_factory.mktemp("elastic")
    config = ["--config", "configs/sft/tiny_cpu.yaml"]
    out = {}
    for name, source, nproc in (("2to1", runs["a"], 1), ("1to2", runs["b"], 2)):
        resume = source / "checkpoints" / "step_00000003"
        log = _run(config + _overrides(base / name, sft_data, tiny_tokenizer_dir) + [f"checkpoint.resume={resume}"],
                   nproc=nproc)
        out[name] = (base / name, log.stdout)
    return out


@pytest.mark.parametrize("name", ["2to1", "1to2"])
def test_checkpoint_resumes_on_another_world_size(runs, elastic, name):
    out_dir, log = elastic[name]
    assert "resumed from" in log
    resumed = metrics(out_dir)
    assert sorted(resumed) == [4, 5, 6]
    # the uninterrupted runs on either world size: they differ only in summation order
    for full in (metrics(runs["a"]), metrics(runs["b"])):
        for step in (4, 5, 6):
            assert resumed[step]["target_tokens"] == full[step]["target_tokens"], step
            assert resumed[step]["lr"] == full[step]["lr"], step
            assert resumed[step]["loss"] == pytest.approx(full[step]["loss"], rel=FSDP_VS_SINGLE_RTOL), step
            assert resumed[step]["grad_norm"] == pytest.approx(full[step]["grad_norm"], rel=1e-4), step
    state = json.loads((out_dir / "checkpoints" / "step_00000006" / "trainer_state.json").read_text())
    assert state["world_size"] == (1 if name == "2to1" else 2)
    assert state["sampler"] == json.loads((runs["a"] / "checkpoints" / "step_00000006" / "trainer_state.json")
                                          .read_text())["sampler"]


def test_rng_state_follows_rank_modulo_the_saved_world_size(runs):
    import random

    from imagine.train.checkpoint import rng_file_for

    ckpt = runs["a"] / "checkpoints" / "step_00000003"  # written by 2 ranks
    assert rng_file_for(ckpt, 0, 2).name == "rng_rank0.pt"
    assert rng_file_for(ckpt, 1, 2).name == "rng_rank1.pt"
    assert rng_file_for(ckpt, 3, 2).name == "rng_rank1.pt"  # 2 -> 4 ranks
    assert rng_file_for(ckpt, 0, None) is None
    single = runs["b"] / "checkpoints" / "step_00000003"
    assert rng_file_for(single, 1, 1).name == "rng_rank0.pt"  # 1 -> 2 ranks: rank 1 continues rank 0's stream

    # and load_checkpoint applies it on one process from the two-process checkpoint
    from imagine.models.tiny import TinyModelSpec, build_tiny_model
    from imagine.train.checkpoint import load_checkpoint
    from imagine.train.dist import init_distributed, teardown
    from imagine.train.fsdp import shard_model
    from imagine.train.model import CausalLMLogProb
    from imagine.train.optim import build_optimizer

    vocab = json.loads((runs["a"] / "hf" / "config.json").read_text())["vocab_size"]
    torch.manual_seed(12345)
    random.seed(12345)
    info = init_distributed("cpu")
    try:
        model = shard_model(CausalLMLogProb(build_tiny_model(TinyModelSpec(), vocab_size=vocab, seed=1)), info,
                            precision="fp32", activation_checkpointing=False, cpu_offload=False)
        optimizer = build_optimizer(model, lr=1e-3, weight_decay=0.0, betas=(0.9, 0.95), eps=1e-8)
        saved = torch.load(ckpt / "rng_rank0.pt", weights_only=False)
        assert not torch.equal(torch.get_rng_state(), saved["torch"])
        load_checkpoint(ckpt, model, optimizer, info)
        assert torch.equal(torch.get_rng_state(), saved["torch"])
        assert random.getstate() == saved["python"]
    finally:
        teardown(info)
