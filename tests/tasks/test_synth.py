"""Synthetic world: official layout and formats, determinism, the traps it must contain, added flights."""

from __future__ import annotations

import csv
import re
import time
from pathlib import Path

import pytest

from imagine.cli import main
from imagine.sandbox import database as layout
from imagine.sandbox.database import Database
from imagine.sandbox.synth import SynthConfig, add_flights, synthesize
from tests.conftest import TP_DB, require_shared

TABLES = [layout.ACCOMMODATIONS, layout.ATTRACTIONS, layout.RESTAURANTS, layout.FLIGHTS, layout.DISTANCES]
OFFICIAL_HEADERS = {
    layout.ACCOMMODATIONS: ",NAME,room type,price,minimum nights,review rate number,house_rules,maximum occupancy,city",
    layout.ATTRACTIONS: "Name,Latitude,Longitude,Address,Phone,Website,City",
    layout.RESTAURANTS: ",Name,City,Cuisines,Average Cost,Aggregate Rating",
    layout.FLIGHTS: "Flight Number,Price,DepTime,ArrTime,ActualElapsedTime,FlightDate,OriginCityName,DestCityName,Distance",
    layout.DISTANCES: "origin,destination,cost,duration,distance",
}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    return synthesize(tmp_path_factory.mktemp("world") / "db", SynthConfig(seed=7))


def _rows(root: Path, rel: str) -> list[list[str]]:
    with open(root / rel, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


def test_headers_match_official_files(world):
    for rel, header in OFFICIAL_HEADERS.items():
        assert (world / rel).read_text(encoding="utf-8").split("\n", 1)[0] == header, rel
    if TP_DB.is_dir():  # and the real files say the same
        for rel in TABLES:
            if rel == layout.FLIGHTS:
                continue
            real = (TP_DB / rel).read_text(encoding="utf-8").split("\n", 1)[0]
            assert real == OFFICIAL_HEADERS[rel], rel


def test_value_formats(world):
    rest = _rows(world, layout.RESTAURANTS)[1:]
    assert [int(r[0]) for r in rest] == list(range(len(rest)))  # the unnamed index column
    raw = (world / layout.RESTAURANTS).read_text(encoding="utf-8")
    assert re.search(r'^\d+,[^,]+,[^,]+,"[A-Za-z ]+, [A-Za-z ,]+",\d+,\d\.\d$', raw, re.M)  # quoted multi-value
    dist = _rows(world, layout.DISTANCES)[1:]
    filled = [r for r in dist if r[4]]
    assert all(re.fullmatch(r"[\d,]+ km|\d+\.\d km", r[4]) for r in filled)
    assert any("," in r[4] for r in filled)  # "1,144 km"
    assert all(re.fullmatch(r"(\d+ days? \d+ hours?|\d+ hours? \d+ mins?|\d+ mins?)", r[3]) for r in filled)
    assert all(r[2] == "" for r in dist)  # the cost column is empty in the official file too
    flights = _rows(world, layout.FLIGHTS)[1:]
    for r in flights[:500]:
        assert re.fullmatch(r"F\d{7}", r[0]) and r[1].isdigit()
        assert re.fullmatch(r"\d\d:\d\d", r[2]) and re.fullmatch(r"\d\d:\d\d", r[3])
        assert re.fullmatch(r"\d+ hours \d+ minutes", r[4])
        assert r[5].startswith("2022-03-") and r[8].endswith(".0")
    assert len({r[0] for r in flights}) == len(flights)
    acc = _rows(world, layout.ACCOMMODATIONS)[1:]
    assert all(re.fullmatch(r"\d+\.0", r[3]) and re.fullmatch(r"\d+\.0", r[4]) for r in acc)
    cities = (world / layout.CITY_STATES).read_text(encoding="utf-8")
    assert not cities.endswith("\n") and all(len(line.split("\t")) == 2 for line in cities.split("\n"))


def test_deterministic_per_seed(tmp_path):
    a = synthesize(tmp_path / "a", SynthConfig(seed=3))
    b = synthesize(tmp_path / "b", SynthConfig(seed=3))
    c = synthesize(tmp_path / "c", SynthConfig(seed=4))
    for rel in TABLES + [layout.CITY_STATES]:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    assert (a / layout.RESTAURANTS).read_bytes() != (c / layout.RESTAURANTS).read_bytes()


def test_loads_fast_and_contains_the_traps(world):
    t0 = time.perf_counter()
    db = Database(world)
    assert time.perf_counter() - t0 < 1.5  # well under a second on an idle core
    s = db.summary()
    assert 40 <= s["cities"] <= 60 and 8 <= s["states"] <= 12
    assert s["accommodations_dropped"] > 0  # empty house_rules, invisible after dropna
    assert any(h.minimum_nights >= 30 for h in db.accommodations)
    assert any(h.room_type == "Shared room" for h in db.accommodations)
    assert any(r.km is None for r in db.routes.values())  # missing or multi-day routes
    assert any(r.duration and "day" in r.duration for r in db.routes.values())
    big = [s for s, cs in db.state_cities.items() if len(cs) > 3]
    assert len(big) >= 4  # 5/7-day destinations exist
    # some served pairs lack flights on some dates
    legs = {(f.origin, f.dest) for f in db.flights}
    dated = {(f.origin, f.dest, f.date) for f in db.flights}
    assert len(dated) < len(legs) * 31
    # the reference-style lookups work
    r = db.restaurants[0]
    assert db.find_restaurant(r.name, r.city)[0] is not None


def test_add_flights_to_real_copy(tmp_path):
    require_shared()
    cities = ["St. Petersburg", "Rockford", "Nashville", "Pittsburgh", "Philadelphia", "Minneapolis", "Toledo"]
    out = add_flights(TP_DB, tmp_path / "db", SynthConfig(seed=1, served_pair_share=0.5), cities)
    real = _rows(TP_DB, layout.FLIGHTS)
    mine = _rows(out, layout.FLIGHTS)
    assert mine[: len(real)] == real  # real rows first, unchanged
    extra = mine[len(real):]
    assert extra, "no synthetic flights were added"
    real_keys = {(r[6], r[7], r[5]) for r in real[1:]}
    assert all((r[6], r[7], r[5]) not in real_keys for r in extra)  # real legs/dates keep their flights
    assert len({r[0] for r in mine[1:]}) == len(mine) - 1
    assert all(r[6] in cities and r[7] in cities for r in extra)
    for rel in (layout.ACCOMMODATIONS, layout.RESTAURANTS, layout.DISTANCES, layout.CITY_STATES):
        assert (out / rel).read_bytes() == (TP_DB / rel).read_bytes()
    with pytest.raises(ValueError):
        add_flights(TP_DB, TP_DB)


def test_cli(tmp_path, capsys):
    assert main(["world", "synth", "--out", str(tmp_path / "w"), "--seed", "2", "--tiny"]) == 0
    assert "cities" in capsys.readouterr().out
    assert Database(tmp_path / "w").summary()["cities"] <= 12
    assert main(["world", "synth", "--out", str(tmp_path / "x"), "--cities", "2"]) == 2
