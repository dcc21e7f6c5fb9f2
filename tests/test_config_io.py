"""Config loading (types, unknown keys, overrides) and the JSONL helpers (atomicity, torn tails)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from imagine.config import ConfigError, load_config, to_dict
from imagine.io import DataError, JsonlAppender, atomic_write_json, iter_jsonl, read_jsonl, write_jsonl


@dataclass
class Optim:
    lr: float = 1e-5
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])

    def validate(self):
        if self.lr <= 0:
            raise ValueError(f"lr: must be positive, got {self.lr}")
        if len(self.betas) != 2:
            raise ValueError("two betas are needed")


@dataclass
class Cfg:
    name: str = "run"
    steps: int = 10
    mode: Literal["sft", "grpo"] = "sft"
    seed: int | None = None
    optim: Optim = field(default_factory=Optim)

    def validate(self):
        if self.steps <= 0:
            raise ValueError("steps must be positive")


def test_yaml_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: a\noptim:\n  lr: 3e-4\n")
    cfg = load_config(Cfg, path, ["steps=5", "optim.betas=[0.8, 0.9]", "seed=null", "mode=grpo"])
    assert (cfg.name, cfg.steps, cfg.optim.lr, cfg.optim.betas, cfg.seed, cfg.mode) == ("a", 5, 3e-4, [0.8, 0.9], None, "grpo")
    assert to_dict(cfg)["optim"]["lr"] == 3e-4


@pytest.mark.parametrize("override, message", [
    ("optim.lrr=1", "unknown config key 'optim.lrr'"),
    ("steps=ten", "config key 'steps'"),
    ("mode=ppo", "config key 'mode'"),
    ("steps=0", "steps must be positive"),
    ("optim.lr=0", r"^optim\.lr: must be positive, got 0\.0 in overrides$"),  # the full dotted key
    ("optim.betas=[0.9]", r"^optim: two betas are needed in overrides$"),  # no field named: the section
    ("nokey", "not of the form key=value"),
])
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_config(Cfg, None, [override])


def test_bad_yaml_names_file_and_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("optim:\n  lr: fast\n")
    with pytest.raises(ConfigError, match=r"'optim.lr' in .*bad.yaml"):
        load_config(Cfg, path)
    path.write_text("typo: 1\n")
    with pytest.raises(ConfigError, match=r"unknown config key 'typo' in .*bad.yaml"):
        load_config(Cfg, path)


def test_errors_inside_an_optional_section_name_the_full_key_and_file(tmp_path):
    """``model.init_from_config`` is ``TinyModelSpec | None``: the union used to swallow the nested error
    and report only ``'model.init_from_config' matches none of ...``, so the user could not see which key."""
    from imagine.train.config import SFTConfig

    path = tmp_path / "sft.yaml"
    path.write_text("model:\n  init_from_config:\n    hiden_size: 3\n")
    with pytest.raises(ConfigError, match=r"unknown config key 'model\.init_from_config\.hiden_size' in .*sft\.yaml"):
        load_config(SFTConfig, path)
    path.write_text("model:\n  tokenizer: tok\n  init_from_config:\n    hidden_size: 3\n")
    with pytest.raises(ConfigError, match=r"'model\.init_from_config\.hidden_size' in .*sft\.yaml \+ overrides: "
                                          r"expected an integer, got 'abc'"):
        load_config(SFTConfig, path, ["model.init_from_config.hidden_size=abc"])
    with pytest.raises(ConfigError, match=r"'model\.init_from_config\.hidden_size' in overrides"):
        load_config(SFTConfig, None, ["model.init_from_config.hidden_size=abc"])
    cfg = load_config(SFTConfig, path, ["model.init_from_config.head_dim=8"])
    assert (cfg.model.init_from_config.hidden_size, cfg.model.init_from_config.head_dim) == (3, 8)


def test_a_union_of_several_types_lists_why_each_failed():
    @dataclass
    class Either:
        size: int | list[int] = 1

    with pytest.raises(ConfigError, match=r"'size' in overrides: 'big' matches none of .*expected an integer.*"
                                          r"expected a list"):
        load_config(Either, None, ["size=big"])


def test_jsonl_roundtrip_and_errors(tmp_path):
    path = tmp_path / "a.jsonl"
    write_jsonl(path, [{"a": 1}, {"b": [1, 2]}])
    assert read_jsonl(path) == [{"a": 1}, {"b": [1, 2]}]
    path.write_bytes(b'{"a": 1}\n{"b": \n')
    with pytest.raises(DataError, match=r"a.jsonl:2: invalid JSON"):
        read_jsonl(path)
    path.write_bytes(b'{"a": 1}\n{"b": 2')
    assert [r for _, r in iter_jsonl(path, skip_partial_tail=True)] == [{"a": 1}]


def test_appender_repairs_torn_tail(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_bytes(b'{"done": 1}\n{"done": 2}\n{"half": ')
    with JsonlAppender(path) as out:
        out.append({"done": 3})
    assert read_jsonl(path) == [{"done": 1}, {"done": 2}, {"done": 3}]


def test_atomic_write_leaves_no_temp(tmp_path):
    atomic_write_json(tmp_path / "m.json", {"x": 1})
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_an_override_inside_task_options_reaches_the_task():
    """The demo's ablation passes task.options.reward.reflection_bonus=0: a key inside the free-form
    options dict, which only the task knows how to check."""
    from imagine.config import from_dict
    from imagine.tasks.travelplanner.student.rl_task import TravelPlannerOptions
    from imagine.train.config import GRPOConfig

    cfg = load_config(GRPOConfig, "configs/grpo/demo.yaml", ["task.options.reward.reflection_bonus=0"])
    opts = from_dict(TravelPlannerOptions, cfg.task.options, "task.options")
    assert opts.reward.reflection_bonus == 0 and opts.prompt_version == "demo"
    with pytest.raises(ConfigError, match="task.options.reward.reflection_bonuss"):
        from_dict(TravelPlannerOptions, {**cfg.task.options, "reward": {"reflection_bonuss": 0}}, "task.options")
