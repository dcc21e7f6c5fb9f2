"""group_advantages against hand-computed values for every option."""

import math

import pytest
import torch

from kernels import group_advantages

REWARDS = torch.tensor([1.0, 0.0, 0.0, 1.0, 2.0, 2.0, 2.0, 2.0])
SQRT_THIRD = math.sqrt(1 / 3)  # unbiased std of [1, 0, 0, 1]


def close(actual, expected, atol=1e-5):
    torch.testing.assert_close(actual, torch.tensor(expected, dtype=actual.dtype), atol=atol, rtol=0)


def test_grpo_group_std():
    adv, zero_var = group_advantages(REWARDS, group_size=4)
    a = 0.5 / SQRT_THIRD
    close(adv, [a, -a, -a, a, 0, 0, 0, 0])
    assert zero_var.tolist() == [False] * 4 + [True] * 4


def test_grpo_mean_only():
    adv, _ = group_advantages(REWARDS, group_size=4, normalize_std=False)
    close(adv, [0.5, -0.5, -0.5, 0.5, 0, 0, 0, 0])


def test_grpo_batch_std():
    # batch: mean 1.25, sum of squared deviations 5.5, unbiased var 5.5 / 7
    adv, _ = group_advantages(REWARDS, group_size=4, std_scope="batch")
    a = 0.5 / math.sqrt(5.5 / 7)
    close(adv, [a, -a, -a, a, 0, 0, 0, 0])


def test_rloo_leave_one_out():
    adv, zero_var = group_advantages(REWARDS, group_size=4, mode="rloo", normalize_std=False)
    # r=1: baseline (0 + 0 + 1) / 3; r=0: baseline (1 + 0 + 1) / 3
    close(adv, [2 / 3, -2 / 3, -2 / 3, 2 / 3, 0, 0, 0, 0])
    assert zero_var[4:].all()


def test_rloo_with_std():
    adv, _ = group_advantages(REWARDS, group_size=4, mode="rloo")
    a = (2 / 3) / SQRT_THIRD
    close(adv, [a, -a, -a, a, 0, 0, 0, 0])


def test_dr_grpo_never_divides():
    for normalize in (True, False):
        adv, _ = group_advantages(REWARDS * 3, group_size=4, mode="dr_grpo", normalize_std=normalize)
        close(adv, [1.5, -1.5, -1.5, 1.5, 0, 0, 0, 0])


def test_eps_is_added_to_std():
    adv, _ = group_advantages(torch.tensor([0.0, 2.0]), group_size=2, eps=1.0)
    a = 1.0 / (math.sqrt(2) + 1.0)
    close(adv, [-a, a])


def test_group_ids_non_contiguous():
    ids = torch.tensor([7, 3, 7, 3, 3])
    rewards = torch.tensor([1.0, 2.0, 3.0, 4.0, 6.0])
    adv, zero_var = group_advantages(rewards, group_ids=ids)
    # group 7: [1, 3], mean 2, std sqrt(2); group 3: [2, 4, 6], mean 4, std 2
    h = 1 / math.sqrt(2)
    close(adv, [-h, -1.0, h, 0.0, 1.0])
    assert not zero_var.any()


def test_singleton_group():
    ids = torch.tensor([0, 1, 1])
    rewards = torch.tensor([5.0, 1.0, 2.0])
    h = 1 / math.sqrt(2)
    adv, zero_var = group_advantages(rewards, group_ids=ids)
    close(adv, [0.0, -h, h])
    assert zero_var.tolist() == [True, False, False]
    adv, _ = group_advantages(rewards, group_ids=ids, mode="rloo", normalize_std=False)
    close(adv, [0.0, -1.0, 1.0])


def test_large_batch_matches_loop_reference():
    gen = torch.Generator().manual_seed(0)
    rewards = torch.randint(0, 4, (64 * 8,), generator=gen).float()
    adv, zero_var = group_advantages(rewards, group_size=8)
    expected, expected_zero = [], []
    for group in rewards.view(64, 8):
        centered = group - group.mean()
        expected.append(torch.zeros(8) if group.std() == 0 else centered / (group.std() + 1e-6))
        expected_zero.append(torch.full((8,), bool(group.max() == group.min())))
    torch.testing.assert_close(adv, torch.cat(expected), atol=1e-5, rtol=0)
    assert torch.equal(zero_var, torch.cat(expected_zero))


def test_dtype_preserved_and_bad_input_named():
    adv, _ = group_advantages(REWARDS.double(), group_size=2)
    assert adv.dtype == torch.float64
    with pytest.raises(ValueError, match="group_size=3"):
        group_advantages(REWARDS, group_size=3)
    with pytest.raises(ValueError, match="exactly one"):
        group_advantages(REWARDS)
    with pytest.raises(ValueError, match="mode"):
        group_advantages(REWARDS, group_size=4, mode="ppo")
    with pytest.raises(ValueError, match="std_scope"):
        group_advantages(REWARDS, group_size=4, std_scope="global")
    with pytest.raises(ValueError, match="NaN"):
        group_advantages(torch.tensor([1.0, float("nan")]), group_size=2)
