"""Policy losses for GRPO-style training: one typed signature, registered by name, chosen by config.

Every loss maps per-token tensors of shape ``[sequences, tokens]`` (one rollout per row, right padded)
to a per-token loss and a dict of detached statistics::

    fn(logp, old_logp, advantages, mask, cfg, *, sampling_logp, ref_logp) -> (per_token_loss, metrics)

- ``logp``: the policy's log-probs, with gradient; ``old_logp``: the same policy before this rollout
  batch's updates (``logp.detach()`` when there is one update per batch); ``sampling_logp``: what the
  rollout engine reported (truncated importance sampling corrects the engine/trainer mismatch);
  ``ref_logp``: the frozen reference, or None when ``kl_coef`` is 0.
- ``advantages`` is per token (a sequence's advantage repeated over its tokens), ``mask`` is 1 on
  completion tokens.

How per-token losses become one number is a separate, shared choice (:func:`aggregate`), because the
variants disagree on it and it matters as much as the objective (Dr. GRPO's whole point is the
aggregation). Adding a variant is one decorated function; see the README.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch

from kernels import clipped_policy_objective, kl_penalty

AGGREGATIONS = ("token_mean", "seq_mean_token_mean", "seq_mean_token_sum_norm")


@dataclass
class LossConfig:
    name: str = "grpo"
    # None takes the variant's default (see `python train.py grpo --list-losses`).
    clip_low: float | None = None
    clip_high: float | None = None
    aggregation: str | None = None  # token_mean | seq_mean_token_mean | seq_mean_token_sum_norm
    is_cap: float | None = 2.0  # cap of exp(old_logp - sampling_logp); None: no engine-mismatch correction
    kl_kind: str = "k3"  # k1 | k2 | k3, against the frozen reference
    kl_coef: float = 0.0  # 0 loads no reference model
    norm_constant: int = 0  # Dr. GRPO's constant for seq_mean_token_sum_norm; 0: rollout.max_tokens

    def validate(self) -> None:
        if self.name not in POLICY_LOSSES:
            raise ValueError(f"name: unknown policy loss {self.name!r}; registered: {', '.join(sorted(POLICY_LOSSES))}")
        if self.aggregation is not None and self.aggregation not in AGGREGATIONS:
            raise ValueError(f"aggregation: {self.aggregation!r} is not one of {AGGREGATIONS}")
        if self.kl_kind not in ("k1", "k2", "k3"):
            raise ValueError(f"kl_kind: {self.kl_kind!r} is not one of k1, k2, k3")
        if self.kl_coef < 0:
            raise ValueError("kl_coef must be >= 0")
        if self.is_cap is not None and self.is_cap <= 0:
            raise ValueError("is_cap must be positive (or null for no correction)")


PolicyLossFn = Callable[..., tuple[torch.Tensor, dict[str, torch.Tensor]]]


@dataclass(frozen=True)
class LossSpec:
    fn: PolicyLossFn
    clip_low: float
    clip_high: float
    aggregation: str
    fused: bool  # runs as the one-pass Triton kernel on CUDA
    doc: str = field(default="", compare=False)


POLICY_LOSSES: dict[str, LossSpec] = {}


def register_policy_loss(name: str, *, clip_low: float, clip_high: float, aggregation: str,
                         fused: bool = False) -> Callable[[PolicyLossFn], PolicyLossFn]:
    """Decorator: make ``fn`` available as ``loss.name=<name>`` with these defaults."""
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"aggregation {aggregation!r} is not one of {AGGREGATIONS}")

    def wrap(fn: PolicyLossFn) -> PolicyLossFn:
        if name in POLICY_LOSSES:
            raise ValueError(f"policy loss {name!r} is registered twice")
        doc = (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""
        POLICY_LOSSES[name] = LossSpec(fn, clip_low, clip_high, aggregation, fused, doc)
        return fn

    return wrap


def resolve(cfg: LossConfig) -> LossConfig:
    """The config with the variant's defaults filled in, as the loss functions receive it."""
    spec = POLICY_LOSSES[cfg.name]
    return replace(cfg, clip_low=spec.clip_low if cfg.clip_low is None else cfg.clip_low,
                   clip_high=spec.clip_high if cfg.clip_high is None else cfg.clip_high,
                   aggregation=cfg.aggregation or spec.aggregation)


def policy_loss(cfg: LossConfig, logp, old_logp, advantages, mask, *, sampling_logp=None, ref_logp=None):
    """Dispatch to the registered variant (``cfg`` already resolved)."""
    return POLICY_LOSSES[cfg.name].fn(logp, old_logp, advantages, mask, cfg, sampling_logp=sampling_logp,
                                      ref_logp=ref_logp)


def describe() -> str:
    """One line per registered loss: what ``--list-losses`` prints."""
    lines = []
    for name in sorted(POLICY_LOSSES):
        s = POLICY_LOSSES[name]
        lines.append(f"{name:8s} clip=({s.clip_low:g}, {s.clip_high:g}) aggregation={s.aggregation}"
                     f"{' [fused Triton path on CUDA]' if s.fused else ''}  {s.doc}")
    return "\n".join(lines)


def aggregate(per_token: torch.Tensor, mask: torch.Tensor, mode: str, *, total_tokens: float, total_seqs: float,
              norm_constant: float) -> torch.Tensor:
    """This micro-batch's share of the mini-batch loss.

    ``total_tokens`` and ``total_seqs`` count the whole mini-batch over every rank, so summing the
    shares of all micro-batches (gradient accumulation, FSDP's sum-reduction) gives exactly the loss
    of the mini-batch computed in one piece, whatever the world size.
    """
    masked = torch.where(mask.bool(), per_token, 0.0)
    if mode == "token_mean":
        return masked.sum() / max(total_tokens, 1.0)
    if mode == "seq_mean_token_mean":
        per_seq = masked.sum(-1) / mask.sum(-1).clamp_min(1)
        return per_seq.sum() / max(total_seqs, 1.0)
    if mode == "seq_mean_token_sum_norm":
        return masked.sum() / (max(total_seqs, 1.0) * norm_constant)
    raise ValueError(f"unknown aggregation {mode!r}")


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.bool()
    return (torch.where(m, x.float(), 0.0).sum() / m.sum().clamp_min(1)).detach()


def _kl_term(logp, ref_logp, mask, cfg) -> tuple[torch.Tensor | float, dict]:
    if ref_logp is None:
        return 0.0, {}
    kl = kl_penalty(logp, ref_logp, cfg.kl_kind, mask=mask)
    return cfg.kl_coef * kl, {"kl_mean": _masked_mean(kl, mask)}


def _is_weight(old_logp, sampling_logp, mask, cfg) -> tuple[torch.Tensor | None, dict]:
    if sampling_logp is None or cfg.is_cap is None:
        return None, {}
    valid = mask.bool()
    raw = torch.exp(torch.where(valid, old_logp.detach() - sampling_logp.detach(), 0.0))
    weight = raw.clamp(max=cfg.is_cap)
    return weight, {"is_weight_mean": _masked_mean(weight, mask), "is_capped_fraction": _masked_mean(raw > weight, mask)}


def _clipped(logp, old_logp, advantages, mask, cfg, sampling_logp, ref_logp):
    return clipped_policy_objective(
        logp, old_logp, advantages, mask, clip_low=cfg.clip_low, clip_high=cfg.clip_high, ref_logp=ref_logp,
        kl_kind=cfg.kl_kind if ref_logp is not None else None, kl_coef=cfg.kl_coef if ref_logp is not None else 0.0,
        is_cap=cfg.is_cap, sampling_logp=sampling_logp if cfg.is_cap is not None else None,
    )


@register_policy_loss("grpo", clip_low=0.2, clip_high=0.2, aggregation="token_mean", fused=True)
def grpo_loss(logp, old_logp, advantages, mask, cfg, *, sampling_logp=None, ref_logp=None):
    """PPO-clip per token with truncated IS against the sampling engine (GRPO, DeepSeekMath)."""
    return _clipped(logp, old_logp, advantages, mask, cfg, sampling_logp, ref_logp)


@register_policy_loss("dr_grpo", clip_low=0.2, clip_high=0.2, aggregation="seq_mean_token_sum_norm", fused=True)
def dr_grpo_loss(logp, old_logp, advantages, mask, cfg, *, sampling_logp=None, ref_logp=None):
    """GRPO's objective with a length-unbiased token-sum / constant (Dr. GRPO; pair with advantage dr_grpo)."""
    return _clipped(logp, old_logp, advantages, mask, cfg, sampling_logp, ref_logp)


@register_policy_loss("dapo", clip_low=0.2, clip_high=0.28, aggregation="token_mean", fused=True)
def dapo_loss(logp, old_logp, advantages, mask, cfg, *, sampling_logp=None, ref_logp=None):
    """Clip-higher (a wider upper clip keeps rare tokens learnable; DAPO); dynamic sampling is a loop option."""
    return _clipped(logp, old_logp, advantages, mask, cfg, sampling_logp, ref_logp)


@register_policy_loss("gspo", clip_low=3e-4, clip_high=4e-4, aggregation="seq_mean_token_mean")
def gspo_loss(logp, old_logp, advantages, mask, cfg, *, sampling_logp=None, ref_logp=None):
    """Sequence-level ratio exp(mean_t log rho), clipped per sequence (GSPO)."""
    valid = mask.bool()
    n_tokens = valid.sum(-1).clamp_min(1)
    log_rho = torch.where(valid, logp - old_logp.detach(), 0.0)
    seq_ratio = torch.exp(log_rho.sum(-1) / n_tokens)  # [B], gradient = ratio * mean_t grad logp
    adv = torch.where(valid, advantages.detach(), 0.0).sum(-1) / n_tokens  # one advantage per sequence
    clipped = seq_ratio.clamp(1.0 - cfg.clip_low, 1.0 + cfg.clip_high)
    seq_loss = -torch.minimum(seq_ratio * adv, clipped * adv)
    counted = valid.any(-1)  # rows with no loss token (filtered, or padding rows) are not sequences here

    def seq_mean(x):
        return torch.where(counted, x.detach().float(), 0.0).sum() / counted.sum().clamp_min(1)

    stats = {"ratio_mean": seq_mean(seq_ratio),
             "clip_fraction": seq_mean(((adv > 0) & (seq_ratio > 1 + cfg.clip_high)) |
                                       ((adv < 0) & (seq_ratio < 1 - cfg.clip_low)))}
    if sampling_logp is not None and cfg.is_cap is not None:
        seq_is = torch.exp(torch.where(valid, old_logp.detach() - sampling_logp.detach(), 0.0).sum(-1) / n_tokens)
        weight = seq_is.clamp(max=cfg.is_cap)
        seq_loss = seq_loss * weight
        stats.update(is_weight_mean=seq_mean(weight), is_capped_fraction=seq_mean(seq_is > weight))
    per_token = seq_loss[:, None].expand_as(logp)  # every token carries its sequence's loss
    kl, kl_stats = _kl_term(logp, ref_logp, mask, cfg)
    return torch.where(valid, per_token + kl, 0.0), {**stats, **kl_stats}


@register_policy_loss("cispo", clip_low=1.0, clip_high=0.28, aggregation="token_mean")
def cispo_loss(logp, old_logp, advantages, mask, cfg, *, sampling_logp=None, ref_logp=None):
    """REINFORCE with a clipped, stop-gradient IS weight: no token's gradient is ever zeroed (CISPO)."""
    valid = mask.bool()
    ratio = torch.exp(torch.where(valid, logp.detach() - old_logp.detach(), 0.0))
    weight = ratio.clamp(max(0.0, 1.0 - cfg.clip_low), 1.0 + cfg.clip_high)
    pg = -weight * torch.where(valid, advantages.detach(), 0.0) * torch.where(valid, logp, 0.0)
    stats = {"ratio_mean": _masked_mean(ratio, mask), "clip_fraction": _masked_mean(weight != ratio, mask)}
    is_w, is_stats = _is_weight(old_logp, sampling_logp, mask, cfg)
    if is_w is not None:
        pg = pg * is_w
    kl, kl_stats = _kl_term(logp, ref_logp, mask, cfg)
    return torch.where(valid, pg + kl, 0.0), {**stats, **is_stats, **kl_stats}
