"""Data pipeline: assistant-only loss, label shifting, packing layout, sampler resume, clear errors."""

from __future__ import annotations

import json

import pytest

from imagine.io import DataError
from imagine.train.data import (
    IGNORE_INDEX,
    DataStats,
    ResumableSampler,
    build_dataset,
    load_conversations,
    make_sample,
    pack_rows,
    packed_micro_batch,
    padded_micro_batches,
    rank_micro_batches,
    tokenize_conversation,
)
from tests.conftest import TP


def test_prompt_tokens_carry_no_loss(tiny_tokenizer):
    messages = [
        {"role": "system", "content": "You plan trips."},
        {"role": "user", "content": "Plan a 3-day trip from Austin to Reno."},
        {"role": "assistant", "content": "<think>short</think>\n[1, 2]"},
        {"role": "user", "content": "Again?"},
        {"role": "assistant", "content": "Yes."},
    ]
    ids, loss = tokenize_conversation(tiny_tokenizer, messages)
    assert ids == tiny_tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"]
    learned = tiny_tokenizer.decode([t for t, m in zip(ids, loss) if m])
    assert learned == "<think>short</think>\n[1, 2]<|im_end|>\nYes.<|im_end|>\n"
    sample = make_sample(ids, loss, max_len=1000, overlong="error", line=1, where="x", stats=DataStats())
    # targets[i] predicts ids[i+1]: exactly the assistant tokens are targets, nothing else
    assert [t for t in sample.targets if t != IGNORE_INDEX] == [t for t, m in zip(ids, loss) if m]
    assert sample.targets[-1] == IGNORE_INDEX


def test_overlong_policies(tiny_tokenizer):
    ids, loss = list(range(10)), [False] * 6 + [True] * 4
    stats = DataStats()
    assert make_sample(ids, loss, max_len=8, overlong="skip", line=3, where="f:3", stats=stats) is None
    with pytest.raises(DataError, match="f:3: 10 tokens exceed data.max_seq_len=8"):
        make_sample(ids, loss, max_len=8, overlong="error", line=3, where="f:3", stats=stats)
    left = make_sample(ids, loss, max_len=8, overlong="truncate_left", line=3, where="f:3", stats=stats)
    assert left.input_ids == list(range(2, 10)) and left.num_targets == 4
    # right truncation leaving no assistant token drops the sample (counted)
    assert make_sample(ids, loss, max_len=6, overlong="truncate", line=3, where="f:3", stats=stats) is None
    assert (stats.skipped_overlong, stats.truncated, stats.skipped_no_loss) == (1, 2, 1)


@pytest.mark.parametrize("line, error", [
    ('{"messages": []}', "'messages' must be a non-empty list"),
    ('{"text": "hi"}', "expected an object with a 'messages' list"),
    ('{"messages": [{"role": "user", "content": "hi"}]}', "no assistant message"),
    ('{"messages": [{"role": "robot", "content": "hi"}]}', "messages\\[0\\].role is 'robot'"),
    ('{"messages": [{"role": "assistant", "content": 3}]}', "messages\\[0\\].content must be a string"),
    ('{"messages": [', "invalid JSON"),
])
def test_bad_data_lines_are_named(tmp_path, line, error):
    good = json.dumps({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]})
    path = tmp_path / "d.jsonl"
    path.write_text(f"{good}\n{good}\n{line}\n")
    with pytest.raises(DataError, match=f"d.jsonl:3: .*{error}"):
        load_conversations(path)


def test_packing_layout_and_rank_split(sft_data, tiny_tokenizer):
    samples, stats = build_dataset(sft_data, tiny_tokenizer, max_len=128, overlong="error")
    assert stats.samples == 24 and stats.truncated == 0
    rows = pack_rows(samples[:6], 128)
    assert sorted(id(s) for r in rows for s in r) == sorted(id(s) for s in samples[:6])
    assert all(sum(len(s.input_ids) for s in r) <= 128 for r in rows)
    mb = packed_micro_batch(rows[0])
    pos = mb.position_ids[0].tolist()
    starts = [i for i, p in enumerate(pos) if p == 0]
    assert len(starts) == len(rows[0])  # positions restart at every sample
    # a sample's last position never predicts the next sample's first token
    assert all(mb.targets[0, s - 1].item() == IGNORE_INDEX for s in starts[1:])
    padded = padded_micro_batches(samples[:6], 256, pad_id=0)
    assert sum(b.num_tokens for b in padded) == sum(len(s.input_ids) for s in samples[:6])
    assert all(b.input_ids.numel() <= 256 for b in padded)
    # the ranks' shares of a step partition it
    shares = [rank_micro_batches(samples[:7], rank=r, world_size=2, mode="pack", tokens_per_micro_batch=128,
                                 pad_id=0) for r in range(2)]
    assert sum(b.num_tokens for s in shares for b in s) == sum(len(s.input_ids) for s in samples[:7])


def test_sampler_resumes_exactly():
    a = ResumableSampler(10, seed=3)
    first = a.take(7)
    state = a.state_dict()
    rest = a.take(25)
    b = ResumableSampler(10, seed=3)
    b.load_state_dict(state)
    assert b.take(25) == rest
    assert sorted(first + rest[:3]) == list(range(10))  # an epoch is a permutation
    with pytest.raises(DataError, match="same data"):
        ResumableSampler(11, seed=3).load_state_dict(state)


def test_official_sft_messages_tokenize(tiny_tokenizer):
    path = TP / "train_sft_messages.jsonl"
    if not path.exists():
        pytest.skip("shared TravelPlanner data not found")
    samples, stats = build_dataset(path, tiny_tokenizer, max_len=512, overlong="truncate_left")
    assert stats.lines == stats.samples == len(samples) > 0
    for s in samples:
        assert len(s.input_ids) <= 512 and s.num_targets > 0
        # left truncation keeps the answer: the targets end with the end-of-turn token and its newline
        end = tiny_tokenizer.convert_tokens_to_ids("<|im_end|>")
        assert [t for t in s.targets if t != IGNORE_INDEX][-2:] == [end, tiny_tokenizer.encode("\n")[0]]
