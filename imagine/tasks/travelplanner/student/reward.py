"""The IMAGINE GRPO reward (paper notes §7), every component and weight configurable.

    R = format_penalty                                    if the format check fails
    R = w_cs * r_commonsense + w_hard * r_hard + r_refl   otherwise

``r_commonsense`` is the share of the 8 commonsense constraints passed; ``r_hard`` the share of the
applicable hard constraints passed, 0 when the official gate (complete + sandbox-valid) is not met;
``r_refl`` is ``+reflection_bonus`` when the think span contains a reflection, else
``-reflection_bonus``. The constraints run in strict mode by default: the official loopholes (eval
spec §8) would otherwise pay a policy for learning to exploit them. Reported metrics always use the
official mode.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from imagine.tasks.travelplanner.evaluator.checks_batch import BatchChecker
from imagine.tasks.travelplanner.parse import DEFAULT_REFLECTION_PATTERN, parse_output
from imagine.tasks.travelplanner.schema import Query


@dataclass
class RewardConfig:
    format_penalty: float = -1.0
    commonsense_weight: float = 1.0
    hard_weight: float = 1.0
    reflection_bonus: float = 0.5
    reflection_pattern: str = DEFAULT_REFLECTION_PATTERN
    require_think: bool = True
    require_open_tag: bool = True
    strict: bool = True

    def validate(self) -> None:
        if self.reflection_bonus < 0:
            raise ValueError("reflection_bonus must be >= 0 (it is added or subtracted)")


@dataclass
class Reward:
    total: float
    format_ok: bool
    commonsense: float = 0.0
    hard: float = 0.0
    reflection: float = 0.0
    final_pass: bool = False
    error: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def compute_rewards(checker: BatchChecker, queries: Sequence[Query], texts: Sequence[str],
                    cfg: RewardConfig | None = None) -> list[Reward]:
    """Rewards of many rollouts; one checker keeps its lookup memo across the whole batch."""
    cfg = cfg or RewardConfig()
    out = []
    for query, text in zip(queries, texts, strict=True):
        parsed = parse_output(text, require_think=cfg.require_think, require_open_tag=cfg.require_open_tag,
                              reflection_pattern=cfg.reflection_pattern)
        if not parsed.format_ok:
            out.append(Reward(total=cfg.format_penalty, format_ok=False, error=parsed.error))
            continue
        result = checker.check_one(query, parsed.plan, strict=cfg.strict)
        r_cs = result.commonsense_ratio
        r_hard = result.hard_ratio
        r_refl = cfg.reflection_bonus if parsed.has_reflection else -cfg.reflection_bonus
        total = cfg.commonsense_weight * r_cs + cfg.hard_weight * r_hard + r_refl
        out.append(Reward(total=total, format_ok=True, commonsense=r_cs, hard=r_hard, reflection=r_refl,
                          final_pass=result.final_pass))
    return out
