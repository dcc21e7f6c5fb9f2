"""The chunked torch log-prob path against the naive fp32 log_softmax + gather reference.

Tolerances: tests/kernels/tolerances.py.
"""

import json

import pytest
import torch

import kernels.common as kernel_common
import kernels.logprob as logprob_module
from kernels import fused_linear_logprob, logprob_reference
from kernels.common import vocab_tile_width
from kernels.logprob import default_chunk_size, fits_one_tile
from tests.kernels.tolerances import TOL, relative_error

torch.set_num_threads(1)


def make_inputs(n, h, v, dtype, *, bias=False, seed=0, n_masked=0):
    gen = torch.Generator().manual_seed(seed)
    hidden = torch.randn(n, h, generator=gen) / h**0.25
    weight = torch.randn(v, h, generator=gen) / h**0.25
    b = torch.randn(v, generator=gen) * 0.5 if bias else None
    targets = torch.randint(0, v, (n,), generator=gen)
    if n_masked:
        targets[torch.randperm(n, generator=gen)[:n_masked]] = -100
    leaves = [hidden.to(dtype).requires_grad_(), weight.to(dtype).requires_grad_()]
    leaves.append(b.to(dtype).requires_grad_() if bias else None)
    return leaves, targets


def run_both(leaves, targets, *, temperature, entropy, chunk_size, entropy_weight=0.37):
    """Same scalar loss through the fused path and through the fp32 reference; return values and grads."""
    hidden, weight, bias = leaves
    out = fused_linear_logprob(hidden, weight, targets, bias=bias, temperature=temperature,
                               return_entropy=entropy, chunk_size=chunk_size, backend="torch")
    ref_leaves = [x.detach().float().requires_grad_() if x is not None else None for x in leaves]
    ref = logprob_reference(ref_leaves[0], ref_leaves[1], targets, bias=ref_leaves[2],
                            temperature=temperature, return_entropy=entropy)
    upstream = torch.linspace(-1.0, 2.0, targets.numel())

    def loss(lp, ent):
        total = (lp * upstream).sum()
        if ent is not None:
            total = total + entropy_weight * (ent * upstream.flip(0)).sum()
        return total

    wrt = [x for x in leaves if x is not None]
    ref_wrt = [x for x in ref_leaves if x is not None]
    grads = torch.autograd.grad(loss(*out), wrt)
    ref_grads = torch.autograd.grad(loss(*ref), ref_wrt)
    return out, ref, grads, ref_grads


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("temperature", [1.0, 0.6])
@pytest.mark.parametrize("entropy", [False, True])
@pytest.mark.parametrize("bias", [False, True])
def test_matches_reference(dtype, temperature, entropy, bias, monkeypatch):
    # V=389 is prime: with 64-column tiles the last vocabulary tile is ragged (5 columns); chunk 7
    # leaves a ragged last chunk of the 27 tokens with a target and makes grad_W accumulate across chunks.
    monkeypatch.setattr(kernel_common, "TILE_ELEMENTS", 7 * 64)
    assert vocab_tile_width(7, 389) == 64
    leaves, targets = make_inputs(33, 24, 389, dtype, bias=bias, n_masked=6)
    (lp, ent), (ref_lp, ref_ent), grads, ref_grads = run_both(
        leaves, targets, temperature=temperature, entropy=entropy, chunk_size=7)
    tol = TOL[dtype]
    assert lp.dtype == torch.float32 and lp.shape == targets.shape
    torch.testing.assert_close(lp, ref_lp, atol=tol["value_atol"], rtol=0)
    if entropy:
        assert ent.dtype == torch.float32
        torch.testing.assert_close(ent, ref_ent, atol=tol["value_atol"], rtol=0)
    else:
        assert ent is None
    for got, want in zip(grads, ref_grads):
        assert got.dtype == dtype
        assert relative_error(got, want) < tol["grad_rel"]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("temperature", [1.0, 0.6])
@pytest.mark.parametrize("entropy", [False, True])
@pytest.mark.parametrize("bias", [False, True])
def test_one_tile_path_matches_reference(dtype, temperature, entropy, bias):
    """Default sizes on a small problem: the whole [N, V] fits one tile, kept from forward to backward."""
    assert fits_one_tile(33, 389, default_chunk_size(33))
    leaves, targets = make_inputs(33, 24, 389, dtype, bias=bias, n_masked=5)
    (lp, ent), (ref_lp, ref_ent), grads, ref_grads = run_both(
        leaves, targets, temperature=temperature, entropy=entropy, chunk_size=None)
    tol = TOL[dtype]
    assert lp.dtype == torch.float32 and lp.shape == targets.shape
    torch.testing.assert_close(lp, ref_lp, atol=tol["value_atol"], rtol=0)
    if entropy:
        torch.testing.assert_close(ent, ref_ent, atol=tol["value_atol"], rtol=0)
    else:
        assert ent is None
    for got, want in zip(grads, ref_grads):
        assert got.dtype == dtype
        assert relative_error(got, want) < tol["grad_rel"]


def test_one_tile_and_chunked_paths_agree(monkeypatch):
    leaves, targets = make_inputs(20, 12, 101, torch.float32, bias=True, n_masked=3)
    whole, _, whole_grads, _ = run_both(leaves, targets, temperature=0.9, entropy=True, chunk_size=None)
    monkeypatch.setattr(kernel_common, "TILE_ELEMENTS", 64)
    assert not fits_one_tile(20, 101, 20)
    tiled, _, tiled_grads, _ = run_both(leaves, targets, temperature=0.9, entropy=True, chunk_size=None)
    for a, b in zip([*whole, *whole_grads], [*tiled, *tiled_grads]):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_one_tile_backward_twice_gives_the_same_gradient():
    """The kept log-softmax must not be overwritten by the first backward."""
    leaves, targets = make_inputs(10, 8, 30, torch.float32, n_masked=2)
    hidden, weight, _ = leaves
    lp, ent = fused_linear_logprob(hidden, weight, targets, return_entropy=True, backend="torch")
    loss = lp.sum() + 0.5 * ent.sum()
    first = torch.autograd.grad(loss, [hidden, weight], retain_graph=True)
    second = torch.autograd.grad(loss, [hidden, weight])
    for a, b in zip(first, second):
        torch.testing.assert_close(a, b, atol=0, rtol=0)


def test_gradcheck_double_one_tile():
    leaves, targets = make_inputs(5, 4, 11, torch.float64, bias=True, n_masked=1)

    def fn(h, w, b):
        return fused_linear_logprob(h, w, targets, bias=b, temperature=0.7, return_entropy=True, backend="torch")

    assert torch.autograd.gradcheck(fn, tuple(leaves), eps=1e-6, atol=1e-6)


def test_rows_without_a_target_skip_the_head(monkeypatch):
    """Only rows with a target reach the head's matmuls; the result still matches the reference."""
    seen = []
    real = logprob_module._WholeLinearLogprob.apply

    def spy(hidden, *args):
        seen.append(hidden.shape[0])
        return real(hidden, *args)

    monkeypatch.setattr(logprob_module._WholeLinearLogprob, "apply", spy)
    leaves, targets = make_inputs(30, 16, 70, torch.float32, bias=True, n_masked=12)
    (lp, ent), (ref_lp, ref_ent), grads, ref_grads = run_both(
        leaves, targets, temperature=0.8, entropy=True, chunk_size=None)
    assert seen == [18]
    torch.testing.assert_close(lp, ref_lp, atol=1e-5, rtol=0)
    torch.testing.assert_close(ent, ref_ent, atol=1e-5, rtol=0)
    for got, want in zip(grads, ref_grads):
        assert relative_error(got, want) < 1e-5
    assert torch.all(grads[0][targets == -100] == 0)


def test_masked_tokens_give_zero_and_no_gradient():
    leaves, targets = make_inputs(9, 8, 50, torch.float32)
    targets[[0, 4, 8]] = -100
    hidden, weight, _ = leaves
    lp, ent = fused_linear_logprob(hidden, weight, targets, return_entropy=True, backend="torch")
    assert torch.all(lp[[0, 4, 8]] == 0) and torch.all(ent[[0, 4, 8]] == 0)
    assert torch.all(lp[targets != -100] < 0)
    (lp.sum() + ent.sum()).backward()
    assert torch.all(hidden.grad[[0, 4, 8]] == 0)
    assert hidden.grad[1].abs().sum() > 0


def test_all_tokens_masked():
    leaves, targets = make_inputs(4, 8, 30, torch.float32)
    targets[:] = -100
    hidden, weight, _ = leaves
    lp, _ = fused_linear_logprob(hidden, weight, targets, backend="torch")
    lp.sum().backward()
    assert torch.all(lp == 0) and torch.all(hidden.grad == 0) and torch.all(weight.grad == 0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_single_token(dtype):
    leaves, targets = make_inputs(1, 16, 77, dtype, bias=True)
    (lp, ent), (ref_lp, ref_ent), grads, ref_grads = run_both(
        leaves, targets, temperature=1.3, entropy=True, chunk_size=None)
    tol = TOL[dtype]
    torch.testing.assert_close(lp, ref_lp, atol=tol["value_atol"], rtol=0)
    torch.testing.assert_close(ent, ref_ent, atol=tol["value_atol"], rtol=0)
    for got, want in zip(grads, ref_grads):
        assert relative_error(got, want) < tol["grad_rel"]


def test_chunk_size_does_not_change_results(monkeypatch):
    monkeypatch.setattr(kernel_common, "TILE_ELEMENTS", 64)
    leaves, targets = make_inputs(20, 12, 101, torch.float32, bias=True, n_masked=3)
    results = []
    for chunk in (1, 3, 20, None):
        (lp, ent), _, grads, _ = run_both(leaves, targets, temperature=0.9, entropy=True, chunk_size=chunk)
        results.append((lp, ent, *grads))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_tied_embeddings_gradient_flows_through_both_uses():
    """weight is both the input embedding and the LM head, as in Qwen3-0.6B."""
    gen = torch.Generator().manual_seed(3)
    vocab, hid = 61, 16
    tokens = torch.randint(0, vocab, (2, 9), generator=gen)
    inputs, targets = tokens[:, :-1], tokens[:, 1:].clone()
    targets[1, -2:] = -100
    mix = torch.randn(hid, hid, generator=gen) / hid**0.5
    base_weight = torch.randn(vocab, hid, generator=gen) * 0.5

    def run(fn, **kw):
        weight = base_weight.clone().requires_grad_()
        hidden = torch.tanh(torch.nn.functional.embedding(inputs, weight) @ mix)
        lp, _ = fn(hidden, weight, targets, temperature=0.8, **kw)
        lp.sum().backward()
        return lp, weight.grad

    lp, grad = run(fused_linear_logprob, chunk_size=5, backend="torch")
    ref_lp, ref_grad = run(logprob_reference)
    assert lp.shape == targets.shape
    torch.testing.assert_close(lp, ref_lp, atol=1e-5, rtol=0)
    assert relative_error(grad, ref_grad) < 1e-5
    # Rows of the embedding that were looked up get gradient from the embedding path too.
    assert grad[inputs[0, 0]].abs().sum() > 0


def test_gradcheck_double():
    leaves, targets = make_inputs(5, 4, 11, torch.float64, bias=True, n_masked=1)
    hidden, weight, bias = leaves

    def fn(h, w, b):
        lp, ent = fused_linear_logprob(h, w, targets, bias=b, temperature=0.7, return_entropy=True,
                                       chunk_size=2, backend="torch")
        return lp, ent

    assert torch.autograd.gradcheck(fn, (hidden, weight, bias), eps=1e-6, atol=1e-6)


def test_gradient_of_entropy_alone():
    """Backward with only the entropy used (logprob grad is None)."""
    leaves, targets = make_inputs(6, 8, 40, torch.float64)
    hidden, weight, _ = leaves

    def fn(h, w):
        return fused_linear_logprob(h, w, targets, return_entropy=True, chunk_size=4, backend="torch")[1]

    assert torch.autograd.gradcheck(fn, (hidden, weight), eps=1e-6, atol=1e-6)


def test_bad_inputs_are_named():
    hidden, weight = torch.randn(3, 4), torch.randn(10, 4)
    with pytest.raises(ValueError, match="targets shape"):
        fused_linear_logprob(hidden, weight, torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="hidden size"):
        fused_linear_logprob(hidden, torch.randn(10, 5), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="temperature"):
        fused_linear_logprob(hidden, weight, torch.zeros(3, dtype=torch.long), temperature=0.0)
    with pytest.raises(ValueError, match="dtype"):
        fused_linear_logprob(hidden, weight.double(), torch.zeros(3, dtype=torch.long))


def test_default_chunk_and_tile_sizes():
    """The default sizes: at most 4,096 tokens per chunk, [chunk, tile] within 2**24 logits."""
    assert default_chunk_size(16384) == 4096
    assert default_chunk_size(5) == 5
    assert default_chunk_size(4096) * vocab_tile_width(4096, 151_936) <= 2**24
    assert vocab_tile_width(1, 151_936) == 151_936  # one token: the whole vocabulary in one tile
    assert vocab_tile_width(4096, 100) == 100
    assert vocab_tile_width(3000, 151_936) % 64 == 0


def _peak_allocated_bytes(fn, trace_path) -> int:
    """Most bytes torch's CPU allocator held at once during fn(), above what it held before.

    Read from a torch.profiler memory trace: every allocation and free is an event carrying the
    allocator's running total, so this sees each tile, gradient and temporary torch allocates.
    """
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    prof.export_chrome_trace(str(trace_path))
    events = [e["args"] for e in json.loads(trace_path.read_text())["traceEvents"] if e.get("name") == "[memory]"]
    assert events, "the profiler recorded no allocation"
    baseline = events[0]["Total Allocated"] - events[0]["Bytes"]
    return max(e["Total Allocated"] for e in events) - baseline


def test_tiled_path_peak_memory_is_a_few_tiles(monkeypatch, tmp_path):
    """Measured: forward + backward hold the gradients plus a few [chunk, tile] tiles, not [N, V].

    TILE_ELEMENTS is lowered so that a CPU-test-sized problem (N x V = 4M logits) spans 64 tiles;
    the naive log_softmax + gather is measured the same way for scale.
    """
    n, hid, vocab = 512, 32, 8192
    gen = torch.Generator().manual_seed(0)
    hidden = torch.randn(n, hid, generator=gen).requires_grad_()
    weight = torch.randn(vocab, hid, generator=gen).requires_grad_()
    targets = torch.randint(0, vocab, (n,), generator=gen)

    def fused():
        lp, _ = fused_linear_logprob(hidden, weight, targets, backend="torch")
        lp.sum().backward()

    def naive():
        lp = torch.log_softmax(hidden @ weight.t(), -1).gather(-1, targets[:, None])
        lp.sum().backward()

    monkeypatch.setattr(kernel_common, "TILE_ELEMENTS", 2**16)
    assert not fits_one_tile(n, vocab, default_chunk_size(n))
    tile_bytes = n * vocab_tile_width(n, vocab) * 4
    grad_bytes = (n + vocab) * hid * 4
    fused_peak = _peak_allocated_bytes(fused, tmp_path / "fused.json")
    hidden.grad = weight.grad = None
    naive_peak = _peak_allocated_bytes(naive, tmp_path / "naive.json")
    assert fused_peak <= grad_bytes + 3 * tile_bytes, (fused_peak, grad_bytes, tile_bytes)
    assert naive_peak >= 2 * n * vocab * 4  # logits and their log-softmax at least
    assert fused_peak * 8 < naive_peak
