"""``imagine demo``: the whole pipeline on the embedded synthetic world, on a CPU, with no download.

Each stage is the command a user would type, run as a subprocess, so the demo exercises the real entry
points and prints them for copying. A stage is marked done only after it exits cleanly; an interrupted
demo resumes at the first unfinished stage (stages that resume themselves, such as the teacher and
SFT, pick up inside the stage; the others start that stage over). ``--fresh`` starts from nothing.

The summary compares, on held-out queries the student never saw, the teacher's Reasoner alone, the
multi-agent teacher, and the distilled student, with the official metrics.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from imagine.io import atomic_write_bytes

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Stage:
    name: str
    why: str
    argv: list[str]
    restart_paths: list[Path] = field(default_factory=list)  # removed before a rerun of an unfinished stage


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the whole pipeline on the synthetic world (CPU, no download)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/demo", help="working directory (default: runs/demo)")
    p.add_argument("--queries", type=int, default=240, help="generated training queries for the teacher")
    p.add_argument("--eval-queries", type=int, default=36, help="held-out queries for the comparison")
    p.add_argument("--sft-config", default=str(REPO / "configs" / "sft" / "demo.yaml"))
    p.add_argument("--mas-config", default=str(REPO / "configs" / "mas" / "scripted.yaml"))
    p.add_argument("--sft-set", action="append", default=[], metavar="KEY=VALUE",
                   help="extra override for train.py sft (repeatable), e.g. --sft-set train.lr=1e-3")
    p.add_argument("--sft-steps", type=int, default=None, help="override train.max_steps of the SFT config")
    p.add_argument("--engine", default=None, choices=["vllm", "torch"],
                   help="student sampling engine (default: vllm when installed)")
    p.add_argument("--student-max-tokens", type=int, default=2048, help="generation budget per answer")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fresh", action="store_true", help="delete the working directory first")
    p.set_defaults(func=run)


def stages(args: argparse.Namespace, out: Path) -> list[Stage]:
    py = sys.executable
    world, queries, held_out = out / "world", out / "queries.jsonl", out / "heldout.jsonl"
    mas, mas_held_out, sft = out / "mas", out / "mas_heldout", out / "sft"
    sft_argv = [py, str(REPO / "train.py"), "sft", "--config", args.sft_config,
                f"out_dir={sft}", f"data.train_path={mas / 'sft.jsonl'}", f"model.tokenizer={out / 'tokenizer'}",
                f"train.seed={args.seed}"]
    if args.sft_steps is not None:
        sft_argv.append(f"train.max_steps={args.sft_steps}")
    sft_argv += args.sft_set
    student_argv = [py, str(REPO / "rollout.py"), "--model", str(sft / "hf"), "--db", str(world),
                    "--queries", str(held_out), "--out", str(out / "student_rollouts.jsonl"),
                    "--json", str(out / "student_metrics.json"), "--temperature", "0",
                    "--max-tokens", str(args.student_max_tokens),
                    "--seed", str(args.seed)]
    if args.engine:
        student_argv += ["--engine", args.engine]
    return [
        Stage("world", "a synthetic sandbox in the official CSV layout",
              [py, "-m", "imagine", "world", "synth", "--out", str(world), "--seed", str(args.seed)], [world]),
        Stage("queries", "Stage 1: new queries with reference information and a feasibility flag",
              [py, "-m", "imagine", "queries", "gen", "--db", str(world), "--n", str(args.queries),
               "--seed", str(args.seed), "--out", str(queries)], [queries]),
        Stage("held-out", "held-out queries, deduplicated against the training queries",
              [py, "-m", "imagine", "queries", "gen", "--db", str(world), "--n", str(args.eval_queries),
               "--seed", str(args.seed + 1), "--out", str(held_out), "--exclude", str(queries)], [held_out]),
        Stage("teacher", "Stage 2: the scripted multi-agent teacher writes reflection traces",
              [py, "-m", "imagine", "mas", "run", "--config", args.mas_config, "--db", str(world),
               "--queries", str(queries), "--out", str(mas), "--no-progress"]),
        Stage("teacher-report", "the Reasoner's first answers vs the multi-agent final answers",
              [py, "-m", "imagine", "mas", "report", str(mas)]),
        Stage("teacher-held-out", "the same teacher on the held-out queries, for the comparison",
              [py, "-m", "imagine", "mas", "run", "--config", args.mas_config, "--db", str(world),
               "--queries", str(held_out), "--out", str(mas_held_out), "--no-progress"]),
        Stage("sft", "Stage 3a: agentic SFT of a small Qwen3-architecture student from scratch", sft_argv),
        Stage("student", "the student answers the held-out queries; the evaluator scores them",
              student_argv, [out / "student_rollouts.jsonl", out / "student_metrics.json"]),
    ]


def run(args: argparse.Namespace) -> int:
    out = Path(args.out).resolve()
    if args.fresh and out.exists():
        shutil.rmtree(out)
    marks = out / ".stages"
    marks.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    timings: dict[str, float] = {}
    for stage in stages(args, out):
        mark = marks / stage.name
        if mark.exists():
            print(f"== {stage.name}: done already", flush=True)
            continue
        for path in stage.restart_paths:
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
        print(f"== {stage.name}: {stage.why}\n   $ {shlex.join(stage.argv)}", flush=True)
        t0 = time.perf_counter()
        proc = subprocess.run(stage.argv, cwd=REPO)
        if proc.returncode != 0:
            print(f"imagine demo: stage {stage.name!r} failed (exit code {proc.returncode}); "
                  f"rerun the same command to resume", file=sys.stderr)
            return proc.returncode
        timings[stage.name] = time.perf_counter() - t0
        atomic_write_bytes(mark, f"{timings[stage.name]:.1f}\n".encode())
        print(f"   ({timings[stage.name]:.0f}s)", flush=True)
    text = summary(out)
    atomic_write_bytes(out / "summary.md", text.encode())
    print(text)
    print(f"== demo finished in {time.perf_counter() - t_all:.0f}s; outputs under {out}")
    return 0


def summary(out: Path) -> str:
    """Markdown table: Reasoner alone vs multi-agent teacher vs student on the held-out queries."""
    from orjson import loads

    from imagine.mas.report import summarize
    from imagine.tasks.travelplanner.metrics import metrics

    teacher = summarize(out / "mas_heldout")
    first = metrics(teacher["first"], teacher["queries"])
    final = metrics(teacher["final"], teacher["queries"])
    student = loads((out / "student_metrics.json").read_bytes())
    lines = [
        "# imagine demo: held-out results",
        "",
        f"{student['queries']} held-out queries of the synthetic world (none in the training queries); "
        "official metrics of the TravelPlanner evaluator.",
        "",
        "| metric | Reasoner alone (scripted) | multi-agent teacher (scripted) | student (SFT) |",
        "|---|---|---|---|",
    ]
    for name in final:
        row = [first[name], final[name], student["metrics"][name]]
        lines.append(f"| {name} | " + " | ".join(f"{100 * v:.1f}%" for v in row) + " |")
    rates = student["shape_rates"]
    lines += ["", "How far the student's answers get through the expected shape "
                  "(`<think>` reasoning, reflection, `</think>`, a JSON plan):", "",
              "| closes `</think>` | contains the reflection marker | JSON plan parses | format check passes |",
              "|---|---|---|---|",
              "| " + " | ".join(f"{100 * rates[k]:.1f}%" for k in ("think_closed", "reflection", "json_parsed",
                                                                     "format_ok")) + " |", ""]
    steps = sorted((out / "sft" / "checkpoints").glob("step_*")) if (out / "sft" / "checkpoints").exists() else []
    if steps:
        lines.append(f"Student: {steps[-1].name.removeprefix('step_').lstrip('0')} SFT steps; "
                     f"metrics log in {out / 'sft'}.")
    return "\n".join(lines) + "\n"
