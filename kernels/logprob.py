"""Log-probabilities of chosen tokens straight from hidden states, without a [tokens x vocab] tensor.

Why: `log_softmax(hidden @ W.T)` at Qwen3's vocabulary (151,936) costs 0.6 MB of fp32 per token, and
autograd keeps several such tensors alive (logits, log-softmax output, their gradients). SFT and GRPO
only need log p(target) (and sometimes the entropy), so we keep one number per token, the
log-normalizer lse = logsumexp(logits / T), and recompute logits tile by tile in the backward pass.

Maths, with s = (hidden @ W.T + b) / T, p = softmax(s), H = -sum_j p_j log p_j:
    logprob      = s_target - lse
    d logprob/ds = onehot(target) - p
    dH/ds_j      = -p_j (log p_j + H)
and ds/d(hidden, W, b) is the linear layer divided by T.

Torch path (CPU, and the reference for the Triton kernels):
    forward  - chunks of tokens, each against the whole vocabulary: one matmul per chunk, exact logsumexp.
    backward - tiles of the vocabulary, each against all tokens: grad_W[tile] comes out of one matmul
               (no cross-chunk accumulation, so bf16 weights get an fp32-accumulated gradient without an
               fp32 [V, H] buffer), grad_hidden accumulates in fp32 over tiles ([N, H] is small).
Matmuls run in the input dtype (bf16 matmuls accumulate in fp32 inside the BLAS); everything after the
matmul runs in fp32 (fp64 for fp64 inputs, so gradcheck works).

Tokens whose target equals ignore_index (-100) get logprob 0, entropy 0 and no gradient.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from kernels.dispatch import resolve_backend

IGNORE_INDEX = -100

# Upper bound on the logits held at once by the torch path (elements). 2**24 fp32 values are 64 MiB:
# big enough that matmuls run at full BLAS speed, small next to N x V for any realistic batch.
TILE_ELEMENTS = 2**24


def _accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _check_inputs(hidden, weight, targets, bias, temperature):
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


def logprob_reference(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    *,
    bias: torch.Tensor | None = None,
    temperature: float = 1.0,
    return_entropy: bool = False,
    ignore_index: int = IGNORE_INDEX,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The naive computation (full logits, log_softmax, gather): the contract the fused kernels match."""
    _check_inputs(hidden, weight, targets, bias, temperature)
    logits = F.linear(hidden, weight, bias)
    scaled = logits.to(_accumulation_dtype(hidden.dtype)) / temperature
    log_probs_all = torch.log_softmax(scaled, dim=-1)
    valid = targets != ignore_index
    safe_targets = torch.where(valid, targets, 0).long()
    logprobs = log_probs_all.gather(-1, safe_targets.unsqueeze(-1)).squeeze(-1)
    logprobs = torch.where(valid, logprobs, 0.0)
    entropy = None
    if return_entropy:
        entropy = -(log_probs_all.exp() * log_probs_all).sum(-1)
        entropy = torch.where(valid, entropy, 0.0)
    return logprobs, entropy


def _scaled_logits(hidden, weight, bias, temperature, acc_dtype):
    """(hidden @ weight.T + bias) / T as a fresh acc_dtype tensor we may overwrite in place."""
    logits = F.linear(hidden, weight, bias)
    scaled = logits.to(acc_dtype) if logits.dtype != acc_dtype else logits
    if temperature != 1.0:
        scaled.div_(temperature)
    return scaled


def default_chunk_size(n_tokens: int, vocab: int) -> int:
    return max(1, min(n_tokens, TILE_ELEMENTS // max(vocab, 1)))


class _ChunkedLinearLogprob(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, temperature, return_entropy, chunk_size, ignore_index):
        n_tokens = hidden.shape[0]
        acc_dtype = _accumulation_dtype(hidden.dtype)
        valid = targets != ignore_index
        safe_targets = torch.where(valid, targets, 0).long()
        logprobs = torch.empty(n_tokens, dtype=acc_dtype, device=hidden.device)
        lse = torch.empty(n_tokens, dtype=acc_dtype, device=hidden.device)
        entropy = torch.empty(n_tokens, dtype=acc_dtype, device=hidden.device) if return_entropy else None

        for start in range(0, n_tokens, chunk_size):
            end = min(start + chunk_size, n_tokens)
            scaled = _scaled_logits(hidden[start:end], weight, bias, temperature, acc_dtype)
            chunk_lse = torch.logsumexp(scaled, dim=-1)
            lse[start:end] = chunk_lse
            target_logit = scaled.gather(1, safe_targets[start:end, None]).squeeze(1)
            logprobs[start:end] = target_logit - chunk_lse
            if return_entropy:
                log_p = scaled.sub_(chunk_lse[:, None])
                # H = -sum p log p; p*log p reuses the exp buffer.
                entropy[start:end] = -torch.exp(log_p).mul_(log_p).sum(-1)
            del scaled

        logprobs.masked_fill_(~valid, 0.0)
        if entropy is not None:
            entropy.masked_fill_(~valid, 0.0)
        ctx.save_for_backward(hidden, weight, bias, safe_targets, valid, lse, entropy)
        ctx.temperature = temperature
        ctx.chunk_size = chunk_size
        return logprobs, entropy

    @staticmethod
    def backward(ctx, grad_logprobs, grad_entropy):
        hidden, weight, bias, targets, valid, lse, entropy = ctx.saved_tensors
        temperature = ctx.temperature
        need_hidden, need_weight, need_bias = ctx.needs_input_grad[:3]
        if grad_logprobs is None and grad_entropy is None:
            return (None,) * 8
        n_tokens, vocab = hidden.shape[0], weight.shape[0]
        acc_dtype = lse.dtype
        g_logp = grad_logprobs.to(acc_dtype).masked_fill(~valid, 0.0) if grad_logprobs is not None else None
        g_ent = None
        if grad_entropy is not None and entropy is not None:
            g_ent = grad_entropy.to(acc_dtype).masked_fill(~valid, 0.0)
        if g_logp is None and g_ent is None:
            return (None,) * 8

        grad_hidden = torch.zeros(hidden.shape, dtype=acc_dtype, device=hidden.device) if need_hidden else None
        grad_weight = torch.empty_like(weight) if need_weight else None
        grad_bias = torch.empty_like(bias) if need_bias else None
        # Same number of logits per tile as a forward chunk: chunk_size x V.
        vocab_tile = min(vocab, max(1, -(-ctx.chunk_size * vocab // n_tokens)))
        if vocab_tile < vocab:
            vocab_tile = min(vocab, -(-vocab_tile // 64) * 64)
        rows = torch.arange(n_tokens, device=hidden.device)

        for v_start in range(0, vocab, vocab_tile):
            v_end = min(v_start + vocab_tile, vocab)
            tile_bias = bias[v_start:v_end] if bias is not None else None
            scaled = _scaled_logits(hidden, weight[v_start:v_end], tile_bias, temperature, acc_dtype)
            log_p = scaled.sub_(lse[:, None])
            probs = torch.exp(log_p)
            if g_ent is not None:
                # ds_j = -p_j * (g_logp + g_ent * (log p_j + H)), plus g_logp at the target.
                coef = log_p.add_(entropy[:, None]).mul_(g_ent[:, None])
                if g_logp is not None:
                    coef.add_(g_logp[:, None])
                grad_scaled = probs.mul_(coef).neg_()
            else:
                grad_scaled = probs.mul_(g_logp[:, None]).neg_()
            del log_p, scaled
            if g_logp is not None:
                in_tile = (targets >= v_start) & (targets < v_end) & valid
                tile_rows = rows[in_tile]
                grad_scaled.index_put_(
                    (tile_rows, targets[in_tile] - v_start), g_logp[in_tile], accumulate=True
                )
            if temperature != 1.0:
                grad_scaled.div_(temperature)
            if need_bias:
                grad_bias[v_start:v_end] = grad_scaled.sum(0)
            grad_lowp = grad_scaled.to(hidden.dtype) if hidden.dtype != acc_dtype else grad_scaled
            if need_weight:
                torch.mm(grad_lowp.t(), hidden, out=grad_weight[v_start:v_end])
            if need_hidden:
                if hidden.dtype == acc_dtype:
                    grad_hidden.addmm_(grad_lowp, weight[v_start:v_end])
                else:
                    grad_hidden += torch.mm(grad_lowp, weight[v_start:v_end])
            del grad_scaled, grad_lowp

        if grad_hidden is not None:
            grad_hidden = grad_hidden.to(hidden.dtype)
        return grad_hidden, grad_weight, grad_bias, None, None, None, None, None


def fused_linear_logprob(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    *,
    bias: torch.Tensor | None = None,
    temperature: float = 1.0,
    return_entropy: bool = False,
    chunk_size: int | None = None,
    backend: str | None = None,
    ignore_index: int = IGNORE_INDEX,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """log softmax((hidden @ weight.T + bias) / temperature)[target] per token, plus optional entropy.

    hidden [..., H] and targets [...] (usually [N, H] and [N]); weight [V, H]. Returns fp32 tensors
    shaped like targets (fp64 for fp64 inputs). Differentiable w.r.t. hidden, weight and bias.
    chunk_size: tokens per forward chunk (torch path); the backward tiles the vocabulary so that a
    tile holds the same number of logits. Default keeps about 2**24 logits per tile.
    backend: "torch" or "triton"; see kernels.dispatch for the default and the environment override.
    """
    _check_inputs(hidden, weight, targets, bias, temperature)
    temperature = float(temperature)
    lead_shape = targets.shape
    flat_hidden = hidden.reshape(-1, hidden.shape[-1])
    flat_targets = targets.reshape(-1)
    if not flat_hidden.is_contiguous():
        flat_hidden = flat_hidden.contiguous()
    n_tokens, vocab = flat_hidden.shape[0], weight.shape[0]
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")

    chosen = resolve_backend(flat_hidden, backend)
    if n_tokens == 0:
        empty = flat_hidden.new_zeros(lead_shape, dtype=_accumulation_dtype(hidden.dtype))
        return empty, (empty.clone() if return_entropy else None)
    if chosen == "triton":
        from kernels.logprob_triton import triton_linear_logprob

        logprobs, entropy = triton_linear_logprob(
            flat_hidden, weight, flat_targets, bias=bias, temperature=temperature,
            return_entropy=return_entropy, ignore_index=ignore_index,
        )
    else:
        chunk = chunk_size if chunk_size is not None else default_chunk_size(n_tokens, vocab)
        logprobs, entropy = _ChunkedLinearLogprob.apply(
            flat_hidden, weight, bias, flat_targets, temperature, return_entropy, min(chunk, n_tokens),
            ignore_index,
        )
    logprobs = logprobs.reshape(lead_shape)
    if entropy is not None:
        entropy = entropy.reshape(lead_shape)
    return logprobs, entropy
