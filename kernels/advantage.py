"""Group-relative advantages for GRPO-style training, as one segmented reduction over the batch.

Every prompt is sampled G times; each completion's reward is compared with its siblings'. All
statistics come from index_add / scatter_reduce over group ids, so the cost does not depend on how
many groups there are and no Python loop runs per group. The tensors are tiny ([B*G] floats), so this
stays plain torch on every device: a Triton kernel would not beat three fused torch reductions.

Modes (r_i a reward, g its group with n_g members, mean_g and std_g over the group):
    grpo     A_i = r_i - mean_g                                     then / (std + eps) if normalize_std
    rloo     A_i = r_i - (sum_g - r_i) / (n_g - 1)                  leave-one-out baseline
                 = n_g / (n_g - 1) * (r_i - mean_g);                then / (std + eps) if normalize_std
    dr_grpo  A_i = r_i - mean_g    (Dr. GRPO: the std division biases towards easy/hard prompts, so
                                    this mode never divides; normalize_std is ignored)
std is the unbiased (Bessel-corrected) standard deviation, like torch.std and TRL. std_scope="group"
uses std_g; std_scope="batch" uses the std of all rewards in the batch (group mean, batch std). A group
of one has no spread: its std counts as 0 and its rloo advantage is 0.

zero_variance_mask[i] is True when every reward in i's group is identical (exact comparison): such
groups give zero advantage under every mode and are what dynamic sampling (DAPO) filters out.
"""

from __future__ import annotations

import torch

MODES = ("grpo", "rloo", "dr_grpo")
STD_SCOPES = ("group", "batch")


def _dense_group_ids(n: int, group_size: int | None, group_ids: torch.Tensor | None, device):
    if (group_size is None) == (group_ids is None):
        raise ValueError("pass exactly one of group_size (contiguous groups) or group_ids")
    if group_size is not None:
        if group_size < 1 or n % group_size != 0:
            raise ValueError(f"group_size={group_size} must be >= 1 and divide the number of rewards ({n})")
        ids = torch.arange(n, device=device) // group_size
        return ids, n // group_size
    if group_ids.shape != (n,):
        raise ValueError(f"group_ids shape {tuple(group_ids.shape)} must equal rewards shape ({n},)")
    if group_ids.dtype.is_floating_point or group_ids.dtype == torch.bool:
        raise ValueError(f"group_ids must be integers, got {group_ids.dtype}")
    uniques, ids = torch.unique(group_ids.to(device), return_inverse=True)
    return ids, uniques.numel()


def group_advantages(
    rewards: torch.Tensor,
    group_size: int | None = None,
    group_ids: torch.Tensor | None = None,
    *,
    mode: str = "grpo",
    normalize_std: bool = True,
    std_scope: str = "group",
    eps: float = 1e-6,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Advantages [B*G] (dtype of rewards) and a bool mask of samples in zero-variance groups."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if std_scope not in STD_SCOPES:
        raise ValueError(f"std_scope must be one of {STD_SCOPES}, got {std_scope!r}")
    if rewards.dim() != 1 or not rewards.dtype.is_floating_point:
        raise ValueError(f"rewards must be a 1-D float tensor, got shape {tuple(rewards.shape)} {rewards.dtype}")
    if not torch.isfinite(rewards).all():
        raise ValueError("rewards contain NaN or inf")
    n = rewards.numel()
    ids, n_groups = _dense_group_ids(n, group_size, group_ids, rewards.device)
    work = rewards.double()

    counts = torch.zeros(n_groups, dtype=torch.float64, device=rewards.device)
    counts.index_add_(0, ids, torch.ones_like(work))
    sums = torch.zeros_like(counts).index_add_(0, ids, work)
    means = sums / counts
    centered = work - means[ids]

    group_max = torch.full_like(counts, -torch.inf).scatter_reduce_(0, ids, work, "amax")
    group_min = torch.full_like(counts, torch.inf).scatter_reduce_(0, ids, work, "amin")
    zero_variance = (group_max == group_min)[ids]

    if mode == "rloo":
        member_count = counts[ids]
        scale = torch.where(member_count > 1, member_count / (member_count - 1).clamp_min(1), 0.0)
        advantages = centered * scale
    else:
        advantages = centered

    if normalize_std and mode != "dr_grpo":
        if std_scope == "group":
            squares = torch.zeros_like(counts).index_add_(0, ids, centered * centered)
            std = (squares / (counts - 1).clamp_min(1)).sqrt()
            std = torch.where(counts > 1, std, 0.0)[ids]
        else:
            std = work.std() if n > 1 else work.new_zeros(())
        advantages = advantages / (std + eps)

    # Exactly zero, not rounding noise, for groups without signal.
    advantages = advantages.masked_fill(zero_variance, 0.0)
    return advantages.to(rewards.dtype), zero_variance
