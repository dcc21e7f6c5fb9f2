"""Model text -> think span, reflection flag and plan.

The GRPO reward and ``imagine eval --plans`` with ``text`` entries both start here, and a model in
training produces every kind of garbage, so nothing in this module raises: each failure is a
:class:`ParsedOutput` with ``format_ok=False`` and an ``error`` that says what was wrong.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from imagine.tasks.travelplanner.schema import PLAN_KEYS

# The three strings of the IMAGINE training template (paper notes §5), verbatim.
REFLECTION_MARKER = "REFLECTION(Now, I need to reflect on whether there are any errors in my reasoning above):"
NO_ERRORS = "No errors."
REFLECTION_END = "The reflection is over, now IMMEDIATELY output the final answer!"
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"

DEFAULT_REFLECTION_PATTERN = r"REFLECTION\(\s*Now,\s*I need to reflect"
_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)
_DECODER = json.JSONDecoder()


@dataclass
class ParsedOutput:
    format_ok: bool
    think: str | None = None
    has_reflection: bool = False
    plan: list[Any] | None = None  # any JSON list found in the answer, even if not well-formed days
    answer: str = ""
    error: str | None = None
    warnings: list[str] = field(default_factory=list)


def split_think(text: str, require_open_tag: bool = True) -> tuple[str | None, str, str | None]:
    """Return (think, answer, error). Without ``require_open_tag`` a missing ``<think>`` is allowed,
    for chat templates that put the opening tag into the prompt."""
    close = text.find(THINK_CLOSE)
    if close < 0:
        return None, text, "no </think> closing tag"
    head = text[:close]
    open_at = head.find(THINK_OPEN)
    if open_at < 0:
        if require_open_tag:
            return None, text[close + len(THINK_CLOSE):], "no <think> opening tag before </think>"
        think = head
    else:
        if head[:open_at].strip():
            return None, text[close + len(THINK_CLOSE):], "text before <think>"
        think = head[open_at + len(THINK_OPEN):]
    if THINK_OPEN in think:
        return think, text[close + len(THINK_CLOSE):], "nested <think> tag"
    return think, text[close + len(THINK_CLOSE):], None


def extract_json_plan(answer: str) -> tuple[Any, str | None]:
    """Find the JSON list in an answer (inside a ```json fence if there is one)."""
    fenced = _FENCE.search(answer)
    body = fenced.group(1) if fenced else answer
    start = body.find("[")
    if start < 0:
        return None, "no JSON list in the answer"
    try:
        value, end = _DECODER.raw_decode(body, start)
    except (json.JSONDecodeError, RecursionError) as exc:
        return None, f"answer is not valid JSON: {exc}"
    if not fenced and body[end:].strip():
        return value, "text after the JSON plan"
    return value, None


def check_plan_shape(plan: Any) -> str | None:
    """The JSON format the reward demands: a non-empty list of day dicts with every TravelPlanner key
    holding a string (``days`` may be an int)."""
    if not isinstance(plan, list):
        return f"plan is a {type(plan).__name__}, not a list"
    if not plan:
        return "plan is an empty list"
    for i, day in enumerate(plan, 1):
        if not isinstance(day, dict):
            return f"day {i} is a {type(day).__name__}, not an object"
        if not day:
            continue  # official padding entries `{}` are allowed
        for key in PLAN_KEYS:
            if key not in day:
                return f"day {i} lacks key {key!r}"
            value = day[key]
            if key == "days":
                if isinstance(value, bool) or not isinstance(value, (int, str)):
                    return f"day {i} key 'days' must be an integer"
            elif not isinstance(value, str):
                return f"day {i} key {key!r} must be a string, got {type(value).__name__}"
    return None


def parse_output(
    text: Any,
    *,
    require_think: bool = True,
    require_open_tag: bool = True,
    reflection_pattern: str = DEFAULT_REFLECTION_PATTERN,
) -> ParsedOutput:
    """Parse a model output. ``format_ok`` means: think span present (if required), a JSON list of
    well-formed day dicts after it, and nothing but whitespace around it (a fence is allowed)."""
    if not isinstance(text, str):
        return ParsedOutput(format_ok=False, error=f"output is a {type(text).__name__}, not text")
    warnings: list[str] = []
    think, answer, think_error = split_think(text, require_open_tag=require_open_tag)
    has_reflection = bool(think is not None and re.search(reflection_pattern, think))
    plan, json_error = extract_json_plan(answer)
    error = None
    if require_think and think_error:
        error = think_error
    elif json_error and plan is None:
        error = json_error
    else:
        if think_error:
            warnings.append(think_error)
        if json_error:
            error = json_error
        else:
            error = check_plan_shape(plan)
    return ParsedOutput(
        format_ok=error is None, think=think, has_reflection=has_reflection,
        plan=plan if isinstance(plan, list) else None, answer=answer.strip(), error=error,
        warnings=warnings,
    )
