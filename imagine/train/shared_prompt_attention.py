"""Attention for rows that pack one prompt with several of its completions (``train.share_prompts``).

A dense ``[T, T]`` mask gives the right answer but computes every masked-out pair: a row of a
360-token prompt and four 210-token completions is 1,200 positions, so 1.4M query-key pairs where
the prompt's causal triangle plus each completion's view of the prompt and of itself are 0.45M. Here
the prompt attends causally to itself, and the completions of the row are batched, each attending to
the prompt's keys and causally to its own: only the pairs that count, and no ``[T, T]`` tensor.

The layout rides in transformers' ``attention_mask`` slot as a 4-D long tensor of segment ids
(``[B, 1, 1, T]``: 0 the prompt, k > 0 completion k, -1 padding), which transformers passes through
untouched; any other mask (bool or float, or none) goes to plain SDPA, so the same model still runs
ordinary causal rows. Registered under :data:`NAME` with transformers' attention interfaces.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

NAME = "imagine_shared_prompt_sdpa"


def register() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    AttentionInterface.register(NAME, shared_prompt_attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, sdpa_mask)  # ordinary rows get SDPA's own mask


def layout_mask(segment_ids: torch.Tensor) -> torch.Tensor:
    """What the model passes as ``attention_mask`` for packed rows."""
    return segment_ids[:, None, None, :]


def dense_mask(segment_ids: torch.Tensor) -> torch.Tensor:
    """The same attention as a ``[B, T, T]`` bool mask (True: may attend), for eager attention and tests:
    causal, a completion sees the prompt and itself, padding sees only itself so no row is empty."""
    width = segment_ids.shape[-1]
    q, k = segment_ids[:, :, None], segment_ids[:, None, :]
    causal = torch.ones((width, width), dtype=torch.bool, device=segment_ids.device).tril()
    own = (q == k) & (q != -1)
    sees_prompt = (k == 0) & (q > 0)
    return causal & (own | sees_prompt | torch.eye(width, dtype=torch.bool, device=segment_ids.device))


def shared_prompt_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """transformers' attention signature: query ``[B, H, T, D]``, key/value ``[B, Hkv, T, D]``;
    returns ``([B, T, H, D], None)``."""
    if attention_mask is None or attention_mask.dtype != torch.long:
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout,
                                      **kwargs)
    unsupported = [k for k in ("sliding_window", "s_aux", "softcap") if kwargs.get(k) is not None]
    if dropout or unsupported:
        raise ValueError(f"train.share_prompts: the packed attention has no {unsupported or 'dropout'}; "
                         "this model needs train.share_prompts=false")
    return _split_attention(query, key, value, attention_mask, scaling), None


@torch.compiler.disable  # host-side planning: under train.compile it would recompile for every layout
def _split_attention(query, key, value, attention_mask, scaling) -> torch.Tensor:
    repeat = query.shape[1] // key.shape[1]
    if repeat > 1:  # grouped-query attention: one key/value head serves `repeat` query heads (repeat_kv's order)
        key, value = key.repeat_interleave(repeat, dim=1), value.repeat_interleave(repeat, dim=1)
    rows = [_row(query[b], key[b], value[b], plan, scaling) for b, plan in enumerate(_plans(attention_mask))]
    return torch.stack(rows).transpose(1, 2).contiguous()


@dataclass
class _RowPlan:
    prompt: int  # the prompt's length in this row
    index: torch.Tensor | None  # [S, L]: each completion's positions, padded by repeating its last one
    keep: torch.Tensor | None  # [K] long: which entries of the flattened `index` are real positions
    allowed: torch.Tensor | None  # [L, prompt + L]: query j sees the prompt and its own positions 0..j
    positions: torch.Tensor  # where the row's outputs go: the prompt's, then the kept completion positions


_last: tuple[torch.Tensor, list[_RowPlan]] | None = None  # every layer of a forward gets the same mask


def _plans(mask: torch.Tensor) -> list[_RowPlan]:
    """Each row's plan, from one host read of the segment ids per forward (not one per layer)."""
    global _last
    last = _last  # one read: another thread may replace it
    if last is not None and last[0] is mask:
        return last[1]
    plans = [_plan(ids, mask.device) for ids in mask[:, 0, 0].tolist()]
    _last = (mask, plans)
    return plans


def _plan(ids: list[int], device) -> _RowPlan:
    prompt = ids.count(0)  # the prompt comes first
    spans, start = [], prompt
    for pos in range(prompt, len(ids) + 1):
        if pos == len(ids) or ids[pos] != ids[start]:
            if ids[start] > 0:
                spans.append((start, pos - start))
            start = pos
    prompt_positions = torch.arange(prompt, device=device)
    if not spans:
        return _RowPlan(prompt, None, None, None, prompt_positions)
    longest = max(n for _, n in spans)
    index = torch.tensor([[start + min(j, n - 1) for j in range(longest)] for start, n in spans], device=device)
    # integer indices, built on the host: a bool mask index would make the GPU sync in every layer
    keep = torch.tensor([s * longest + j for s, (_, n) in enumerate(spans) for j in range(n)], device=device)
    allowed = torch.ones((longest, prompt + longest), dtype=torch.bool, device=device)
    allowed[:, prompt:] = torch.ones((longest, longest), dtype=torch.bool, device=device).tril()
    return _RowPlan(prompt, index, keep, allowed, torch.cat([prompt_positions, index.reshape(-1)[keep]]))


def _row(q, k, v, plan: _RowPlan, scaling) -> torch.Tensor:
    """One packed row: q, k, v ``[H, T, D]`` -> ``[H, T, D]`` (padding positions get zeros)."""
    p = plan.prompt
    parts = []
    if p:
        parts.append(F.scaled_dot_product_attention(q[None, :, :p], k[None, :, :p], v[None, :, :p], is_causal=True,
                                                    scale=scaling)[0])
    if plan.index is not None:
        n = plan.index.shape[0]
        qs, ks, vs = (t[:, plan.index].transpose(0, 1) for t in (q, k, v))  # [S, H, L, D]
        ks = torch.cat([k[None, :, :p].expand(n, -1, -1, -1), ks], dim=2)
        vs = torch.cat([v[None, :, :p].expand(n, -1, -1, -1), vs], dim=2)
        out = F.scaled_dot_product_attention(qs, ks, vs, attn_mask=plan.allowed, scale=scaling)  # [S, H, L, D]
        parts.append(out.transpose(0, 1).reshape(q.shape[0], -1, q.shape[2])[:, plan.keep])
    if not parts:
        return torch.zeros_like(q)
    return torch.zeros_like(q).index_copy(1, plan.positions, torch.cat(parts, dim=1))
