"""Snapshots and compaction, measured (issue 4's figures).

    python benchmarks/bench_snapshot.py [--entries 100000] [--quick]

1. A learner added to a 3-node in-process cluster that already holds N entries catches up
   (a) through a snapshot, the leader's log compacted, and (b) by replaying the whole log,
   compaction off — the same N in the same run.
2. Snapshot size and build time of a KvStateMachine holding N keys (median of 5).
3. Memory held by the leader's log before and after compaction (tracemalloc).
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import attrs
import trio

import openraft_trio as raft
from openraft_trio._types import Entry, LeaderId, LogId, Normal
from openraft_trio.kv import KvStateMachine, Set
from openraft_trio.testing import open_cluster

BATCH = 1000


def config(compaction: bool) -> raft.Config:
    return attrs.evolve(
        raft.Config(
            cluster_name="bench-snap",
            election_timeout_min=1.0,
            election_timeout_max=2.0,
            heartbeat_interval=0.1,
        ),
        snapshot_policy=5000 if compaction else 10**9,
        max_in_snapshot_log_to_keep=1000,
        max_payload_entries=1000,
    )


async def fill(node: Any, n: int) -> int:
    last = 0
    for base in range(0, n, BATCH):
        resps = await node.client_write_many(
            [Set(f"key-{i}", i) for i in range(base, min(n, base + BATCH))]
        )
        last = resps[-1].log_id.index
    return last


async def learner_catch_up(n: int, compaction: bool) -> dict[str, Any]:
    async with open_cluster(3, config=config(compaction), seed=1) as c:
        lid = await c.wait_for_leader(10)
        leader = c.nodes[lid]
        last = await fill(leader, n)
        await c.wait_applied(last, timeout=120)
        if compaction:
            await leader.trigger.snapshot()
            await leader.wait(60).metrics(
                lambda m: m.purged is not None and m.purged.index >= last - 1000, "purged"
            )
        await c.start(4)
        t0 = time.perf_counter()
        await leader.add_learner(4, raft.Node("node-4"), blocking=False)
        await c.nodes[4].wait(600).applied_index_at_least(last)
        elapsed = time.perf_counter() - t0
        m = c.nodes[4].metrics
        ok = c.state_machines[4].data == c.state_machines[lid].data
        return {
            "mode": "snapshot" if compaction else "log replay",
            "entries": n,
            "seconds": elapsed,
            "via_snapshot": m.snapshot is not None and compaction,
            "replica_identical": ok,
        }


async def snapshot_size_and_time(n: int, repeats: int = 5) -> dict[str, Any]:
    sm = KvStateMachine()
    lid = LeaderId(1, 1)
    await sm.apply([Entry(LogId(lid, i), Normal(Set(f"key-{i}", i))) for i in range(n)])
    times, size = [], 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        snap = await sm.build_snapshot()
        times.append(time.perf_counter() - t0)
        size = len(snap.data)
    t0 = time.perf_counter()
    fresh = KvStateMachine()
    await fresh.install_snapshot(snap.meta, snap.data)
    install = time.perf_counter() - t0
    return {
        "keys": n,
        "bytes": size,
        "bytes_per_key": size / n,
        "build_s_median": statistics.median(times),
        "install_s": install,
    }


async def log_memory(n: int) -> dict[str, Any]:
    gc.collect()
    tracemalloc.start()
    async with open_cluster(1, config=config(False), seed=2) as c:
        await c.wait_for_leader(10)
        node = c.nodes[1]
        await fill(node, n)
        store = c.log_stores[1]
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        entries_before = len(store.entries_snapshot())
        await node.trigger.snapshot()
        await node.wait(60).snapshot_index_at_least(n - 1)
        await node.trigger.purge_log(n)
        await node.wait(60).metrics(lambda m: m.purged is not None and m.purged.index >= n - 1, "purged")
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
        entries_after = len(store.entries_snapshot())
    tracemalloc.stop()
    return {
        "entries_before": entries_before,
        "entries_after": entries_after,
        "traced_bytes_before": before,
        "traced_bytes_after": after,
        "freed_bytes": before - after,
        "note": "whole process (3 replicas' state machines stay); the difference is the log",
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--entries", type=int, default=100_000)
    p.add_argument("--quick", action="store_true", help="10,000 entries")
    p.add_argument("--json-snapshot", dest="json", type=Path,
                   default=Path("benchmarks/results/bench_snapshot.json"))
    args, _ = p.parse_known_args(argv)
    n = 10_000 if args.quick else args.entries
    results: dict[str, Any] = {"entries": n}
    results["catch_up"] = [
        trio.run(learner_catch_up, n, True),
        trio.run(learner_catch_up, n, False),
    ]
    results["snapshot"] = trio.run(snapshot_size_and_time, n)
    results["log_memory"] = trio.run(log_memory, n)
    a, b = results["catch_up"]
    s, mem = results["snapshot"], results["log_memory"]
    print(f"learner catch-up of {n:,} entries (3-node in-process cluster):")
    print(f"  by snapshot  : {a['seconds']:8.3f} s  identical={a['replica_identical']}")
    print(f"  by log replay: {b['seconds']:8.3f} s  identical={b['replica_identical']}")
    print(f"  ratio replay/snapshot: {b['seconds'] / a['seconds']:.1f}x")
    print(f"snapshot of {n:,} keys: {s['bytes']:,} bytes ({s['bytes_per_key']:.1f} B/key), "
          f"build {s['build_s_median'] * 1000:.1f} ms (median of 5), install {s['install_s'] * 1000:.1f} ms")
    print(f"log memory: {mem['entries_before']:,} entries -> {mem['entries_after']:,}; traced "
          f"{mem['traced_bytes_before'] / 2**20:.1f} MiB -> {mem['traced_bytes_after'] / 2**20:.1f} MiB "
          f"(freed {mem['freed_bytes'] / 2**20:.1f} MiB)")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2, default=str))
    return 0 if a["replica_identical"] and b["replica_identical"] else 1


if __name__ == "__main__":
    sys.exit(main())
