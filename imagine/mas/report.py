"""``imagine mas report DIR``: does the multi-agent teacher beat its own Reasoner?

Everything is recomputed from ``traces.jsonl`` (and the run log for throughput): the official metrics
of the Reasoner's first answer and of the MAS's final answer, overall and per level × days, how often
reflection ran, how well each judge (and the either-flags rule) agrees with the evaluator, tokens and
cost per query.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from imagine.io import iter_jsonl, loads
from imagine.mas.runner import RUNS, read_traces
from imagine.tasks.travelplanner.evaluator.evaluate import PlanResult
from imagine.tasks.travelplanner.evaluator.metrics import METRIC_NAMES, metrics
from imagine.tasks.travelplanner.schema import query_from_record


def _result(v: dict) -> PlanResult:
    return PlanResult(v["delivered"], v["commonsense"], v["hard"], v.get("reasons") or {})


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def summarize(out_dir: str | Path) -> dict[str, Any]:
    out_dir = Path(out_dir)
    traces = read_traces(out_dir)
    done = [r for r in traces.values() if r.get("status") == "finished"]
    failed = [r for r in traces.values() if r.get("status") == "failed"]
    queries = [query_from_record(r["query"]) for r in done]
    first = [_result(r["eval"]["first"]) for r in done]
    final = [_result(r["eval"]["final"]) for r in done]
    cells: dict[tuple[str, int], list[int]] = {}
    for i, q in enumerate(queries):
        cells.setdefault((q.level, q.days), []).append(i)
    judges: list[Counter] = [Counter(), Counter()]
    either = Counter()
    for r in done:
        wrong = not r["eval"]["first"]["final_pass"]
        flags = [v == "Errors exist." for v in r["judges"]]
        for j, flag in enumerate(flags[:2]):
            judges[j][(wrong, flag)] += 1
        either[(wrong, any(flags))] += 1
    roles: dict[str, Counter] = {}
    for r in traces.values():
        for call in r.get("calls", []):
            c = roles.setdefault(call["role"].rstrip("0123456789"), Counter())
            c["calls"] += 1
            for k, v in (call.get("usage") or {}).items():
                c[k] += v
            c["latency"] += call.get("latency") or 0.0
            c["retries"] += max(0, (call.get("attempts") or 1) - 1)
    runs = [rec for _, rec in iter_jsonl(out_dir / RUNS, skip_partial_tail=True)] if (out_dir / RUNS).exists() else []
    cfg = loads((out_dir / "config.json").read_bytes()) if (out_dir / "config.json").exists() else {}
    return {"done": done, "failed": failed, "queries": queries, "first": first, "final": final, "cells": cells,
            "judges": judges, "either": either, "roles": roles, "runs": runs, "cfg": cfg}


def _agreement(c: Counter) -> str:
    wrong = c[(True, True)] + c[(True, False)]
    right = c[(False, True)] + c[(False, False)]
    total = wrong + right
    agree = (c[(True, True)] + c[(False, False)]) / total if total else 0.0
    recall = c[(True, True)] / wrong if wrong else 0.0
    false_alarm = c[(False, True)] / right if right else 0.0
    return f"{_pct(agree)} | {_pct(recall)} | {_pct(false_alarm)}"


def _price(cfg: dict, role: str) -> tuple[float, float]:
    if role == "judge":
        entries = cfg.get("judges") or [{}]
        return (sum(e.get("price_in_per_mtok", 0.0) for e in entries) / len(entries),
                sum(e.get("price_out_per_mtok", 0.0) for e in entries) / len(entries))
    entry = cfg.get(role) or {}
    return entry.get("price_in_per_mtok", 0.0), entry.get("price_out_per_mtok", 0.0)


def render(s: dict[str, Any]) -> str:
    done, first, final, queries = s["done"], s["first"], s["final"], s["queries"]
    n = len(done)
    lines = ["# MAS teacher report", "",
             f"{n} finished, {len(s['failed'])} failed (failed queries are not in the metrics).", ""]
    if s["failed"]:
        reasons = Counter(r.get("reason", "?").split(":", 1)[0] for r in s["failed"])
        lines += ["Failures by agent: " + ", ".join(f"{k} {v}" for k, v in reasons.most_common()), ""]
    if not n:
        return "\n".join(lines)
    m_first, m_final = metrics(first, queries), metrics(final, queries)
    lines += ["| metric | Reasoner first answer | MAS final answer |", "|---|---|---|"]
    lines += [f"| {name} | {_pct(m_first[name])} | {_pct(m_final[name])} |" for name in METRIC_NAMES]
    lines += ["", "Final pass rate by level × days:", "",
              "| level | days | n | Reasoner first | MAS final | reflected |", "|---|---|---|---|---|---|"]
    level_order = {"easy": 0, "medium": 1, "hard": 2}
    for (level, days), idx in sorted(s["cells"].items(), key=lambda kv: (level_order.get(kv[0][0], 3), kv[0])):
        f1 = sum(first[i].final_pass for i in idx) / len(idx)
        f2 = sum(final[i].final_pass for i in idx) / len(idx)
        refl = sum(done[i]["reflected"] for i in idx) / len(idx)
        lines.append(f"| {level} | {days} | {len(idx)} | {_pct(f1)} | {_pct(f2)} | {_pct(refl)} |")
    reflected = sum(r["reflected"] for r in done)
    lines += ["", f"Reflection rate: {_pct(reflected / n)} ({reflected}/{n}).", "",
              "Judge agreement with the evaluator on the Reasoner's answer (error = not a final pass):", "",
              "| judge | agreement | errors flagged (recall) | false alarms |", "|---|---|---|---|"]
    for j, c in enumerate(s["judges"]):
        lines.append(f"| judge {j} | {_agreement(c)} |")
    lines.append(f"| either flags (reflection trigger) | {_agreement(s['either'])} |")
    lines += ["", "| role | calls | prompt tokens / query | completion tokens / query | mean latency s | retries | "
              "cost / query USD |", "|---|---|---|---|---|---|---|"]
    n_all = len(done) + len(s["failed"])
    total_cost = 0.0
    for role, c in sorted(s["roles"].items()):
        p_in, p_out = _price(s["cfg"], role)
        cost = (c["prompt_tokens"] * p_in + c["completion_tokens"] * p_out) / 1e6
        total_cost += cost
        lines.append(f"| {role} | {c['calls']} | {c['prompt_tokens'] / n_all:.0f} | {c['completion_tokens'] / n_all:.0f} "
                     f"| {c['latency'] / max(1, c['calls']):.3f} | {c['retries']} | {cost / n_all:.5f} |")
    lines.append(f"\nCost per query (all roles): {total_cost / n_all:.5f} USD.")
    secs = sum(r["seconds"] for r in s["runs"])
    count = sum(r["finished"] + r["failed"] for r in s["runs"])
    calls = sum(c["calls"] for c in s["roles"].values())
    if secs > 0:
        lines.append(f"Throughput: {count / secs:.2f} queries/s, {calls / max(1, n_all):.2f} calls/query "
                     f"({count} queries in {secs:.1f} s over {len(s['runs'])} run(s)).")
    return "\n".join(lines) + "\n"
