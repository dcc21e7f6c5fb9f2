"""The rollout interface the GRPO loop and the sampling CLI share, whatever engine samples.

An engine returns, for every completion, the log-prob of each sampled token under the distribution it
actually sampled from (after temperature): truncated importance sampling compares these with the
trainer's own log-probs, so a raw (pre-temperature) log-prob would bias every weight.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import torch


@dataclass
class SamplingConfig:
    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 1024
    # Prompt i is sampled with seed + i, so a completion does not depend on what else is in the batch.
    seed: int | None = None
    stop_token_ids: list[int] = field(default_factory=list)


@dataclass
class Rollout:
    prompt_index: int
    prompt_ids: list[int]
    completion_ids: list[int]
    logprobs: list[float]  # log-prob of each completion token under the sampling distribution
    text: str
    finish_reason: str  # "stop" or "length"


class RolloutEngine(Protocol):
    tokenizer: object

    def generate(self, prompts: Sequence[list[int]], sampling: SamplingConfig) -> list[Rollout]: ...

    def sync_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None: ...

    def close(self) -> None: ...


class WeightNameError(ValueError):
    """A weight sync named tensors the engine does not have, or left some out."""


def full_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """State dict with ``lm_head.weight`` present even when tied: an engine's reload expects every tensor."""
    state = dict(model.state_dict())
    if "lm_head.weight" not in state and hasattr(model, "get_output_embeddings"):
        out = model.get_output_embeddings()
        if out is not None:
            state["lm_head.weight"] = out.weight
    return state


class NameCheck:
    """Wraps a weight stream and, once it is drained, raises unless it named exactly ``expected``.

    Streaming matters at 8B: the sync must never hold a second full copy just to check the names.
    """

    def __init__(self, named_tensors: Iterable[tuple[str, torch.Tensor]], expected: set[str]):
        self._source = named_tensors
        self.expected = expected
        self.seen: set[str] = set()

    def __iter__(self) -> Iterator[tuple[str, torch.Tensor]]:
        for name, tensor in self._source:
            if name not in self.expected:
                raise WeightNameError(f"weight sync: unknown tensor {name!r} (the engine's model has no such weight)")
            self.seen.add(name)
            yield name, tensor

    def verify(self) -> None:
        missing = sorted(self.expected - self.seen)
        if missing:
            raise WeightNameError(f"weight sync: {len(missing)} weights missing, e.g. {missing[:5]}")
