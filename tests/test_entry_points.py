"""Every command turns bad input into one line on stderr and exit code 2, never a traceback.

Each case runs the real command in a subprocess, because what is under test is the ``except`` at the
top of each entry point: a user error class that is not derived from ``imagine.errors.UserError``
would escape it and exit 1 with a traceback.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT


def _run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *argv], cwd=ROOT, capture_output=True, text=True, timeout=300)


def _bad_mas_config(tmp_path):
    (tmp_path / "mas.yaml").write_text("scripted:\n  mistake_rat: 0.3\n")
    argv = ["-m", "imagine", "mas", "run", "--config", str(tmp_path / "mas.yaml"), "--queries", "q.jsonl",
            "--out", str(tmp_path / "out")]
    return argv, ["imagine mas: error: unknown config key 'scripted.mistake_rat'", "mas.yaml"]


def _missing_database_file(tmp_path):
    # add_flights raised FileNotFoundError, which the command caught by a separate, hand-kept name.
    argv = ["-m", "imagine", "world", "synth", "--add-flights-to", str(tmp_path / "nodb"), "--out", str(tmp_path / "o")]
    return argv, ["imagine world: error:", "nodb/accommodations/clean_accommodations_2022.csv: missing database file"]


def _bad_argument(tmp_path):
    argv = ["-m", "imagine", "queries", "gen", "--db", str(tmp_path), "--n", "0", "--out", str(tmp_path / "q")]
    return argv, ["imagine queries: error: --n must be >= 1"]


def _bad_train_config(tmp_path):
    (tmp_path / "sft.yaml").write_text("model:\n  init_from_config:\n    hiden_size: 3\n")
    argv = ["train.py", "sft", "--config", str(tmp_path / "sft.yaml")]
    return argv, ["train.py sft: error: unknown config key 'model.init_from_config.hiden_size'", "sft.yaml"]


def _missing_rollout_queries(tmp_path):
    argv = ["rollout.py", "--model", str(tmp_path / "no_model"), "--db", str(tmp_path / "no_db"),
            "--queries", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "r.jsonl"), "--engine", "torch"]
    return argv, ["rollout.py: error:", "missing.jsonl: cannot read"]


@pytest.mark.parametrize("case", [_bad_mas_config, _missing_database_file, _bad_argument, _bad_train_config,
                                  _missing_rollout_queries], ids=lambda f: f.__name__.strip("_"))
def test_bad_input_exits_2_with_the_message(case, tmp_path):
    argv, expected = case(tmp_path)
    proc = _run(*argv)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    for text in expected:
        assert text in proc.stderr


def test_every_user_facing_error_derives_from_the_one_base():
    from imagine.config import ConfigError
    from imagine.errors import UserError
    from imagine.io import DataError
    from imagine.models.fast_tokenizer import TokenizerMismatch

    for cls in (ConfigError, DataError, TokenizerMismatch):
        assert issubclass(cls, UserError), cls
        assert issubclass(cls, ValueError), cls  # callers that catch ValueError keep working
