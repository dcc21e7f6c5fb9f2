"""The demo's outputs: ``results.json`` (the contract tests and users read) and ``report.md`` with plots.

    python -m imagine.demo.report runs/demo

Numbers come only from ``eval/<model>.json`` (written by :mod:`imagine.demo.evaluate` from the published
submissions) and from the training runs' ``metrics.jsonl``; nothing is recomputed here, so the report
cannot drift from the files it cites.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from imagine.io import atomic_write_bytes, atomic_write_json, iter_jsonl, loads
from imagine.machine import environment
from imagine.tasks.travelplanner.evaluator.metrics import METRIC_NAMES

MODELS = ("base", "sft", "grpo", "reasoner", "teacher")
ABLATION = "grpo_no_reflection_bonus"
LABELS = {"base": "base (untrained init)", "sft": "SFT", "grpo": "SFT+GRPO", "reasoner": "teacher's Reasoner alone",
          "teacher": "multi-agent teacher", ABLATION: "SFT+GRPO, reflection bonus 0"}
SHORT = {"Delivery Rate": "delivery", "Commonsense Constraint Micro Pass Rate": "CS micro",
         "Commonsense Constraint Macro Pass Rate": "CS macro", "Hard Constraint Micro Pass Rate": "hard micro",
         "Hard Constraint Macro Pass Rate": "hard macro", "Final Pass Rate": "final pass"}


def collect(out: Path) -> dict[str, Any]:
    eval_dir = out / "eval"
    models = {m: loads((eval_dir / f"{m}.json").read_bytes()) for m in MODELS if (eval_dir / f"{m}.json").exists()}
    n = sum(1 for _ in iter_jsonl(out / "heldout.jsonl"))
    # where the run happened: its outcome moved with the machine and library releases (docs/demo.md)
    results: dict[str, Any] = {"heldout_queries": n, "models": models, "environment": environment()}
    if (eval_dir / f"{ABLATION}.json").exists():
        results["ablation"] = {ABLATION: loads((eval_dir / f"{ABLATION}.json").read_bytes())}
    return results


def _series(path: Path, keys: list[str]) -> dict[str, tuple[list[int], list[float]]]:
    """Per key, (steps, values) from a metrics.jsonl; a resumed run's repeated steps keep the last value."""
    rows: dict[int, dict] = {}
    if path.exists():
        for _, rec in iter_jsonl(path, skip_partial_tail=True):
            if isinstance(rec, dict) and isinstance(rec.get("step"), int):
                rows[rec["step"]] = rec
    out = {}
    for key in keys:
        pts = [(s, float(r[key])) for s, r in sorted(rows.items()) if isinstance(r.get(key), (int, float))]
        out[key] = ([s for s, _ in pts], [v for _, v in pts])
    return out


def _reward_keys(path: Path) -> list[str]:
    keys: list[str] = []
    if path.exists():
        for _, rec in iter_jsonl(path, skip_partial_tail=True):
            if isinstance(rec, dict):
                keys += [k for k in rec if (k == "reward" or k.startswith("reward/")) and k not in keys]
    return keys


def plots(out: Path, results: dict[str, Any]) -> list[tuple[str, str]]:
    """PNG files under ``out/plots`` and their captions; a plot with no data is left out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pdir = out / "plots"
    pdir.mkdir(parents=True, exist_ok=True)
    made = []

    def save(fig, name: str, caption: str) -> None:
        fig.tight_layout()
        fig.savefig(pdir / name, dpi=110)
        plt.close(fig)
        made.append((f"plots/{name}", caption))

    sft = _series(out / "sft" / "metrics.jsonl", ["loss"])["loss"]
    warmup = _series(out / "warmup" / "metrics.jsonl", ["loss"])["loss"]
    if sft[0]:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        if warmup[0]:  # the copy warm-up comes first, so SFT's steps follow on after it
            ax.plot(*warmup, label="copy warm-up")
            sft = ([warmup[0][-1] + s for s in sft[0]], sft[1])
        ax.plot(*sft, label="SFT on the teacher's traces")
        ax.set(xlabel="step", ylabel="loss", yscale="log", title="Warm-up and SFT loss")
        ax.legend(fontsize=8)
        save(fig, "sft_loss.png", "Copy warm-up and SFT training loss")

    runs = [("grpo", "SFT+GRPO")] + ([("grpo_ablation", "reflection bonus 0")] if "ablation" in results else [])
    for run, label in runs:
        path = out / run / "metrics.jsonl"
        keys = _reward_keys(path)
        honest = "rollout/No errors. is a final pass"
        series = _series(path, keys + ["rollout/Final Pass Rate", "reward/no_errors", honest])
        if series.get("reward", ([], []))[0]:
            fig, ax = plt.subplots(figsize=(6, 3.5))
            for key in keys:
                ax.plot(*series[key], label=key, linewidth=2 if key == "reward" else 1)
            ax.set(xlabel="GRPO step", ylabel="mean over rollouts", title=f"GRPO reward and components ({label})")
            ax.legend(fontsize=7)
            save(fig, f"{run}_reward.png", f"GRPO reward and each component per step ({label})")
        if series["rollout/Final Pass Rate"][0] or series["reward/no_errors"][0]:
            fig, ax = plt.subplots(figsize=(6, 3.5))
            ax.plot(*series["rollout/Final Pass Rate"], label="rollout final pass")
            ax.plot(*series["reward/no_errors"], label='reflection says "No errors."')
            ax.plot(*series[honest], label='"No errors." that pass', linestyle="--")
            ax.set(xlabel="GRPO step", ylabel="share of rollouts", ylim=(0, 1), title=f"Rollouts ({label})")
            ax.legend(fontsize=8)
            save(fig, f"{run}_rollouts.png", f'Rollout final pass and "No errors." share per step ({label})')

    entries = {**results["models"], **results.get("ablation", {})}
    if entries:
        fig, ax = plt.subplots(figsize=(7, 3.5))
        names = list(entries)
        bars = ax.bar(range(len(names)), [100 * entries[m]["Final Pass Rate"] for m in names], color="tab:blue")
        ax.bar_label(bars, fmt="%.1f", fontsize=8)
        ax.set_xticks(range(len(names)), [LABELS.get(m, m) for m in names], rotation=20, ha="right", fontsize=8)
        ax.set(ylabel="greedy final pass %", title=f"Held-out final pass ({results['heldout_queries']} queries)")
        save(fig, "heldout_final_pass.png", "Held-out greedy final pass per model")
    return made


def _pct(v: Any) -> str:
    return "–" if v is None else f"{100 * v:.1f}%"


def render(results: dict[str, Any], figures: list[tuple[str, str]], timings: dict[str, float]) -> str:
    entries = {**results["models"], **results.get("ablation", {})}
    lines = ["# imagine demo report", "",
             f"{results['heldout_queries']} held-out feasible queries of the synthetic world, none among the "
             "teacher's training queries; the six official metrics of the TravelPlanner evaluator (greedy answers).",
             "", "| model | " + " | ".join(SHORT[k] for k in METRIC_NAMES)
             + " | sampled final pass | tokens / answer | s / answer | \"No errors.\" share | of which pass |",
             "|---" * (len(METRIC_NAMES) + 6) + "|"]
    for m, e in entries.items():
        lines.append(f"| {LABELS.get(m, m)} | " + " | ".join(_pct(e[k]) for k in METRIC_NAMES)
                     + f" | {_pct(e.get('sampled_final_pass'))} | {e['tokens_per_answer']:.0f} | "
                     f"{e['seconds_per_answer']:.3f} | {_pct(e.get('no_errors_share'))} | "
                     f"{_pct(e.get('no_errors_honest'))} |")
    lines += ["",
              "Sampled final pass: the mean over the samples at T=1 per query. Students' cost is their greedy "
              "generation; the teacher's is every agent call its traces record (Reasoner, two Judges, the "
              "Reflector when it ran), the Reasoner's its own call. \"No errors.\": of the answers whose "
              "reflection concludes so, the share that really pass (the team's trace says it when no judge "
              "flagged the first answer; the Reasoner alone does not reflect).", "",
              "Each row is reproducible: `python -m imagine eval --db world --queries heldout.jsonl "
              "--plans eval/<model>.jsonl`.", ""]
    for path, caption in figures:
        lines += [f"![{caption}]({path})", ""]
    if timings:
        lines += ["Stage times: " + ", ".join(f"{k} {v:.0f}s" for k, v in timings.items()), ""]
    return "\n".join(lines)


def stage_times(out: Path) -> dict[str, float]:
    marks = out / ".stages"
    times = {}
    if marks.is_dir():
        for mark in sorted(marks.iterdir(), key=lambda p: p.stat().st_mtime):
            try:
                times[mark.name] = float(mark.read_text().strip() or 0)
            except ValueError:
                continue
    return times


def write_report(out: str | Path) -> dict[str, Any]:
    out = Path(out)
    results = collect(out)
    atomic_write_json(out / "results.json", results)
    figures = plots(out, results)
    atomic_write_bytes(out / "report.md", render(results, figures, stage_times(out)).encode())
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m imagine.demo.report", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", help="the demo's working directory (runs/demo)")
    args = ap.parse_args(argv)
    results = write_report(args.out)
    print(f"wrote {Path(args.out) / 'results.json'} and {Path(args.out) / 'report.md'} "
          f"({len(results['models'])} models)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
