"""The training sample renders the paper's exact strings and parses back with the project's parser."""

from __future__ import annotations

import json

from imagine.mas.template import render_target, sft_messages
from imagine.tasks.travelplanner.parse import parse_output

PLAN = [{"days": 1, "current_city": "from A to B", "transportation": "Self-driving, from A to B, cost: 10",
         "breakfast": "-", "attraction": "-", "lunch": "-", "dinner": "Cafe, B", "accommodation": "Inn, B"},
        {"days": 2, "current_city": "from B to A", "transportation": "Self-driving, from B to A, cost: 10",
         "breakfast": "Diner, B", "attraction": "Park, B;", "lunch": "-", "dinner": "-", "accommodation": "-"}]
MARKER = "REFLECTION(Now, I need to reflect on whether there are any errors in my reasoning above):"
END = "The reflection is over, now IMMEDIATELY output the final answer!"


def test_without_reflection_is_byte_exact():
    text = render_target("Step 1.\nStep 2.", None, PLAN)
    expected = ("<think>Step 1.\nStep 2.\n" + MARKER + "\nNo errors.\n" + END + "</think>\n"
                + "```json\n[\n" + json.dumps(PLAN[0]) + ",\n" + json.dumps(PLAN[1]) + "\n]\n```")
    assert text == expected
    parsed = parse_output(text)
    assert parsed.format_ok, parsed.error
    assert parsed.has_reflection and parsed.plan == PLAN
    assert parsed.think == "Step 1.\nStep 2.\n" + MARKER + "\nNo errors.\n" + END


def test_with_reflection_is_byte_exact():
    reflection = "Day 2 repeats a restaurant; I replace it with Diner, B."
    text = render_target("Reasoning.", reflection + "\n", PLAN)
    assert text.startswith("<think>Reasoning.\n" + MARKER + "\n" + reflection + "\n" + END + "</think>\n```json\n")
    assert "No errors." not in text
    parsed = parse_output(text)
    assert parsed.format_ok and parsed.has_reflection and parsed.plan == PLAN
    assert parsed.think.endswith(reflection + "\n" + END)


def test_messages_are_prompt_then_target():
    msgs = sft_messages("the prompt", "r", None, PLAN)
    assert [m["role"] for m in msgs] == ["user", "assistant"]
    assert msgs[0]["content"] == "the prompt" and msgs[1]["content"] == render_target("r", None, PLAN)
    # an empty reflection is not a reflection: the sample says "No errors." rather than nothing
    assert render_target("r", "  ", PLAN) == render_target("r", None, PLAN)
