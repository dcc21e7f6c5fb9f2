"""The demo's teacher choices: a short Reasoner prompt version, concise narration, shared templates."""

from __future__ import annotations

from imagine.mas.backends.scripted import concise
from imagine.tasks.travelplanner.student.prompts import load_prompt


def test_demo_prompt_version_shortens_only_the_reasoner():
    assert len(load_prompt("reasoner", "demo")) < len(load_prompt("reasoner", "v1")) / 3
    assert "{{query}}" in load_prompt("reasoner", "demo") and "{{reference}}" in load_prompt("reasoner", "demo")
    for role in ("judge", "reflector"):  # not in demo/: read from v1
        assert load_prompt(role, "demo") == load_prompt(role, "v1")


def test_concise_narration_keeps_decisions_and_drops_alternatives():
    trace = [
        "Task: 3-day trip from A to B for 1 person, budget $1200, constraints: none.",
        "Candidate cities: B; I must visit 1 of them and return to A.",
        "Route A -> B -> A with nights 2: travel on days 1, 3.",
        "Leg A -> B on 2022-03-16: take self-driving ($63 for the party); alternatives: taxi $1268.",
        "Stay in B for 2 nights: Nice flat (Private room, $135 x 1 room x 2); skipped 3 failing minimum nights.",
        "Meals in B: X ($13); Y ($19); Z ($28).",
        "Meals: the cheapest distinct restaurants of each city, $60 in total.",
        "Total $462 = transport $132 + stays $270 + meals $60 <= budget $1200: the plan is feasible.",
    ]
    assert concise(trace) == [
        "Route A -> B -> A with nights 2: travel on days 1, 3.",
        "Leg A -> B on 2022-03-16: take self-driving ($63 for the party).",
        "Stay in B for 2 nights: Nice flat (Private room, $135 x 1 room x 2).",
        "Meals in B: X ($13); Y ($19); Z ($28).",
        "Total $462 = transport $132 + stays $270 + meals $60 <= budget $1200: the plan is feasible.",
    ]
