"""The benchmark run: every split row -> prompt -> model output -> one submission line, resumable.

A thousand test queries on an 8B model take hours, so the submission file is append-only and written
a chunk at a time: after an interruption, the rows already in the file are checked against the split
and skipped, and the run loses at most one chunk. Beside it, ``<out>.raw.jsonl`` keeps each model
output and why its plan was empty, so a bad score can be read back without generating again (after a
crash a row may appear there twice; the last record wins).
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imagine.io import DataError, JsonlAppender, iter_jsonl
from imagine.rollout import SamplingConfig
from imagine.tasks.travelplanner.benchmark.official_reference import reference_city_names
from imagine.tasks.travelplanner.benchmark.splits import SplitRow
from imagine.tasks.travelplanner.benchmark.submission import Fixes, check_line, format_plan, plan_cities
from imagine.tasks.travelplanner.parse import parse_output
from imagine.tasks.travelplanner.student.prompt import messages_from_text


@dataclass
class PredictSettings:
    style: str = "compact"
    prompt_version: str = "v1"
    max_tokens: int = 4096
    temperature: float = 0.0
    seed: int = 0
    chunk: int = 64
    max_model_len: int | None = None  # prompts that do not fit are not generated (empty plan, counted)


@dataclass
class RunStats:
    rows: int = 0
    resumed: int = 0
    generated: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    fixes: Fixes = field(default_factory=Fixes)

    @property
    def tokens_per_s(self) -> float:
        return self.completion_tokens / self.seconds if self.seconds > 0 else 0.0


def raw_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.stem + ".raw.jsonl")


def prompt_ids(tokenizer, messages: list[dict[str, str]]) -> list[int]:
    """Token ids of the chat prompt, as ``rollout.py`` builds them for the student."""
    if not getattr(tokenizer, "chat_template", None):
        from imagine.config import ConfigError

        raise ConfigError("the model's tokenizer has no chat template: the student must be prompted the way it "
                          "was trained (save the training tokenizer, with its template, in the model directory)")
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    return list(ids["input_ids"]) if hasattr(ids, "keys") else list(ids)  # a BatchEncoding in transformers 5


def done_lines(out: Path, rows: Sequence[SplitRow]) -> int:
    """How many rows an earlier run already wrote, after checking each line belongs to this split."""
    if not out.exists():
        return 0
    lines = [rec for _, rec in iter_jsonl(out, skip_partial_tail=True)]
    if len(lines) > len(rows):
        raise DataError(f"{out}: holds {len(lines)} lines but only {len(rows)} rows are requested "
                        "(a different split or a smaller --limit); use another --out")
    for n, (line, row) in enumerate(zip(lines, rows), 1):
        problem = check_line(line, row.idx, row.query, row.days)
        if problem:
            raise DataError(f"{out}:{n}: does not continue this split ({problem}); use another --out")
    return len(lines)


def _line(row: SplitRow, text: str | None, stats: RunStats, why_empty: str | None) -> tuple[dict, dict]:
    parsed = parse_output(text, require_open_tag=False) if text is not None else None
    plan: list = []
    if parsed is not None:
        plan, why_empty = format_plan(parsed.plan, row.days, stats.fixes)
    line = {"idx": row.idx, "query": row.query, "plan": plan}
    problem = check_line(line, row.idx, row.query, row.days)
    if problem:  # format_plan guarantees this; never let a line the leaderboard cannot read into the file
        raise AssertionError(f"row {row.position + 1} (idx {row.idx}): {problem}")
    raw = {"position": row.position, "idx": row.idx, "text": text, "empty_plan_reason": why_empty,
           "format_ok": bool(parsed and parsed.format_ok), "format_error": parsed.error if parsed else None}
    return line, raw


def run(rows: Sequence[SplitRow], engine, out: str | Path, settings: PredictSettings,
        log: Callable[[str], None] | None = None) -> RunStats:
    """Generate and append the submission lines of every row not yet in ``out``."""
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    out = Path(out)
    stats = RunStats(rows=len(rows))
    stats.resumed = done_lines(out, rows)
    if stats.resumed:
        log(f"predict: resuming, {stats.resumed}/{len(rows)} rows already in {out}")
    elif raw_path(out).exists():
        raw_path(out).unlink()  # outputs of an earlier, abandoned run would be read as this run's
    todo = list(rows[stats.resumed:])
    sampling = SamplingConfig(n=1, temperature=settings.temperature, max_tokens=settings.max_tokens,
                              seed=settings.seed)
    with JsonlAppender(out) as sub, JsonlAppender(raw_path(out)) as raw:
        for start in range(0, len(todo), max(1, settings.chunk)):
            chunk = todo[start:start + settings.chunk]
            prompts = [prompt_ids(engine.tokenizer, messages_from_text(
                r.query, r.reference.ref, style=settings.style, prompt_version=settings.prompt_version))
                for r in chunk]
            fits = [settings.max_model_len is None or len(p) < settings.max_model_len for p in prompts]
            t0 = time.perf_counter()
            outputs = engine.generate([p for p, ok in zip(prompts, fits) if ok], sampling) if any(fits) else []
            stats.seconds += time.perf_counter() - t0
            by_prompt = {r.prompt_index: r for r in outputs}  # engines number the prompts they were given
            sent = 0
            for row, prompt, ok in zip(chunk, prompts, fits):
                if ok:
                    rollout = by_prompt[sent]
                    sent += 1
                    stats.generated += 1
                    stats.completion_tokens += len(rollout.completion_ids)
                    line, record = _line(row, rollout.text, stats, None)
                    record.update(finish_reason=rollout.finish_reason, tokens=len(rollout.completion_ids))
                else:
                    why = f"prompt of {len(prompt)} tokens does not fit the context of {settings.max_model_len}"
                    line, record = _line(row, None, stats, why)
                raw.append(record)
                sub.append(line)
            done = stats.resumed + start + len(chunk)
            eta = stats.seconds / (start + len(chunk)) * (len(rows) - done)
            log(f"predict: {done}/{len(rows)} rows ({100 * done / len(rows):.0f}%), {stats.completion_tokens:,} tokens "
                f"in {stats.seconds:.1f}s ({stats.tokens_per_s:,.1f} tokens/s), about {eta / 60:.1f} min left")
    return stats


def read_submission(out: str | Path, rows: Sequence[SplitRow]) -> list[list]:
    """The finished file's plans after the whole-file checks: one line per row, in order, each readable."""
    lines = [rec for _, rec in iter_jsonl(out)]
    if len(lines) != len(rows):
        raise DataError(f"{out}: {len(lines)} lines for {len(rows)} rows")
    for n, (line, row) in enumerate(zip(lines, rows), 1):
        problem = check_line(line, row.idx, row.query, row.days)
        if problem:
            raise DataError(f"{out}:{n}: {problem}")
    return [line["plan"] for line in lines]


def suspicious(rows: Sequence[SplitRow], plans: Sequence[list], out: str | Path) -> dict[str, Any]:
    """Empty plans (with why, from the raw file) and plans naming cities the reference does not."""
    why: dict[int, str] = {}
    format_errors = 0
    raw = raw_path(out)
    if raw.exists():
        last: dict[int, dict] = {}
        for _, rec in iter_jsonl(raw, skip_partial_tail=True):
            last[rec["position"]] = rec
        for pos, rec in last.items():
            if pos < len(rows):
                format_errors += not rec.get("format_ok")
                if rec.get("empty_plan_reason"):
                    why[pos] = rec["empty_plan_reason"]
    empty = [r for r, p in zip(rows, plans) if not p]
    foreign = []
    for row, plan in zip(rows, plans):
        extra = sorted(plan_cities(plan) - reference_city_names(row.reference.ref)) if plan else []
        if extra:
            foreign.append({"idx": row.idx, "cities": extra})
    reasons = Counter(_reason_kind(why.get(r.position, "unknown")) for r in empty)
    return {"empty": [r.idx for r in empty], "empty_reasons": dict(reasons), "format_errors": format_errors,
            "foreign_cities": foreign}


def _reason_kind(reason: str) -> str:
    return reason.split(":", 1)[0]


def format_suspicious(report: dict[str, Any], n: int) -> str:
    lines = [f"empty plans: {len(report['empty'])}/{n}"
             + (f" (idx {_few(report['empty'])})" if report["empty"] else "")]
    for reason, count in sorted(report["empty_reasons"].items(), key=lambda kv: -kv[1]):
        lines.append(f"  {count:5d}  {reason}")
    lines.append(f"outputs not in the trained format (<think>...</think> then a JSON plan): "
                 f"{report['format_errors']}/{n}")
    foreign = report["foreign_cities"]
    lines.append(f"plans naming cities not in their reference: {len(foreign)}/{n}")
    for item in foreign[:5]:
        lines.append(f"  idx {item['idx']}: {', '.join(item['cities'][:5])}")
    return "\n".join(lines)


def _few(values: list, k: int = 10) -> str:
    head = ", ".join(str(v) for v in values[:k])
    return head + (f", ... {len(values) - k} more" if len(values) > k else "")
