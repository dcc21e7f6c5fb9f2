"""Stage-1 numbers: reference prompt size in both styles, and query generation throughput.

No pretrained tokenizer is available offline, so prompt size is measured three ways: characters,
whitespace-split words and a byte-level BPE (16k vocabulary) trained here on the 45 official train
references rendered in *both* styles, so neither style is favoured by the vocabulary.

    python -m imagine.bench.stage1_bench --out bench/results [--n 4105]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

from imagine.bench.common import write_report
from imagine.io import read_jsonl
from imagine.sandbox.database import Database
from imagine.sandbox.synth import SynthConfig, synthesize
from imagine.tasks.travelplanner.reference import count_tokens, render_reference, restaurant_file_index

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "travelplanner"


def train_bpe(texts: list[str], vocab_size: int = 16000):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def sizes(refs: list[dict], index, tok) -> dict[str, dict[str, int]]:
    out = {}
    for style in ("official", "compact"):
        total = {"chars": 0, "words": 0, "tokens": 0}
        for ref in refs:
            for k, v in count_tokens(render_reference(ref, style, restaurant_index=index), tok).items():
                total[k] += v
        out[style] = total
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", default="bench/results")
    p.add_argument("--n", type=int, default=4105)
    args = p.parse_args(argv)
    lines = ["# Stage 1: reference prompt size and query generation", "",
             f"Machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}.", ""]
    with tempfile.TemporaryDirectory() as tmp:
        world = synthesize(Path(tmp) / "db", SynthConfig(seed=0))
        db = Database(world)
        from imagine.cli import main as cli

        out = Path(tmp) / "q.jsonl"
        t0 = time.perf_counter()
        cli(["queries", "gen", "--db", str(world), "--n", str(args.n), "--seed", "0", "--no-progress", "--out", str(out)])
        gen_s = time.perf_counter() - t0
        recs = read_jsonl(out)
        report = json.loads(Path(f"{out}.report.json").read_text())
        gen_refs = [r["reference_information"] for r in recs[:300]]
        train_refs = []
        real_index = None
        if (SHARED / "train_ref_info.jsonl").is_file():
            train_refs = read_jsonl(SHARED / "train_ref_info.jsonl")
            real_index = restaurant_file_index(Database(SHARED / "database"))
        corpus = [render_reference(r, s, restaurant_index=real_index) for r in train_refs for s in ("official", "compact")]
        corpus += [render_reference(r, s, restaurant_index=restaurant_file_index(db)) for r in gen_refs[:45]
                   for s in ("official", "compact")]
        tok = train_bpe(corpus)
        lines += ["## Reference information: official table style vs compact style", "",
                  "| set | style | chars | words | BPE tokens (local byte-level, 16k) | tokens per query |",
                  "|---|---|---:|---:|---:|---:|"]
        for name, refs, index in (("45 train queries", train_refs, real_index),
                                  ("300 generated (synthetic world)", gen_refs, restaurant_file_index(db))):
            if not refs:
                continue
            s = sizes(refs, index, tok)
            for style in ("official", "compact"):
                lines.append(f"| {name} | {style} | {s[style]['chars']:,} | {s[style]['words']:,} | "
                             f"{s[style]['tokens']:,} | {s[style]['tokens'] / len(refs):,.0f} |")
            saving = 1 - s["compact"]["tokens"] / s["official"]["tokens"]
            lines.append(f"| {name} | saving | | | {saving:.1%} | |")
        feas = report["feasible"]
        lines += ["", "## Query generation on the default synthetic world (seed 0)", "",
                  "| queries | wall time (s) | queries/s | feasible | infeasible | unknown | candidates rejected |",
                  "|---:|---:|---:|---:|---:|---:|---:|",
                  f"| {len(recs)} | {gen_s:.1f} | {len(recs) / gen_s:.0f} | {feas.get('feasible', 0)} | "
                  f"{feas.get('infeasible', 0)} | {feas.get('unknown', 0)} | {report['rejected_total']} |", "",
                  "Rejections by reason:", ""]
        lines += [f"- {reason}: {count}" for reason, count in report["rejected"].items()]
    write_report(Path(args.out) / "stage1.md", "\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
