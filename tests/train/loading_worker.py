"""torchrun worker for ``test_loading.py``: plain load + shard vs lean loading, on every rank.

Writes ``<out>/rank<r>.json`` with what it found, so the test can assert outside the process group.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch


def main(model_dir: str, out: str) -> None:
    from imagine.train.dist import init_distributed, teardown
    from imagine.train.fsdp import shard_model
    from imagine.train.loading import load_sharded_causal_lm
    from imagine.train.model import CausalLMLogProb, load_causal_lm

    torch.set_num_threads(1)
    info = init_distributed("cpu")
    kw = {"precision": "fp32", "activation_checkpointing": False, "cpu_offload": False}
    plain = shard_model(CausalLMLogProb(load_causal_lm(model_dir, attn_implementation="sdpa")), info, **kw)
    lean = {m: load_sharded_causal_lm(model_dir, info, attn_implementation="sdpa", method=m, **kw)
            for m in ("scatter", "broadcast")}

    # GRPO's reference model: bf16 shards, frozen
    reference = load_sharded_causal_lm(model_dir, info, attn_implementation="sdpa", precision="bf16",
                                       activation_checkpointing=False, cpu_offload=False,
                                       master_dtype=torch.bfloat16, requires_grad=False)
    plain_bf16 = {n: p.to_local().to(torch.bfloat16) for n, p in plain.named_parameters()}
    ref_params = dict(reference.named_parameters())
    reference_report = {
        "dtypes": sorted({str(p.dtype) for p in reference.parameters()}),
        "frozen": not any(p.requires_grad for p in reference.parameters()),
        "buffer_dtypes": sorted({str(b.dtype) for b in reference.buffers()}),  # rotary stays fp32
        "equal_to_plain_in_bf16": sorted(ref_params) == sorted(plain_bf16)
        and all(torch.equal(ref_params[n].to_local(), t) for n, t in plain_bf16.items()),
    }

    gen = torch.Generator().manual_seed(0)
    vocab = plain.lm.config.vocab_size
    ids = torch.randint(0, vocab, (1, 24), generator=gen)
    pos = torch.arange(24)[None]
    targets = torch.roll(ids, -1, 1)
    report = {"rank": info.rank, "world_size": info.world_size, "reference": reference_report}
    with torch.no_grad():
        # read the shards before any forward: the root unit stays unsharded after one
        plain_state = {n: p.to_local().clone() for n, p in plain.named_parameters()}
        lean_states = {m: {n: p.to_local().clone() for n, p in model.named_parameters()} for m, model in lean.items()}
        ref_lp, _ = plain(ids, pos, targets)
        report["logprob_sum"] = float(ref_lp.sum())
        for m, model in lean.items():
            lp, _ = model(ids, pos, targets)
            params = lean_states[m]
            report[m] = {
                "same_names": sorted(params) == sorted(plain_state),
                "max_param_diff": max(float((params[n] - t).abs().max()) if t.numel() else 0.0
                                      for n, t in plain_state.items()),
                "local_numel": sum(p.numel() for p in params.values()),
                "dtypes": sorted({str(p.dtype) for p in model.parameters()}),
                "max_logprob_diff": float((lp - ref_lp).abs().max()),
                "inv_freq_diff": max(float((b - dict(plain.named_buffers())[n]).abs().max())
                                     for n, b in model.named_buffers()),
                "tied": model.lm.get_output_embeddings().weight is model.lm.get_input_embeddings().weight,
                "plain_tied": plain.lm.get_output_embeddings().weight is plain.lm.get_input_embeddings().weight,
            }
    # the lean model trains: one backward reaches every parameter
    lp, _ = lean["scatter"](ids, pos, targets)
    (-lp.mean()).backward()
    with torch.no_grad():
        ref_lp, _ = reference(ids, pos, targets)
    report["reference"]["logprob_finite"] = bool(torch.isfinite(ref_lp).all())
    report["all_grads"] = all(p.grad is not None for p in lean["scatter"].parameters())
    Path(out, f"rank{info.rank}.json").write_text(json.dumps(report))
    teardown(info)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
