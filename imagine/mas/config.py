"""Typed settings of a teacher run (loaded with :func:`imagine.config.load_config`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

BACKENDS = ("scripted", "openai", "vllm")
MISTAKES = ("repeated_restaurant", "wrong_city_restaurant", "invented_attraction", "missing_accommodation",
            "pricier_stay", "wrong_flight")


@dataclass
class RoleConfig:
    """One agent: which backend and model answers it, with what prompt, sampling and limits."""

    backend: Literal["scripted", "openai", "vllm"] = "scripted"
    prompt: str = ""  # prompt file: a name under imagine/tasks/travelplanner/student/prompts/ or a path
    model: str = "scripted"
    base_url: str = ""  # OpenAI-compatible endpoint, e.g. https://host/v1
    api_key_env: str = ""  # name of the environment variable holding the key (never the key itself)
    temperature: float = 0.6
    top_p: float = 0.95
    max_tokens: int = 8192
    extra_body: dict = field(default_factory=dict)  # provider-specific request fields
    # limits shared by every role on the same endpoint (the first role's values win)
    concurrency: int = 16
    rpm: float = 0.0  # requests per minute; 0 = unlimited
    timeout_s: float = 600.0
    connect_timeout_s: float = 10.0
    max_retries: int = 5
    backoff_s: float = 1.0
    backoff_max_s: float = 60.0
    # USD per million tokens, for the report's cost line
    price_in_per_mtok: float = 0.0
    price_out_per_mtok: float = 0.0
    # vllm backend only
    vllm_args: dict = field(default_factory=dict)

    def validate(self) -> None:
        if self.backend == "openai" and not self.base_url:
            raise ValueError("backend 'openai' needs base_url")
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")
        if self.timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {self.timeout_s}")
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {self.concurrency}")


@dataclass
class ScriptedConfig:
    """The model-free teacher: how often the Reasoner errs, how often each Judge misses an error."""

    mistake_rate: float = 0.5  # share of feasible queries whose first plan gets a mistake
    mistake_mix: dict[str, float] = field(default_factory=lambda: dict.fromkeys(MISTAKES, 1.0))
    judge_miss_rates: list[float] = field(default_factory=lambda: [0.3, 0.4])
    judge_false_alarm_rate: float = 0.05
    reflector_fix_rate: float = 0.95  # a flagged, fixable error is repaired with this probability
    latency_s: float = 0.0  # simulated time per call (demo of concurrency)
    # "concise" keeps the decisions (route, legs, stays, meals, total) and drops the solver's
    # alternatives and bookkeeping: shorter traces for a small student. "minimal" also drops the
    # prices, dates and sums (the demo's choice, see docs/demo.md).
    narration: Literal["full", "concise", "minimal"] = "full"

    def validate(self) -> None:
        unknown = sorted(set(self.mistake_mix) - set(MISTAKES))
        if unknown:
            raise ValueError(f"unknown mistake kinds {unknown} (known: {list(MISTAKES)})")
        for name in ("mistake_rate", "judge_false_alarm_rate", "reflector_fix_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1]")


@dataclass
class MasConfig:
    db: str = ""  # sandbox database directory (for reference rendering and evaluator verdicts)
    seed: int = 0
    queries_in_flight: int = 64  # queries processed concurrently
    reference_style: Literal["official", "compact", "sorted"] = "compact"
    prompt_version: str = "v1"
    reasoner: RoleConfig = field(default_factory=lambda: RoleConfig(prompt="reasoner"))
    judges: list[RoleConfig] = field(default_factory=lambda: [RoleConfig(prompt="judge"),
                                                              RoleConfig(prompt="judge")])
    reflector: RoleConfig = field(default_factory=lambda: RoleConfig(prompt="reflector"))
    scripted: ScriptedConfig = field(default_factory=ScriptedConfig)

    def validate(self) -> None:
        if len(self.judges) != 2:
            raise ValueError(f"the IMAGINE teacher has exactly two judges, got {len(self.judges)}")
        if self.queries_in_flight < 1:
            raise ValueError("queries_in_flight must be >= 1")
