"""``train.py sft`` vs TRL's ``SFTTrainer``: tokens/s and peak memory, same model, data and schedule, CPU.

Setup shared by both trainers (built once in this run):

- data: the official ``train_sft_messages.jsonl`` conversations with the system and user messages
  cut to a length budget, so every conversation fits ``--max-len`` tokens whole and neither
  trainer truncates (their truncation rules differ). Two shapes: ``uniform`` (every conversation
  near ``--max-len``) and ``proportional`` (budgets proportional to the full lengths, keeping the
  file's spread of lengths);
- tokenizer: a byte-level BPE trained on that data (``imagine.models.tokenizer``), whose chat
  template has ``{% generation %}`` markers, so TRL's ``assistant_only_loss`` masks exactly the
  tokens ``train.py sft`` learns;
- model: one randomly initialised Qwen3-architecture checkpoint saved to disk; both load it;
- training: one epoch, 4 conversations per optimizer step, AdamW, warmup 1 + cosine, fp32, SDPA,
  one process, the same torch thread count; each trainer packed and padded.

Each trainer runs in its own process; tokens/s is (tokens trained) / (time between the first step's
start and the last step's end); peak memory is the process's peak resident set (VmHWM), with the
resident set just before training for reference (TRL imports more libraries).

    python -m imagine.bench.sft_bench --out bench/results      (needs `pip install trl`)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from imagine.bench.common import status_kib

ROOT = Path(__file__).resolve().parents[2]
SHARED_MESSAGES = ROOT.parent / "shared" / "travelplanner" / "train_sft_messages.jsonl"

SHAPES = ("uniform", "proportional")
MODEL = {"hidden_size": 256, "intermediate_size": 768, "num_hidden_layers": 4, "num_attention_heads": 8,
         "num_key_value_heads": 4, "head_dim": 32, "tie_word_embeddings": True}


def _trim(tok, messages: list[dict], length: int) -> list[dict]:
    """Cut the system prompt (keeping its start) and the user message (keeping its end) so the
    conversation fits ``length`` tokens; the assistant answer stays whole."""
    msgs = [dict(m) for m in messages]
    budget = max(16, length - len(tok(msgs[-1]["content"])["input_ids"]) - 32)  # a prompt, however short
    for m in msgs[:-1]:
        ids = tok(m["content"])["input_ids"]
        share = budget // 4 if m["role"] == "system" else budget - budget // 4
        m["content"] = tok.decode(ids[:share] if m["role"] == "system" else ids[-share:])
    return msgs


def prepare(work: Path, *, max_len: int, vocab: int, n_conv: int) -> dict:
    """Tokenizer, initial model and the two data shapes under ``work``; paths and token counts.

    ``uniform``: every conversation trimmed to about ``max_len`` tokens (no padding to speak of).
    ``proportional``: each trimmed to ``max_len`` x (its full length / the longest full length), so
    the official file's spread of lengths survives the scaling down.
    """
    from imagine.io import read_jsonl, write_jsonl
    from imagine.models.tiny import TinyModelSpec, build_tiny_model
    from imagine.models.tokenizer import conversation_texts, train_tokenizer
    from imagine.train.data import build_dataset, tokenize_conversation

    rows = read_jsonl(SHARED_MESSAGES)[:n_conv]
    tok_dir = work / "model"
    tok = train_tokenizer(conversation_texts(SHARED_MESSAGES), vocab, tok_dir)
    full = [len(tokenize_conversation(tok, r["messages"])[0]) for r in rows]
    shapes = {}
    for shape in SHAPES:
        lengths = [max_len] * len(rows) if shape == "uniform" else [max(256, max_len * n // max(full)) for n in full]
        data_path = work / f"data_{shape}.jsonl"
        write_jsonl(data_path, [{"messages": _trim(tok, r["messages"], n)} for r, n in zip(rows, lengths)])
        samples, stats = build_dataset(data_path, tok, max_len=max_len, overlong="error")
        shapes[shape] = {"data": str(data_path), "conversations": len(samples), "tokens": stats.tokens,
                         "target_tokens": stats.target_tokens, "longest": stats.longest,
                         "shortest": min(len(x.input_ids) for x in samples)}
    tokenization = tokenizer_speed(tok)
    model = build_tiny_model(TinyModelSpec(**MODEL), seed=0, tokenizer=tok)
    model.save_pretrained(str(tok_dir))
    return {"model": str(tok_dir), "shapes": shapes, "params": sum(p.numel() for p in model.parameters()),
            "tokenization": tokenization}


def tokenizer_speed(tok, repeats: int = 3) -> dict:
    """HF tokenizer vs the verified tiktoken encoder on every text piece of the full official file."""
    from imagine.models.fast_tokenizer import build_verified
    from imagine.train.data import conversation_segments_texts

    texts = conversation_segments_texts(SHARED_MESSAGES, tok)
    runs = [build_verified(tok, texts)[1] for _ in range(repeats)]
    hf = min(r["hf_seconds"] for r in runs)
    fast = min(r["tiktoken_seconds"] for r in runs)
    return {"texts": len(texts), "chars": sum(len(t) for t in texts), "hf_seconds": hf, "tiktoken_seconds": fast,
            "speedup": hf / fast}


def run_ours(prep: dict, args) -> dict:
    from imagine.config import load_config
    from imagine.train.config import SFTConfig
    from imagine.train.sft import train

    data = prep["shapes"][args.shape]
    out = _run_dir(args)
    steps = data["conversations"] // args.per_step
    packed = args.child == "ours"
    # pack: one row of at most max_len tokens per micro-batch; pad: the whole step in one padded batch
    micro_tokens = args.max_len if packed else args.max_len * args.per_step
    cfg = load_config(SFTConfig, None, [
        f"out_dir={out}", f"model.path={prep['model']}", "model.attn_implementation=sdpa",
        f"data.train_path={data['data']}", f"data.max_seq_len={args.max_len}", "data.overlong=error",
        f"data.batching={'pack' if packed else 'pad'}", "data.shuffle=false", f"train.max_steps={steps}",
        f"train.samples_per_step={args.per_step}", f"train.tokens_per_micro_batch={micro_tokens}",
        "train.lr=1e-3", "train.warmup_steps=1", "train.min_lr_ratio=0.0", "train.weight_decay=0.0",
        "train.grad_clip=1.0", "train.precision=fp32", "train.device=cpu", "checkpoint.every=0",
        "checkpoint.resume=none", "checkpoint.export_hf=false", "log.wandb_mode=disabled",
    ])
    rss_before = status_kib("VmRSS")
    t0 = time.perf_counter()
    result = train(cfg)
    wall = time.perf_counter() - t0
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    if len(records) != steps:
        raise RuntimeError(f"{out}/metrics.jsonl holds {len(records)} steps, this run made {steps}")
    seconds = sum(r["seconds"] for r in records)
    tokens = sum(r["tokens"] for r in records)
    name = "train.py sft, " + (f"packed rows of {args.max_len}" if packed else "length-grouped padded batch")
    return {"trainer": name, "steps": len(records), "tokens": tokens, "train_seconds": seconds,
            "tokens_per_s": tokens / seconds, "first_loss": result["losses"][0], "last_loss": result["losses"][-1],
            "rss_before_mib": rss_before / 1024, "peak_rss_mib": status_kib("VmHWM") / 1024, "wall_seconds": wall}


def run_trl(prep: dict, args) -> dict:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from imagine.io import read_jsonl

    class StepClock(TrainerCallback):
        def __init__(self):
            self.start = None
            self.end = None
            self.losses = []

        def on_step_begin(self, a, state, control, **kw):
            if self.start is None:
                self.start = time.perf_counter()

        def on_step_end(self, a, state, control, **kw):
            self.end = time.perf_counter()

        def on_log(self, a, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                self.losses.append(logs["loss"])

    tok = AutoTokenizer.from_pretrained(prep["model"])
    model = AutoModelForCausalLM.from_pretrained(prep["model"], dtype=torch.float32, attn_implementation="sdpa")
    dataset = Dataset.from_list(read_jsonl(prep["shapes"][args.shape]["data"]))
    packed = args.child == "trl"
    config = SFTConfig(
        output_dir=str(_run_dir(args)), max_length=args.max_len, packing=packed,
        packing_strategy="bfd", padding_free=packed,
        assistant_only_loss=True, per_device_train_batch_size=args.per_step, gradient_accumulation_steps=1,
        num_train_epochs=1, learning_rate=1e-3, lr_scheduler_type="cosine", warmup_steps=1, weight_decay=0.0,
        max_grad_norm=1.0, optim="adamw_torch", logging_steps=1, save_strategy="no", report_to="none",
        use_cpu=True, bf16=False, fp16=False, dataloader_num_workers=0, seed=0, shuffle_dataset=False,
        disable_tqdm=True,
    )
    clock = StepClock()
    trainer = SFTTrainer(model=model, args=config, train_dataset=dataset, processing_class=tok, callbacks=[clock])
    tokens = sum(len(x) for x in trainer.train_dataset["input_ids"])  # real tokens, before any padding
    rss_before = status_kib("VmRSS")
    t0 = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - t0
    seconds = clock.end - clock.start
    name = f"TRL {__import__('trl').__version__} SFTTrainer, " + ("packing (bfd, padding-free)" if packed else "padded batches")
    return {"trainer": name, "steps": trainer.state.global_step,
            "tokens": tokens, "train_seconds": seconds, "tokens_per_s": tokens / seconds,
            "first_loss": clock.losses[0] if clock.losses else None,
            "last_loss": clock.losses[-1] if clock.losses else None,
            "rss_before_mib": rss_before / 1024, "peak_rss_mib": status_kib("VmHWM") / 1024, "wall_seconds": wall}


def child(args) -> int:
    import torch

    torch.set_num_threads(args.threads)
    prep = json.loads(Path(args.prep).read_text())
    result = run_ours(prep, args) if args.child.startswith("ours") else run_trl(prep, args)
    print("RESULT " + json.dumps(result), flush=True)
    return 0


def _run_dir(args) -> Path:
    """A fresh directory per run: train.py appends to metrics.jsonl, so a reused one would mix runs."""
    return Path(args.work) / args.shape / f"{args.child}-run{args.run}"


def _spawn(which: str, shape: str, prep_file: Path, args, run: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "WANDB_MODE": "disabled",
           "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, "-m", "imagine.bench.sft_bench", "--child", which, "--shape", shape, "--prep", str(prep_file),
           "--work", args.work, "--max-len", str(args.max_len), "--per-step", str(args.per_step),
           "--threads", str(args.threads), "--run", str(run)]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{which} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def _section(shape: str, data: dict, rows: list[dict], args) -> list[str]:
    configs = _medians(rows)
    ours = [c for c in configs if c["trainer"].startswith("train.py")]
    trl = [c for c in configs if not c["trainer"].startswith("train.py")]
    best_ours = max(ours, key=lambda c: c["tokens_per_s"])
    best_trl = max(trl, key=lambda c: c["tokens_per_s"])
    speed = best_ours["tokens_per_s"] / best_trl["tokens_per_s"]
    mem = best_ours["peak_rss_mib"] / best_trl["peak_rss_mib"]
    verdict = "met" if speed >= 1.5 and mem <= 1.0 else "NOT met"
    lines = [
        f"## Data shape: {shape}",
        "",
        f"{data['conversations']} conversations, {data['tokens']} tokens ({data['target_tokens']} assistant tokens "
        f"with loss), {data['shortest']} to {data['longest']} tokens each.",
        "",
        "| trainer | run | steps | tokens | train s | tokens/s | first loss | last loss | RSS before train (MiB) | peak RSS (MiB) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(rows):
        fl = f"{r['first_loss']:.3f}" if r["first_loss"] is not None else "-"
        ll = f"{r['last_loss']:.3f}" if r["last_loss"] is not None else "-"
        lines.append(f"| {r['trainer']} | {i // 4 + 1} | {r['steps']} | {r['tokens']} | {r['train_seconds']:.2f} | "
                     f"{r['tokens_per_s']:.0f} | {fl} | {ll} | {r['rss_before_mib']:.0f} | {r['peak_rss_mib']:.0f} |")
    lines += [
        "",
        f"Median over the {args.repeats} run(s) of each configuration:",
        "",
        "| trainer | tokens/s (median) | peak RSS MiB (median) |",
        "|---|---|---|",
    ]
    for c in configs:
        lines.append(f"| {c['trainer']} | {c['tokens_per_s']:.0f} | {c['peak_rss_mib']:.0f} |")
    lines += [
        "",
        f"Fastest `train.py sft` configuration ({best_ours['trainer'].split(', ')[1]}) vs the fastest TRL one "
        f"({best_trl['trainer'].split(', ')[1]}), medians: **{speed:.2f}x** TRL's tokens/s at **{mem:.2f}x** its "
        f"peak RSS (target: at least 1.5x the tokens/s at no more memory: **{verdict}**).",
        "",
    ]
    return lines


def _medians(rows: list[dict]) -> list[dict]:
    """One entry per trainer configuration, in first-run order: the median tokens/s and peak RSS of
    its runs, so one run slowed by the other jobs on the shared cores does not decide the verdict."""
    import statistics

    names = list(dict.fromkeys(r["trainer"] for r in rows))
    return [{"trainer": name,
             "tokens_per_s": statistics.median(r["tokens_per_s"] for r in rows if r["trainer"] == name),
             "peak_rss_mib": statistics.median(r["peak_rss_mib"] for r in rows if r["trainer"] == name)}
            for name in names]


def write_table(out_dir: Path, prep: dict, rows: dict[str, list[dict]], args) -> Path:
    tk = prep["tokenization"]
    lines = [
        "# SFT trainer throughput: `train.py sft` vs TRL `SFTTrainer` (CPU)",
        "",
        f"Measured by `make bench-sft` (`python -m imagine.bench.sft_bench`) on {platform.machine()} "
        f"({os.cpu_count()} cores shared with other jobs), {args.threads} torch thread(s), one process per run.",
        "",
        f"Model: Qwen3 architecture, {prep['params'] / 1e6:.2f}M parameters (hidden {MODEL['hidden_size']}, "
        f"{MODEL['num_hidden_layers']} layers, vocabulary {args.vocab} from a byte-level BPE trained on the data), "
        "fp32, SDPA, the same initial weights for every run. Data: the official TravelPlanner SFT conversations "
        f"(first {args.conversations}), scaled down to at most {args.max_len} tokens in two shapes (below), "
        "so that no trainer truncates. One epoch, "
        f"{args.per_step} conversations per optimizer step, assistant-only loss in both trainers. Each trainer runs "
        f"in two data layouts: `train.py sft` packs rows of at most {args.max_len} tokens (one micro-batch each) "
        "or length-groups the step into one padded batch; TRL packs (best-fit-decreasing, padding-free: one row "
        "per step) or pads.",
        "",
        "tokens/s counts real tokens only (TRL: the lengths of its tokenized conversations) over the time from the "
        "first step's start to the last step's end. Peak RSS is the process's peak resident set; it includes the "
        "libraries each process imports (see the RSS-before-training column). Runs alternate between the trainers, "
        "so load from other jobs on the shared cores hits all of them.",
        "",
    ]
    for shape in SHAPES:
        lines += _section(shape, prep["shapes"][shape], rows[shape], args)
    lines += [
        "## Tokenization: HF tokenizer vs the verified tiktoken encoder",
        "",
        f"Every text piece of the full (untrimmed) official SFT file, {tk['texts']} pieces, {tk['chars']} characters, "
        "with the benchmark's tokenizer; ids identical on all of them (checked in the same run); best of 3, batch "
        "calls of each library with default threading.",
        "",
        "| tokenizer | seconds | speedup |",
        "|---|---|---|",
        f"| HF (tokenizers, batch) | {tk['hf_seconds']:.3f} | 1.0x |",
        f"| tiktoken (encode_batch) | {tk['tiktoken_seconds']:.3f} | {tk['speedup']:.1f}x |",
        "",
    ]
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "sft.md"
    path.write_text("\n".join(lines))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="train.py sft vs TRL SFTTrainer on CPU")
    parser.add_argument("--out", default="bench/results")
    parser.add_argument("--work", default=None, help="scratch directory (default: a temp dir)")
    parser.add_argument("--max-len", type=int, default=1024)
    parser.add_argument("--per-step", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=4096)
    parser.add_argument("--conversations", type=int, default=44)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--child", choices=["ours", "ours-pad", "trl", "trl-pad"], help=argparse.SUPPRESS)
    parser.add_argument("--prep", help=argparse.SUPPRESS)
    parser.add_argument("--shape", choices=SHAPES, help=argparse.SUPPRESS)
    parser.add_argument("--run", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args)
    if not SHARED_MESSAGES.exists():
        print(f"sft bench: {SHARED_MESSAGES} not found", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        args.work = args.work or tmp
        work = Path(args.work)
        work.mkdir(parents=True, exist_ok=True)
        prep = prepare(work, max_len=args.max_len, vocab=args.vocab, n_conv=args.conversations)
        prep_file = work / "prep.json"
        prep_file.write_text(json.dumps(prep))
        rows: dict[str, list[dict]] = {shape: [] for shape in SHAPES}
        for shape in SHAPES:
            for run in range(1, args.repeats + 1):
                for which in ("ours", "ours-pad", "trl", "trl-pad"):
                    r = _spawn(which, shape, prep_file, args, run)
                    rows[shape].append(r)
                    print(f"{shape}: {r['trainer']}: {r['tokens_per_s']:.0f} tokens/s, "
                          f"peak RSS {r['peak_rss_mib']:.0f} MiB", flush=True)
        path = write_table(Path(args.out), prep, rows, args)
    print(path.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
