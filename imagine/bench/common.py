"""What the benchmark scripts share: reading this process's memory counters and writing a result table."""

from __future__ import annotations

from pathlib import Path


def status_kib(field: str) -> int:
    """A ``/proc/self/status`` counter in KiB (``VmRSS``, ``VmHWM``); raises rather than report a made-up 0."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(f"/proc/self/status has no {field}")


def write_report(path: Path, text: str) -> Path:
    """Save a Markdown result under ``bench/results`` (or wherever ``--out`` points) and show it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text if text.endswith("\n") else text + "\n")
    print(text)
    return path
