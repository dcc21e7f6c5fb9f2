"""Fixtures for the trainer tests: a tiny tokenizer and synthetic trip-planning conversations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

CITIES = ["Austin", "Boston", "Denver", "Miami", "Seattle", "Chicago", "Dallas", "Reno"]


def synthetic_conversations(n: int = 24) -> list[dict]:
    rows = []
    for i in range(n):
        org, dest = CITIES[i % len(CITIES)], CITIES[(i * 3 + 1) % len(CITIES)]
        days = 3 + i % 3
        plan = [{"days": d + 1, "current_city": dest if d else f"from {org} to {dest}"} for d in range(days)]
        rows.append({"messages": [
            {"role": "system", "content": "You plan trips."},
            {"role": "user", "content": f"Plan a {days}-day trip from {org} to {dest}."},
            {"role": "assistant", "content": f"<think>{days} days, {org} to {dest}.</think>\n{json.dumps(plan)}"},
        ]})
    return rows


@pytest.fixture(scope="session")
def sft_data(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sftdata") / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in synthetic_conversations()))
    return path


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory, sft_data) -> Path:
    from imagine.models.tokenizer import conversation_texts, train_tokenizer

    out = tmp_path_factory.mktemp("tok")
    train_tokenizer(conversation_texts(sft_data), 400, out)
    return out


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))
