"""The KV service over TCP: 3 node processes on loopback (``python -m openraft_trio serve``).

For each store (``file``: FileLogStore + durable KvStateMachine, fsync on; ``mem``:
MemLogStore) and each number of requests kept in flight (1, 64, 256 by default), it
measures write throughput and per-write latency (p50/p99) two ways:

* ``client``: from ``CLIENT_PROCS`` client processes, each a
  :class:`~openraft_trio.kv.KvClient` (one pipelined TCP connection to the leader) keeping
  its share of the requests in flight — what applications see (one Python client process
  tops out near 10k writes/s, so one would measure the client, not the cluster);
* ``leader``: load generated inside the leader's process (the ``bench`` op of
  ``serve --bench-op``) — no client hop; this is how PySyncObj, which has no client
  protocol, is measured by ``bench_peers``.

Each point runs ``repeats`` times for ``duration`` seconds after ``warmup``; the report
gives medians. Writes are ``Set(key, value)`` with 16-byte keys cycling over 1024 and
100-byte values. The leader's term is checked after each run: a leadership change during a
run is reported in the ``leader_changes`` column, never hidden.

CPU per committed write: around each run the CPU time (user + system, all threads) of every
node process is read from ``/proc/<pid>/stat``, and the leader's committed index from its
status; the ``CPU us/write L / F`` column is the leader's and one follower's CPU time over
the run (warm-up, window and drain) divided by the entries committed meanwhile. Read from
outside the processes: no hook in the library.

Run: ``python benchmarks/bench_tcp.py [--quick] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

import trio
from _bench_common import (
    AGGREGATION,
    CPU_HEADER,
    add_run_options,
    apply_quick,
    cpu_per_write,
    emit_report,
    environment,
    format_cpu_pair,
    median_or_none,
    percentile,
    process_cpu_seconds,
    table_lines,
)

from openraft_trio import RaftError
from openraft_trio.kv import KvClient, open_kv_client
from openraft_trio.testing.processes import ProcessCluster, open_process_cluster

NODES = 3
KEY_SPACE = 1024
KEY_BYTES = 16
VALUE_BYTES = 100
STORES = ("mem", "file")
MODES = ("client", "leader")
CLIENT_PROCS = 2
SERVE_ARGS = ["--bench-op"]
CPU_NOTE = (
    "CPU us/write L / F: user+sys CPU time of the leader's process / of one follower's "
    "(/proc/<pid>/stat, all threads)\nfrom just before a run to just after it (warm-up, "
    "window and drain), divided by the entries the leader committed meanwhile;\nmedian of "
    "repeats. The leader's figure includes the load generator in leader mode (as "
    "PySyncObj's does), the client connections in client mode."
)


def _key(i: int) -> str:
    return f"k{i % KEY_SPACE:0{KEY_BYTES - 1}d}"


async def _client_load(
    kv: KvClient, clients: int, warmup: float, duration: float
) -> dict[str, Any]:
    """``clients`` writers on one KvClient; latencies (seconds) of writes issued after
    the warm-up."""
    value = "v" * VALUE_BYTES
    start = trio.current_time()
    measure_from, end = start + warmup, start + warmup + duration
    latencies: list[float] = []
    errors: list[str] = []

    async def writer(w: int) -> None:
        i = w
        while not errors:
            t0 = trio.current_time()
            if t0 >= end:
                return
            try:
                await kv.put(_key(i), value)
            except RaftError as e:
                errors.append(f"{type(e).__name__}: {e}")
                return
            if t0 >= measure_from:
                latencies.append(trio.current_time() - t0)
            i += clients

    async with trio.open_nursery() as nursery:
        for w in range(clients):
            nursery.start_soon(writer, w)
    return {"latencies": latencies, "errors": errors[:5]}


def _load_client_main(argv: Sequence[str]) -> int:
    """``--load-client ADDR CLIENTS WARMUP DURATION``: one client process; prints JSON."""
    addr, clients, warmup, duration = argv[0], int(argv[1]), float(argv[2]), float(argv[3])

    async def main() -> dict[str, Any]:
        async with open_kv_client([addr], timeout=30, rpc_timeout=30) as kv:
            kv.leader_addr = addr
            return await _client_load(kv, clients, warmup, duration)

    print(json.dumps(trio.run(main)))
    return 0


async def _client_processes(
    addr: str, clients: int, warmup: float, duration: float
) -> dict[str, Any]:
    procs = min(CLIENT_PROCS, clients)
    shares = [clients // procs + (i < clients % procs) for i in range(procs)]
    outputs: list[dict[str, Any]] = []

    async def one(share: int) -> None:
        argv = [
            sys.executable,
            __file__,
            "--load-client",
            addr,
            str(share),
            str(warmup),
            str(duration),
        ]
        result = await trio.run_process(argv, capture_stdout=True)
        outputs.append(json.loads(result.stdout))

    async with trio.open_nursery() as nursery:
        for share in shares:
            nursery.start_soon(one, share)
    latencies = sorted(x for o in outputs for x in o["latencies"])
    return {
        "ops_per_s": len(latencies) / duration,
        "p50_us": percentile(latencies, 50) * 1e6 if latencies else float("nan"),
        "p99_us": percentile(latencies, 99) * 1e6 if latencies else float("nan"),
        "errors": [e for o in outputs for e in o["errors"]][:5],
        "client_processes": procs,
    }


def node_cpu_seconds(cl: ProcessCluster, *, system_only: bool = False) -> dict[int, float | None]:
    """CPU seconds (system time alone with ``system_only``) used so far by each running
    node process."""
    return {
        nid: None
        if node.process is None
        else process_cpu_seconds(node.process.pid, system_only=system_only)
        for nid, node in cl.nodes.items()
    }


async def _one_run(
    cl: ProcessCluster, leader: int, mode: str, clients: int, warmup: float, duration: float
) -> dict[str, Any]:
    leader_addr = cl.nodes[leader].addr
    follower = min(n for n in cl.nodes if n != leader)
    async with cl.client(rpc_timeout=warmup + duration + 30) as kv:
        before = await kv.status(leader_addr)
        cpu_before = node_cpu_seconds(cl)
        if mode == "leader":
            run: dict[str, Any] = await kv.call(
                leader_addr, "bench", clients, duration, warmup, VALUE_BYTES
            )
        else:
            run = await _client_processes(leader_addr, clients, warmup, duration)
        cpu_after = node_cpu_seconds(cl)
        after = await kv.status(leader_addr)
    run["leader_changed"] = after["term"] != before["term"] or after["state"] != "LEADER"
    writes = (after["committed"] or 0) - (before["committed"] or 0)  # None: nothing committed yet
    run["cpu"] = cpu_per_write(cpu_before, cpu_after, leader, follower, writes)
    return run


async def _measure_store(
    store: str,
    points: Sequence[int],
    modes: Sequence[str],
    duration: float,
    warmup: float,
    repeats: int,
) -> list[dict[str, Any]]:
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-tcp-") as base:
        async with open_process_cluster(
            NODES, base_dir=base, mem=store == "mem", extra_args=SERVE_ARGS
        ) as cl:
            leader = await cl.initialize()
            for mode in modes:
                for clients in points:
                    runs = []
                    for _ in range(repeats):
                        runs.append(await _one_run(cl, leader, mode, clients, warmup, duration))
                        leader = await cl.wait_leader()
                    results.append(_summary(store, mode, clients, runs))
                    r = results[-1]
                    print(
                        f"  {r['config']:<12} x{clients:<4} {r['ops_per_s']:>9,.0f} ops/s  "
                        f"p50 {r['p50_us']:>8,.0f} us  p99 {r['p99_us']:>8,.0f} us",
                        flush=True,
                    )
    return results


def _summary(store: str, mode: str, clients: int, runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "system": "openraft_trio",
        "config": f"{store}/{mode}",
        "store": store,
        "mode": mode,
        "clients": clients,
        "ops_per_s": statistics.median(r["ops_per_s"] for r in runs),
        "p50_us": statistics.median(r["p50_us"] for r in runs),
        "p99_us": statistics.median(r["p99_us"] for r in runs),
        "errors": sum(len(r["errors"]) for r in runs),
        "leader_changes": sum(bool(r["leader_changed"]) for r in runs),
        "cpu_us_per_write": {
            role: median_or_none([r["cpu"][f"{role}_us_per_write"] for r in runs])
            for role in ("leader", "follower")
        },
        "repeats": runs,
    }


def measure_openraft(
    points: Sequence[int] = (1, 64, 256),
    *,
    stores: Sequence[str] = STORES,
    modes: Sequence[str] = MODES,
    duration: float = 2.0,
    repeats: int = 3,
    warmup: float = 0.5,
) -> list[dict[str, Any]]:
    """One result dict per (store, mode, point); see the module docstring."""

    async def main() -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = []
        for store in stores:
            results += await _measure_store(store, points, modes, duration, warmup, repeats)
        return results

    return trio.run(main)


def format_table(results: Sequence[dict[str, Any]]) -> str:
    header = [
        "config", "clients", "ops/s", "p50 us", "p99 us", "errors", "ldr chg", CPU_HEADER
    ]
    rows = [
        [
            r["config"],
            str(r["clients"]),
            f"{r['ops_per_s']:,.0f}",
            f"{r['p50_us']:,.0f}",
            f"{r['p99_us']:,.0f}",
            str(r["errors"]),
            str(r["leader_changes"]),
            format_cpu_pair(r["cpu_us_per_write"]["leader"], r["cpu_us_per_write"]["follower"]),
        ]
        for r in results
    ]
    return "\n".join([*table_lines(header, rows), "", CPU_NOTE])


def settings(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "repeats": args.repeats,
        "cluster": f"{NODES} processes on 127.0.0.1 (python -m openraft_trio serve {SERVE_ARGS})",
        "key_bytes": KEY_BYTES,
        "key_space": KEY_SPACE,
        "value_bytes": VALUE_BYTES,
        "modes": {
            "client": f"KvClient in {CLIENT_PROCS} client processes (one at 1 in flight), "
            "one pipelined connection each",
            "leader": "load generated in the leader's process (bench op)",
        },
        "aggregation": AGGREGATION,
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_run_options(p)
    p.add_argument("--stores", type=lambda s: s.split(","), default=list(STORES))
    p.add_argument("--modes", type=lambda s: s.split(","), default=list(MODES))
    return apply_quick(p.parse_args(argv))


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--load-client"]:
        return _load_client_main(argv[1:])
    args = parse_args(argv)
    print(
        f"bench_tcp: {NODES} node processes on loopback; {args.repeats} x {args.duration}s "
        f"(+{args.warmup}s warm-up) per point",
        flush=True,
    )
    results = measure_openraft(
        args.points,
        stores=args.stores,
        modes=args.modes,
        duration=args.duration,
        repeats=args.repeats,
        warmup=args.warmup,
    )
    report = {
        "benchmark": "tcp",
        "env": environment(),
        "settings": settings(args),
        "results": results,
    }
    return emit_report(report, format_table(results), args.json)


if __name__ == "__main__":
    sys.exit(main())
