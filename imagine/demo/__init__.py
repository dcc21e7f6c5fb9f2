"""``imagine demo``: the whole IMAGINE pipeline on a synthetic world, on a CPU, with no download.

Each stage is the command a user would type, run as a subprocess, so the demo exercises the real entry
points and prints them for copying. A stage is marked done only after it exits cleanly; an interrupted
demo resumes at the first unfinished stage (stages that resume themselves, such as the teacher, SFT and
GRPO, pick up inside the stage; the others start that stage over). ``--fresh`` starts from nothing.

Stages: a world; the teacher's training queries and a disjoint, all-feasible held-out set; the
multi-agent teacher on both; a tokenizer learned from the traces; a copy warm-up of a small student
from scratch (standing in for the pretraining the paper's model arrives with); SFT from it; GRPO from
an SFT checkpoint (and, at full scale, an ablation without the reflection bonus); every model on the
held-out set; ``results.json`` and ``report.md``. Sizes come from :mod:`imagine.demo.scale` (``--quick`` for the
smoke-test preset).
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from imagine.io import atomic_write_bytes

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Stage:
    name: str
    why: str
    argv: list[str]
    restart_paths: list[Path] = field(default_factory=list)  # removed before a rerun of an unfinished stage


def _config_or(preferred: Path, fallback: Path) -> str:
    """The demo's own config once it exists, else a stock one, so the demo runs while it is tuned."""
    return str(preferred if preferred.exists() else fallback)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the whole pipeline on a synthetic world (CPU, no download)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/demo", help="working directory (default: runs/demo)")
    p.add_argument("--quick", action="store_true", help="the small smoke-test preset (minutes, not a result)")
    p.add_argument("--queries", type=int, default=None, help="training queries for the teacher (preset's)")
    p.add_argument("--eval-queries", type=int, default=None, help="feasible held-out queries (preset's)")
    p.add_argument("--sft-steps", type=int, default=None, help="SFT steps (preset's, else the SFT config's)")
    p.add_argument("--grpo-from-step", type=int, default=None, help="K: GRPO starts from SFT's hf_step<K>")
    p.add_argument("--grpo-steps", type=int, default=None, help="GRPO steps (preset's, else the GRPO config's)")
    p.add_argument("--student-max-tokens", type=int, default=None, help="generation budget per held-out answer")
    p.add_argument("--copy-steps", type=int, default=None, help="copy warm-up steps (preset's, else the config's)")
    p.add_argument("--warmup-config", default=str(REPO / "configs" / "sft" / "demo_warmup.yaml"))
    p.add_argument("--sft-config", default=str(REPO / "configs" / "sft" / "demo.yaml"))
    p.add_argument("--grpo-config", default=_config_or(REPO / "configs" / "grpo" / "demo.yaml",
                                                       REPO / "configs" / "grpo" / "tiny_cpu.yaml"))
    p.add_argument("--mas-config", default=_config_or(REPO / "configs" / "mas" / "demo.yaml",
                                                      REPO / "configs" / "mas" / "scripted.yaml"))
    p.add_argument("--sft-set", action="append", default=[], metavar="KEY=VALUE",
                   help="extra override for train.py sft (repeatable), e.g. --sft-set train.lr=1e-3")
    p.add_argument("--grpo-set", action="append", default=[], metavar="KEY=VALUE",
                   help="extra override for train.py grpo (repeatable)")
    p.add_argument("--nproc", type=int, default=2, help="torchrun processes for SFT and GRPO")
    p.add_argument("--engine", default=None, choices=["vllm", "torch"],
                   help="held-out sampling engine (default: vllm when installed)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fresh", action="store_true", help="delete the working directory first")
    p.set_defaults(func=run)


def scale_of(args: argparse.Namespace):
    from imagine.demo.scale import PRESETS

    scale = PRESETS["quick" if args.quick else "full"]
    flags = {"train_queries": args.queries, "heldout_queries": args.eval_queries, "copy_steps": args.copy_steps,
             "sft_steps": args.sft_steps,
             "grpo_from_step": args.grpo_from_step, "grpo_steps": args.grpo_steps,
             "max_tokens": args.student_max_tokens}
    scale = replace(scale, **{k: v for k, v in flags.items() if v is not None})
    scale.check()
    from imagine.config import load_config
    from imagine.train.config import SFTConfig

    if scale.copy_steps is None and scale.copy_restart_at is not None:
        # check() knows only a preset's copy_steps; the warm-up config's own length bounds the restart too
        steps = load_config(SFTConfig, args.warmup_config, list(scale.copy_overrides)).train.max_steps
        if not 0 < scale.copy_restart_at < steps:
            raise ValueError(f"copy_restart_at {scale.copy_restart_at} must be in 1..{steps - 1}, inside the warm-up "
                             f"steps of {args.warmup_config}; set it in imagine/demo/scale.py")
    if scale.sft_steps is None:
        # K must be a step SFT reaches, or GRPO would find no hf_step<K> only after SFT's whole run.
        steps = load_config(SFTConfig, args.sft_config, [*scale.sft_overrides, *args.sft_set]).train.max_steps
        if not 0 < scale.grpo_from_step <= steps:
            raise ValueError(f"grpo_from_step (K) {scale.grpo_from_step} must be in 1..{steps}, the SFT steps of "
                             f"{args.sft_config}; set it in imagine/demo/scale.py or with --grpo-from-step")
    return scale


def _torchrun(nproc: int) -> list[str]:
    exe = Path(sys.executable).with_name("torchrun")
    launcher = [str(exe)] if exe.exists() else [sys.executable, "-m", "torch.distributed.run"]
    return [*launcher, f"--nproc_per_node={nproc}", str(REPO / "train.py")]


def stages(args: argparse.Namespace, out: Path, scale) -> list[Stage]:
    from imagine.config import load_config
    from imagine.mas.config import MasConfig
    from imagine.rollout import has_vllm
    from imagine.train.config import SFTConfig

    py, s = sys.executable, scale
    mas_cfg = load_config(MasConfig, args.mas_config)
    student = load_config(SFTConfig, args.warmup_config, list(s.copy_overrides)).model
    world, queries, held_out = out / "world", out / "queries.jsonl", out / "heldout.jsonl"
    mas, mas_held_out, sft, eval_dir = out / "mas", out / "mas_heldout", out / "sft", out / "eval"
    tokenizer, copy_data, warmup = out / "tokenizer", out / "copy.jsonl", out / "warmup"
    k = s.grpo_from_step

    warmup_argv = [*_torchrun(args.nproc), "sft", "--config", args.warmup_config, f"out_dir={warmup}",
                   f"data.train_path={copy_data}", f"model.tokenizer={tokenizer}", f"train.seed={args.seed}",
                   "checkpoint.export_hf_steps=[0]"]
    if s.copy_steps is not None:
        warmup_argv.append(f"train.max_steps={s.copy_steps}")
    warmup_argv += list(s.copy_overrides)
    warmup_why = "a small student from scratch learns to copy from its context (exports step 0: base)"
    if s.copy_restart_at is None:
        warmup_stages = [Stage("warmup", warmup_why, warmup_argv)]
    else:  # a first cycle that decays fully, then the same run resumed on the config's schedule
        first_cycle = [*warmup_argv, f"train.max_steps={s.copy_restart_at}", "train.min_lr_ratio=0.05"]
        warmup_stages = [Stage("warmup", warmup_why, first_cycle),
                         Stage("warmup-restart", f"the warm-up resumes at step {s.copy_restart_at} on its full "
                                                 "schedule (a warm restart)", warmup_argv)]

    sft_argv = [*_torchrun(args.nproc), "sft", "--config", args.sft_config, f"out_dir={sft}",
                f"data.train_path={mas / 'sft.jsonl'}", f"model.path={warmup / 'hf'}",
                f"train.seed={args.seed}", f"checkpoint.export_hf_steps=[{k}]"]
    if s.sft_steps is not None:
        sft_argv.append(f"train.max_steps={s.sft_steps}")
    sft_argv += [*s.sft_overrides, *args.sft_set]

    def grpo(run_dir: Path, *extra: str) -> list[str]:
        argv = [*_torchrun(args.nproc), "grpo", "--config", args.grpo_config, f"out_dir={run_dir}",
                f"model.path={sft / f'hf_step{k}'}", f"task.options.queries={queries}", f"task.options.db={world}",
                # The student must see the prompts it was distilled on.
                f"task.options.reference_style={mas_cfg.reference_style}",
                f"task.options.prompt_version={mas_cfg.prompt_version}", f"train.seed={args.seed}"]
        if s.grpo_steps is not None:
            argv.append(f"train.max_steps={s.grpo_steps}")
        return argv + [*s.grpo_overrides, *args.grpo_set, *extra]

    engine = args.engine or ("vllm" if has_vllm() else "torch")

    world_argv = [py, "-m", "imagine", "world", "synth", "--out", str(world), "--seed", str(args.seed),
                  "--cities", str(s.cities), "--states", str(s.states), "--restaurants", s.restaurants,
                  "--attractions", s.attractions, "--accommodations", s.accommodations,
                  "--missing-route-share", str(s.missing_route_share), *s.world_options]
    out_stages = [
        Stage("world", "a synthetic sandbox in the official CSV layout, at demo scale", world_argv, [world]),
        Stage("queries", "Stage 1: training queries with reference information (infeasible ones included)",
              [py, "-m", "imagine", "queries", "gen", "--db", str(world), "--n", str(s.train_queries),
               "--mix", s.mix, "--seed", str(args.seed), "--out", str(queries), "--no-progress"], [queries]),
        Stage("held-out", "feasible held-out queries, disjoint from the training queries",
              [py, "-m", "imagine", "queries", "gen", "--db", str(world), "--n", str(s.heldout_queries),
               "--mix", s.mix, "--seed", str(args.seed + 1), "--exclude", str(queries), "--feasible-only",
               "--out", str(held_out), "--no-progress"], [held_out]),
        Stage("teacher", "Stage 2: the multi-agent teacher writes reflection traces on the training queries",
              [py, "-m", "imagine", "mas", "run", "--config", args.mas_config, "--db", str(world),
               "--queries", str(queries), "--out", str(mas), "--no-progress"]),
        Stage("teacher-held-out", "the same teacher on the held-out queries, for the comparison",
              [py, "-m", "imagine", "mas", "run", "--config", args.mas_config, "--db", str(world),
               "--queries", str(held_out), "--out", str(mas_held_out), "--no-progress"]),
        Stage("tokenizer", "a byte-level BPE learned from the teacher's traces, shared by every student",
              [py, "-m", "imagine.models.tokenizer", "--data", str(mas / "sft.jsonl"),
               "--vocab-size", str(student.train_tokenizer_vocab_size), "--split", student.train_tokenizer_split,
               "--out", str(tokenizer)], [tokenizer]),
        Stage("copy-data", "warm-up samples: repeat a row of a flight table from the prompt",
              [py, "-m", "imagine.demo.copy_task", "--db", str(world), "--n", str(s.copy_samples),
               "--seed", str(args.seed), "--out", str(copy_data)], [copy_data]),
        *warmup_stages,
        Stage("sft", f"Stage 3a: SFT of the warmed-up student on the traces (exports step {k})", sft_argv),
        Stage("grpo", f"Stage 3b: GRPO from SFT step {k} against the evaluator", grpo(out / "grpo")),
    ]
    if s.ablation:
        out_stages.append(Stage("grpo-ablation", "the same GRPO run without the reflection bonus",
                                grpo(out / "grpo_ablation", "task.options.reward.reflection_bonus=0")))
    students = {"base": warmup / "hf_step0", "sft": sft / "hf", "grpo": out / "grpo" / "hf"}
    if s.ablation:
        students["grpo_no_reflection_bonus"] = out / "grpo_ablation" / "hf"
    out_stages.append(Stage(
        "eval-students", "the students answer the held-out queries (greedy, then sampled at T=1)",
        [py, "-m", "imagine.demo.evaluate", "students", *[a for name, d in students.items() for a in ("--model", f"{name}={d}")],
         "--db", str(world), "--queries", str(held_out), "--out", str(eval_dir), "--engine", engine,
         "--samples", str(s.eval_samples), "--temperature", str(s.eval_temperature), "--max-tokens", str(s.max_tokens),
         "--seed", str(args.seed), "--reference-style", mas_cfg.reference_style,
         "--prompt-version", mas_cfg.prompt_version]))
    out_stages += [
        Stage("eval-teacher", "the Reasoner's first answers and the team's final answers, from the traces",
              [py, "-m", "imagine.demo.evaluate", "teacher", "--traces", str(mas_held_out), "--db", str(world),
               "--queries", str(held_out), "--out", str(eval_dir)]),
        Stage("report", "results.json and report.md with plots", [py, "-m", "imagine.demo.report", str(out)]),
    ]
    return out_stages


def run(args: argparse.Namespace) -> int:
    from imagine.errors import UserError

    out = Path(args.out).resolve()
    try:
        scale = scale_of(args)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if args.fresh and out.exists():
        shutil.rmtree(out)
    marks = out / ".stages"
    marks.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    plan = stages(args, out, scale)
    for i, stage in enumerate(plan, 1):
        mark = marks / stage.name
        head = f"== [{i}/{len(plan)}] {stage.name}"
        if mark.exists():
            print(f"{head}: done already", flush=True)
            continue
        for path in stage.restart_paths:
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
        print(f"{head}: {stage.why}\n   $ {shlex.join(stage.argv)}", flush=True)
        t0 = time.perf_counter()
        proc = subprocess.run(stage.argv, cwd=REPO)
        if proc.returncode != 0:
            print(f"imagine demo: stage {stage.name!r} failed (exit code {proc.returncode}); "
                  f"rerun the same command to resume", file=sys.stderr)
            return proc.returncode
        seconds = time.perf_counter() - t0
        atomic_write_bytes(mark, f"{seconds:.1f}\n".encode())
        print(f"   {stage.name} done in {seconds:.0f}s", flush=True)
    times = []
    for stage in plan:
        text = (marks / stage.name).read_text().strip()
        times.append(f"{stage.name} {float(text or 0):.0f}s")
    print("== stage times: " + ", ".join(times))
    print(f"== demo finished in {time.perf_counter() - t_all:.0f}s; results in {out / 'results.json'}, "
          f"report in {out / 'report.md'}")
    return 0
