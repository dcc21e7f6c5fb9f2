"""The ``imagine eval`` command-line contract."""

from __future__ import annotations

import json
import subprocess
import sys

import orjson
import pytest

from imagine.cli import main
from imagine.tasks.travelplanner.evaluator.metrics import METRIC_NAMES
from imagine.tasks.travelplanner.parse import NO_ERRORS, REFLECTION_END, REFLECTION_MARKER
from imagine.tasks.travelplanner.schema import annotated_plan
from tests.conftest import TP, TP_DB, require_shared


@pytest.fixture()
def files(tmp_path):
    require_shared()
    recs = [orjson.loads(x) for x in (TP / "train.jsonl").read_bytes().splitlines() if x.strip()]
    plans = tmp_path / "plans.jsonl"
    lines = []
    for i, rec in enumerate(recs):
        plan = annotated_plan(rec)
        if i == 0:
            lines.append({"idx": 1, "plan": []})  # not delivered
        elif i == 1:
            text = f"<think>r\n{REFLECTION_MARKER}\n{NO_ERRORS}\n{REFLECTION_END}</think>\n```json\n{json.dumps(plan)}\n```"
            lines.append({"idx": 2, "text": text})
        elif i == 2:
            bad = [dict(d) for d in plan]
            bad[1]["lunch"] = "Nope, Nowhere"
            lines.append({"idx": 3, "plan": bad})
        else:
            lines.append({"idx": i + 1, "plan": plan})
    plans.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return tmp_path, plans


def test_eval_cli_contract(files, capsys):
    tmp, plans = files
    rc = main(["eval", "--db", str(TP_DB), "--queries", str(TP / "train.jsonl"), "--plans", str(plans),
               "--json", str(tmp / "m.json"), "--per-plan", str(tmp / "pp.jsonl")])
    assert rc == 0
    out = capsys.readouterr().out
    assert "Final Pass Rate" in out
    metrics = json.loads((tmp / "m.json").read_text())
    assert [metrics[k] for k in METRIC_NAMES] == pytest.approx([44 / 45, 351 / 360, 43 / 45, 103 / 105, 43 / 45, 43 / 45])
    assert metrics["counts"]["Hard Constraint Micro Pass Rate"] == {"passed": 103, "total": 105}
    assert set(metrics["by_level_days"]) == {"easy", "medium", "hard"}
    per = [json.loads(x) for x in (tmp / "pp.jsonl").read_text().splitlines()]
    assert len(per) == 45 and per[0] == {"idx": 1, "commonsense": None, "hard": None, "reasons": {}}
    assert per[2]["commonsense"]["is_valid_information_in_sandbox"] is False and per[2]["hard"] is None
    assert set(per[3]["commonsense"]) == {
        "is_reasonable_visiting_city", "is_valid_restaurants", "is_valid_attractions", "is_valid_accommodation",
        "is_valid_transportation", "is_valid_information_in_current_city", "is_valid_information_in_sandbox",
        "is_not_absent"}
    assert list(per[3]["hard"]) == ["valid_cuisine", "valid_room_rule", "valid_transportation", "valid_room_type",
                                    "valid_cost"]


def test_eval_cli_bad_input_exits_nonzero(files, tmp_path):
    _, plans = files
    short = tmp_path / "short.jsonl"
    short.write_text(plans.read_text().splitlines()[0] + "\n")
    proc = subprocess.run([sys.executable, "-m", "imagine", "eval", "--db", str(TP_DB), "--queries",
                           str(TP / "train.jsonl"), "--plans", str(short)], capture_output=True, text=True)
    assert proc.returncode == 2 and "1 plan lines for 45 queries" in proc.stderr
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"idx": 1, "plan": []}\n{"idx": 2, "plan": [\n')
    proc = subprocess.run([sys.executable, "-m", "imagine", "eval", "--db", str(TP_DB), "--queries",
                           str(TP / "train.jsonl"), "--plans", str(broken)], capture_output=True, text=True)
    assert proc.returncode == 2 and "broken.jsonl:2: invalid JSON" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "imagine", "eval", "--db", str(tmp_path), "--queries",
                           str(TP / "train.jsonl"), "--plans", str(plans)], capture_output=True, text=True)
    assert proc.returncode == 2 and "citySet_with_states.txt: missing database file" in proc.stderr
