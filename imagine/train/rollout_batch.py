"""Rollouts as training tensors: one completion per row, per-token advantages and log-probs aligned.

Row layout (right padded, so causal attention never sees the padding)::

    input_ids  p0 p1 p2 c0 c1 c2 pad
    targets    -- -- c0 c1 c2 -- --      targets[i] = the token predicted at position i
    mask        0  0  1  1  1  0  0      loss on completion tokens only

``sampling_logp``, ``old_logp`` and ``ref_logp`` sit at the same positions as the targets they score,
so every per-token tensor of a micro-batch lines up with the model's ``[rows, tokens]`` log-probs.

With ``train.share_prompts`` a row holds one prompt and several of its completions, so the prompt
is run forward and backward once instead of once per completion (a group's G rows repeat it G
times). Each completion attends to the prompt and to itself, never to its siblings (the model reads
``segment_ids``; see ``shared_prompt_attention``), and its positions continue from the prompt's, so
every log-prob is the one its own row would give::

    input_ids  p0 p1 | p2 a0 a1 | p2 b0 b1 b2      (the prompt's last token starts every segment,
    positions   0  1 |  2  3  4 |  2  3  4  5       since it predicts each completion's first token)
    targets    -- -- | a0 a1 a2 | b0 b1 b2 b3

The model reads that packed layout; the per-token tensors (mask, advantages, the log-probs) keep one
row per completion, and ``PolicyBatch.per_sequence`` gathers the model's output into them. The loss
therefore sees the same rows either way, sequence-level losses included.
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
    # shared prompts only: each packed position's segment ([B, T] long: 0 the prompt, k > 0 completion k,
    # -1 padding; None = plain causal rows), and where each completion token's target sits in the
    # packed rows ([rows, tokens] each)
    segment_ids: torch.Tensor | None = None
    packed_row: torch.Tensor | None = None
    packed_col: torch.Tensor | None = None
    packed_completion: torch.Tensor | None = None  # [rows, tokens] bool: the grid entries that are tokens

    def to(self, device) -> PolicyBatch:
        moved = {f.name: getattr(self, f.name) for f in fields(self)}
        for k, v in moved.items():
            if isinstance(v, torch.Tensor):
                moved[k] = v.to(device)
        return PolicyBatch(**moved)

    def per_sequence(self, packed: torch.Tensor) -> torch.Tensor:
        """The model's flat per-position output on the one-row-per-completion grid of ``mask``."""
        packed = packed.view(self.input_ids.shape)
        if self.packed_row is None:
            return packed
        # entries past a completion's end point at some packed position; zero them, as unpacked rows are
        return torch.where(self.packed_completion, packed[self.packed_row, self.packed_col], 0.0)

    @property
    def completion(self) -> torch.Tensor:
        """Where the grid holds a completion token (filtered rows included, unlike ``mask``)."""
        if self.packed_row is None:
            return self.targets != IGNORE_INDEX
        return self.packed_completion

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
                  pad_id: int, share_prompts: bool = False) -> list[PolicyBatch]:
    """``size`` completions per micro-batch: grouped by length (less padding), or by prompt when
    they share it (one packed row per prompt and micro-batch)."""
    if share_prompts:
        by_prompt: dict[tuple[int, ...], list[int]] = {}
        for i in rows:
            by_prompt.setdefault(tuple(rollouts[i].prompt_ids), []).append(i)
        order = [i for group in by_prompt.values() for i in group]
        return [shared_prompt_batch(rollouts, order[k:k + size], advantages, loss_rows, pad_id)
                for k in range(0, len(order), size)]
    by_length = sorted(rows, key=lambda i: len(rollouts[i].prompt_ids) + len(rollouts[i].completion_ids))
    return [policy_batch(rollouts, by_length[k:k + size], advantages, loss_rows, pad_id)
            for k in range(0, len(by_length), size)]


def shared_prompt_batch(rollouts: Sequence[Rollout], rows: Sequence[int], advantages: Sequence[float],
                        loss_rows: Sequence[bool], pad_id: int) -> PolicyBatch:
    """The given completions with each prompt packed once (layout in the module docstring)."""
    packed: dict[tuple[int, ...], list[int]] = {}  # prompt -> its completions here, in order
    for i in rows:
        packed.setdefault(tuple(rollouts[i].prompt_ids), []).append(i)
    lengths = [len(p) - 1 + sum(max(len(rollouts[i].completion_ids), 1) for i in members)
               for p, members in packed.items()]
    n, width = len(packed), max(lengths)
    ids = torch.full((n, width), pad_id, dtype=torch.long)
    positions = torch.zeros((n, width), dtype=torch.long)
    targets = torch.full((n, width), IGNORE_INDEX, dtype=torch.long)
    segment = torch.full((n, width), -1, dtype=torch.long)  # 0: the prompt; k > 0: completion k; -1: padding
    seq_width = max(max(len(rollouts[i].completion_ids) for i in rows), 1)
    packed_row = torch.zeros((len(rows), seq_width), dtype=torch.long)
    packed_col = torch.zeros((len(rows), seq_width), dtype=torch.long)
    packed_completion = torch.zeros((len(rows), seq_width), dtype=torch.bool)
    mask = torch.zeros((len(rows), seq_width))
    adv = torch.zeros((len(rows), seq_width))
    sampling = torch.zeros((len(rows), seq_width))
    order = []
    for b, (prompt, members) in enumerate(packed.items()):
        head = len(prompt) - 1
        ids[b, :head] = torch.tensor(prompt[:-1], dtype=torch.long)
        positions[b, :head] = torch.arange(head)
        segment[b, :head] = 0
        col = head
        for k, i in enumerate(members, start=1):
            completion = rollouts[i].completion_ids
            span = max(len(completion), 1)  # an empty completion still gets its (target-free) first token
            ids[b, col:col + span] = torch.tensor([prompt[-1], *completion[:span - 1]], dtype=torch.long)
            positions[b, col:col + span] = torch.arange(head, head + span)
            segment[b, col:col + span] = k
            if completion:
                row, n_tokens = len(order), len(completion)
                targets[b, col:col + n_tokens] = torch.tensor(completion, dtype=torch.long)
                packed_row[row, :n_tokens] = b
                packed_col[row, :n_tokens] = torch.arange(col, col + n_tokens)
                packed_completion[row, :n_tokens] = True
                sampling[row, :n_tokens] = torch.tensor(rollouts[i].logprobs[:n_tokens], dtype=torch.float32)
                adv[row, :n_tokens] = float(advantages[i])
                if loss_rows[i]:
                    mask[row, :n_tokens] = 1.0
            order.append(i)
            col += span
        positions[b, col:] = torch.arange(head, head + width - col)  # padding: any positions will do
    return PolicyBatch(ids, positions, targets, mask, adv, sampling, order, segment_ids=segment,
                       packed_row=packed_row, packed_col=packed_col, packed_completion=packed_completion)
