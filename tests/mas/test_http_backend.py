"""The OpenAI-compatible backend against a real loopback server with injected faults."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
import yaml

from imagine.io import read_jsonl, write_jsonl

ROOT = Path(__file__).resolve().parents[2]
SECRET = "sk-test-VERY-SECRET-0123456789"


def _http_config(path: Path, base_url: str, *, retries: int, timeout: float, db: str) -> Path:
    def role(model: str) -> dict:
        return {"backend": "openai", "base_url": base_url, "model": model, "api_key_env": "IMAGINE_FAKE_KEY",
                "timeout_s": timeout, "connect_timeout_s": 2.0, "max_retries": retries, "backoff_s": 0.01,
                "backoff_max_s": 0.05, "concurrency": 16, "price_in_per_mtok": 0.55, "price_out_per_mtok": 2.19}

    cfg = {"db": db, "queries_in_flight": 16, "reasoner": role("fake-reasoner"),
           "judges": [role("fake-judge-a"), role("fake-judge-b")], "reflector": role("fake-reflector")}
    path.write_text(yaml.safe_dump(cfg))
    return path


def _run_cli(*args: str, env_key: str | None = SECRET) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("IMAGINE_FAKE_KEY", None)
    if env_key is not None:
        env["IMAGINE_FAKE_KEY"] = env_key
    return subprocess.run([sys.executable, "-m", "imagine", "mas", *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=120)


def test_faults_end_finished_or_failed_with_bounded_retries_and_no_key_leak(world, fake_server, tmp_path):
    db_dir, _, records = world
    recs = [dict(r) for r in records[:30]]
    doomed = {recs[i]["id"] for i in (3, 17, 25)}
    for r in recs:
        if r["id"] in doomed:
            r["query"] = r["query"] + " ALWAYS_FAIL"
    queries = tmp_path / "q.jsonl"
    write_jsonl(queries, recs)
    retries = 9
    server = fake_server("--fault-rate", "0.3", "--stall-s", "3", "--seed", "7", "--judge-flag-rate", "0.5")
    cfg = _http_config(tmp_path / "http.yaml", server.base_url, retries=retries, timeout=0.4, db=str(db_dir))
    out = tmp_path / "run"
    proc = _run_cli("run", "--config", str(cfg), "--queries", str(queries), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    traces = read_jsonl(out / "traces.jsonl")
    assert sorted(t["id"] for t in traces) == sorted(r["id"] for r in recs)  # every query, once
    stats = server.stats()
    for fault in ("429", "500", "stall", "truncated", "garbage"):
        assert stats.get(fault, 0) > 0, (fault, stats)
    for t in traces:
        if t["id"] in doomed:
            assert t["status"] == "failed"
            assert f"gave up after {retries + 1} attempts" in t["reason"] and "HTTP 500" in t["reason"]
        else:
            assert t["status"] == "finished", t.get("reason")
            assert t["reasoning"].startswith("Step 1: pick the route")  # reasoning_content captured
            assert len(t["first_plan"]) == 3 and t["judges"] and all(c["status"] == "ok" for c in t["calls"])
            assert t["reflected"] == ("Errors exist." in t["judges"])
    # bounded: each doomed query made exactly max_retries + 1 reasoner requests, then stopped
    assert stats["always_fail"] == len(doomed) * (retries + 1)
    retried = [e for t in traces for c in t["calls"] for e in c.get("retried", [])]
    assert any("timeout" in e for e in retried) and any("malformed" in e for e in retried)
    assert any("HTTP 429" in e for e in retried)

    rep = _run_cli("report", str(out))
    assert rep.returncode == 0, rep.stderr
    assert "Reasoner first answer" in rep.stdout and "Throughput" in rep.stdout
    usage = [c.get("usage") or {} for t in traces for c in t["calls"]]
    cost = sum(u.get("prompt_tokens", 0) * 0.55 + u.get("completion_tokens", 0) * 2.19 for u in usage) / 1e6
    assert cost > 0 and f"Cost per query (all roles): {cost / len(traces):.5f} USD." in rep.stdout
    # the server echoed the Authorization header into 500 bodies: none of it may reach any output
    for path in out.iterdir():
        assert SECRET not in path.read_text(), path.name
    for text in (proc.stdout, proc.stderr, rep.stdout, rep.stderr):
        assert SECRET not in text
    assert "***" in (out / "traces.jsonl").read_text()  # the echo was there, and was scrubbed


def test_missing_key_and_bad_status_fail_clearly(world, fake_server, tmp_path):
    db_dir, queries, _ = world
    server = fake_server()
    cfg = _http_config(tmp_path / "http.yaml", server.base_url, retries=1, timeout=2, db=str(db_dir))
    proc = _run_cli("run", "--config", str(cfg), "--queries", str(queries), "--out", str(tmp_path / "o"),
                    env_key=None)
    assert proc.returncode == 2 and "IMAGINE_FAKE_KEY" in proc.stderr

    # a non-retryable status (404: wrong path) fails the query at once, with the status as the reason
    bad = _http_config(tmp_path / "bad.yaml", server.base_url + "/nope", retries=5, timeout=2, db=str(db_dir))
    proc = _run_cli("run", "--config", str(bad), "--queries", str(queries), "--out", str(tmp_path / "b"),
                    "--limit", "2")
    assert proc.returncode == 0, proc.stderr
    traces = read_jsonl(tmp_path / "b" / "traces.jsonl")
    assert [t["status"] for t in traces] == ["failed", "failed"]
    assert all("HTTP 404" in t["reason"] for t in traces)
    assert server.stats()["not_found"] == 2  # no retries on a 404


@pytest.mark.parametrize("rpm,n,min_s", [(1200, 11, 0.45)])
def test_rate_limiter_spaces_request_starts(rpm, n, min_s):
    import asyncio
    import time

    from imagine.mas.limits import RateLimiter

    async def main() -> tuple[float, int]:
        limiter = RateLimiter(concurrency=3, rpm=rpm, burst=1)
        in_flight = peak = 0

        async def one() -> None:
            nonlocal in_flight, peak
            async with limiter.slot():
                in_flight += 1
                peak = max(peak, in_flight)
                await asyncio.sleep(0.01)
                in_flight -= 1

        t0 = time.monotonic()
        await asyncio.gather(*(one() for _ in range(n)))
        return time.monotonic() - t0, peak

    elapsed, peak = asyncio.run(main())
    assert elapsed >= min_s  # 11 starts at 20/s with a burst of 1: at least 10 gaps of 50 ms
    assert elapsed < min_s + 1.0
    assert peak <= 3


def test_orjson_traces_are_plain_json(world, tmp_path):
    """Traces hold only JSON types (the report and other tools read them without our classes)."""
    db_dir, queries, _ = world
    out = tmp_path / "s"
    proc = subprocess.run([sys.executable, "-m", "imagine", "mas", "run", "--config", "configs/mas/scripted.yaml",
                           "--db", str(db_dir), "--queries", str(queries), "--out", str(out), "--limit", "3",
                           "--no-progress"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    for line in (out / "traces.jsonl").read_bytes().splitlines():
        assert orjson.loads(line)["status"] == "finished"
