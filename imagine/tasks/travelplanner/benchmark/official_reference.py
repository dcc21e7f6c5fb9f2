"""Official ``reference_information`` strings back into the structured reference the prompt uses.

The validation and test splits ship the reference only as the repr of a list of ``{Description,
Content}`` dicts whose contents are pandas ``DataFrame.to_string()`` tables or one-line messages. The
student was trained on prompts rendered from structured records (:mod:`reference`), so a benchmark
prompt must go through the same records: re-rendering the parsed tables in the compact style gives the
prompt the model knows, and the official style gives back the original text byte for byte.

Reading a pandas table: every column is right-justified and columns are joined by one space, so a
column ends where its header ends. The headers are the known column names of each table kind, found
in order in the header line; a cell is the slice between two column ends with its left padding
removed (right-justification keeps a value's own trailing spaces; a leading space in a value cannot
be told from padding, and the official data has none). pandas escapes ``\\n``, ``\\t`` and ``\\r``
inside cells; they are unescaped. Numbers print as ints when the whole column is integral, else as
floats rounded to 6 decimals (coordinates lose their last digits; nothing a plan uses does).
"""

from __future__ import annotations

import ast
import math
import re
from dataclasses import dataclass, field
from typing import Any

from imagine.io import DataError
from imagine.tasks.travelplanner.reference import (
    ACCOMMODATION_FIELDS,
    ATTRACTION_FIELDS,
    FLIGHT_FIELDS,
    NO_ROUTE,
    RESTAURANT_FIELDS,
)

COLUMNS = {"Attractions": ATTRACTION_FIELDS, "Restaurants": RESTAURANT_FIELDS,
           "Accommodations": ACCOMMODATION_FIELDS, "Flight": FLIGHT_FIELDS}
NUMERIC = {"Latitude", "Longitude", "Average Cost", "Aggregate Rating", "price", "minimum nights",
           "maximum occupancy", "review rate number", "Price", "Distance"}
# Only the restaurant tables were printed with their row numbers (the file index of the database).
INDEXED = {"Restaurants"}

_DESCRIPTION = re.compile(
    r"(?P<kind>Attractions|Restaurants|Accommodations) in (?P<city>.+)"
    r"|(?P<leg>Flight|Self-driving|Taxi) from (?P<a>.+?) to (?P<b>.+?)(?: on (?P<date>\d{4}-\d{2}-\d{2}))?"
)
_NO_FLIGHT = re.compile(r"There is no flight from .+ to .+ on .+\.")
_ROUTE = re.compile(r"(?P<mode>self-driving|taxi), from .+ to .+, duration: .*, distance: .*, cost: .*")
_INT = re.compile(r"-?\d+")
_UNESCAPE = {"\\n": "\n", "\\t": "\t", "\\r": "\r"}


class ReferenceParseError(DataError):
    """One entry of an official reference could not be read; the message names the description."""


@dataclass
class ParsedReference:
    """The structured reference, plus the restaurant file row numbers the official text printed.

    ``restaurant_index`` ({(name, city): [row numbers in table order]}) is what
    :func:`reference.render_reference` needs to print the official tables exactly as given.
    """

    ref: dict[str, Any]
    restaurant_index: dict[tuple[str, str], list[int]] = field(default_factory=dict)


def _entries(value: Any) -> list[tuple[str, str]]:
    """(description, content) pairs from the repr string (or an already decoded list)."""
    if isinstance(value, str):
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError, MemoryError, RecursionError) as exc:
            raise ReferenceParseError(f"reference_information is not a Python list literal ({type(exc).__name__})") \
                from None
    if not isinstance(value, list) or not value:
        raise ReferenceParseError("reference_information must be a non-empty list of {Description, Content}")
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, dict) or not isinstance(item.get("Description"), str) \
                or not isinstance(item.get("Content"), str):
            raise ReferenceParseError(f"reference_information item {i} is not a {{Description: str, Content: str}}")
        out.append((item["Description"], item["Content"]))
    return out


def _cell(text: str, column: str) -> Any:
    text = text.lstrip(" ")
    if column in NUMERIC:
        if text == "NaN":
            return math.nan
        if _INT.fullmatch(text):
            return int(text)
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"column {column!r}: {text!r} is not a number") from None
    if text == "NaN":
        return None
    return re.sub(r"\\[ntr]", lambda m: _UNESCAPE[m.group(0)], text)


def parse_table(content: str, columns: tuple[str, ...], indexed: bool) -> tuple[list[dict[str, Any]], list[int]]:
    """Rows of a pandas ``to_string()`` table with exactly ``columns``, and the printed index labels."""
    if content.startswith("Empty DataFrame"):
        return [], []
    lines = content.split("\n")
    header = lines[0]
    ends, pos = [], 0
    for col in columns:
        at = header.find(col, pos)
        if at < 0 or header[pos:at].strip():
            raise ValueError(f"table header lacks column {col!r} (header: {header.strip()[:120]!r})")
        pos = at + len(col)
        ends.append(pos)
    if header[pos:].strip():
        raise ValueError(f"table header has unexpected columns after {columns[-1]!r}: {header[pos:].strip()[:60]!r}")
    rows, labels = [], []
    for n, line in enumerate(lines[1:], 1):
        if len(line) != len(header):
            raise ValueError(f"table line {n} is {len(line)} characters wide, the header {len(header)}")
        start = 0
        if indexed:
            label = line.split(" ", 1)[0]
            if not _INT.fullmatch(label):
                raise ValueError(f"table line {n}: index label {label!r} is not a row number")
            labels.append(int(label))
            start = len(label)
        row = {}
        for col, end in zip(columns, ends):
            if end < len(line) and line[end] != " ":
                raise ValueError(f"table line {n}: column {col!r} does not end where its header ends")
            row[col] = _cell(line[start:end], col)
            start = end + 1
        rows.append(row)
    return rows, labels


def _content(description: str, content: str) -> tuple[Any, list[int]]:
    m = _DESCRIPTION.fullmatch(description)
    if m is None:
        raise ValueError("unknown description (expected 'Attractions/Restaurants/Accommodations in X', "
                         "'Flight from A to B on D', 'Self-driving from A to B' or 'Taxi from A to B')")
    kind = m.group("kind") or m.group("leg")
    if kind == "Flight":
        if m.group("date") is None:
            raise ValueError("flight description without ' on YYYY-MM-DD'")
        if _NO_FLIGHT.fullmatch(content):
            return content, []
    elif kind in ("Self-driving", "Taxi"):
        route = _ROUTE.fullmatch(content)
        if content == NO_ROUTE or (route and route.group("mode") == kind.lower()):
            return content, []
        raise ValueError(f"expected {NO_ROUTE!r} or '{kind.lower()}, from A to B, duration: ..., distance: ..., "
                         f"cost: ...', got {content[:80]!r}")
    return parse_table(content, COLUMNS[kind], kind in INDEXED)


def parse_reference(value: Any) -> ParsedReference:
    """The structured reference of one official ``reference_information`` value.

    Raises :class:`ReferenceParseError` naming the description that could not be read.
    """
    ref: dict[str, Any] = {}
    index: dict[tuple[str, str], list[int]] = {}
    for description, content in _entries(value):
        if description in ref:
            raise ReferenceParseError(f"description {description!r} appears twice")
        try:
            parsed, labels = _content(description, content)
        except ValueError as exc:
            raise ReferenceParseError(f"description {description!r}: {exc}") from None
        ref[description] = parsed
        for row, label in zip(parsed if isinstance(parsed, list) else [], labels):
            index.setdefault((row["Name"], row["City"]), []).append(label)
    return ParsedReference(ref, index)


def reference_city_names(ref: dict[str, Any]) -> set[str]:
    """Every city the reference mentions (tables, legs): the places a plan for it may name."""
    cities = set()
    for description in ref:
        m = _DESCRIPTION.fullmatch(description)
        if m is None:
            continue
        if m.group("city"):
            cities.add(m.group("city"))
        else:
            cities.update((m.group("a"), m.group("b")))
    return cities
