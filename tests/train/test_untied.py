"""Untied LM heads (Qwen3-8B has one): the fused log-prob, the HF export and the engine weight sync."""

from __future__ import annotations

import pytest
import torch

from tests.helpers import teacher_forced, tiny_model_and_tokenizer
from tests.train.launch import run_worker


def test_fused_logprob_uses_the_untied_head(tmp_path):
    from imagine.train.model import CausalLMLogProb

    torch.set_num_threads(1)
    model, _ = tiny_model_and_tokenizer(tmp_path, sharpen=4.0, tie=False)
    model.eval()
    head, emb = model.get_output_embeddings().weight, model.get_input_embeddings().weight
    assert head is not emb and (head - emb).abs().max() > 1e-3
    prompt, completion = [5, 17, 40, 99], [120, 7, 250, 33, 61]
    ids = torch.tensor([prompt + completion])
    wrapped = CausalLMLogProb(model)
    for temperature in (1.0, 0.7):
        want = teacher_forced(model, prompt, completion, temperature)
        targets = torch.tensor([[-100] * (len(prompt) - 1) + completion + [-100]])
        with torch.no_grad():
            got, _ = wrapped(ids, torch.arange(ids.shape[1])[None], targets, temperature=temperature)
        torch.testing.assert_close(got[len(prompt) - 1:-1], want, rtol=1e-5, atol=1e-5)
    # the gradient reaches the head and the embedding separately
    got, _ = wrapped(ids, torch.arange(ids.shape[1])[None], torch.roll(ids, -1, 1))
    got.sum().backward()
    assert head.grad is not None and emb.grad is not None and not torch.equal(head.grad, emb.grad)


@pytest.mark.slow
def test_untied_export_and_engine_sync(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from imagine.rollout import SamplingConfig, TorchEngine, full_state

    torch.set_num_threads(1)
    original, _ = tiny_model_and_tokenizer(tmp_path, sharpen=4.0, tie=False)
    run_worker("tests.train.export_worker", tmp_path / "m", tmp_path)

    exported = AutoModelForCausalLM.from_pretrained(str(tmp_path / "hf"), dtype=torch.float32).eval()
    assert exported.config.tie_word_embeddings is False
    head, emb = exported.get_output_embeddings().weight, exported.get_input_embeddings().weight
    assert head is not emb
    torch.testing.assert_close(head, original.get_output_embeddings().weight * 1.5, rtol=0, atol=0)
    torch.testing.assert_close(emb, original.get_input_embeddings().weight, rtol=0, atol=0)

    # the rollout engine, holding the pre-training weights, takes the exported ones by name
    tokenizer = AutoTokenizer.from_pretrained(str(tmp_path / "hf"))
    engine_model = AutoModelForCausalLM.from_pretrained(str(tmp_path / "m"), dtype=torch.float32).eval()
    engine = TorchEngine(engine_model, tokenizer)
    state = full_state(exported)
    assert "lm_head.weight" in state and state["lm_head.weight"].data_ptr() != state["model.embed_tokens.weight"].data_ptr()
    engine.sync_weights(state.items())
    assert engine_model.get_output_embeddings().weight is not engine_model.get_input_embeddings().weight
    for name, tensor in full_state(engine_model).items():
        torch.testing.assert_close(tensor, state[name], rtol=0, atol=0)
    prompt = [5, 17, 40, 99]
    sampling = SamplingConfig(max_tokens=6, temperature=0.7, seed=3)
    (rollout,) = engine.generate([prompt], sampling)
    want = teacher_forced(exported, prompt, rollout.completion_ids, temperature=0.7)
    torch.testing.assert_close(torch.tensor(rollout.logprobs), want, rtol=1e-4, atol=1e-4)
