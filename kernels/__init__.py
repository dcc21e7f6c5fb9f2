"""Memory-lean kernels for SFT and GRPO: fused linear log-prob, KL / policy loss, group advantages."""

from kernels.advantage import group_advantages
from kernels.dispatch import resolve_backend
from kernels.kl import clipped_policy_objective, clipped_policy_objective_reference, kl_penalty
from kernels.logprob import fused_linear_logprob, logprob_reference

__all__ = [
    "clipped_policy_objective",
    "clipped_policy_objective_reference",
    "fused_linear_logprob",
    "group_advantages",
    "kl_penalty",
    "logprob_reference",
    "resolve_backend",
]
