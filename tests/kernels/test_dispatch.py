"""Backend choice: argument over environment over device default; impossible requests raise."""

import re

import pytest
import torch

from kernels import dispatch
from kernels.dispatch import ENV_VAR, resolve_backend


@pytest.fixture
def triton_present(monkeypatch):
    """Pretend triton imports, so the routing is tested whether or not this machine has it."""
    monkeypatch.setattr(dispatch, "triton_importable", lambda: True)


def test_cpu_default_is_torch(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert resolve_backend(torch.zeros(1)) == "torch"


def test_environment_forces_torch_and_argument_wins(monkeypatch, triton_present):
    monkeypatch.setenv(ENV_VAR, "torch")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert resolve_backend(torch.zeros(1)) == "torch"
    assert resolve_backend(torch.zeros(1), "triton") == "triton"


def test_environment_triton_on_cpu_needs_interpreter(monkeypatch, triton_present):
    monkeypatch.setenv(ENV_VAR, "triton")
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(RuntimeError, match=ENV_VAR):
        resolve_backend(torch.zeros(1))
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert resolve_backend(torch.zeros(1)) == "triton"


def test_triton_request_without_triton_raises(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    monkeypatch.setattr(dispatch, "triton_importable", lambda: False)
    with pytest.raises(RuntimeError, match="cannot be imported"):
        resolve_backend(torch.zeros(1), "triton")


def test_unknown_backend_is_named(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    with pytest.raises(ValueError, match="cuda-magic"):
        resolve_backend(torch.zeros(1), "cuda-magic")
    monkeypatch.setenv(ENV_VAR, "Nope")
    with pytest.raises(ValueError, match=ENV_VAR):
        resolve_backend(torch.zeros(1))


def test_bench_smoke(tmp_path):
    """The benchmark runs end to end on tiny shapes and writes a table with both implementations."""
    from kernels import bench

    out = tmp_path / "kernels.md"
    assert bench.main(["--quick", "--tokens", "16", "--dtypes", "fp32", "--repeats", "1", "--out", str(out)]) == 0
    rows = [line for line in out.read_text().splitlines() if line.startswith("| fp32 | 16 |")]
    assert len(rows) == 1
    cells = [c.strip() for c in rows[0].strip("|").split("|")]
    # Both implementations were timed (a skipped or failed run leaves text or empty cells) ...
    assert all(re.fullmatch(r"\d+\.\d\d", cells[i]) for i in (2, 3, 5, 6)), cells
    assert float(cells[4][:-1]) > 0 and float(cells[8][:-1]) > 0  # ... and neither took zero time
    assert float(cells[5]) <= float(cells[2]) and float(cells[6]) <= float(cells[3])  # min <= median
    assert cells[4].endswith("x") and cells[7].endswith("x") and cells[8].endswith("x")  # three ratios


def test_bench_profile_writes_a_trace_naming_the_kernel(tmp_path):
    """`python -m kernels.bench --profile`: one fused call, a trace json.load reads, a top-ops table."""
    import json

    from kernels import bench

    assert bench.main(["--profile", "--quick", "--tokens", "32", "--dtypes", "fp32",
                       "--profile-dir", str(tmp_path)]) == 0
    trace = tmp_path / "fused_linear_logprob.fp32.n32.v4096.h128.pt.trace.json"
    names = {event.get("name") for event in json.loads(trace.read_text())["traceEvents"]}
    assert "fused_linear_logprob" in names and "[memory]" in names
    assert "Self CPU" in (tmp_path / "fused_linear_logprob.fp32.n32.v4096.h128.top_ops.txt").read_text()
