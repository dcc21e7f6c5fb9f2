"""``train.py grpo`` vs TRL's ``GRPOTrainer``: seconds per step and peak memory, same setup, CPU.

Shared by every run (built once): a randomly initialised Qwen3-architecture model with a byte-level
BPE trained on the prompts, saved to disk; the letters toy task (reward = share of one letter), 8
prompts x G=8 completions of at most 64 tokens per step, one optimizer update per step, no KL,
AdamW at the same learning rate, fp32, one process.

Runs, each in its own process, one after the other:

- ``imagine-vllm``: ``train.py grpo`` with the in-process vLLM engine (weights synced in place);
- ``imagine-torch``: ``train.py grpo`` with TorchEngine (plain transformers sampling);
- ``trl``: TRL's ``GRPOTrainer`` (transformers generation, its default without a vLLM server).

Seconds per step is the median over the steps after the first (start-up and warm-up excluded);
peak memory is the process's peak resident set (VmHWM). Sampling tokens/s and sync time come from
``train.py grpo``'s own metrics.

    python -m imagine.bench.grpo_bench --out bench/results      (needs `pip install trl`)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from imagine.bench.common import status_kib, write_report

ROOT = Path(__file__).resolve().parents[2]
MODEL = {"hidden_size": 256, "intermediate_size": 768, "num_hidden_layers": 4, "num_attention_heads": 8,
         "num_key_value_heads": 4, "head_dim": 32, "tie_word_embeddings": True, "max_position_embeddings": 1024}
# 256 new tokens: GRPO answers are long (the demo's plans run to hundreds of tokens), and sampling
# dominates a GRPO step there, not the update.
PROMPTS, G, MAX_TOKENS, LR = 8, 8, 256, 1e-5
KV_CACHE_GIB = 0.125


def build_model(work: Path) -> Path:
    """The shared checkpoint: tokenizer trained on the letters prompts, random weights."""
    from imagine.models.tiny import TinyModelSpec, build_tiny_model
    from imagine.models.tokenizer import train_tokenizer
    from imagine.tasks.letters import LettersOptions, LettersTask

    out = work / "model"
    texts = [m[0]["content"] for m in LettersTask(LettersOptions(prompts=PROMPTS)).prompts()]
    texts += ["the quick brown fox jumps over the lazy dog " * 4] * 50
    train_tokenizer(texts, 512, out)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(out))
    build_tiny_model(TinyModelSpec(**MODEL), tokenizer=tok, seed=0).save_pretrained(str(out))
    return out


def run_imagine(model: Path, work: Path, engine: str, steps: int, *extra: str, name: str = "") -> dict:
    out = work / (name or f"imagine-{engine}")
    cmd = [sys.executable, str(ROOT / "train.py"), "grpo", "--config", str(ROOT / "configs/grpo/tiny_cpu.yaml"),
           f"out_dir={out}", f"model.path={model}", "task.name=letters", f"task.options={{prompts: {PROMPTS}}}",
           f"rollout.engine={engine}", f"rollout.group_size={G}", f"rollout.prompts_per_step={PROMPTS}",
           f"rollout.max_tokens={MAX_TOKENS}", "rollout.max_model_len=1024", f"train.max_steps={steps}",
           # KV for every sequence of a step at full length (64 x 1,024 tokens x 2 KiB), not the CPU default 1 GiB
           f"rollout.kv_cache_gib={KV_CACHE_GIB}",
           f"train.lr={LR}", "train.micro_batch_size=16", "checkpoint.every=0", "checkpoint.export_hf=false",
           "log.entropy=false", "log.wandb_mode=disabled", *extra]
    t0 = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        return {"error": proc.stderr[-1500:]}
    recs = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    later = recs[1:]
    return {"seconds_per_step": statistics.median(r["seconds"] for r in later),
            "peak_rss_mib": int(proc.stderr.strip().splitlines()[-1]) / 1024,
            "sample_tokens_per_s": statistics.median(r["sample_tokens_per_s"] for r in later),
            "sync_seconds": statistics.median(r["time/sync"] for r in later),
            "reward_last": recs[-1]["reward"], "wall": time.perf_counter() - t0}


def trl_child(model: str, steps: int, out: str) -> None:
    """Runs in its own process: TRL's GRPOTrainer on the same model, prompts, G and lengths."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from imagine.tasks.letters import LettersOptions, LettersTask

    task = LettersTask(LettersOptions(prompts=PROMPTS))
    data = Dataset.from_list([{"prompt": m} for m in task.prompts()] * steps)

    def reward(completions, **_):
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        return [s.reward for s in task.score([0] * len(texts), texts)]

    stamps = []

    class Clock(TrainerCallback):
        def on_step_end(self, *a, **k):
            stamps.append(time.perf_counter())

    args = GRPOConfig(output_dir=out, per_device_train_batch_size=PROMPTS * G, num_generations=G,
                      max_completion_length=MAX_TOKENS, temperature=1.0, beta=0.0, learning_rate=LR,
                      max_steps=steps, num_iterations=1, use_cpu=True, bf16=False, report_to=[], logging_steps=1,
                      save_strategy="no", use_vllm=False)
    tok = AutoTokenizer.from_pretrained(model)
    trainer = GRPOTrainer(model=AutoModelForCausalLM.from_pretrained(model), reward_funcs=[reward], args=args,
                          train_dataset=data, processing_class=tok, callbacks=[Clock()])
    start = time.perf_counter()
    trainer.train()
    gaps = [b - a for a, b in zip([start, *stamps], stamps)][1:]
    print(json.dumps({"seconds_per_step": statistics.median(gaps), "peak_rss_mib": status_kib("VmHWM") / 1024}))


def run_trl(model: Path, work: Path, steps: int) -> dict:
    proc = subprocess.run([sys.executable, "-m", "imagine.bench.grpo_bench", "--trl-child", str(model),
                           "--steps", str(steps), "--out", str(work / "trl")], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, "WANDB_MODE": "disabled"})
    lines = [x for x in proc.stdout.splitlines() if x.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"error": proc.stderr[-1500:]}
    return json.loads(lines[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="bench/results")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--trl-child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.trl_child:
        trl_child(args.trl_child, args.steps, args.out)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = build_model(work)
        results = {"imagine-vllm": run_imagine(model, work, "vllm", args.steps),
                   # vLLM compiles the model (torch.compile, inductor's C++ on CPU): slower start-up
                   "imagine-vllm-compiled": run_imagine(model, work, "vllm", args.steps, "rollout.enforce_eager=false",
                                                        name="imagine-vllm-compiled"),
                   "imagine-torch": run_imagine(model, work, "torch", args.steps),
                   "trl": run_trl(model, work, args.steps)}
    write_report(Path(args.out) / "grpo.md", report(results, args.steps))
    return 0


def report(r: dict, steps: int) -> str:
    def cell(name, key, fmt):
        if "error" in r[name]:
            return "failed"
        v = r[name].get(key)
        return fmt.format(v) if v is not None else "n/a"

    lines = [
        "# GRPO step: train.py grpo vs TRL GRPOTrainer (CPU)", "",
        f"Written by `make bench-grpo` on {time.strftime('%Y-%m-%d')}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, torch threads as default. Model: Qwen3 architecture {MODEL['num_hidden_layers']} "
        f"layers x {MODEL['hidden_size']}, random init; letters task, {PROMPTS} prompts x G={G}, at most "
        f"{MAX_TOKENS} new tokens, one update per step, no KL; {steps} steps each, median of steps 2..{steps}. "
        f"imagine-vllm's KV cache is sized to the step (`rollout.kv_cache_gib={KV_CACHE_GIB}`). "
        "Nothing else ran on the machine. TRL samples with transformers' generate (no vLLM server), so it has no "
        "engine tokens/s or weight sync.", "",
        "| run | seconds / step | peak RSS (MiB) | sampling tokens/s | weight sync (s) |", "|---|---|---|---|---|",
    ]
    for name in ("imagine-vllm", "imagine-vllm-compiled", "imagine-torch", "trl"):
        lines.append(f"| {name} | {cell(name, 'seconds_per_step', '{:.2f}')} | {cell(name, 'peak_rss_mib', '{:.0f}')} | "
                     f"{cell(name, 'sample_tokens_per_s', '{:.0f}')} | {cell(name, 'sync_seconds', '{:.3f}')} |")
    t, trl = r["imagine-torch"], r["trl"]
    lines.append("")
    for name in ("imagine-vllm", "imagine-vllm-compiled"):
        v = r[name]
        if "seconds_per_step" in v and "seconds_per_step" in trl:
            lines.append(f"- step time: TRL / {name} = {trl['seconds_per_step'] / v['seconds_per_step']:.2f}x "
                         f"(target >= 3x); memory {name} / TRL = {v['peak_rss_mib'] / trl['peak_rss_mib']:.2f}x")
        if "sample_tokens_per_s" in v and "sample_tokens_per_s" in t:
            lines.append(f"- sampling: {name} / TorchEngine = "
                         f"{v['sample_tokens_per_s'] / t['sample_tokens_per_s']:.1f}x (target >= 5x)")
    v = r["imagine-vllm"]
    if "sync_seconds" in v:
        lines.append(f"- weight sync: {100 * v['sync_seconds'] / v['seconds_per_step']:.1f}% of a vLLM step "
                     "(target < 5%)")
    for name in r:
        if "error" in r[name]:
            lines.append(f"- {name} failed: `{r[name]['error'][-300:]!r}`")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
