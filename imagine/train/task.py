"""The seam between the GRPO trainer and a task: prompts in, scored completions out.

The trainer imports no task. A task is named in the config (``task.name``) and found through
:data:`TASKS` or as ``"package.module:factory"``; the factory gets ``task.options`` (a dict the task
checks itself, naming keys as ``task.options.<key>``) and returns an object with:

- ``prompts() -> list[list[dict]]``: the chat messages of every training prompt;
- ``score(prompt_indices, texts) -> list[Score]``: one :class:`Score` per completion.

Scores carry everything the logs need, in a form that sums across ranks: per-rollout components
(averaged) and (numerator, denominator) counts (summed, then divided: micro-averaged metrics such as
the official TravelPlanner pass rates stay exact over any number of ranks).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class Score:
    reward: float
    components: dict[str, float] = field(default_factory=dict)
    counts: dict[str, tuple[float, float]] = field(default_factory=dict)


class Task(Protocol):
    def prompts(self) -> list[list[dict[str, str]]]: ...

    def score(self, prompt_indices: Sequence[int], texts: Sequence[str]) -> list[Score]: ...


TASKS = {
    "travelplanner": "imagine.tasks.travelplanner.student.rl_task:make_task",
    "letters": "imagine.tasks.letters:make_task",
}


def load_task(name: str, options: dict[str, Any]) -> Task:
    target = TASKS.get(name, name)
    if ":" not in target:
        raise ValueError(f"task.name: unknown task {name!r}; known: {', '.join(sorted(TASKS))} "
                         "(or give 'package.module:factory')")
    module, factory = target.split(":", 1)
    return getattr(importlib.import_module(module), factory)(options)
