"""Pick the torch or the Triton implementation of a kernel.

Order of precedence: the `backend=` argument of a call, then the environment variable
IMAGINE_KERNEL_BACKEND, then the default (Triton for CUDA tensors, torch elsewhere). Triton is only
allowed on CPU tensors when TRITON_INTERPRET=1, because then Triton runs its kernels in a Python
interpreter; that is how CI exercises the Triton code without a GPU. An explicit request that cannot be
honoured raises instead of silently falling back, so a benchmark never measures the wrong path.
"""

from __future__ import annotations

import functools
import os

import torch

ENV_VAR = "IMAGINE_KERNEL_BACKEND"
BACKENDS = ("torch", "triton")


@functools.cache
def triton_importable() -> bool:
    try:
        import triton  # noqa: F401
        import triton.language  # noqa: F401
    except Exception:
        return False
    return True


def triton_interpreter_enabled() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0").strip().lower() in ("1", "true", "yes", "on")


def resolve_backend(tensor: torch.Tensor, backend: str | None = None) -> str:
    """Return "torch" or "triton" for a kernel whose inputs live on `tensor`'s device."""
    requested = backend
    source = "backend argument"
    if requested is None:
        env_value = os.environ.get(ENV_VAR, "").strip().lower()
        if env_value:
            requested = env_value
            source = f"environment variable {ENV_VAR}"
    if requested is None:
        if tensor.is_cuda and triton_importable():
            return "triton"
        return "torch"
    if requested not in BACKENDS:
        raise ValueError(f"{source}: unknown kernel backend {requested!r}; expected one of {BACKENDS}")
    if requested == "triton":
        if not triton_importable():
            raise RuntimeError(f"{source} asks for the triton backend but triton cannot be imported")
        if not tensor.is_cuda and not triton_interpreter_enabled():
            raise RuntimeError(
                f"{source} asks for the triton backend on a {tensor.device.type} tensor; "
                "Triton needs CUDA tensors, or TRITON_INTERPRET=1 to interpret the kernels on CPU"
            )
    return requested
