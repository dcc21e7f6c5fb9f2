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

Torch path (CPU, and the reference for the Triton kernels): chunks of up to 4,096 tokens times tiles
of the vocabulary holding about 2**24 logits (64 MiB fp32). Chunks are wide so the matmuls run at full
BLAS speed; the vocabulary is what gets tiled.
    forward  - online log-sum-exp across the vocabulary tiles (running max, rescaled running sum, and
               the running sum of p*s for the entropy); the target logit is picked from its tile.
    backward - the same tiles again: grad_W[tile] = G.T @ hidden_chunk in one matmul (accumulated only
               when N exceeds one chunk, so bf16 weights get an fp32-accumulated gradient without an
               fp32 [V, H] buffer), grad_hidden accumulates in fp32 over tiles ([chunk, H] is small).
               Without entropy, G = -(g/T) (p - onehot): the per-token factor -(g/T) is applied to the
               [chunk, H] operands (hidden before the grad_W matmul, grad_hidden after), not to the tile.
    one tile - when all N x V logits fit one tile (small batches, small vocabularies), forward keeps
               the log-softmax for backward instead of recomputing it: one matmul fewer.
Each pass writes its logits into one preallocated tile buffer (matmul with out=), so the tiles do not
each pay for fresh pages. The time is the four matmuls (logits, recomputed logits, grad_W, grad_hidden)
against the naive three; everything else is a few percent.
Matmuls run in the input dtype (bf16 matmuls accumulate in fp32 inside the BLAS); everything after the
matmul runs in fp32 (fp64 for fp64 inputs, so gradcheck works).

Tokens whose target equals ignore_index (-100) get logprob 0, entropy 0 and no gradient; the public
entry drops them before either backend runs, so prompt tokens cost nothing on both.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kernels.common import (
    IGNORE_INDEX,
    accumulation_dtype,
    check_logprob_inputs,
    upstream_grads,
    vocab_tile_width,
)
from kernels.dispatch import resolve_backend


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
    check_logprob_inputs(hidden, weight, targets, bias, temperature)
    logits = F.linear(hidden, weight, bias)
    scaled = logits.to(accumulation_dtype(hidden.dtype)) / temperature
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


class _TileBuffers:
    """One logits tile's storage, allocated once per forward or backward and reused by every tile.

    Why: a fresh 64 MiB tensor per tile is above the allocator's mmap threshold on CPU, so each tile
    paid for new zeroed pages (page faults, kernel time) before the matmul could write them. Reusing
    one buffer halved the kernel (sys) time of an fp32 N=1k forward+backward on one core (0.75 s to
    0.35 s of 14 s; the matmuls' user time did not move) and took bf16 N=1k from 5.1 s to 4.3 s.
    Ragged last chunks/tiles use a contiguous prefix of the same storage.
    """

    def __init__(self, rows, width, input_dtype, acc_dtype, device):
        self.input_dtype, self.acc_dtype = input_dtype, acc_dtype
        self.low = torch.empty(rows * width, dtype=input_dtype, device=device)
        # bf16/fp16 inputs: the fp32 copy of the tile that everything after the matmul works on.
        self.high = torch.empty(rows * width, dtype=acc_dtype, device=device) if input_dtype != acc_dtype else None
        self.product = None
        self.spare = None  # entropy path only: a second accumulation-dtype tile (p next to log p)

    def logits(self, chunk_hidden, weight, bias, v_start, v_end):
        out = self.low[: chunk_hidden.shape[0] * (v_end - v_start)].view(chunk_hidden.shape[0], v_end - v_start)
        w_tile_t = weight[v_start:v_end].t()
        if bias is None:
            return torch.mm(chunk_hidden, w_tile_t, out=out)
        return torch.addmm(bias[v_start:v_end], chunk_hidden, w_tile_t, out=out)

    def _high_like(self, tensor):
        return self.high[: tensor.numel()].view(tensor.shape)

    def shifted(self, logits, shift, temperature):
        """logits / T - shift[:, None] in the accumulation dtype (shift None: logits / T), in place
        for fp32/fp64 and into the reused up-cast tile for bf16/fp16."""
        out = None if self.high is None else self._high_like(logits)
        return _shift_and_scale(logits, shift, temperature, self.acc_dtype, out=out)

    def spare_like(self, tensor):
        """A second accumulation-dtype tile, allocated on first use (the entropy path needs two)."""
        if self.spare is None or self.spare.numel() < tensor.numel():
            self.spare = torch.empty(tensor.numel(), dtype=self.acc_dtype, device=tensor.device)
        return self.spare[: tensor.numel()].view(tensor.shape)

    def to_input_dtype(self, tile_grad):
        """The tile gradient in the input dtype for the matmuls; bf16 reuses the logits storage."""
        if self.high is None:
            return tile_grad
        return self.low[: tile_grad.numel()].view(tile_grad.shape).copy_(tile_grad)

    def hidden_product(self, tile_grad_lowp, w_tile):
        """tile_grad @ w_tile in the input dtype, into a reused [rows, H] buffer."""
        shape = (tile_grad_lowp.shape[0], w_tile.shape[1])
        if self.product is None or self.product.numel() < shape[0] * shape[1]:
            self.product = torch.empty(shape[0] * shape[1], dtype=self.input_dtype, device=w_tile.device)
        return torch.mm(tile_grad_lowp, w_tile, out=self.product[: shape[0] * shape[1]].view(shape))


# Tokens per chunk by default: enough rows that the [tokens, H] x [H, tile] matmul runs at full BLAS
# speed (fp32 CPU matmuls with ~100 rows run 3x slower per flop than with 1,000+).
DEFAULT_CHUNK_TOKENS = 4096


def default_chunk_size(n_tokens: int) -> int:
    """Tokens per chunk: all of them up to DEFAULT_CHUNK_TOKENS. The vocabulary does not enter: the
    [chunk, tile] logits are bounded by tiling the vocabulary (vocab_tile_width), not the tokens."""
    return max(1, min(n_tokens, DEFAULT_CHUNK_TOKENS))


def fits_one_tile(n_tokens: int, vocab: int, chunk_tokens: int) -> bool:
    """True when one chunk covers every token and one tile the whole vocabulary (N x V is small)."""
    return chunk_tokens >= n_tokens and vocab_tile_width(chunk_tokens, vocab) >= vocab


def _shift_and_scale(logits, shift, temperature, acc_dtype, out=None):
    """logits / T - shift[:, None] (shift None: logits / T) in acc_dtype; the one tile arithmetic of
    every pass, so the forward's log-sum-exp and the backward's softmax round the same way.

    Where it writes: logits already in acc_dtype are reused in place; bf16/fp16 logits are up-cast
    into `out` (a reused tile buffer) when given, else into a new tensor (the one-tile path keeps the
    result for backward, so it needs fresh storage anyway). Up-casting by copy_ and then subtracting
    in place matters: torch.sub(bf16, fp32, out=fp32) casts its bf16 input into a fresh fp32
    temporary, a tile of page faults per call.
    """
    if shift is not None and temperature != 1.0:
        shift = shift * temperature
    if logits.dtype == acc_dtype:
        result = logits if shift is None else logits.sub_(shift[:, None])
    elif out is not None:
        result = out.copy_(logits)
        if shift is not None:
            result.sub_(shift[:, None])
    else:
        result = logits.to(acc_dtype) if shift is None else torch.sub(logits, shift[:, None])
    if temperature != 1.0:
        result.div_(temperature)
    return result


class _WholeLinearLogprob(torch.autograd.Function):
    """The one-tile case: the [N, V] log-softmax is kept from forward for backward.

    When N x V fits one tile (at most TILE_ELEMENTS values), recomputing the logits in backward
    costs a full [N, H] x [H, V] matmul (a quarter of the head's work) to save memory the forward
    pass held at its peak anyway; keeping the tile until backward adds at most one tile to the peak.
    """

    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, temperature, return_entropy, ignore_index):
        acc_dtype = accumulation_dtype(hidden.dtype)
        valid = targets != ignore_index
        safe_targets = torch.where(valid, targets, 0).long()
        logits = F.linear(hidden, weight, bias)
        row_max = logits.amax(dim=1).to(acc_dtype) / temperature
        shifted = _shift_and_scale(logits, row_max, temperature, acc_dtype)  # s - max s, in acc_dtype
        del logits
        exps = shifted.exp()
        sums = exps.sum(1)
        log_p = shifted.sub_(sums.log()[:, None])
        # Advanced indexing makes a new tensor (gather + squeeze would return a view).
        logprobs = log_p[torch.arange(log_p.shape[0], device=log_p.device), safe_targets].masked_fill_(~valid, 0.0)
        entropy = None
        if return_entropy:
            entropy = exps.div_(sums[:, None]).mul_(log_p).sum(1).neg_().masked_fill_(~valid, 0.0)
        del exps
        ctx.save_for_backward(hidden, weight, bias, safe_targets, valid, log_p, entropy)
        ctx.temperature = temperature
        return logprobs, entropy

    @staticmethod
    def backward(ctx, grad_logprobs, grad_entropy):
        hidden, weight, bias, targets, valid, log_p, entropy = ctx.saved_tensors
        temperature = ctx.temperature
        need_hidden, need_weight, need_bias = ctx.needs_input_grad[:3]
        acc_dtype = log_p.dtype
        g_logp, g_ent = upstream_grads(grad_logprobs, grad_entropy, entropy, valid, acc_dtype)
        if g_logp is None and g_ent is None:
            return (None,) * 7

        probs = log_p.exp()  # out of place: the saved log_p must survive a second backward
        if g_ent is not None:
            # ds_j = -p_j * (g_logp + g_ent * (log p_j + H)) / T, plus g_logp / T at the target.
            coef = (log_p + entropy[:, None]).mul_(-g_ent[:, None] / temperature)
            if g_logp is not None:
                coef.sub_(g_logp[:, None] / temperature)
            grad_scaled = probs.mul_(coef)
            del coef
        else:
            grad_scaled = probs.mul_(-g_logp[:, None] / temperature)
        if g_logp is not None:
            rows = torch.arange(targets.shape[0], device=targets.device)[valid]
            grad_scaled.index_put_((rows, targets[valid]), g_logp[valid] / temperature, accumulate=True)
        grad_bias = grad_scaled.sum(0).to(bias.dtype) if need_bias else None
        grad_lowp = grad_scaled.to(hidden.dtype) if hidden.dtype != acc_dtype else grad_scaled
        grad_weight = torch.mm(grad_lowp.t(), hidden) if need_weight else None
        grad_hidden = torch.mm(grad_lowp, weight) if need_hidden else None
        return grad_hidden, grad_weight, grad_bias, None, None, None, None


class _ChunkedLinearLogprob(torch.autograd.Function):
    """Token chunks x vocabulary tiles; forward keeps an online log-sum-exp across the tiles."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, temperature, return_entropy, chunk_size, ignore_index):
        n_tokens, vocab = hidden.shape[0], weight.shape[0]
        acc_dtype = accumulation_dtype(hidden.dtype)
        device = hidden.device
        valid = targets != ignore_index
        safe_targets = torch.where(valid, targets, 0).long()
        logprobs = torch.empty(n_tokens, dtype=acc_dtype, device=device)
        lse = torch.empty(n_tokens, dtype=acc_dtype, device=device)
        entropy = torch.empty(n_tokens, dtype=acc_dtype, device=device) if return_entropy else None
        tile = vocab_tile_width(chunk_size, vocab)
        buffers = _TileBuffers(min(chunk_size, n_tokens), tile, hidden.dtype, acc_dtype, device)

        for start in range(0, n_tokens, chunk_size):
            end = min(start + chunk_size, n_tokens)
            rows = end - start
            chunk_hidden = hidden[start:end]
            chunk_targets = safe_targets[start:end]
            running_max = torch.full((rows,), -torch.inf, dtype=acc_dtype, device=device)
            running_sum = torch.zeros(rows, dtype=acc_dtype, device=device)
            running_plogit = torch.zeros(rows, dtype=acc_dtype, device=device) if return_entropy else None
            target_logit = torch.zeros(rows, dtype=acc_dtype, device=device)
            for v_start in range(0, vocab, tile):
                v_end = min(v_start + tile, vocab)
                logits = buffers.logits(chunk_hidden, weight, bias, v_start, v_end)
                in_tile = (chunk_targets >= v_start) & (chunk_targets < v_end)
                local = (chunk_targets - v_start).clamp(0, v_end - v_start - 1)
                picked = logits.gather(1, local[:, None]).squeeze(1).to(acc_dtype) / temperature
                target_logit += torch.where(in_tile, picked, 0.0)
                new_max = torch.maximum(running_max, logits.amax(dim=1).to(acc_dtype) / temperature)
                rescale = torch.exp(running_max - new_max)
                if return_entropy:
                    # p_j s_j needs the unshifted s_j, so this path keeps a second [rows, tile] tensor.
                    scaled = buffers.shifted(logits, None, temperature)
                    exps = torch.sub(scaled, new_max[:, None], out=buffers.spare_like(scaled)).exp_()
                    running_sum.mul_(rescale).add_(exps.sum(1))
                    running_plogit.mul_(rescale).add_(exps.mul_(scaled).sum(1))
                    del exps, scaled
                else:
                    exps = buffers.shifted(logits, new_max, temperature).exp_()
                    running_sum.mul_(rescale).add_(exps.sum(1))
                    del exps
                del logits
                running_max = new_max
            chunk_lse = running_max + running_sum.log()
            lse[start:end] = chunk_lse
            logprobs[start:end] = target_logit - chunk_lse
            if return_entropy:
                # H = -sum p (s - lse) = lse - sum p s
                entropy[start:end] = chunk_lse - running_plogit / running_sum

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
        n_tokens, vocab = hidden.shape[0], weight.shape[0]
        acc_dtype = lse.dtype
        device = hidden.device
        g_logp, g_ent = upstream_grads(grad_logprobs, grad_entropy, entropy, valid, acc_dtype)
        if g_logp is None and g_ent is None:
            return (None,) * 8

        grad_hidden = torch.empty(hidden.shape, dtype=hidden.dtype, device=device) if need_hidden else None
        # grad_W / grad_b tiles are written by the first token chunk and accumulated by later ones
        # (one chunk for N <= chunk_size, so usually no accumulation at all).
        grad_weight = torch.empty_like(weight) if need_weight else None
        grad_bias = torch.zeros(vocab, dtype=acc_dtype, device=device) if need_bias else None
        tile = vocab_tile_width(ctx.chunk_size, vocab)
        buffers = _TileBuffers(min(ctx.chunk_size, n_tokens), tile, hidden.dtype, acc_dtype, device)
        # 1/T and the minus sign ride on the per-token coefficients: fewer passes over each tile.
        g_logp_t = g_logp / temperature if g_logp is not None else None
        neg_g_ent_t = -g_ent / temperature if g_ent is not None else None

        for start in range(0, n_tokens, ctx.chunk_size):
            end = min(start + ctx.chunk_size, n_tokens)
            chunk_hidden = hidden[start:end]
            chunk_targets, chunk_valid = targets[start:end], valid[start:end]
            chunk_rows = torch.arange(end - start, device=device)
            grad_chunk = torch.zeros((end - start, hidden.shape[1]), dtype=acc_dtype, device=device)
            if g_ent is None:
                # Without entropy, d loss/d logits = -(g/T) * (p - onehot): the per-token factor moves
                # out of the [rows, tile] matrix and onto [rows, H] operands, one pass less per tile.
                row_factor = -g_logp_t[start:end]
                hidden_for_weight = (chunk_hidden.to(acc_dtype) * row_factor[:, None]).to(hidden.dtype)
                onehot_value = torch.full((end - start,), -1.0, dtype=acc_dtype, device=device)
            else:
                row_factor, hidden_for_weight = None, chunk_hidden
                onehot_value = g_logp_t[start:end] if g_logp is not None else None
            for v_start in range(0, vocab, tile):
                v_end = min(v_start + tile, vocab)
                w_tile = weight[v_start:v_end]
                logits = buffers.logits(chunk_hidden, weight, bias, v_start, v_end)
                log_p = buffers.shifted(logits, lse[start:end], temperature)
                del logits
                if g_ent is None:
                    tile_grad = log_p.exp_()  # p; becomes p - onehot below
                else:
                    # ds_j = -p_j * (g_logp + g_ent * (log p_j + H)), plus g_logp at the target.
                    probs = torch.exp(log_p, out=buffers.spare_like(log_p))
                    coef = log_p.add_(entropy[start:end, None]).mul_(neg_g_ent_t[start:end, None])
                    if g_logp is not None:
                        coef.sub_(g_logp_t[start:end, None])
                    tile_grad = probs.mul_(coef)
                    del coef, probs
                del log_p
                if onehot_value is not None:
                    in_tile = (chunk_targets >= v_start) & (chunk_targets < v_end) & chunk_valid
                    tile_grad.index_put_(
                        (chunk_rows[in_tile], chunk_targets[in_tile] - v_start),
                        onehot_value[in_tile], accumulate=True,
                    )
                if need_bias:
                    if row_factor is None:
                        grad_bias[v_start:v_end] += tile_grad.sum(0)
                    else:
                        grad_bias[v_start:v_end].addmv_(tile_grad.t(), row_factor)
                tile_grad_lowp = buffers.to_input_dtype(tile_grad)
                if need_weight:
                    if start == 0:
                        torch.mm(tile_grad_lowp.t(), hidden_for_weight, out=grad_weight[v_start:v_end])
                    else:
                        grad_weight[v_start:v_end].addmm_(tile_grad_lowp.t(), hidden_for_weight)
                if need_hidden:
                    if hidden.dtype == acc_dtype:
                        grad_chunk.addmm_(tile_grad_lowp, w_tile)
                    else:
                        grad_chunk += buffers.hidden_product(tile_grad_lowp, w_tile)
                del tile_grad, tile_grad_lowp
            if need_hidden:
                if row_factor is not None:
                    grad_chunk.mul_(row_factor[:, None])
                grad_hidden[start:end] = grad_chunk

        if grad_bias is not None:
            grad_bias = grad_bias.to(bias.dtype)
        return grad_hidden, grad_weight, grad_bias, None, None, None, None, None


def _torch_linear_logprob(hidden, weight, bias, targets, temperature, return_entropy, chunk_size, ignore_index):
    n_tokens, vocab = hidden.shape[0], weight.shape[0]
    chunk = min(chunk_size if chunk_size is not None else default_chunk_size(n_tokens), n_tokens)
    if fits_one_tile(n_tokens, vocab, chunk):
        return _WholeLinearLogprob.apply(hidden, weight, bias, targets, temperature, return_entropy, ignore_index)
    return _ChunkedLinearLogprob.apply(hidden, weight, bias, targets, temperature, return_entropy, chunk,
                                       ignore_index)


def _run_backend(backend, hidden, weight, bias, targets, temperature, return_entropy, chunk_size, ignore_index):
    if backend == "triton":
        from kernels.logprob_triton import triton_linear_logprob

        return triton_linear_logprob(hidden, weight, targets, bias=bias, temperature=temperature,
                                     return_entropy=return_entropy, ignore_index=ignore_index)
    return _torch_linear_logprob(hidden, weight, bias, targets, temperature, return_entropy, chunk_size,
                                 ignore_index)


def _on_rows_with_a_target(backend, hidden, weight, bias, targets, temperature, return_entropy, chunk_size,
                           ignore_index):
    """Run the backend on the rows that have a target only; the others get 0 without any compute.

    Rows without a target (prompt tokens in SFT, padding) would cost the full [H] x [H, V] work and
    then be zeroed: gathering the rows that count first saves that work, which is most of the head's
    cost when prompts are long. Done here, above the backend switch, so that both backends skip the
    same rows and agree on them. Nothing is gathered when every row has a target, nor when none has
    (then the backend runs on all rows, so the outputs still carry a zero gradient).
    """
    valid = targets != ignore_index
    n_tokens, n_valid = targets.shape[0], int(valid.sum())
    if not 0 < n_valid < n_tokens:
        return _run_backend(backend, hidden, weight, bias, targets, temperature, return_entropy, chunk_size,
                            ignore_index)
    rows = valid.nonzero().squeeze(1)
    kept_lp, kept_ent = _run_backend(backend, hidden.index_select(0, rows), weight, bias, targets[rows],
                                     temperature, return_entropy, chunk_size, ignore_index)
    logprobs = kept_lp.new_zeros(n_tokens).index_copy(0, rows, kept_lp)
    entropy = kept_ent.new_zeros(n_tokens).index_copy(0, rows, kept_ent) if kept_ent is not None else None
    return logprobs, entropy


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
    Rows whose target is ignore_index are left out of the compute (both backends).
    chunk_size: tokens per chunk on the torch path (default 4,096); the vocabulary is tiled so that a
    tile holds about 2**24 logits (at least 64 columns); a problem that fits one tile keeps it for
    backward. The Triton path picks its own blocks.
    backend: "torch" or "triton"; see kernels.dispatch for the default and the environment override.
    The forward is one "fused_linear_logprob" range in torch.profiler traces (the backward is the
    autograd node "_...LinearLogprobBackward"), so the head's cost is findable by name.
    """
    with torch.profiler.record_function("fused_linear_logprob"):
        check_logprob_inputs(hidden, weight, targets, bias, temperature)
        temperature = float(temperature)
        lead_shape = targets.shape
        flat_hidden = hidden.reshape(-1, hidden.shape[-1])
        flat_targets = targets.reshape(-1)
        if not flat_hidden.is_contiguous():
            flat_hidden = flat_hidden.contiguous()
        if chunk_size is not None and chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")

        chosen = resolve_backend(flat_hidden, backend)
        if flat_hidden.shape[0] == 0:
            empty = flat_hidden.new_zeros(lead_shape, dtype=accumulation_dtype(hidden.dtype))
            return empty, (empty.clone() if return_entropy else None)
        logprobs, entropy = _on_rows_with_a_target(chosen, flat_hidden, weight, bias, flat_targets, temperature,
                                                   return_entropy, chunk_size, ignore_index)
        if logprobs.shape != lead_shape:
            # Only when the shape changes: a same-shape reshape is still a view, and FSDP2 warns that an
            # in-place op on a view returned by a wrapped module would skip its pre-backward hook.
            logprobs = logprobs.reshape(lead_shape)
            entropy = entropy.reshape(lead_shape) if entropy is not None else None
        return logprobs, entropy
