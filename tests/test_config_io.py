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
