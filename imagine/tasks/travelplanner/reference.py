"""Reference information for a query, built from the sandbox the way the official data was.

Structured form (what records store): an ordered dict ``description -> list of row dicts | message``,
exactly the shape of ``train_ref_info.jsonl``: for each visited city, ``Attractions in X``,
``Restaurants in X``, ``Accommodations in X`` (every row of that city in file order; accommodations
after the evaluator's ``dropna``), then for each leg ``Flight from A to B on D`` (that day's flights in
file order, or ``There is no flight from A to B on D.``), ``Self-driving from A to B`` and
``Taxi from A to B`` (one lower-case line, or ``No valid information.`` when the evaluator would find
no cost for the pair: missing row, empty cells or a duration in days).

Legs follow the official schedule: travel on day 1, then every ``(days-1)//cities`` days, and on the
last day (3 days: days 1, 3; 5 days: 1, 3, 5; 7 days: 1, 3, 5, 7).

Rendering has two styles. ``official`` reproduces the ``Content`` strings of train.jsonl (pandas
``DataFrame.to_string()``: right-justified columns, a leading space on numeric headers, the file index
printed for restaurants only, floats at 6 decimals with common trailing zeros trimmed). ``compact``
keeps only what a plan needs (names, prices, cuisines, rules, times, costs) in ``;``-separated lines.
``sorted`` is ``compact`` with every priced table cheapest first and without the restaurant rating
(no constraint reads it): the demo's choice for a small student, which then finds the cheapest
admissible option by reading down a list instead of comparing prices it cannot yet add up.
"""

from __future__ import annotations

import math
from typing import Any

NO_ROUTE = "No valid information."
REFERENCE_STYLES = ("official", "compact", "sorted")

# The official reference tables' columns, in print order: `official_reference.py` reads them back.
ATTRACTION_FIELDS = ("Name", "Latitude", "Longitude", "Address", "Phone", "Website", "City")
RESTAURANT_FIELDS = ("Name", "Average Cost", "Cuisines", "Aggregate Rating", "City")
ACCOMMODATION_FIELDS = ("NAME", "price", "room type", "house_rules", "minimum nights", "maximum occupancy",
                        "review rate number", "city")
FLIGHT_FIELDS = ("Flight Number", "Price", "DepTime", "ArrTime", "ActualElapsedTime", "FlightDate",
                 "OriginCityName", "DestCityName", "Distance")


def travel_days(days: int, n_cities: int) -> list[int]:
    """1-based days on which the official schedule moves: [1, 1+s, 1+2s, ..., days], s=(days-1)//n."""
    step = max(1, (days - 1) // max(1, n_cities))
    return [1 + i * step for i in range(n_cities)] + [days]


def default_cities(db, query) -> list[str]:
    """The cities a reference covers when the caller does not choose them (sorted state cities)."""
    if query.days <= 3 or query.dest in db.city_state:
        return [query.dest]
    return sorted(db.state_cities.get(query.dest, []))[: query.visiting_city_number]


def _num(x: float) -> int | float:
    return int(x) if float(x).is_integer() else x


def attraction_row(a) -> dict[str, Any]:
    return {"Name": a.name, "Latitude": a.latitude, "Longitude": a.longitude, "Address": a.address,
            "Phone": a.phone, "Website": a.website, "City": a.city}


def restaurant_row(r) -> dict[str, Any]:
    return {"Name": r.name, "Average Cost": _num(r.cost), "Cuisines": r.cuisines, "Aggregate Rating": r.rating,
            "City": r.city}


def accommodation_row(h) -> dict[str, Any]:
    return {"NAME": h.name, "price": float(h.price), "room type": h.room_type, "house_rules": h.house_rules,
            "minimum nights": float(h.minimum_nights), "maximum occupancy": int(h.maximum_occupancy),
            "review rate number": float(h.review_rate), "city": h.city}


def flight_row(f) -> dict[str, Any]:
    return {"Flight Number": f.number, "Price": _num(f.price), "DepTime": f.dep_time, "ArrTime": f.arr_time,
            "ActualElapsedTime": f.elapsed, "FlightDate": f.date, "OriginCityName": f.origin,
            "DestCityName": f.dest, "Distance": float(f.distance)}


def route_message(db, origin: str, dest: str, mode: str) -> str:
    route = db.routes.get((origin, dest))
    if route is None or route.km is None:
        return NO_ROUTE
    word = "self-driving" if mode == "self-driving" else "taxi"
    return (f"{word}, from {origin} to {dest}, duration: {route.duration}, distance: {route.distance}, "
            f"cost: {route.cost(word)}")


def legs(query, cities: list[str], move_days: list[int] | None = None) -> list[tuple[str, str, str]]:
    """(origin, destination, date) of every move (the official schedule unless ``move_days`` is given)."""
    stops = [query.org, *cities, query.org]
    moves = move_days or travel_days(query.days, len(cities))
    out = []
    for i in range(len(stops) - 1):
        day = moves[i]
        when = query.date[day - 1] if day - 1 < len(query.date) else ""
        out.append((stops[i], stops[i + 1], when))
    return out


def build_reference(db, query, cities: list[str] | None = None, move_days: list[int] | None = None) -> dict[str, Any]:
    """Structured reference information of ``query`` over ``cities`` (visited in that order).

    ``move_days`` overrides the travel days (one official record, train #42, moves on days 1, 2, 3, 7).
    """
    cities = list(cities) if cities else default_cities(db, query)
    ref: dict[str, Any] = {}
    for city in cities:
        ref[f"Attractions in {city}"] = [attraction_row(a) for a in db.attractions_by_city.get(city, [])]
        ref[f"Restaurants in {city}"] = [restaurant_row(r) for r in db.restaurants_by_city.get(city, [])]
        ref[f"Accommodations in {city}"] = [accommodation_row(h) for h in db.accommodations_by_city.get(city, [])]
    for origin, dest, when in legs(query, cities, move_days):
        flights = db.flights_by_leg_date.get((origin, dest, when), [])
        key = f"Flight from {origin} to {dest} on {when}"
        ref[key] = [flight_row(f) for f in flights] if flights else f"There is no flight from {origin} to {dest} on {when}."
        ref[f"Self-driving from {origin} to {dest}"] = route_message(db, origin, dest, "self-driving")
        ref[f"Taxi from {origin} to {dest}"] = route_message(db, origin, dest, "taxi")
    return ref


def reference_cities(ref: dict[str, Any]) -> list[str]:
    """Visited cities in order, read back from the ``Accommodations in X`` descriptions."""
    return [key[len("Accommodations in "):] for key in ref if key.startswith("Accommodations in ")]


# ---------------------------------------------------------------------------------------------- rendering
def _float_column(values: list[float]) -> list[str]:
    """pandas' default float format: 6 decimals, then trailing zeros trimmed equally (one decimal kept)."""
    texts = ["NaN" if isinstance(v, float) and math.isnan(v) else f"{v:.6f}" for v in values]
    real = [t for t in texts if t != "NaN"]
    while real and all(t.endswith("0") and not t.endswith(".0") for t in real):
        texts = [t if t == "NaN" else t[:-1] for t in texts]
        real = [t for t in texts if t != "NaN"]
    return texts


def _column(values: list[Any]) -> tuple[list[str], bool]:
    """Formatted cells of one column and whether pandas treats it as numeric."""
    if values and all(isinstance(v, bool) for v in values):
        return [str(v) for v in values], False
    if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return [str(v) for v in values], True
    if values and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return _float_column([float(v) for v in values]), True
    # pandas prints control characters escaped ("\\n"), and widths count the escaped text
    return ["NaN" if v is None else str(v).replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")
            for v in values], False


def pandas_table(rows: list[dict[str, Any]], index: list[int] | None = None) -> str:
    """``DataFrame(rows).to_string(index=index is not None)`` for flat rows (no truncation, no sci)."""
    columns = list(rows[0].keys())
    lead = " " if index is not None else ""
    blocks = []
    for col in columns:
        cells, numeric = _column([row.get(col) for row in rows])
        header = (" " + col) if numeric else col
        cells = [lead + c for c in cells] if (index is not None) else cells
        width = max(len(header), *(len(c) for c in cells))
        blocks.append([header.rjust(width)] + [c.rjust(width) for c in cells])
    if index is not None:
        labels = [str(i) for i in index]
        width = max(len(x) for x in labels)
        blocks.insert(0, [" " * width] + [x.ljust(width) for x in labels])
    return "\n".join(" ".join(block[i] for block in blocks) for i in range(len(rows) + 1))


def _compact_rows(kind: str, rows: list[dict[str, Any]], rating: bool = True) -> list[str]:
    """One ';'-separated line per row, fields in the order the section header names them."""
    if kind == "Attractions":
        return [r["Name"] for r in rows]
    if kind == "Restaurants":
        return [f"{r['Name']}; {r['Average Cost']}; {r['Cuisines']}" + (f"; {r['Aggregate Rating']}" if rating else "")
                for r in rows]
    if kind == "Accommodations":
        return [f"{r['NAME']}; {_num(r['price'])}; {r['room type']}; {r['house_rules']}; "
                f"{_num(r['minimum nights'])}; {r['maximum occupancy']}" for r in rows]
    return [f"{r['Flight Number']}; {r['Price']}; {r['DepTime']}-{r['ArrTime']}" for r in rows]


_PRICE_FIELD = {"Restaurants": "Average Cost", "Accommodations": "price", "Flight": "Price"}


def _cheapest_first(kind: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Stable, so equal prices keep file order (the evaluator's lookup reads the first match)."""
    key = _PRICE_FIELD.get(kind)
    return sorted(rows, key=lambda r: float(r[key])) if key else rows


_COMPACT_HEADERS = {
    "Attractions": "name",
    "Restaurants": "name; $ per person; cuisines; rating",
    "Accommodations": "name; $ per night; room type; house rules; minimum nights; maximum occupancy",
    "Flight": "flight number; $ per person; departure-arrival",
}


def render_reference(ref: dict[str, Any], style: str = "official", restaurant_index: dict | None = None) -> str:
    """Prompt text of a structured reference.

    ``official``: one ``Description``/``Content`` pair per entry, contents as pandas prints them (the
    restaurant tables need their file row numbers, taken from ``restaurant_index`` {(name, city): [rows]}
    or, when absent, numbered from 0 within the table). ``compact``: the same facts, fewer tokens; ``sorted``: compact, cheapest first.
    """
    if style not in REFERENCE_STYLES:
        raise ValueError(f"unknown reference style {style!r} (expected one of {', '.join(REFERENCE_STYLES)})")
    parts = []
    for desc, content in ref.items():
        kind = desc.split(" ", 1)[0]
        if style == "official":
            if isinstance(content, str):
                text = content
            elif not content:
                text = "Empty DataFrame\nColumns: []\nIndex: []"  # what pandas prints for no rows
            elif kind == "Restaurants":
                text = pandas_table(content, _restaurant_numbers(content, restaurant_index))
            else:
                text = pandas_table(content)
            parts.append(f"Description: {desc}\nContent:\n{text}")
        else:
            if isinstance(content, str):
                text = content
                if kind in ("Self-driving", "Taxi") and content != NO_ROUTE:
                    text = content.split(", ", 2)[2]  # drop the repeated "mode, from A to B"
                parts.append(f"## {desc}: {text}")
            else:
                header = _COMPACT_HEADERS[kind]
                if style == "sorted":
                    content = _cheapest_first(kind, content)
                    header = header.removesuffix("; rating") + ("; cheapest first" if kind in _PRICE_FIELD else "")
                rows = _compact_rows(kind, content, rating=style != "sorted")
                parts.append(f"## {desc} ({header})\n" + "\n".join(rows))
    return "\n\n".join(parts)


def _restaurant_numbers(rows: list[dict], index: dict | None) -> list[int]:
    if not index:
        return list(range(len(rows)))
    used: dict[tuple[str, str], int] = {}
    out = []
    for r in rows:
        key = (r["Name"], r["City"])
        k = used.get(key, 0)
        positions = index.get(key, [])
        out.append(positions[k] if k < len(positions) else -1)
        used[key] = k + 1
    return out


def restaurant_file_index(db) -> dict[tuple[str, str], list[int]]:
    """(name, city) -> row numbers in the restaurants file, for the official table's index column."""
    index: dict[tuple[str, str], list[int]] = {}
    for i, r in enumerate(db.restaurants):
        index.setdefault((r.name, r.city), []).append(i)
    return index


def count_tokens(text: str, tokenizer=None) -> dict[str, int]:
    """Size of a rendered prompt: characters, whitespace-split words and, given a tokenizer (anything
    with ``encode(text)`` returning a list or an object with ``.ids``), its token count."""
    out = {"chars": len(text), "words": len(text.split())}
    if tokenizer is not None:
        encoded = tokenizer.encode(text)
        out["tokens"] = len(getattr(encoded, "ids", encoded))
    return out
