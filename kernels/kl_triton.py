"""Triton version of kernels.kl.clipped_policy_objective: one elementwise kernel each way.

The torch reference runs ~15 elementwise ops, each a full read and write of [B, T] tensors plus
autograd buffers; here the forward reads the inputs once and writes the loss (plus ratio, clip flags,
IS weight and KL, which the statistics need), and the backward recomputes everything from the inputs.
Formulas: see the kernels.kl module docstring.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from kernels.common import K3_LOG_RATIO_BOUND, KL_KINDS, policy_stats

BLOCK = 1024


@triton.jit
def _policy_terms(logp_ptr, old_ptr, adv_ptr, mask_ptr, ref_ptr, sampling_ptr, offsets, in_range,
                  ratio_low, ratio_high, is_cap,
                  HAS_REF: tl.constexpr, HAS_SAMPLING: tl.constexpr, HAS_CAP: tl.constexpr):
    valid = (tl.load(mask_ptr + offsets, mask=in_range, other=0.0) != 0) & in_range
    logp = tl.where(valid, tl.load(logp_ptr + offsets, mask=in_range, other=0.0).to(tl.float32), 0.0)
    old = tl.where(valid, tl.load(old_ptr + offsets, mask=in_range, other=0.0).to(tl.float32), 0.0)
    adv = tl.where(valid, tl.load(adv_ptr + offsets, mask=in_range, other=0.0).to(tl.float32), 0.0)
    ref = tl.zeros_like(logp)
    if HAS_REF:
        ref = tl.where(valid, tl.load(ref_ptr + offsets, mask=in_range, other=0.0).to(tl.float32), 0.0)
    weight = tl.full(logp.shape, 1.0, tl.float32)
    raw_weight = weight
    if HAS_SAMPLING:
        sampling = tl.where(valid, tl.load(sampling_ptr + offsets, mask=in_range, other=0.0).to(tl.float32), 0.0)
        raw_weight = tl.exp(old - sampling)
        weight = raw_weight
        if HAS_CAP:
            weight = tl.minimum(raw_weight, is_cap)
    ratio = tl.exp(logp - old)
    clipped_low = (adv < 0) & (ratio < ratio_low) & valid
    clipped_high = (adv > 0) & (ratio > ratio_high) & valid
    return valid, logp, adv, ref, ratio, weight, raw_weight, clipped_low, clipped_high


@triton.jit
def _policy_fwd_kernel(logp_ptr, old_ptr, adv_ptr, mask_ptr, ref_ptr, sampling_ptr,
                       loss_ptr, ratio_ptr, flags_ptr, weight_ptr, kl_ptr,
                       n, ratio_low, ratio_high, kl_coef, is_cap, k3_bound,
                       HAS_REF: tl.constexpr, KL_KIND: tl.constexpr, HAS_SAMPLING: tl.constexpr,
                       HAS_CAP: tl.constexpr, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    in_range = offsets < n
    valid, logp, adv, ref, ratio, weight, raw_weight, clipped_low, clipped_high = _policy_terms(
        logp_ptr, old_ptr, adv_ptr, mask_ptr, ref_ptr, sampling_ptr, offsets, in_range,
        ratio_low, ratio_high, is_cap, HAS_REF, HAS_SAMPLING, HAS_CAP)
    clipped_ratio = tl.minimum(tl.maximum(ratio, ratio_low), ratio_high)
    loss = -tl.minimum(ratio * adv, clipped_ratio * adv) * weight
    if KL_KIND > 0:
        diff = logp - ref
        if KL_KIND == 1:
            kl = diff
        elif KL_KIND == 2:
            kl = 0.5 * diff * diff
        else:
            log_ratio = tl.minimum(tl.maximum(-diff, -k3_bound), k3_bound)  # see K3_LOG_RATIO_BOUND
            kl = tl.exp(log_ratio) - log_ratio - 1.0
        loss += kl_coef * kl
        tl.store(kl_ptr + offsets, kl, mask=in_range)
    loss = tl.where(valid, loss, 0.0)
    tl.store(loss_ptr + offsets, loss.to(loss_ptr.dtype.element_ty), mask=in_range)
    tl.store(ratio_ptr + offsets, ratio, mask=in_range)
    flags = clipped_low.to(tl.int8) + 2 * clipped_high.to(tl.int8) + 4 * (raw_weight > weight).to(tl.int8)
    tl.store(flags_ptr + offsets, flags, mask=in_range)
    tl.store(weight_ptr + offsets, weight, mask=in_range)


@triton.jit
def _policy_bwd_kernel(grad_out_ptr, logp_ptr, old_ptr, adv_ptr, mask_ptr, ref_ptr, sampling_ptr, grad_logp_ptr,
                       n, ratio_low, ratio_high, kl_coef, is_cap, k3_bound,
                       HAS_REF: tl.constexpr, KL_KIND: tl.constexpr, HAS_SAMPLING: tl.constexpr,
                       HAS_CAP: tl.constexpr, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    in_range = offsets < n
    valid, logp, adv, ref, ratio, weight, raw_weight, clipped_low, clipped_high = _policy_terms(
        logp_ptr, old_ptr, adv_ptr, mask_ptr, ref_ptr, sampling_ptr, offsets, in_range,
        ratio_low, ratio_high, is_cap, HAS_REF, HAS_SAMPLING, HAS_CAP)
    grad = tl.where(clipped_low | clipped_high, 0.0, -adv * ratio) * weight
    if KL_KIND == 1:
        grad += kl_coef
    elif KL_KIND == 2:
        grad += kl_coef * (logp - ref)
    elif KL_KIND == 3:
        # Outside the clamp the KL term is constant in logp (torch.clamp passes gradient at the bound).
        log_ratio = ref - logp
        inside = (log_ratio >= -k3_bound) & (log_ratio <= k3_bound)
        grad += tl.where(inside, kl_coef * (1.0 - tl.exp(tl.minimum(log_ratio, k3_bound))), 0.0)
    upstream = tl.load(grad_out_ptr + offsets, mask=in_range, other=0.0).to(tl.float32)
    grad = tl.where(valid, grad * upstream, 0.0)
    tl.store(grad_logp_ptr + offsets, grad.to(grad_logp_ptr.dtype.element_ty), mask=in_range)


class _TritonPolicyObjective(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logp, old_logp, advantages, mask, ref_logp, sampling_logp, settings):
        n = logp.numel()
        loss = torch.empty_like(logp)
        ratio = torch.empty(logp.shape, dtype=torch.float32, device=logp.device)
        weight = torch.empty_like(ratio)
        kl = torch.empty_like(ratio) if settings["KL_KIND"] > 0 else None
        flags = torch.empty(logp.shape, dtype=torch.int8, device=logp.device)
        dummy = logp
        _policy_fwd_kernel[(triton.cdiv(n, BLOCK),)](
            logp, old_logp, advantages, mask,
            ref_logp if ref_logp is not None else dummy, sampling_logp if sampling_logp is not None else dummy,
            loss, ratio, flags, weight, kl if kl is not None else ratio,
            n, *settings["scalars"], BLOCK=BLOCK, **settings["flags"], KL_KIND=settings["KL_KIND"],
        )
        ctx.save_for_backward(logp, old_logp, advantages, mask, ref_logp, sampling_logp)
        ctx.settings = settings
        ctx.mark_non_differentiable(ratio, flags, weight)
        if kl is not None:
            ctx.mark_non_differentiable(kl)
        return loss, ratio, flags, weight, kl

    @staticmethod
    def backward(ctx, grad_loss, *unused):
        logp, old_logp, advantages, mask, ref_logp, sampling_logp = ctx.saved_tensors
        settings = ctx.settings
        grad_logp = torch.empty_like(logp)
        n = logp.numel()
        _policy_bwd_kernel[(triton.cdiv(n, BLOCK),)](
            grad_loss.contiguous(), logp, old_logp, advantages, mask,
            ref_logp if ref_logp is not None else logp, sampling_logp if sampling_logp is not None else logp,
            grad_logp, n, *settings["scalars"], BLOCK=BLOCK, **settings["flags"], KL_KIND=settings["KL_KIND"],
        )
        return grad_logp, None, None, None, None, None, None


def triton_clipped_policy_objective(logp, old_logp, advantages, mask, *, clip_low, clip_high, ref_logp=None,
                                    kl_kind=None, kl_coef=0.0, is_cap=None, sampling_logp=None):
    """Inputs are assumed validated by kernels.kl.clipped_policy_objective."""
    shape = logp.shape
    use_kl = ref_logp is not None and kl_kind is not None

    def flat(t):
        return None if t is None else t.detach().reshape(-1).contiguous()

    settings = {
        "scalars": (1.0 - clip_low, 1.0 + clip_high, float(kl_coef), float(is_cap) if is_cap is not None else 0.0,
                    K3_LOG_RATIO_BOUND),
        "flags": {"HAS_REF": use_kl, "HAS_SAMPLING": sampling_logp is not None, "HAS_CAP": is_cap is not None},
        "KL_KIND": KL_KINDS.index(kl_kind) + 1 if use_kl else 0,
    }
    loss, ratio, flags, weight, kl = _TritonPolicyObjective.apply(
        logp.reshape(-1).contiguous(), flat(old_logp), flat(advantages), flat(mask).float(),
        flat(ref_logp) if use_kl else None, flat(sampling_logp), settings,
    )
    mask_f = (mask != 0).reshape(-1).float()
    stats = policy_stats(mask_f, ratio, (flags & 1) != 0, (flags & 2) != 0, kl,
                   weight if sampling_logp is not None else None, (flags & 4) != 0)
    return loss.reshape(shape), stats
