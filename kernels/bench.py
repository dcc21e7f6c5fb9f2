"""Peak memory and time of fused_linear_logprob (forward + backward) against naive log_softmax + gather.

    python -m kernels.bench                    # CPU: V=151,936, H=1,024, N in {1k, 4k}, fp32 and bf16
    python -m kernels.bench --quick            # small shapes, seconds (smoke test)

Every configuration runs in its own child process so that one run's allocations cannot hide or inflate
another's. On CPU, peak memory is the process's resident-set high-water mark (VmHWM, reset through
/proc/self/clear_refs just before the measured call) minus the resident set after the inputs were
created; this sees every allocation torch makes, which tracemalloc would not. On CUDA it is
torch.cuda.max_memory_allocated() minus the memory allocated before the call. Both numbers include the
gradients of hidden and weight, which either implementation must produce. Time is the minimum over
repeats of one forward + backward, measured after the memory run (so page faults of the first touch are
not timed). The naive run is skipped, and the table says so, when its estimated footprint does not fit
in the memory available.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

DTYPES = {"fp32": "float32", "bf16": "bfloat16"}


def _read_status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    """Linux resets VmHWM to the current RSS when '5' is written to clear_refs (since 4.0)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _mem_available_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def naive_estimate_bytes(n: int, vocab: int, dtype: str) -> int:
    """Logits (input dtype) + fp32 copy + log_softmax output + its gradient + logits gradient."""
    elem = n * vocab
    low = 2 if dtype == "bf16" else 4
    return elem * (low + 4 + 4 + 4 + low)


def _child(impl: str, dtype_name: str, n: int, vocab: int, hidden_size: int, repeats: int) -> dict:
    import torch

    from kernels import fused_linear_logprob

    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = getattr(torch, DTYPES[dtype_name])
    gen = torch.Generator(device=device).manual_seed(0)
    hidden = torch.randn(n, hidden_size, dtype=dtype, device=device, generator=gen).requires_grad_()
    weight = (torch.randn(vocab, hidden_size, dtype=dtype, device=device, generator=gen) * 0.05).requires_grad_()
    targets = torch.randint(0, vocab, (n,), device=device, generator=gen)

    def step():
        if impl == "naive":
            logits = hidden @ weight.t()
            logprobs = torch.log_softmax(logits.float(), dim=-1).gather(-1, targets[:, None]).squeeze(-1)
        else:
            logprobs, _ = fused_linear_logprob(hidden, weight, targets, backend="triton" if device == "cuda" else "torch")
        logprobs.sum().backward()
        checksum = float(logprobs.detach().double().sum())
        hidden.grad = None
        weight.grad = None
        return checksum

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    gc.collect()
    peak_method = ""
    if device == "cuda":
        sync()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        checksum = step()
        sync()
        peak_extra = torch.cuda.max_memory_allocated() - base
        peak_method = "cuda max_memory_allocated"
    else:
        base = (_read_status_kib("VmRSS") or 0) * 1024
        if _reset_peak_rss():
            checksum = step()
            peak_extra = (_read_status_kib("VmHWM") or 0) * 1024 - base
            peak_method = "VmHWM after clear_refs"
        else:  # no /proc: ru_maxrss is a lifetime maximum, so it can only under-report the extra
            before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            checksum = step()
            peak_extra = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - max(base, before)
            peak_method = "ru_maxrss (lower bound)"

    times, cpu_times = [], []
    for _ in range(repeats):
        sync()
        start, cpu_start = time.perf_counter(), time.process_time()
        step()
        sync()
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
    return {
        "impl": impl, "dtype": dtype_name, "n": n, "vocab": vocab, "hidden": hidden_size, "device": device,
        "device_name": torch.cuda.get_device_name() if device == "cuda" else platform.processor() or "cpu",
        "threads": torch.get_num_threads(), "peak_extra_bytes": peak_extra, "peak_method": peak_method,
        "seconds": min(times) if times else None, "all_seconds": times,
        "cpu_seconds": min(cpu_times) if cpu_times else None, "checksum": checksum,
    }


def run_config(impl, dtype, n, vocab, hidden, repeats) -> dict:
    cmd = [sys.executable, "-m", "kernels.bench", "--child", impl, dtype, str(n), str(vocab), str(hidden),
           str(repeats)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"impl": impl, "dtype": dtype, "n": n, "error": (proc.stderr or proc.stdout)[-400:].strip()}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _mib(x):
    return f"{x / 2**20:,.0f}"


def write_table(results: list[dict], path: Path, meta: dict) -> str:
    lines = [
        "# Fused linear log-prob vs naive log_softmax + gather (forward + backward)",
        "",
        f"Device: {meta['device']}; torch {meta['torch']}; threads {meta['threads']}; "
        f"V={meta['vocab']:,}, H={meta['hidden']:,}; repeats {meta['repeats']} (time = min).",
        "Peak extra = peak memory during one forward+backward minus memory after creating the inputs; it "
        "includes the gradients of hidden and weight. CPU peak: resident-set high-water mark "
        "(VmHWM, reset via /proc/self/clear_refs) in a fresh process per row.",
        "Targets (CPU): at N=4k peak extra at least 8x below naive, time at most 1.3x naive (wall time). "
        "The machine is shared: the CPU-time ratio (process user+sys seconds) is given too because it "
        f"moves less with other load. Load average before / after: {meta['load_before']} / {meta['load_after']}.",
        "",
        "| dtype | N | naive time (s) | fused time (s) | time fused/naive | naive peak extra (MiB) "
        "| fused peak extra (MiB) | memory naive/fused | CPU time fused/naive | targets |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    keyed = {(r["impl"], r["dtype"], r["n"]): r for r in results}
    for dtype in meta["dtypes"]:
        for n in meta["tokens"]:
            naive, fused = keyed.get(("naive", dtype, n)), keyed.get(("fused", dtype, n))
            if fused is None or "error" in fused:
                lines.append(f"| {dtype} | {n} | | failed: {fused and fused.get('error', '')[:80]} | | | | | | |")
                continue
            if naive is None or "skipped" in naive or "error" in naive:
                reason = (naive or {}).get("skipped") or (naive or {}).get("error", "not run")
                lines.append(f"| {dtype} | {n} | skipped ({reason[:80]}) | {fused['seconds']:.2f} | | "
                             f"| {_mib(fused['peak_extra_bytes'])} | | | |")
                continue
            time_ratio = fused["seconds"] / naive["seconds"]
            mem_ratio = naive["peak_extra_bytes"] / max(fused["peak_extra_bytes"], 1)
            cpu_ratio = fused["cpu_seconds"] / naive["cpu_seconds"]
            verdict = ""
            if n >= 4096 and meta["device"].startswith("cpu"):
                ok_mem, ok_time = mem_ratio >= 8, time_ratio <= 1.3
                verdict = f"memory {'met' if ok_mem else 'MISSED'}, time {'met' if ok_time else 'MISSED'}"
            lines.append(
                f"| {dtype} | {n} | {naive['seconds']:.2f} | {fused['seconds']:.2f} | {time_ratio:.2f}x | "
                f"{_mib(naive['peak_extra_bytes'])} | {_mib(fused['peak_extra_bytes'])} | {mem_ratio:.1f}x | {cpu_ratio:.2f}x | {verdict} |"
            )
    lines.append("")
    text = "\n".join(lines)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return text


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs=6, metavar=("IMPL", "DTYPE", "N", "V", "H", "REPEATS"), help=argparse.SUPPRESS)
    parser.add_argument("--out", default="bench/results/kernels.md")
    parser.add_argument("--tokens", type=int, nargs="+", default=None)
    parser.add_argument("--vocab", type=int, default=151_936)
    parser.add_argument("--hidden", type=int, default=None, help="default 1024 on CPU, 4096 on a GPU")
    parser.add_argument("--dtypes", nargs="+", choices=sorted(DTYPES), default=["fp32", "bf16"])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="small shapes: a smoke test, not a measurement")
    args = parser.parse_args(argv)

    if args.child:
        impl, dtype, n, vocab, hidden, repeats = args.child
        print(json.dumps(_child(impl, dtype, int(n), int(vocab), int(hidden), int(repeats))))
        return 0

    import torch

    on_gpu = torch.cuda.is_available()
    if args.quick:
        tokens, vocab, hidden = args.tokens or [64, 256], 4096, args.hidden or 128
    else:
        tokens = args.tokens or ([1024, 4096, 16384] if on_gpu else [1024, 4096])
        vocab, hidden = args.vocab, args.hidden or (4096 if on_gpu else 1024)

    load_before = " ".join(f"{x:.1f}" for x in os.getloadavg())
    results = []
    for dtype in args.dtypes:
        for n in tokens:
            for impl in ("naive", "fused"):
                if impl == "naive":
                    need = naive_estimate_bytes(n, vocab, dtype)
                    if on_gpu:
                        free, _ = torch.cuda.mem_get_info()
                    else:
                        free = _mem_available_bytes()
                    if free is not None and need > 0.8 * free:
                        results.append({"impl": impl, "dtype": dtype, "n": n,
                                        "skipped": f"needs ~{need / 2**30:.1f} GiB, {free / 2**30:.1f} GiB free"})
                        print(f"{dtype} N={n} naive: skipped (needs ~{need / 2**30:.1f} GiB)", flush=True)
                        continue
                result = run_config(impl, dtype, n, vocab, hidden, args.repeats)
                results.append(result)
                shown = {k: result.get(k) for k in ("seconds", "peak_extra_bytes", "error", "checksum")}
                print(f"{dtype} N={n} {impl}: {shown}", flush=True)

    meta = {
        "device": (f"cuda ({torch.cuda.get_device_name()})" if on_gpu else f"cpu ({platform.machine()}, "
                   f"{os.cpu_count()} cores)"),
        "torch": torch.__version__, "threads": torch.get_num_threads(), "vocab": vocab, "hidden": hidden,
        "repeats": args.repeats, "dtypes": args.dtypes, "tokens": tokens, "load_before": load_before,
        "load_after": " ".join(f"{x:.1f}" for x in os.getloadavg()),
    }
    out = Path(args.out)
    if args.quick and args.out == parser.get_default("out"):
        out = out.with_name("kernels-quick.md")
    print(write_table(results, out, meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
