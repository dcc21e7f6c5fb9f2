"""The shared-prompt benchmark measures what it says: both layouts of one group through the same
model, with fewer positions and the same log-probs when the prompt is packed once."""

from __future__ import annotations

from imagine.bench import shared_prompt_bench as bench


def test_measure_runs_both_layouts_of_one_group_and_they_agree(monkeypatch, tmp_path):
    monkeypatch.setattr(bench, "PROMPT", 40)
    monkeypatch.setattr(bench, "LENGTHS", (5, 12))
    monkeypatch.setattr(bench, "MODELS", {"tiny": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                                                   "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 16}})
    r = bench.measure("tiny", 4)
    assert r["shared_tokens"] < r["repeated_tokens"]
    assert r["max_logp_diff"] < 1e-5 and r["repeated_seconds"] > 0 and r["shared_seconds"] > 0
    assert "| tiny | 4 |" in bench.report([r])
