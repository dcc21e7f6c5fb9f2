"""Fixtures for the teacher tests: a synthetic world with generated queries, and the loopback fake."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from imagine.io import write_jsonl

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def world(tmp_path_factory):
    """(db_dir, queries_path, records): the default synthetic world and 45 generated queries (5 per cell)."""
    from imagine.sandbox.database import Database
    from imagine.sandbox.synth import SynthConfig, synthesize
    from imagine.tasks.travelplanner.generation.generate import GenConfig, Generator

    root = tmp_path_factory.mktemp("masworld")
    db_dir = synthesize(root / "db", SynthConfig(seed=3))
    db = Database(db_dir)
    records = list(Generator(db, GenConfig(n=45, seed=1)).records())
    path = root / "queries.jsonl"
    write_jsonl(path, records)
    return db_dir, path, records


@pytest.fixture(scope="session")
def world_db(world):
    from imagine.sandbox.database import Database

    return Database(world[0])


class FakeServer:
    def __init__(self, *args: str):
        self.proc = subprocess.Popen([sys.executable, "-m", "imagine.mas.fake_server", "--port", "0", *args],
                                     stdout=subprocess.PIPE, text=True, cwd=ROOT)
        line = self.proc.stdout.readline()
        if not line.startswith("PORT "):
            self.proc.kill()
            raise RuntimeError(f"fake server did not start: {line!r}")
        self.port = int(line.split()[1])
        self.base_url = f"http://127.0.0.1:{self.port}/v1"

    def stats(self) -> dict:
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/stats", timeout=5) as resp:
            return orjson.loads(resp.read())

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def fake_server():
    servers: list[FakeServer] = []

    def start(*args: str) -> FakeServer:
        server = FakeServer(*args)
        servers.append(server)
        return server

    yield start
    for s in servers:
        s.close()


def wait_for(pred, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached")
