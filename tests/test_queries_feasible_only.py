"""`imagine queries gen --feasible-only`: an evaluation set where every query can pass, of exactly --n
queries, identical whether it was written in one run or resumed after an interruption."""

from __future__ import annotations

import subprocess
import sys

import orjson

from tests.conftest import ROOT


def imagine(*argv):
    proc = subprocess.run([sys.executable, "-m", "imagine", *map(str, argv)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc


def test_feasible_only_writes_n_feasible_queries_and_resumes_to_the_same_file(tmp_path):
    world = tmp_path / "world"
    imagine("world", "synth", "--out", world, "--seed", 0, "--cities", 12, "--states", 4, "--restaurants", "5-8",
            "--attractions", "5-8", "--accommodations", "5-8", "--missing-route-share", 0.2)
    gen = ["queries", "gen", "--db", world, "--n", 20, "--mix", "3=1", "--seed", 1, "--feasible-only",
           "--no-progress"]
    whole = tmp_path / "whole.jsonl"
    imagine(*gen, "--out", whole)
    records = [orjson.loads(line) for line in whole.read_bytes().splitlines()]
    assert len(records) == 20 and all(r["feasible"] is True for r in records)

    part = tmp_path / "part.jsonl"
    part.write_bytes(b"".join(line + b"\n" for line in whole.read_bytes().splitlines()[:7]))
    imagine(*gen, "--out", part)
    assert part.read_bytes() == whole.read_bytes()


def test_feasible_only_says_when_the_candidates_run_out(tmp_path):
    world = tmp_path / "world"
    imagine("world", "synth", "--out", world, "--seed", 0, "--cities", 12, "--states", 4)
    proc = subprocess.run([sys.executable, "-m", "imagine", "queries", "gen", "--db", str(world), "--n", "5",
                           "--mix", "3=1", "--feasible-only", "--max-candidates", "1", "--no-progress",
                           "--out", str(tmp_path / "q.jsonl")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "--max-candidates" in proc.stderr
