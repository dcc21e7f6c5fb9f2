"""``imagine queries gen``: Stage-1 query generation (see ``generate.py``)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    queries = sub.add_parser("queries", help="generate new TravelPlanner queries (IMAGINE stage 1)")
    qsub = queries.add_subparsers(dest="queries_command", metavar="ACTION")
    qsub.required = True
    gen = qsub.add_parser(
        "gen", help="sample new queries with budgets, reference information and a feasibility flag",
        description="Generate queries the way the official generator does (eval spec §11), deduplicated "
                    "against this run and the --exclude files, each with structured reference information "
                    "and a solver-computed 'feasible' flag. Appends to --out and resumes an interrupted file.",
    )
    gen.add_argument("--db", required=True, help="database directory in the official layout (with flights)")
    gen.add_argument("--n", type=int, required=True, help="number of queries")
    gen.add_argument("--seed", type=int, default=0, help="generation seed (same seed, same file)")
    gen.add_argument("--out", required=True, help="output JSONL; an interrupted file is resumed when rerun with the same arguments")
    gen.add_argument("--exclude", action="append", default=[], metavar="FILE",
                     help="JSONL of queries not to duplicate: structured records or NL 'query' texts (repeatable)")
    gen.add_argument("--mix", default=None,
                     help="cell weights, e.g. 'easy:3=1,hard:7=2', 'hard=2' or '7=1' (default: 9 equal cells)")
    gen.add_argument("--solve-time-limit", dest="solve_time_limit", type=float, default=2.0,
                     help="seconds per query for the feasibility solver")
    gen.add_argument("--min-state-flights", dest="min_state_flights", type=int, default=None,
                     help="first-day flights a 5/7-day 'no self-driving' query needs (official 10; default: 10 "
                          "on a full-size flights table, 3 on a smaller one)")
    gen.add_argument("--feasible-only", dest="feasible_only", action="store_true",
                     help="write only queries the solver proved feasible, drawing candidates until --n are "
                          "written (an evaluation set where every query can pass)")
    gen.add_argument("--max-candidates", dest="max_candidates", type=int, default=None,
                     help="with --feasible-only: give up after this many drawn queries (default 10 x --n)")
    gen.add_argument("--report", default=None, help="write the rejection report JSON here (default OUT.report.json)")
    gen.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    gen.set_defaults(func=_gen)


def _gen(args: argparse.Namespace) -> int:
    import time
    from collections import Counter
    from pathlib import Path

    from imagine.errors import UserError
    from imagine.io import JsonlAppender, atomic_write_json, iter_jsonl
    from imagine.sandbox.database import Database
    from imagine.tasks.travelplanner.generation.dedup import ExcludeSet
    from imagine.tasks.travelplanner.generation.generate import GenConfig, Generator, parse_mix

    if args.n < 1:
        raise UserError("--n must be >= 1")
    try:
        mix = parse_mix(args.mix)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    t0 = time.perf_counter()
    db = Database(args.db)
    exclude = ExcludeSet(Generator.places(db))
    for path in args.exclude:
        exclude.load(path)
    # With --feasible-only the schedule is drawn for the candidate cap, not for --n, so the same
    # arguments always draw the same candidates and a resumed file continues the same sequence.
    draws = (args.max_candidates or 10 * args.n) if args.feasible_only else args.n
    cfg = GenConfig(n=draws, seed=args.seed, mix=mix, solve_time_limit_s=args.solve_time_limit,
                    min_state_flights=args.min_state_flights)
    gen = Generator(db, cfg, exclude)
    out = Path(args.out)
    done = start = 0
    if out.exists():
        for line, rec in iter_jsonl(out, skip_partial_tail=True):
            rid = rec.get("id") if isinstance(rec, dict) else None
            prefix = f"gen-{args.seed}-"
            index = int(rid[len(prefix):]) if isinstance(rid, str) and rid.startswith(prefix) \
                and rid[len(prefix):].isdigit() else -1
            # Plain runs write every index; --feasible-only skips the infeasible ones, leaving gaps.
            if index < start or (not args.feasible_only and index != start):
                raise UserError(f"{out}:{line}: expected record id {prefix}{start:06d}"
                                f"{' or later' if args.feasible_only else ''} to resume this run; "
                                "rerun with the same --seed/--n/--mix/--feasible-only or choose a new --out")
            done += 1
            start = index + 1
    if done > args.n:
        raise UserError(f"{out} already has {done} records, more than --n {args.n}")
    status: Counter = Counter()
    bar = None
    if args.progress:
        from tqdm import tqdm

        bar = tqdm(total=args.n, initial=done, unit="query", dynamic_ncols=True)
    try:
        with JsonlAppender(out) as sink:
            written = done
            for rec in gen.records(start=start) if done < args.n else ():
                label = {True: "feasible", False: "infeasible", None: "unknown"}[rec["feasible"]]
                if args.feasible_only and rec["feasible"] is not True:
                    status[f"{label} (skipped)"] += 1
                    continue
                sink.append(rec)
                status[label] += 1
                written += 1
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(status, refresh=False)
                if written >= args.n:
                    break
            if args.feasible_only and written < args.n:
                raise UserError(f"--feasible-only: {written} feasible queries in {draws} drawn candidates, "
                                f"fewer than --n {args.n}; raise --max-candidates or use a larger world")
    except RuntimeError as exc:
        raise UserError(str(exc)) from None
    finally:
        if bar is not None:
            bar.close()
    report = {
        "written": sum(v for k, v in status.items() if not k.endswith("(skipped)")), "resumed_from": done,
        "feasible": dict(status),
        "rejected": dict(gen.rejections.most_common()), "rejected_total": sum(gen.rejections.values()),
        "exclude_sources": exclude.sources, "seconds": round(time.perf_counter() - t0, 2),
    }
    atomic_write_json(args.report or f"{out}.report.json", report)
    print(f"wrote {report['written']} queries to {out} in {report['seconds']}s (resumed from {done})")
    print(f"feasibility: {dict(status)}")
    print(f"rejected {report['rejected_total']} candidates:")
    for reason, count in gen.rejections.most_common():
        print(f"  {count:>7}  {reason}")
    for path, n in exclude.sources.items():
        print(f"exclude: {n} queries from {path}")
    return 0
