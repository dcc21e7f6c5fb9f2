"""The IMAGINE training sample: reasoning, reflection marker, reflection or "No errors.", closing
sentence, all inside ``<think>``, then the final JSON plan (paper notes §5).

The three strings come from the parser so that the data we write and the reward that reads the
model's output can never drift apart.
"""

from __future__ import annotations

import json
from typing import Any

from imagine.tasks.travelplanner.parse import NO_ERRORS, REFLECTION_END, REFLECTION_MARKER

__all__ = ["NO_ERRORS", "REFLECTION_END", "REFLECTION_MARKER", "render_plan", "render_target", "sft_messages"]


def render_plan(plan: Any) -> str:
    """The final answer as the parser reads it: a fenced JSON list, one day per line (indented JSON
    spends about a third of a small student's answer tokens on whitespace)."""
    if isinstance(plan, list) and plan:
        body = "[\n" + ",\n".join(json.dumps(day, ensure_ascii=False) for day in plan) + "\n]"
    else:
        body = json.dumps(plan, ensure_ascii=False)
    return "```json\n" + body + "\n```"


def render_target(reasoning: str, reflection: str | None, final_plan: Any) -> str:
    """The assistant turn. ``reflection`` None means both judges said "No errors."."""
    body = reflection.strip() if reflection is not None and reflection.strip() else NO_ERRORS
    think = f"{reasoning.strip()}\n{REFLECTION_MARKER}\n{body}\n{REFLECTION_END}"
    return f"<think>{think}</think>\n{render_plan(final_plan)}"


def sft_messages(prompt: str, reasoning: str, reflection: str | None, final_plan: Any,
                 system: str | None = None) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": prompt})
    messages.append({"role": "assistant", "content": render_target(reasoning, reflection, final_plan)})
    return messages
