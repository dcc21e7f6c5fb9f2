"""The ``imagine`` command.

Each subcommand lives in its own module exposing ``register(subparsers)``; the module is imported
only to build the parser, and heavy imports (torch, transformers) stay inside the handlers so that
``imagine eval`` starts in a fraction of a second.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from imagine.config import ConfigError
from imagine.io import DataError

# One line per command group; each module defines register(subparsers).
COMMAND_MODULES = [
    "imagine.sandbox.cli",  # imagine world ...
    "imagine.tasks.travelplanner.eval_cli",  # imagine eval ...
    "imagine.tasks.travelplanner.queries_cli",  # imagine queries gen ...
    "imagine.tasks.travelplanner.predict_cli",  # imagine predict ...
    "imagine.mas.cli",  # imagine mas run / report
    "imagine.demo",  # imagine demo
]


class UserError(Exception):
    """An error caused by the user's input; printed without a traceback, exit code 2."""


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
    except (UserError, ConfigError, DataError, FileNotFoundError) as exc:
        print(f"imagine {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"imagine {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)
