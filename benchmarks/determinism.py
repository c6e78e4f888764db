"""Determinism of the simulator: each seed run twice in one process and once in a fresh
process must give the same trace hash.

    python benchmarks/determinism.py [--seeds 0-99] [--duration 10]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
from pathlib import Path

from openraft_trio.testing.sim import run_simulation


def _hash(seed: int, duration: float) -> str:
    return run_simulation(seed, nodes=5, duration=duration).trace_hash


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="0-99")
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--json-determinism", dest="json", type=Path,
                   default=Path("benchmarks/results/determinism.json"))
    args, _ = p.parse_known_args(argv)
    lo, _, hi = args.seeds.partition("-")
    seeds = list(range(int(lo), int(hi or lo) + 1))
    wall = time.perf_counter()
    first = {s: _hash(s, args.duration) for s in seeds}
    second = {s: _hash(s, args.duration) for s in seeds}
    # A fresh interpreter per seed: spawn, one task per child process.
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2, maxtasksperchild=1) as pool:
        fresh = dict(zip(seeds, pool.starmap(_hash, [(s, args.duration) for s in seeds]),
                         strict=True))
    wall = time.perf_counter() - wall
    same_twice = sum(first[s] == second[s] for s in seeds)
    same_fresh = sum(first[s] == fresh[s] for s in seeds)
    distinct = len(set(first.values()))
    result = {
        "seeds": len(seeds),
        "duration": args.duration,
        "same_hash_run_twice": same_twice,
        "same_hash_fresh_process": same_fresh,
        "distinct_hashes": distinct,
        "mismatches": [s for s in seeds if not (first[s] == second[s] == fresh[s])],
        "wall_s": wall,
    }
    print(f"determinism over {len(seeds)} seeds x {args.duration:g}s (5 nodes, all faults):")
    print(f"  same hash when run twice in one process: {same_twice}/{len(seeds)}")
    print(f"  same hash in a fresh process:            {same_fresh}/{len(seeds)}")
    print(f"  distinct hashes across seeds:            {distinct}/{len(seeds)}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    return 0 if not result["mismatches"] else 1


if __name__ == "__main__":
    sys.exit(main())
