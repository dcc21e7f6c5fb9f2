"""Sharded, atomic, resumable checkpoints and the Hugging Face export.

Layout under ``<out_dir>/checkpoints``::

    step_00000800/            # complete checkpoints only (renamed into place when finished)
        __0_0.distcp ...      # torch.distributed.checkpoint shards: model + optimizer
        .metadata
        trainer_state.json    # step, scheduler, sampler position, data stats, config
        rng_rank0.pt ...      # every rank's RNG states
    .tmp_step_00000900/       # a write in progress (a crash leaves it; it is never resumed from)

Each rank writes its own shards, so saving needs no gather and resuming works on another world size
(DCP reshards; tested 2 -> 1 and 1 -> 2 ranks); the checkpoint directory must be on a file system every node sees. The rename to
``step_*`` is the commit point: a reader sees a whole checkpoint or none.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_state_dict,
    set_state_dict,
)

from imagine.io import DataError, atomic_write_json
from imagine.train.dist import DistInfo, barrier

STATE_FILE = "trainer_state.json"


def step_dir(root: Path, step: int) -> Path:
    return root / f"step_{step:08d}"


def complete_checkpoints(root: Path) -> list[tuple[int, Path]]:
    """(step, path) of finished checkpoints, oldest first."""
    if not root.is_dir():
        return []
    found = []
    for p in root.iterdir():
        if p.is_dir() and p.name.startswith("step_") and (p / STATE_FILE).exists():
            try:
                found.append((int(p.name[len("step_"):]), p))
            except ValueError:
                continue
    return sorted(found)


def latest_checkpoint(root: Path) -> Path | None:
    found = complete_checkpoints(root)
    return found[-1][1] if found else None


def _rng_state(device: torch.device) -> dict:
    state = {"python": random.getstate(), "torch": torch.get_rng_state()}
    try:
        import numpy as np

        state["numpy"] = np.random.get_state()
    except ImportError:  # pragma: no cover
        pass
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict, device: torch.device) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "numpy" in state:
        import numpy as np

        np.random.set_state(state["numpy"])
    if "cuda" in state and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)


def save_checkpoint(root: Path, step: int, model, optimizer, trainer_state: dict, info: DistInfo, *,
                    keep_last: int, keep_steps: list[int]) -> Path:
    """Collective: every rank calls it. Returns the final directory."""
    final = step_dir(root, step)
    tmp = root / f".tmp_{final.name}"
    if info.is_main:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    barrier()
    model_sd, optim_sd = get_state_dict(model, optimizer)
    dcp.save({"model": model_sd, "optim": optim_sd}, checkpoint_id=str(tmp))
    torch.save(_rng_state(info.device), tmp / f"rng_rank{info.rank}.pt")
    barrier()
    if info.is_main:
        atomic_write_json(tmp / STATE_FILE, {**trainer_state, "step": step, "world_size": info.world_size})
        if final.exists():  # the same step saved again (e.g. a resumed run): replace it
            shutil.rmtree(final)
        os.replace(tmp, final)
        _fsync_dir(root)
        apply_retention(root, keep_last=keep_last, keep_steps=keep_steps)
    barrier()
    return final


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def apply_retention(root: Path, *, keep_last: int, keep_steps: list[int]) -> list[int]:
    """Delete checkpoints that are neither among the newest ``keep_last`` nor a named step.

    The newest one always stays (it is what a resume needs). Returns the deleted steps.
    """
    found = complete_checkpoints(root)
    newest = {s for s, _ in found[-max(1, keep_last):]} if found else set()
    deleted = []
    for s, p in found:
        if s in newest or s in keep_steps:
            continue
        shutil.rmtree(p)
        deleted.append(s)
    return deleted


def load_checkpoint(path: Path, model, optimizer, info: DistInfo) -> dict:
    """Collective: restores model, optimizer and this rank's RNG; returns the trainer state."""
    state_file = path / STATE_FILE
    if not state_file.exists():
        raise DataError(f"{path} is not a complete checkpoint (no {STATE_FILE})")
    model_sd, optim_sd = get_state_dict(model, optimizer)
    state = {"model": model_sd, "optim": optim_sd}
    dcp.load(state, checkpoint_id=str(path))
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"])
    trainer_state = json.loads(state_file.read_text())
    rng_file = rng_file_for(path, info.rank, trainer_state.get("world_size"))
    if rng_file is not None:
        _set_rng_state(torch.load(rng_file, weights_only=False), info.device)
    return trainer_state


def rng_file_for(path: Path, rank: int, saved_world_size: int | None) -> Path | None:
    """The RNG state a rank resumes with, also when the world size changed.

    Every rank starts from the same seed, so rank r continuing the stream of old rank
    ``r % saved_world_size`` is what a fresh run on the new world size would have done; skipping
    the restore instead would silently restart the streams from the seed.
    """
    if not saved_world_size:
        return None
    candidate = path / f"rng_rank{rank % saved_world_size}.pt"
    return candidate if candidate.exists() else None


def full_state_dict_on_rank0(model) -> dict[str, torch.Tensor]:
    """Collective: the unsharded model state dict on rank 0's CPU (empty elsewhere)."""
    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def export_hf(model, tokenizer, out_dir: Path, info: DistInfo, *, dtype: str = "float32") -> Path | None:
    """Collective: write a transformers/vLLM-loadable directory (safetensors, config, tokenizer).

    Written to a temp directory and renamed, like the checkpoints.
    """
    full = full_state_dict_on_rank0(model)
    if info.is_main:
        from transformers import AutoModelForCausalLM

        torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
        prefix = "lm."
        weights = {k[len(prefix):]: v.to(torch_dtype) for k, v in full.items() if k.startswith(prefix)}
        config = type(model.lm.config).from_dict(model.lm.config.to_dict())
        config.use_cache = True
        with torch.device("meta"):
            hf = AutoModelForCausalLM.from_config(config, dtype=torch_dtype)
        missing, unexpected = hf.load_state_dict(weights, strict=False, assign=True)
        if getattr(config, "tie_word_embeddings", False):
            hf.tie_weights()
            missing = [k for k in missing if k != "lm_head.weight"]
        if missing or unexpected:
            raise RuntimeError(f"export: state dict mismatch (missing {missing}, unexpected {unexpected})")
        out_dir = Path(out_dir)
        tmp = out_dir.parent / f".tmp_{out_dir.name}"
        shutil.rmtree(tmp, ignore_errors=True)
        hf.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    barrier()
    return out_dir if info.is_main else None
