"""Keeping generated queries apart from each other and from the official splits.

Two kinds of key, because the official files give two kinds of information:
- structured records (train.jsonl, earlier generated files): ``(org, dest, days, first date)``;
- text only (validation_example_plans.jsonl, test_queries.jsonl): the places named in the text and the
  first date mentioned, compared as ``({org, dest}, first date)`` so that a paraphrase that names the
  destination first still collides. Only place names of the database in use can collide, so the
  parser looks only for those.

Nothing here converts a test query into a structured query: the keys are used to *reject* candidates.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

from imagine.io import DataError, iter_jsonl

MONTHS = {m: i for i, m in enumerate(
    ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
     "november", "december"], 1)}
_DATE = re.compile(r"\b(January|February|March|April|May|June|July|August|September|October|November|December)"
                   r"\s+(\d{1,2})(?:st|nd|rd|th)?(?:,?\s*(\d{4}))?", re.IGNORECASE)


def record_key(org: str, dest: str, days: int, dates: list[str]) -> tuple:
    return (org, dest, int(days), dates[0] if dates else "")


def loose_key(org: str, dest: str, first_date: str) -> tuple:
    return (frozenset((org, dest)), first_date)


class PlaceFinder:
    """Finds database place names (cities and states) in free text, longest names first."""

    def __init__(self, names: list[str]):
        names = sorted({n for n in names if n}, key=len, reverse=True)
        self.pattern = re.compile(r"\b(" + "|".join(re.escape(n) for n in names) + r")\b") if names else None

    def find(self, text: str) -> list[str]:
        if self.pattern is None:
            return []
        seen, out = set(), []
        for m in self.pattern.finditer(text):
            if m.group(1) not in seen:
                seen.add(m.group(1))
                out.append(m.group(1))
        return out


def first_date(text: str, default_year: int = 2022) -> str | None:
    m = _DATE.search(text)
    if not m:
        return None
    year = int(m.group(3)) if m.group(3) else default_year
    try:
        return date(year, MONTHS[m.group(1).lower()], int(m.group(2))).isoformat()
    except ValueError:
        return None


class ExcludeSet:
    """Keys of queries that generated ones must not duplicate."""

    def __init__(self, places: PlaceFinder):
        self.places = places
        self.records: set[tuple] = set()
        self.loose: set[tuple] = set()
        self.sources: dict[str, int] = {}

    def add_record(self, org: str, dest: str, days: int, dates: list[str]) -> None:
        self.records.add(record_key(org, dest, days, dates))
        if dates:
            self.loose.add(loose_key(org, dest, dates[0]))

    def add_text(self, text: str) -> bool:
        """Register a text-only query; False when it names fewer than two known places or no date."""
        found = self.places.find(text)
        when = first_date(text)
        if len(found) < 2 or when is None:
            return False
        # every pair of named places counts: the text may also name an intermediate city
        for i in range(len(found)):
            for j in range(i + 1, len(found)):
                self.loose.add(loose_key(found[i], found[j], when))
        return True

    def load(self, path: str | Path) -> None:
        """Read a JSONL file of structured records (org/dest/date) or of NL queries (``query``)."""
        from imagine.tasks.travelplanner.schema import query_from_record

        n = 0
        for line, rec in iter_jsonl(path):
            if not isinstance(rec, dict):
                raise DataError(f"{path}:{line}: expected a JSON object")
            if "org" in rec and "dest" in rec:
                q = query_from_record(rec, f"{path}:{line}: ")
                self.add_record(q.org, q.dest, q.days, q.date)
                n += 1
            elif isinstance(rec.get("query"), str):
                n += self.add_text(rec["query"])
            else:
                raise DataError(f"{path}:{line}: expected query fields (org, dest, ...) or a 'query' text")
        self.sources[str(path)] = n

    def hit(self, org: str, dest: str, days: int, dates: list[str]) -> bool:
        return (record_key(org, dest, days, dates) in self.records
                or (bool(dates) and loose_key(org, dest, dates[0]) in self.loose))
