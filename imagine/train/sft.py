"""The SFT loop: full-parameter fine-tuning on assistant tokens, FSDP2, one optimizer step at a time.

One step, every rank:

1. take ``samples_per_step`` conversation indices from the shared sampler (same on every rank);
2. keep this rank's share and pack it into micro-batches; ranks with fewer micro-batches add empty
   ones, because every rank must join every FSDP collective;
3. all-reduce the number of target tokens of the whole step, so each micro-batch's loss is
   ``sum(-log p) / global_target_tokens``: the step's loss is the token mean over the global batch
   whatever the world size, micro-batch count or packing (gradients are summed across ranks);
4. backward per micro-batch (gradients reduced per micro-batch or on the last, ``train.grad_sync``),
   clip, AdamW, schedule, log,
   checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import torch

from imagine.config import load_config, to_dict
from imagine.io import atomic_write_json
from imagine.rollout import pad_token_id
from imagine.train import dist as D
from imagine.train import setup as S
from imagine.train.checkpoint import export_hf
from imagine.train.config import SFTConfig
from imagine.train.data import (
    IGNORE_INDEX,
    ResumableSampler,
    build_dataset,
    conversation_segments_texts,
    dummy_micro_batch,
    rank_micro_batches,
)
from imagine.train.metrics_log import peak_flops, train_flops_per_token
from imagine.train.profiling import StepProfiler


def _fingerprint(*paths: Path) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.read_bytes())
    return h.hexdigest()


def make_encoder(cfg: SFTConfig, tokenizer, info: D.DistInfo, out_dir: Path, logger_print):
    """``None`` (HF tokenizer) or a tiktoken encoder verified on this dataset.

    Every rank checks its slice of the dataset's texts; a mismatch anywhere stops every rank. The
    result is remembered per (tokenizer, data) fingerprint, so resumed runs skip the check.
    """
    if cfg.data.tokenizer_backend == "hf":
        return None
    from imagine.models.fast_tokenizer import TokenizerMismatch, build_verified

    tok_dir = Path(cfg.model.tokenizer or cfg.model.path)
    key = _fingerprint(tok_dir / "tokenizer.json", Path(cfg.data.train_path))
    marker = out_dir / "tiktoken_verified.json"
    if marker.exists() and json.loads(marker.read_text()).get("fingerprint") == key:
        from imagine.models.fast_tokenizer import FastTokenizer

        logger_print(f"tiktoken: already verified on this tokenizer and data ({marker})")
        return FastTokenizer(tokenizer).encode
    texts = conversation_segments_texts(cfg.data.train_path, tokenizer)
    error = ""
    try:
        fast, stats = build_verified(tokenizer, texts[info.rank:: info.world_size])
    except TokenizerMismatch as exc:
        error = str(exc)
    errors = [e for e in _gather_strings(error) if e]
    if errors:
        raise TokenizerMismatch(errors[0])
    logger_print(f"tiktoken verified on {stats['texts']} texts (this rank): {stats['speedup']:.1f}x faster "
                 f"than the HF tokenizer ({stats['hf_seconds']:.2f}s vs {stats['tiktoken_seconds']:.2f}s)")
    if info.is_main:
        atomic_write_json(marker, {"fingerprint": key, **stats})
    return fast.encode


def _gather_strings(text: str) -> list[str]:
    if not torch.distributed.is_initialized():
        return [text]
    out = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(out, text)
    return out


def accumulate_gradients(model, micro_batches, global_targets: int, sync_every_micro_batch: bool,
                         device: torch.device) -> torch.Tensor:
    """Backward over one step's micro-batches; this rank's summed NLL (float64).

    Every rank passes the same number of micro-batches (fillers included): FSDP's reduce-scatter
    after the last one, or after each with ``sync_every_micro_batch``, is a collective.
    """
    nll_sum = torch.zeros((), dtype=torch.float64, device=device)
    for i, mb in enumerate(micro_batches):
        model.set_requires_gradient_sync(sync_every_micro_batch or i == len(micro_batches) - 1)
        mb = mb.to(device)
        logprobs, _ = model(mb.input_ids, mb.position_ids, mb.targets)
        micro_nll = -logprobs.sum()  # the kernel gives 0 at IGNORE_INDEX positions
        (micro_nll / global_targets).backward()
        nll_sum += micro_nll.detach().double()
    return nll_sum


def train(cfg: SFTConfig) -> dict:
    return D.run_in_process_group(cfg.train.device, _train, cfg)


def _train(cfg: SFTConfig, info: D.DistInfo) -> dict:
    from imagine.train.optim import clip_gradients

    tc = cfg.train
    out_dir = Path(cfg.out_dir)
    ckpt_root = out_dir / "checkpoints"
    S.start_run(out_dir, cfg, info)
    torch.manual_seed(tc.seed)

    def say(text: str) -> None:
        if info.is_main:
            print(text, flush=True)

    # --- data ---------------------------------------------------------------------------------
    tokenizer = S.prepare_tokenizer(cfg.model.tokenizer or cfg.model.path, info, vocab_size=(
        cfg.model.train_tokenizer_vocab_size if cfg.model.init_from_config is not None else 0),
        train_on=cfg.data.train_path, split=cfg.model.train_tokenizer_split)
    encode = make_encoder(cfg, tokenizer, info, out_dir, say)
    samples, stats = build_dataset(cfg.data.train_path, tokenizer, max_len=cfg.data.max_seq_len,
                                   overlong=cfg.data.overlong, encode=encode)
    say(f"data: {stats.samples} samples from {stats.lines} lines, {stats.tokens} tokens "
        f"({stats.target_tokens} with loss), longest {stats.longest}; truncated {stats.truncated}, "
        f"skipped {stats.skipped_overlong} over-long and {stats.skipped_no_loss} without assistant tokens")
    pad_id = pad_token_id(tokenizer)
    sampler = ResumableSampler(len(samples), tc.seed, cfg.data.shuffle)

    # --- model, optimizer, resume ---------------------------------------------------------------
    policy = S.build_policy(cfg.model.path, tokenizer, info, tc, attn_implementation=cfg.model.attn_implementation,
                            init_from_config=cfg.model.init_from_config, init_seed=cfg.model.init_seed)
    lm_config = policy.lm.config
    t = S.make_trainable(policy, tc, info)
    model, optimizer, scheduler = t.model, t.optimizer, t.scheduler
    say(f"model: {t.num_params / 1e6:.2f}M parameters, {t.precision}, world size {info.world_size}, "
        f"device {info.device.type}, attention {lm_config._attn_implementation}")
    start_step = 0
    state = S.maybe_resume(cfg.checkpoint, ckpt_root, t, info)
    if state is not None:
        sampler.load_state_dict(state["sampler"])
        start_step = state["step"]
        say(f"resumed from {state['path']} at step {start_step}")

    logger = S.make_logger(out_dir, cfg.log, info, total_steps=tc.max_steps, start_step=start_step, config=cfg,
                           stage="sft", headline=("loss", "lr", "grad_norm", "tokens_per_s"))
    peak = peak_flops(info.device)
    num_params = t.num_params
    losses = []
    profiler = StepProfiler(cfg.profile, out_dir, rank=info.rank, start_step=start_step)
    if start_step == 0 and 0 in cfg.checkpoint.export_hf_steps:
        export_hf(model, tokenizer, out_dir / "hf_step0", info, dtype=cfg.checkpoint.export_dtype)

    # --- the loop -----------------------------------------------------------------------------
    for step in range(start_step, tc.max_steps):
        t0 = time.perf_counter()
        indices = sampler.take(tc.samples_per_step)
        micro_batches = rank_micro_batches([samples[i] for i in indices], rank=info.rank,
                                           world_size=info.world_size, mode=cfg.data.batching,
                                           tokens_per_micro_batch=tc.tokens_per_micro_batch, pad_id=pad_id)
        micro_batches = D.pad_to_longest(micro_batches, dummy_micro_batch(pad_id), info.device)
        num_micro = len(micro_batches)
        local_targets = sum(int((mb.targets != IGNORE_INDEX).sum()) for mb in micro_batches)
        (global_targets,) = D.all_reduce_sum([local_targets], info.device)

        lr = scheduler.get_last_lr()[0]
        nll_sum = accumulate_gradients(model, micro_batches, global_targets, t.sync_every_micro_batch, info.device)
        grad_norm = clip_gradients(model, tc.grad_clip)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)

        real = sum(mb.num_tokens for mb in micro_batches)
        slots = sum(mb.num_slots for mb in micro_batches)
        total_nll, tokens, total_slots = D.all_reduce_sum([float(nll_sum), real, slots], info.device)
        seconds = time.perf_counter() - t0
        loss = total_nll / global_targets
        losses.append(loss)
        record = {
            "step": step + 1, "loss": loss, "lr": lr, "grad_norm": grad_norm,
            "tokens": int(tokens), "target_tokens": int(global_targets),
            "tokens_per_s": tokens / seconds, "padding_ratio": 1.0 - tokens / max(1.0, total_slots),
            "micro_batches": num_micro, "seconds": seconds,
        }
        if peak is not None:
            fpt = train_flops_per_token(num_params, lm_config.num_hidden_layers, lm_config.hidden_size,
                                        tokens / max(1, len(indices)))
            record["mfu"] = fpt * tokens / seconds / (peak * info.world_size)
        logger.log(record)

        trainer_state = {"sampler": sampler.state_dict(), "data_stats": vars(stats), "config": to_dict(cfg)}
        path = S.checkpoint_if_due(cfg.checkpoint, ckpt_root, step + 1, tc.max_steps, t, trainer_state, info)
        if path is not None:
            logger.info(f"checkpoint: {path}")
        if step + 1 in cfg.checkpoint.export_hf_steps:
            export_hf(model, tokenizer, out_dir / f"hf_step{step + 1}", info, dtype=cfg.checkpoint.export_dtype)
        profiler.step(step + 1)
    profiler.close()

    if cfg.checkpoint.export_hf:
        path = export_hf(model, tokenizer, out_dir / "hf", info, dtype=cfg.checkpoint.export_dtype)
        if path is not None:
            logger.info(f"exported a Hugging Face model to {path}")
    logger.close()
    return {"losses": losses, "start_step": start_step, "data_stats": vars(stats)}


def main(config_path: str | None, overrides: list[str]) -> int:
    cfg = load_config(SFTConfig, config_path, overrides)
    train(cfg)
    return 0
