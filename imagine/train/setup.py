"""What every training loop sets up the same way, so that ``sft.py`` and ``grpo.py`` read as recipes.

Tokenizer, the FSDP2-sharded policy (fresh, or lean-loaded from a Hugging Face directory), optimizer
and schedule, resume from the latest checkpoint, the metrics logger, and the checkpoint schedule.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from imagine.config import to_dict
from imagine.io import DataError, atomic_write_json
from imagine.train import dist as D
from imagine.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from imagine.train.config import CheckpointConfig, LogConfig, StepConfig
from imagine.train.metrics_log import MetricsLogger


def start_run(out_dir: Path, cfg, info: D.DistInfo) -> None:
    """Create the run directory and write the resolved config beside the results (rank 0)."""
    if info.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out_dir / "config.json", to_dict(cfg))


def prepare_tokenizer(tokenizer_dir: str | Path, info: D.DistInfo, *, train_on: str | None = None,
                      vocab_size: int = 0, split: str = "words"):
    """The model's tokenizer; with ``train_on`` and a vocabulary size, trained on that data once (rank 0)."""
    from transformers import AutoTokenizer

    path = Path(tokenizer_dir)
    # Rank 0 decides, so that no rank sees the tokenizer rank 0 just wrote and skips the barrier.
    missing = D.broadcast_object(not (path / "tokenizer_config.json").exists())
    if missing:
        if train_on is None or vocab_size <= 0:
            raise DataError(f"no tokenizer at {path} (model.tokenizer, which defaults to model.path)")
        if info.is_main:
            from imagine.models.tokenizer import conversation_texts, train_tokenizer

            train_tokenizer(conversation_texts(train_on), vocab_size, path, split=split)
        D.barrier()
    return AutoTokenizer.from_pretrained(str(path))


def build_policy(path: str | None, tokenizer, info: D.DistInfo, tc: StepConfig, *,
                 attn_implementation: str = "auto", init_from_config=None, init_seed: int = 0,
                 master_dtype: torch.dtype = torch.float32, requires_grad: bool = True):
    """The FSDP2-sharded :class:`CausalLMLogProb` over a Hugging Face directory or a fresh tiny Qwen3 spec.

    A checkpoint goes through lean loading, so no rank ever holds the whole model (8 x 16 GB of host
    memory for Qwen3-8B on one node otherwise). A fresh model is built whole on every rank, since it
    is tiny and the same seed gives the same weights everywhere, then sharded.
    """
    from imagine.models.tiny import build_tiny_model
    from imagine.train.fsdp import shard_model
    from imagine.train.loading import load_sharded_causal_lm
    from imagine.train.model import CausalLMLogProb, compile_decoder_layers, pick_attn_implementation

    if path is not None and not (Path(path) / "config.json").is_file():  # else transformers says "repo id"
        raise DataError(f"model.path {path}: not a Hugging Face model directory (no config.json)")
    attn = pick_attn_implementation(attn_implementation, info.device)
    precision = resolve_precision(tc, info)
    if path is not None:
        model = load_sharded_causal_lm(path, info, precision=precision, attn_implementation=attn,
                                       activation_checkpointing=tc.activation_checkpointing and requires_grad,
                                       cpu_offload=tc.cpu_offload, master_dtype=master_dtype,
                                       requires_grad=requires_grad)
    else:
        lm = build_tiny_model(init_from_config, seed=init_seed, attn_implementation=attn, tokenizer=tokenizer)
        model = shard_model(CausalLMLogProb(lm), info, precision=precision,
                            activation_checkpointing=tc.activation_checkpointing and requires_grad,
                            cpu_offload=tc.cpu_offload, master_dtype=master_dtype)
        model.requires_grad_(requires_grad)
    if tc.compile:
        compile_decoder_layers(model)
    vocab = model.lm.get_input_embeddings().weight.shape[0]  # a DTensor's shape is the global one
    if len(tokenizer) > vocab:
        raise DataError(f"the tokenizer has {len(tokenizer)} tokens but the model's embedding only {vocab}")
    return model


def resolve_precision(tc: StepConfig, info: D.DistInfo) -> str:
    return tc.precision if tc.precision != "auto" else ("bf16" if info.device.type == "cuda" else "fp32")


def sync_every_micro_batch(tc: StepConfig, num_params: int, info: D.DistInfo) -> bool:
    """Whether FSDP reduce-scatters after every micro-batch (see ``StepConfig.grad_sync``).

    ``auto`` keeps unsharded fp32 gradients only while they take under a quarter of the device's
    memory; on CPU (tiny models, plenty of host memory) it waits for the last micro-batch.
    """
    if tc.grad_sync != "auto":
        return tc.grad_sync == "every_micro_batch"
    if info.device.type != "cuda":
        return False
    total = torch.cuda.get_device_properties(info.device).total_memory
    return 4 * num_params > 0.25 * total


@dataclass
class Trainable:
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    precision: str
    num_params: int
    sync_every_micro_batch: bool


def make_trainable(model, tc: StepConfig, info: D.DistInfo) -> Trainable:
    """AdamW with its warmup+cosine schedule over the sharded policy from :func:`build_policy`."""
    from imagine.train.model import count_parameters
    from imagine.train.optim import build_optimizer, build_scheduler

    num_params = count_parameters(model)  # DTensors report their global size
    precision = resolve_precision(tc, info)
    model.train()
    optimizer = build_optimizer(model, lr=tc.lr, weight_decay=tc.weight_decay, betas=tuple(tc.betas), eps=tc.eps)
    scheduler = build_scheduler(optimizer, warmup_steps=tc.warmup_steps, total_steps=tc.max_steps,
                                min_lr_ratio=tc.min_lr_ratio)
    return Trainable(model, optimizer, scheduler, precision, num_params, sync_every_micro_batch(tc, num_params, info))


def maybe_resume(ckpt: CheckpointConfig, ckpt_root: Path, t: Trainable, info: D.DistInfo) -> dict | None:
    """Restore model, optimizer, scheduler and RNG from ``checkpoint.resume``; the trainer state, or None."""
    resume = ckpt.resume
    path = None if resume == "none" else (latest_checkpoint(ckpt_root) if resume == "auto" else Path(resume))
    if path is None:
        return None
    state = load_checkpoint(path, t.model, t.optimizer, info)
    t.scheduler.load_state_dict(state["scheduler"])
    state["path"] = str(path)
    return state


def make_logger(out_dir: Path, log: LogConfig, info: D.DistInfo, *, total_steps: int, start_step: int, config,
                stage: str, headline: tuple[str, ...]) -> MetricsLogger:
    return MetricsLogger(out_dir, enabled=info.is_main, total_steps=total_steps, start_step=start_step,
                         wandb_mode=log.wandb_mode, wandb_project=log.wandb_project, run_name=log.run_name,
                         config=to_dict(config), stage=stage, headline=headline)


def checkpoint_due(ckpt: CheckpointConfig, done: int, max_steps: int) -> bool:
    """Every ``checkpoint.every`` steps and at the last step."""
    return (ckpt.every > 0 and done % ckpt.every == 0) or done == max_steps


def checkpoint_if_due(ckpt: CheckpointConfig, ckpt_root: Path, done: int, max_steps: int, t: Trainable,
                      trainer_state: dict, info: D.DistInfo) -> Path | None:
    """Save when :func:`checkpoint_due` (collective)."""
    if not checkpoint_due(ckpt, done, max_steps):
        return None
    trainer_state = {**trainer_state, "scheduler": t.scheduler.state_dict()}
    return save_checkpoint(ckpt_root, done, t.model, t.optimizer, trainer_state, info, keep_last=ckpt.keep_last,
                           keep_steps=ckpt.keep_steps)


def frozen_reference(path: str, tokenizer, info: D.DistInfo, tc: StepConfig, *, attn_implementation: str = "auto"):
    """The KL reference: the start checkpoint, sharded like the policy, never updated.

    Where the policy computes in bf16 the reference's shards are stored in bf16 too: no optimizer
    needs fp32 masters of it, and it halves its memory. In fp32 (the CPU default) it keeps fp32, so
    the reference log-probs are computed exactly as the policy's.
    """
    dtype = torch.bfloat16 if resolve_precision(tc, info) == "bf16" else torch.float32
    ref = build_policy(path, tokenizer, info, tc, attn_implementation=attn_implementation, master_dtype=dtype,
                       requires_grad=False)
    return ref.eval()
