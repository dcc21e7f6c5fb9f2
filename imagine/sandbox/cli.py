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
    synth = wsub.add_parser(
        "synth", help="write a synthetic database in the official layout (or add flights to a real one)",
        description="Write a deterministic synthetic TravelPlanner database, or copy a real one and give it "
                    "synthetic flights for the (origin, destination, date) keys it lacks.",
    )
    synth.add_argument("--out", required=True, help="output directory (created)")
    synth.add_argument("--seed", type=int, default=0, help="world seed (same seed, same files)")
    synth.add_argument("--cities", type=int, default=None, help="number of cities (default 45)")
    synth.add_argument("--states", type=int, default=None, help="number of states (default 10)")
    synth.add_argument("--tiny", action="store_true", help="a tiny world for exhaustive solver checks")
    for kind, default in (("restaurants", "12-26"), ("attractions", "5-14"), ("accommodations", "8-18")):
        synth.add_argument(f"--{kind}", default=None, metavar="LO-HI",
                           help=f"{kind} per city, a range or one number (default {default})")
    for share, default, what in SHARES:
        synth.add_argument(f"--{share.replace('_', '-')}", dest=share, type=float, default=None,
                           help=f"{what} (default {default})")
    synth.add_argument("--add-flights-to", dest="add_flights_to", default=None, metavar="DB",
                       help="copy this real database to --out and add synthetic flights to it")
    synth.add_argument("--flight-cities", dest="flight_cities", default=None,
                       help="with --add-flights-to: comma-separated cities that get synthetic flights (default all)")
    synth.set_defaults(func=_synth)


SHARES = [
    ("missing_route_share", 0.04, "share of city pairs without driving data; more makes the prompt's "
                                  "transport options matter"),
    ("airport_share", 0.8, "share of cities with an airport"),
    ("served_pair_share", 0.55, "share of airport pairs with any flights"),
    ("flight_day_share", 0.7, "share of days on which a served pair has flights"),
    ("cuisine_share", 0.38, "chance a restaurant serves each minor cuisine; lower gives shorter cuisine lists"),
]


def _info(args: argparse.Namespace) -> int:
    from imagine.sandbox.database import Database

    db = Database(args.db)
    for key, value in db.summary().items():
        print(f"{key:>24}: {value}")
    return 0


def _synth(args: argparse.Namespace) -> int:
    import time

    from imagine.errors import UserError
    from imagine.sandbox.database import Database
    from imagine.sandbox.synth import SynthConfig, add_flights, real_flights_config, synthesize

    t0 = time.perf_counter()
    if args.add_flights_to:
        cfg = real_flights_config(args.seed)
        cities = [c.strip() for c in args.flight_cities.split(",") if c.strip()] if args.flight_cities else None
        try:
            root = add_flights(args.add_flights_to, args.out, cfg, cities)
        except ValueError as exc:
            raise UserError(str(exc)) from None
    else:
        cfg = SynthConfig.tiny(args.seed) if args.tiny else SynthConfig(seed=args.seed)
        if args.cities is not None:
            cfg.n_cities = args.cities
        if args.states is not None:
            cfg.n_states = args.states
        if cfg.n_cities < 3 or cfg.n_states < 1:
            raise UserError("--cities must be >= 3 and --states >= 1")
        for kind in ("restaurants", "attractions", "accommodations"):
            if getattr(args, kind) is not None:
                setattr(cfg, kind, _range(f"--{kind}", getattr(args, kind)))
        for share, _, _ in SHARES:
            value = getattr(args, share)
            if value is not None:
                if not 0.0 <= value <= 1.0:
                    raise UserError(f"--{share.replace('_', '-')} must be in [0, 1]")
                setattr(cfg, share, value)
        root = synthesize(args.out, cfg)
    db = Database(root)
    print(f"wrote {root} in {time.perf_counter() - t0:.2f}s")
    for key, value in db.summary().items():
        print(f"{key:>24}: {value}")
    return 0


def _range(flag: str, text: str) -> tuple[int, int]:
    from imagine.errors import UserError

    try:
        lo, _, hi = text.partition("-")
        pair = (int(lo), int(hi or lo))
    except ValueError:
        raise UserError(f"{flag} {text!r}: expected a number or a range LO-HI") from None
    if pair[0] < 1 or pair[1] < pair[0]:
        raise UserError(f"{flag} {text!r}: need 1 <= LO <= HI")
    return pair
