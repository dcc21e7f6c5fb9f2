"""Profile a range of training steps with torch.profiler, per rank, off unless asked for.

Why a step range: the first steps are dominated by warm-up (allocator growth, cuBLAS/Triton autotune,
compilation), and a whole run's trace is gigabytes. `profile.steps=[a, b]` records optimizer steps a
to b (1-based, inclusive) and nothing else, so a profile costs two or three steps of overhead.

Per rank, under `<out_dir>/profile/`, when the range ends (or the loop stops inside it):
    rank<r>.steps<a>-<b>.pt.trace.json   a Chrome-format trace: CPU ops (plus CUDA kernels on a GPU)
                                         with allocation events; Perfetto (ui.perfetto.dev) opens it,
                                         and TensorBoard's profiler plugin reads the directory (it
                                         looks for *.pt.trace.json).
    rank<r>.steps<a>-<b>.top_ops.txt     operators sorted by self time (device time on a GPU),
                                         with memory columns, for a first look without a viewer.
Each step is a "ProfilerStep#<n>" range in the trace; the LM head is a "fused_linear_logprob"
range and the GRPO loss a "clipped_policy_objective" range (kernels record them).

Wiring, in a loop whose completed-step counter is `step` (0 before the first step, or the
resumed checkpoint's step):

    profiler = StepProfiler(cfg.profile, out_dir, rank=rank, start_step=step)
    try:
        while step < max_steps:
            ...one optimizer step...
            step += 1
            profiler.step(step)
    finally:
        profiler.close()
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

TOP_OPS_ROWS = 40


@dataclass
class ProfileConfig:
    steps: list[int] = field(default_factory=list)  # [a, b]: profile optimizer steps a..b; [] (default): off

    def validate(self) -> None:
        if not self.steps:
            return
        if len(self.steps) != 2 or not all(isinstance(s, int) for s in self.steps):
            raise ValueError(f"profile.steps must be [first, last] (two step numbers), got {self.steps}")
        first, last = self.steps
        if not 1 <= first <= last:
            raise ValueError(f"profile.steps needs 1 <= first <= last, got {self.steps}")


class StepProfiler:
    """Starts torch.profiler before step a and writes trace + table after step b (see module doc).

    A no-op object when the config is off, so loops call it unconditionally. On a resumed run whose
    start_step is already past a, it records the rest of the range; past b, nothing.
    """

    def __init__(self, config: ProfileConfig, out_dir: str | Path, *, rank: int = 0, start_step: int = 0):
        config.validate()
        self.range = tuple(config.steps) if config.steps else None
        self.out_dir = Path(out_dir) / "profile"
        self.rank = rank
        self.written: list[Path] = []  # trace and table, once the range is done
        self._profiler = None
        self._step_range = None  # the open "ProfilerStep#<n>" record_function
        self._first = self._last = None
        self._maybe_start(start_step)

    @property
    def active(self) -> bool:
        return self._profiler is not None

    def _maybe_start(self, done_step: int) -> None:
        if self.range is None or self.written or self.active:
            return
        first, last = self.range
        next_step = done_step + 1
        if not first <= next_step <= last:
            return
        from torch.profiler import ProfilerActivity, profile

        activities = [ProfilerActivity.CPU]
        if torch.cuda.is_available():
            activities.append(ProfilerActivity.CUDA)
        # Shapes make the top-ops table tell matmuls apart; stacks are off because they multiply the
        # trace size and the op names plus record_function ranges already locate the code.
        self._profiler = profile(activities=activities, profile_memory=True, record_shapes=True)
        self._profiler.start()
        self._first = next_step
        self._open_step_range(next_step)

    def _open_step_range(self, step: int) -> None:
        """Mark one optimizer step in the trace (torch.profiler only does so under a schedule)."""
        self._step_range = torch.profiler.record_function(f"ProfilerStep#{step}")
        self._step_range.__enter__()

    def _close_step_range(self) -> None:
        if self._step_range is not None:
            self._step_range.__exit__(None, None, None)
            self._step_range = None

    def step(self, done_step: int) -> None:
        """Call after each completed optimizer step, with the number of steps completed so far."""
        if self.active:
            self._last = done_step
            self._close_step_range()
            if done_step >= self.range[1]:
                self._finish()
            else:
                self._open_step_range(done_step + 1)
            return
        self._maybe_start(done_step)

    def close(self) -> list[Path]:
        """Write what was recorded if the loop ended inside the range; returns the files written."""
        if self.active:
            self._finish()
        return self.written

    def __enter__(self) -> StepProfiler:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _finish(self) -> None:
        self._close_step_range()
        profiler, self._profiler = self._profiler, None
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        profiler.stop()
        last = self._last if self._last is not None else self._first
        stem = f"rank{self.rank}.steps{self._first}-{last}"
        self.out_dir.mkdir(parents=True, exist_ok=True)
        trace = self.out_dir / f"{stem}.pt.trace.json"
        profiler.export_chrome_trace(str(trace))
        table = self.out_dir / f"{stem}.top_ops.txt"
        table.write_text(top_ops_table(profiler) + "\n")
        self.written = [trace, table]


def top_ops_table(profiler) -> str:
    """Operators by self time: device time when CUDA was profiled (the GPU is the bottleneck to find),
    CPU time otherwise."""
    sort_by = "self_device_time_total" if torch.cuda.is_available() else "self_cpu_time_total"
    return profiler.key_averages().table(sort_by=sort_by, row_limit=TOP_OPS_ROWS)
