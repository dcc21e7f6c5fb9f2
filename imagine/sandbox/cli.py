"""``imagine world``: inspect a sandbox database (and, with ``synth``, generate one)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    world = sub.add_parser("world", help="sandbox databases: inspect or synthesize")
    wsub = world.add_subparsers(dest="world_command", metavar="ACTION")
    wsub.required = True
    info = wsub.add_parser("info", help="load a database directory and print its table sizes")
    info.add_argument("--db", required=True, help="database directory in the official layout")
    info.set_defaults(func=_info)


def _info(args: argparse.Namespace) -> int:
    from imagine.sandbox.database import Database

    db = Database(args.db)
    for key, value in db.summary().items():
        print(f"{key:>24}: {value}")
    return 0
