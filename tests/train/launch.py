"""Starting ``train.py`` and torchrun workers the way the end-to-end trainer tests all do.

One place for the environment (one thread per rank: two ranks share the CI machine's two cores),
the torchrun command line and the kill-after-a-checkpoint crash, so the SFT and GRPO tests cannot
drift apart in how they start, crash or read a run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import ROOT
from tests.helpers import kill_tree

# PYTHONFAULTHANDLER: a rank that aborts in C++ (SIGABRT) still prints where its Python was.
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled", "PYTHONFAULTHANDLER": "1"}
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone"]


def train_command(stage: str, args: list[str], nproc: int) -> list[str]:
    if nproc > 1:
        return [*TORCHRUN, f"--nproc_per_node={nproc}", "train.py", stage, *args]
    return [sys.executable, "train.py", stage, *args]


def run_train(stage: str, args: list[str], nproc: int = 1, timeout: int = 500) -> subprocess.CompletedProcess:
    proc = subprocess.run(train_command(stage, args, nproc), cwd=ROOT, env=ENV, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc


def run_worker(module: str, *args, nproc: int = 2, timeout: int = 300) -> subprocess.CompletedProcess:
    """A worker module under torchrun; as ``-m``, so that it imports this tree's ``imagine``, not an installed one."""
    proc = subprocess.run([*TORCHRUN, f"--nproc_per_node={nproc}", "-m", module, *map(str, args)], cwd=ROOT,
                          env=ENV, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc


def kill_after_checkpoint(command: list[str], checkpoint: Path, timeout: float = 300) -> None:
    """Start ``command`` and SIGKILL it with all its ranks as soon as ``checkpoint`` exists: a crash, not a stop."""
    victim = subprocess.Popen(command, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    deadline = time.monotonic() + timeout
    while not checkpoint.exists() and victim.poll() is None:
        assert time.monotonic() < deadline, f"the run to be killed never wrote {checkpoint.name}"
        time.sleep(0.02)
    kill_tree(victim.pid)
    victim.wait()
    time.sleep(0.5)  # let the killed ranks' sockets close before the rerun binds its own


def metrics(out_dir: Path) -> dict[int, dict]:
    records = [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r for r in records}  # a resumed run may log a step twice: the last one wins
