"""torchrun worker for ``test_untied.py``: lean-load an untied model, change its head, export it.

The head is scaled by 1.5 in the shards, so the export can only match if it writes the trained
head (not the file's, and not the embedding).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch


def main(model_dir: str, out: str) -> None:
    from transformers import AutoTokenizer

    from imagine.train.checkpoint import export_hf
    from imagine.train.dist import init_distributed, teardown
    from imagine.train.loading import load_sharded_causal_lm

    torch.set_num_threads(1)
    info = init_distributed("cpu")
    model = load_sharded_causal_lm(model_dir, info, precision="fp32", activation_checkpointing=False,
                                   cpu_offload=False, attn_implementation="sdpa")
    with torch.no_grad():
        model.lm.get_output_embeddings().weight.to_local().mul_(1.5)
    export_hf(model, AutoTokenizer.from_pretrained(model_dir), Path(out) / "hf", info, dtype="float32")
    teardown(info)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
