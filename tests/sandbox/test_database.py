"""The sandbox loader against the counts and lookup semantics of eval spec §3-§4, and its errors."""

from __future__ import annotations

import shutil

import pytest

from imagine.io import DataError
from imagine.sandbox.database import Database
from tests.conftest import TP_DB, require_shared


def test_official_counts(tp_db):
    s = tp_db.summary()
    assert (s["accommodations"], s["accommodations_dropped"]) == (4285, 762)
    assert (s["attractions"], s["restaurants"], s["cities"], s["states"]) == (5302, 9551, 312, 64)
    assert s["flights"] == 313
    assert sum(1 for cities in tp_db.state_cities.values() if len(cities) > 3) == 34


def test_lookup_semantics(tp_db):
    row, n = tp_db.find_restaurant("Subway", "Rockford")
    assert n == 2 and row.cost == 42  # first row in file order
    assert tp_db.find_restaurant("Flying", "Rockford")[0].name == "Flying Mango"  # substring
    assert tp_db.find_restaurant("", "Rockford")[1] == len(tp_db.restaurants_by_city["Rockford"])
    assert tp_db.find_restaurant("subway", "Rockford")[1] == 0  # case-sensitive
    assert tp_db.find_restaurant("Subway", "rockford")[1] == 0  # exact city
    _, n = tp_db.find_accommodation("heart", "Rockford")
    assert n == 2
    # accommodations without house rules are invisible (dropna)
    assert all(a.house_rules for a in tp_db.accommodations)


def test_route_costs(tp_db):
    route = tp_db.route("Detroit", "Norfolk")
    assert (route.distance, route.km) == ("1,144 km", 1144.0)
    assert tp_db.transport_cost("Detroit", "Norfolk", "self-driving") == 57  # floor(1144 * 0.05)
    assert tp_db.transport_cost("Detroit", "Norfolk", "taxi") == 1144
    day_routes = [r for r in tp_db.routes.values() if r.duration and "day" in r.duration]
    assert day_routes and all(r.cost("taxi") is None for r in day_routes)
    assert tp_db.transport_cost("Nowhere", "Norfolk", "taxi") is None


def test_first_distance_row_wins(tmp_path):
    require_shared()
    db_dir = tmp_path / "db"
    shutil.copytree(TP_DB, db_dir)
    path = db_dir / "googleDistanceMatrix" / "distance.csv"
    with open(path, "a") as fh:
        fh.write('Detroit,Norfolk,,1 hours 1 mins,"5 km"\n')
    assert Database(db_dir).route("Detroit", "Norfolk").km == 1144.0


@pytest.mark.parametrize("rel, mutate, message", [
    ("restaurants/clean_restaurant_2022.csv", lambda t: t.replace("Average Cost", "Avg"), "missing column(s) ['Average Cost']"),
    ("restaurants/clean_restaurant_2022.csv", lambda t: t.replace(",46,4.8\n", ",cheap,4.8\n", 1), "clean_restaurant_2022.csv:2: column 'Average Cost' is not a number"),
    ("flights/clean_Flights_2022.csv", lambda t: t + "F1,2,3\n", "clean_Flights_2022.csv:315: expected 9 fields, found 3"),
    ("background/citySet_with_states.txt", lambda t: "Nowhere\n" + t, "citySet_with_states.txt:1: expected 'City<TAB>State'"),
])
def test_bad_layout_names_file_and_line(tmp_path, rel, mutate, message):
    require_shared()
    db_dir = tmp_path / "db"
    shutil.copytree(TP_DB, db_dir)
    path = db_dir / rel
    path.write_text(mutate(path.read_text()))
    with pytest.raises(DataError) as err:
        Database(db_dir)
    assert message in str(err.value)


def test_missing_file(tmp_path):
    require_shared()
    db_dir = tmp_path / "db"
    shutil.copytree(TP_DB, db_dir)
    (db_dir / "attractions" / "attractions.csv").unlink()
    with pytest.raises(DataError, match="attractions.csv: missing database file"):
        Database(db_dir)


def test_synth_cli_table_sizes_and_shares(tmp_path):
    """The demo's world options reach the generator, and a bad range names the flag."""
    import subprocess
    import sys

    from imagine.sandbox.database import Database
    from tests.conftest import ROOT

    out = tmp_path / "w"
    args = [sys.executable, "-m", "imagine", "world", "synth", "--out", str(out), "--cities", "6", "--states", "2",
            "--restaurants", "2-3", "--attractions", "4", "--accommodations", "3-3", "--missing-route-share", "1"]
    subprocess.run(args, cwd=ROOT, check=True, capture_output=True)
    db = Database(out)
    summary = db.summary()
    assert 12 <= summary["restaurants"] <= 18 and summary["attractions"] == 24
    bad = subprocess.run(args[:-2] + ["--restaurants", "5-2"], cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 2 and "--restaurants" in bad.stderr


def test_cuisine_share_shortens_cuisine_lists_and_its_default_changes_nothing(tmp_path):
    from imagine.sandbox.database import Database
    from imagine.sandbox.synth import SynthConfig, synthesize

    def mean_cuisines(cfg: SynthConfig, name: str) -> tuple[float, bytes]:
        root = synthesize(tmp_path / name, cfg)
        db = Database(root)
        counts = [len(r.cuisines.split(", ")) for r in db.restaurants]
        files = b"".join(p.read_bytes() for p in sorted(root.rglob("*.csv")))
        return sum(counts) / len(counts), files

    base, base_files = mean_cuisines(SynthConfig(seed=5, n_cities=8, n_states=2), "base")
    same, same_files = mean_cuisines(SynthConfig(seed=5, n_cities=8, n_states=2, cuisine_share=0.38), "same")
    few, _ = mean_cuisines(SynthConfig(seed=5, n_cities=8, n_states=2, cuisine_share=0.1), "few")
    assert same_files == base_files  # the default is the generator as it was: old worlds stay reproducible
    assert few < 0.5 * base, (few, base)
