"""What client sessions cost per write: the same writes with and without a session, in the
same run.

Two measurements, each alternating the two variants run by run (the order flips every
repeat) so that machine noise falls on both alike; medians and ratios are reported:

* ``tcp``: 3 node processes on loopback (``python -m openraft_trio serve``, ``mem`` and
  ``file`` stores), a :class:`~openraft_trio.kv.KvClient` in a client process writing
  ``put(key, 100-byte value)`` with ``sessions=True`` (the default: each write is a
  ``session_write``, a ``SessionCommand`` in the log, deduplicated by the state
  machine's session table) and with ``sessions=False`` (plain ``Set`` entries; a write of
  unknown outcome raises ``AmbiguousOutcome``). Throughput and p50/p99 latency per number
  of writes kept in flight.
* ``apply``: ``KvStateMachine.apply`` of batches of 64 entries, ``Set`` versus
  ``SessionCommand(Set)`` from 8 sessions acknowledging as they go: the state machine's
  share of the cost, in microseconds per entry (no Raft, no network).

Run: ``python benchmarks/bench_sessions.py [--quick] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

import trio
from _bench_common import (
    AGGREGATION,
    add_run_options,
    apply_quick,
    cpu_per_write,
    emit_report,
    environment,
    format_cpu_pair,
    median_or_none,
    percentile,
    table_lines,
)
from bench_tcp import _client_load, node_cpu_seconds

from openraft_trio import Entry, LeaderId, LogId, Normal
from openraft_trio.kv import KvStateMachine, Set, open_kv_client
from openraft_trio.sessions import OpenSession, SessionCommand
from openraft_trio.testing.processes import ProcessCluster, open_process_cluster

NODES = 3
KEY_SPACE = 1024
VALUE_BYTES = 100
STORES = ("mem", "file")
VARIANTS = ("plain", "session")
APPLY_BATCH = 64
APPLY_SESSIONS = 8


# -- tcp ------------------------------------------------------------------------------------


async def _load(addr: str, sessions: bool, clients: int, warmup: float, duration: float) -> Any:
    """``clients`` writers on one KvClient (bench_tcp's load); latencies after warm-up."""
    async with open_kv_client([addr], timeout=30, rpc_timeout=30, sessions=sessions) as kv:
        kv.leader_addr = addr
        await kv.put("warm", "v")  # opens the session outside the window
        return await _client_load(kv, clients, warmup, duration)


def _load_main(argv: Sequence[str]) -> int:
    """``--load ADDR SESSIONS CLIENTS WARMUP DURATION``: one client process; prints JSON."""
    addr, sessions = argv[0], argv[1] == "1"
    clients, warmup, duration = int(argv[2]), float(argv[3]), float(argv[4])
    cpu_before = time.process_time()
    out = trio.run(_load, addr, sessions, clients, warmup, duration)
    out["client_cpu_s"] = time.process_time() - cpu_before
    print(json.dumps(out))
    return 0


async def _one_run(
    cl: ProcessCluster, leader: int, variant: str, clients: int, warmup: float, duration: float
) -> dict[str, Any]:
    addr = cl.nodes[leader].addr
    follower = min(n for n in cl.nodes if n != leader)
    async with cl.client() as kv:
        before = await kv.status(addr)
    cpu_before = node_cpu_seconds(cl)
    argv = [
        sys.executable,
        __file__,
        "--load",
        addr,
        "1" if variant == "session" else "0",
        str(clients),
        str(warmup),
        str(duration),
    ]
    out = json.loads((await trio.run_process(argv, capture_stdout=True)).stdout)
    cpu_after = node_cpu_seconds(cl)
    async with cl.client() as kv:
        after = await kv.status(addr)
    writes = (after["committed"] or 0) - (before["committed"] or 0)
    latencies = sorted(out["latencies"])
    return {
        "cpu": cpu_per_write(cpu_before, cpu_after, leader, follower, writes),
        # The client process's CPU over the whole run (warm-up and all), per write it made.
        "client_cpu_us_per_write": out["client_cpu_s"] / max(writes, 1) * 1e6,
        "ops_per_s": len(latencies) / duration,
        "p50_us": percentile(latencies, 50) * 1e6 if latencies else float("nan"),
        "p99_us": percentile(latencies, 99) * 1e6 if latencies else float("nan"),
        "errors": out["errors"],
    }


async def measure_tcp(
    stores: Sequence[str], points: Sequence[int], warmup: float, duration: float, repeats: int
) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    for store in stores:
        with tempfile.TemporaryDirectory(prefix="bench-sessions-") as base:
            async with open_process_cluster(NODES, base_dir=base, mem=store == "mem") as cl:
                leader = await cl.initialize()
                for clients in points:
                    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in VARIANTS}
                    for repeat in range(repeats):
                        order = VARIANTS if repeat % 2 == 0 else VARIANTS[::-1]
                        for variant in order:
                            runs[variant].append(
                                await _one_run(cl, leader, variant, clients, warmup, duration)
                            )
                            leader = await cl.wait_leader()
                    row = _tcp_row(store, clients, runs)
                    results.append(row)
                    print(
                        f"  {store:<5} x{clients:<4} plain {row['plain']['ops_per_s']:>8,.0f} "
                        f"session {row['session']['ops_per_s']:>8,.0f} ops/s "
                        f"(ratio {row['ratio_ops']:.2f})",
                        flush=True,
                    )
    return results


def _tcp_row(store: str, clients: int, runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    row: dict[str, Any] = {"store": store, "clients": clients}
    for variant, samples in runs.items():
        row[variant] = {
            key: statistics.median(s[key] for s in samples)
            for key in ("ops_per_s", "p50_us", "p99_us")
        }
        row[variant]["errors"] = sum(len(s["errors"]) for s in samples)
        for role in ("leader", "follower"):
            row[variant][f"{role}_cpu_us_per_write"] = median_or_none(
                [s["cpu"][f"{role}_us_per_write"] for s in samples]
            )
        row[variant]["client_cpu_us_per_write"] = statistics.median(
            s["client_cpu_us_per_write"] for s in samples
        )
        row[variant]["repeats"] = samples
    # Paired per repeat, then the median: both variants of a repeat ran back to back.
    row["ratio_ops"] = statistics.median(
        s["ops_per_s"] / p["ops_per_s"] for s, p in zip(runs["session"], runs["plain"], strict=True)
    )
    row["ratio_p50"] = statistics.median(
        s["p50_us"] / p["p50_us"] for s, p in zip(runs["session"], runs["plain"], strict=True)
    )
    return row


# -- apply ----------------------------------------------------------------------------------


def _apply_once(variant: str, entries: int) -> float:
    """Microseconds per entry of ``KvStateMachine.apply`` over ``entries`` entries."""
    sm = KvStateMachine(session_timeout=3600.0)
    index = 0

    def entry(data: Any) -> Entry[Any]:
        nonlocal index
        index += 1
        return Entry(LogId(LeaderId(1, 1), index), Normal(data))

    value = "v" * VALUE_BYTES
    if variant == "session":
        opened = [entry(OpenSession(0.0)) for _ in range(APPLY_SESSIONS)]
        trio.run(sm.apply, opened)
        sessions = [e.log_id.index for e in opened]
    batches: list[list[Entry[Any]]] = []
    seqs = [0] * APPLY_SESSIONS
    for b in range(entries // APPLY_BATCH):
        batch = []
        for i in range(APPLY_BATCH):
            n = b * APPLY_BATCH + i
            command: Any = Set(f"k{n % KEY_SPACE}", value)
            if variant == "session":
                s = n % APPLY_SESSIONS
                seqs[s] += 1
                command = SessionCommand(sessions[s], seqs[s], seqs[s] - 1, 1.0, command)
            batch.append(entry(command))
        batches.append(batch)

    async def run() -> float:
        t0 = time.perf_counter()
        for batch in batches:
            await sm.apply(batch)
        return time.perf_counter() - t0

    return trio.run(run) / (len(batches) * APPLY_BATCH) * 1e6


def measure_apply(entries: int, repeats: int) -> dict[str, Any]:
    runs: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for repeat in range(repeats):
        for variant in VARIANTS if repeat % 2 == 0 else VARIANTS[::-1]:
            runs[variant].append(_apply_once(variant, entries))
    return {
        "entries": entries,
        "us_per_entry": {v: statistics.median(r) for v, r in runs.items()},
        "ratio": statistics.median(s / p for s, p in zip(runs["session"], runs["plain"], strict=True)),
        "repeats": runs,
    }


# -- report ---------------------------------------------------------------------------------


def format_tables(tcp: Sequence[dict[str, Any]], apply: dict[str, Any]) -> str:
    header = [
        "store", "in flight", "plain ops/s", "session ops/s", "ratio",
        "plain p50 us", "session p50 us", "p50 ratio",
        "CPU us/write L / F / client: plain", "session", "errors",
    ]
    rows = [
        [
            r["store"],
            str(r["clients"]),
            f"{r['plain']['ops_per_s']:,.0f}",
            f"{r['session']['ops_per_s']:,.0f}",
            f"{r['ratio_ops']:.2f}",
            f"{r['plain']['p50_us']:,.0f}",
            f"{r['session']['p50_us']:,.0f}",
            f"{r['ratio_p50']:.2f}",
            _cpu(r["plain"]),
            _cpu(r["session"]),
            str(r["plain"]["errors"] + r["session"]["errors"]),
        ]
        for r in tcp
    ]
    us = apply["us_per_entry"]
    apply_line = (
        f"KvStateMachine.apply: {us['plain']:.2f} us/entry plain, {us['session']:.2f} us/entry "
        f"in sessions (ratio {apply['ratio']:.2f}, {apply['entries']:,} entries, batches of "
        f"{APPLY_BATCH}, {APPLY_SESSIONS} sessions)"
    )
    return "\n".join([*table_lines(header, rows), "", apply_line])


def _cpu(variant: dict[str, Any]) -> str:
    return (
        format_cpu_pair(variant["leader_cpu_us_per_write"], variant["follower_cpu_us_per_write"])
        + f" / {variant['client_cpu_us_per_write']:,.0f}"
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_run_options(p)
    p.add_argument("--stores", type=lambda s: s.split(","), default=list(STORES))
    p.add_argument("--apply-entries", type=int, default=64_000)
    args = apply_quick(p.parse_args(argv))
    if args.points == [1, 64, 256]:
        args.points = [1, 64]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--load"]:
        return _load_main(argv[1:])
    args = parse_args(argv)
    repeats = max(args.repeats, 2) if not args.quick else args.repeats
    print(
        f"bench_sessions: {NODES} node processes on loopback; {repeats} x {args.duration}s "
        f"(+{args.warmup}s warm-up) per variant and point, variants alternating",
        flush=True,
    )
    tcp = trio.run(measure_tcp, args.stores, args.points, args.warmup, args.duration, repeats)
    entries = 6400 if args.quick else args.apply_entries
    apply = measure_apply(entries, max(repeats, 3))
    report = {
        "benchmark": "sessions",
        "env": environment(),
        "settings": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "repeats": repeats,
            "cluster": f"{NODES} processes on 127.0.0.1 (python -m openraft_trio serve)",
            "client": "one KvClient in one client process, one pipelined connection",
            "value_bytes": VALUE_BYTES,
            "aggregation": AGGREGATION + "; ratios are medians of per-repeat ratios",
        },
        "tcp": tcp,
        "apply": apply,
    }
    return emit_report(report, format_tables(tcp, apply), args.json)


if __name__ == "__main__":
    sys.exit(main())
