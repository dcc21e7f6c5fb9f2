"""The step-range profiler: off by default, records exactly the asked steps, and its trace names the
fused log-prob op (what a user opens the trace to find)."""

import json

import pytest
import torch

from imagine.train.profiling import ProfileConfig, StepProfiler


def tiny_loop(profiler, steps, start_step=0):
    """A minimal SFT-like loop: tiny Qwen3, the fused log-prob head, SGD."""
    from imagine.models.tiny import TinyModelSpec, build_tiny_model
    from imagine.train.model import CausalLMLogProb

    torch.manual_seed(0)
    vocab = 97
    model = CausalLMLogProb(build_tiny_model(TinyModelSpec(num_hidden_layers=1), vocab_size=vocab, seed=1))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    ids = torch.randint(0, vocab, (2, 16))
    targets = ids.roll(-1, dims=1)
    targets[:, :5] = -100  # prompt rows
    positions = torch.arange(16).expand(2, 16)
    losses = []
    for step in range(start_step + 1, steps + 1):
        logprobs, _ = model(ids, positions, targets)
        loss = -logprobs.sum() / (targets != -100).sum()
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
        profiler.step(step)
    profiler.close()
    return losses


def names_in(trace_path):
    trace = json.loads(trace_path.read_text())
    return {event.get("name") for event in trace["traceEvents"]}


def test_profiled_two_steps_write_a_trace_naming_the_fused_logprob(tmp_path):
    profiler = StepProfiler(ProfileConfig(steps=[2, 3]), tmp_path, rank=0)
    tiny_loop(profiler, steps=4)
    trace, table = profiler.written
    assert trace == tmp_path / "profile" / "rank0.steps2-3.pt.trace.json"
    names = names_in(trace)
    assert "fused_linear_logprob" in names
    assert {"ProfilerStep#2", "ProfilerStep#3"} <= names
    assert not {"ProfilerStep#1", "ProfilerStep#4"} & names  # only the asked range is recorded
    assert any(name == "[memory]" for name in names)  # allocations are in the trace
    text = table.read_text()
    assert "Self CPU" in text and "aten::mm" in text


def test_off_by_default_writes_nothing(tmp_path):
    profiler = StepProfiler(ProfileConfig(), tmp_path)
    tiny_loop(profiler, steps=2)
    assert profiler.written == [] and not (tmp_path / "profile").exists()


def test_resume_inside_the_range_records_the_rest_and_close_flushes(tmp_path):
    """Resumed after step 2 with range [2, 5], stopped after step 3: step 3 is written by close()."""
    profiler = StepProfiler(ProfileConfig(steps=[2, 5]), tmp_path, rank=1, start_step=2)
    assert profiler.active
    tiny_loop(profiler, steps=3, start_step=2)
    trace, _ = profiler.written
    assert trace.name == "rank1.steps3-3.pt.trace.json"
    assert "ProfilerStep#3" in names_in(trace)


@pytest.mark.parametrize("steps", [[3], [3, 2], [0, 1], [1, 2, 3]])
def test_bad_ranges_are_named(steps):
    with pytest.raises(ValueError, match="profile.steps"):
        ProfileConfig(steps=steps).validate()
