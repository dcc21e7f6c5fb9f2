"""Memory-lean kernels for SFT and GRPO: fused linear log-prob, KL / policy loss, group advantages."""

from kernels.dispatch import resolve_backend
from kernels.logprob import fused_linear_logprob, logprob_reference

__all__ = ["fused_linear_logprob", "logprob_reference", "resolve_backend"]
