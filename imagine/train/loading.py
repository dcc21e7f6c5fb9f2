"""Load a Hugging Face checkpoint straight into FSDP2 shards, without a full copy on every rank.

``load_causal_lm`` + ``shard_model`` makes every rank hold the whole model in host memory before it
is sharded: 8 ranks x 16 GB for Qwen3-8B. Here the model is built on the meta device (no storage),
sharded while still empty, materialised shard-sized, and filled from the safetensors files:

- ``method="scatter"`` (default): rank 0 reads one tensor at a time and sends every rank only its
  rows. A non-zero rank never holds more than its shards plus one of its own slices in flight, so
  the added memory is about ``model_size / world_size`` (fp32 masters from an fp32 checkpoint).
- ``method="broadcast"``: ``set_model_state_dict(full_state_dict=True, broadcast_from_rank0=True)``,
  the torchtune pattern. Every rank receives each *full* tensor before keeping its slice, so its
  peak also includes the largest tensor (the 151,936-row embedding is a quarter of Qwen3-0.6B);
  kept for comparison and as a fallback that relies only on the torch API.

Rank 0 reads the files one tensor (scatter) or one decoder layer (broadcast) at a time, with plain
reads rather than a memory map, so it holds its shards plus about one tensor, not a full copy.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from imagine.train.dist import DistInfo, broadcast_object
from imagine.train.fsdp import shard_model
from imagine.train.model import CausalLMLogProb

PREFIX = "lm."  # CausalLMLogProb keeps the transformers model under ``.lm``
_DTYPES = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16, "F64": torch.float64,
           "I64": torch.int64, "I32": torch.int32, "U8": torch.uint8, "BOOL": torch.bool}


def safetensors_index(path: str | Path) -> dict[str, Path]:
    """HF tensor name -> the safetensors file holding it (single-file and sharded layouts)."""
    path = Path(path)
    index = path / "model.safetensors.index.json"
    if index.exists():
        weight_map = json.loads(index.read_text())["weight_map"]
        return {name: path / file for name, file in weight_map.items()}
    single = path / "model.safetensors"
    if not single.exists():
        raise FileNotFoundError(f"{path}: no model.safetensors(.index.json); lean loading reads safetensors only")
    from safetensors import safe_open

    with safe_open(str(single), framework="pt") as f:
        names = list(f.keys())  # a safe_open handle is not iterable
    return dict.fromkeys(names, single)


def build_meta_causal_lm(path: str | Path, *, attn_implementation: str,
                         dtype: torch.dtype = torch.float32) -> CausalLMLogProb:
    """The architecture with no storage, in the master dtype, tied weights tied as transformers ties them."""
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(str(path))
    with torch.device("meta"):
        lm = AutoModelForCausalLM.from_config(config, dtype=dtype, attn_implementation=attn_implementation)
    return CausalLMLogProb(lm)


def _non_persistent_buffers(model: nn.Module) -> list[tuple[nn.Module, str]]:
    out = []
    for module in model.modules():
        for name in module._non_persistent_buffers_set:
            if module._buffers.get(name) is not None:
                out.append((module, name))
    return out


def _rebuild_rotary_buffers(model: nn.Module, device: torch.device) -> None:
    """Non-persistent buffers are in no checkpoint and meta init leaves them empty: recompute them.

    The rotary ``inv_freq`` is the only kind a Qwen3-like model has; any other is refused rather than
    left holding whatever ``to_empty`` allocated.
    """
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    for module, name in _non_persistent_buffers(model):
        if name not in ("inv_freq", "original_inv_freq") or not hasattr(module, "rope_type"):
            raise NotImplementedError(f"lean loading cannot rebuild the non-persistent buffer "
                                      f"{type(module).__name__}.{name}; load this model with load_causal_lm")
        if module.rope_type == "default":
            fn = module.compute_default_rope_parameters
        else:
            fn = ROPE_INIT_FUNCTIONS[module.rope_type]
        with torch.device("cpu"):  # the init functions build their tensors on the default device
            inv_freq, _ = fn(module.config)
        module._buffers[name] = inv_freq.to(device=device, dtype=torch.float32)


def _tied(lm: nn.Module) -> bool:
    out, inp = lm.get_output_embeddings(), lm.get_input_embeddings()
    return out is not None and out.weight is inp.weight


def _retie(lm: nn.Module) -> None:
    """FSDP2 keeps a parameter shared between modules shared when it materialises it; check, and re-tie if not."""
    if getattr(lm.config, "tie_word_embeddings", False) and not _tied(lm):
        lm.get_output_embeddings().weight = lm.get_input_embeddings().weight
    if getattr(lm.config, "tie_word_embeddings", False) and not _tied(lm):
        raise RuntimeError("lean loading: the LM head could not be tied to the embedding")


def _hf_name(fqn: str) -> str:
    if not fqn.startswith(PREFIX):
        raise KeyError(f"unexpected parameter {fqn} outside the wrapped model")
    return fqn[len(PREFIX):]


class _Reader:
    """Rank 0's view of the checkpoint: tensors (or row ranges of them) read with plain file reads.

    Not through safetensors' memory map: every mapped page the loader touches counts in rank 0's
    resident set until the file is closed, a second full copy in the accounting of a
    memory-limited job. The format is an 8-byte header length, a JSON header, then raw
    little-endian data.
    """

    def __init__(self, files: dict[str, Path]):
        self.meta: dict[str, tuple[Path, int, torch.dtype, list[int]]] = {}
        for path in sorted(set(files.values())):
            with open(path, "rb") as f:
                size = int.from_bytes(f.read(8), "little")
                header = json.loads(f.read(size))
            for name, entry in header.items():
                if name != "__metadata__":
                    self.meta[name] = (path, 8 + size + entry["data_offsets"][0], _DTYPES[entry["dtype"]],
                                       entry["shape"])

    def dtype(self, name: str) -> torch.dtype:
        return self.meta[name][2]

    def get(self, name: str) -> torch.Tensor:
        shape = self.meta[name][3]
        return self.rows(name, 0, shape[0]) if shape else self._read(name, 0, 0, [])

    def rows(self, name: str, start: int, stop: int) -> torch.Tensor:
        shape = self.meta[name][3]
        return self._read(name, start, stop - start, [stop - start, *shape[1:]])

    def _read(self, name: str, start: int, count: int, shape: list[int]) -> torch.Tensor:
        path, offset, dtype, full_shape = self.meta[name]
        out = torch.empty(shape, dtype=dtype)
        row_bytes = math.prod(full_shape[1:]) * out.element_size()
        view = memoryview(out.view(torch.uint8).reshape(-1).numpy()).cast("B")
        with open(path, "rb", buffering=0) as f:
            f.seek(offset + start * row_bytes)
            done = 0
            while done < len(view):  # one read() returns at most ~2 GiB on Linux
                got = f.readinto(view[done:])
                if not got:
                    raise OSError(f"{path}: truncated while reading {name}")
                done += got
        return out


def _targets(model: CausalLMLogProb) -> list[tuple[str, torch.Tensor]]:
    """What must come from the checkpoint: parameters (shared ones once) and persistent buffers."""
    out = [(fqn, p) for fqn, p in model.named_parameters()]
    non_persistent = {id(module._buffers[name]) for module, name in _non_persistent_buffers(model)}
    out += [(fqn, b) for fqn, b in model.named_buffers() if id(b) not in non_persistent]
    return out


def _check_names(targets: list[tuple[str, torch.Tensor]], files: dict[str, Path], lm: nn.Module) -> None:
    wanted = {_hf_name(fqn) for fqn, _ in targets}
    missing = sorted(wanted - set(files))
    extra = set(files) - wanted
    if _tied(lm):  # a tied checkpoint may still carry the head; it is the embedding
        extra.discard("lm_head.weight")
    if missing or extra:
        raise RuntimeError(f"lean loading: checkpoint/model mismatch (missing {missing[:5]}, "
                           f"unexpected {sorted(extra)[:5]})")


@torch.no_grad()
def _fill_by_scatter(model: CausalLMLogProb, files: dict[str, Path] | None, info: DistInfo) -> None:
    """Rank 0 scatters each tensor's dim-0 chunks (``torch.chunk`` layout, as FSDP2 shards), padded to equal size."""
    from torch.distributed.tensor import DTensor, Shard

    world, rank = info.world_size, info.rank
    reader = _Reader(files) if rank == 0 else None
    for fqn, target in _targets(model):
        name = _hf_name(fqn)
        if not isinstance(target, DTensor):  # replicated buffer: everyone gets all of it
            if rank == 0:
                full = reader.get(name).to(device=info.device, dtype=target.dtype)
            else:
                full = torch.empty(target.shape, dtype=target.dtype, device=info.device)
            if world > 1:
                dist.broadcast(full, src=0)
            target.copy_(full)
            continue
        local = target.to_local()
        rows = target.shape[0]
        per_rank = math.ceil(rows / world)
        mine = max(0, min((rank + 1) * per_rank, rows) - min(rank * per_rank, rows))
        if tuple(target.placements) != (Shard(0),) or local.shape[0] != mine:
            raise RuntimeError(f"lean loading: {fqn} is not sharded as torch.chunk along dim 0 "
                               f"({target.placements}, {local.shape[0]} rows here); use method='broadcast'")
        # the checkpoint's dtype travels (bf16 stays 2 bytes on the wire); each rank casts its own slice
        dtype = _broadcast_dtype(reader.dtype(name) if rank == 0 else None, info)
        piece_shape = (per_rank, *target.shape[1:])
        # collectives run on the process group's device (NCCL: the GPU), even when shards are offloaded
        received = torch.empty(piece_shape, dtype=dtype, device=info.device)
        if rank == 0:
            pieces = []
            for r in range(world):
                start, stop = min(r * per_rank, rows), min((r + 1) * per_rank, rows)
                piece = torch.zeros(piece_shape, dtype=dtype, device=info.device)
                if stop > start:
                    piece[: stop - start].copy_(reader.rows(name, start, stop))
                pieces.append(piece)
        else:
            pieces = None
        if world > 1:
            dist.scatter(received, pieces, src=0)
        else:
            received = pieces[0]
        del pieces
        local.copy_(received[: local.shape[0]])
        del received


def _broadcast_dtype(dtype: torch.dtype | None, info: DistInfo) -> torch.dtype:
    codes = list(_DTYPES.values())
    code = torch.tensor([codes.index(dtype) if dtype is not None else -1], dtype=torch.int64, device=info.device)
    if info.world_size > 1:
        dist.broadcast(code, src=0)
    return codes[int(code.item())]


@torch.no_grad()
def _fill_by_broadcast(model: CausalLMLogProb, files: dict[str, Path] | None, info: DistInfo) -> None:
    """torch's own full-state-dict broadcast, one decoder layer's tensors per call."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    options = StateDictOptions(full_state_dict=True, broadcast_from_rank0=True, strict=False)
    names = [fqn for fqn, _ in _targets(model)]
    groups: dict[str, list[str]] = {}
    for fqn in names:
        parts = fqn.split(".")
        key = ".".join(parts[:4]) if parts[1:3] == ["model", "layers"] and len(parts) > 4 else "rest"
        groups.setdefault(key, []).append(fqn)
    reader = _Reader(files) if info.rank == 0 else None
    for group in groups.values():
        chunk = {fqn: reader.get(_hf_name(fqn)) for fqn in group} if info.rank == 0 else {}
        if info.rank == 0 and _tied(model.lm):
            head = next(fqn for fqn in names if fqn.endswith("embed_tokens.weight"))
            if head in chunk:  # the state dict names the shared tensor under both names
                chunk[PREFIX + "lm_head.weight"] = chunk[head]
        set_model_state_dict(model, chunk, options=options)
        del chunk


def load_sharded_causal_lm(path: str | Path, info: DistInfo, *, precision: str, activation_checkpointing: bool,
                           cpu_offload: bool, attn_implementation: str, method: str = "scatter",
                           master_dtype: torch.dtype = torch.float32, requires_grad: bool = True) -> CausalLMLogProb:
    """Collective: the FSDP2-sharded ``CausalLMLogProb`` of a HF directory, every rank holding only its shards.

    Same result as ``shard_model(CausalLMLogProb(load_causal_lm(path)), info, ...)``: fp32 sharded
    masters, the same FSDP units and mixed-precision policy (it calls ``shard_model``), tied
    weights tied. ``attn_implementation`` must already be resolved (``pick_attn_implementation``).
    GRPO's frozen reference model is the same call with ``master_dtype=torch.bfloat16,
    requires_grad=False``: half the memory, and no optimizer ever sees it.
    """
    if method not in ("scatter", "broadcast"):
        raise ValueError(f"unknown loading method {method!r}")
    model = build_meta_causal_lm(path, attn_implementation=attn_implementation, dtype=master_dtype)
    model = shard_model(model, info, precision=precision, activation_checkpointing=activation_checkpointing,
                        cpu_offload=cpu_offload, master_dtype=master_dtype)
    model.requires_grad_(requires_grad)
    # with CPU offload FSDP2 expects the sharded parameters in host memory
    model.to_empty(device=torch.device("cpu") if cpu_offload else info.device)
    _retie(model.lm)
    _rebuild_rotary_buffers(model, info.device)
    files, error = None, ""
    if info.rank == 0:
        try:
            files = safetensors_index(path)
            _check_names(_targets(model), files, model.lm)
        except (OSError, RuntimeError) as exc:
            error = str(exc)
    error = broadcast_object(error)
    if error:  # every rank stops, not only the one that read the files
        raise RuntimeError(error)
    if method == "scatter":
        _fill_by_scatter(model, files, info)
    else:
        _fill_by_broadcast(model, files, info)
    if info.world_size > 1:
        dist.barrier()
    return model
