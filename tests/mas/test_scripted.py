"""The scripted teacher at its defaults: the MAS's final answers beat its Reasoner's first answers."""

from __future__ import annotations

from imagine.config import load_config
from imagine.io import read_jsonl
from imagine.mas.config import MasConfig
from imagine.mas.dataset import build_dataset
from imagine.mas.report import render, summarize
from imagine.mas.runner import load_queries, read_traces, run_sync
from imagine.tasks.travelplanner.parse import parse_output


def test_mas_final_pass_clearly_beats_first_answer(world, world_db, tmp_path, capsys):
    db_dir, queries_path, _ = world
    cfg = load_config(MasConfig, "configs/mas/scripted.yaml", [f"db={db_dir}"])
    queries = load_queries(queries_path)
    summary = run_sync(cfg, world_db, queries, tmp_path)
    assert summary.finished == len(queries) and summary.failed == 0
    traces = read_traces(tmp_path)
    first = sum(t["eval"]["first"]["final_pass"] for t in traces.values()) / len(traces)
    final = sum(t["eval"]["final"]["final_pass"] for t in traces.values()) / len(traces)
    with capsys.disabled():
        print(f"\nscripted teacher on {len(traces)} generated queries: Reasoner first answer final pass "
              f"{first:.1%}, MAS final answer {final:.1%}")
    assert final >= first + 0.10

    # the two-judge rule matters: 'either flags' catches more real errors than each judge alone
    wrong = [t for t in traces.values() if not t["eval"]["first"]["final_pass"]]
    caught = [sum(t["judges"][j] == "Errors exist." for t in wrong) for j in range(2)]
    either = sum("Errors exist." in t["judges"] for t in wrong)
    assert either > max(caught)
    # a reflection happens exactly when a judge flags
    assert all(t["reflected"] == ("Errors exist." in t["judges"]) for t in traces.values())

    n = build_dataset(traces, [qid for qid, _ in queries], tmp_path / "sft.jsonl")
    rows = read_jsonl(tmp_path / "sft.jsonl")
    assert n == len(rows) > 0
    for row in rows:
        parsed = parse_output(row["messages"][-1]["content"])
        assert parsed.format_ok and parsed.has_reflection, parsed.error
        assert ("No errors." in parsed.think) != row["meta"]["reflected"]
    text = render(summarize(tmp_path))
    assert f"{100 * first:.1f}% | {100 * final:.1f}% |" in text  # the report's Final Pass Rate row
