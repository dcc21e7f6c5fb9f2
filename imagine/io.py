"""JSONL and file helpers shared by every stage.

Outputs that represent finished work (traces, rollouts, metrics) are append-only and fsynced, so a
crash loses at most the line being written; whole-file outputs are written atomically (temp file +
rename) so a reader never sees half a file.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from imagine.errors import UserError


class DataError(UserError, ValueError):
    """Bad input data; the message names the file and line."""


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)


def loads(data: bytes | str) -> Any:
    return orjson.loads(data)


def iter_jsonl(path: str | Path, *, skip_partial_tail: bool = False) -> Iterator[tuple[int, Any]]:
    """Yield (line_number, record) pairs; blank lines are skipped.

    ``skip_partial_tail`` tolerates a final line without a newline that does not parse: that is the
    signature of a writer killed mid-line, and resuming should drop it rather than fail.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from exc
    lines = raw.split(b"\n")
    last = len(lines) - 1
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            yield i + 1, orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            if skip_partial_tail and i == last:
                return
            raise DataError(f"{path}:{i + 1}: invalid JSON ({exc})") from exc


def read_jsonl(path: str | Path, **kw: Any) -> list[Any]:
    return [rec for _, rec in iter_jsonl(path, **kw)]


def write_jsonl(path: str | Path, records: Iterable[Any]) -> None:
    """Write a whole JSONL file atomically."""
    atomic_write_bytes(path, b"".join(dumps(r) + b"\n" for r in records))


class JsonlAppender:
    """Append-only JSONL writer: every record is flushed and fsynced before ``append`` returns."""

    def __init__(self, path: str | Path, *, fsync: bool = True):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._repair_tail()
        self._fh = open(self.path, "ab")  # noqa: SIM115 (closed in close()/__exit__)
        self._fsync = fsync

    def _repair_tail(self) -> None:
        """Cut a torn last line (no trailing newline) left by a killed writer."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        with open(self.path, "rb+") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 1))
            if fh.read(1) == b"\n":
                return
            data = self.path.read_bytes()
            cut = data.rfind(b"\n") + 1
            fh.truncate(cut)

    def append(self, record: Any) -> None:
        self._fh.write(dumps(record) + b"\n")
        self._fh.flush()
        if self._fsync:
            os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> JsonlAppender:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(path: str | Path, obj: Any, *, indent: bool = True) -> None:
    opt = orjson.OPT_INDENT_2 if indent else 0
    atomic_write_bytes(path, orjson.dumps(obj, option=opt | orjson.OPT_SERIALIZE_NUMPY) + b"\n")
