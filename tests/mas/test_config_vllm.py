"""Shipped configs load; bad ones fail naming the key; the offline vLLM backend answers a chat."""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path

import pytest

from imagine.config import ConfigError, load_config
from imagine.mas.backends.vllm_local import split_reasoning
from imagine.mas.config import MasConfig, RoleConfig

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "configs" / "mas").glob("*.yaml")))
def test_shipped_configs_load(name):
    cfg = load_config(MasConfig, ROOT / "configs" / "mas" / name)
    assert len(cfg.judges) == 2
    for role in (cfg.reasoner, *cfg.judges, cfg.reflector):
        assert role.api_key_env == "" or role.api_key_env.isupper()  # a variable name, never a key


def test_bad_configs_name_the_key():
    with pytest.raises(ConfigError, match="exactly two judges"):
        load_config(MasConfig, None, ["judges=[{backend: scripted}]"])
    with pytest.raises(ConfigError, match="base_url"):
        load_config(MasConfig, None, ["reasoner.backend=openai"])
    with pytest.raises(ConfigError, match="unknown mistake kinds"):
        load_config(MasConfig, None, ["scripted.mistake_mix={typo: 1.0}"])


def test_split_reasoning():
    assert split_reasoning("<think>a b</think>\n[1]") == ("[1]", "a b")
    assert split_reasoning("[1]") == ("[1]", None)


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vLLM not installed")
def test_vllm_backend_chats_with_a_tiny_local_model(tmp_path, monkeypatch):
    from imagine.mas.backends.vllm_local import VLLMLocalBackend
    from tests.helpers import tiny_model_and_tokenizer

    monkeypatch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # in-process engine, as rollout.py runs it
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "2")
    model, tok = tiny_model_and_tokenizer(tmp_path)
    tok.chat_template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
                         "{% endfor %}<|im_start|>assistant\n")
    tok.save_pretrained(tmp_path / "m")
    role = RoleConfig(backend="vllm", model=str(tmp_path / "m"), max_tokens=8, temperature=0.0,
                      vllm_args={"dtype": "float32", "max_model_len": 256, "enforce_eager": True})
    backend = VLLMLocalBackend(role)
    prompts = ["from Rockford to", "Flight Number:", "<think>plan"]

    async def main():
        try:
            return await asyncio.gather(*(backend.chat([{"role": "user", "content": p}]) for p in prompts))
        finally:
            await backend.aclose()

    results = asyncio.run(main())
    assert len(results) == 3 and backend.generate_calls == 1  # concurrent chats went in one batch
    # Greedy, so each reply must be the model's own continuation of its own prompt: transformers'
    # greedy decode of the same chat, with vLLM's detokenization (special tokens skipped). A reply
    # routed to the wrong chat in the batch, or a wrong prompt, fails here.
    import torch

    for prompt, result in zip(prompts, results):
        ids = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                      tokenize=True)
        ids = list(ids["input_ids"]) if hasattr(ids, "keys") else list(ids)
        with torch.no_grad():
            out = model.generate(torch.tensor([ids]), max_new_tokens=8, do_sample=False,
                                 pad_token_id=tok.pad_token_id)[0, len(ids):].tolist()
        assert result.usage == {"prompt_tokens": len(ids), "completion_tokens": len(out)}
        assert (result.text, result.reasoning) == split_reasoning(tok.decode(out, skip_special_tokens=True))
