"""The harness's simulator layer: run seeds one by one, stop at the first that fails.

``python -m tests.mutants._sim_layer --seeds 0-7 --duration 10 [--membership]`` exits 1
at the first seed with a violation (printing its kinds and first message), 0 when every
seed passes. Run inside the mutated copy, it imports the mutated package.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from openraft_trio.testing.sim._cli import RunSpec, parse_seeds, run_seed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.mutants._sim_layer")
    parser.add_argument("--seeds", required=True, help="A-B, N or a comma list")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--nodes", type=int, default=5)
    parser.add_argument("--membership", action="store_true")
    args = parser.parse_args(argv)
    spec = RunSpec(nodes=args.nodes, duration=args.duration, membership=args.membership)
    seeds = parse_seeds(args.seeds)
    for seed in seeds:
        summary = run_seed((seed, spec))
        if not summary.ok:
            kinds = ", ".join(sorted(set(summary.violation_kinds)))
            first = summary.violations[0].splitlines()[0][:160]
            print(f"seed {seed}: {kinds} | {first}")
            print(f"replay: {summary.replay}")
            return 1
    print(f"{len(seeds)} seeds clean")
    return 0


if __name__ == "__main__":
    sys.exit(main())
