"""The demo's teacher choices: a short Reasoner prompt version, concise narration, shared templates."""

from __future__ import annotations

from imagine.mas.backends.scripted import concise, minimal
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


def test_minimal_narration_keeps_the_choices_without_prices_dates_or_sums():
    trace = [
        "Route A -> B -> A with nights 2: travel on days 1, 3.",
        "Leg A -> B on 2022-03-16: take flight F1234567 at $97 per person ($194 for the party); alternatives: taxi $1268.",
        "Leg B -> A on 2022-03-18: take self-driving ($63 for the party).",
        "Stay in B for 2 nights: Nice flat (with garden) (Private room, $135 x 1 room x 2).",
        "Meals in B: X ($13); Y ($36, American); Z ($38, Italian/Indian).",
        "Meals cover the required cuisines American, Italian, Indian at $176 in total for 2 people.",
        "1 combinations were over budget; the cheapest costs $2855 > $1500.",
        "Total $462 = transport $132 + stays $270 + meals $60 <= budget $1200: the plan is feasible.",
        "Day 2 dinner: W, B, well rated.",
    ]
    assert minimal(trace) == [
        "Route A -> B -> A with nights 2: travel on days 1, 3.",
        "Leg A -> B: flight F1234567.",
        "Leg B -> A: self-driving.",
        "Stay in B for 2 nights: Nice flat (with garden).",
        "Meals in B: X; Y (American); Z (Italian/Indian).",
        "Meals cover the required cuisines American, Italian, Indian.",
        "1 combinations were over budget.",
        "Day 2 dinner: W, B, well rated.",
    ]


def test_minimal_narration_changes_the_words_not_the_answers(world, world_db, tmp_path):
    """The demo teacher (minimal narration) reasons without a '$' amount before its reflection, and
    gives the same plans and verdicts as with concise narration: narration is presentation only."""
    import json

    from imagine.config import load_config
    from imagine.mas.config import MasConfig
    from imagine.mas.dataset import build_dataset
    from imagine.mas.runner import load_queries, read_traces, run_sync

    db_dir, queries_path, _ = world
    queries = load_queries(queries_path)
    finals = {}
    for narration in ("concise", "minimal"):
        cfg = load_config(MasConfig, "configs/mas/demo.yaml", [f"db={db_dir}", f"scripted.narration={narration}"])
        run_sync(cfg, world_db, queries, tmp_path / narration)
        traces = read_traces(tmp_path / narration)
        finals[narration] = {qid: (t["eval"]["final"]["final_pass"], json.dumps(t["eval"]["final"], sort_keys=True))
                             for qid, t in traces.items()}
        build_dataset(traces, [qid for qid, _ in queries], tmp_path / f"{narration}.jsonl")
        samples = [json.loads(line) for line in (tmp_path / f"{narration}.jsonl").read_text().splitlines()]
        reasoning = [s["messages"][-1]["content"].split("REFLECTION(")[0] for s in samples]
        if narration == "minimal":
            assert samples and not any("$" in r for r in reasoning)
        else:
            assert any("$" in r for r in reasoning)
    assert finals["concise"] == finals["minimal"]
