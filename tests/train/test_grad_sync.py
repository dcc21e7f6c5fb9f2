"""``train.grad_sync``: reduce-scattering after every micro-batch or only after the last gives the same step.

The two choices only move where the cross-rank sum happens (per micro-batch on sharded gradients,
or once on accumulated unsharded ones), so the gradients may differ by float reassociation and
nothing more. Two gloo ranks, uneven packed micro-batches, the SFT loop's own accumulation code.
"""

from __future__ import annotations

import json

import pytest
import torch

from tests.train.launch import run_worker

pytestmark = pytest.mark.slow

# fp32 sums of a few micro-batches in another order: a few ulps of the largest gradient entry
GRAD_RTOL = 1e-5


def test_both_grad_sync_choices_give_the_same_gradients(tmp_path, tiny_tokenizer_dir, sft_data):
    run_worker("tests.train.grad_sync_worker", tiny_tokenizer_dir, sft_data, tmp_path)
    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    for rep in reports:
        assert rep["micro_batches"] >= 2  # accumulation happened, so the choice mattered
        assert rep["every_micro_batch"]["sync_every_micro_batch"] is True
        assert rep["last_micro_batch"]["sync_every_micro_batch"] is False
        assert rep["every_micro_batch"]["nll"] == rep["last_micro_batch"]["nll"]  # the same forward passes
    grads = torch.load(tmp_path / "grads.pt")
    every, last = grads["every_micro_batch"], grads["last_micro_batch"]
    assert every.keys() == last.keys() and len(every) > 5
    scale = max(g.abs().max().item() for g in every.values())
    assert scale > 0
    for name in every:
        assert every[name].abs().sum() > 0, name  # every parameter got a gradient
        diff = (every[name] - last[name]).abs().max().item()
        assert diff <= GRAD_RTOL * scale, (name, diff, scale)
