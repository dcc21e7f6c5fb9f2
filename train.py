"""Training entry point for torchrun (or plain python for one process).

    torchrun --nproc_per_node=N train.py sft --config configs/sft/tiny_cpu.yaml [key=value ...]
    python train.py sft --config configs/sft/tiny_cpu.yaml train.max_steps=10
    torchrun --nproc_per_node=N train.py grpo --config configs/grpo/tiny_cpu.yaml [key=value ...]
    python train.py grpo --list-losses

Each stage is a subcommand with its own config dataclass; the dispatch stays explicit.
"""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="train.py", description="IMAGINE trainers (FSDP2, hand-written loops)")
    stages = parser.add_subparsers(dest="stage", metavar="STAGE")
    stages.required = True
    sft = stages.add_parser("sft", help="supervised fine-tuning on {'messages': [...]} JSONL")
    sft.add_argument("--config", help="YAML config (see configs/sft/)")
    sft.add_argument("overrides", nargs="*", help="dotted key=value overrides, e.g. train.lr=2e-5")
    grpo = stages.add_parser("grpo", help="GRPO against a task's reward, rollouts from an in-process engine")
    grpo.add_argument("--config", help="YAML config (see configs/grpo/)")
    grpo.add_argument("--list-losses", action="store_true", help="print the registered policy losses and exit")
    grpo.add_argument("overrides", nargs="*", help="dotted key=value overrides, e.g. loss.name=dapo")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from imagine.errors import UserError

    try:
        if args.stage == "sft":
            from imagine.train.sft import main as sft_main

            return sft_main(args.config, args.overrides)
        if args.stage == "grpo":
            if args.list_losses:
                from imagine.train.losses import describe

                print(describe())
                return 0
            from imagine.train.grpo import main as grpo_main

            return grpo_main(args.config, args.overrides)
        raise AssertionError(f"unhandled stage {args.stage}")
    except UserError as exc:
        print(f"train.py {args.stage}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
