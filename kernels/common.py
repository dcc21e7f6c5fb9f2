"""What the torch references and the Triton kernels share, so that neither imports the other.

Each `*_triton.py` file imports only this module (and triton); `logprob.py` / `kl.py` import this
module and load their Triton twin lazily after `kernels.dispatch` picked it. Constants that define the
contract (ignored targets, the k3 clamp) and the tiling arithmetic live here once.
"""

from __future__ import annotations

import math

import torch

# Targets equal to this value have no loss: logprob 0, entropy 0, no gradient. The same value as
# torch's cross_entropy default and imagine.train.data.IGNORE_INDEX (the data side keeps its own
# constant so that the data layer does not import the kernels).
IGNORE_INDEX = -100

# Upper bound on the logits held at once by the tiled paths (elements). 2**24 fp32 values are 64 MiB:
# big enough that matmuls run at full BLAS / cuBLAS speed, small next to N x V for any realistic batch.
TILE_ELEMENTS = 2**24
# Vocabulary tiles are a multiple of this many columns (aligned matmul operands, at least one full
# Triton block on CPU and GPU).
TILE_ALIGN = 64

# k3 = r - 1 - log r with log r = ref_logp - logp is evaluated on log r clamped to +-this bound.
# Why: exp(log r) overflows fp16 beyond ~11 and fp32 beyond ~88, and well before that its gradient
# (1 - r) dwarfs the policy-gradient term, so a single token the reference finds far likelier than
# the policy (a sampling-engine glitch, a stale reference) can blow up a whole update. Beyond the
# bound the penalty is constant and the KL term passes no gradient (torch.clamp's derivative), which
# both backends implement. 10 keeps r <= e^10 ~ 22,000, finite in every float dtype we train in.
K3_LOG_RATIO_BOUND = 10.0

KL_KINDS = ("k1", "k2", "k3")


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """fp32 for everything after the matmul, fp64 for fp64 inputs so that gradcheck works."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def vocab_tile_width(rows: int, vocab: int) -> int:
    """Columns per vocabulary tile so that [rows, tile] holds about TILE_ELEMENTS logits.

    Rounded up to TILE_ALIGN (so at least TILE_ALIGN columns), never wider than the vocabulary. Used by
    the torch path (rows = tokens per chunk) and the Triton backward (rows = all tokens).
    """
    width = max(TILE_ALIGN, TILE_ELEMENTS // max(rows, 1))
    width = -(-width // TILE_ALIGN) * TILE_ALIGN
    return min(vocab, width)


def check_logprob_inputs(hidden, weight, targets, bias, temperature) -> None:
    if hidden.dim() < 1 or weight.dim() != 2:
        raise ValueError(f"expected hidden [..., H] and weight [V, H], got {tuple(hidden.shape)} and {tuple(weight.shape)}")
    if hidden.shape[-1] != weight.shape[1]:
        raise ValueError(f"hidden size mismatch: hidden [..., {hidden.shape[-1]}] vs weight {tuple(weight.shape)}")
    if tuple(targets.shape) != tuple(hidden.shape[:-1]):
        raise ValueError(f"targets shape {tuple(targets.shape)} must equal hidden.shape[:-1] = {tuple(hidden.shape[:-1])}")
    if targets.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"targets must be an integer tensor of token ids, got {targets.dtype}")
    if hidden.dtype != weight.dtype:
        raise ValueError(f"hidden dtype {hidden.dtype} differs from weight dtype {weight.dtype}")
    if bias is not None and (bias.shape != (weight.shape[0],) or bias.dtype != weight.dtype):
        raise ValueError(f"bias must be [{weight.shape[0]}] of dtype {weight.dtype}, got {tuple(bias.shape)} {bias.dtype}")
    if not (temperature > 0 and math.isfinite(temperature)):
        raise ValueError(f"temperature must be a positive finite number, got {temperature}")


def upstream_grads(grad_logprobs, grad_entropy, entropy, valid, acc_dtype):
    """The backward prologue of every log-prob autograd Function: upstream gradients in acc_dtype,
    zero on rows without a target (whatever the caller sent there), contiguous for the kernels.

    Returns (g_logp, g_ent), either None when that output received no gradient; both None means the
    backward has nothing to do.
    """
    g_logp = g_ent = None
    if grad_logprobs is not None:
        g_logp = grad_logprobs.to(acc_dtype).masked_fill(~valid, 0.0).contiguous()
    if grad_entropy is not None and entropy is not None:
        g_ent = grad_entropy.to(acc_dtype).masked_fill(~valid, 0.0).contiguous()
    return g_logp, g_ent


def check_policy_inputs(logp, old_logp, advantages, mask, clip_low, clip_high, ref_logp, kl_kind, kl_coef,
                        is_cap, sampling_logp) -> None:
    for name, tensor in (("old_logp", old_logp), ("advantages", advantages), ("mask", mask),
                         ("ref_logp", ref_logp), ("sampling_logp", sampling_logp)):
        if tensor is not None and tensor.shape != logp.shape:
            raise ValueError(f"{name} shape {tuple(tensor.shape)} != logp shape {tuple(logp.shape)}")
    if not (0 <= clip_low < 1) or clip_high < 0:
        raise ValueError(f"need 0 <= clip_low < 1 and clip_high >= 0, got clip_low={clip_low}, clip_high={clip_high}")
    if kl_coef != 0.0 and (ref_logp is None or kl_kind is None):
        raise ValueError("kl_coef != 0 needs both ref_logp and kl_kind")
    if kl_kind is not None and kl_kind not in KL_KINDS:
        raise ValueError(f"kl_kind must be one of {KL_KINDS} or None, got {kl_kind!r}")
    if is_cap is not None and is_cap <= 0:
        raise ValueError(f"is_cap must be positive, got {is_cap}")


def policy_stats(mask_f, ratio, clipped_low, clipped_high, kl, is_weight, is_capped):
    """Masked means, as detached 0-d tensors (no host sync: the caller decides when to .item())."""
    denom = mask_f.sum().clamp_min(1.0)

    def masked_mean(x):
        return (torch.where(mask_f > 0, x.float(), 0.0).sum() / denom).detach()

    stats = {
        "ratio_mean": masked_mean(ratio),
        "clip_low_fraction": masked_mean(clipped_low),
        "clip_high_fraction": masked_mean(clipped_high),
        "clip_fraction": masked_mean(clipped_low | clipped_high),
    }
    if kl is not None:
        stats["kl_mean"] = masked_mean(kl)
    if is_weight is not None:
        stats["is_weight_mean"] = masked_mean(is_weight)
        stats["is_capped_fraction"] = masked_mean(is_capped)
    return stats


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """||actual - expected|| / ||expected|| in fp64: a whole-tensor measure, because gradients have
    entries near zero where an elementwise relative tolerance means nothing. The tests and
    `make gpu-check` judge the kernels with it."""
    return ((actual.double() - expected.double()).norm() / expected.double().norm().clamp_min(1e-12)).item()
