"""``train.compile``: the compiled decoder layers compute what the eager ones do, through FSDP2's hooks."""

from __future__ import annotations

import torch

from tests.helpers import tiny_model_and_tokenizer


def test_compiled_layers_give_the_eager_logprobs_and_gradients(tmp_path):
    from imagine.train import dist as D
    from imagine.train import setup as S
    from imagine.train.config import StepConfig

    _, tok = tiny_model_and_tokenizer(tmp_path, sharpen=4.0)
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(0)
    # two widths and row counts: the compiled graph is dynamic, and both must match
    batches = [torch.randint(0, len(tok), (rows, width), generator=gen) for rows, width in ((3, 40), (2, 71))]
    info = D.init_distributed("cpu")
    try:
        results = {}
        # eager, compiled, and compiled under activation checkpointing (which reruns the compiled
        # forward during backward)
        for compiled, recompute in ((False, False), (True, False), (True, True)):
            tc = StepConfig(precision="fp32", device="cpu", compile=compiled, activation_checkpointing=recompute)
            model = S.build_policy(str(tmp_path / "m"), tok, info, tc, attn_implementation="eager").train()
            assert model.lm.is_gradient_checkpointing == recompute  # (it recomputes in train mode only)
            logps = []
            for ids in batches:
                positions = torch.arange(ids.shape[1]).expand_as(ids)
                logp, _ = model(ids, positions, ids.roll(-1, dims=1))
                (logp * torch.linspace(-1, 1, logp.numel())).sum().backward()  # signed: no cancelling symmetry
                logps.append(logp.detach())
            grads = {n: p.grad.full_tensor() for n, p in model.named_parameters()}
            results[compiled, recompute] = logps, grads
            assert (model.decoder_layers[0].forward.__class__.__name__ != "method") == compiled
    finally:
        D.teardown(info)
    eager_logps, eager_grads = results.pop((False, False))
    for compiled_logps, compiled_grads in results.values():
        for a, b in zip(eager_logps, compiled_logps):
            torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)
        assert eager_grads.keys() == compiled_grads.keys()
        for name, g in eager_grads.items():
            assert g.abs().max() > 0, name
            torch.testing.assert_close(compiled_grads[name], g, rtol=1e-4, atol=1e-6, msg=name)
