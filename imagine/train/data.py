"""SFT data: conversations -> token ids with an assistant-only loss, then micro-batches.

The path of a sample:

1. ``load_conversations`` reads ``{"messages": [...]}`` JSONL and rejects bad lines by file:line.
2. ``render_segments`` renders the model's chat template over growing prefixes of the conversation,
   so every piece of text is known to be prompt (no loss) or assistant output (loss). Each piece is
   tokenized on its own; chat templates put special tokens at these borders, so no BPE merge crosses
   one, and this works for any template (Qwen3's has no ``{% generation %}`` markers).
3. ``make_sample`` shifts the labels inside the sample (``targets[i]`` is the token at ``i+1``, or
   -100), so a packed row never asks one sample to predict the next one's first token.
4. The :class:`ResumableSampler` hands out the same global sample order on every rank and for any
   world size; a step's samples are split across ranks, and each rank packs its share into rows
   (``pack``: samples concatenated, position ids restart per sample, which transformers turns into
   a block-diagonal mask / flash-attn varlen) or length-groups them (``pad``: right padding, which a
   causal mask keeps invisible).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from imagine.io import DataError, iter_jsonl

IGNORE_INDEX = -100
ROLES = ("system", "user", "assistant", "tool")


@dataclass
class Sample:
    input_ids: list[int]
    targets: list[int]  # targets[i] = label for the prediction made at position i, or IGNORE_INDEX
    line: int

    @property
    def num_targets(self) -> int:
        return sum(t != IGNORE_INDEX for t in self.targets)


@dataclass
class DataStats:
    lines: int = 0
    samples: int = 0
    truncated: int = 0
    skipped_overlong: int = 0
    skipped_no_loss: int = 0
    tokens: int = 0
    target_tokens: int = 0
    longest: int = 0


def load_conversations(path: str | Path) -> list[tuple[int, list[dict]]]:
    """All conversations of a JSONL file as (line, messages); every malformed line is an error."""
    out = []
    for line, rec in iter_jsonl(path):
        where = f"{path}:{line}"
        if not isinstance(rec, dict) or "messages" not in rec:
            raise DataError(f"{where}: expected an object with a 'messages' list")
        messages = rec["messages"]
        if not isinstance(messages, list) or not messages:
            raise DataError(f"{where}: 'messages' must be a non-empty list")
        for i, msg in enumerate(messages):
            if not isinstance(msg, dict):
                raise DataError(f"{where}: messages[{i}] is not an object")
            if msg.get("role") not in ROLES:
                raise DataError(f"{where}: messages[{i}].role is {msg.get('role')!r}, expected one of {ROLES}")
            if not isinstance(msg.get("content"), str):
                raise DataError(f"{where}: messages[{i}].content must be a string")
        if not any(m["role"] == "assistant" for m in messages):
            raise DataError(f"{where}: no assistant message, so nothing to learn from")
        if messages[-1]["role"] != "assistant":
            raise DataError(f"{where}: the last message must be the assistant's")
        out.append((line, messages))
    if not out:
        raise DataError(f"{path}: no conversations")
    return out


def render_segments(tokenizer, messages: list[dict], where: str = "") -> list[tuple[str, bool]]:
    """Split the rendered conversation into (text, is_assistant_output) pieces.

    An assistant turn's text is what the full render adds beyond the render of the conversation up
    to it with the generation prompt (``<|im_start|>assistant\\n``); it includes the end-of-turn
    token, which the model must learn to emit.
    """

    def render(msgs, gen):
        return tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=gen)

    segments: list[tuple[str, bool]] = []
    done = ""
    for k, msg in enumerate(messages):
        if msg["role"] != "assistant":
            continue
        prompt = render(messages[:k], True)
        full = render(messages[: k + 1], False)
        if not prompt.startswith(done) or not full.startswith(prompt):
            raise DataError(
                f"{where}: the chat template does not render message {k} as a continuation of the "
                "earlier ones (e.g. it rewrites past assistant turns), so the loss mask cannot be derived"
            )
        if len(prompt) > len(done):
            segments.append((prompt[len(done):], False))
        segments.append((full[len(prompt):], True))
        done = full
    return segments


def tokenize_conversation(tokenizer, messages: list[dict], encode: Callable[[str], list[int]] | None = None,
                          where: str = "") -> tuple[list[int], list[bool]]:
    """Token ids and a per-token loss flag (True on assistant output)."""
    if encode is None:
        def encode(text):
            return tokenizer(text, add_special_tokens=False)["input_ids"]
    ids: list[int] = []
    loss: list[bool] = []
    for text, is_output in render_segments(tokenizer, messages, where):
        piece = encode(text)
        ids.extend(piece)
        loss.extend([is_output] * len(piece))
    return ids, loss


def make_sample(ids: list[int], loss: list[bool], *, max_len: int, overlong: str, line: int,
                where: str, stats: DataStats) -> Sample | None:
    """Apply the over-long policy and shift labels; None when the sample is dropped (counted)."""
    if len(ids) > max_len:
        if overlong == "error":
            raise DataError(f"{where}: {len(ids)} tokens exceed data.max_seq_len={max_len} "
                            "(set data.overlong to truncate, truncate_left or skip)")
        if overlong == "skip":
            stats.skipped_overlong += 1
            return None
        if overlong == "truncate_left":  # keep the end, where the assistant's answer is
            ids, loss = ids[-max_len:], loss[-max_len:]
        else:
            ids, loss = ids[:max_len], loss[:max_len]
        stats.truncated += 1
    targets = [ids[i + 1] if loss[i + 1] else IGNORE_INDEX for i in range(len(ids) - 1)] + [IGNORE_INDEX]
    sample = Sample(ids, targets, line)
    if sample.num_targets == 0:
        stats.skipped_no_loss += 1
        return None
    return sample


def build_dataset(path: str | Path, tokenizer, *, max_len: int, overlong: str,
                  encode: Callable[[str], list[int]] | None = None) -> tuple[list[Sample], DataStats]:
    stats = DataStats()
    samples = []
    for line, messages in load_conversations(path):
        stats.lines += 1
        where = f"{path}:{line}"
        ids, loss = tokenize_conversation(tokenizer, messages, encode, where)
        sample = make_sample(ids, loss, max_len=max_len, overlong=overlong, line=line, where=where, stats=stats)
        if sample is None:
            continue
        samples.append(sample)
        stats.tokens += len(sample.input_ids)
        stats.target_tokens += sample.num_targets
        stats.longest = max(stats.longest, len(sample.input_ids))
    stats.samples = len(samples)
    if not samples:
        raise DataError(f"{path}: every sample was dropped (over-long or without assistant tokens)")
    return samples, stats


def conversation_segments_texts(path: str | Path, tokenizer) -> list[str]:
    """Every text piece the dataset will encode (what the fast tokenizer must reproduce)."""
    texts = []
    for line, messages in load_conversations(path):
        texts.extend(t for t, _ in render_segments(tokenizer, messages, f"{path}:{line}"))
    return texts


class ResumableSampler:
    """Endless stream of sample indices: epoch e is a permutation seeded by (seed, e).

    Its whole state is (epoch, offset), so a checkpoint resumes mid-epoch exactly, and every rank
    (any world size) draws the same sequence.
    """

    def __init__(self, num_samples: int, seed: int, shuffle: bool = True):
        self.num_samples = num_samples
        self.seed = seed
        self.shuffle = shuffle
        self.epoch = 0
        self.offset = 0
        self._order = self._permutation(0)

    def _permutation(self, epoch: int) -> list[int]:
        if not self.shuffle:
            return list(range(self.num_samples))
        gen = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        return torch.randperm(self.num_samples, generator=gen).tolist()

    def take(self, count: int) -> list[int]:
        out = []
        while len(out) < count:
            if self.offset == self.num_samples:
                self.epoch += 1
                self.offset = 0
                self._order = self._permutation(self.epoch)
            out.append(self._order[self.offset])
            self.offset += 1
        return out

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "offset": self.offset, "num_samples": self.num_samples, "seed": self.seed}

    def load_state_dict(self, state: dict) -> None:
        if state["num_samples"] != self.num_samples:
            raise DataError(f"the checkpoint's sampler saw {state['num_samples']} samples, the data now has "
                            f"{self.num_samples}: resume with the same data")
        self.seed = state["seed"]
        self.epoch = state["epoch"]
        self.offset = state["offset"]
        self._order = self._permutation(self.epoch)


@dataclass
class MicroBatch:
    input_ids: torch.Tensor  # [B, T]
    position_ids: torch.Tensor  # [B, T]
    targets: torch.Tensor  # [B, T], IGNORE_INDEX where there is no loss
    num_tokens: int  # real (non-padding) tokens
    num_slots: int  # B * T

    def to(self, device) -> MicroBatch:
        return MicroBatch(self.input_ids.to(device), self.position_ids.to(device), self.targets.to(device),
                          self.num_tokens, self.num_slots)


def pack_rows(samples: Sequence[Sample], capacity: int) -> list[list[Sample]]:
    """First-fit decreasing: few rows, deterministic for a given list."""
    rows: list[list[Sample]] = []
    room: list[int] = []
    for s in sorted(samples, key=lambda s: -len(s.input_ids)):
        n = len(s.input_ids)
        for r, free in enumerate(room):
            if n <= free:
                rows[r].append(s)
                room[r] -= n
                break
        else:
            rows.append([s])
            room.append(capacity - n)
    return rows


def packed_micro_batch(row: Sequence[Sample]) -> MicroBatch:
    ids, pos, tgt = [], [], []
    for s in row:
        ids.extend(s.input_ids)
        tgt.extend(s.targets)
        pos.extend(range(len(s.input_ids)))
    n = len(ids)
    return MicroBatch(torch.tensor([ids]), torch.tensor([pos]), torch.tensor([tgt]), n, n)


def padded_micro_batches(samples: Sequence[Sample], tokens_per_micro_batch: int, pad_id: int) -> list[MicroBatch]:
    """Length-grouped batches: longest first, as many rows as fit ``tokens_per_micro_batch`` slots."""
    ordered = sorted(samples, key=lambda s: -len(s.input_ids))
    batches = []
    i = 0
    while i < len(ordered):
        width = len(ordered[i].input_ids)
        rows = max(1, tokens_per_micro_batch // width)
        group = ordered[i: i + rows]
        i += len(group)
        ids = torch.full((len(group), width), pad_id, dtype=torch.long)
        tgt = torch.full((len(group), width), IGNORE_INDEX, dtype=torch.long)
        for r, s in enumerate(group):
            ids[r, : len(s.input_ids)] = torch.tensor(s.input_ids)
            tgt[r, : len(s.targets)] = torch.tensor(s.targets)
        pos = torch.arange(width).expand(len(group), width).clone()
        batches.append(MicroBatch(ids, pos, tgt, sum(len(s.input_ids) for s in group), len(group) * width))
    return batches


def rank_micro_batches(samples: Sequence[Sample], *, rank: int, world_size: int, mode: str,
                       tokens_per_micro_batch: int, pad_id: int) -> list[MicroBatch]:
    """This rank's share of one optimizer step (samples ``rank::world_size``) as micro-batches."""
    mine = list(samples)[rank::world_size]
    if mode == "pack":
        return [packed_micro_batch(row) for row in pack_rows(mine, tokens_per_micro_batch)]
    return padded_micro_batches(mine, tokens_per_micro_batch, pad_id)


def dummy_micro_batch(pad_id: int) -> MicroBatch:
    """A one-token batch without targets, so a rank with less data still joins every collective."""
    return MicroBatch(torch.tensor([[pad_id]]), torch.tensor([[0]]), torch.tensor([[IGNORE_INDEX]]), 0, 0)
