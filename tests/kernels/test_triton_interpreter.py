"""Triton kernels against the torch references; on CPU through TRITON_INTERPRET=1 with small shapes.

Triton reads TRITON_INTERPRET when its own library (triton.language) is imported, so it cannot be
switched on inside a process that already imported triton. Without a GPU this file therefore re-runs
itself in a child pytest with TRITON_INTERPRET=1 set from the start; the kernel tests proper only run
where Triton can execute them (a GPU, or that child).
Tolerances: tests/kernels/tolerances.py (the interpreter's bf16 matmul runs on fp32 operands).
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from kernels import clipped_policy_objective_reference, fused_linear_logprob, logprob_reference
from kernels.common import IGNORE_INDEX, K3_LOG_RATIO_BOUND
from kernels.dispatch import triton_importable, triton_interpreter_enabled
from tests.helpers import INTERPRETER_LOOPS_REASON, interpreter_loops_break
from tests.kernels.tolerances import TOL, relative_error

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
CAN_RUN_TRITON = triton_importable() and (DEVICE == "cuda" or triton_interpreter_enabled())
pytestmark = pytest.mark.skipif(not triton_importable(), reason="triton is not installed")
torch.set_num_threads(1)
needs_triton_runtime = pytest.mark.skipif(not CAN_RUN_TRITON, reason="runs in the TRITON_INTERPRET=1 child")


@pytest.mark.skipif(CAN_RUN_TRITON, reason="Triton runs in this process")
@pytest.mark.skipif(interpreter_loops_break(), reason=INTERPRETER_LOOPS_REASON)
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

    x = logp.clone().to(DEVICE).requires_grad_()
    loss, stats = kl_mod.triton_clipped_policy_objective(x, old.to(DEVICE), adv.to(DEVICE), mask.to(DEVICE), **to_dev)
    (loss * upstream).sum().backward()
    y = logp.clone().to(DEVICE).requires_grad_()
    ref_loss, ref_stats = clipped_policy_objective_reference(y, old.to(DEVICE), adv.to(DEVICE), mask.to(DEVICE),
                                                             **to_dev)
    (ref_loss * upstream).sum().backward()
    torch.testing.assert_close(loss, ref_loss, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(x.grad, y.grad, atol=1e-5, rtol=1e-5)
    assert set(stats) == set(ref_stats)
    for key in stats:
        torch.testing.assert_close(stats[key], ref_stats[key], atol=1e-5, rtol=1e-5)
    assert stats["clip_fraction"] > 0  # the case exercises clipping


@needs_triton_runtime
def test_dispatcher_routes_to_triton_with_tied_embeddings(triton_modules, monkeypatch):
    """Through the public API, env-forced backend, [B, T] shapes, weight shared with the embedding."""
    from kernels import clipped_policy_objective, fused_linear_logprob

    monkeypatch.setenv("IMAGINE_KERNEL_BACKEND", "triton")
    logprob_mod, kl_mod = triton_modules
    calls = []
    for module, name in ((logprob_mod, "triton_linear_logprob"), (kl_mod, "triton_clipped_policy_objective")):
        real = getattr(module, name)
        monkeypatch.setattr(module, name, lambda *a, _real=real, _name=name, **k: calls.append(_name) or _real(*a, **k))
    gen = torch.Generator().manual_seed(4)
    vocab, hid = 53, 16
    tokens = torch.randint(0, vocab, (2, 9), generator=gen).to(DEVICE)
    inputs, targets = tokens[:, :-1], tokens[:, 1:].clone()
    targets[0, :2] = -100
    mix = (torch.randn(hid, hid, generator=gen) / hid**0.5).to(DEVICE)
    base = (torch.randn(vocab, hid, generator=gen) * 0.5).to(DEVICE)

    def run(use_reference):
        weight = base.clone().requires_grad_()
        hidden = torch.tanh(torch.nn.functional.embedding(inputs, weight) @ mix)
        if use_reference:
            lp, _ = logprob_reference(hidden, weight, targets, temperature=0.9)
        else:
            lp, _ = fused_linear_logprob(hidden, weight, targets, temperature=0.9)
        old = lp.detach() - 0.1
        loss, _ = (clipped_policy_objective_reference if use_reference else clipped_policy_objective)(
            lp, old, torch.ones_like(lp), targets != -100, clip_low=0.2, clip_high=0.2)
        loss.sum().backward()
        return lp, weight.grad

    lp, grad = run(False)
    assert calls == ["triton_linear_logprob", "triton_clipped_policy_objective"]
    ref_lp, ref_grad = run(True)
    assert lp.shape == targets.shape
    torch.testing.assert_close(lp, ref_lp, atol=1e-5, rtol=0)
    assert relative_error(grad, ref_grad) < 1e-5


@needs_triton_runtime
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_backends_agree_on_prompt_rows(triton_modules, monkeypatch, dtype):
    """SFT-shaped input: each sequence starts with prompt rows (IGNORE_INDEX targets) and pads.

    Both backends go through fused_linear_logprob, which drops those rows before the backend
    switch: the Triton kernel must see only the rows with a target, and Triton and torch must give
    the same log-probs, entropies and gradients (hidden, weight, bias), with zeros on prompt rows.
    """
    logprob_mod, _ = triton_modules
    seen_rows = []
    real = logprob_mod.triton_linear_logprob

    def spy(hidden, *args, **kwargs):
        seen_rows.append(hidden.shape[0])
        return real(hidden, *args, **kwargs)

    monkeypatch.setattr(logprob_mod, "triton_linear_logprob", spy)
    gen = torch.Generator().manual_seed(5)
    batch, seq, hid, vocab = 2, 12, 16, 45
    hidden = (torch.randn(batch, seq, hid, generator=gen) / hid**0.25).to(dtype)
    weight = (torch.randn(vocab, hid, generator=gen) / hid**0.25).to(dtype)
    bias = (torch.randn(vocab, generator=gen) * 0.5).to(dtype)
    targets = torch.randint(0, vocab, (batch, seq), generator=gen)
    targets[0, :5] = IGNORE_INDEX  # prompt
    targets[1, :3] = IGNORE_INDEX  # prompt
    targets[1, -2:] = IGNORE_INDEX  # padding
    upstream = torch.linspace(-1, 2, batch * seq, device=DEVICE).reshape(batch, seq)

    def run(backend):
        leaves = [x.clone().to(DEVICE).requires_grad_() for x in (hidden, weight, bias)]
        lp, ent = fused_linear_logprob(leaves[0], leaves[1], targets.to(DEVICE), bias=leaves[2], temperature=0.7,
                                       return_entropy=True, backend=backend)
        loss = (lp * upstream).sum() + 0.3 * (ent * upstream.flip(0)).sum()
        return lp, ent, torch.autograd.grad(loss, leaves)

    lp, ent, grads = run("triton")
    ref_lp, ref_ent, ref_grads = run("torch")
    n_target = int((targets != IGNORE_INDEX).sum())
    assert seen_rows == [n_target] and n_target < batch * seq
    tol = TOL[dtype]
    prompt = (targets == IGNORE_INDEX).to(DEVICE)
    assert torch.all(lp[prompt] == 0) and torch.all(ent[prompt] == 0)
    assert torch.all(grads[0][prompt] == 0)
    torch.testing.assert_close(lp, ref_lp, atol=tol["value_atol"], rtol=0)
    torch.testing.assert_close(ent, ref_ent, atol=tol["value_atol"], rtol=0)
    for got, want in zip(grads, ref_grads):
        assert got.dtype == dtype
        assert relative_error(got, want) < tol["grad_rel"]


@needs_triton_runtime
def test_triton_k3_clamp_matches_reference(triton_modules):
    """Log-ratios beyond +-K3_LOG_RATIO_BOUND: both backends clamp, give finite equal losses, and the
    KL term passes no gradient there; inside the bound the usual 1 - r."""
    _, kl_mod = triton_modules
    bound = K3_LOG_RATIO_BOUND
    log_ratio = torch.tensor([0.5, -3.0, bound - 0.5, -(bound - 0.5), bound + 20.0, -(bound + 90.0), 200.0])
    logp = torch.full_like(log_ratio, -2.0)
    ref = logp + log_ratio
    zeros, mask = torch.zeros_like(logp), torch.ones_like(logp)
    kwargs = dict(clip_low=0.2, clip_high=0.2, ref_logp=ref.to(DEVICE), kl_kind="k3", kl_coef=1.0)

    x = logp.clone().to(DEVICE).requires_grad_()
    loss, _ = kl_mod.triton_clipped_policy_objective(x, logp.to(DEVICE), zeros.to(DEVICE), mask.to(DEVICE), **kwargs)
    loss.sum().backward()
    y = logp.clone().to(DEVICE).requires_grad_()
    ref_loss, _ = clipped_policy_objective_reference(y, logp.to(DEVICE), zeros.to(DEVICE), mask.to(DEVICE), **kwargs)
    ref_loss.sum().backward()

    clamped = log_ratio.clamp(-bound, bound)
    expected = (clamped.exp() - clamped - 1).to(DEVICE)
    expected_grad = torch.where(log_ratio.abs() <= bound, 1 - log_ratio.clamp(max=bound).exp(), 0.0).to(DEVICE)
    for got, grad in ((loss, x.grad), (ref_loss, y.grad)):
        assert torch.isfinite(got).all() and torch.isfinite(grad).all()
        torch.testing.assert_close(got.detach(), expected, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(grad, expected_grad, rtol=1e-5, atol=1e-5)
