"""Triton implementation of kernels.logprob.fused_linear_logprob (same contract, see that module).

Forward: one fully fused kernel. Each program owns BLOCK_N tokens and walks the vocabulary in BLOCK_V
tiles; a tile of logits is produced by tl.dot over BLOCK_H slices of the hidden size (input dtype, fp32
accumulator) and immediately folded into an online log-sum-exp (running max m and rescaled sum s), the
running sum of p*s for the entropy, and the target logit. Nothing of size V per token is ever stored:
the outputs are logprob, lse and entropy, one float each.

Backward: GEMM-bound, so the matmuls stay with cuBLAS and Triton does the part cuBLAS cannot fuse.
For each vocabulary tile: logits = hidden @ W_tile.T (input dtype), one elementwise Triton kernel turns
them in place into d loss / d logits (softmax from the saved lse, entropy term, target one-hot,
temperature), then grad_W[tile] = G.T @ hidden and grad_hidden += G @ W_tile (fp32 accumulator).
Peak extra memory is one [N, tile] buffer in the input dtype (tile: kernels.common.vocab_tile_width).

Importing this module compiles nothing; @triton.jit decides between GPU compilation and the CPU
interpreter (TRITON_INTERPRET=1) at import time, so the dispatcher imports it lazily.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from kernels.common import IGNORE_INDEX, upstream_grads, vocab_tile_width


@triton.jit
def _linear_logprob_fwd_kernel(
    hidden_ptr, weight_ptr, bias_ptr, targets_ptr,
    logprob_ptr, lse_ptr, entropy_ptr,
    n_tokens, vocab, hidden_size,
    stride_hidden, stride_weight,
    inv_temperature, ignore_index,
    HAS_BIAS: tl.constexpr, WITH_ENTROPY: tl.constexpr, DOT_PRECISION: tl.constexpr, UPCAST_DOT: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_V: tl.constexpr, BLOCK_H: tl.constexpr,
):
    pid = tl.program_id(0)
    rows = pid * BLOCK_N + tl.arange(0, BLOCK_N)
    row_ok = rows < n_tokens
    targets = tl.load(targets_ptr + rows, mask=row_ok, other=ignore_index).to(tl.int64)

    running_max = tl.full([BLOCK_N], float("-inf"), tl.float32)
    running_sum = tl.zeros([BLOCK_N], tl.float32)
    running_plogit = tl.zeros([BLOCK_N], tl.float32)  # sum exp(s - m) * s, for the entropy
    target_logit = tl.zeros([BLOCK_N], tl.float32)

    for v_start in range(0, vocab, BLOCK_V):
        cols = v_start + tl.arange(0, BLOCK_V)
        col_ok = cols < vocab
        acc = tl.zeros([BLOCK_N, BLOCK_V], tl.float32)
        for h_start in range(0, hidden_size, BLOCK_H):
            ks = h_start + tl.arange(0, BLOCK_H)
            k_ok = ks < hidden_size
            h_tile = tl.load(hidden_ptr + rows[:, None] * stride_hidden + ks[None, :],
                             mask=row_ok[:, None] & k_ok[None, :], other=0.0)
            w_tile = tl.load(weight_ptr + cols[None, :] * stride_weight + ks[:, None],
                             mask=col_ok[None, :] & k_ok[:, None], other=0.0)
            if UPCAST_DOT:
                h_tile = h_tile.to(tl.float32)
                w_tile = w_tile.to(tl.float32)
            acc = tl.dot(h_tile, w_tile, acc=acc, input_precision=DOT_PRECISION)
        if HAS_BIAS:
            acc += tl.load(bias_ptr + cols, mask=col_ok, other=0.0).to(tl.float32)[None, :]
        scaled = tl.where(col_ok[None, :], acc * inv_temperature, float("-inf"))

        new_max = tl.maximum(running_max, tl.max(scaled, axis=1))
        rescale = tl.exp(running_max - new_max)
        exps = tl.exp(scaled - new_max[:, None])
        running_sum = running_sum * rescale + tl.sum(exps, axis=1)
        if WITH_ENTROPY:
            finite_scaled = tl.where(col_ok[None, :], scaled, 0.0)
            running_plogit = running_plogit * rescale + tl.sum(exps * finite_scaled, axis=1)
        running_max = new_max
        is_target = cols[None, :] == targets[:, None]
        target_logit += tl.sum(tl.where(is_target, scaled, 0.0), axis=1)

    lse = running_max + tl.log(running_sum)
    valid = row_ok & (targets != ignore_index)
    tl.store(lse_ptr + rows, lse, mask=row_ok)
    tl.store(logprob_ptr + rows, tl.where(valid, target_logit - lse, 0.0), mask=row_ok)
    if WITH_ENTROPY:
        # H = -sum p (s - lse) = lse - sum p s
        entropy = lse - running_plogit / running_sum
        tl.store(entropy_ptr + rows, tl.where(valid, entropy, 0.0), mask=row_ok)


@triton.jit
def _logits_to_grad_kernel(
    logits_ptr, lse_ptr, entropy_ptr, grad_logprob_ptr, grad_entropy_ptr, targets_ptr,
    n_tokens, tile_width, v_start, stride_logits, inv_temperature,
    HAS_GRAD_LOGPROB: tl.constexpr, HAS_GRAD_ENTROPY: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_V: tl.constexpr,
):
    """In place: raw logits of one vocabulary tile -> d loss / d logits (before the linear layer)."""
    rows = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    cols = tl.program_id(1) * BLOCK_V + tl.arange(0, BLOCK_V)
    row_ok = rows < n_tokens
    mask = row_ok[:, None] & (cols < tile_width)[None, :]
    offsets = rows[:, None] * stride_logits + cols[None, :]
    logits = tl.load(logits_ptr + offsets, mask=mask, other=0.0).to(tl.float32)
    lse = tl.load(lse_ptr + rows, mask=row_ok, other=0.0)
    log_p = logits * inv_temperature - lse[:, None]
    probs = tl.exp(log_p)
    coef = tl.zeros([BLOCK_N, BLOCK_V], tl.float32)
    if HAS_GRAD_LOGPROB:
        g_logp = tl.load(grad_logprob_ptr + rows, mask=row_ok, other=0.0)
        coef += g_logp[:, None]
    if HAS_GRAD_ENTROPY:
        g_ent = tl.load(grad_entropy_ptr + rows, mask=row_ok, other=0.0)
        entropy = tl.load(entropy_ptr + rows, mask=row_ok, other=0.0)
        coef += g_ent[:, None] * (log_p + entropy[:, None])
    grad = -probs * coef
    if HAS_GRAD_LOGPROB:
        targets = tl.load(targets_ptr + rows, mask=row_ok, other=-1)
        is_target = (v_start + cols)[None, :] == targets[:, None]
        grad += tl.where(is_target, g_logp[:, None], 0.0)
    grad = grad * inv_temperature
    tl.store(logits_ptr + offsets, grad.to(logits_ptr.dtype.element_ty), mask=mask)


def _forward_blocks(device: torch.device) -> tuple[int, int, int, int]:
    if device.type == "cuda":
        return 64, 128, 64, 8  # BLOCK_N, BLOCK_V, BLOCK_H, num_warps
    return 16, 32, 16, 1  # interpreter: small blocks keep numpy work per step low


class _TritonLinearLogprob(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, temperature, return_entropy, ignore_index):
        n_tokens, hidden_size = hidden.shape
        vocab = weight.shape[0]
        weight = weight.contiguous()
        valid = targets != ignore_index
        safe_targets = torch.where(valid, targets, -1).long().contiguous()
        logprobs = torch.empty(n_tokens, dtype=torch.float32, device=hidden.device)
        lse = torch.empty_like(logprobs)
        entropy = torch.empty_like(logprobs) if return_entropy else None
        block_n, block_v, block_h, warps = _forward_blocks(hidden.device)
        grid = (triton.cdiv(n_tokens, block_n),)
        _linear_logprob_fwd_kernel[grid](
            hidden, weight, bias if bias is not None else weight, safe_targets,
            logprobs, lse, entropy if entropy is not None else lse,
            n_tokens, vocab, hidden_size, hidden.stride(0), weight.stride(0),
            1.0 / temperature, -1,
            HAS_BIAS=bias is not None, WITH_ENTROPY=return_entropy,
            DOT_PRECISION="ieee" if hidden.dtype == torch.float32 else "tf32",
            # Triton 3.x's interpreter multiplies bf16 dot operands as raw bits; fp32 operands are exact.
            UPCAST_DOT=not hidden.is_cuda,
            BLOCK_N=block_n, BLOCK_V=block_v, BLOCK_H=block_h, num_warps=warps,
        )
        ctx.save_for_backward(hidden, weight, bias, safe_targets, valid, lse, entropy)
        ctx.temperature = temperature
        return logprobs, entropy

    @staticmethod
    def backward(ctx, grad_logprobs, grad_entropy):
        hidden, weight, bias, targets, valid, lse, entropy = ctx.saved_tensors
        need_hidden, need_weight, need_bias = ctx.needs_input_grad[:3]
        g_logp, g_ent = upstream_grads(grad_logprobs, grad_entropy, entropy, valid, torch.float32)
        if g_logp is None and g_ent is None:
            return (None,) * 7
        n_tokens = hidden.shape[0]
        vocab = weight.shape[0]
        grad_hidden = torch.zeros(hidden.shape, dtype=torch.float32, device=hidden.device) if need_hidden else None
        grad_weight = torch.empty_like(weight) if need_weight else None
        grad_bias = torch.empty_like(bias) if need_bias else None
        tile = vocab_tile_width(n_tokens, vocab)
        block_n, block_v = (32, 128) if hidden.is_cuda else (16, 32)
        inv_temperature = 1.0 / ctx.temperature

        for v_start in range(0, vocab, tile):
            v_end = min(v_start + tile, vocab)
            w_tile = weight[v_start:v_end]
            logits = torch.nn.functional.linear(hidden, w_tile, bias[v_start:v_end] if bias is not None else None)
            grid = (triton.cdiv(n_tokens, block_n), triton.cdiv(v_end - v_start, block_v))
            _logits_to_grad_kernel[grid](
                logits, lse, entropy if entropy is not None else lse,
                g_logp if g_logp is not None else lse, g_ent if g_ent is not None else lse, targets,
                n_tokens, v_end - v_start, v_start, logits.stride(0), inv_temperature,
                HAS_GRAD_LOGPROB=g_logp is not None, HAS_GRAD_ENTROPY=g_ent is not None,
                BLOCK_N=block_n, BLOCK_V=block_v,
            )
            grad_logits = logits  # overwritten in place
            if need_bias:
                grad_bias[v_start:v_end] = grad_logits.float().sum(0)
            if need_weight:
                torch.mm(grad_logits.t(), hidden, out=grad_weight[v_start:v_end])
            if need_hidden:
                if hidden.dtype == torch.float32:
                    grad_hidden.addmm_(grad_logits, w_tile)
                else:
                    grad_hidden += torch.mm(grad_logits, w_tile)
            del logits, grad_logits

        if grad_hidden is not None:
            grad_hidden = grad_hidden.to(hidden.dtype)
        return grad_hidden, grad_weight, grad_bias, None, None, None, None


def triton_linear_logprob(hidden, weight, targets, *, bias=None, temperature=1.0, return_entropy=False,
                          ignore_index=IGNORE_INDEX):
    """Inputs are assumed validated by kernels.logprob.fused_linear_logprob (2-D hidden, 1-D targets)."""
    if hidden.dtype not in (torch.float32, torch.bfloat16, torch.float16):
        raise ValueError(f"the triton backend supports fp32/bf16/fp16, got {hidden.dtype}; use backend='torch'")
    return _TritonLinearLogprob.apply(hidden, weight, bias, targets, temperature, return_entropy, ignore_index)
