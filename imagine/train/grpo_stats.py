"""Per-step GRPO statistics: sums on each rank, all-reduced once into one metrics record.

Everything is kept as sums (and maxima) so one collective per step combines the ranks exactly:
means are taken only after the reduction, and micro-averaged task metrics stay (num, den) pairs.
"""

from __future__ import annotations

from collections import defaultdict

import torch

from imagine.train import dist as D

# Where a step's time goes. With rollout.async_steps=1, "rollout" and "reward" ran in the background
# during the previous update (sharing the machine with it) and "wait" is how long the loop then waited
# for them; the step's rollout metrics are then those of the weights before the previous update, and
# logp_mismatch / is_weight include that one update's lag besides the kernels' mismatch.
TIMES = ("rollout", "reward", "train", "wait", "sync")


class Stats:
    """Sums of this rank's step statistics; ``summary`` all-reduces them into one metrics record."""

    def __init__(self):
        self.sums: dict[str, float] = defaultdict(float)
        self.counts: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
        self.maxima: dict[str, float] = defaultdict(float)

    def add_scores(self, rollouts, scores) -> None:
        s = self.sums
        for r, sc in zip(rollouts, scores, strict=True):
            s["n"] += 1
            s["reward"] += sc.reward
            for k, v in sc.components.items():
                s[f"reward/{k}"] += v
            for k, (num, den) in sc.counts.items():
                self.counts[f"rollout/{k}"][0] += num
                self.counts[f"rollout/{k}"][1] += den
            s["response_len"] += len(r.completion_ids)
            s["truncated"] += r.finish_reason == "length"
            self.maxima["response_len_max"] = max(self.maxima["response_len_max"], len(r.completion_ids))

    def add_advantages(self, adv, flat, group_size: int) -> None:
        self.sums["adv_abs"] += float(adv.abs().sum())
        self.sums["adv_sq"] += float((adv * adv).sum())
        self.sums["zero_variance_groups"] += float(flat.sum()) / group_size
        self.sums["groups"] += len(adv) / group_size
        self.maxima["adv_abs_max"] = max(self.maxima["adv_abs_max"], float(adv.abs().max()) if len(adv) else 0.0)

    def add_mismatch_tensors(self, trainer_logp, sampling_logp, mask) -> None:
        diff = torch.where(mask.bool(), (trainer_logp.float() - sampling_logp.float()).abs(), 0.0)
        self.sums["mismatch"] += float(diff.sum())
        self.sums["mismatch_tokens"] += float(mask.sum())
        self.maxima["logp_mismatch_max"] = max(self.maxima["logp_mismatch_max"], float(diff.max()) if diff.numel() else 0.0)

    def add_mismatch(self, rollouts, old: dict[int, torch.Tensor]) -> None:
        for i, r in enumerate(rollouts):
            k = len(r.completion_ids)
            if k:
                self.add_mismatch_tensors(old[i], torch.tensor(r.logprobs[:k]), torch.ones(k))

    def add_loss(self, loss, metrics: dict, entropy, mask) -> None:
        tokens = float(mask.sum())
        self.sums["loss"] += float(loss.detach())
        self.sums["stat_tokens"] += tokens
        for k, v in metrics.items():
            self.sums[f"m/{k}"] += float(v) * tokens
        if entropy is not None:
            self.sums["m/entropy"] += float(torch.where(mask.bool(), entropy.detach().view_as(mask).float(), 0.0).sum())

    def add_update(self, grad_norm: float, lr: float) -> None:
        self.sums["grad_norm"] += grad_norm
        self.sums["updates"] += 1
        self.lr = lr

    def summary(self, info, step: int, times: dict, seconds: float, sampled_tokens: int, updates: int) -> dict:
        keys = sorted(self.sums)
        ckeys = sorted(self.counts)
        mkeys = sorted(self.maxima)
        # Every rank has the same keys: the same task and loss produce them.
        summed = D.all_reduce_sum([self.sums[k] for k in keys] + [x for k in ckeys for x in self.counts[k]]
                                  + [float(sampled_tokens)] + [times[k] for k in TIMES],
                                  info.device)
        maxed = [D.all_reduce_max_float(self.maxima[k], info.device) for k in mkeys]
        s = dict(zip(keys, summed[: len(keys)]))
        rest = summed[len(keys):]
        n = max(s["n"], 1.0)
        rec = {"step": step, "reward": s["reward"] / n}
        rec.update({k: s[k] / n for k in keys if k.startswith("reward/")})
        for j, k in enumerate(ckeys):
            num, den = rest[2 * j], rest[2 * j + 1]
            rec[k] = num / den if den else None
        tokens = max(s.get("stat_tokens", 0.0), 1.0)
        rec.update({k[2:]: s[k] / tokens for k in keys if k.startswith("m/")})
        rec.update({
            "loss": s.get("loss", 0.0) / max(updates, 1), "grad_norm": s.get("grad_norm", 0.0) / max(updates, 1),
            "lr": getattr(self, "lr", 0.0),
            "adv_abs_mean": s["adv_abs"] / n, "adv_std": (s["adv_sq"] / n) ** 0.5,
            "zero_variance_group_share": s["zero_variance_groups"] / max(s["groups"], 1.0),
            "logp_mismatch_mean": s.get("mismatch", 0.0) / max(s.get("mismatch_tokens", 0.0), 1.0),
            "response_len_mean": s["response_len"] / n, "truncated_share": s["truncated"] / n,
            "rollouts": int(s["n"]),
        })
        rec.update(dict(zip(mkeys, maxed)))
        sampled, times_sum = rest[2 * len(ckeys)], rest[2 * len(ckeys) + 1:]
        world = info.world_size
        for name, total in zip(TIMES, times_sum):
            rec[f"time/{name}"] = total / world  # mean over ranks
        rec["sample_tokens_per_s"] = sampled / max(rec["time/rollout"], 1e-9)
        rec["seconds"] = seconds
        return rec
