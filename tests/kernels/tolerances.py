"""Tolerances and the error measure shared by the kernel tests (torch path and Triton path).

Inputs are scaled so logits are O(1..5), like a trained LM head:
  fp32: logprob/entropy atol 1e-5; gradients relative L2 error 1e-5.
  bf16: logprob/entropy atol 5e-2 (bf16 logits carry ~3 significant digits); gradients relative L2
        error 3e-2 against the fp32 reference computed from the same bf16-rounded inputs.
"""

import torch

from kernels.common import relative_error

__all__ = ["TOL", "relative_error"]

TOL = {
    torch.float32: dict(value_atol=1e-5, grad_rel=1e-5),
    torch.bfloat16: dict(value_atol=5e-2, grad_rel=3e-2),
}

