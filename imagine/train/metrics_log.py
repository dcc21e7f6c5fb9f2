"""Rank-0 reporting for every training loop: a progress bar, an append-only JSONL metrics file, and wandb (offline by default).

Only rank 0 writes. The JSONL file is the source of truth (a resumed run appends to it, so a step
can appear twice: the last record of a step wins); wandb is a view of it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from imagine.io import JsonlAppender

# Dense bf16 peak FLOP/s per GPU, for MFU. Unknown devices report no MFU rather than a guess.
PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12, "A10G": 125e12}


def peak_flops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16_FLOPS.items() if k in name), None)


def train_flops_per_token(num_params: int, num_layers: int, hidden: int, seq_len: float) -> float:
    """6N for the matmuls (forward + backward) plus causal attention's score/value products."""
    return 6.0 * num_params + 6.0 * num_layers * hidden * seq_len


class MetricsLogger:
    def __init__(self, out_dir: Path, *, enabled: bool, total_steps: int, start_step: int, wandb_mode: str,
                 wandb_project: str, run_name: str, config: dict, stage: str = "sft",
                 headline: tuple[str, ...] = ("loss", "lr", "grad_norm", "tokens_per_s")):
        self.enabled = enabled
        self.headline = headline  # the keys shown on the progress bar / progress line
        self._wandb = None
        self._bar = None
        if not enabled:
            return
        self._jsonl = JsonlAppender(Path(out_dir) / "metrics.jsonl")
        if wandb_mode != "disabled":
            import wandb

            self._wandb = wandb.init(project=wandb_project, name=run_name, mode=wandb_mode, config=config,
                                     dir=str(out_dir), resume="allow", id=run_name)
        if sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=total_steps, initial=start_step, desc=stage, dynamic_ncols=True)

    def log(self, record: dict) -> None:
        if not self.enabled:
            return
        self._jsonl.append(record)
        if self._wandb is not None:
            self._wandb.log({k: v for k, v in record.items() if k != "step"}, step=record["step"])
        if self._bar is not None:
            self._bar.update(1)
            self._bar.set_postfix({k: _short(record[k]) for k in self.headline if k in record})
        else:
            shown = [f"{k} {_short(record[k])}" for k in (*self.headline, "mfu") if record.get(k) is not None]
            print(f"step {record['step']}: " + " ".join(shown), flush=True)

    def info(self, text: str) -> None:
        if self.enabled:
            (self._bar.write if self._bar is not None else print)(text)

    def close(self) -> None:
        if not self.enabled:
            return
        self._jsonl.close()
        if self._bar is not None:
            self._bar.close()
        if self._wandb is not None:
            self._wandb.finish()


def _short(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1e4 else f"{value:,.0f}"
    return str(value)
