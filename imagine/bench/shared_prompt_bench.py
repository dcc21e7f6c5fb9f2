"""``train.share_prompts``: the GRPO update's forward and backward for one group, prompts repeated
in every row vs packed once per micro-batch.

One group of G=8 completions of a 360-token prompt (the demo's TravelPlanner prompts average about
360 tokens and its answers about 210; here completion lengths are drawn from 150..270), cut into
micro-batches the way the loop cuts them (``rollout_batch.micro_batches``), through the trainer's
own ``CausalLMLogProb`` with SDPA attention in fp32; the loss is the sum of the completion tokens'
log-probs, and no optimizer step is taken. Two random-init Qwen3-architecture models:

- ``demo``: the demo student's shapes (3 layers x 192, vocabulary 4,095), where attention over
  ~1k-token rows is a large share of the work;
- ``wide``: 4 layers x 1,024 (about 50M parameters), where the matmuls dominate, as they do in a
  billion-parameter model.

Three layouts: ``repeated`` (one row per completion, the default), ``dense`` (packed rows, SDPA
over a dense ``[T, T]`` mask: what eager attention gets) and ``shared`` (packed rows through
``shared_prompt_attention``, what ``train.share_prompts`` uses with SDPA). Seconds are the median of
3 timed passes after one warm-up; the log-prob column is the largest difference from the repeated
layout's completion log-probs, which should be float rounding.

    python -m imagine.bench.shared_prompt_bench --out bench/results
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from imagine.bench.common import write_report

PROMPT, G, LENGTHS, VOCAB = 360, 8, (150, 270), 4095
MODELS = {
    "demo": {"hidden_size": 192, "intermediate_size": 512, "num_hidden_layers": 3, "num_attention_heads": 6,
             "num_key_value_heads": 6, "head_dim": 32},
    "wide": {"hidden_size": 1024, "intermediate_size": 3072, "num_hidden_layers": 4, "num_attention_heads": 16,
             "num_key_value_heads": 8, "head_dim": 64},
}


def group_rollouts(seed: int = 0):
    from imagine.rollout import Rollout

    g = torch.Generator().manual_seed(seed)
    prompt = torch.randint(3, VOCAB, (PROMPT,), generator=g).tolist()
    out = []
    for _ in range(G):
        n = int(torch.randint(LENGTHS[0], LENGTHS[1] + 1, (1,), generator=g))
        out.append(Rollout(0, prompt, torch.randint(3, VOCAB, (n,), generator=g).tolist(), [-1.0] * n, "", "stop"))
    return out


def build(shape: dict):
    from transformers import Qwen3Config, Qwen3ForCausalLM

    from imagine.train.model import CausalLMLogProb

    torch.manual_seed(0)
    config = Qwen3Config(vocab_size=VOCAB, max_position_embeddings=2048, tie_word_embeddings=True, **shape)
    config._attn_implementation = "sdpa"
    return CausalLMLogProb(Qwen3ForCausalLM(config))


def one_group(model, mbs) -> tuple[float, dict[int, torch.Tensor]]:
    """Forward and backward of every micro-batch of the group: seconds, and each completion's log-probs."""
    model.zero_grad(set_to_none=True)
    logps = {}
    t0 = time.perf_counter()
    for mb in mbs:
        logp, _ = model(mb.input_ids, mb.position_ids, mb.targets, segment_ids=mb.segment_ids)
        grid = mb.per_sequence(logp)
        (grid * mb.mask).sum().backward()
        for b, i in enumerate(mb.rows):
            logps[i] = grid[b][mb.completion[b]].detach()
    return time.perf_counter() - t0, logps


def measure(name: str, micro_batch: int) -> dict:
    from imagine.train.rollout_batch import micro_batches

    model, rollouts = build(MODELS[name]), group_rollouts()
    rows, adv, keep = list(range(G)), [1.0] * G, [True] * G
    result = {"model": name, "micro_batch": micro_batch,
              "params_m": sum(p.numel() for p in model.parameters()) / 1e6}
    logps = {}
    # dense: packed rows through SDPA with a [T, T] mask; shared: the trainer's default, prompt and
    # completions attended apart (shared_prompt_attention), switched on last since it stays on
    for layout in ("repeated", "dense", "shared"):
        if layout == "shared":
            model.use_shared_prompt_attention()
        mbs = micro_batches(rollouts, rows, adv, keep, size=micro_batch, pad_id=0, share_prompts=layout != "repeated")
        result[f"{layout}_tokens"] = sum(mb.input_ids.numel() for mb in mbs)
        one_group(model, mbs)  # warm-up
        times = []
        for _ in range(3):
            seconds, logps[layout] = one_group(model, mbs)
            times.append(seconds)
        result[f"{layout}_seconds"] = statistics.median(times)
    result["max_logp_diff"] = max(float((logps["repeated"][i] - logps[layout][i]).abs().max())
                                  for i in rows for layout in ("dense", "shared"))
    return result


def report(results: list[dict]) -> str:
    lines = [
        "# GRPO update with shared prompts (`train.share_prompts`), CPU", "",
        f"Written by `python -m imagine.bench.shared_prompt_bench` on {time.strftime('%Y-%m-%d')}, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch threads as default, "
        "nothing else running. One group: a "
        f"{PROMPT}-token prompt and G={G} completions of {LENGTHS[0]}-{LENGTHS[1]} tokens, forward and backward "
        "of every micro-batch (completions per micro-batch in the second column), fp32, SDPA; median of 3 passes. "
        "*Speed-up* is repeated over shared. "
        "*Tokens* counts every position the model runs, padding included.", "",
        "| model | per micro-batch | params (M) | tokens repeated | tokens shared | s repeated | s shared, dense mask "
        "| s shared | speed-up | max abs log-prob diff |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(f"| {r['model']} | {r['micro_batch']} | {r['params_m']:.1f} | {r['repeated_tokens']} | "
                     f"{r['shared_tokens']} | {r['repeated_seconds']:.3f} | {r['dense_seconds']:.3f} | "
                     f"{r['shared_seconds']:.3f} | {r['repeated_seconds'] / r['shared_seconds']:.2f}x | "
                     f"{r['max_logp_diff']:.1e} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="bench/results")
    args = ap.parse_args(argv)
    results = [measure(name, mb) for name in MODELS for mb in (4, 8)]
    write_report(Path(args.out) / "shared_prompts.md", report(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
