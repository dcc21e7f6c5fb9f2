"""Every registered policy loss against a value computed by hand, token by token, in plain Python."""

from __future__ import annotations

import math

import pytest
import torch

from imagine.config import ConfigError, load_config
from imagine.train.config import GRPOConfig
from imagine.train.losses import POLICY_LOSSES, LossConfig, aggregate, policy_loss, resolve

# Two sequences of three token slots; the second sequence's last slot is padding.
LOGP = [[-1.0, -0.5, -2.0], [-0.3, -1.2, 0.0]]
OLD = [[-1.1, -0.2, -2.0], [-0.9, -1.0, 0.0]]
SAMPLING = [[-1.3, -0.2, -1.5], [-0.9, -1.1, 0.0]]
REF = [[-0.8, -0.6, -2.5], [-0.2, -1.0, 0.0]]
ADV = [[1.5, 1.5, 1.5], [-0.7, -0.7, -0.7]]
MASK = [[1, 1, 1], [1, 1, 0]]


def tensors():
    t = {k: torch.tensor(v, dtype=torch.float64) for k, v in
         dict(logp=LOGP, old=OLD, sampling=SAMPLING, ref=REF, adv=ADV, mask=MASK).items()}
    for k in ("logp", "old", "sampling", "ref", "adv"):
        t[k].requires_grad_(True)
    return t


def k3(lp, ref):
    return math.exp(ref - lp) - (ref - lp) - 1.0


def clipped_token(lp, old, samp, ref, a, cfg):
    r = math.exp(lp - old)
    pg = -min(r * a, min(max(r, 1 - cfg.clip_low), 1 + cfg.clip_high) * a)
    w = min(math.exp(old - samp), cfg.is_cap)
    return w * pg + cfg.kl_coef * k3(lp, ref)


def gspo_tokens(b, cfg):
    idx = [i for i in range(3) if MASK[b][i]]
    s = math.exp(sum(LOGP[b][i] - OLD[b][i] for i in idx) / len(idx))
    a = sum(ADV[b][i] for i in idx) / len(idx)
    w = min(math.exp(sum(OLD[b][i] - SAMPLING[b][i] for i in idx) / len(idx)), cfg.is_cap)
    seq = -min(s * a, min(max(s, 1 - cfg.clip_low), 1 + cfg.clip_high) * a) * w
    return [seq + cfg.kl_coef * k3(LOGP[b][i], REF[b][i]) if MASK[b][i] else 0.0 for i in range(3)]


def cispo_token(lp, old, samp, ref, a, cfg):
    r = math.exp(lp - old)
    w = min(max(r, max(0.0, 1 - cfg.clip_low)), 1 + cfg.clip_high)
    is_w = min(math.exp(old - samp), cfg.is_cap)
    return -w * a * lp * is_w + cfg.kl_coef * k3(lp, ref)


def expected(name, cfg):
    if name == "gspo":
        return [gspo_tokens(b, cfg) for b in range(2)]
    fn = cispo_token if name == "cispo" else clipped_token
    return [[fn(LOGP[b][i], OLD[b][i], SAMPLING[b][i], REF[b][i], ADV[b][i], cfg) if MASK[b][i] else 0.0
             for i in range(3)] for b in range(2)]


@pytest.mark.parametrize("name", sorted(POLICY_LOSSES))
@pytest.mark.parametrize("kl_coef", [0.0, 0.1])
def test_registered_loss_equals_hand_computed_value_and_only_the_policy_gets_gradients(name, kl_coef):
    # A cap that binds on one token (exp(-1.1 + 1.3) = 1.22 > 1.2), so truncation is exercised.
    cfg = resolve(LossConfig(name=name, kl_coef=kl_coef, is_cap=1.2))
    t = tensors()
    per_token, metrics = policy_loss(cfg, t["logp"], t["old"], t["adv"], t["mask"], sampling_logp=t["sampling"],
                                     ref_logp=t["ref"])
    torch.testing.assert_close(per_token, torch.tensor(expected(name, cfg), dtype=torch.float64), atol=1e-12,
                               rtol=1e-9)
    assert all(v.dim() == 0 and not v.requires_grad for v in metrics.values())
    per_token.sum().backward()
    assert t["logp"].grad is not None and t["logp"].grad.abs().sum() > 0
    assert t["logp"].grad[1, 2] == 0  # padding gets no gradient
    for frozen in ("old", "sampling", "ref", "adv"):
        assert t[frozen].grad is None, f"{name}: gradient leaked into {frozen}"


def test_gspo_sequence_stats_count_only_rows_with_loss_tokens():
    """A filtered row (mask all zero) is no sequence: its exp(0) = 1 must not pull the means to 1."""
    cfg = resolve(LossConfig(name="gspo", is_cap=1.2))
    t = {k: torch.cat([v.detach(), torch.full((1, 3), -0.5, dtype=torch.float64)]) for k, v in tensors().items()}
    t["mask"][2] = 0.0
    _, metrics = policy_loss(cfg, t["logp"], t["old"], t["adv"], t["mask"], sampling_logp=t["sampling"],
                             ref_logp=None)
    ratios, weights = [], []
    for b in range(2):
        idx = [i for i in range(3) if MASK[b][i]]
        ratios.append(math.exp(sum(LOGP[b][i] - OLD[b][i] for i in idx) / len(idx)))
        weights.append(min(math.exp(sum(OLD[b][i] - SAMPLING[b][i] for i in idx) / len(idx)), cfg.is_cap))
    assert float(metrics["ratio_mean"]) == pytest.approx(sum(ratios) / 2, rel=1e-6)
    assert float(metrics["is_weight_mean"]) == pytest.approx(sum(weights) / 2, rel=1e-6)


def test_aggregations_match_their_definitions_and_split_exactly_over_micro_batches():
    loss = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 99.0]])
    mask = torch.tensor(MASK, dtype=torch.float32)
    totals = dict(total_tokens=5, total_seqs=2, norm_constant=4)
    assert aggregate(loss, mask, "token_mean", **totals).item() == pytest.approx(15 / 5)
    assert aggregate(loss, mask, "seq_mean_token_mean", **totals).item() == pytest.approx((6 / 3 + 9 / 2) / 2)
    assert aggregate(loss, mask, "seq_mean_token_sum_norm", **totals).item() == pytest.approx(15 / (2 * 4))
    for mode in ("token_mean", "seq_mean_token_mean", "seq_mean_token_sum_norm"):
        whole = aggregate(loss, mask, mode, **totals)
        parts = aggregate(loss[:1], mask[:1], mode, **totals) + aggregate(loss[1:], mask[1:], mode, **totals)
        assert parts.item() == pytest.approx(whole.item())


def test_variant_defaults_and_explicit_settings():
    assert resolve(LossConfig(name="dapo")).clip_high == 0.28
    assert resolve(LossConfig(name="dr_grpo")).aggregation == "seq_mean_token_sum_norm"
    assert resolve(LossConfig(name="dapo", clip_high=0.3)).clip_high == 0.3


@pytest.mark.parametrize("override, words", [
    ("loss.name=ppo_typo", ["loss.name: ", "ppo_typo", "grpo"]),
    ("rollout.group_size=1", ["rollout.group_size=1", "advantage.normalize_std"]),
    ("loss.aggregation=mean", ["loss.aggregation: "]),
    ("rollout.kv_cache_gib=0", ["rollout.kv_cache_gib must be positive"]),
    ("rollout.max_tokens=0", ["rollout.max_tokens must be positive, got 0"]),
    ("train.micro_batch_size=0", ["train.micro_batch_size must be positive, got 0"]),
    ("train.share_prompts=true model.attn_implementation=flash_attention_2",
     ["train.share_prompts", "model.attn_implementation=flash_attention_2"]),
])
def test_bad_grpo_config_names_the_key(override, words):
    with pytest.raises(ConfigError) as err:
        load_config(GRPOConfig, None, ["model.path=m", *override.split()])
    assert all(w in str(err.value) for w in words), str(err.value)


def test_group_of_one_is_fine_without_std_normalisation():
    cfg = load_config(GRPOConfig, None, ["model.path=m", "rollout.group_size=1", "advantage.estimator=dr_grpo"])
    assert cfg.rollout.group_size == 1


def test_readme_example_loss_registers_and_runs():
    """The README's "new policy loss" block, executed as written."""
    from tests.conftest import ROOT

    text = (ROOT / "README.md").read_text()
    block = text.split("# my_losses.py", 1)[1].split("\n", 1)[1].split("```", 1)[0]
    try:
        exec(compile(block, "README.md", "exec"), {})
        cfg = resolve(LossConfig(name="clipped_reinforce", kl_coef=0.1))
        t = tensors()
        per_token, metrics = policy_loss(cfg, t["logp"], t["old"], t["adv"], t["mask"], ref_logp=t["ref"])
        adv = [[min(1.0, max(-1.0, a)) for a in row] for row in ADV]
        want = [[(-adv[b][i] * LOGP[b][i] + 0.1 * k3(LOGP[b][i], REF[b][i])) if MASK[b][i] else 0.0
                 for i in range(3)] for b in range(2)]
        torch.testing.assert_close(per_token, torch.tensor(want, dtype=torch.float64))
        assert metrics["adv_clipped_fraction"] > 0
    finally:
        POLICY_LOSSES.pop("clipped_reinforce", None)
