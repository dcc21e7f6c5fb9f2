"""Triton kernels against the torch references; on CPU through TRITON_INTERPRET=1 with small shapes.

Triton reads TRITON_INTERPRET when its own library (triton.language) is imported, so it cannot be
switched on inside a process that already imported triton. Without a GPU this file therefore re-runs
itself in a child pytest with TRITON_INTERPRET=1 set from the start; the kernel tests proper only run
where Triton can execute them (a GPU, or that child).
Tolerances as in test_logprob_torch (the interpreter's bf16 matmul runs on fp32 operands).
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from kernels import clipped_policy_objective_reference, logprob_reference
from kernels.dispatch import triton_importable, triton_interpreter_enabled

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
CAN_RUN_TRITON = triton_importable() and (DEVICE == "cuda" or triton_interpreter_enabled())
pytestmark = pytest.mark.skipif(not triton_importable(), reason="triton is not installed")
torch.set_num_threads(1)
needs_triton_runtime = pytest.mark.skipif(not CAN_RUN_TRITON, reason="runs in the TRITON_INTERPRET=1 child")


@pytest.mark.skipif(CAN_RUN_TRITON, reason="Triton runs in this process")
def test_triton_kernels_in_interpreter_subprocess():
    repo_root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, TRITON_INTERPRET="1", OMP_NUM_THREADS="1")
    child = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(Path(__file__).resolve())],
        cwd=repo_root, env=env, capture_output=True, text=True, timeout=600,
    )
    assert child.returncode == 0, child.stdout[-6000:] + child.stderr[-3000:]
    summary = child.stdout.strip().splitlines()[-1]
    # In the child only this launcher test may be skipped; every kernel test must have run.
    assert " passed" in summary and ("skipped" not in summary or "1 skipped" in summary), summary


@pytest.fixture(scope="module")
def triton_modules():
    from kernels import kl_triton, logprob_triton

    return logprob_triton, kl_triton


TOL = {
    torch.float32: dict(value_atol=1e-5, grad_rel=1e-5),
    torch.bfloat16: dict(value_atol=5e-2, grad_rel=3e-2),
}


def relative_error(actual, expected):
    return ((actual.double() - expected.double()).norm() / expected.double().norm().clamp_min(1e-12)).item()


@needs_triton_runtime
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("case", ["plain", "bias_temperature_entropy", "single_token"])
def test_triton_logprob_matches_reference(triton_modules, dtype, case):
    logprob_mod, _ = triton_modules
    n, hid, vocab = (1, 24, 45) if case == "single_token" else (21, 24, 45)  # 45: not a multiple of the tile
    with_extras = case != "plain"
    gen = torch.Generator().manual_seed(1)
    hidden = (torch.randn(n, hid, generator=gen) / hid**0.25).to(dtype)
    weight = (torch.randn(vocab, hid, generator=gen) / hid**0.25).to(dtype)
    bias = (torch.randn(vocab, generator=gen) * 0.5).to(dtype) if with_extras else None
    targets = torch.randint(0, vocab, (n,), generator=gen)
    if n > 1:
        targets[[2, 7]] = -100
    temperature = 0.7 if with_extras else 1.0
    leaves = [x.to(DEVICE).requires_grad_() for x in (hidden, weight, bias) if x is not None]
    ref_leaves = [x.detach().float().requires_grad_() for x in leaves]
    upstream = torch.linspace(-1, 2, n, device=DEVICE)

    def loss(lp, ent):
        return (lp * upstream).sum() + (0.3 * (ent * upstream.flip(0)).sum() if ent is not None else 0)

    lp, ent = logprob_mod.triton_linear_logprob(
        leaves[0], leaves[1], targets.to(DEVICE), bias=leaves[2] if with_extras else None,
        temperature=temperature, return_entropy=with_extras)
    ref_lp, ref_ent = logprob_reference(
        ref_leaves[0], ref_leaves[1], targets.to(DEVICE), bias=ref_leaves[2] if with_extras else None,
        temperature=temperature, return_entropy=with_extras)
    tol = TOL[dtype]
    assert lp.dtype == torch.float32
    torch.testing.assert_close(lp, ref_lp, atol=tol["value_atol"], rtol=0)
    if with_extras:
        torch.testing.assert_close(ent, ref_ent, atol=tol["value_atol"], rtol=0)
    grads = torch.autograd.grad(loss(lp, ent), leaves)
    ref_grads = torch.autograd.grad(loss(ref_lp, ref_ent), ref_leaves)
    for got, want in zip(grads, ref_grads):
        assert got.dtype == dtype
        assert relative_error(got, want) < tol["grad_rel"]
    if n > 1:
        assert torch.all(grads[0][[2, 7]] == 0) and torch.all(lp[[2, 7]] == 0)


@needs_triton_runtime
@pytest.mark.parametrize("kl_kind", [None, "k1", "k2", "k3"])
@pytest.mark.parametrize("with_sampling", [False, True])
def test_triton_policy_objective_matches_reference(triton_modules, kl_kind, with_sampling):
    _, kl_mod = triton_modules
    gen = torch.Generator().manual_seed(2)
    shape = (3, 37)
    old = -torch.rand(shape, generator=gen) * 3
    logp = old + torch.randn(shape, generator=gen) * 0.4
    adv = torch.randn(shape, generator=gen)
    mask = torch.rand(shape, generator=gen) > 0.2
    logp[~mask] = float("nan")  # garbage in padded positions must not leak
    ref = old + torch.randn(shape, generator=gen) * 0.2
    sampling = old + torch.randn(shape, generator=gen) * 0.3 if with_sampling else None
    kwargs = dict(clip_low=0.2, clip_high=0.28, ref_logp=ref if kl_kind else None, kl_kind=kl_kind,
                  kl_coef=0.05 if kl_kind else 0.0, is_cap=1.5 if with_sampling else None, sampling_logp=sampling)
    to_dev = {k: (v.to(DEVICE) if isinstance(v, torch.Tensor) else v) for k, v in kwargs.items()}
    upstream = torch.randn(shape, generator=gen).to(DEVICE)

    x = logp.to(DEVICE).requires_grad_()
    loss, stats = kl_mod.triton_clipped_policy_objective(x, old.to(DEVICE), adv.to(DEVICE), mask.to(DEVICE), **to_dev)
    (loss * upstream).sum().backward()
    y = logp.to(DEVICE).requires_grad_()
    ref_loss, ref_stats = clipped_policy_objective_reference(y, old.to(DEVICE), adv.to(DEVICE), mask.to(DEVICE),
                                                             **to_dev)
    (ref_loss * upstream).sum().backward()
    torch.testing.assert_close(loss, ref_loss, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(x.grad, y.grad, atol=1e-5, rtol=1e-5)
    assert set(stats) == set(ref_stats)
    for key in stats:
        torch.testing.assert_close(stats[key], ref_stats[key], atol=1e-5, rtol=1e-5)
    assert stats["clip_fraction"] > 0  # the case exercises clipping
