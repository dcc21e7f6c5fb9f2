"""Shared test fixtures. The official TravelPlanner data lives in ../shared beside the checkout (CI has it)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = (ROOT.parent / "shared").resolve()
TP = SHARED / "travelplanner"
TP_DB = TP / "database"

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("WANDB_MODE", "offline")


def require_shared() -> None:
    if not TP_DB.is_dir():
        pytest.skip(f"official TravelPlanner data not found at {TP}")


@pytest.fixture(scope="session")
def tp_db():
    require_shared()
    from imagine.sandbox.database import Database

    return Database(TP_DB)


@pytest.fixture(scope="session")
def train_pairs():
    """(Query, annotated plan) for the 45 official train queries."""
    require_shared()
    import orjson

    from imagine.tasks.travelplanner.schema import annotated_plan, query_from_record

    recs = [orjson.loads(x) for x in (TP / "train.jsonl").read_bytes().splitlines() if x.strip()]
    return [(query_from_record(r), annotated_plan(r)) for r in recs]
