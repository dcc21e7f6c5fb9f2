"""Rollouts as training tensors: one completion per row, per-token advantages and log-probs aligned.

Row layout (right padded, so causal attention never sees the padding)::

    input_ids  p0 p1 p2 c0 c1 c2 pad
    targets    -- -- c0 c1 c2 -- --      targets[i] = the token predicted at position i
    mask        0  0  1  1  1  0  0      loss on completion tokens only

``sampling_logp``, ``old_logp`` and ``ref_logp`` sit at the same positions as the targets they score,
so every per-token tensor of a micro-batch lines up with the model's ``[rows, tokens]`` log-probs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import torch

from imagine.rollout import Rollout
from imagine.train.data import IGNORE_INDEX


@dataclass
class PolicyBatch:
    input_ids: torch.Tensor  # [B, T] long
    position_ids: torch.Tensor  # [B, T] long
    targets: torch.Tensor  # [B, T] long, IGNORE_INDEX off the completion
    mask: torch.Tensor  # [B, T] float
    advantages: torch.Tensor  # [B, T] float
    sampling_logp: torch.Tensor  # [B, T] float
    rows: list[int]  # index of each row in this rank's rollout list (empty for a filler batch)
    old_logp: torch.Tensor | None = None
    ref_logp: torch.Tensor | None = None

    def to(self, device) -> PolicyBatch:
        moved = {f.name: getattr(self, f.name) for f in fields(self)}
        for k, v in moved.items():
            if isinstance(v, torch.Tensor):
                moved[k] = v.to(device)
        return PolicyBatch(**moved)

    @property
    def num_tokens(self) -> int:
        return int(self.mask.sum())


def policy_batch(rollouts: Sequence[Rollout], rows: Sequence[int], advantages: Sequence[float],
                 loss_rows: Sequence[bool], pad_id: int) -> PolicyBatch:
    """Pack the given rows; a row whose ``loss_rows`` entry is False keeps a zero mask (filtered)."""
    chosen = [rollouts[i] for i in rows]
    width = max(len(r.prompt_ids) + len(r.completion_ids) for r in chosen)
    n = len(chosen)
    ids = torch.full((n, width), pad_id, dtype=torch.long)
    targets = torch.full((n, width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((n, width))
    adv = torch.zeros((n, width))
    sampling = torch.zeros((n, width))
    for b, (i, r) in enumerate(zip(rows, chosen)):
        seq = r.prompt_ids + r.completion_ids
        ids[b, :len(seq)] = torch.tensor(seq)
        start, k = len(r.prompt_ids) - 1, len(r.completion_ids)
        if k == 0:
            continue
        targets[b, start:start + k] = torch.tensor(r.completion_ids)
        sampling[b, start:start + k] = torch.tensor(r.logprobs[:k], dtype=torch.float32)
        if loss_rows[i]:
            mask[b, start:start + k] = 1.0
        adv[b, start:start + k] = float(advantages[i])
    positions = torch.arange(width).expand(n, width).contiguous()
    return PolicyBatch(ids, positions, targets, mask, adv, sampling, list(rows))


def filler_batch(pad_id: int) -> PolicyBatch:
    """A one-token row with nothing to learn: ranks with fewer micro-batches still join every collective."""
    z = torch.zeros((1, 1))
    return PolicyBatch(torch.full((1, 1), pad_id, dtype=torch.long), torch.zeros((1, 1), dtype=torch.long),
                       torch.full((1, 1), IGNORE_INDEX, dtype=torch.long), z, z.clone(), z.clone(), [])


def mini_batch_rows(num_rows: int, mini_batches: int, generator: torch.Generator) -> list[list[int]]:
    """A seeded shuffle of this rank's rows cut into ``mini_batches`` near-equal parts (some may be empty)."""
    order = torch.randperm(num_rows, generator=generator).tolist() if num_rows else []
    return [order[k::mini_batches] for k in range(mini_batches)]


def micro_batches(rollouts: Sequence[Rollout], rows: Sequence[int], advantages, loss_rows, *, size: int,
                  pad_id: int) -> list[PolicyBatch]:
    """Rows grouped by length (less padding), ``size`` rows per micro-batch."""
    by_length = sorted(rows, key=lambda i: len(rollouts[i].prompt_ids) + len(rollouts[i].completion_ids))
    return [policy_batch(rollouts, by_length[k:k + size], advantages, loss_rows, pad_id)
            for k in range(0, len(by_length), size)]
