"""The TravelPlanner sandbox database, loaded once and indexed.

Reads a directory in the official layout (``accommodations/``, ``attractions/``, ``restaurants/``,
``flights/``, ``googleDistanceMatrix/``, ``background/``) and reproduces the lookup semantics of the
official evaluator (eval spec §3-§4): case-sensitive substring name match within an exact city, the
first row in file order for attribute reads, ``dropna`` on accommodations and flights, the first
distance row per (origin, destination) pair, and the self-driving/taxi cost formulas.

Rows are kept in file order in plain lists; per-city indexes and a memo of (name, city) lookups make
each check O(rows in that city) the first time and O(1) afterwards, which is what lets the batch
checker score thousands of plans per second.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from imagine.io import DataError

ACCOMMODATIONS = "accommodations/clean_accommodations_2022.csv"
ATTRACTIONS = "attractions/attractions.csv"
RESTAURANTS = "restaurants/clean_restaurant_2022.csv"
FLIGHTS = "flights/clean_Flights_2022.csv"
DISTANCES = "googleDistanceMatrix/distance.csv"
CITY_STATES = "background/citySet_with_states.txt"
CITY_SET = "background/citySet.txt"
STATE_SET = "background/stateSet.txt"

ACCOMMODATION_COLUMNS = ["", "NAME", "room type", "price", "minimum nights", "review rate number",
                         "house_rules", "maximum occupancy", "city"]
ATTRACTION_COLUMNS = ["Name", "Latitude", "Longitude", "Address", "Phone", "Website", "City"]
RESTAURANT_COLUMNS = ["", "Name", "City", "Cuisines", "Average Cost", "Aggregate Rating"]
FLIGHT_COLUMNS = ["Flight Number", "Price", "DepTime", "ArrTime", "ActualElapsedTime", "FlightDate",
                  "OriginCityName", "DestCityName", "Distance"]
DISTANCE_COLUMNS = ["origin", "destination", "cost", "duration", "distance"]


@dataclass(frozen=True, slots=True)
class Restaurant:
    name: str
    city: str
    cuisines: str
    cost: float
    rating: float


@dataclass(frozen=True, slots=True)
class Attraction:
    name: str
    latitude: float
    longitude: float
    address: str
    phone: str
    website: str
    city: str


@dataclass(frozen=True, slots=True)
class Accommodation:
    name: str
    room_type: str
    price: float
    minimum_nights: float
    review_rate: float
    house_rules: str
    maximum_occupancy: int
    city: str


@dataclass(frozen=True, slots=True)
class Flight:
    number: str
    price: float
    dep_time: str
    arr_time: str
    elapsed: str
    date: str
    origin: str
    dest: str
    distance: float


@dataclass(frozen=True, slots=True)
class Route:
    """First ``distance.csv`` row of an (origin, destination) pair."""

    origin: str
    destination: str
    duration: str | None
    distance: str | None
    km: float | None  # None when the official code yields no cost (missing, NaN, or 'day' in duration)

    def cost(self, mode: str) -> int | None:
        """Official per-vehicle cost: self-driving floor(km*0.05), taxi floor(km)."""
        if self.km is None:
            return None
        if "driving" in mode:
            return int(self.km * 0.05)
        if "taxi" in mode:
            return int(self.km)
        return None


def _read_csv(root: Path, rel: str, expected: list[str]) -> list[tuple[int, dict[str, str]]]:
    path = root / rel
    if not path.is_file():
        raise DataError(f"{path}: missing database file (expected the official layout under {root})")
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        try:
            header = next(reader)
        except StopIteration:
            raise DataError(f"{path}: empty file, expected header {expected}") from None
        missing = [c for c in expected if c not in header]
        if missing:
            raise DataError(f"{path}: missing column(s) {missing} in header {header}")
        index = {c: header.index(c) for c in expected}
        rows = []
        for row in reader:
            if not row:
                continue
            line = reader.line_num
            if len(row) != len(header):
                raise DataError(f"{path}:{line}: expected {len(header)} fields, found {len(row)}")
            rows.append((line, {c: row[i] for c, i in index.items()}))
    return rows


def _num(path: Path, line: int, col: str, text: str, kind: type = float) -> float:
    try:
        value = float(text)
    except ValueError:
        raise DataError(f"{path}:{line}: column {col!r} is not a number: {text!r}") from None
    if kind is int:
        if not value.is_integer():
            raise DataError(f"{path}:{line}: column {col!r} is not an integer: {text!r}")
        return int(value)
    return value


def parse_km(distance: str) -> float:
    """``'1,144 km'`` -> 1144.0 (the official code strips 'km' and ',' and evaluates the rest)."""
    return float(distance.replace("km", "").replace(",", "").strip())


class Database:
    """All tables of one sandbox directory with the indexes the evaluator and generator need."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"{self.root}: database directory does not exist")
        self._load_cities()
        self._load_restaurants()
        self._load_attractions()
        self._load_accommodations()
        self._load_flights()
        self._load_distances()
        self._memo_restaurant: dict[tuple[str, str], tuple[int, int]] = {}
        self._memo_attraction: dict[tuple[str, str], int] = {}
        self._memo_accommodation: dict[tuple[str, str], tuple[int, int]] = {}

    # ------------------------------------------------------------------ loading
    def _load_cities(self) -> None:
        path = self.root / CITY_STATES
        if not path.is_file():
            raise DataError(f"{path}: missing database file (city\\tstate per line)")
        self.city_state: dict[str, str] = {}
        for n, line in enumerate(path.read_text(encoding="utf-8").split("\n"), 1):
            if not line.strip():
                continue
            parts = line.split("\t")
            if len(parts) != 2:
                raise DataError(f"{path}:{n}: expected 'City<TAB>State', found {line!r}")
            self.city_state[parts[0]] = parts[1]
        self.state_cities: dict[str, list[str]] = defaultdict(list)
        for city, state in self.city_state.items():
            self.state_cities[state].append(city)
        self.state_cities = dict(self.state_cities)

    def _load_restaurants(self) -> None:
        path = self.root / RESTAURANTS
        self.restaurants: list[Restaurant] = []
        for line, r in _read_csv(self.root, RESTAURANTS, RESTAURANT_COLUMNS):
            self.restaurants.append(Restaurant(
                name=r["Name"], city=r["City"], cuisines=r["Cuisines"],
                cost=_num(path, line, "Average Cost", r["Average Cost"]),
                rating=_num(path, line, "Aggregate Rating", r["Aggregate Rating"]) if r["Aggregate Rating"] else math.nan,
            ))
        self.restaurants_by_city = _group(self.restaurants)

    def _load_attractions(self) -> None:
        path = self.root / ATTRACTIONS
        self.attractions: list[Attraction] = []
        for line, r in _read_csv(self.root, ATTRACTIONS, ATTRACTION_COLUMNS):
            self.attractions.append(Attraction(
                name=r["Name"],
                latitude=_num(path, line, "Latitude", r["Latitude"]) if r["Latitude"] else math.nan,
                longitude=_num(path, line, "Longitude", r["Longitude"]) if r["Longitude"] else math.nan,
                address=r["Address"], phone=r["Phone"], website=r["Website"], city=r["City"],
            ))
        self.attractions_by_city = _group(self.attractions)

    def _load_accommodations(self) -> None:
        path = self.root / ACCOMMODATIONS
        self.accommodations: list[Accommodation] = []
        self.accommodations_dropped = 0
        for line, r in _read_csv(self.root, ACCOMMODATIONS, ACCOMMODATION_COLUMNS):
            if any(v == "" for v in r.values()):  # pandas .dropna() over every column
                self.accommodations_dropped += 1
                continue
            self.accommodations.append(Accommodation(
                name=r["NAME"], room_type=r["room type"],
                price=_num(path, line, "price", r["price"]),
                minimum_nights=_num(path, line, "minimum nights", r["minimum nights"]),
                review_rate=_num(path, line, "review rate number", r["review rate number"]),
                house_rules=r["house_rules"],
                maximum_occupancy=_num(path, line, "maximum occupancy", r["maximum occupancy"], int),
                city=r["city"],
            ))
        self.accommodations_by_city = _group(self.accommodations)

    def _load_flights(self) -> None:
        path = self.root / FLIGHTS
        self.flights: list[Flight] = []
        for line, r in _read_csv(self.root, FLIGHTS, FLIGHT_COLUMNS):
            if any(v == "" for v in r.values()):
                continue
            self.flights.append(Flight(
                number=r["Flight Number"], price=_num(path, line, "Price", r["Price"]),
                dep_time=r["DepTime"], arr_time=r["ArrTime"], elapsed=r["ActualElapsedTime"],
                date=r["FlightDate"], origin=r["OriginCityName"], dest=r["DestCityName"],
                distance=_num(path, line, "Distance", r["Distance"]),
            ))
        self.flight_by_number: dict[str, Flight] = {}
        self.flight_keys: set[tuple[str, str, str]] = set()
        self.flight_dates: dict[str, set[str]] = defaultdict(set)
        self.flights_by_leg_date: dict[tuple[str, str, str], list[Flight]] = defaultdict(list)
        self.flights_by_leg: dict[tuple[str, str], list[Flight]] = defaultdict(list)
        for f in self.flights:
            self.flight_by_number.setdefault(f.number, f)
            self.flight_keys.add((f.number, f.origin, f.dest))
            self.flight_dates[f.number].add(f.date)
            self.flights_by_leg_date[(f.origin, f.dest, f.date)].append(f)
            self.flights_by_leg[(f.origin, f.dest)].append(f)
        self.flights_by_leg_date = dict(self.flights_by_leg_date)
        self.flights_by_leg = dict(self.flights_by_leg)

    def _load_distances(self) -> None:
        path = self.root / DISTANCES
        self.routes: dict[tuple[str, str], Route] = {}
        for line, r in _read_csv(self.root, DISTANCES, DISTANCE_COLUMNS):
            key = (r["origin"], r["destination"])
            if key in self.routes:
                continue  # the official code always reads the first row of a pair
            duration = r["duration"] or None
            distance = r["distance"] or None
            km = None
            if duration is not None and distance is not None and "day" not in duration:
                try:
                    km = parse_km(distance)
                except ValueError:
                    raise DataError(f"{path}:{line}: column 'distance' is not '<number> km': {distance!r}") from None
            self.routes[key] = Route(key[0], key[1], duration, distance, km)

    # ------------------------------------------------------------------ lookups
    def find_restaurant(self, name: str, city: str) -> tuple[Restaurant | None, int]:
        """First row whose Name contains ``name`` in exactly ``city``, and the number of matches."""
        key = (name, city)
        hit = self._memo_restaurant.get(key)
        if hit is None:
            hit = _substring_first(self.restaurants_by_city.get(city, ()), name)
            self._memo_restaurant[key] = hit
        idx, count = hit
        return (self.restaurants_by_city[city][idx] if count else None), count

    def find_attraction(self, name: str, city: str) -> bool:
        key = (name, city)
        hit = self._memo_attraction.get(key)
        if hit is None:
            hit = _substring_first(self.attractions_by_city.get(city, ()), name)[1]
            self._memo_attraction[key] = hit
        return hit > 0

    def find_accommodation(self, name: str, city: str) -> tuple[Accommodation | None, int]:
        key = (name, city)
        hit = self._memo_accommodation.get(key)
        if hit is None:
            hit = _substring_first(self.accommodations_by_city.get(city, ()), name)
            self._memo_accommodation[key] = hit
        idx, count = hit
        return (self.accommodations_by_city[city][idx] if count else None), count

    def route(self, origin: str, destination: str) -> Route | None:
        return self.routes.get((origin, destination))

    def transport_cost(self, origin: str, destination: str, mode: str) -> int | None:
        route = self.routes.get((origin, destination))
        return None if route is None else route.cost(mode)

    def has_flight(self, number: str, origin: str, dest: str) -> bool:
        return (number, origin, dest) in self.flight_keys

    def summary(self) -> dict[str, int]:
        return {
            "cities": len(self.city_state), "states": len(self.state_cities),
            "restaurants": len(self.restaurants), "attractions": len(self.attractions),
            "accommodations": len(self.accommodations), "accommodations_dropped": self.accommodations_dropped,
            "flights": len(self.flights), "routes": len(self.routes),
        }


def _group(rows: list) -> dict[str, list]:
    by_city: dict[str, list] = defaultdict(list)
    for row in rows:
        by_city[row.city].append(row)
    return dict(by_city)


def _substring_first(rows, name: str) -> tuple[int, int]:
    first, count = -1, 0
    for i, row in enumerate(rows):
        if name in row.name:
            if count == 0:
                first = i
            count += 1
    return first, count
