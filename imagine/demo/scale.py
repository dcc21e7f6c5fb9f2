"""Every number that sets the demo's size, in one place, with the full and the quick preset.

Tuning the demo means editing these two presets; the stages only read them, so a number never hides
in a command line. ``None`` means "what the config file says" (the SFT and GRPO configs keep their own
step counts unless a preset overrides them).
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class DemoScale:
    # World (`imagine world synth`): few cities and short per-city tables keep prompts short, while
    # prices and missing routes vary enough that the prompt must be read.
    cities: int = 40
    states: int = 8
    restaurants: str = "4-6"
    attractions: str = "3-5"
    accommodations: str = "4-6"
    missing_route_share: float = 0.4  # drives are often unavailable: the prompt's transport lines matter
    # Dense flights (every city an airport, most pairs served most days), so most queries are feasible
    # and flying is often the only way; further `world synth` flags go here too.
    world_options: tuple[str, ...] = ("--airport-share", "1", "--served-pair-share", "0.9",
                                      "--flight-day-share", "0.9", "--cuisine-share", "0.2")
    # Queries (`imagine queries gen`): the cell mix (3-day trips at every level), the teacher's
    # training queries (infeasible ones included, as in the paper), the feasible held-out set.
    mix: str = "3=1"
    train_queries: int = 5000  # the scripted teacher writes 5,000 traces in seconds; more data, less memorising
    heldout_queries: int = 150
    # Copy warm-up (configs/sft/demo_warmup.yaml): its samples and steps (None: the config's). It
    # stands in for the pretraining the paper's Qwen3-8B arrives with.
    copy_samples: int = 20000
    copy_steps: int | None = None
    # A warm restart: the warm-up first runs this many steps on a schedule that decays fully, then
    # resumes on the config's (1e-3 to 5e-4 over copy_steps). Measured: 94% exact copies and 40.7%
    # after SFT, against 82% and 9.3% for one cosine cycle (docs/demo.md, round 4). None: one cycle.
    copy_restart_at: int | None = 600
    # SFT: total steps, and K, the step whose checkpoint GRPO starts from (`hf_step<K>`).
    sft_steps: int | None = None
    grpo_from_step: int = 1000
    # GRPO: optimizer steps of the main run and of the reflection-bonus ablation (None: the config's).
    grpo_steps: int | None = None
    ablation: bool = True
    # Held-out evaluation of the students: greedy once, then `eval_samples` samples at T=1 per query.
    eval_samples: int = 4
    eval_temperature: float = 1.0
    max_tokens: int = 320  # the longest demo answer is about 270 tokens
    # Extra KEY=VALUE overrides for train.py, for settings that only matter at one scale.
    copy_overrides: tuple[str, ...] = ()
    sft_overrides: tuple[str, ...] = ()
    grpo_overrides: tuple[str, ...] = ()

    def check(self) -> None:
        if self.sft_steps is not None and not 0 < self.grpo_from_step <= self.sft_steps:
            raise ValueError(f"grpo_from_step {self.grpo_from_step} must be in 1..sft_steps ({self.sft_steps})")
        if self.copy_steps is not None and self.copy_steps < 1:
            raise ValueError(f"copy_steps must be positive, got {self.copy_steps}")
        if self.copy_restart_at is not None and self.copy_steps is not None and not 0 < self.copy_restart_at < self.copy_steps:
            raise ValueError(f"copy_restart_at {self.copy_restart_at} must be in 1..copy_steps-1 ({self.copy_steps})")
        if self.copy_restart_at is not None and self.copy_restart_at < 1:
            raise ValueError(f"copy_restart_at must be positive, got {self.copy_restart_at}")
        if min(self.train_queries, self.heldout_queries, self.copy_samples, self.eval_samples, self.max_tokens) < 1:
            raise ValueError("query counts, copy_samples, eval_samples and max_tokens must be positive")


FULL = DemoScale()

# At most 5 minutes on 2 CPU cores: a smoke test of every stage, not a result.
QUICK = replace(
    FULL,
    cities=12, states=4,
    train_queries=48, heldout_queries=12,
    copy_samples=64, copy_steps=4, copy_restart_at=2,
    sft_steps=10, grpo_from_step=5,
    grpo_steps=2, ablation=False,
    eval_samples=4, max_tokens=64,
    copy_overrides=("train.samples_per_step=8", "train.warmup_steps=1", "checkpoint.every=4"),
    sft_overrides=("train.samples_per_step=4", "train.warmup_steps=2", "checkpoint.every=5"),
    grpo_overrides=("rollout.group_size=2", "rollout.prompts_per_step=2", "rollout.max_tokens=64",
                    "checkpoint.every=2"),
)

PRESETS = {"full": FULL, "quick": QUICK}
