"""Per-token KL estimators and the clipped policy-gradient objective, fused into one elementwise pass.

KL estimators of KL(pi || pi_ref) from a sample drawn from pi, with log r = ref_logp - logp (Schulman,
"Approximating KL divergence"):
    k1 = -log r = logp - ref_logp                 unbiased, high variance, can be negative
    k2 = (log r)^2 / 2                            biased, low variance, always >= 0
    k3 = r - 1 - log r                            unbiased, low variance, always >= 0 (GRPO's choice)
Gradients w.r.t. logp: k1 -> 1, k2 -> logp - ref_logp, k3 -> 1 - r.
k3 is computed on log r clamped to +-K3_LOG_RATIO_BOUND (kernels.common, 10): exp of a large log-ratio
overflows and its gradient 1 - r swamps the update; outside the bound the k3 term has no gradient.

Clipped objective per token (minimised; the caller picks the token / sequence aggregation):
    ratio   rho  = exp(logp - old_logp)
    pg           = -min(rho * A, clip(rho, 1 - clip_low, 1 + clip_high) * A)
                   (clip_high > clip_low is DAPO's "clip higher")
    is weight w  = min(exp(old_logp - sampling_logp), is_cap), a constant (no gradient). It corrects
                   the mismatch between the inference engine that sampled (sampling_logp) and the
                   trainer's recomputation (old_logp): truncated importance sampling. w = 1 without
                   sampling_logp; no cap when is_cap is None.
    loss         = mask * (w * pg + kl_coef * k(logp, ref_logp))
Gradient w.r.t. logp: mask * (-w * A * rho, or 0 where clipping binds, + kl_coef * dk/dlogp).
Clipping binds where A > 0 and rho > 1 + clip_high, or A < 0 and rho < 1 - clip_low (strict, so at
the boundary the gradient still flows, as with torch.minimum/clamp).

Masked positions give exactly 0 loss and 0 gradient even if their inputs are garbage (inf/NaN).
The Triton kernel (kernels.kl_triton) implements the same contract in one read of the inputs.
"""

from __future__ import annotations

import torch

from kernels.common import K3_LOG_RATIO_BOUND, KL_KINDS, check_policy_inputs, policy_stats
from kernels.dispatch import resolve_backend


def kl_penalty(logp: torch.Tensor, ref_logp: torch.Tensor, kind: str, *, mask: torch.Tensor | None = None):
    """Per-token KL estimate (see module docstring); differentiable in logp. Zero where mask is 0."""
    if kind not in KL_KINDS:
        raise ValueError(f"kl kind must be one of {KL_KINDS}, got {kind!r}")
    if logp.shape != ref_logp.shape:
        raise ValueError(f"logp shape {tuple(logp.shape)} != ref_logp shape {tuple(ref_logp.shape)}")
    ref_logp = ref_logp.detach()
    if kind == "k1":
        kl = logp - ref_logp
    elif kind == "k2":
        kl = 0.5 * (logp - ref_logp) ** 2
    else:
        log_ratio = (ref_logp - logp).clamp(-K3_LOG_RATIO_BOUND, K3_LOG_RATIO_BOUND)
        kl = torch.exp(log_ratio) - log_ratio - 1.0
    if mask is not None:
        kl = torch.where(mask.bool(), kl, 0.0)
    return kl


def clipped_policy_objective_reference(logp, old_logp, advantages, mask, *, clip_low, clip_high, ref_logp=None,
                                       kl_kind=None, kl_coef=0.0, is_cap=None, sampling_logp=None):
    """Plain-torch autograd version; the contract the Triton kernel matches."""
    check_policy_inputs(logp, old_logp, advantages, mask, clip_low, clip_high, ref_logp, kl_kind, kl_coef,
                         is_cap, sampling_logp)
    valid = mask.bool()
    mask_f = valid.float()
    # Masked positions may hold garbage: replace before exp so no inf*0 NaN reaches the gradient.
    safe_logp = torch.where(valid, logp, 0.0)
    old = torch.where(valid, old_logp.detach(), 0.0)
    adv = torch.where(valid, advantages.detach(), 0.0)
    ratio = torch.exp(safe_logp - old)
    clipped_ratio = ratio.clamp(1.0 - clip_low, 1.0 + clip_high)
    pg = -torch.minimum(ratio * adv, clipped_ratio * adv)
    clipped_low = (adv < 0) & (ratio < 1.0 - clip_low) & valid
    clipped_high = (adv > 0) & (ratio > 1.0 + clip_high) & valid

    is_weight = is_capped = None
    if sampling_logp is not None:
        raw = torch.exp(old - torch.where(valid, sampling_logp.detach(), 0.0))
        is_weight = raw if is_cap is None else raw.clamp(max=is_cap)
        is_capped = raw > is_weight
        pg = pg * is_weight

    loss = pg
    kl = None
    if ref_logp is not None and kl_kind is not None:
        kl = kl_penalty(safe_logp, torch.where(valid, ref_logp.detach(), 0.0), kl_kind)
        if kl_coef != 0.0:
            loss = loss + kl_coef * kl
    loss = torch.where(valid, loss, 0.0)
    return loss, policy_stats(mask_f, ratio, clipped_low, clipped_high, kl, is_weight, is_capped)


def clipped_policy_objective(logp, old_logp, advantages, mask, *, clip_low, clip_high, ref_logp=None,
                             kl_kind=None, kl_coef=0.0, is_cap=None, sampling_logp=None, backend=None):
    """Per-token PPO/GRPO loss (see module docstring) and a dict of detached masked-mean statistics.

    Stats: ratio_mean, clip_fraction, clip_low_fraction, clip_high_fraction, plus kl_mean when
    ref_logp and kl_kind are given, and is_weight_mean / is_capped_fraction with sampling_logp.
    The call is one "clipped_policy_objective" range in torch.profiler traces.
    """
    with torch.profiler.record_function("clipped_policy_objective"):
        chosen = resolve_backend(logp, backend)
        if chosen == "triton":
            from kernels.kl_triton import triton_clipped_policy_objective

            check_policy_inputs(logp, old_logp, advantages, mask, clip_low, clip_high, ref_logp, kl_kind, kl_coef,
                                is_cap, sampling_logp)
            return triton_clipped_policy_objective(
                logp, old_logp, advantages, mask, clip_low=clip_low, clip_high=clip_high, ref_logp=ref_logp,
                kl_kind=kl_kind, kl_coef=kl_coef, is_cap=is_cap, sampling_logp=sampling_logp,
            )
        return clipped_policy_objective_reference(
            logp, old_logp, advantages, mask, clip_low=clip_low, clip_high=clip_high, ref_logp=ref_logp,
            kl_kind=kl_kind, kl_coef=kl_coef, is_cap=is_cap, sampling_logp=sampling_logp,
        )
