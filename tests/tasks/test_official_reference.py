"""Official reference_information strings -> structured records, checked against train_ref_info.jsonl."""

from __future__ import annotations

import ast
import json
import math

import pytest

from imagine.tasks.travelplanner.benchmark.official_reference import (
    ReferenceParseError,
    parse_reference,
    reference_city_names,
)
from imagine.tasks.travelplanner.reference import pandas_table, render_reference
from imagine.tasks.travelplanner.schema import query_from_record
from imagine.tasks.travelplanner.student.prompt import messages_from_text, student_messages
from tests.conftest import TP, require_shared


@pytest.fixture(scope="module")
def train():
    require_shared()
    records = [json.loads(line) for line in (TP / "train.jsonl").read_text().splitlines()]
    refs = [json.loads(line) for line in (TP / "train_ref_info.jsonl").read_text().splitlines()]
    return records, refs


def _same(mine, official) -> bool:
    """Exact, except that pandas printed floats at 6 decimals (coordinates lose their tail)."""
    if isinstance(official, float):
        return isinstance(mine, (int, float)) and abs(mine - official) <= 1e-6
    return type(mine) is type(official) and mine == official


def test_every_train_reference_parses_to_train_ref_info(train):
    records, refs = train
    rows_compared = messages = 0
    for i, (rec, official) in enumerate(zip(records, refs)):
        parsed = parse_reference(rec["reference_information"]).ref
        assert list(parsed) == list(official), i  # same descriptions, same order
        for desc, value in official.items():
            if isinstance(value, str):
                assert parsed[desc] == value, (i, desc)
                messages += 1
                continue
            assert len(parsed[desc]) == len(value), (i, desc)
            for mine, theirs in zip(parsed[desc], value):
                assert list(mine) == list(theirs), (i, desc)
                bad = [k for k in theirs if not _same(mine[k], theirs[k])]
                assert not bad, (i, desc, {k: (mine[k], theirs[k]) for k in bad})
                rows_compared += 1
    assert rows_compared == 1754 + 2749 + 1080 + 313
    assert messages == 8 + 8 + 74 + 127 + 127  # no-route, no-flight, self-driving and taxi lines


def test_official_rendering_of_parsed_reference_is_the_original_text(train):
    records, _ = train
    for i, rec in enumerate(records):
        parsed = parse_reference(rec["reference_information"])
        original = "\n\n".join(f"Description: {d['Description']}\nContent:\n{d['Content']}"
                               for d in ast.literal_eval(rec["reference_information"]))
        assert render_reference(parsed.ref, "official", restaurant_index=parsed.restaurant_index) == original, i


def test_prompt_from_text_equals_the_training_prompt(train):
    records, refs = train
    for rec, official in zip(records[:9], refs[:9]):
        q = query_from_record({**rec, "reference_information": official})
        parsed = parse_reference(rec["reference_information"]).ref
        assert messages_from_text(rec["query"], parsed) == student_messages(q)
        assert messages_from_text(rec["query"], parsed, style="official") == student_messages(q, style="official")


def test_reference_cities(train):
    records, _ = train
    cities = reference_city_names(parse_reference(records[44]["reference_information"]).ref)
    assert cities == {"Minneapolis", "Toledo", "Cleveland", "Dayton"}


def _one(description: str, content: str) -> str:
    return repr([{"Description": description, "Content": content}])


@pytest.mark.parametrize("value, needle", [
    ("[{'Description': 'Attractions in X'", "not a Python list literal"),
    ("[]", "non-empty list"),
    ("[{'Description': 1, 'Content': 'x'}]", "item 0"),
    (_one("Museums in Rockford", "x"), "'Museums in Rockford': unknown description"),
    (_one("Attractions in Rockford", "Name City\n   A    B"), "'Attractions in Rockford': table header lacks column 'Latitude'"),
    (_one("Self-driving from A to B", "taxi, from A to B, duration: 1 mins, distance: 1 km, cost: 1"),
     "'Self-driving from A to B': expected"),
    (_one("Flight from A to B", "There is no flight from A to B on 2022-03-01."), "without ' on YYYY-MM-DD'"),
    (_one("Flight from A to B on 2022-03-01", "Flight Number Price\n     F1    x"), "lacks column 'DepTime'"),
])
def test_unparsable_references_name_the_description(value, needle):
    with pytest.raises(ReferenceParseError) as exc:
        parse_reference(value)
    assert needle in str(exc.value)


def test_table_cells_round_trip_nan_newlines_and_trailing_spaces(train):
    rows = [{"Name": "Mouthmatics ", "Average Cost": math.nan, "Cuisines": "Tea, Cafe", "Aggregate Rating": 4.5,
             "City": "Rockford"},
            {"Name": "Two\nlines", "Average Cost": 12.5, "Cuisines": "BBQ", "Aggregate Rating": 0.0,
             "City": "Rockford"}]
    text = pandas_table(rows, index=[7, 1234])
    parsed = parse_reference(_one("Restaurants in Rockford", text))
    back = parsed.ref["Restaurants in Rockford"]
    assert math.isnan(back[0]["Average Cost"]) and back[1]["Average Cost"] == 12.5
    assert [r["Name"] for r in back] == ["Mouthmatics ", "Two\nlines"]
    assert parsed.restaurant_index == {("Mouthmatics ", "Rockford"): [7], ("Two\nlines", "Rockford"): [1234]}
    lines = text.split("\n")
    with pytest.raises(ReferenceParseError, match="characters wide"):
        parse_reference(_one("Restaurants in Rockford", "\n".join([lines[0], lines[1] + " "])))
