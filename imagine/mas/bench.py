"""Throughput of the teacher runner against the loopback fake: ``python -m imagine.mas.bench``.

A teacher run is bounded by the provider, not by us: with C calls allowed in flight, L seconds per
call and k calls per query, no client can exceed C / k / L queries per second. This measures how close
the runner (limiter, retries bookkeeping, reference rendering, evaluator verdicts, fsynced appends)
gets to that ceiling. It also records the scripted teacher's first-vs-final pass rates.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from imagine.config import load_config
from imagine.io import atomic_write_bytes
from imagine.mas.config import MasConfig, RoleConfig
from imagine.mas.runner import read_traces, run_sync
from imagine.sandbox.database import Database
from imagine.sandbox.synth import SynthConfig, synthesize
from imagine.tasks.travelplanner.generation.generate import GenConfig, Generator
from imagine.tasks.travelplanner.schema import query_from_record


def _start_fake(latency: float) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "imagine.mas.fake_server", "--port", "0", "--latency",
                             str(latency), "--judge-flag-rate", "0.5"], stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line.startswith("PORT "):
        proc.kill()
        raise RuntimeError(f"fake server did not start: {line!r}")
    return proc, f"http://127.0.0.1:{line.split()[1]}/v1"


def throughput(db, records: list[dict], n: int, concurrency: int, latency: float, work: Path) -> dict:
    proc, base_url = _start_fake(latency)
    try:
        def role(model: str) -> RoleConfig:
            return RoleConfig(backend="openai", base_url=base_url, model=model, concurrency=concurrency,
                              timeout_s=30, max_retries=2)

        cfg = MasConfig(db=str(db.root), queries_in_flight=2 * concurrency, reasoner=role("fake-reasoner"),
                        judges=[role("fake-judge-a"), role("fake-judge-b")], reflector=role("fake-reflector"))
        queries = []
        for i in range(n):
            rec = records[i % len(records)]
            queries.append((f"bench-{i:05d}", query_from_record(rec)))
        t0 = time.monotonic()
        summary = run_sync(cfg, db, queries, work / "http")
        seconds = time.monotonic() - t0
    finally:
        proc.terminate()
        proc.wait()
    traces = read_traces(work / "http")
    calls = sum(len(t["calls"]) for t in traces.values()) / len(traces)
    qps = summary.finished / seconds
    ideal = concurrency / calls / latency
    return {"queries": n, "finished": summary.finished, "failed": summary.failed, "seconds": seconds,
            "calls_per_query": calls, "qps": qps, "ideal": ideal, "share": qps / ideal}


def scripted_quality(db, records: list[dict], work: Path) -> dict:
    cfg = load_config(MasConfig, None, [f"db={db.root}"])
    queries = [(r["id"], query_from_record(r)) for r in records]
    run_sync(cfg, db, queries, work / "scripted")
    traces = read_traces(work / "scripted")
    first = sum(t["eval"]["first"]["final_pass"] for t in traces.values()) / len(traces)
    final = sum(t["eval"]["final"]["final_pass"] for t in traces.values()) / len(traces)
    reflected = sum(t["reflected"] for t in traces.values()) / len(traces)
    return {"n": len(traces), "first": first, "final": final, "reflected": reflected}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", default="bench/results", help="directory for mas.md")
    p.add_argument("--queries", type=int, default=1500)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--latency", type=float, default=0.2)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mas-bench-") as tmp:
        work = Path(tmp)
        db = Database(synthesize(work / "db", SynthConfig(seed=3)))
        records = list(Generator(db, GenConfig(n=180, seed=2)).records())
        tp = throughput(db, records, args.queries, args.concurrency, args.latency, work)
        quality = scripted_quality(db, records, work)
    lines = [
        "# MAS teacher benchmark", "",
        f"Loopback OpenAI-compatible fake (separate process), {args.latency * 1000:.0f} ms per call, endpoint "
        f"concurrency {args.concurrency}, queries in flight {2 * args.concurrency}; every call goes through "
        "the real HTTP backend, limiter, evaluator verdicts and fsynced trace appends.", "",
        "| queries | finished | failed | calls/query | seconds | queries/s | ideal queries/s | share of ideal |",
        "|---|---|---|---|---|---|---|---|",
        f"| {tp['queries']} | {tp['finished']} | {tp['failed']} | {tp['calls_per_query']:.2f} | {tp['seconds']:.1f} "
        f"| {tp['qps']:.1f} | {tp['ideal']:.1f} | {100 * tp['share']:.1f}% |", "",
        "ideal = concurrency / calls-per-query / latency.", "",
        f"Scripted teacher (defaults) on {quality['n']} generated queries of a synthetic world: Reasoner first "
        f"answer final pass {100 * quality['first']:.1f}%, MAS final answer {100 * quality['final']:.1f}%, "
        f"reflection rate {100 * quality['reflected']:.1f}%.", "",
    ]
    text = "\n".join(lines)
    atomic_write_bytes(Path(args.out) / "mas.md", text.encode())
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
