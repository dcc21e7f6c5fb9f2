"""``train.py grpo`` vs TRL's ``GRPOTrainer``: seconds per step and peak memory, same setup, CPU.

Two workloads, each a side-by-side comparison of its own (``--workloads``):

- ``travelplanner``: the demo's GRPO stage (``configs/grpo/demo.yaml``, one process) from the demo's
  SFT checkpoint, on its queries and world: the job this project exists for. Prompts of a few hundred
  tokens (the section's settings line gives the range), G=8 completions of about 200 sharing each,
  the paper's reward. It needs
  ``make demo``'s outputs (``--demo-dir``); without them the section says so and the other still runs.
- ``letters``: a randomly initialised Qwen3-architecture model with a byte-level BPE trained on the
  prompts; the letters toy task (reward = share of one letter), 8 prompts x G=8 completions of at
  most 256 tokens. Its 22-token prompts leave nothing for prompt sharing or prefix caching, so it
  measures per-token overhead: the hardest case for both targets.

Both trainers read one config (the workload's YAML plus overrides): TRL's child builds the same task
through the trainer's task seam and takes G, prompts per step, temperature, response cap, learning
rate, KL, seed and the overlong rule from it (``trl_settings``). The loss variant, learning-rate
schedule and advantage scaling stay TRL's own: they change no step's work. One optimizer update per
step, one process.

Letters rows, each in its own process, one after the other:

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

TravelPlanner rows: ``imagine-vllm`` (the demo's config as it is: shared prompts, SDPA),
``imagine-vllm-compiled`` (vLLM's model compiled), ``imagine-torch`` and ``trl``, all fp32 as the
demo trains.

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
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from imagine.bench.common import status_kib, write_report
from imagine.machine import cpu_description, package_versions

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
# A step's sequences in both workloads (8 prompts x G=8): TorchEngine samples them in one batch, its
# fastest setting here (letters: 2,400 tokens/s against 1,450 at its default 16 rows).
STEP_ROWS = 64
# The demo's KV need: 64 sequences x 1,024 tokens x 4.5 KiB (3 layers x K and V x 6 heads x 32 x fp32).
DEMO_KV_CACHE_GIB = 0.3


class Skipped(Exception):
    """A workload whose inputs are missing: its section says why instead of showing numbers."""


def build_letters_model(work: Path) -> Path:
    """The letters checkpoint: tokenizer trained on the letters prompts, random weights."""
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


def letters_setup(work: Path, demo_dir: Path) -> tuple[str, ...]:
    model = build_letters_model(work)
    return (f"model.path={model}", "task.name=letters", f"task.options={{prompts: {PROMPTS}}}",
            f"rollout.group_size={G}", f"rollout.prompts_per_step={PROMPTS}", f"rollout.max_tokens={MAX_TOKENS}",
            "rollout.max_model_len=1024",
            # KV for every sequence of a step at full length (64 x 1,024 tokens x 2 KiB), not the CPU default 1 GiB
            f"rollout.kv_cache_gib={KV_CACHE_GIB}", f"train.lr={LR}", f"train.micro_batch_size={MICRO_BATCH}")


def demo_grpo_start(demo_dir: Path) -> Path:
    """The checkpoint the demo's GRPO stage starts from (``scale.grpo_from_step`` of the full demo)."""
    from imagine.demo.scale import DemoScale

    return demo_dir / "sft" / f"hf_step{DemoScale().grpo_from_step}"


def travelplanner_setup(work: Path, demo_dir: Path) -> tuple[str, ...]:
    model, queries, world = demo_grpo_start(demo_dir), demo_dir / "queries.jsonl", demo_dir / "world"
    missing = [str(p) for p in (model, queries, world) if not p.exists()]
    if missing:
        raise Skipped(f"needs `make demo`'s outputs; missing {', '.join(missing)}")
    return (f"model.path={model}", f"task.options.queries={queries}", f"task.options.db={world}",
            f"rollout.kv_cache_gib={DEMO_KV_CACHE_GIB}")


@dataclass(frozen=True)
class Run:
    """One row of the table: whose trainer runs it, in which precision, and with what settings."""
    trainer: Literal["imagine", "trl"]
    precision: Literal["fp32", "bf16"] = "fp32"
    engine: str = ""  # imagine's rollout.engine
    overrides: tuple[str, ...] = ()  # more of imagine's config keys
    attn: str = ""  # TRL's attention implementation; empty: the config's model.attn_implementation
    off_policy: bool = False  # imagine samples the next step during this one's update (rollout.async_steps=1)

    def imagine_args(self) -> tuple[str, ...]:
        return (*self.overrides, f"rollout.engine={self.engine}",
                *(["train.precision=bf16"] if self.precision == "bf16" else []),
                *(["rollout.async_steps=1"] if self.off_policy else []))


# The compiled rows compile vLLM's model at start-up and the update's layers in its first steps
# (inductor's C++ on CPU): the warm-up column, outside the median.
COMPILED = ("rollout.enforce_eager=false", "train.compile=true", "model.attn_implementation=eager")
LETTERS_RUNS = {
    "imagine-vllm": Run("imagine", engine="vllm"),
    "imagine-vllm-compiled": Run("imagine", engine="vllm", overrides=COMPILED),
    "imagine-torch": Run("imagine", engine="torch", overrides=(f"rollout.torch_batch_size={STEP_ROWS}",)),
    "trl": Run("trl"),
    "imagine-vllm-compiled-bf16": Run("imagine", "bf16", engine="vllm", overrides=COMPILED),
    "trl-bf16": Run("trl", "bf16"),
    "trl-bf16-eager": Run("trl", "bf16", attn="eager"),
    "imagine-vllm-async": Run("imagine", engine="vllm", off_policy=True),
    "imagine-vllm-compiled-bf16-async": Run("imagine", "bf16", engine="vllm", overrides=COMPILED, off_policy=True),
}
TRAVELPLANNER_RUNS = {
    "imagine-vllm": Run("imagine", engine="vllm"),
    # Only vLLM's model compiles: shared prompts need SDPA's split attention, which compiling the
    # update's layers leaves eager anyway.
    "imagine-vllm-compiled": Run("imagine", engine="vllm", overrides=("rollout.enforce_eager=false",)),
    "imagine-torch": Run("imagine", engine="torch", overrides=(f"rollout.torch_batch_size={STEP_ROWS}",)),
    "trl": Run("trl"),
}


@dataclass(frozen=True)
class Workload:
    """One GRPO setup that both trainers run, read from one config file plus overrides."""
    title: str
    config: str  # relative to the repository root
    setup: Callable[[Path, Path], tuple[str, ...]]  # (work dir, demo dir) -> overrides naming the model and
    # data, shared by every row; raises Skipped when the inputs are missing
    runs: dict[str, Run] = field(default_factory=dict)
    about: str = ""  # what the section's reader needs to know about its settings


WORKLOADS = {
    "travelplanner": Workload(
        "TravelPlanner: the demo's GRPO stage", "configs/grpo/demo.yaml", travelplanner_setup, TRAVELPLANNER_RUNS,
        "Model: the demo's SFT student at the step its GRPO stage starts from (Qwen3 architecture, 3 layers x 192, "
        "a 4,096-token BPE), on the demo's training queries and world, with `configs/grpo/demo.yaml` as the demo runs "
        "it but on one process, and the paper's reward; TRL filters overlong completions with "
        "`mask_truncated_completions`. imagine packs each prompt once per micro-batch (`train.share_prompts`) and "
        "vLLM caches it across its G samples; TRL and TorchEngine process it once per completion. imagine's KV "
        "cache is sized to the step. `imagine-vllm-compiled` compiles vLLM's model (`rollout.enforce_eager=false`); "
        f"`imagine-torch` samples with TorchEngine, {STEP_ROWS} rows a batch."),
    "letters": Workload(
        "Letters: short prompts, random weights", "configs/grpo/tiny_cpu.yaml", letters_setup, LETTERS_RUNS,
        f"Model: Qwen3 architecture {MODEL['num_hidden_layers']} layers x {MODEL['hidden_size']}, random init; "
        "the letters task; the settings line below gives G, lengths, KL, rows a forward and the KV cache, which is "
        "sized to the step. In the `-async` rows the rollout runs in a background thread during the previous update and "
        "*waited* is how long the step then waited for it. imagine's compiled rows compile vLLM's model "
        "(`rollout.enforce_eager=false`) and the update's decoder layers (`train.compile=true`), with eager "
        "attention (`model.attn_implementation=eager`); `trl-bf16-eager` is TRL with the same attention."),
}
# Settings of every run of every workload: the comparison is of step time, not of checkpoints or logs.
COMMON = ("checkpoint.every=0", "checkpoint.export_hf=false", "log.entropy=false", "log.wandb_mode=disabled")


def run_settings(config: str, shared: tuple[str, ...]) -> dict:
    """The settings a section's rows ran with, read from the config as they load it and saved beside their
    rounds: the section's text then describes the numbers it shows, even after the config file changes."""
    from transformers import AutoTokenizer

    from imagine.config import load_config
    from imagine.train.config import GRPOConfig as ImagineGRPOConfig
    from imagine.train.grpo import encode_chat
    from imagine.train.task import load_task

    cfg = load_config(ImagineGRPOConfig, ROOT / config, [*shared, *COMMON])
    tokenizer = AutoTokenizer.from_pretrained(cfg.model.path)
    lengths = [len(encode_chat(tokenizer, m)) for m in load_task(cfg.task.name, cfg.task.options).prompts()]
    r = cfg.rollout
    return {"config": config, "group_size": r.group_size, "prompts_per_step": r.prompts_per_step,
            "temperature": r.temperature, "top_p": r.top_p, "max_tokens": r.max_tokens, "overlong": r.overlong,
            "lr": cfg.train.lr, "kl_coef": cfg.loss.kl_coef, "loss": cfg.loss.name,
            "attention": cfg.model.attn_implementation, "share_prompts": cfg.train.share_prompts,
            "micro_batch_size": cfg.train.micro_batch_size, "kv_cache_gib": r.kv_cache_gib,
            "engine_dtype": r.dtype,
            "prompt_tokens": {"min": min(lengths), "max": max(lengths), "mean": statistics.mean(lengths),
                              "prompts": len(lengths)}}


def settings_text(s: dict) -> str:
    p = s["prompt_tokens"]
    kv = "sized by vLLM" if s["kv_cache_gib"] is None else f"{s['kv_cache_gib']} GiB"
    return (f"Settings as run (`{s['config']}` plus the section's overrides; a row's own overrides are in its "
            f"description above): {s['prompts_per_step']} prompts a "
            f"step x G={s['group_size']}, T={s['temperature']:g}, top-p {s['top_p']:g}, at most {s['max_tokens']} "
            f"new tokens, overlong completions: {s['overlong']}, loss `{s['loss']}`, lr {s['lr']:g}, KL coefficient "
            f"{s['kl_coef']:g}; attention `{s['attention']}`, shared prompts {'on' if s['share_prompts'] else 'off'}, "
            f"{s['micro_batch_size']} rows a forward, KV cache {kv}{engine_dtype_text(s)}. The task's {p['prompts']:,} prompts: "
            f"{p['min']}-{p['max']} tokens ({p['mean']:.0f} on average) with the chat template.")


def engine_dtype_text(s: dict) -> str:
    """Sections saved before ``rollout.dtype`` existed sampled with vLLM's default: bf16 for these fp32 models."""
    if "engine_dtype" not in s:
        return ", vLLM sampling in its default dtype (bf16 for these fp32 checkpoints; before `rollout.dtype`)"
    d = s["engine_dtype"]
    return ", engines sampling in the update's precision" if d == "auto" else f", engines sampling in {d}"


def run_imagine(config: str, shared: tuple[str, ...], work: Path, steps: int, *extra: str, name: str) -> dict:
    out = work / name
    cmd = [sys.executable, str(ROOT / "train.py"), "grpo", "--config", str(ROOT / config), f"out_dir={out}",
           *shared, *COMMON, f"train.max_steps={steps}", *extra]
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
            "response_tokens": statistics.median(r["response_len_mean"] for r in later),
            "reward_last": recs[-1]["reward"], "wall": time.perf_counter() - t0}


def trl_settings(cfg) -> dict:
    """TRL ``GRPOConfig`` fields that must equal imagine's config for the step times to compare."""
    r = cfg.rollout
    if r.overlong == "penalize" or cfg.train.epochs != 1 or cfg.train.mini_batches != 1 or r.dynamic_sampling \
            or r.async_steps:
        raise ValueError("the TRL baseline covers one on-policy update a step, without dynamic sampling, and "
                         "overlong 'keep' or 'filter' only")
    return {"per_device_train_batch_size": r.prompts_per_step * r.group_size, "num_generations": r.group_size,
            "max_completion_length": r.max_tokens, "temperature": r.temperature, "top_p": r.top_p,
            "beta": cfg.loss.kl_coef, "learning_rate": cfg.train.lr, "seed": cfg.train.seed,
            "mask_truncated_completions": r.overlong == "filter"}


def trl_attention(cfg) -> str:
    """imagine's attention choice, "auto" resolved as imagine's trainer resolves it on this CPU."""
    import torch

    from imagine.train.model import pick_attn_implementation

    return pick_attn_implementation(cfg.model.attn_implementation, torch.device("cpu"))


def trl_child(config: str, overrides: list[str], steps: int, out: str, bf16: bool = False, attn: str = "") -> None:
    """Runs in its own process: TRL's GRPOTrainer on imagine's config (model, task, G, lengths, lr)."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from imagine.config import load_config
    from imagine.train.config import GRPOConfig as ImagineGRPOConfig
    from imagine.train.task import load_task

    cfg = load_config(ImagineGRPOConfig, ROOT / config, overrides)
    task = load_task(cfg.task.name, cfg.task.options)
    prompts = task.prompts()
    per_step = cfg.rollout.prompts_per_step
    rows = [{"prompt": m, "index": i} for i, m in enumerate(prompts)]
    data = Dataset.from_list(rows * math.ceil(steps * per_step / len(rows)))

    def reward(completions, index, **_):
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        return [s.reward for s in task.score(index, texts)]

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

    args = GRPOConfig(output_dir=out, **trl_settings(cfg), max_steps=steps, num_iterations=1, use_cpu=True, bf16=bf16,
                      report_to=[], logging_steps=1, save_strategy="no", use_vllm=False)
    tok = AutoTokenizer.from_pretrained(cfg.model.path)
    attn = attn or trl_attention(cfg)
    trainer = GRPOTrainer(model=AutoModelForCausalLM.from_pretrained(cfg.model.path, attn_implementation=attn),
                          reward_funcs=[reward], args=args,
                          train_dataset=data, processing_class=tok, callbacks=[Clock()])
    start = time.perf_counter()
    trainer.train()
    gaps = [b - a for a, b in zip([start, *stamps], stamps)]
    step, rollout = statistics.median(gaps[WARMUP:]), statistics.median(sampling[WARMUP:])
    # TRL logs its completions' mean length every step: the same work as imagine's rows, or not
    lengths = [h["completions/mean_length"] for h in trainer.state.log_history if "completions/mean_length" in h]
    print(json.dumps({"seconds_per_step": step, "peak_rss_mib": status_kib("VmHWM") / 1024,
                      "rollout_seconds": rollout, "update_seconds": step - rollout,
                      "warmup_seconds": sum(gaps[:WARMUP]),
                      "response_tokens": statistics.median(lengths[WARMUP:]) if lengths[WARMUP:] else None}))


def run_trl(config: str, shared: tuple[str, ...], work: Path, steps: int, run: Run) -> dict:
    proc = subprocess.run([sys.executable, "-m", "imagine.bench.grpo_bench", "--trl-child", config,
                           *[a for o in shared for a in ("--set", o)],
                           "--steps", str(steps), "--out", str(work / "trl"),
                           *(["--attn", run.attn] if run.attn else []),
                           *(["--bf16"] if run.precision == "bf16" else [])],
                          capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, "WANDB_MODE": "disabled"})
    lines = [x for x in proc.stdout.splitlines() if x.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"error": proc.stderr[-1500:]}
    return json.loads(lines[-1])


def fastest(runs: list[dict]) -> dict:
    """The round with the fewest seconds a step (noise on a shared machine only adds time), with the
    slowest round's beside it so the table shows the spread."""
    good = [r for r in runs if "error" not in r]
    if not good:
        return runs[0]
    best = min(good, key=lambda r: r["seconds_per_step"])
    return {**best, "slowest_seconds_per_step": max(r["seconds_per_step"] for r in good), "rounds": len(good)}


def measure(workload: Workload, work: Path, demo_dir: Path, steps: int, rounds: int) -> dict:
    """Every row of one workload, ``rounds`` times, interleaved so a slow spell of the machine hits every
    row alike; or why the workload could not run."""
    section = {"date": time.strftime("%Y-%m-%d"), "cpu": cpu_description(), "packages": package_versions(),
               "steps": steps}
    try:
        shared = workload.setup(work, demo_dir)
    except Skipped as why:
        return {**section, "skipped": str(why)}
    section["settings"] = run_settings(workload.config, shared)
    measured: dict[str, list[dict]] = {name: [] for name in workload.runs}
    for k in range(rounds):
        for name, run in workload.runs.items():
            if run.trainer == "trl":
                measured[name].append(run_trl(workload.config, shared, work, steps, run))
            else:
                measured[name].append(run_imagine(workload.config, shared, work, steps, *run.imagine_args(),
                                                  name=f"{name}-round{k}"))
    return {**section, "rounds": measured}


def load_rounds(path: Path, steps: int) -> dict:
    """A saved ``grpo_rounds.json``: one section per workload, or an older file holding the letters rows alone."""
    data = json.loads(path.read_text())
    if not any(name in data for name in WORKLOADS):
        data = {"letters": {"steps": steps, "rounds": data}}
    return data


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="bench/results")
    ap.add_argument("--steps", type=int, default=WARMUP + 5)
    ap.add_argument("--rounds", type=int, default=2, help="runs of every row, interleaved; the faster is reported")
    ap.add_argument("--workloads", default=",".join(WORKLOADS),
                    help="comma-separated; a section not run keeps its numbers from the saved grpo_rounds.json")
    ap.add_argument("--demo-dir", default=str(ROOT / "runs" / "demo"), help="make demo's outputs (travelplanner)")
    ap.add_argument("--note", default="", help="what else ran on the machine, saved with the sections run now")
    ap.add_argument("--trl-child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--set", action="append", default=[], help=argparse.SUPPRESS)
    ap.add_argument("--bf16", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--attn", default="", help=argparse.SUPPRESS)
    ap.add_argument("--from-rounds", default=None, metavar="JSON",
                    help="rewrite grpo.md from a run's grpo_rounds.json without running anything")
    args = ap.parse_args(argv)
    if args.rounds < 1 or args.steps <= WARMUP:
        ap.error(f"--rounds must be at least 1 and --steps more than the {WARMUP} warm-up steps")
    if args.trl_child:
        trl_child(args.trl_child, args.set, args.steps, args.out, bf16=args.bf16, attn=args.attn)
        return 0
    out = Path(args.out)
    if args.from_rounds:
        write_report(out / "grpo.md", report(load_rounds(Path(args.from_rounds), args.steps)))
        return 0
    names = [n.strip() for n in args.workloads.split(",") if n.strip()]
    unknown = sorted(set(names) - set(WORKLOADS))
    if unknown:
        ap.error(f"--workloads: unknown {', '.join(unknown)}; known: {', '.join(WORKLOADS)}")
    saved = out / "grpo_rounds.json"
    sections = load_rounds(saved, args.steps) if saved.exists() else {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            work = Path(tmp) / name
            work.mkdir()
            result = measure(WORKLOADS[name], work, Path(args.demo_dir), args.steps, args.rounds)
            if "skipped" in result and "rounds" in sections.get(name, {}):
                # a machine without the inputs must not erase the numbers measured where they existed
                print(f"{name}: not run ({result['skipped']}); keeping its saved rounds", file=sys.stderr)
                continue
            sections[name] = {**result, **({"note": args.note} if args.note else {})}
    out.mkdir(parents=True, exist_ok=True)
    saved.write_text(json.dumps(sections, indent=1) + "\n")  # every round of every row, for the spread
    write_report(out / "grpo.md", report(sections))
    return 0


def fastest_trl(r: dict, runs: dict[str, Run], precision: str) -> str | None:
    """The TRL row of this precision with the fewest seconds a step: the baseline to beat."""
    rows = [n for n, run in runs.items()
            if run.trainer == "trl" and run.precision == precision and "seconds_per_step" in r.get(n, {})]
    return min(rows, key=lambda n: r[n]["seconds_per_step"], default=None)


def report(sections: dict) -> str:
    """grpo.md: one section per workload in ``WORKLOADS`` order, each from its saved rounds."""
    lines = [
        "# GRPO step: train.py grpo vs TRL GRPOTrainer (CPU)", "",
        f"Written by `make bench-grpo` ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        "torch threads as default); each section says when its rows ran. One process, one optimizer update a "
        "step. Every row ran in its own process, the rows of a section one after the other and every row "
        "`rounds` times, interleaved with the others; the table shows its faster round, with the slowest round's "
        f"seconds a step beside it. Seconds a step is the median after the first {WARMUP} steps (*warm-up*: "
        "compiles, which inductor's on-disk cache shortens in later runs, and first allocations). TorchEngine "
        f"samples a step's {STEP_ROWS} sequences in one batch (`rollout.torch_batch_size={STEP_ROWS}`, faster "
        "than its default 16). TRL samples with transformers' generate (no vLLM server), so it has no engine "
        "tokens/s or weight sync; it updates at its default, a step's rows in one forward, and always computes "
        "its tokens' entropy, which imagine's rows skip (`log.entropy=false`; 3% of a demo step). *rollout* is "
        "sampling plus reward, *update* the forward, backward and optimizer step. Each step-time ratio is against the faster TRL row of the same precision. Both sections run by "
        "`make bench-grpo`; `--workloads` runs one and keeps the other's saved rounds.",
    ]
    for name, workload in WORKLOADS.items():
        if name in sections:
            lines += ["", *section_report(workload, sections[name])]
    return "\n".join(lines) + "\n"


def section_report(workload: Workload, section: dict) -> list[str]:
    lines = [f"## {workload.title}", ""]
    if "skipped" in section:
        return [*lines, f"Not run: {section['skipped']}."]
    where = f" on {section['cpu']}" if section.get("cpu") else " on a CPU the section did not record"
    when = f"Ran on {section['date']}{where}. " if section.get("date") else ""
    rounds = section["rounds"]
    steps = section["steps"]
    r = {name: fastest(runs) for name, runs in rounds.items()}
    n_rounds = max(map(len, rounds.values()))
    lines += [f"{when}{workload.about} {steps} steps a run, median of steps {WARMUP + 1}..{steps}; every row ran "
              f"{n_rounds} times.", ""]
    if section.get("settings"):
        lines += [settings_text(section["settings"]), ""]

    def cell(name, key, fmt):
        if name not in r:
            return "not run"
        if "error" in r[name]:
            return "failed"
        v = r[name].get(key)
        return fmt.format(v) if v is not None else "n/a"

    def ok(name, *keys):
        return all(k in r.get(name, {}) for k in keys)

    runs = workload.runs
    lines += ["| run | update precision | seconds / step | slowest round | warm-up (s) | rollout (s) | update (s) "
              "| waited (s) | peak RSS (MiB) | sampling tokens/s | weight sync (s) | new tokens a completion |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, run in runs.items():
        lines.append(f"| {name} | {run.precision} | {cell(name, 'seconds_per_step', '{:.2f}')} | "
                     f"{cell(name, 'slowest_seconds_per_step', '{:.2f}')} | {cell(name, 'warmup_seconds', '{:.0f}')} | "
                     f"{cell(name, 'rollout_seconds', '{:.2f}')} | {cell(name, 'update_seconds', '{:.2f}')} | "
                     f"{cell(name, 'wait_seconds', '{:.2f}') if run.off_policy else '-'} | "
                     f"{cell(name, 'peak_rss_mib', '{:.0f}')} | {cell(name, 'sample_tokens_per_s', '{:.0f}')} | "
                     f"{cell(name, 'sync_seconds', '{:.3f}')} | {cell(name, 'response_tokens', '{:.0f}')} |")
    lines.append("")
    for name, run in runs.items():
        if run.engine != "vllm":
            continue
        trl = fastest_trl(r, runs, run.precision)
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
    if section.get("note"):
        lines.append(f"- {section['note']}")
    return lines


if __name__ == "__main__":
    raise SystemExit(main())
