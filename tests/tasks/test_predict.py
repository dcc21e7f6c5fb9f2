"""``imagine predict``: official split rows in, a leaderboard submission out (and metrics on validation)."""

from __future__ import annotations

import csv
import json

import orjson
import pytest

from imagine.cli import main
from imagine.io import DataError
from imagine.rollout import Rollout
from imagine.tasks.travelplanner.benchmark import predict_cli
from imagine.tasks.travelplanner.benchmark.predict import PredictSettings, raw_path, read_submission
from imagine.tasks.travelplanner.benchmark.predict import run as predict_rows
from imagine.tasks.travelplanner.benchmark.splits import load_split
from imagine.tasks.travelplanner.benchmark.submission import check_line
from imagine.tasks.travelplanner.schema import PLAN_KEYS, annotated_plan
from tests.conftest import TP, TP_DB, require_shared

HIDDEN = ("date", "local_constraint", "budget")  # what the test split withholds (besides the plans)


class StubTokenizer:
    """Token ids are code points, so the stub engine can read the prompt back."""

    chat_template = "user turn only"

    def apply_chat_template(self, messages, add_generation_prompt=True, tokenize=True):
        return [ord(c) for c in messages[-1]["content"]]


class StubEngine:
    """Answers each query with its annotated plan in the trained output shape."""

    def __init__(self, answers: dict[str, str]):
        self.tokenizer = StubTokenizer()
        self.answers = answers
        self.prompts_seen = 0

    def generate(self, prompts, sampling):
        out = []
        for i, ids in enumerate(prompts):
            query = "".join(map(chr, ids)).rsplit("***** Query *****\n", 1)[1].strip()
            text = self.answers[query]
            out.append(Rollout(i, list(ids), list(range(len(text) // 4)), [], text, "stop"))
        self.prompts_seen += len(prompts)
        return out


@pytest.fixture(scope="module")
def train_records():
    require_shared()
    return [orjson.loads(x) for x in (TP / "train.jsonl").read_bytes().splitlines() if x.strip()]


def _answers(records) -> dict[str, str]:
    return {r["query"]: "<think>\nThe reference lists everything needed.\n</think>\n```json\n"
                        + json.dumps(annotated_plan(r)) + "\n```" for r in records}


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_annotated_plans_through_the_whole_path_pass_everything(train_records, tmp_path, monkeypatch, capsys):
    """Parsing, postprocessing and writing lose nothing: the annotated plans score 100% final pass."""
    stub = StubEngine(_answers(train_records))
    monkeypatch.setattr(predict_cli, "build_engine", lambda *a, **k: stub)
    out = tmp_path / "sub.jsonl"
    rc = main(["predict", "--split", str(TP / "train.jsonl"), "--model", "unused", "--max-model-len", "10000000",
               "--out", str(out), "--db", str(TP_DB), "--json", str(tmp_path / "m.json"), "--chunk", "16"])
    assert rc == 0
    captured = capsys.readouterr()
    assert "Final Pass Rate" in captured.out and "hard" in captured.out  # the level x days table too
    assert "warning" not in captured.err  # the shared flights subset holds every train flight
    record = json.loads((tmp_path / "m.json").read_text())
    assert record["metrics"]["Final Pass Rate"] == 1.0 and record["metrics"]["Delivery Rate"] == 1.0
    assert record["suspicious"]["empty"] == [] and record["suspicious"]["foreign_cities"] == []
    assert all(v == 1.0 for cell in record["metrics"]["by_level_days"].values() for m in cell.values()
               for v in m.values())
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["idx"] for x in lines] == list(range(1, 46))
    for line, rec in zip(lines, train_records):
        days = int(rec["days"])
        assert list(line) == ["idx", "query", "plan"] and line["query"] == rec["query"]
        assert len(line["plan"]) == days
        assert line["plan"] == annotated_plan(rec)[:days]  # the annotations are already in the official format
    assert stub.prompts_seen == 45


def _test_like(records, path):
    """The official test column set, with the structured fields the test split hides left empty."""
    columns = [c for c in records[0] if c != "annotated_plan"]
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, columns)
        writer.writeheader()
        for r in records:
            writer.writerow({c: ("" if c in HIDDEN else r[c]) for c in columns})
    return path


def test_test_like_split_on_a_tiny_model(train_records, tmp_path, capsys):
    from tests.helpers import tiny_model_and_tokenizer

    _, tok = tiny_model_and_tokenizer(tmp_path)
    # The tiny tokenizer has no chat template (apply_chat_template would raise); give it the simplest one.
    tok.chat_template = "{% for m in messages %}<|im_start|>{{ m['content'] }}<|im_end|>{% endfor %}<think>"
    tok.save_pretrained(tmp_path / "m")
    split = _test_like([train_records[0], train_records[15]], tmp_path / "test.csv")  # a 3-day and a 5-day row
    rows = load_split(split)
    assert all(r.query_record() is None for r in rows)  # test rows: no structured query is formed
    out = tmp_path / "sub.jsonl"
    rc = main(["predict", "--split", str(split), "--model", str(tmp_path / "m"), "--engine", "torch",
               "--max-tokens", "6", "--max-model-len", "100000", "--out", str(out)])
    assert rc == 0
    err = capsys.readouterr().err
    assert "test: query and reference only" in err and "tokens/s" in err and "empty plans: 2/2" in err
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["idx"] for x in lines] == [1, 2]  # no idx column: row order
    for line, row in zip(lines, rows):
        assert check_line(line, row.idx, row.query, row.days) is None
    raw = [json.loads(x) for x in raw_path(out).read_text().splitlines()]
    assert [r["tokens"] for r in raw] == [6, 6] and all(r["empty_plan_reason"] for r in raw)


def test_resume_gives_the_same_file(train_records, tmp_path):
    split = _write_jsonl(tmp_path / "split.jsonl", [
        {k: v for k, v in r.items() if k != "annotated_plan"} for r in train_records[:10]])
    rows = load_split(split)
    settings = PredictSettings(chunk=3)
    whole = tmp_path / "whole.jsonl"
    predict_rows(rows, StubEngine(_answers(train_records)), whole, settings, log=lambda m: None)
    expected = whole.read_bytes()
    first = expected.split(b"\n")
    part = tmp_path / "part.jsonl"
    part.write_bytes(b"\n".join(first[:4]) + b"\n" + first[4][:25])  # 4 lines and a torn fifth
    stub = StubEngine(_answers(train_records))
    stats = predict_rows(rows, stub, part, settings, log=lambda m: None)
    assert part.read_bytes() == expected
    assert stats.resumed == 4 and stub.prompts_seen == 6
    assert read_submission(part, rows) == read_submission(whole, rows)
    stub = StubEngine(_answers(train_records))
    predict_rows(rows, stub, part, settings, log=lambda m: None)  # finished: nothing to do
    assert stub.prompts_seen == 0 and part.read_bytes() == expected
    with pytest.raises(DataError, match="does not continue this split"):
        predict_rows(rows[::-1], stub, part, settings, log=lambda m: None)


def test_prompts_longer_than_the_context_are_not_generated(train_records, tmp_path):
    split = _write_jsonl(tmp_path / "s.jsonl", [{k: v for k, v in r.items() if k != "annotated_plan"}
                                                for r in train_records[:2]])
    rows = load_split(split)
    stub = StubEngine(_answers(train_records))
    out = tmp_path / "o.jsonl"
    predict_rows(rows, stub, out, PredictSettings(max_model_len=100), log=lambda m: None)
    assert stub.prompts_seen == 0 and read_submission(out, rows) == [[], []]
    raw = [json.loads(x) for x in raw_path(out).read_text().splitlines()]
    assert all(r["empty_plan_reason"].startswith("prompt of ") for r in raw)


@pytest.mark.parametrize("change, needle", [
    (lambda rows: rows[1].pop("reference_information"), r"row 2 \(idx 2\): missing column\(s\) \['reference_information'\]"),
    (lambda rows: rows[1].update(days=4), r"row 2 \(idx 2\): days is 4"),
    (lambda rows: rows[1].update(reference_information="[{'Description': 'Attractions in Rockford', "
                                 "'Content': 'Name\\n  x'}]"),
     r"row 2 \(idx 2\): reference_information: description 'Attractions in Rockford': table header lacks"),
    (lambda rows: rows[1].update(idx=1), r"row 2 \(idx 1\): idx 1 repeats row 1"),
    (lambda rows: rows[1].update(level="extreme"), r"row 2 \(idx 2\): level 'extreme'"),
])
def test_malformed_rows_are_errors_naming_the_row(train_records, tmp_path, change, needle, capsys):
    rows = [{k: v for k, v in r.items() if k != "annotated_plan"} for r in train_records[:3]]
    for i, r in enumerate(rows):
        r["idx"] = i + 1
    change(rows)
    split = _write_jsonl(tmp_path / "bad.jsonl", rows)
    with pytest.raises(DataError, match=needle):
        load_split(split)
    assert main(["predict", "--split", str(split), "--model", "unused", "--out", str(tmp_path / "o.jsonl")]) == 2
    assert "imagine predict: error:" in capsys.readouterr().err


def test_missing_flights_warn(train_records, tp_db, tmp_path, capsys):
    split = _write_jsonl(tmp_path / "s.jsonl", [{k: v for k, v in train_records[0].items() if k != "annotated_plan"}])
    rows = load_split(split)
    assert predict_cli.missing_flights(rows, tp_db) == 0
    flights = next(v for k, v in rows[0].reference.ref.items() if k.startswith("Flight") and isinstance(v, list))
    flights[0]["Flight Number"] = "F0000000"
    assert predict_cli.missing_flights(rows, tp_db) == 1
    assert "1 of the" in capsys.readouterr().err


def test_plan_keys_are_the_official_ones():
    assert PLAN_KEYS == ("days", "current_city", "transportation", "breakfast", "attraction", "lunch", "dinner",
                         "accommodation")


def test_jsonl_csv_and_parquet_splits_load_the_same_rows(train_records, tmp_path):
    """The official splits are distributed as parquet; the three formats must give the same rows."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    from imagine.tasks.travelplanner.benchmark.splits import load_split

    records = [{k: str(v) for k, v in r.items() if k != "annotated_plan"} for r in train_records[:3]]
    jsonl = tmp_path / "s.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in records))
    csv_path = tmp_path / "s.csv"
    with open(csv_path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, list(records[0]))
        writer.writeheader()
        writer.writerows(records)
    parquet = tmp_path / "s.parquet"
    pq.write_table(pa.Table.from_pylist(records), parquet)
    loaded = [load_split(p) for p in (jsonl, csv_path, parquet)]
    assert len(loaded[0]) == 3
    for rows in loaded[1:]:
        assert [(r.idx, r.record) for r in rows] == [(r.idx, r.record) for r in loaded[0]]
