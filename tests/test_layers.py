"""Layering rules read from the import statements, so a violation fails CI instead of waiting for a review.

- Product code (``imagine/``, ``kernels/``) never imports ``tests``: an installed package has no
  ``tests`` to import, and a test helper that product code needs belongs in the product.
- The trainer (``imagine/train/``) never imports a task (``imagine/tasks/``): tasks plug in by name
  through ``imagine/train/task.py``, whose module paths are strings, so the loops stay task-free.

Every import counts, including those inside functions (the code base imports lazily on purpose).
"""

from __future__ import annotations

import ast

from tests.conftest import ROOT


def imported_modules(source: str, package: tuple[str, ...]) -> set[str]:
    """Absolute module names a file imports; relative imports resolved against its package."""
    tree = ast.parse(source)
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module
            out.add(module)
            out.update(f"{module}.{alias.name}" for alias in node.names)  # `from imagine import tasks`
    return out


def violations(folders: list[str], forbidden: str) -> list[str]:
    found = []
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            package = path.relative_to(ROOT).parts[:-1]
            for module in sorted(imported_modules(path.read_text(), package)):
                if module == forbidden or module.startswith(forbidden + "."):
                    found.append(f"{path.relative_to(ROOT)} imports {module}")
    return found


def test_the_checker_sees_lazy_relative_and_from_imports():
    source = ("def f():\n    from ..tasks import travelplanner\n    import tests.helpers\n"
              "from imagine import tasks\nfrom . import loading\n")
    found = imported_modules(source, ("imagine", "train"))
    assert {"imagine.tasks.travelplanner", "tests.helpers", "imagine.tasks", "imagine.train.loading"} <= found


def test_product_code_never_imports_tests():
    assert violations(["imagine", "kernels"], "tests") == []


def test_the_trainer_never_imports_a_task():
    assert violations(["imagine/train"], "imagine.tasks") == []
