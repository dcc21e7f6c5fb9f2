"""Run under torchrun by test_grpo.py: FSDP2 policy -> engine weight sync, checked on every rank.

Writes one JSON file per rank: the max |trainer - engine| log-prob gap after the sync, and how far
the engine moved from its pre-step log-probs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch


def main(model_dir: str, out_dir: str) -> None:
    from imagine.rollout import make_engine
    from imagine.train import dist as D
    from imagine.train import setup as S
    from imagine.train.config import GRPOStepConfig
    from imagine.train.weight_sync import hf_named_tensors

    info = D.init_distributed("cpu")
    tokenizer = S.prepare_tokenizer(model_dir, info)
    tc = GRPOStepConfig(lr=1e-2, precision="fp32", device="cpu", max_steps=1, warmup_steps=0)
    t = S.make_trainable(S.build_policy(model_dir, tokenizer, info, tc, attn_implementation="sdpa"), tc, info)
    engine = make_engine("torch", model_dir)
    a, b = tokenizer.encode("from Rockford to St. Petersburg"), tokenizer.encode("Flight Number: F3573659 plan")
    n = min(len(a), len(b))
    seqs = torch.tensor([a[:n], b[:n]])
    ids = seqs[:, :-1]
    targets = seqs[:, 1:]
    positions = torch.arange(ids.shape[1]).expand_as(ids)

    def engine_logp():
        with torch.no_grad():
            logits = engine.model(ids).logits.float()
        return torch.log_softmax(logits, -1).gather(-1, targets[..., None])[..., 0]

    before = engine_logp()
    logp, _ = t.model(ids, positions, targets)
    (-logp.sum()).backward()  # one step that surely moves every weight
    t.optimizer.step()
    t.optimizer.zero_grad()
    engine.sync_weights(hf_named_tensors(t.model))
    with torch.no_grad():
        trainer, _ = t.model(ids, positions, targets)
    after = engine_logp()
    result = {"rank": info.rank, "gap": float((trainer.view_as(after) - after).abs().max()),
              "moved": float((after - before).abs().max())}
    (Path(out_dir) / f"rank{info.rank}.json").write_text(json.dumps(result))  # ranks' stdout lines interleave
    D.teardown(info)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
