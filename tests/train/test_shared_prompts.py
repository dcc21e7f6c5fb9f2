"""``train.share_prompts``: packing a prompt once with several completions changes how much the
update computes, not what: every completion token's log-prob and every gradient must equal those of
the one-row-per-completion layout, under both attention implementations that take the mask."""

from __future__ import annotations

import pytest
import torch

from imagine.models.tiny import TinyModelSpec, build_tiny_model
from imagine.rollout import Rollout
from imagine.train.model import CausalLMLogProb
from imagine.train.rollout_batch import micro_batches, policy_batch, shared_prompt_batch
from imagine.train.shared_prompt_attention import dense_mask

VOCAB = 61
PAD = 0


def rollouts() -> list[Rollout]:
    g = torch.Generator().manual_seed(3)

    def ids(n):
        return torch.randint(1, VOCAB, (n,), generator=g).tolist()

    # a one-token prompt too: its packed row has no prompt part, every position belongs to a completion
    long_prompt, short_prompt, one_token = ids(7), ids(2), ids(1)
    spec = [(long_prompt, 5), (short_prompt, 3), (long_prompt, 1), (long_prompt, 0), (short_prompt, 6),
            (long_prompt, 4), (one_token, 3), (one_token, 1)]
    out = []
    for k, (prompt, n) in enumerate(spec):
        completion = ids(n)
        out.append(Rollout([long_prompt, short_prompt, one_token].index(prompt), prompt, completion,
                           [-0.1 * (k + 1) - 0.01 * j for j in range(n)], "", "stop"))
    return out


ADVANTAGES = [0.5, -1.0, 1.5, 0.25, -0.75, 2.0, -0.5, 1.0]
IN_LOSS = [True, True, False, True, True, True, True, True]  # row 2 filtered: log-probs kept, no loss


def per_completion(model, mb) -> list[torch.Tensor]:
    logp, _ = model(mb.input_ids, mb.position_ids, mb.targets, segment_ids=mb.segment_ids)
    grid, completion = mb.per_sequence(logp), mb.completion
    return [grid[b][completion[b]] for b in range(len(mb.rows))]


def policy(attn: str) -> CausalLMLogProb:
    model = CausalLMLogProb(build_tiny_model(TinyModelSpec(), vocab_size=VOCAB, seed=5,
                                             attn_implementation="sdpa" if attn == "segmented" else attn))
    if attn == "segmented":
        model.use_shared_prompt_attention()
    return model


# segmented: the trainer's default with SDPA (prompt and completions attended apart, no [T, T] mask);
# sdpa and eager: a dense mask
@pytest.mark.parametrize("attn", ["segmented", "sdpa", "eager"])
def test_shared_prompt_log_probs_and_gradients_equal_one_row_per_completion(attn):
    rs, rows = rollouts(), [6, 7, 0, 1, 2, 3, 4, 5]  # the one-token prompt's row packed first
    plain_mb = policy_batch(rs, rows, ADVANTAGES, IN_LOSS, PAD)
    shared_mb = shared_prompt_batch(rs, rows, ADVANTAGES, IN_LOSS, PAD)
    assert shared_mb.input_ids.shape[0] == 3  # one packed row per prompt
    assert shared_mb.input_ids.numel() < plain_mb.input_ids.numel()

    results = {}
    for name, mb in (("plain", plain_mb), ("shared", shared_mb)):
        model = policy(attn)
        logps = dict(zip(mb.rows, per_completion(model, mb)))
        weights = torch.linspace(0.5, 2.0, 8)  # a different weight per completion: gradients tell rows apart
        sum(weights[i] * logps[i].sum() for i in rows).backward()
        results[name] = logps, {n: p.grad.clone() for n, p in model.named_parameters()}

    (plain_logp, plain_grads), (shared_logp, shared_grads) = results["plain"], results["shared"]
    for i in rows:
        assert shared_logp[i].shape == (len(rs[i].completion_ids),)
        torch.testing.assert_close(shared_logp[i], plain_logp[i], atol=2e-6, rtol=1e-5)
    for name, grad in plain_grads.items():
        torch.testing.assert_close(shared_grads[name], grad, atol=1e-6, rtol=1e-4)


def test_shared_prompt_per_token_tensors_sit_on_one_row_per_completion():
    rs = rollouts()
    mb = shared_prompt_batch(rs, [6, 7, 0, 1, 2, 3, 4, 5], ADVANTAGES, IN_LOSS, PAD)
    for row, i in enumerate(mb.rows):
        n = len(rs[i].completion_ids)
        assert mb.completion[row].sum() == n and bool(mb.completion[row, :n].all())
        assert mb.mask[row].sum() == (n if IN_LOSS[i] else 0)
        assert torch.equal(mb.advantages[row, :n], torch.full((n,), ADVANTAGES[i]))
        torch.testing.assert_close(mb.sampling_logp[row, :n], torch.tensor(rs[i].logprobs))
        # the packed targets the grid points at are this completion's tokens, in order
        assert mb.targets[mb.packed_row[row, :n], mb.packed_col[row, :n]].tolist() == rs[i].completion_ids
    # grid entries past a completion's end read as zero, as in the unpacked layout
    assert mb.per_sequence(torch.ones(mb.input_ids.shape))[~mb.completion].eq(0).all()
    assert int(mb.completion.sum()) == sum(len(r.completion_ids) for r in rs)
    # a completion never sees a sibling: no packed position attends across completions of one prompt
    allowed = dense_mask(mb.segment_ids)
    for row in range(len(mb.rows)):
        n = len(rs[mb.rows[row]].completion_ids)
        for other in range(len(mb.rows)):
            m = len(rs[mb.rows[other]].completion_ids)
            if other == row or n == 0 or m == 0 or mb.packed_row[row, 0] != mb.packed_row[other, 0]:
                continue
            r = mb.packed_row[row, 0]
            assert not allowed[r][mb.packed_col[row, :n]][:, mb.packed_col[other, :m]].any()


def test_shared_micro_batches_cover_every_completion_once_within_the_size():
    rs = rollouts()
    mbs = micro_batches(rs, [5, 1, 0, 4, 3, 2], ADVANTAGES, IN_LOSS, size=4, pad_id=PAD, share_prompts=True)
    assert sorted(i for mb in mbs for i in mb.rows) == list(range(6))
    assert all(len(mb.rows) <= 4 for mb in mbs)
    # grouped by prompt: the four long-prompt completions fill the first micro-batch, one packed row
    assert mbs[0].input_ids.shape[0] == 1 and sorted(mbs[0].rows) == [0, 2, 3, 5]


def test_packed_attention_refuses_what_it_does_not_implement():
    """A sliding window or attention sinks would be silently ignored: refuse them instead."""
    from imagine.train.shared_prompt_attention import layout_mask, shared_prompt_attention

    q, k = torch.randn(1, 2, 4, 8), torch.randn(1, 2, 4, 8)
    layout = layout_mask(torch.tensor([[0, 0, 1, 1]]))
    out, _ = shared_prompt_attention(None, q, k, k, layout, scaling=0.5, sliding_window=None)
    assert out.shape == (1, 4, 2, 8)
    for extra in ({"sliding_window": 2}, {"dropout": 0.1}):
        with pytest.raises(ValueError, match="share_prompts"):
            shared_prompt_attention(None, q, k, k, layout, scaling=0.5, **extra)
