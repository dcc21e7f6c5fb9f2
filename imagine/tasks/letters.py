"""A toy task any tiny model can learn in a few dozen GRPO steps: write one letter as often as possible.

It exists to test the GRPO loop itself (does mean reward rise? does resume reproduce?) through the
same task interface TravelPlanner uses, in seconds and from a random initialisation. The reward of a
completion is the share of its characters that are the target letter, so it is dense and graded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from imagine.config import from_dict
from imagine.train.task import Score


@dataclass
class LettersOptions:
    letter: str = "o"
    prompts: int = 16

    def validate(self) -> None:
        if len(self.letter) != 1:
            raise ValueError("letter must be one character")
        if self.prompts < 1:
            raise ValueError("prompts must be positive")


class LettersTask:
    def __init__(self, opts: LettersOptions):
        self.opts = opts

    def prompts(self) -> list[list[dict[str, str]]]:
        return [[{"role": "user", "content": f"{i}: write {self.opts.letter}"}] for i in range(self.opts.prompts)]

    def score(self, prompt_indices: Sequence[int], texts: Sequence[str]) -> list[Score]:
        out = []
        for text in texts:
            share = text.count(self.opts.letter) / max(1, len(text))
            out.append(Score(reward=share, components={"letter_share": share},
                             counts={"letters": (text.count(self.opts.letter), len(text))}))
        return out


def make_task(options: dict) -> LettersTask:
    return LettersTask(from_dict(LettersOptions, options, "task.options"))
