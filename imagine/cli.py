"""The ``imagine`` command.

Each subcommand lives in its own module exposing ``register(subparsers)``; the module is imported
only to build the parser, and heavy imports (torch, transformers) stay inside the handlers so that
``imagine eval`` starts in a fraction of a second.

Bad input anywhere below surfaces as a :class:`imagine.errors.UserError` subclass; ``main`` turns it into
a one-line message and exit code 2. ``UserError`` is re-exported here for callers that imported it
from this module before it moved down to ``imagine.errors``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from imagine.errors import UserError

# One line per command group; each module defines register(subparsers).
COMMAND_MODULES = [
    "imagine.sandbox.cli",  # imagine world ...
    "imagine.tasks.travelplanner.evaluator.eval_cli",  # imagine eval ...
    "imagine.tasks.travelplanner.generation.queries_cli",  # imagine queries gen ...
    "imagine.tasks.travelplanner.benchmark.predict_cli",  # imagine predict ...
    "imagine.mas.cli",  # imagine mas run / report
    "imagine.demo",  # imagine demo
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="imagine",
        description="IMAGINE on TravelPlanner: sandbox, query generation, multi-agent teacher, evaluation.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.func(args)
    except UserError as exc:
        print(f"imagine {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"imagine {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)
