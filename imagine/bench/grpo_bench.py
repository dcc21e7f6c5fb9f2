"""``train.py grpo`` vs TRL's ``GRPOTrainer``: seconds per step and peak memory, same setup, CPU.

Shared by every run (built once): a randomly initialised Qwen3-architecture model with a byte-level
BPE trained on the prompts, saved to disk; the letters toy task (reward = share of one letter), 8
prompts x G=8 completions of at most 256 tokens per step, one optimizer update per step, no KL,
AdamW at the same learning rate, one process.

Runs, each in its own process, one after the other:

- ``imagine-vllm``: ``train.py grpo`` with the in-process vLLM engine (weights synced in place);
- ``imagine-vllm-compiled``: the same with both sides compiled: vLLM's model
  (``rollout.enforce_eager=false``) and the update's decoder layers (``train.compile=true``), with
  eager attention, which compiles into a faster update than SDPA's flash kernel on this CPU
  (1.26 s against 1.97 s in bf16, 2.2 s against 2.5 s uncompiled SDPA in fp32; a probe of the update);
- ``imagine-torch``: ``train.py grpo`` with TorchEngine (plain transformers sampling), all 64
  sequences of a step in one batch: 2,400 tokens/s against 1,450 at its default 16 rows in a probe
  of this shape, so the sampling ratio is taken against its faster setting;
- ``trl``: TRL's ``GRPOTrainer`` (transformers generation, its default without a vLLM server);
- ``imagine-vllm-compiled-bf16`` and ``trl-bf16``: the update in bf16 mixed precision on both sides
  (``train.precision=bf16``; TRL's ``bf16=True``), since this CPU multiplies bf16 matrices 2.5x
  faster than fp32 ones. The engines still sample in the checkpoint's fp32. PyTorch's CPU
  flash-attention backward is slow in bf16 at this head size (0.58 s of a 2.1 s update, profiled),
  so eager attention matters most here; ``trl-bf16-eager`` gives TRL the same attention, and every
  step-time ratio is against TRL's faster row of the same precision.
- ``*-async``: ``rollout.async_steps=1``, the next step sampled during the update. A different
  algorithm (every batch one update old, corrected by truncated IS), so these rows are not the
  on-policy comparison; TRL runs on-policy.

Seconds per step is the median over the steps after the first ``WARMUP`` (start-up, vLLM's compile
and the trainer's compiles for new shape ranges excluded; their seconds are reported beside it);
peak memory is the process's peak resident set (VmHWM). Sampling tokens/s, sync time and the
rollout / update split come from ``train.py grpo``'s own metrics; TRL's split times its
``_generate_and_score_completions`` (sampling and reward) against the rest of its step.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from imagine.bench.common import status_kib, write_report

ROOT = Path(__file__).resolve().parents[2]
MODEL = {"hidden_size": 256, "intermediate_size": 768, "num_hidden_layers": 4, "num_attention_heads": 8,
         "num_key_value_heads": 4, "head_dim": 32, "tie_word_embeddings": True, "max_position_embeddings": 1024}
# 256 new tokens: GRPO answers are long (the demo's plans run to hundreds of tokens), and sampling
# dominates a GRPO step there, not the update.
PROMPTS, G, MAX_TOKENS, LR = 8, 8, 256, 1e-5
KV_CACHE_GIB = 0.125
# Rows per forward of the update: the fastest of 2, 4, 8, 16 and 32 on this 2-core CPU (8: 2.4 s an
# update, 16: 3.0 s, 32: 3.2 s in fp32). TRL takes the whole batch of 64 in one forward, its default.
MICRO_BATCH = 8
# Steps left out of the median: torch.compile of the update recompiles while new micro-batch shapes
# cross inductor's size thresholds, in the first two steps here.
WARMUP = 3


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


def run_imagine(model: Path, work: Path, engine: str, steps: int, *extra: str, name: str) -> dict:
    out = work / name
    cmd = [sys.executable, str(ROOT / "train.py"), "grpo", "--config", str(ROOT / "configs/grpo/tiny_cpu.yaml"),
           f"out_dir={out}", f"model.path={model}", "task.name=letters", f"task.options={{prompts: {PROMPTS}}}",
           f"rollout.engine={engine}", f"rollout.group_size={G}", f"rollout.prompts_per_step={PROMPTS}",
           f"rollout.max_tokens={MAX_TOKENS}", "rollout.max_model_len=1024", f"train.max_steps={steps}",
           # KV for every sequence of a step at full length (64 x 1,024 tokens x 2 KiB), not the CPU default 1 GiB
           f"rollout.kv_cache_gib={KV_CACHE_GIB}",
           f"train.lr={LR}", f"train.micro_batch_size={MICRO_BATCH}", "checkpoint.every=0", "checkpoint.export_hf=false",
           "log.entropy=false", "log.wandb_mode=disabled", *extra]
    t0 = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        return {"error": proc.stderr[-1500:]}
    recs = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    later = recs[WARMUP:]
    return {"seconds_per_step": statistics.median(r["seconds"] for r in later),
            "warmup_seconds": sum(r["seconds"] for r in recs[:WARMUP]),
            "peak_rss_mib": int(proc.stderr.strip().splitlines()[-1]) / 1024,
            "sample_tokens_per_s": statistics.median(r["sample_tokens_per_s"] for r in later),
            "sync_seconds": statistics.median(r["time/sync"] for r in later),
            "rollout_seconds": statistics.median(r["time/rollout"] + r["time/reward"] for r in later),
            "update_seconds": statistics.median(r["time/train"] for r in later),
            "wait_seconds": statistics.median(r.get("time/wait", 0.0) for r in later),
            "reward_last": recs[-1]["reward"], "wall": time.perf_counter() - t0}


def trl_child(model: str, steps: int, out: str, bf16: bool = False, attn: str = "sdpa") -> None:
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

    stamps, sampling = [], []
    generate_and_score = GRPOTrainer._generate_and_score_completions

    def timed(self, *a, **k):
        t0 = time.perf_counter()
        out = generate_and_score(self, *a, **k)
        sampling.append(time.perf_counter() - t0)
        return out

    GRPOTrainer._generate_and_score_completions = timed

    class Clock(TrainerCallback):
        def on_step_end(self, *a, **k):
            stamps.append(time.perf_counter())

    args = GRPOConfig(output_dir=out, per_device_train_batch_size=PROMPTS * G, num_generations=G,
                      max_completion_length=MAX_TOKENS, temperature=1.0, beta=0.0, learning_rate=LR,
                      max_steps=steps, num_iterations=1, use_cpu=True, bf16=bf16, report_to=[], logging_steps=1,
                      save_strategy="no", use_vllm=False)
    tok = AutoTokenizer.from_pretrained(model)
    trainer = GRPOTrainer(model=AutoModelForCausalLM.from_pretrained(model, attn_implementation=attn),
                          reward_funcs=[reward], args=args,
                          train_dataset=data, processing_class=tok, callbacks=[Clock()])
    start = time.perf_counter()
    trainer.train()
    gaps = [b - a for a, b in zip([start, *stamps], stamps)]
    step, rollout = statistics.median(gaps[WARMUP:]), statistics.median(sampling[WARMUP:])
    print(json.dumps({"seconds_per_step": step, "peak_rss_mib": status_kib("VmHWM") / 1024,
                      "rollout_seconds": rollout, "update_seconds": step - rollout,
                      "warmup_seconds": sum(gaps[:WARMUP])}))


def run_trl(model: Path, work: Path, steps: int, bf16: bool = False, attn: str = "sdpa") -> dict:
    proc = subprocess.run([sys.executable, "-m", "imagine.bench.grpo_bench", "--trl-child", str(model),
                           "--steps", str(steps), "--out", str(work / "trl"), "--attn", attn,
                           *(["--bf16"] if bf16 else [])],
                          capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, "WANDB_MODE": "disabled"})
    lines = [x for x in proc.stdout.splitlines() if x.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"error": proc.stderr[-1500:]}
    return json.loads(lines[-1])


@dataclass(frozen=True)
class Run:
    """One row of the table: whose trainer runs it, in which precision, and with what settings."""
    trainer: Literal["imagine", "trl"]
    precision: Literal["fp32", "bf16"] = "fp32"
    engine: str = ""  # imagine's rollout.engine
    overrides: tuple[str, ...] = ()  # more of imagine's config keys
    attn: str = "sdpa"  # TRL's attention implementation
    off_policy: bool = False  # imagine samples the next step during this one's update (rollout.async_steps=1)

    def imagine_args(self) -> tuple[str, ...]:
        return (*self.overrides, *(["train.precision=bf16"] if self.precision == "bf16" else []),
                *(["rollout.async_steps=1"] if self.off_policy else []))


# The compiled rows compile vLLM's model at start-up and the update's layers in its first steps
# (inductor's C++ on CPU): the warm-up column, outside the median.
COMPILED = ("rollout.enforce_eager=false", "train.compile=true", "model.attn_implementation=eager")
RUNS = {
    "imagine-vllm": Run("imagine", engine="vllm"),
    "imagine-vllm-compiled": Run("imagine", engine="vllm", overrides=COMPILED),
    "imagine-torch": Run("imagine", engine="torch", overrides=(f"rollout.torch_batch_size={PROMPTS * G}",)),
    "trl": Run("trl"),
    "imagine-vllm-compiled-bf16": Run("imagine", "bf16", engine="vllm", overrides=COMPILED),
    "trl-bf16": Run("trl", "bf16"),
    "trl-bf16-eager": Run("trl", "bf16", attn="eager"),
    "imagine-vllm-async": Run("imagine", engine="vllm", off_policy=True),
    "imagine-vllm-compiled-bf16-async": Run("imagine", "bf16", engine="vllm", overrides=COMPILED, off_policy=True),
}


def fastest(runs: list[dict]) -> dict:
    """The round with the fewest seconds a step (noise on a shared machine only adds time), with the
    slowest round's beside it so the table shows the spread."""
    good = [r for r in runs if "error" not in r]
    if not good:
        return runs[0]
    best = min(good, key=lambda r: r["seconds_per_step"])
    return {**best, "slowest_seconds_per_step": max(r["seconds_per_step"] for r in good), "rounds": len(good)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="bench/results")
    ap.add_argument("--steps", type=int, default=WARMUP + 5)
    ap.add_argument("--rounds", type=int, default=2, help="runs of every row, interleaved; the faster is reported")
    ap.add_argument("--trl-child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--bf16", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--attn", default="sdpa", help=argparse.SUPPRESS)
    ap.add_argument("--from-rounds", default=None, metavar="JSON",
                    help="rewrite grpo.md from a run's grpo_rounds.json (its --steps) without running anything")
    args = ap.parse_args(argv)
    if args.trl_child:
        trl_child(args.trl_child, args.steps, args.out, bf16=args.bf16, attn=args.attn)
        return 0
    if args.from_rounds:
        render(json.loads(Path(args.from_rounds).read_text()), args.steps, Path(args.out))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = build_model(work)
        rounds: dict[str, list[dict]] = {name: [] for name in RUNS}
        for k in range(args.rounds):  # interleaved, so a slow spell of the machine hits every row alike
            for name, run in RUNS.items():
                if run.trainer == "trl":
                    rounds[name].append(run_trl(model, work, args.steps, bf16=run.precision == "bf16", attn=run.attn))
                else:
                    rounds[name].append(run_imagine(model, work, run.engine, args.steps, *run.imagine_args(),
                                                    name=f"{name}-round{k}"))
    # every round of every row, for the spread the table summarises
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "grpo_rounds.json").write_text(json.dumps(rounds, indent=1) + "\n")
    render(rounds, args.steps, Path(args.out))
    return 0


def render(rounds: dict[str, list[dict]], steps: int, out: Path) -> None:
    """grpo.md from every row's rounds: a fresh run's, or a saved ``grpo_rounds.json`` (``--from-rounds``)."""
    results = {name: fastest(runs) for name, runs in rounds.items()}
    write_report(out / "grpo.md", report(results, steps, max(map(len, rounds.values()))))


def fastest_trl(r: dict, precision: str) -> str | None:
    """The TRL row of this precision with the fewest seconds a step: the baseline to beat."""
    rows = [n for n, run in RUNS.items()
            if run.trainer == "trl" and run.precision == precision and "seconds_per_step" in r.get(n, {})]
    return min(rows, key=lambda n: r[n]["seconds_per_step"], default=None)


def report(r: dict, steps: int, rounds: int = 1) -> str:
    def cell(name, key, fmt):
        if name not in r:
            return "not run"
        if "error" in r[name]:
            return "failed"
        v = r[name].get(key)
        return fmt.format(v) if v is not None else "n/a"

    def ok(name, *keys):
        return all(k in r.get(name, {}) for k in keys)

    lines = [
        "# GRPO step: train.py grpo vs TRL GRPOTrainer (CPU)", "",
        f"Written by `make bench-grpo` on {time.strftime('%Y-%m-%d')}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, torch threads as default. Model: Qwen3 architecture {MODEL['num_hidden_layers']} "
        f"layers x {MODEL['hidden_size']}, random init; letters task, {PROMPTS} prompts x G={G}, at most "
        f"{MAX_TOKENS} new tokens, one update per step, no KL; {steps} steps each, median of steps "
        f"{WARMUP + 1}..{steps} (*warm-up* is the seconds of steps 1..{WARMUP}: compiles, which inductor's on-disk cache shortens "
        "in later runs, and first allocations); "
        f"every row ran {rounds} times, interleaved with the others, and the table shows its faster round (with "
        "the slowest round's seconds a step beside it). "
        f"imagine's KV cache is sized to the step (`rollout.kv_cache_gib={KV_CACHE_GIB}`) and its update takes "
        f"{MICRO_BATCH} rows per forward. Nothing else ran on the machine. TorchEngine samples a step's "
        f"{PROMPTS * G} sequences in one batch (`rollout.torch_batch_size={PROMPTS * G}`, faster here than its "
        "default 16). TRL samples with transformers' generate "
        "(no vLLM server), so it has no engine tokens/s or weight sync. *rollout* is sampling plus reward, "
        "*update* the forward, backward and optimizer step. In the `-async` rows the rollout runs in a background "
        "thread during the previous update and *waited* is how long the step then waited for it. imagine's "
        "compiled rows compile vLLM's model (`rollout.enforce_eager=false`) and the update's decoder layers "
        "(`train.compile=true`), with eager attention (`model.attn_implementation=eager`); `trl-bf16-eager` is "
        "TRL with the same attention. Each step-time "
        "ratio is against the faster TRL row of the same precision.", "",
        "| run | update precision | seconds / step | slowest round | warm-up (s) | rollout (s) | update (s) "
        "| waited (s) | peak RSS (MiB) | sampling tokens/s | weight sync (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, run in RUNS.items():
        lines.append(f"| {name} | {run.precision} | {cell(name, 'seconds_per_step', '{:.2f}')} | "
                     f"{cell(name, 'slowest_seconds_per_step', '{:.2f}')} | {cell(name, 'warmup_seconds', '{:.0f}')} | "
                     f"{cell(name, 'rollout_seconds', '{:.2f}')} | {cell(name, 'update_seconds', '{:.2f}')} | "
                     f"{cell(name, 'wait_seconds', '{:.2f}') if run.off_policy else '-'} | "
                     f"{cell(name, 'peak_rss_mib', '{:.0f}')} | {cell(name, 'sample_tokens_per_s', '{:.0f}')} | "
                     f"{cell(name, 'sync_seconds', '{:.3f}')} |")
    lines.append("")
    for name, run in RUNS.items():
        if run.engine != "vllm":
            continue
        trl = fastest_trl(r, run.precision)
        if trl and ok(name, "seconds_per_step"):
            v, b = r[name], r[trl]
            line = (f"- step time: {trl} / {name} = {b['seconds_per_step'] / v['seconds_per_step']:.2f}x "
                    f"(target >= 3x); memory {name} / {trl} = {v['peak_rss_mib'] / b['peak_rss_mib']:.2f}x")
            if run.off_policy:
                line += " (one step off-policy against TRL's on-policy step)"
            else:
                line += (f". Even with no sampling time at all, {trl} / {name}'s update alone = "
                         f"{b['seconds_per_step'] / v['update_seconds']:.2f}x")
            lines.append(line)
        if run.off_policy:
            continue
        if ok(name, "sample_tokens_per_s") and ok("imagine-torch", "sample_tokens_per_s"):
            lines.append(f"- sampling: {name} / TorchEngine = "
                         f"{r[name]['sample_tokens_per_s'] / r['imagine-torch']['sample_tokens_per_s']:.1f}x "
                         "(target >= 5x)")
    if ok("imagine-vllm", "sync_seconds"):
        v = r["imagine-vllm"]
        lines.append(f"- weight sync: {100 * v['sync_seconds'] / v['seconds_per_step']:.1f}% of a vLLM step "
                     "(target < 5%)")
    for name in r:
        if "error" in r[name]:
            lines.append(f"- {name} failed: `{r[name]['error'][-300:]!r}`")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
