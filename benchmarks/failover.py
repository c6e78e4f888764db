"""Failover time: crash the leader of a healthy 5-node cluster, measure until a new leader
commits its first entry. Seeded trials on the deterministic simulator's clock (virtual time).

    python benchmarks/failover.py [--trials 1000] [--quick] [--json-failover PATH]

Setting: election timeout 150-300 ms, heartbeat 50 ms, one-way latency 5-10 ms, no other
faults. Each trial runs a fresh cluster under MockClock with trio's deterministic
scheduling seeded by the trial number, lets it settle, crashes the leader at a random
moment, and records the virtual time from the crash until some other node is leader with
its blank entry committed. Compare with Figure 16 of the Raft paper (150-300 ms timeouts:
most elections complete well under 300 ms of the timeout range, with a tail past it).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import trio
import trio.testing
from _bench_common import percentile

from openraft_trio import Config
from openraft_trio.testing import open_cluster
from openraft_trio.testing.deterministic import run_deterministic

CONFIG = Config(
    cluster_name="failover",
    election_timeout_min=0.15,
    election_timeout_max=0.30,
    heartbeat_interval=0.05,
).validate()


async def trial(seed: int) -> float:
    rng = random.Random(f"failover-{seed}")
    async with open_cluster(5, config=CONFIG, seed=seed) as c:
        c.router.set_latency(0.005, 0.010)
        old = await c.wait_for_leader(10)
        await trio.sleep(1.0 + rng.uniform(0, CONFIG.heartbeat_interval))
        old = c.leader_id() or old
        t0 = trio.current_time()
        await c.crash(old)
        while True:
            lid = c.leader_id()
            if lid is not None and lid != old:
                m = c.nodes[lid].metrics
                if m.committed is not None and m.committed.term == m.current_term:
                    return trio.current_time() - t0
            await trio.sleep(0.001)


def run_trial(seed: int) -> float:
    return run_deterministic(
        trial, seed, seed=seed, clock=trio.testing.MockClock(autojump_threshold=0)
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=1000)
    p.add_argument("--quick", action="store_true", help="100 trials")
    p.add_argument("--json-failover", dest="json", type=Path,
                   default=Path("benchmarks/results/failover.json"))
    # run_all.py passes every benchmark the same arguments: ignore the others' options.
    args, _ = p.parse_known_args(argv)
    if args.quick:
        args.trials = min(args.trials, 100)
    wall = time.perf_counter()
    times = [run_trial(seed) for seed in range(args.trials)]
    wall = time.perf_counter() - wall
    ms = sorted(t * 1000 for t in times)
    limit = 2 * CONFIG.election_timeout_max * 1000
    result: dict[str, Any] = {
        "trials": args.trials,
        "setting": "5 nodes, election timeout 150-300 ms, heartbeat 50 ms, latency 5-10 ms",
        "p50_ms": percentile(ms, 50),
        "p90_ms": percentile(ms, 90),
        "p99_ms": percentile(ms, 99),
        "max_ms": max(ms),
        "mean_ms": statistics.fmean(ms),
        "under_300ms": sum(v < 300 for v in ms) / len(ms),
        "target": f"p99 < {limit:.0f} ms (2 x election_timeout_max)",
        "target_met": percentile(ms, 99) < limit,
        "wall_s": wall,
    }
    buckets = [100, 200, 300, 400, 500, 600, 800, 1000, 10**9]
    cdf = {f"<= {b} ms" if b < 10**9 else "all": sum(v <= b for v in ms) / len(ms) for b in buckets}
    result["cdf"] = cdf
    print(f"failover over {args.trials} trials ({result['setting']}):")
    print(f"  p50 {result['p50_ms']:.0f} ms  p90 {result['p90_ms']:.0f} ms  "
          f"p99 {result['p99_ms']:.0f} ms  max {result['max_ms']:.0f} ms  mean {result['mean_ms']:.0f} ms")
    for k, v in cdf.items():
        print(f"  {k:>10}: {v:6.1%}")
    print(f"  target {result['target']}: {'MET' if result['target_met'] else 'NOT MET'}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
