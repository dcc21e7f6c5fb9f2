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
