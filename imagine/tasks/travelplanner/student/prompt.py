"""The student's prompt: exactly the user turn the multi-agent Reasoner saw.

SFT trains on ``[user = Reasoner prompt, assistant = reflection trace]``, so sampling the student
(evaluation, GRPO rollouts) must rebuild that same user turn, byte for byte, from a query record. Both
the teacher and the student call these functions; a prompt that drifted between them would test the
student on a distribution it never saw.
"""

from __future__ import annotations

from imagine.tasks.travelplanner.reference import build_reference, render_reference
from imagine.tasks.travelplanner.schema import Query
from imagine.tasks.travelplanner.student.prompts import fill, load_prompt


def reference_text(query: Query, db=None, style: str = "compact") -> str:
    """The query's reference information as prompt text; rebuilt from ``db`` when the record lacks it."""
    ref = query.extra.get("reference_information")
    if not isinstance(ref, dict):
        if db is None:
            raise ValueError(f"query {query.extra.get('id', query.query[:60])!r}: no structured reference_information and no database to build it")
        ref = build_reference(db, query)
    return render_reference(ref, style)


def planner_prompt(query: Query, reference: str, template: str) -> str:
    return fill(template, query=query.query, reference=reference)


def student_messages(query: Query, db=None, *, style: str = "compact", prompt_version: str = "v1",
                     prompt: str = "reasoner") -> list[dict[str, str]]:
    """Chat messages for the student (defaults: those of ``configs/mas/scripted.yaml``)."""
    template = load_prompt(prompt, prompt_version)
    return [{"role": "user", "content": planner_prompt(query, reference_text(query, db, style), template)}]


def messages_from_text(query_text: str, reference: dict, *, style: str = "compact", prompt_version: str = "v1",
                       prompt: str = "reasoner") -> list[dict[str, str]]:
    """The same user turn from the query's own words and a structured reference, for benchmark splits
    whose structured fields are hidden (the test split): nothing else about the query is needed."""
    template = load_prompt(prompt, prompt_version)
    return [{"role": "user", "content": fill(template, query=query_text, reference=render_reference(reference, style))}]
