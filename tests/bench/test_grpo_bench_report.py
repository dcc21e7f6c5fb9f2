"""The GRPO benchmark's table: async rows are reported apart from the on-policy comparison, a failed
run is a visible row, not a crash that loses the other runs' numbers, and each workload is its own
section."""

from __future__ import annotations

import json

from imagine.bench.grpo_bench import fastest, main, report


def run(step, rollout, update, **extra):
    return {"seconds_per_step": step, "rollout_seconds": rollout, "update_seconds": update, "peak_rss_mib": 1000.0,
            "sample_tokens_per_s": 6000.0, "sync_seconds": 0.02, **extra}


def letters(rows: dict, steps: int = 5, **extra) -> dict:
    return {"letters": {"date": "2026-11-30", "steps": steps, "rounds": {k: [v] for k, v in rows.items()}, **extra}}


def section(text: str, title: str) -> str:
    return text.split(f"## {title}", 1)[1].split("\n## ", 1)[0]


def test_report_keeps_async_rows_out_of_the_on_policy_claims():
    text = report(letters({"imagine-vllm": run(4.0, 2.0, 2.0), "imagine-vllm-async": run(3.0, 2.5, 2.5, wait_seconds=0.3),
                           "imagine-torch": {"error": "Traceback: boom"}, "trl": run(8.0, 4.0, 4.0)}))
    row = next(line for line in text.splitlines() if line.startswith("| imagine-vllm-async |"))
    assert row.split("|")[8].strip() == "0.30"  # waited
    assert "trl / imagine-vllm = 2.00x" in text and "update alone = 4.00x" in text
    async_line = next(line for line in text.splitlines() if "trl / imagine-vllm-async" in line)
    assert "off-policy" in async_line and "update alone" not in async_line
    assert "| imagine-torch | fp32 | failed |" in text and "imagine-torch failed" in text
    assert "/ TorchEngine" not in text  # no sampling ratio against a failed baseline


def test_the_faster_round_is_reported_with_the_slowest_beside_it():
    rounds = [run(5.0, 2.5, 2.5), {"error": "killed"}, run(4.0, 2.0, 2.0)]
    best = fastest(rounds)
    assert best["seconds_per_step"] == 4.0 and best["slowest_seconds_per_step"] == 5.0 and best["rounds"] == 2
    assert fastest([{"error": "x"}, {"error": "y"}]) == {"error": "x"}
    text = report({"letters": {"steps": 5, "rounds": {"imagine-vllm": rounds, "trl": [run(8.0, 4.0, 4.0)]}}})
    assert "| imagine-vllm | fp32 | 4.00 | 5.00 |" in text and "ran 3 times" in text


def test_step_ratio_is_against_the_faster_trl_row_of_the_same_precision():
    text = report(letters({"imagine-vllm-compiled-bf16": run(3.0, 1.5, 1.5, warmup_seconds=80.0),
                           "trl-bf16": run(9.0, 5.0, 4.0), "trl-bf16-eager": run(7.5, 5.0, 2.5),
                           "trl": run(6.0, 3.0, 3.0)}, steps=8))
    assert "trl-bf16-eager / imagine-vllm-compiled-bf16 = 2.50x" in text  # not trl-bf16's 3.00x, nor fp32 trl
    row = next(line for line in text.splitlines() if line.startswith("| imagine-vllm-compiled-bf16 |"))
    assert row.split("|")[5].strip() == "80"  # warm-up seconds, shown rather than hidden
    assert "median of steps 4..8" in text


def test_each_workload_is_its_own_section_and_a_skipped_one_says_why():
    sections = {**letters({"imagine-vllm": run(4.0, 2.0, 2.0), "imagine-torch": run(6.0, 4.0, 2.0),
                           "trl": run(8.0, 4.0, 4.0)}, note="a lint run overlapped"),
                "travelplanner": {"date": "2026-12-01", "steps": 8,
                                  "rounds": {"imagine-vllm": [run(5.0, 2.0, 3.0, sample_tokens_per_s=6000.0)],
                                             "imagine-torch": [run(12.0, 9.0, 3.0, sample_tokens_per_s=1000.0)],
                                             "trl": [run(20.0, 12.0, 8.0)]}}}
    text = report(sections)
    assert text.index("## TravelPlanner") < text.index("## Letters")
    tp, lt = section(text, "TravelPlanner"), section(text, "Letters")
    assert "Ran on 2026-12-01" in tp and "trl / imagine-vllm = 4.00x" in tp and "TorchEngine = 6.0x" in tp
    assert "trl / imagine-vllm = 2.00x" in lt and "TorchEngine = 1.0x" in lt and "a lint run overlapped" in lt
    assert "a lint run overlapped" not in tp
    skipped = report({"travelplanner": {"date": "2026-12-01", "steps": 8, "skipped": "needs `make demo`'s outputs"}})
    assert "Not run: needs `make demo`'s outputs." in skipped and "| run |" not in skipped
    assert "Ran on" not in section(skipped, "TravelPlanner")


def test_the_table_can_be_rewritten_from_a_runs_rounds(tmp_path):
    rounds = {"imagine-vllm": [run(4.5, 2.0, 2.5), run(4.0, 2.0, 2.0)], "trl": [run(8.0, 4.0, 4.0), {"error": "x"}]}
    # an older grpo_rounds.json: the letters rows alone, not yet in sections
    (tmp_path / "rounds.json").write_text(json.dumps(rounds))
    assert main(["--from-rounds", str(tmp_path / "rounds.json"), "--out", str(tmp_path), "--steps", "8"]) == 0
    text = (tmp_path / "grpo.md").read_text()
    assert "| imagine-vllm | fp32 | 4.00 | 4.50 |" in text and "ran 2 times" in text and "trl / imagine-vllm = 2.00x" in text
    assert "## Letters" in text and "median of steps 4..8" in text


def test_a_workload_without_its_inputs_is_skipped_and_the_saved_sections_are_kept(tmp_path):
    saved = letters({"imagine-vllm": run(4.0, 2.0, 2.0), "trl": run(8.0, 4.0, 4.0)})
    (tmp_path / "grpo_rounds.json").write_text(json.dumps(saved))
    no_demo = ["--workloads", "travelplanner", "--demo-dir", str(tmp_path / "no-demo"), "--out", str(tmp_path)]
    assert main(no_demo) == 0
    data = json.loads((tmp_path / "grpo_rounds.json").read_text())
    assert data["letters"] == saved["letters"] and "missing" in data["travelplanner"]["skipped"]
    text = (tmp_path / "grpo.md").read_text()
    assert "trl / imagine-vllm = 2.00x" in text and "Not run: needs `make demo`'s outputs; missing" in text
    # numbers measured on a machine that had the demo survive a run on one that has not
    measured = {"date": "2026-11-30", "steps": 8, "rounds": {"imagine-vllm": [run(5.0, 2.0, 3.0)],
                                                             "trl": [run(20.0, 9.0, 11.0)]}}
    (tmp_path / "grpo_rounds.json").write_text(json.dumps({**saved, "travelplanner": measured}))
    assert main(no_demo) == 0
    assert json.loads((tmp_path / "grpo_rounds.json").read_text())["travelplanner"] == measured
    assert "trl / imagine-vllm = 4.00x" in section((tmp_path / "grpo.md").read_text(), "TravelPlanner")


def test_trl_reads_the_workloads_settings_from_imagines_config():
    import pytest

    from imagine.bench.grpo_bench import ROOT, WORKLOADS, trl_settings
    from imagine.config import load_config
    from imagine.train.config import GRPOConfig

    cfg = load_config(GRPOConfig, ROOT / WORKLOADS["travelplanner"].config)
    got = trl_settings(cfg)
    assert got["per_device_train_batch_size"] == cfg.rollout.prompts_per_step * cfg.rollout.group_size == 64
    assert got["num_generations"] == 8 and got["max_completion_length"] == 320 and got["temperature"] == 0.7
    assert got["learning_rate"] == 5e-5 and got["beta"] == 0.0 and got["mask_truncated_completions"] is True
    letters = load_config(GRPOConfig, ROOT / WORKLOADS["letters"].config, ["train.lr=1e-5", "rollout.group_size=8"])
    assert trl_settings(letters)["mask_truncated_completions"] is False and trl_settings(letters)["learning_rate"] == 1e-5
    for unmatched in ("train.epochs=2", "rollout.dynamic_sampling=true", "rollout.overlong=penalize"):
        with pytest.raises(ValueError, match="one on-policy update a step"):
            trl_settings(load_config(GRPOConfig, ROOT / WORKLOADS["letters"].config, [unmatched]))


def test_a_sections_settings_are_read_from_its_config_as_run_and_shown_with_its_numbers(tmp_path):
    """Saved beside the rounds, so the text cannot drift from the numbers when the config file changes."""
    from imagine.bench.grpo_bench import build_letters_model, run_settings

    model = build_letters_model(tmp_path)
    got = run_settings("configs/grpo/tiny_cpu.yaml", (f"model.path={model}", "task.name=letters",
                                                      "task.options={prompts: 3}", "rollout.group_size=6",
                                                      "rollout.temperature=0.7"))
    assert got["group_size"] == 6 and got["temperature"] == 0.7 and got["attention"] == "sdpa"
    assert got["prompt_tokens"]["prompts"] == 3 and 0 < got["prompt_tokens"]["min"] <= got["prompt_tokens"]["max"]
    text = report(letters({"imagine-vllm": run(4.0, 2.0, 2.0), "trl": run(8.0, 4.0, 4.0)}, settings=got))
    assert "x G=6, T=0.7," in text and "The task's 3 prompts:" in text and "`configs/grpo/tiny_cpu.yaml`" in text
    assert "Settings as run" not in report(letters({"imagine-vllm": run(4.0, 2.0, 2.0)}))  # older rounds: none
    assert got["engine_dtype"] == "auto" and "engines sampling in the update's precision" in text
    older = {k: v for k, v in got.items() if k != "engine_dtype"}  # saved before rollout.dtype existed
    assert "bf16 for these fp32 checkpoints" in report(letters({"imagine-vllm": run(4.0, 2.0, 2.0)}, settings=older))


def test_a_section_names_the_cpu_it_ran_on():
    """bf16 is native on some CPUs and emulated on others: rows from two machines are not comparable."""
    text = report(letters({"imagine-vllm": run(4.0, 2.0, 2.0)}, cpu="AMD EPYC (2 cores, AVX2, no native bf16)"))
    assert "Ran on 2026-11-30 on AMD EPYC (2 cores, AVX2, no native bf16)." in text
    assert "on a CPU the section did not record" in report(letters({"imagine-vllm": run(4.0, 2.0, 2.0)}))


def test_trl_attention_follows_the_config_unless_a_row_names_one():
    from imagine.bench.grpo_bench import ROOT, WORKLOADS, trl_attention
    from imagine.config import load_config
    from imagine.train.config import GRPOConfig

    path = ROOT / WORKLOADS["letters"].config
    assert trl_attention(load_config(GRPOConfig, path, ["model.attn_implementation=eager"])) == "eager"
    assert trl_attention(load_config(GRPOConfig, path, ["model.attn_implementation=auto"])) == "sdpa"  # on CPU
    assert WORKLOADS["letters"].runs["trl-bf16-eager"].attn == "eager" and not WORKLOADS["letters"].runs["trl"].attn


def test_zero_rounds_or_too_few_steps_are_refused_before_anything_runs(tmp_path, capsys):
    import pytest

    for bad in (["--rounds", "0"], ["--steps", "3"]):
        with pytest.raises(SystemExit) as exc:
            main([*bad, "--out", str(tmp_path)])
        assert exc.value.code == 2
    assert "--rounds must be at least 1" in capsys.readouterr().err and not (tmp_path / "grpo.md").exists()
