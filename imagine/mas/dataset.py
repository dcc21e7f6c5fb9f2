"""Traces -> the SFT dataset ``train.py sft`` reads: ``{"messages": [...], "meta": {...}}`` per line.

Written whole and atomically, in query-file order, from the traces alone: the same traces always give
the same bytes, which is what makes an interrupted-and-resumed run comparable to an uninterrupted one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from imagine.io import write_jsonl
from imagine.mas.template import sft_messages
from imagine.tasks.travelplanner.parse import check_plan_shape

SFT_FILE = "sft.jsonl"


def sample(rec: dict[str, Any]) -> dict[str, Any]:
    final = rec["eval"]["final"]
    first = rec["eval"]["first"]
    return {
        "messages": sft_messages(rec["prompt"], rec["reasoning"], rec["reflection"], rec["final_plan"]),
        "meta": {
            "id": rec["id"], "level": rec["level"], "days": rec["days"],
            "judges": rec["judges"], "reflected": rec["reflected"],
            "first_final_pass": first["final_pass"], "final_pass": final["final_pass"],
            "commonsense": final["commonsense"], "hard": final["hard"],
            "prompt_version": rec.get("prompt_version"),
        },
    }


def build_dataset(traces: dict[str, dict], order: list[str], out_path: str | Path,
                  only_passing: bool = False) -> int:
    """Write one sample per finished query (in ``order``); returns the number written."""
    rows = []
    for qid in order:
        rec = traces.get(qid)
        if rec is None or rec.get("status") != "finished":
            continue
        if only_passing and not rec["eval"]["final"]["final_pass"]:
            continue
        if check_plan_shape(rec["final_plan"]) is not None:
            continue  # an empty or malformed final plan would teach the format the reward punishes
        rows.append(sample(rec))
    write_jsonl(out_path, rows)
    return len(rows)
