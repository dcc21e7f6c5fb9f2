"""FSDP2 wrapping: one ``fully_shard`` unit per decoder layer, then the root.

Per-layer units bound the memory of an all-gathered layer and overlap the next layer's all-gather
with this layer's compute. The root unit owns what is left (embeddings, final norm, LM head, tied or
not), which the log-prob wrapper uses inside its own forward.

Parameters are kept in fp32 as the optimizer's master copy (a frozen reference model may keep bf16); with ``precision=bf16`` the all-gathered
compute copies are bf16 and gradients are reduced in fp32 (``MixedPrecisionPolicy``). Each layer is
cast to fp32 just before it is sharded, so a bf16 checkpoint never exists as a full fp32 copy.
"""

from __future__ import annotations

import torch
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import (
    CPUOffloadPolicy,
    FSDPModule,
    MixedPrecisionPolicy,
    OffloadPolicy,
    fully_shard,
)

from imagine.train.dist import DistInfo
from imagine.train.model import CausalLMLogProb


def _to_master(module: torch.nn.Module, dtype: torch.dtype) -> None:
    """Cast parameters to the master dtype. Below fp32, buffers keep theirs: a bf16 rotary
    ``inv_freq`` would blur long positions, and nothing trains it."""
    if dtype == torch.float32:
        module.to(dtype)
        return
    buffers = [(m, n, b) for m in module.modules() for n, b in m._buffers.items() if b is not None]
    module.to(dtype)
    for m, n, b in buffers:
        m._buffers[n] = b


def shard_model(model: CausalLMLogProb, info: DistInfo, *, precision: str, activation_checkpointing: bool,
                cpu_offload: bool, master_dtype: torch.dtype = torch.float32) -> CausalLMLogProb:
    """``master_dtype`` is what the shards are stored in: fp32 for a trained policy (AdamW's master
    copy); bf16 halves a frozen reference model, which no optimizer ever updates."""
    if precision == "bf16":
        mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    else:
        mp = MixedPrecisionPolicy()
    if cpu_offload and info.device.type != "cuda":
        raise ValueError("train.cpu_offload only makes sense with CUDA devices")
    offload = CPUOffloadPolicy() if cpu_offload else OffloadPolicy()
    if activation_checkpointing:
        # Recompute each decoder layer in backward; non-reentrant works with FSDP2's hooks.
        model.lm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    mesh = init_device_mesh(info.device.type, (info.world_size,))
    layers = model.decoder_layers
    for i, layer in enumerate(layers):
        _to_master(layer, master_dtype)
        # The last layer's parameters are needed again at once by backward: keep them gathered.
        fully_shard(layer, mesh=mesh, mp_policy=mp, offload_policy=offload,
                    reshard_after_forward=i < len(layers) - 1)
    _to_master(model, master_dtype)
    fully_shard(model, mesh=mesh, mp_policy=mp, offload_policy=offload, reshard_after_forward=False)
    # Our loss is already a global token mean (divided by the global target count), so the
    # gradient reduction must sum across ranks, not average. Plain SUM collectives (no PREMUL_SUM)
    # also keep gloo usable. The setting is per FSDP unit.
    for module in model.modules():
        if isinstance(module, FSDPModule):
            module.set_gradient_divide_factor(1.0)
            module.set_force_sum_reduction_for_comms(True)
    return model
