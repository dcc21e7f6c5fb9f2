"""SIGKILL the run at random points and resume: nothing lost, nothing duplicated, same dataset."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _cmd(db_dir, queries, out) -> list[str]:
    return [sys.executable, "-m", "imagine", "mas", "run", "--config", "configs/mas/scripted.yaml",
            "--db", str(db_dir), "--queries", str(queries), "--out", str(out), "--no-progress",
            "--set", "scripted.latency_s=0.02", "--set", "queries_in_flight=4", "--set", "seed=5"]


def _lines(out: Path) -> list[bytes]:
    return [x for x in (out / "traces.jsonl").read_bytes().split(b"\n") if x.strip()]


def _ids(out: Path) -> list[str]:
    return [orjson.loads(x)["id"] for x in (out / "traces.jsonl").read_bytes().splitlines() if x.strip()]


@pytest.mark.slow
def test_sigkill_and_resume_gives_the_uninterrupted_dataset(world, tmp_path):
    db_dir, queries, records = world
    ref = tmp_path / "ref"
    subprocess.run(_cmd(db_dir, queries, ref), check=True, cwd=ROOT, capture_output=True, timeout=120)

    out = tmp_path / "killed"
    rng = random.Random(1234)
    kills = 0
    for _ in range(12):  # bounded: each round either gets killed or finishes
        proc = subprocess.Popen(_cmd(db_dir, queries, out), cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        # kill after a random number of newly recorded queries (sometimes during start-up)
        have = len(_lines(out)) if (out / "traces.jsonl").exists() else 0
        if have >= len(records) - 1:
            break
        target = min(have + rng.randint(0, 9), len(records) - 1)
        deadline = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < deadline:
            if (out / "traces.jsonl").exists() and len(_lines(out)) >= target:
                break
            time.sleep(0.003)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
            if (out / "traces.jsonl").exists():
                lines = _lines(out)
                ids = [orjson.loads(x)["id"] for x in lines[:-1]]  # the last line may be torn
                assert len(ids) == len(set(ids))
        else:
            break
    final = subprocess.run(_cmd(db_dir, queries, out), cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert final.returncode == 0, final.stderr
    assert kills >= 2, "the run was never interrupted; the test proves nothing"

    ids = _ids(out)
    assert len(ids) == len(set(ids)) == len(records), (kills, len(ids))  # nothing lost, nothing duplicated
    got = (out / "sft.jsonl").read_bytes().splitlines()
    want = (ref / "sft.jsonl").read_bytes().splitlines()
    assert len(got) == len(want)
    differ = [orjson.loads(w)["meta"]["id"] for g, w in zip(got, want) if g != w]
    assert not differ, f"samples differ after {kills} kills: {differ}"
    runs = [orjson.loads(x) for x in (out / "runs.jsonl").read_bytes().splitlines()]
    assert runs[-1]["skipped"] > 0  # the last run really resumed


def test_ctrl_c_stops_cleanly_and_resume_completes(world, tmp_path):
    db_dir, queries, records = world
    out = tmp_path / "int"
    proc = subprocess.Popen(_cmd(db_dir, queries, out) + ["--set", "scripted.latency_s=0.05"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not ((out / "traces.jsonl").exists() and _ids(out)):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, (stdout, stderr)
    assert "interrupted" in stdout and "Traceback" not in stderr
    partial = _ids(out)
    assert 0 < len(partial) < len(records)
    done = subprocess.run(_cmd(db_dir, queries, out), cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    ids = _ids(out)
    assert sorted(ids) == sorted(r["id"] for r in records)
