"""Command line of the fuzz harness: ``python -m fuzz --target NAME --seconds N``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from fuzz.engine import Stats, run_atheris, run_one, run_random
from fuzz.targets import TARGETS, Finding, make_targets
from fuzz.world import ROOT, build_world


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fuzz", description=__doc__)
    parser.add_argument("--target", choices=TARGETS, help="what to fuzz")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long (default 60)")
    parser.add_argument("--engine", choices=("random", "atheris"), default="random")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: time)")
    parser.add_argument("--budget", type=float, default=2.0, help="seconds allowed per input")
    parser.add_argument("--findings", type=Path, default=ROOT / "fuzz" / "findings")
    parser.add_argument("--keys", type=Path, default=ROOT / "fuzz" / "corpus" / "keys",
                        help="provider keys kept across runs, so findings replay")  # fmt: skip
    parser.add_argument("--replay", type=Path, nargs="*", help="run saved inputs and exit")
    parser.add_argument("--stats", type=Path, help="also write the final figures here (JSON)")
    parser.add_argument("--list", action="store_true", help="list the targets and exit")
    args = parser.parse_args(argv)

    started = time.monotonic()
    world = build_world(args.keys)
    targets = make_targets(world)
    if args.list:
        for name in TARGETS:
            target = targets[name]
            print(f"{name:16} {len(target.seeds):3} seeds  {target.description}")
        return 0
    if args.target is None:
        parser.error("--target is required (see --list)")
    target = targets[args.target]
    findings_dir = args.findings / args.target

    if args.replay is not None:
        status = 0
        for path in args.replay:
            try:
                print(f"{path}: {run_one(target, path.read_bytes(), args.budget)}")
            except Finding as finding:
                status = 1
                print(f"{path}: FINDING {finding}\n{finding.detail}")
        return status

    seed = args.seed if args.seed is not None else int(time.time())
    print(
        f"fuzzing {args.target} for {args.seconds:g}s with the {args.engine} engine, seed {seed}"
        f" (world built in {time.monotonic() - started:.1f}s, {len(target.seeds)} seeds)",
        file=sys.stderr,
    )
    stats: Stats
    if args.engine == "atheris":
        stats = run_atheris(
            target, seconds=args.seconds, seed=seed, budget=args.budget,
            findings_dir=findings_dir, corpus_dir=ROOT / "fuzz" / "corpus" / args.target,
        )  # fmt: skip
    else:
        stats = run_random(
            target, seconds=args.seconds, seed=seed, budget=args.budget, findings_dir=findings_dir
        )
    figures = stats.to_dict() | {"seed": seed}
    print(json.dumps(figures, indent=2))
    if args.stats is not None:
        args.stats.write_text(json.dumps(figures, indent=2) + "\n")
    return 1 if stats.findings else 0


if __name__ == "__main__":
    sys.exit(main())
