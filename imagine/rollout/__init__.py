"""Rollout engines: sample completions, with their sampling log-probs, from the policy being trained.

Two engines share one interface (:class:`RolloutEngine`), so the GRPO loop and the sampling CLI never
care which runs: :class:`VLLMEngine` (in process, weights replaced in place) and :class:`TorchEngine`
(plain transformers, for tests and machines without vLLM).
"""

from __future__ import annotations

from imagine.rollout.base import Rollout, RolloutEngine, SamplingConfig, WeightNameError, full_state
from imagine.rollout.torch_engine import TorchEngine, pad_token_id

__all__ = ["Rollout", "RolloutEngine", "SamplingConfig", "TorchEngine", "WeightNameError", "full_state",
           "make_engine", "has_vllm", "max_positions", "pad_token_id"]


def has_vllm() -> bool:
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


def max_positions(model_dir: str) -> int:
    """The context a model was built for (its config's ``max_position_embeddings``): vLLM's default
    ``max_model_len`` for it."""
    import json
    from pathlib import Path

    cfg = json.loads((Path(model_dir) / "config.json").read_text())
    return int(cfg.get("max_position_embeddings", 4096))


def make_engine(kind: str, model_dir: str, *, dtype: str = "auto", **kw) -> RolloutEngine:
    """An engine over a Hugging Face model directory (``vllm`` or ``torch``).

    ``dtype`` names the engine's weights (``float32``, ``bfloat16``, ``float16``). ``auto`` is vLLM's
    own choice for vLLM, which downcasts fp32 checkpoints to bf16, and float32 for TorchEngine.
    """
    if kind == "vllm":
        from imagine.rollout.vllm_engine import VLLMEngine

        return VLLMEngine(model_dir, dtype=dtype, **kw)
    if kind == "torch":
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model = AutoModelForCausalLM.from_pretrained(
            model_dir, dtype=torch.float32 if dtype == "auto" else getattr(torch, dtype))
        return TorchEngine(model, AutoTokenizer.from_pretrained(model_dir), **kw)
    raise ValueError(f"unknown engine {kind!r} (vllm | torch)")
