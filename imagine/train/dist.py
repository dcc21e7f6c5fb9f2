"""Process-group setup: NCCL on CUDA, gloo on CPU, and a one-process group without torchrun.

A plain ``python train.py sft`` still gets a (world size 1) process group, so the loop, FSDP and
the distributed checkpoint have one code path whatever the launch.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    owns_group: bool = True  # False when the caller had already initialised torch.distributed

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str = "auto") -> DistInfo:
    """Join the torchrun group (env:// rendezvous) or create a one-process group."""
    use_cuda = torch.cuda.is_available() if device == "auto" else device == "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device=cuda was asked for but CUDA is not available")
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if use_cuda:
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu")
    backend = "nccl" if use_cuda else "gloo"
    owns_group = not dist.is_initialized()
    if owns_group:
        if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
            kwargs = {"device_id": dev} if use_cuda else {}
            dist.init_process_group(backend=backend, **kwargs)
        else:
            dist.init_process_group(backend=backend, store=dist.HashStore(), rank=0, world_size=1)
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, dev, owns_group)


def run_in_process_group(device: str, body: Callable[[T, DistInfo], R], cfg: T) -> R:
    """``body(cfg, info)`` inside the process group, which is torn down however the body ends."""
    info = init_distributed(device)
    try:
        return body(cfg, info)
    finally:
        teardown(info)


def teardown(info: DistInfo) -> None:
    """Destroy the process group, unless it belongs to someone else (e.g. an in-process vLLM)."""
    if info.owns_group and dist.is_initialized():
        # Models dropped in reference cycles (FSDP's hooks make them) would otherwise be freed at
        # interpreter exit, after the group is gone; gloo objects dying then can abort the process.
        gc.collect()
        # Every rank finishes its last collective before any rank tears gloo down; a rank that
        # destroyed its group while a peer was still in flight aborted ("terminate called ...").
        barrier()
        dist.destroy_process_group()


def barrier() -> None:
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def all_reduce_sum(values: list[float], device: torch.device) -> list[float]:
    """Sum a few scalars over ranks in one collective (float64, so token counts stay exact)."""
    t = torch.tensor(values, dtype=torch.float64, device=device)
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def _all_reduce_max(value, dtype: torch.dtype, device: torch.device):
    t = torch.tensor([value], dtype=dtype, device=device)
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t.item()


def all_reduce_max(value: int, device: torch.device) -> int:
    return int(_all_reduce_max(value, torch.int64, device))


def all_reduce_min(value: int, device: torch.device) -> int:
    return -all_reduce_max(-value, device)


def all_reduce_max_float(value: float, device: torch.device) -> float:
    return float(_all_reduce_max(value, torch.float64, device))


def pad_to_longest(items: list, filler, device: torch.device) -> list:
    """``items`` plus copies of ``filler`` up to the longest rank's count.

    Every rank must join every FSDP collective, so a rank with fewer micro-batches than another
    runs empty ones (``filler`` contributes no loss) instead of leaving its peers waiting.
    """
    return items + [filler] * (all_reduce_max(len(items), device) - len(items))


def broadcast_object(obj, src: int = 0):
    if not (dist.is_initialized() and dist.get_world_size() > 1):
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]
