"""Rollout engines: sampling log-probs are those of the distribution sampled, at any temperature,
before and after an in-place weight sync; seeds reproduce; a sync with wrong names is refused."""

from __future__ import annotations

import os
import random

import pytest
import torch

from imagine.rollout import SamplingConfig, TorchEngine, WeightNameError, full_state, has_vllm
from tests.helpers import teacher_forced, tiny_model_and_tokenizer

SHARPEN = 4.0  # logits a few nats apart: at T=0.7 raw and processed log-probs differ by ~0.8 nat per token


def perturbed(model, scale: float):
    """The model's full state with every weight scaled: a stand-in for an optimizer step."""
    return {k: v * scale for k, v in full_state(model).items()}


def assert_sampling_logprobs(model, rollouts, temperature):
    assert rollouts and all(r.completion_ids for r in rollouts)
    for r in rollouts:
        ref = teacher_forced(model, r.prompt_ids, r.completion_ids, temperature)
        torch.testing.assert_close(torch.tensor(r.logprobs), ref, atol=2e-4, rtol=1e-4)
    # The check has teeth: at T != 1 the raw (T=1) log-probs are far from the processed ones.
    if temperature != 1.0:
        raw = torch.cat([teacher_forced(model, r.prompt_ids, r.completion_ids, 1.0) for r in rollouts])
        got = torch.cat([torch.tensor(r.logprobs) for r in rollouts])
        assert (raw - got).abs().mean() > 0.3


def test_torch_engine_logprobs_at_temperatures_and_after_sync(tmp_path):
    model, tok = tiny_model_and_tokenizer(tmp_path, sharpen=SHARPEN)
    engine = TorchEngine(model, tok, batch_size=3)
    prompts = [tok.encode("from Rockford to"), tok.encode("Flight Number: F35")]  # different lengths: left padding
    for temperature in (1.0, 0.7):
        out = engine.generate(prompts, SamplingConfig(n=2, temperature=temperature, max_tokens=12, seed=1))
        assert [r.prompt_index for r in out] == [0, 0, 1, 1]
        assert_sampling_logprobs(model, out, temperature)
        assert all(r.text == tok.decode(r.completion_ids, skip_special_tokens=False) for r in out)
    before = engine.generate(prompts, SamplingConfig(n=2, temperature=0.7, max_tokens=12, seed=1))
    again = engine.generate(prompts, SamplingConfig(n=2, temperature=0.7, max_tokens=12, seed=1))
    assert [r.completion_ids for r in again] == [r.completion_ids for r in before]  # seeded
    # Per-prompt seeds: prompt 1 samples the same whether or not prompt 0 is in the batch.
    alone = engine.generate(prompts[1:], SamplingConfig(n=2, temperature=0.7, max_tokens=12, seed=2))
    assert [r.completion_ids for r in alone] == [r.completion_ids for r in before[2:]]

    engine.sync_weights(perturbed(model, 1.2).items())  # the engine's model is `model`: now sharper
    after = engine.generate(prompts, SamplingConfig(n=2, temperature=0.7, max_tokens=12, seed=1))
    assert_sampling_logprobs(model, after, 0.7)


def test_torch_engine_sync_refuses_unknown_and_missing_names(tmp_path):
    model, tok = tiny_model_and_tokenizer(tmp_path)
    engine = TorchEngine(model, tok)
    state = full_state(model)
    with pytest.raises(WeightNameError, match="unknown tensor 'lm.model.norm.weight'"):
        engine.sync_weights([("lm." + "model.norm.weight", state["model.norm.weight"])])
    partial = [(k, v) for k, v in state.items() if k != "model.norm.weight"]
    with pytest.raises(WeightNameError, match="missing"):
        engine.sync_weights(partial)


@pytest.fixture(scope="module", params=[True, False], ids=["eager", "compiled"])
def vllm_setup(request, tmp_path_factory):
    """Both of vLLM's execution modes (``rollout.enforce_eager``): the compiled model samples faster
    (bench/results/grpo.md) and must give the same log-probs and seeds."""
    if not has_vllm():
        pytest.skip("vLLM not installed (make install)")
    from imagine.rollout.vllm_engine import VLLMEngine

    tmp = tmp_path_factory.mktemp("vllm")
    model, tok = tiny_model_and_tokenizer(tmp, sharpen=SHARPEN)
    # A fixed KV cache (rollout.kv_cache_gib), well under the CPU default of 1 GiB: the long-prompt
    # test below must still fit its 64 sequences of 2.7k tokens.
    engine = VLLMEngine(str(tmp / "m"), dtype="float32", max_model_len=4096, kv_cache_gib=0.25,
                        enforce_eager=request.param)
    yield engine, model, tok
    engine.close()


@pytest.mark.slow
def test_vllm_engine_takes_the_kv_cache_size_it_is_given(vllm_setup):
    engine, _, _ = vllm_setup
    cache = engine.llm.llm_engine.vllm_config.cache_config
    assert cache.kv_cache_memory_bytes == 2**28
    assert os.environ.get("VLLM_CPU_KVCACHE_SPACE") is None  # the legacy variable would override it


@pytest.mark.slow
def test_vllm_engine_logprobs_at_temperatures_before_and_after_sync(vllm_setup):
    engine, model, tok = vllm_setup
    prompts = [tok.encode("from Rockford to"), tok.encode("Flight Number: F35")]
    for temperature in (1.0, 0.7):
        out = engine.generate(prompts, SamplingConfig(n=2, temperature=temperature, max_tokens=12, seed=3))
        assert_sampling_logprobs(model, out, temperature)
        # vLLM does not detokenize; the engine decodes like TorchEngine, special tokens kept
        assert all(r.text == tok.decode(r.completion_ids, skip_special_tokens=False) for r in out)
    new_state = perturbed(model, 1.2)
    engine.sync_weights(new_state.items())
    model.load_state_dict({k: v for k, v in new_state.items() if k in model.state_dict()})
    for temperature in (1.0, 0.7):
        out = engine.generate(prompts, SamplingConfig(n=2, temperature=temperature, max_tokens=12, seed=3))
        assert_sampling_logprobs(model, out, temperature)
    state = full_state(model)
    with pytest.raises(WeightNameError, match="missing"):
        engine.sync_weights([(k, v) for k, v in state.items() if k != "lm_head.weight"])
    engine.sync_weights(state.items())  # a good sync after a refused one still works


@pytest.mark.slow
def test_vllm_seeded_sampling_of_long_prompts_does_not_crash_and_reproduces(vllm_setup):
    """16 prompts of 2.7k tokens x 4 samples with seeds: on CPU a chunked prefill used to crash vLLM
    ("CPU Generator does not use offset"); the engine keeps every prefill whole instead."""
    engine, _, _ = vllm_setup
    rng = random.Random(0)
    prompts = [[rng.randrange(5, 290) for _ in range(2700)] for _ in range(16)]
    sampling = SamplingConfig(n=4, temperature=1.0, max_tokens=6, seed=11)
    first = engine.generate(prompts, sampling)
    assert len(first) == 64
    second = engine.generate(prompts, sampling)
    assert [r.completion_ids for r in second] == [r.completion_ids for r in first]
    # The 4 samples of a prompt are not copies of one another.
    assert len({tuple(r.completion_ids) for r in first[:4]}) > 1
