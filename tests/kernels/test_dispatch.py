"""Backend choice: argument over environment over device default; impossible requests raise."""

import pytest
import torch

from kernels.dispatch import ENV_VAR, resolve_backend, triton_importable


def test_cpu_default_is_torch(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert resolve_backend(torch.zeros(1)) == "torch"


def test_environment_forces_torch_and_argument_wins(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "torch")
    assert resolve_backend(torch.zeros(1)) == "torch"
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    if triton_importable():
        assert resolve_backend(torch.zeros(1), "triton") == "triton"


def test_environment_triton_on_cpu_needs_interpreter(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "triton")
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(RuntimeError, match=ENV_VAR):
        resolve_backend(torch.zeros(1))
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    if triton_importable():
        assert resolve_backend(torch.zeros(1)) == "triton"


def test_unknown_backend_is_named(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    with pytest.raises(ValueError, match="cuda-magic"):
        resolve_backend(torch.zeros(1), "cuda-magic")
    monkeypatch.setenv(ENV_VAR, "Nope")
    with pytest.raises(ValueError, match=ENV_VAR):
        resolve_backend(torch.zeros(1))
