"""Full, Hugging Face-named tensors out of the FSDP2-sharded policy, for ``engine.sync_weights``.

The trainer wraps the transformers model as ``CausalLMLogProb.lm``, so its parameter names carry an
``lm.`` prefix the checkpoint (and so vLLM) does not know. Each parameter is all-gathered on its own
(``full_tensor()``), handed to the engine and dropped, so the sync never holds a second full copy of
the model: at 8B that would be 16 GB more per GPU. Every rank must drain the generator, in the same
order, because each all-gather is a collective.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.distributed.tensor import DTensor

PREFIX = "lm."


def hf_named_tensors(model: torch.nn.Module, *, dtype: torch.dtype | None = None) -> Iterator[tuple[str, torch.Tensor]]:
    """Yield ``(hf_name, full_tensor)`` for every weight; ``lm_head.weight`` too when tied."""
    tied = bool(getattr(model.lm.config, "tie_word_embeddings", False))
    seen_head = False
    embedding = None
    for name, tensor in model.state_dict().items():
        if not name.startswith(PREFIX):
            raise ValueError(f"weight sync: parameter {name!r} is outside the wrapped model ({PREFIX!r} prefix)")
        full = tensor.full_tensor() if isinstance(tensor, DTensor) else tensor
        full = full.detach()
        if dtype is not None:
            full = full.to(dtype)
        hf_name = name[len(PREFIX):]
        seen_head |= hf_name == "lm_head.weight"
        if tied and hf_name == "model.embed_tokens.weight":
            embedding = full
        yield hf_name, full
    if tied and not seen_head:
        if embedding is None:
            raise ValueError("weight sync: tied embeddings but no model.embed_tokens.weight")
        yield "lm_head.weight", embedding
