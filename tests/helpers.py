"""Builders shared by several test packages (import them; fixtures stay in the conftest files)."""

from __future__ import annotations

from imagine.models.tiny import save_tiny_checkpoint, teacher_forced

__all__ = ["INTERPRETER_LOOPS_REASON", "descendants", "interpreter_loops_break", "kill_tree", "teacher_forced",
           "tiny_model_and_tokenizer"]


def tiny_model_and_tokenizer(tmp_path, *, sharpen: float = 1.0, tie: bool = True):
    """The product's tiny checkpoint, saved under ``tmp_path/m`` where the tests look for it."""
    return save_tiny_checkpoint(tmp_path / "m", sharpen=sharpen, tie=tie)


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (torchrun starts its workers in sessions of their own)."""
    from pathlib import Path

    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def kill_tree(pid: int) -> None:
    """SIGKILL a process and everything it started: a crash, not a shutdown."""
    import contextlib
    import os
    import signal

    for p in [*descendants(pid), pid]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGKILL)


INTERPRETER_LOOPS_REASON = ("Triton < 3.8's interpreter with numpy >= 2.4 cannot run loops over run-time "
                            "bounds (fixed in Triton 3.8); the GPU check runs these kernels compiled")


def interpreter_loops_break() -> bool:
    """Triton before 3.8 interprets a loop bound passed at run time (``range(0, vocab, BLOCK_V)``) with
    ``int()`` of a one-element array, which numpy 2.4 refuses. Compiled kernels on a GPU are not affected.
    The GPU image this project is lent pairs Triton 3.6 with numpy 2.5, so a CPU rehearsal of it meets this."""
    try:
        import numpy
        import triton
    except ImportError:
        return False

    def version(module):
        return tuple(int(x) for x in module.__version__.split(".")[:2])

    return version(triton) < (3, 8) and version(numpy) >= (2, 4)
