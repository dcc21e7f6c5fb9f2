"""Runner bookkeeping: failures are recorded with reasons, reruns skip, --retry-failed supersedes."""

from __future__ import annotations

from imagine.io import read_jsonl
from imagine.mas.config import MasConfig
from imagine.mas.pipeline import QueryFailed
from imagine.mas.runner import load_queries, read_traces, run_sync


class FlakyTeacher:
    """Fails two chosen queries (one cleanly, one with a bug) until ``healed``."""

    def __init__(self, bad: str, buggy: str, healed: bool = False):
        self.bad, self.buggy, self.healed, self.seen = bad, buggy, healed, []

    async def run(self, qid, query, calls):
        self.seen.append(qid)
        calls.append({"role": "reasoner", "status": "ok"})
        if not self.healed and qid == self.bad:
            raise QueryFailed("reasoner: gave up after 3 attempts; last error: HTTP 503")
        if not self.healed and qid == self.buggy:
            raise KeyError("choices")
        return {"ok": True}

    async def aclose(self):
        return None


def test_failures_recorded_rerun_skips_and_retry_supersedes(world, tmp_path):
    _, queries_path, _ = world
    queries = load_queries(queries_path)[:10]
    ids = [qid for qid, _ in queries]
    cfg = MasConfig(queries_in_flight=3)
    t1 = FlakyTeacher(ids[2], ids[5])
    s1 = run_sync(cfg, None, queries, tmp_path, teacher=t1)
    assert (s1.finished, s1.failed) == (8, 2)
    traces = read_traces(tmp_path)
    assert traces[ids[2]]["reason"].startswith("reasoner: gave up")
    assert traces[ids[5]]["reason"] == "internal error: KeyError: 'choices'"

    t2 = FlakyTeacher(ids[2], ids[5], healed=True)
    s2 = run_sync(cfg, None, queries, tmp_path, teacher=t2)
    assert t2.seen == [] and s2.skipped == 10 and len(read_jsonl(tmp_path / "traces.jsonl")) == 10

    s3 = run_sync(cfg, None, queries, tmp_path, teacher=t2, retry_failed=True)
    assert sorted(t2.seen) == sorted([ids[2], ids[5]]) and s3.finished == 2
    assert len(read_jsonl(tmp_path / "traces.jsonl")) == 12  # superseding records, finished never repeated
    assert all(t["status"] == "finished" for t in read_traces(tmp_path).values())
