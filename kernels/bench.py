"""Peak memory and time of fused_linear_logprob (forward + backward) against naive log_softmax + gather.

    python -m kernels.bench                    # CPU: V=151,936, H=1,024, N in {1k, 4k}, fp32 and bf16
    python -m kernels.bench --quick            # small shapes, seconds (smoke test)
    python -m kernels.bench --profile          # one fused call under torch.profiler: trace + top-ops table

Peak memory: every (implementation, configuration) runs once in its own child process so that one
run's allocations cannot hide or inflate another's. On CPU, peak memory is the process's resident-set
high-water mark (VmHWM, reset through /proc/self/clear_refs just before the measured call) minus the
resident set after the inputs were created; this sees every allocation torch makes, which tracemalloc
would not. On CUDA it is torch.cuda.max_memory_allocated() minus the memory allocated before the call.
Both numbers include the gradients of hidden and weight, which either implementation must produce.

Time: one more child per configuration runs naive and fused alternately (naive, fused, then fused,
naive, ...) for --repeats rounds after a tiny warm-up, so both see the same background load on a shared
machine; the table gives the minimum and the median of the wall times and the ratio of the median
process CPU times (user + sys). The naive run is skipped, and the table says so, when its estimated
footprint does not fit in the memory available.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import statistics
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


def _setup(impl_names, dtype_name: str, n: int, vocab: int, hidden_size: int):
    """Inputs of one configuration and a forward+backward step per implementation (returns a checksum)."""
    import torch

    from kernels import fused_linear_logprob

    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = getattr(torch, DTYPES[dtype_name])
    gen = torch.Generator(device=device).manual_seed(0)
    hidden = torch.randn(n, hidden_size, dtype=dtype, device=device, generator=gen).requires_grad_()
    weight = (torch.randn(vocab, hidden_size, dtype=dtype, device=device, generator=gen) * 0.05).requires_grad_()
    targets = torch.randint(0, vocab, (n,), device=device, generator=gen)

    def make_step(impl):
        def step():
            if impl == "naive":
                logits = hidden @ weight.t()
                logprobs = torch.log_softmax(logits.float(), dim=-1).gather(-1, targets[:, None]).squeeze(-1)
            else:
                backend = "triton" if device == "cuda" else "torch"
                logprobs, _ = fused_linear_logprob(hidden, weight, targets, backend=backend)
            logprobs.sum().backward()
            checksum = float(logprobs.detach().double().sum())
            hidden.grad = None
            weight.grad = None
            return checksum
        return step

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    steps = {impl: make_step(impl) for impl in impl_names}
    info = {"dtype": dtype_name, "n": n, "vocab": vocab, "hidden": hidden_size, "device": device,
            "device_name": torch.cuda.get_device_name() if device == "cuda" else platform.processor() or "cpu",
            "threads": torch.get_num_threads()}
    return steps, sync, info


def _memory_child(impl: str, dtype_name: str, n: int, vocab: int, hidden_size: int) -> dict:
    import torch

    steps, sync, info = _setup([impl], dtype_name, n, vocab, hidden_size)
    step = steps[impl]
    gc.collect()
    if info["device"] == "cuda":
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
    return {"impl": impl, **info, "peak_extra_bytes": peak_extra, "peak_method": peak_method, "checksum": checksum}


def _time_child(impl_names: list[str], dtype_name: str, n: int, vocab: int, hidden_size: int, repeats: int) -> dict:
    """Alternate the implementations round by round (the order flips each round) so that a burst of
    other load on a shared machine lands on both, not on whichever happened to run then."""
    warm_steps, sync, _ = _setup(impl_names, dtype_name, min(n, 64), vocab, hidden_size)
    for impl in impl_names:  # thread pools, BLAS dispatch, allocator: not part of the measurement
        warm_steps[impl]()
    del warm_steps
    steps, sync, info = _setup(impl_names, dtype_name, n, vocab, hidden_size)
    gc.collect()
    wall = {impl: [] for impl in impl_names}
    cpu = {impl: [] for impl in impl_names}
    for round_index in range(repeats):
        order = impl_names if round_index % 2 == 0 else impl_names[::-1]
        for impl in order:
            sync()
            start, cpu_start = time.perf_counter(), time.process_time()
            steps[impl]()
            sync()
            wall[impl].append(time.perf_counter() - start)
            cpu[impl].append(time.process_time() - cpu_start)
    return {**info, "wall_seconds": wall, "cpu_seconds": cpu}


def _run_child(args: list[str]) -> dict:
    cmd = [sys.executable, "-m", "kernels.bench", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"error": (proc.stderr or proc.stdout)[-400:].strip()}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure_memory(impl, dtype, n, vocab, hidden) -> dict:
    result = _run_child(["--memory-child", impl, dtype, str(n), str(vocab), str(hidden)])
    return {"impl": impl, "dtype": dtype, "n": n, **result}


def measure_time(impls, dtype, n, vocab, hidden, repeats) -> dict:
    return _run_child(["--time-child", ",".join(impls), dtype, str(n), str(vocab), str(hidden), str(repeats)])


def _mib(x):
    return f"{x / 2**20:,.0f}"


def _median(values):
    return statistics.median(values) if values else None


def write_table(memory: list[dict], timing: dict, path: Path, meta: dict) -> str:
    """memory: one result per (impl, dtype, n); timing: {(dtype, n): time-child result}."""
    lines = [
        "# Fused linear log-prob vs naive log_softmax + gather (forward + backward)",
        "",
        f"Device: {meta['device']}; torch {meta['torch']}; threads {meta['threads']}; "
        f"V={meta['vocab']:,}, H={meta['hidden']:,}; {meta['repeats']} timed rounds per row, naive and fused "
        "alternating in one process (order flipped each round).",
        "Peak extra = peak memory during one forward+backward minus memory after creating the inputs; it "
        "includes the gradients of hidden and weight. CPU peak: resident-set high-water mark "
        "(VmHWM, reset via /proc/self/clear_refs) in a fresh process per implementation and row.",
        "Targets (CPU): at N=4k peak extra at least 8x below naive, and time at most 1.3x naive, judged on "
        "the median wall times. The machine is shared: the CPU-time ratio (median process user+sys "
        "seconds) is given too because it moves less with other load. "
        f"Load average before / after: {meta['load_before']} / {meta['load_after']}.",
        "",
        "| dtype | N | naive median (s) | fused median (s) | fused/naive median | naive min (s) | fused min (s) "
        "| fused/naive min | CPU time fused/naive | naive peak extra (MiB) | fused peak extra (MiB) "
        "| memory naive/fused | targets |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    keyed = {(r["impl"], r["dtype"], r["n"]): r for r in memory}
    for dtype in meta["dtypes"]:
        for n in meta["tokens"]:
            naive, fused = keyed.get(("naive", dtype, n)), keyed.get(("fused", dtype, n))
            times = timing.get((dtype, n)) or {"error": "not run"}
            if fused is None or "error" in fused or "error" in times:
                error = (fused or {}).get("error") or times.get("error", "")
                lines.append(f"| {dtype} | {n} | | failed: {error[:80]} | | | | | | | | | |")
                continue
            fused_wall, fused_cpu = times["wall_seconds"]["fused"], times["cpu_seconds"]["fused"]
            if naive is None or "skipped" in naive or "error" in naive:
                reason = (naive or {}).get("skipped") or (naive or {}).get("error", "not run")
                lines.append(f"| {dtype} | {n} | skipped ({reason[:80]}) | {_median(fused_wall):.2f} | | "
                             f"| {min(fused_wall):.2f} | | | | {_mib(fused['peak_extra_bytes'])} | | |")
                continue
            naive_wall, naive_cpu = times["wall_seconds"]["naive"], times["cpu_seconds"]["naive"]
            median_ratio = _median(fused_wall) / _median(naive_wall)
            min_ratio = min(fused_wall) / min(naive_wall)
            cpu_ratio = _median(fused_cpu) / _median(naive_cpu)
            mem_ratio = naive["peak_extra_bytes"] / max(fused["peak_extra_bytes"], 1)
            verdict = ""
            if n >= 4096 and meta["device"].startswith("cpu"):
                ok_mem, ok_time = mem_ratio >= 8, median_ratio <= 1.3
                verdict = f"memory {'met' if ok_mem else 'MISSED'}, time {'met' if ok_time else 'MISSED'}"
            lines.append(
                f"| {dtype} | {n} | {_median(naive_wall):.2f} | {_median(fused_wall):.2f} | {median_ratio:.2f}x "
                f"| {min(naive_wall):.2f} | {min(fused_wall):.2f} | {min_ratio:.2f}x | {cpu_ratio:.2f}x "
                f"| {_mib(naive['peak_extra_bytes'])} | {_mib(fused['peak_extra_bytes'])} | {mem_ratio:.1f}x "
                f"| {verdict} |"
            )
    lines.append("")
    text = "\n".join(lines)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return text


def profile_one_call(dtype_name: str, n: int, vocab: int, hidden_size: int, out_dir: Path) -> list[Path]:
    """One fused forward+backward under torch.profiler (after a small warm-up call, so autotuning and
    allocator growth stay out of it): a Chrome trace for Perfetto / TensorBoard and a table of the
    top operators by self time, as the training loops write with profile.steps (see
    imagine.train.profiling for how to open them). Written here with torch.profiler directly so that
    kernels/ keeps importing nothing from imagine/."""
    from torch.profiler import ProfilerActivity, profile

    warm, sync, info = _setup(["fused"], dtype_name, min(n, 64), vocab, hidden_size)
    warm["fused"]()
    del warm
    steps, sync, info = _setup(["fused"], dtype_name, n, vocab, hidden_size)
    on_gpu = info["device"] == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if on_gpu else [])
    sync()
    with profile(activities=activities, profile_memory=True, record_shapes=True) as prof:
        steps["fused"]()
        sync()
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"fused_linear_logprob.{dtype_name}.n{n}.v{vocab}.h{hidden_size}"
    trace, table = out_dir / f"{stem}.pt.trace.json", out_dir / f"{stem}.top_ops.txt"
    prof.export_chrome_trace(str(trace))
    sort_by = "self_device_time_total" if on_gpu else "self_cpu_time_total"
    table.write_text(prof.key_averages().table(sort_by=sort_by, row_limit=40) + "\n")
    return [trace, table]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memory-child", nargs=5, metavar=("IMPL", "DTYPE", "N", "V", "H"), help=argparse.SUPPRESS)
    parser.add_argument("--time-child", nargs=6, metavar=("IMPLS", "DTYPE", "N", "V", "H", "REPEATS"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--out", default="bench/results/kernels.md")
    parser.add_argument("--tokens", type=int, nargs="+", default=None)
    parser.add_argument("--vocab", type=int, default=151_936)
    parser.add_argument("--hidden", type=int, default=None, help="default 1024 on CPU, 4096 on a GPU")
    parser.add_argument("--dtypes", nargs="+", choices=sorted(DTYPES), default=["fp32", "bf16"])
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds per row (min and median reported)")
    parser.add_argument("--quick", action="store_true", help="small shapes: a smoke test, not a measurement")
    parser.add_argument("--profile", action="store_true",
                        help="profile one fused call (first --dtypes, first --tokens) instead of benchmarking")
    parser.add_argument("--profile-dir", default="runs/profile/kernels", help="where --profile writes")
    args = parser.parse_args(argv)

    if args.memory_child:
        impl, dtype, n, vocab, hidden = args.memory_child
        print(json.dumps(_memory_child(impl, dtype, int(n), int(vocab), int(hidden))))
        return 0
    if args.time_child:
        impls, dtype, n, vocab, hidden, repeats = args.time_child
        print(json.dumps(_time_child(impls.split(","), dtype, int(n), int(vocab), int(hidden), int(repeats))))
        return 0
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")

    import torch

    on_gpu = torch.cuda.is_available()
    if args.quick:
        tokens, vocab, hidden = args.tokens or [64, 256], 4096, args.hidden or 128
    else:
        tokens = args.tokens or ([1024, 4096, 16384] if on_gpu else [1024, 4096])
        vocab, hidden = args.vocab, args.hidden or (4096 if on_gpu else 1024)

    if args.profile:
        written = profile_one_call(args.dtypes[0], tokens[0], vocab, hidden, Path(args.profile_dir))
        print("\n".join(str(p) for p in written))
        print(written[1].read_text())
        return 0

    load_before = " ".join(f"{x:.1f}" for x in os.getloadavg())
    memory, timing = [], {}
    for dtype in args.dtypes:
        for n in tokens:
            impls = []
            for impl in ("naive", "fused"):
                if impl == "naive":
                    need = naive_estimate_bytes(n, vocab, dtype)
                    if on_gpu:
                        free, _ = torch.cuda.mem_get_info()
                    else:
                        free = _mem_available_bytes()
                    if free is not None and need > 0.8 * free:
                        memory.append({"impl": impl, "dtype": dtype, "n": n,
                                       "skipped": f"needs ~{need / 2**30:.1f} GiB, {free / 2**30:.1f} GiB free"})
                        print(f"{dtype} N={n} naive: skipped (needs ~{need / 2**30:.1f} GiB)", flush=True)
                        continue
                result = measure_memory(impl, dtype, n, vocab, hidden)
                memory.append(result)
                impls.append(impl)
                shown = {k: result.get(k) for k in ("peak_extra_bytes", "error", "checksum")}
                print(f"{dtype} N={n} {impl} memory: {shown}", flush=True)
            timing[(dtype, n)] = measure_time(impls, dtype, n, vocab, hidden, args.repeats)
            shown = {k: timing[(dtype, n)].get(k) for k in ("wall_seconds", "cpu_seconds", "error")}
            print(f"{dtype} N={n} time: {shown}", flush=True)

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
    print(write_table(memory, timing, out, meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
