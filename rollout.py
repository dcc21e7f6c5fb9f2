"""Sample a checkpoint on TravelPlanner queries and score the answers with the evaluator.

    python rollout.py --model DIR --db DIR --queries Q.jsonl --out rollouts.jsonl [--engine vllm|torch]

The engines themselves live in :mod:`imagine.rollout`; this file is only the command.
"""

from __future__ import annotations

import argparse
import sys
import time

from imagine.rollout import SamplingConfig, has_vllm, make_engine, max_positions


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Sample a checkpoint on TravelPlanner queries and score the answers.")
    ap.add_argument("--model", required=True, help="Hugging Face model directory (an exported checkpoint)")
    ap.add_argument("--db", required=True, help="sandbox database directory")
    ap.add_argument("--queries", required=True, help="query JSONL (with reference_information)")
    ap.add_argument("--out", required=True, help="rollouts JSONL (one line per sample, with its scores)")
    ap.add_argument("--engine", default="vllm" if has_vllm() else "torch", choices=["vllm", "torch"])
    ap.add_argument("--n", type=int, default=1)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--max-tokens", type=int, default=1024)
    ap.add_argument("--limit", type=int, default=None, help="only the first N queries")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reference-style", default="compact", choices=["compact", "official"],
                    help="must match the teacher config the student was trained on")
    ap.add_argument("--prompt-version", default="v1")
    ap.add_argument("--max-model-len", type=int, default=None,
                    help="vLLM context length (default: the model's max_position_embeddings)")
    ap.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"],
                    help="the engine's weights; auto: vLLM's choice (bf16 for an fp32 checkpoint), float32 for "
                         "TorchEngine. On CPUs without native bf16, float32 samples about twice as fast with vLLM")
    ap.add_argument("--json", default=None, help="write the official metrics of the first sample per query here")
    args = ap.parse_args(argv)

    from imagine.io import JsonlAppender
    from imagine.sandbox.database import Database
    from imagine.tasks.travelplanner.evaluator.checks_batch import BatchChecker
    from imagine.tasks.travelplanner.evaluator.metrics import format_table, metrics
    from imagine.tasks.travelplanner.parse import parse_output
    from imagine.tasks.travelplanner.schema import load_queries
    from imagine.tasks.travelplanner.student.prompt import student_messages

    queries = load_queries(args.queries)[: args.limit]
    db = Database(args.db)
    engine_kw = {}
    if args.engine == "vllm":
        engine_kw["max_model_len"] = args.max_model_len or max_positions(args.model)
    engine = make_engine(args.engine, args.model, dtype=args.dtype, **engine_kw)
    tok = engine.tokenizer
    messages = [student_messages(q, db, style=args.reference_style, prompt_version=args.prompt_version)
                for q in queries]
    prompts = [tok.apply_chat_template(m, add_generation_prompt=True, tokenize=True) for m in messages]
    prompts = [list(p["input_ids"]) if hasattr(p, "keys") else list(p) for p in prompts]  # BatchEncoding in transformers 5
    t0 = time.perf_counter()
    rollouts = engine.generate(prompts, SamplingConfig(n=args.n, temperature=args.temperature,
                                                       max_tokens=args.max_tokens, seed=args.seed))
    elapsed = time.perf_counter() - t0
    checker = BatchChecker(db)
    results = []
    shape = {"think_closed": 0, "reflection": 0, "json_parsed": 0, "format_ok": 0}
    with JsonlAppender(args.out) as out:
        for r in rollouts:
            parsed = parse_output(r.text, require_open_tag=False)
            res = checker.check_one(queries[r.prompt_index], parsed.plan)
            results.append(res)
            shape["think_closed"] += parsed.think is not None
            shape["reflection"] += parsed.has_reflection
            shape["json_parsed"] += parsed.plan is not None
            shape["format_ok"] += parsed.format_ok
            out.append({"query_index": r.prompt_index, "text": r.text, "format_ok": parsed.format_ok,
                        "final_pass": res.final_pass, **res.to_record()})
    firsts = {}
    for r, res in zip(rollouts, results):
        firsts.setdefault(r.prompt_index, res)
    values = metrics([firsts[i] for i in range(len(queries))], queries)
    ntok = sum(len(r.completion_ids) for r in rollouts)
    print(format_table(values))
    if args.json:
        from imagine.io import atomic_write_json

        # How far the answers get through the expected shape: the first thing a small student learns.
        rates = {k: v / max(len(rollouts), 1) for k, v in shape.items()}
        atomic_write_json(args.json, {"model": args.model, "queries": len(queries), "samples": len(rollouts),
                                      "shape_rates": rates, "tokens": ntok, "seconds": elapsed,
                                      "metrics": values})
    print(f"{len(rollouts)} samples, {ntok} tokens in {elapsed:.1f}s ({ntok / max(elapsed, 1e-9):,.0f} tokens/s, "
          f"engine={args.engine})", file=sys.stderr)
    return 0


def _cli() -> int:
    from imagine.errors import UserError

    try:
        return main()
    except UserError as exc:
        print(f"rollout.py: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(_cli())
