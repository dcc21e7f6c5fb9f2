"""The demo's held-out evaluation: every model's answers as an ``imagine eval`` submission, then scored.

    python -m imagine.demo.evaluate students --model base=DIR --model sft=DIR --db W --queries H --out EVAL_DIR ...
    python -m imagine.demo.evaluate teacher --traces MAS_DIR --db W --queries H --out EVAL_DIR

Each model gets ``<out>/<name>.jsonl`` (the submission, one line per held-out query in order) and
``<out>/<name>.json`` (its numbers). The metrics are computed from the written submission with the code
``imagine eval`` runs, never from the in-memory answers, so the published file reproduces them exactly.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from imagine.io import atomic_write_bytes, atomic_write_json, dumps
from imagine.tasks.travelplanner.reference import REFERENCE_STYLES


def score_submission(db_dir: str | Path, queries_path: str | Path, plans_path: str | Path) -> dict[str, float]:
    """The six official metrics of a submission file, as ``imagine eval --plans`` computes them."""
    from imagine.sandbox.database import Database
    from imagine.tasks.travelplanner.evaluator.checks_batch import BatchChecker
    from imagine.tasks.travelplanner.evaluator.eval_cli import load_plans
    from imagine.tasks.travelplanner.evaluator.metrics import metrics
    from imagine.tasks.travelplanner.schema import load_queries

    queries = load_queries(str(queries_path))
    plans, _ = load_plans(str(plans_path))
    if len(plans) != len(queries):
        raise ValueError(f"{plans_path}: {len(plans)} answers for {len(queries)} queries")
    checker = BatchChecker(Database(str(db_dir)))
    return metrics([checker.check_one(q, p) for q, p in zip(queries, plans)], queries)


def honesty(says_ok: list[bool], passed: list[bool]) -> dict[str, float | None]:
    """Paper Fig. 9: how often the reflection concludes "No errors.", and how often that is true."""
    n_ok = sum(says_ok)
    return {"no_errors_share": n_ok / len(says_ok) if says_ok else None,
            "no_errors_honest": sum(o and p for o, p in zip(says_ok, passed)) / n_ok if n_ok else None}


def _write_submission(path: Path, rows: list[dict]) -> None:
    atomic_write_bytes(path, b"".join(dumps(r) + b"\n" for r in rows))


def _final_passes(db, queries, texts: list[str]) -> list[bool]:
    from imagine.tasks.travelplanner.evaluator.checks_batch import BatchChecker
    from imagine.tasks.travelplanner.parse import parse_output

    checker = BatchChecker(db)
    return [checker.check_one(q, parse_output(t, require_think=False).plan).final_pass for q, t in zip(queries, texts)]


def checkpoint_tensors(model_dir: str | Path):
    """A Hugging Face checkpoint's tensors by name, with ``lm_head.weight`` even when it is tied (a
    weight sync must name every weight the engine has)."""
    from safetensors import safe_open

    head = embed = None
    for f in sorted(Path(model_dir).glob("*.safetensors")):
        with safe_open(str(f), framework="pt") as handle:
            for name in handle.keys():  # noqa: SIM118 - a safetensors handle is not iterable
                tensor = handle.get_tensor(name)
                head = tensor if name == "lm_head.weight" else head
                embed = tensor if name.endswith("embed_tokens.weight") else embed
                yield name, tensor
    if head is None and embed is not None:
        yield "lm_head.weight", embed


def _same_architecture(a: str | Path, b: str | Path) -> bool:
    import json

    def arch(d):
        cfg = json.loads((Path(d) / "config.json").read_text())
        return {k: v for k, v in cfg.items() if k not in ("_name_or_path", "transformers_version", "torch_dtype",
                                                          "dtype")}

    return arch(a) == arch(b)


def evaluate_students(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Each ``--model NAME=DIR`` in turn on one engine: vLLM's start-up costs more than a small model's
    whole evaluation, so checkpoints of one architecture are swapped in by a weight sync instead.
    A model whose ``<name>.json`` already exists is skipped, so an interrupted stage resumes."""
    from imagine.rollout import SamplingConfig, make_engine, max_positions
    from imagine.sandbox.database import Database
    from imagine.tasks.travelplanner.schema import load_queries
    from imagine.tasks.travelplanner.student.prompt import student_messages

    queries = load_queries(args.queries)
    db = Database(args.db)
    # The prompts exactly as rollout.py and the GRPO task build them, or the student is tested off-policy.
    messages = [student_messages(q, db, style=args.reference_style, prompt_version=args.prompt_version)
                for q in queries]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    todo = [(name, d) for name, d in (spec.split("=", 1) for spec in args.model) if not (out / f"{name}.json").exists()]
    engine = engine_dir = prompts = None
    found = {}
    try:
        for name, model_dir in todo:
            if engine is not None and args.engine == "vllm" and _same_architecture(engine_dir, model_dir):
                engine.sync_weights(checkpoint_tensors(model_dir))
            else:
                if engine is not None:
                    engine.close()
                kw = {"max_model_len": max_positions(model_dir)} if args.engine == "vllm" else {}
                engine = make_engine(args.engine, model_dir, **kw)
                tok = engine.tokenizer
                prompts = [tok.apply_chat_template(m, add_generation_prompt=True, tokenize=True) for m in messages]
                prompts = [list(p["input_ids"]) if hasattr(p, "keys") else list(p) for p in prompts]
                # A fresh engine's first batch pays one-off set-up; untimed, so that the first model's
                # seconds per answer are comparable with the others'.
                engine.generate(prompts[:2], SamplingConfig(n=1, temperature=0.0, max_tokens=2, seed=args.seed))
            engine_dir = model_dir
            found[name] = _evaluate_one(args, engine, prompts, queries, db, name, model_dir)
            atomic_write_json(out / f"{name}.json", found[name])
            _say(name, found[name])
    finally:
        if engine is not None:
            engine.close()
    return found


def _evaluate_one(args, engine, prompts, queries, db, name: str, model_dir: str) -> dict[str, Any]:
    """Greedy answers (the submission, tokens, seconds), then ``--samples`` answers at ``--temperature``."""
    from imagine.rollout import SamplingConfig
    from imagine.tasks.travelplanner.parse import parse_output
    from imagine.tasks.travelplanner.student.rl_task import says_no_errors

    t0 = time.perf_counter()
    greedy = engine.generate(prompts, SamplingConfig(n=1, temperature=0.0, max_tokens=args.max_tokens, seed=args.seed))
    greedy_s = time.perf_counter() - t0
    greedy.sort(key=lambda r: r.prompt_index)
    texts = [r.text for r in greedy]
    out = Path(args.out)
    _write_submission(out / f"{name}.jsonl", [{"idx": i, "text": t} for i, t in enumerate(texts)])
    sampled_pass = None
    if args.samples > 0:
        sampled = engine.generate(prompts, SamplingConfig(n=args.samples, temperature=args.temperature,
                                                          max_tokens=args.max_tokens, seed=args.seed))
        passes = _final_passes(db, [queries[r.prompt_index] for r in sampled], [r.text for r in sampled])
        sampled_pass = sum(passes) / len(passes)
    values = score_submission(args.db, args.queries, out / f"{name}.jsonl")
    passed = _final_passes(db, queries, texts)
    says_ok = [says_no_errors(parse_output(t, require_think=False, require_open_tag=False).think) for t in texts]
    n = max(len(queries), 1)
    return {**values, "sampled_final_pass": sampled_pass, "samples_per_query": args.samples,
            "tokens_per_answer": sum(len(r.completion_ids) for r in greedy) / n,
            "seconds_per_answer": greedy_s / n, **honesty(says_ok, passed),
            "model_dir": str(model_dir), "engine": args.engine}


def _say(name: str, entry: dict[str, Any]) -> None:
    print(f"{name}: final pass {100 * entry['Final Pass Rate']:.1f}%"
          + (f", sampled {100 * entry['sampled_final_pass']:.1f}%" if entry.get("sampled_final_pass") is not None
             else "")
          + f", {entry['tokens_per_answer']:.0f} tokens and {entry['seconds_per_answer']:.3f} s per answer",
          file=sys.stderr, flush=True)


def evaluate_teacher(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """The Reasoner's first answer and the team's final answer, from the held-out traces.

    A query whose trace failed (or is missing) counts as undelivered, as a crashed model would. Cost
    is what the traces recorded: completion tokens and latency of the Reasoner's call for ``reasoner``,
    of all its agent calls (Reasoner, Judges, Reflector when it ran) for ``teacher``.
    """
    from imagine.mas.runner import load_queries, read_traces

    traces = read_traces(args.traces)
    queries = load_queries(args.queries)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    for name, plan_key, roles in (("reasoner", "first_plan", ("reasoner",)), ("teacher", "final_plan", None)):
        rows, tokens, prompt_tokens, seconds, says_ok = [], 0, 0, 0.0, []
        for i, (qid, _) in enumerate(queries):
            rec = traces.get(qid) or {}
            done = rec.get("status") == "finished"
            rows.append({"idx": i, "plan": rec.get(plan_key) if done else None})
            for call in rec.get("calls", []):
                if roles is None or call.get("role") in roles:
                    usage = call.get("usage") or {}
                    tokens += usage.get("completion_tokens", 0)
                    prompt_tokens += usage.get("prompt_tokens", 0)
                    seconds += call.get("latency") or 0.0
            if name == "teacher":
                # The trained-on trace says "No errors." exactly when no judge flagged the first answer.
                says_ok.append(done and not rec.get("reflected"))
        _write_submission(out / f"{name}.jsonl", rows)
        values = score_submission(args.db, args.queries, out / f"{name}.jsonl")
        n = max(len(queries), 1)
        entry = {**values, "tokens_per_answer": tokens / n, "prompt_tokens_per_answer": prompt_tokens / n,
                 "seconds_per_answer": seconds / n, "no_errors_share": None, "no_errors_honest": None}
        if says_ok:
            passed = [bool((traces.get(qid) or {}).get("eval", {}).get("final", {}).get("final_pass"))
                      for qid, _ in queries]
            entry.update(honesty(says_ok, passed))
        results[name] = entry
    return results


def main(argv: list[str] | None = None) -> int:
    from imagine.rollout import has_vllm

    ap = argparse.ArgumentParser(prog="python -m imagine.demo.evaluate", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="kind", required=True)
    st = sub.add_parser("students", help="sample student checkpoints on the held-out queries")
    st.add_argument("--model", action="append", required=True, metavar="NAME=DIR",
                    help="a model's name in results.json (base, sft, grpo, ...) and its Hugging Face directory "
                         "(repeatable)")
    st.add_argument("--engine", default="vllm" if has_vllm() else "torch", choices=["vllm", "torch"])
    st.add_argument("--samples", type=int, default=4, help="sampled answers per query for sampled_final_pass")
    st.add_argument("--temperature", type=float, default=1.0, help="temperature of the sampled answers")
    st.add_argument("--max-tokens", type=int, default=1024)
    st.add_argument("--seed", type=int, default=0)
    st.add_argument("--reference-style", default="compact", choices=REFERENCE_STYLES,
                    help="the teacher config's (the student's training prompts)")
    st.add_argument("--prompt-version", default="v1")
    te = sub.add_parser("teacher", help="the Reasoner's and the team's answers from the held-out traces")
    te.add_argument("--traces", required=True, help="`imagine mas run` output directory on the held-out queries")
    for p in (st, te):
        p.add_argument("--db", required=True)
        p.add_argument("--queries", required=True, help="held-out query JSONL")
        p.add_argument("--out", required=True, help="directory for <name>.jsonl and <name>.json")
    args = ap.parse_args(argv)
    if args.kind == "students":
        bad = [spec for spec in args.model if "=" not in spec]
        if bad:
            ap.error(f"--model wants NAME=DIR, got {bad[0]!r}")
        evaluate_students(args)
    else:
        for name, entry in evaluate_teacher(args).items():
            atomic_write_json(Path(args.out) / f"{name}.json", entry)
            _say(name, entry)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
