"""Lean loading (meta init, FSDP2 shards filled from rank 0) gives exactly the plain load's model.

Two gloo ranks under torchrun, for a tied fp32 checkpoint and an untied bf16 one (the Qwen3-8B
case: untied head, bf16 files cast into fp32 masters); also GRPO's frozen bf16 reference model.
"""

from __future__ import annotations

import json

import pytest
import torch

from tests.helpers import tiny_model_and_tokenizer
from tests.train.launch import run_worker

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("tie,dtype", [(True, torch.float32), (False, torch.bfloat16)])
def test_lean_loading_matches_plain_load_on_every_rank(tmp_path, tie, dtype):
    model, _ = tiny_model_and_tokenizer(tmp_path, tie=tie)
    if not tie:  # an odd vocabulary: the last rank's shards of embedding and head are a row short
        model.resize_token_embeddings(model.config.vocab_size + 1 - model.config.vocab_size % 2)
        assert model.config.vocab_size % 2 == 1
    model.to(dtype).save_pretrained(tmp_path / "m")
    out = tmp_path / "out"
    out.mkdir()
    run_worker("tests.train.loading_worker", tmp_path / "m", out)
    reports = [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]
    total = sum(p.numel() for p in model.parameters())  # tied: counted once
    assert reports[0]["logprob_sum"] == reports[1]["logprob_sum"]
    for method in ("scatter", "broadcast"):
        for rep in reports:
            got = rep[method]
            assert got["same_names"] and got["dtypes"] == ["torch.float32"]
            assert got["max_param_diff"] == 0.0, (method, rep["rank"])
            assert got["max_logprob_diff"] == 0.0, (method, rep["rank"])
            assert got["inv_freq_diff"] == 0.0
            assert got["tied"] is tie and got["plain_tied"] is tie
        # each rank holds only its shards
        assert sum(rep[method]["local_numel"] for rep in reports) == total
    assert all(rep["all_grads"] for rep in reports)
    for rep in reports:
        assert rep["reference"] == {"dtypes": ["torch.bfloat16"], "frozen": True, "equal_to_plain_in_bf16": True,
                                    "buffer_dtypes": ["torch.float32"], "logprob_finite": True}


def test_trainer_setup_lean_loads_the_policy_and_reference(tmp_path, monkeypatch):
    """``train.py sft|grpo`` with ``model.path`` go through lean loading, never the full-copy load."""
    from torch.distributed.tensor import DTensor

    import imagine.train.loading as L
    import imagine.train.model as M
    from imagine.io import DataError
    from imagine.train import dist as D
    from imagine.train import setup as S
    from imagine.train.config import StepConfig

    model, tok = tiny_model_and_tokenizer(tmp_path)
    calls = []
    lean = L.load_sharded_causal_lm
    monkeypatch.setattr(L, "load_sharded_causal_lm", lambda *a, **kw: calls.append(kw) or lean(*a, **kw))
    monkeypatch.setattr(M, "load_causal_lm", lambda *a, **kw: pytest.fail("the full-copy loader ran"))
    torch.set_num_threads(1)
    info = D.init_distributed("cpu")
    try:
        tc = StepConfig(precision="fp32", device="cpu")
        t = S.make_trainable(S.build_policy(str(tmp_path / "m"), tok, info, tc, attn_implementation="sdpa"), tc, info)
        plain = dict(model.named_parameters())
        for name, p in t.model.named_parameters():
            assert isinstance(p, DTensor) and p.requires_grad and p.dtype == torch.float32
            assert torch.equal(p.full_tensor(), plain[name.removeprefix("lm.")]), name
        assert t.num_params == sum(p.numel() for p in model.parameters())
        fp32_ref = S.frozen_reference(str(tmp_path / "m"), tok, info, tc, attn_implementation="sdpa")
        bf16_ref = S.frozen_reference(str(tmp_path / "m"), tok, info, StepConfig(precision="bf16", device="cpu"),
                                      attn_implementation="sdpa")
        # the policy computes in fp32 on CPU, so the reference keeps fp32 there; bf16 only where the policy is
        assert {p.dtype for p in fp32_ref.parameters()} == {torch.float32}
        assert {p.dtype for p in bf16_ref.parameters()} == {torch.bfloat16}
        assert not any(p.requires_grad for p in [*fp32_ref.parameters(), *bf16_ref.parameters()])
        assert [(c["master_dtype"], c["requires_grad"]) for c in calls] == [
            (torch.float32, True), (torch.float32, False), (torch.bfloat16, False)]
        tok.add_tokens(["<an extra token>"])
        with pytest.raises(DataError, match="embedding only"):
            S.build_policy(str(tmp_path / "m"), tok, info, tc, attn_implementation="sdpa")
    finally:
        D.teardown(info)


def test_a_missing_model_directory_is_named_before_any_loading(tmp_path):
    # transformers would take the path for a hub repo id and complain about its form instead
    from imagine.io import DataError
    from imagine.train.setup import build_policy

    with pytest.raises(DataError, match=r"model.path .*runs/demo/warmup/hf: not a Hugging Face model directory"):
        build_policy(str(tmp_path / "runs/demo/warmup/hf"), tokenizer=None, info=None, tc=None)
