"""Run under torchrun by test_grad_sync.py: one SFT step's gradients under both ``train.grad_sync`` choices.

Same fresh tiny policy, same micro-batches, each choice on its own freshly built trainable; rank 0
writes the full (unsharded) gradients of both, and each rank writes what it saw of the step.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch


def main(tokenizer_dir: str, data_path: str, out_dir: str) -> None:
    from transformers import AutoTokenizer

    from imagine.models.tiny import TinyModelSpec
    from imagine.rollout import pad_token_id
    from imagine.train import dist as D
    from imagine.train import setup as S
    from imagine.train.config import StepConfig
    from imagine.train.data import IGNORE_INDEX, build_dataset, dummy_micro_batch, rank_micro_batches
    from imagine.train.sft import accumulate_gradients

    torch.set_num_threads(1)
    info = D.init_distributed("cpu")
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    samples, _ = build_dataset(data_path, tokenizer, max_len=128, overlong="skip")
    pad_id = pad_token_id(tokenizer)
    mbs = rank_micro_batches(samples[:8], rank=info.rank, world_size=info.world_size, mode="pack",
                             tokens_per_micro_batch=128, pad_id=pad_id)
    mbs = D.pad_to_longest(mbs, dummy_micro_batch(pad_id), info.device)
    (global_targets,) = D.all_reduce_sum([sum(int((mb.targets != IGNORE_INDEX).sum()) for mb in mbs)], info.device)

    grads, report = {}, {"rank": info.rank, "micro_batches": len(mbs)}
    for mode in ("every_micro_batch", "last_micro_batch"):
        tc = StepConfig(precision="fp32", device="cpu", grad_sync=mode)
        t = S.make_trainable(S.build_policy(None, tokenizer, info, tc, attn_implementation="sdpa",
                                            init_from_config=TinyModelSpec(), init_seed=0), tc, info)
        report[mode] = {"sync_every_micro_batch": t.sync_every_micro_batch,
                        "nll": float(accumulate_gradients(t.model, mbs, global_targets, t.sync_every_micro_batch,
                                                          info.device))}
        grads[mode] = {name: p.grad.full_tensor() for name, p in t.model.named_parameters()}
    del t  # both FSDP models are garbage before the group is torn down, not at interpreter exit
    if info.rank == 0:
        torch.save(grads, Path(out_dir) / "grads.pt")
    (Path(out_dir) / f"rank{info.rank}.json").write_text(json.dumps(report))
    D.teardown(info)


if __name__ == "__main__":
    main(*sys.argv[1:4])
