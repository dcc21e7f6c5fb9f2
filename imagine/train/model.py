"""The policy as the trainers see it: a causal LM whose forward returns per-token log-probs.

The loss never materialises ``[tokens, vocab]`` logits: the forward takes the final hidden states
from the transformers base model (``lm.model``) and feeds them with the LM-head weight to the fused
linear log-prob kernel. Doing it inside one ``nn.Module.forward`` matters under FSDP2: the root
module's hooks all-gather the embedding/LM-head parameters (tied or not) for exactly this call.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from kernels import fused_linear_logprob


def pick_attn_implementation(requested: str, device: torch.device) -> str:
    """flash-attn when installed on CUDA, SDPA otherwise (unless the config names one)."""
    if requested != "auto":
        return requested
    if device.type == "cuda":
        try:
            import flash_attn  # noqa: F401

            return "flash_attention_2"
        except ImportError:
            pass
    return "sdpa"


class CausalLMLogProb(nn.Module):
    """Wraps a transformers ``*ForCausalLM``; ``forward`` gives log p(target) per position, flattened."""

    def __init__(self, lm: nn.Module):
        super().__init__()
        self.lm = lm

    @property
    def decoder_layers(self) -> nn.ModuleList:
        return self.lm.model.layers

    def forward(self, input_ids: torch.Tensor, position_ids: torch.Tensor, targets: torch.Tensor,
                temperature: float = 1.0, return_entropy: bool = False, segment_ids: torch.Tensor | None = None):
        """``segment_ids``: None for causal rows, or ``[B, T]`` for rows that pack a prompt with several
        completions (GRPO's shared prompts; layout in ``rollout_batch``)."""
        hidden = self.lm.model(input_ids=input_ids, position_ids=position_ids, use_cache=False,
                               attention_mask=self._attention_mask(segment_ids)).last_hidden_state
        head = self.lm.get_output_embeddings()
        logprobs, entropy = fused_linear_logprob(
            hidden.reshape(-1, hidden.shape[-1]), head.weight, targets.reshape(-1),
            bias=getattr(head, "bias", None), temperature=temperature, return_entropy=return_entropy,
        )
        # Flat [B*T] outputs: returning views of them would hide FSDP's pre-backward hook from
        # in-place ops a caller might apply.
        return logprobs, entropy

    def use_shared_prompt_attention(self) -> None:
        """Packed rows through :mod:`shared_prompt_attention` (only the pairs that count) instead of
        SDPA over a dense mask; ordinary rows still go to SDPA. Eager attention keeps its dense mask."""
        from imagine.train import shared_prompt_attention

        if self.lm.config._attn_implementation == "sdpa":
            shared_prompt_attention.register()
            self.lm.config._attn_implementation = shared_prompt_attention.NAME

    def _attention_mask(self, segment_ids: torch.Tensor | None) -> torch.Tensor | None:
        """transformers takes a 4-D mask as given: SDPA reads a bool one, eager attention adds it."""
        from imagine.train import shared_prompt_attention as spa

        if segment_ids is None:
            return None
        impl = self.lm.config._attn_implementation
        if impl == spa.NAME:
            return spa.layout_mask(segment_ids)
        allowed = spa.dense_mask(segment_ids)[:, None]
        if impl == "sdpa":
            return allowed
        if impl == "eager":
            return torch.zeros(allowed.shape, device=allowed.device).masked_fill(~allowed,
                                                                                 torch.finfo(torch.float32).min)
        raise ValueError(f"packed rows need SDPA or eager attention, not {impl} (model.attn_implementation)")


def compile_decoder_layers(model: CausalLMLogProb) -> None:
    """``torch.compile`` each decoder layer's ``forward``, not the module call.

    The module call runs FSDP2's pre/post-forward hooks (all-gather, reshard) and transformers'
    gradient-checkpointing wrapper; they stay eager, and the compiled region is exactly the layer's
    math, where inductor fuses the norms, rotary embedding, activation and dtype casts around the
    matmuls. ``dynamic=True``: micro-batches change width every step, and one graph serves them all.
    """
    for layer in model.decoder_layers:
        layer.forward = torch.compile(layer.forward, dynamic=True)


def load_causal_lm(path: str | Path, *, attn_implementation: str):
    """A Hugging Face causal-LM directory, in the dtype it was saved in (cast later, layer by layer)."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(path), dtype="auto", attn_implementation=attn_implementation)


def count_parameters(module: nn.Module) -> int:
    """Parameters of the full (unsharded) model; tied weights counted once."""
    seen = set()
    total = 0
    for p in module.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
    return total
