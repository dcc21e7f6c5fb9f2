"""A copy warm-up for a student trained from scratch: find a flight row in the context and repeat it.

Why it exists: a pretrained model, like the paper's Qwen3-8B, arrives able to copy from its context
(induction heads). A 2M-parameter model trained from scratch on the teacher's traces does not learn
it in the steps the demo can afford: after 1,200 SFT steps it still wrote flight numbers from memory,
and every plan that flew failed the sandbox check (docs/demo.md). On this task, where the answer is
nothing but a copy, the demo's student learned it in 1,200 steps of 32 samples (about 10 minutes on
2 cores: 94% exact copies), and SFT from that model reached 40.7% held-out final pass against 9.3%
from scratch. ``make demo`` runs it as its warm-up stage (configs/sft/demo_warmup.yaml); docs/demo.md
has the measurements.

Each sample shows one flight table of the world (``max_tables`` more; several tables made the task
too hard to learn in the warm-up's steps), rendered as the student's prompts render
them, and asks for one row of one table, either verbatim or in the plan's transportation format.

    python -m imagine.demo.copy_task --db runs/demo/world --n 20000 --out runs/demo/copy.jsonl
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from imagine.io import atomic_write_bytes, dumps


def copy_samples(db, n: int, seed: int, style: str = "sorted", max_tables: int = 1) -> list[dict]:
    from imagine.tasks.travelplanner.reference import flight_row, render_reference

    rng = random.Random(seed)
    legs = sorted(key for key, flights in db.flights_by_leg_date.items() if flights)
    if not legs:
        raise ValueError("the database has no flights to copy from")
    out = []
    for _ in range(n):
        chosen = rng.sample(legs, k=min(len(legs), rng.randint(1, max_tables)))
        ref = {f"Flight from {a} to {b} on {d}": [flight_row(f) for f in db.flights_by_leg_date[(a, b, d)]]
               for a, b, d in chosen}
        text = render_reference(ref, style)
        a, b, d = rng.choice(chosen)
        shown = text.split(f"## Flight from {a} to {b} on {d}", 1)[1].split("\n\n", 1)[0].split("\n")[1:]
        k = rng.randrange(len(shown))
        number, _price, times = shown[k].split("; ")
        dep, arr = times.split("-")
        if rng.random() < 0.5:
            ask, answer = f"Repeat row {k + 1} of the flights from {a} to {b}.", shown[k]
        else:
            ask = f"Write row {k + 1} of the flights from {a} to {b} as a plan's transportation."
            answer = f"Flight Number: {number}, from {a} to {b}, Departure Time: {dep}, Arrival Time: {arr}"
        out.append({"messages": [{"role": "user", "content": f"{text}\n\n{ask}"},
                                 {"role": "assistant", "content": answer}]})
    return out


def main(argv: list[str] | None = None) -> int:
    import sys

    from imagine.sandbox.database import Database

    ap = argparse.ArgumentParser(prog="python -m imagine.demo.copy_task", description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", required=True, help="the world whose flight tables the samples show")
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    if args.n < 1:
        print("copy_task: error: --n must be positive", file=sys.stderr)
        return 2
    try:
        samples = copy_samples(Database(args.db), args.n, args.seed)
    except ValueError as exc:  # a world without flights
        print(f"copy_task: error: {exc}", file=sys.stderr)
        return 2
    atomic_write_bytes(Path(args.out), b"".join(dumps(s) + b"\n" for s in samples))
    print(f"wrote {len(samples)} copy samples to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
