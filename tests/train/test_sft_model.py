"""Model-side checks: packed rows do not leak attention, the tiktoken path is exact or refused,
config/data errors surface through ``train.py sft``, checkpoint retention keeps named steps."""

from __future__ import annotations

import json

import pytest
import torch

from imagine.models.fast_tokenizer import FastTokenizer, TokenizerMismatch, build_verified
from imagine.models.tiny import TinyModelSpec, build_tiny_model
from imagine.train.data import DataStats, conversation_segments_texts, make_sample, packed_micro_batch
from tests.conftest import TP


def _logprob_model(vocab: int):
    from imagine.train.model import CausalLMLogProb

    torch.manual_seed(0)
    return CausalLMLogProb(build_tiny_model(TinyModelSpec(), vocab_size=vocab, seed=1)).eval()


def test_packed_samples_do_not_attend_across_boundaries():
    torch.set_num_threads(1)
    model = _logprob_model(300)
    gen = torch.Generator().manual_seed(0)
    samples = []
    for n in (11, 7, 9):
        ids = torch.randint(0, 300, (n,), generator=gen).tolist()
        samples.append(make_sample(ids, [True] * n, max_len=64, overlong="error", line=1, where="", stats=DataStats()))
    packed = packed_micro_batch(samples)
    with torch.no_grad():
        together, _ = model(packed.input_ids, packed.position_ids, packed.targets)
        apart = []
        for s in samples:
            mb = packed_micro_batch([s])
            apart.append(model(mb.input_ids, mb.position_ids, mb.targets)[0])
        apart = torch.cat(apart)
        # the same row with positions running on is plain causal attention over all samples: it must differ
        leaky, _ = model(packed.input_ids, torch.arange(packed.input_ids.shape[1])[None], packed.targets)
    torch.testing.assert_close(together, apart, rtol=1e-5, atol=1e-5)
    assert (leaky[11:] - apart[11:]).abs().max() > 1e-3


def test_fast_tokenizer_matches_hf_on_the_data(tiny_tokenizer, sft_data):
    texts = conversation_segments_texts(sft_data, tiny_tokenizer)
    official = TP / "train_sft_messages.jsonl"
    if official.exists():
        texts += conversation_segments_texts(official, tiny_tokenizer)
    texts += ["  two  spaces\n\n\tand tabs", "café 'll 's ’t 12345 <think></think><|im_end|>"]
    fast, stats = build_verified(tiny_tokenizer, texts)
    assert stats["texts"] == len(texts)
    for t in texts[:5]:
        assert fast.encode(t) == tiny_tokenizer(t, add_special_tokens=False)["input_ids"]


def test_lines_tokenizer_merges_across_words_and_cuts_numbers_into_digit_pairs(tmp_path, sft_data):
    from transformers import AutoTokenizer

    from imagine.models.tokenizer import conversation_texts, train_tokenizer

    texts = list(conversation_texts(sft_data)) * 3
    train_tokenizer(texts, 400, tmp_path / "words")
    train_tokenizer(texts, 400, tmp_path / "lines", split="lines")
    words = AutoTokenizer.from_pretrained(str(tmp_path / "words"))
    lines = AutoTokenizer.from_pretrained(str(tmp_path / "lines"))
    n_words = sum(len(words(t, add_special_tokens=False)["input_ids"]) for t in texts)
    n_lines = sum(len(lines(t, add_special_tokens=False)["input_ids"]) for t in texts)
    assert n_lines < 0.8 * n_words, (n_lines, n_words)
    for text in texts[:20] + ["F0123 costs $4,512; at 10:08-13:52\n\nnext line 7"]:
        ids = lines(text, add_special_tokens=False)["input_ids"]
        assert lines.decode(ids) == text
        pieces = [lines.decode([i]) for i in ids]
        # a token holds one or two digits or none, and never a line break next to other text
        assert all((p.isdigit() and len(p) <= 2) or not any(c.isdigit() for c in p) for p in pieces), pieces
        assert all("\n" not in p or not p.strip("\n") for p in pieces), pieces
    # the fast path reproduces it exactly
    fast, _ = build_verified(lines, texts + ["  two  spaces\n\tand 12345 <think></think><|im_end|>"])
    assert fast.encode(texts[0]) == lines(texts[0], add_special_tokens=False)["input_ids"]


def test_fast_tokenizer_refuses_a_tokenizer_it_cannot_reproduce(tiny_tokenizer_dir, tiny_tokenizer, sft_data):
    from transformers import AutoTokenizer

    # Two merges compete in ' ":' ('":' is learned first, then ' "'). Swapping their ids leaves HF
    # on merge order (' ', '":') while tiktoken, ranking by id, now merges ' "' first.
    spec = json.loads((tiny_tokenizer_dir / "tokenizer.json").read_text())
    vocab = spec["model"]["vocab"]
    assert spec["model"]["merges"][:2] == [['"', ":"], ["Ġ", '"']]
    vocab['":'], vocab['Ġ"'] = vocab['Ġ"'], vocab['":']
    bad_dir = tiny_tokenizer_dir.parent / "reversed"
    bad_dir.mkdir(exist_ok=True)
    for f in tiny_tokenizer_dir.iterdir():
        (bad_dir / f.name).write_bytes(f.read_bytes())
    (bad_dir / "tokenizer.json").write_text(json.dumps(spec))
    bad = AutoTokenizer.from_pretrained(str(bad_dir))
    texts = conversation_segments_texts(sft_data, tiny_tokenizer) + ['key ":']
    with pytest.raises(TokenizerMismatch, match=f"disagree on text #{len(texts) - 1} at token \\d"):
        build_verified(bad, texts)
    spec["normalizer"] = {"type": "Lowercase"}
    (bad_dir / "tokenizer.json").write_text(json.dumps(spec))
    with pytest.raises(TokenizerMismatch, match="Lowercase"):
        FastTokenizer(AutoTokenizer.from_pretrained(str(bad_dir)))


def _run_train(argv, capsys):
    import train

    code = train.main(argv)
    return code, capsys.readouterr().err


def test_bad_config_key_is_named(capsys, tmp_path):
    code, err = _run_train(["sft", "--config", "configs/sft/tiny_cpu.yaml", "train.lrr=0.1"], capsys)
    assert code == 2 and "unknown config key 'train.lrr'" in err
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model:\n  init_from_config:\n    hidden_sise: 8\n")
    code, err = _run_train(["sft", "--config", str(cfg)], capsys)
    # a typo inside the optional section is named by its full dotted key, with the file
    assert code == 2 and "unknown config key 'model.init_from_config.hidden_sise'" in err and str(cfg) in err


def test_bad_data_line_is_named(capsys, tmp_path, tiny_tokenizer_dir, sft_data):
    data = tmp_path / "bad.jsonl"
    lines = sft_data.read_text().splitlines()[:3] + ['{"messages": "oops"}']
    data.write_text("\n".join(lines) + "\n")
    code, err = _run_train(["sft", "--config", "configs/sft/tiny_cpu.yaml", f"data.train_path={data}",
                            f"model.tokenizer={tiny_tokenizer_dir}", f"out_dir={tmp_path / 'run'}",
                            "data.tokenizer_backend=hf"], capsys)
    assert code == 2 and f"{data}:4: 'messages' must be a non-empty list" in err


def test_retention_keeps_named_and_newest(tmp_path):
    from imagine.train.checkpoint import STATE_FILE, apply_retention, complete_checkpoints, step_dir

    for s in (100, 200, 300, 400, 500):
        d = step_dir(tmp_path, s)
        d.mkdir()
        (d / STATE_FILE).write_text("{}")
    (tmp_path / ".tmp_step_00000600").mkdir()  # an interrupted write is not a checkpoint
    deleted = apply_retention(tmp_path, keep_last=2, keep_steps=[200])
    assert deleted == [100, 300]
    assert [s for s, _ in complete_checkpoints(tmp_path)] == [200, 400, 500]



def test_single_sample_row_takes_the_causal_fast_path_with_the_same_logprobs(monkeypatch):
    """A row holding one sample (positions 0..n-1) must reach SDPA without a mask (``is_causal``,
    which skips the blocks above the diagonal); a row holding several needs the block-diagonal mask.
    The sample's log-probs must not depend on which path computed them."""
    torch.set_num_threads(1)
    model = _logprob_model(300)
    gen = torch.Generator().manual_seed(1)
    samples = []
    for n in (13, 8):
        ids = torch.randint(0, 300, (n,), generator=gen).tolist()
        samples.append(make_sample(ids, [True] * n, max_len=64, overlong="error", line=1, where="", stats=DataStats()))
    calls = []
    real = torch.nn.functional.scaled_dot_product_attention

    def spy(*args, attn_mask=None, is_causal=False, **kwargs):
        calls.append((attn_mask is None, is_causal))
        return real(*args, attn_mask=attn_mask, is_causal=is_causal, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    alone = packed_micro_batch(samples[:1])
    packed = packed_micro_batch(samples[::-1])  # the 13-token sample second, after another one
    with torch.no_grad():
        fast, _ = model(alone.input_ids, alone.position_ids, alone.targets)
        fast_calls, calls[:] = list(calls), []
        masked, _ = model(packed.input_ids, packed.position_ids, packed.targets)
    layers = len(model.decoder_layers)
    assert fast_calls == [(True, True)] * layers
    assert calls == [(False, False)] * layers
    torch.testing.assert_close(fast, masked[8:], rtol=1e-5, atol=1e-5)


def test_packed_and_padded_batches_give_the_same_loss(sft_data, tiny_tokenizer):
    from imagine.train.data import build_dataset, rank_micro_batches

    torch.set_num_threads(1)
    samples, _ = build_dataset(sft_data, tiny_tokenizer, max_len=128, overlong="error")
    model = _logprob_model(len(tiny_tokenizer))
    totals = {}
    with torch.no_grad():
        for mode, capacity in (("pack", 256), ("pad", 256)):
            batches = rank_micro_batches(samples[:8], rank=0, world_size=1, mode=mode, tokens_per_micro_batch=capacity,
                                         pad_id=tiny_tokenizer.pad_token_id)
            totals[mode] = sum(float(model(b.input_ids, b.position_ids, b.targets)[0].sum()) for b in batches)
            totals[mode + "_batches"] = len(batches)
    assert totals["pack_batches"] < 8 and totals["pad_batches"] < 8  # several samples per micro-batch
    assert totals["pack"] == pytest.approx(totals["pad"], rel=1e-5)


def test_loss_goes_through_the_fused_kernel_not_the_lm_head(monkeypatch):
    import imagine.train.model as model_module

    torch.set_num_threads(1)
    model = _logprob_model(300)
    calls = []
    real = model_module.fused_linear_logprob
    monkeypatch.setattr(model_module, "fused_linear_logprob", lambda *a, **k: calls.append(1) or real(*a, **k))
    model.lm.lm_head.register_forward_hook(lambda *a: pytest.fail("full logits were computed"))
    ids = torch.randint(0, 300, (2, 12), generator=torch.Generator().manual_seed(0))
    targets = ids.roll(-1, dims=1)
    targets[:, -1] = -100
    logprobs, _ = model(ids, torch.arange(12).expand(2, 12), targets)
    assert calls == [1]
    hidden = model.lm.model(input_ids=ids).last_hidden_state
    reference = torch.log_softmax(hidden @ model.lm.lm_head.weight.t(), -1)
    expected = reference.gather(-1, targets.clamp(min=0)[..., None])[..., 0] * (targets != -100)
    torch.testing.assert_close(logprobs.view(2, 12), expected, rtol=1e-5, atol=1e-5)
