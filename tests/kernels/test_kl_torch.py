"""KL estimators and the clipped objective (torch path) against hand-computed values."""

import math

import pytest
import torch

from kernels import clipped_policy_objective, kl_penalty
from kernels.common import K3_LOG_RATIO_BOUND


@pytest.mark.parametrize(
    "kind, value, grad",
    [("k1", 1.0, 1.0), ("k2", 0.5, 1.0), ("k3", math.exp(-1) + 1 - 1, 1 - math.exp(-1))],
)
def test_kl_values_and_gradients(kind, value, grad):
    logp = torch.tensor([-1.0], dtype=torch.float64, requires_grad=True)
    ref = torch.tensor([-2.0], dtype=torch.float64)
    kl = kl_penalty(logp, ref, kind)
    kl.sum().backward()
    assert kl.item() == pytest.approx(value, abs=1e-12)
    assert logp.grad.item() == pytest.approx(grad, abs=1e-12)


def test_kl_is_zero_at_equal_policies_and_masked():
    logp = torch.tensor([-0.3, -2.0, -5.0])
    mask = torch.tensor([1, 1, 0])
    for kind in ("k1", "k2", "k3"):
        assert torch.all(kl_penalty(logp, logp.clone(), kind) == 0)
        assert kl_penalty(logp, logp - 1, kind, mask=mask)[2] == 0
    with pytest.raises(ValueError, match="k4"):
        kl_penalty(logp, logp, "k4")


def test_k3_gradcheck():
    logp = torch.randn(7, dtype=torch.float64, requires_grad=True)
    ref = torch.randn(7, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: kl_penalty(x, ref, "k3"), (logp,))


def hand_case():
    ratios = torch.tensor([1.5, 1.5, 0.5, 0.5, 1.0, 1.0])
    adv = torch.tensor([1.0, -1.0, -1.0, 1.0, 2.0, 0.0])
    old = torch.tensor([-1.0, -2.0, -0.5, -3.0, -1.0, -1.0])
    logp = (old + ratios.log()).requires_grad_()
    mask = torch.ones(6)
    return logp, old, adv, mask


def test_clipping_both_sides():
    logp, old, adv, mask = hand_case()
    loss, stats = clipped_policy_objective(logp, old, adv, mask, clip_low=0.2, clip_high=0.28, backend="torch")
    loss.sum().backward()
    # rho=1.5,A=+1: clipped at 1.28 | rho=1.5,A=-1: unclipped 1.5 | rho=0.5,A=-1: clipped at 0.8
    # rho=0.5,A=+1: unclipped -0.5 | rho=1,A=2: -2 | A=0: 0
    torch.testing.assert_close(loss.detach(), torch.tensor([-1.28, 1.5, 0.8, -0.5, -2.0, 0.0]))
    torch.testing.assert_close(logp.grad, torch.tensor([0.0, 1.5, 0.0, -0.5, -2.0, 0.0]))
    assert stats["clip_high_fraction"].item() == pytest.approx(1 / 6)
    assert stats["clip_low_fraction"].item() == pytest.approx(1 / 6)
    assert stats["clip_fraction"].item() == pytest.approx(2 / 6)
    assert stats["ratio_mean"].item() == pytest.approx(1.0)


def test_importance_cap_kl_and_mask():
    logp, old, adv, mask = hand_case()
    sampling = old - torch.tensor([math.log(3.0), 0.0, 0.0, math.log(0.5), 0.0, 0.0])
    ref = old.clone()
    mask = torch.tensor([1.0, 1.0, 1.0, 1.0, 1.0, 0.0])
    logp_masked = torch.cat([logp.detach()[:5], torch.tensor([float("inf")])]).requires_grad_()
    loss, stats = clipped_policy_objective(logp_masked, old, adv, mask, clip_low=0.2, clip_high=0.28, ref_logp=ref,
                                           kl_kind="k1", kl_coef=0.1, is_cap=2.0, sampling_logp=sampling,
                                           backend="torch")
    loss.sum().backward()
    log_ratio = torch.log(torch.tensor([1.5, 1.5, 0.5, 0.5, 1.0]))
    weights = torch.tensor([2.0, 1.0, 1.0, 0.5, 1.0])
    expected = weights * torch.tensor([-1.28, 1.5, 0.8, -0.5, -2.0]) + 0.1 * log_ratio
    torch.testing.assert_close(loss.detach()[:5], expected)
    assert loss[5].item() == 0.0 and logp_masked.grad[5].item() == 0.0
    expected_grad = weights * torch.tensor([0.0, 1.5, 0.0, -0.5, -2.0]) + 0.1
    torch.testing.assert_close(logp_masked.grad[:5], expected_grad)
    assert stats["is_capped_fraction"].item() == pytest.approx(1 / 5)
    assert stats["is_weight_mean"].item() == pytest.approx(weights.mean().item())
    assert stats["kl_mean"].item() == pytest.approx(log_ratio.mean().item(), abs=1e-6)


def test_policy_input_errors():
    logp, old, adv, mask = hand_case()
    with pytest.raises(ValueError, match="advantages shape"):
        clipped_policy_objective(logp, old, adv[:3], mask, clip_low=0.2, clip_high=0.2)
    with pytest.raises(ValueError, match="kl_coef"):
        clipped_policy_objective(logp, old, adv, mask, clip_low=0.2, clip_high=0.2, kl_coef=0.1)


def test_k3_log_ratio_is_clamped():
    """Beyond +-K3_LOG_RATIO_BOUND k3 is flat (finite value, no gradient); inside it is untouched."""
    bound = K3_LOG_RATIO_BOUND
    log_ratio = torch.tensor([1.0, bound - 1.0, bound + 5.0, 500.0, -500.0], dtype=torch.float64)
    logp = torch.zeros(5, dtype=torch.float64, requires_grad=True)
    kl = kl_penalty(logp, logp.detach() + log_ratio, "k3")
    kl.sum().backward()
    clamped = log_ratio.clamp(-bound, bound)
    torch.testing.assert_close(kl.detach(), clamped.exp() - clamped - 1)
    torch.testing.assert_close(logp.grad, torch.tensor([1 - math.e, 1 - math.exp(bound - 1), 0.0, 0.0, 0.0],
                                                       dtype=torch.float64))
    # Without the clamp exp(500) is inf in fp64 too; a fp16 policy overflows already past ~11.
    half = kl_penalty(torch.zeros(1, dtype=torch.float16), torch.full((1,), 30.0, dtype=torch.float16), "k3")
    assert torch.isfinite(half).all()
