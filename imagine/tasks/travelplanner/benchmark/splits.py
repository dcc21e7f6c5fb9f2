"""The official validation and test splits, read as they are distributed (JSONL, CSV or parquet).

Every row is checked and its reference parsed before any model runs, so a bad file fails in a second
with the row named rather than an hour into generation. Test rows carry only ``idx``, ``level``,
``days``, ``query`` and ``reference_information``; the structured fields of validation rows are kept
for scoring only and never reach the prompt (the benchmark forbids structuring test queries).
"""

from __future__ import annotations

import csv
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imagine.io import DataError, iter_jsonl
from imagine.tasks.travelplanner.benchmark.official_reference import ParsedReference, parse_reference
from imagine.tasks.travelplanner.schema import DAYS, LEVELS, Query, query_from_record

REQUIRED_COLUMNS = ("level", "days", "query", "reference_information")
# What the evaluator needs from a validation row (visiting_city_number and date are derived or unused).
STRUCTURED_COLUMNS = ("org", "dest", "people_number", "local_constraint", "budget")


@dataclass
class SplitRow:
    position: int  # 0-based place in the file: the submission's line order
    idx: int
    level: str
    days: int
    query: str
    reference: ParsedReference
    record: dict[str, Any]

    def query_record(self) -> Query | None:
        """The structured query of a validation row (None for test rows, which hide those fields)."""
        if not all(_present(self.record.get(k)) for k in STRUCTURED_COLUMNS):
            return None
        return query_from_record({k: v for k, v in self.record.items() if k != "reference_information"},
                                 f"row {self.position + 1} (idx {self.idx}): ")


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, str) and not value.strip())


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """Raw rows of a split file; the format follows the suffix."""
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if suffix in (".jsonl", ".json"):
        rows = []
        for line, rec in iter_jsonl(path):
            if not isinstance(rec, dict):
                raise DataError(f"{path}:{line}: expected a JSON object per line")
            rows.append(rec)
        return rows
    if suffix == ".csv":
        csv.field_size_limit(sys.maxsize)  # reference tables run to hundreds of kilobytes per cell
        with open(path, newline="", encoding="utf-8") as fh:
            return [dict(r) for r in csv.DictReader(fh)]
    if suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise DataError(f"{path}: reading parquet needs pyarrow (pip install pyarrow), "
                            "or convert the split to JSONL or CSV") from None
        return pq.read_table(path).to_pylist()
    raise DataError(f"{path}: unknown split format {suffix!r} (expected .jsonl, .csv or .parquet)")


def _int(value: Any, name: str, where: str) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise DataError(f"{where}: column {name!r} is not an integer: {value!r}") from None
    if not number.is_integer():
        raise DataError(f"{where}: column {name!r} is not an integer: {value!r}")
    return int(number)


def load_split(path: str | Path, limit: int | None = None) -> list[SplitRow]:
    """Checked rows, references parsed; errors name the file, the row (1-based) and its ``idx``."""
    records = read_records(path)
    if not records:
        raise DataError(f"{path}: the split has no rows")
    if limit is not None:
        records = records[:limit]
    rows: list[SplitRow] = []
    seen: dict[int, int] = {}
    for position, rec in enumerate(records):
        where = f"{path}: row {position + 1}"
        idx = _int(rec["idx"], "idx", where) if _present(rec.get("idx")) else position + 1
        where += f" (idx {idx})"
        missing = [c for c in REQUIRED_COLUMNS if not _present(rec.get(c))]
        if missing:
            raise DataError(f"{where}: missing column(s) {missing}")
        if idx in seen:
            raise DataError(f"{where}: idx {idx} repeats row {seen[idx] + 1}")
        seen[idx] = position
        days = _int(rec["days"], "days", where)
        if days not in DAYS:
            raise DataError(f"{where}: days is {days}; the benchmark has 3, 5 or 7-day trips")
        level = str(rec["level"]).strip()
        if level not in LEVELS:
            raise DataError(f"{where}: level {level!r} is not one of {list(LEVELS)}")
        if not isinstance(rec["query"], str):
            raise DataError(f"{where}: column 'query' is not text")
        try:
            reference = parse_reference(rec["reference_information"])
        except DataError as exc:
            raise DataError(f"{where}: reference_information: {exc}") from None
        rows.append(SplitRow(position, idx, level, days, rec["query"], reference, rec))
    return rows


def validation_queries(rows: list[SplitRow]) -> list[Query] | None:
    """Structured queries when every row has them (a validation split), else None (a test split)."""
    queries = [r.query_record() for r in rows]
    if any(q is None for q in queries):
        return None
    return queries  # type: ignore[return-value]
