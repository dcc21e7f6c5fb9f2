"""The copy warm-up's samples: the answer is always a row of the table the question names."""

from __future__ import annotations

import re

import pytest

from imagine.demo.copy_task import copy_samples, main


@pytest.fixture(scope="module")
def world_dir(tmp_path_factory):
    from imagine.sandbox.synth import SynthConfig, synthesize

    return synthesize(tmp_path_factory.mktemp("copyworld") / "db", SynthConfig.tiny(seed=2))


@pytest.fixture(scope="module")
def world_db(world_dir):
    from imagine.sandbox.database import Database

    return Database(world_dir)


def test_every_answer_is_the_asked_row_of_the_asked_table(world_db):
    samples = copy_samples(world_db, 200, seed=3)
    assert samples == copy_samples(world_db, 200, seed=3)  # deterministic by seed
    kinds = set()
    for s in samples:
        user, answer = s["messages"][0]["content"], s["messages"][1]["content"]
        k, a, b = re.search(r"row (\d+) of the flights from (.+?) to (.+?)( as a plan's transportation)?\.$",
                            user).group(1, 2, 3)
        table = user.split(f"## Flight from {a} to {b} on ", 1)[1].split("\n\n", 1)[0].split("\n")[1:]
        row = table[int(k) - 1]
        number, _price, times = row.split("; ")
        if "transportation" in user:
            kinds.add("plan")
            dep, arr = times.split("-")
            assert answer == f"Flight Number: {number}, from {a} to {b}, Departure Time: {dep}, Arrival Time: {arr}"
        else:
            kinds.add("verbatim")
            assert answer == row
    assert kinds == {"plan", "verbatim"}


def test_cli_writes_the_samples(world_dir, tmp_path, capsys):
    out = tmp_path / "copy.jsonl"
    assert main(["--db", str(world_dir), "--n", "5", "--out", str(out)]) == 0
    assert len(out.read_text().splitlines()) == 5
    assert main(["--db", str(world_dir), "--n", "0", "--out", str(out)]) == 2
