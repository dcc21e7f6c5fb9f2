"""Rollout engines: sampling log-probs agree with teacher-forced log-probs; in-place weight sync takes effect."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from rollout import SamplingConfig, TorchEngine, _full_state


def tiny_model_and_tokenizer(tmp_path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>", "<|im_end|>", "<think>", "</think>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(["from Rockford to St. Petersburg", "Flight Number: F3573659", "<think>plan</think>"] * 20,
                            trainer)
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    cfg = Qwen3Config(vocab_size=len(hf_tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=1, head_dim=32, tie_word_embeddings=True,
                      eos_token_id=hf_tok.eos_token_id, pad_token_id=hf_tok.pad_token_id)
    torch.manual_seed(0)
    model = Qwen3ForCausalLM(cfg).float()
    model.save_pretrained(tmp_path / "m")
    hf_tok.save_pretrained(tmp_path / "m")
    return model, hf_tok


def teacher_forced(model, prompt, completion):
    ids = torch.tensor([prompt + completion])
    with torch.no_grad():
        logits = model(ids).logits[0, len(prompt) - 1:-1].float()
    return torch.log_softmax(logits, -1).gather(-1, torch.tensor(completion)[:, None])[:, 0]


def test_torch_engine_logprobs_and_sync(tmp_path):
    model, tok = tiny_model_and_tokenizer(tmp_path)
    engine = TorchEngine(model, tok, batch_size=3)
    prompts = [tok.encode("from Rockford to"), tok.encode("Flight Number: F35")]  # different lengths: left padding
    out = engine.generate(prompts, SamplingConfig(n=2, temperature=1.0, max_tokens=12, seed=1))
    assert len(out) == 4 and [r.prompt_index for r in out] == [0, 0, 1, 1]
    for r in out:
        ref = teacher_forced(model, r.prompt_ids, r.completion_ids)
        torch.testing.assert_close(torch.tensor(r.logprobs), ref, atol=1e-4, rtol=1e-4)
        assert r.text == tok.decode(r.completion_ids, skip_special_tokens=False)
    again = engine.generate(prompts, SamplingConfig(n=2, temperature=1.0, max_tokens=12, seed=1))
    assert [r.completion_ids for r in again] == [r.completion_ids for r in out]  # seeded
    new_state = {k: v * 0 for k, v in _full_state(model).items()}
    engine.sync_weights(new_state.items())
    flat = engine.generate(prompts[:1], SamplingConfig(n=1, max_tokens=4, seed=1))[0]
    assert all(abs(lp + torch.log(torch.tensor(float(len(tok)))).item()) < 1e-4 for lp in flat.logprobs)


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vLLM not installed (make install)")
def test_vllm_engine_matches_transformers_after_sync(tmp_path):
    from rollout import VLLMEngine

    model, tok = tiny_model_and_tokenizer(tmp_path)
    engine = VLLMEngine(str(tmp_path / "m"), dtype="float32", max_model_len=256)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.3)
    engine.sync_weights(_full_state(model).items())
    out = engine.generate([tok.encode("from Rockford to")], SamplingConfig(n=2, max_tokens=10, seed=0))
    for r in out:
        ref = teacher_forced(model, r.prompt_ids, r.completion_ids)
        torch.testing.assert_close(torch.tensor(r.logprobs), ref, atol=1e-4, rtol=1e-4)
