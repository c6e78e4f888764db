"""Sustained write throughput (issue 14): does a long run keep its first seconds' pace?

A fresh 3-node ``open_cluster`` (``MemLogStore``, a fault-free ``Router``,
``KvStateMachine``) with the *default* ``Config`` (snapshots every
``snapshot_policy.logs_since_last`` entries, as shipped) and the default CPython GC takes
256 client tasks writing unique keys (``client_write(Set(...))`` in a loop) for
``--duration`` seconds (30). Every write adds a key, so the state, and what each snapshot
and each full GC collection costs, grows all run long.

Reported: writes/s per 1 s and per 5 s window; the last 5 s window against the first; the
run's average against the Trio floor (bench_core's floor: the same 256 clients, one round
trip to one Trio task, measured just before in the same process); GC pauses; how many
snapshots the leader built and how long each build took (from the request to the
``SnapshotBuilt`` report, wall time). Targets (printed MET/NOT MET, never asserted): last
5 s >= 0.8 x first 5 s, and the average >= 0.6 x the floor.

Run: ``python benchmarks/bench_sustained.py [--duration 30] [--floor-duration 5]
[--repeats 1] [--json PATH] [--quick]`` (``--quick``: 6 s, windows of 2 s, floor 1 s).
"""

from __future__ import annotations

import argparse
import gc
import itertools
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import trio
from _bench_common import (
    check_leadership,
    config_settings,
    environment,
    lost_leadership,
    report_leadership_changed,
    table_lines,
    write_report,
)
from bench_core import Reply, _floor_server, _GcPauses

from openraft_trio import Config, ForwardToLeader, SnapshotPolicy
from openraft_trio.kv import KvStateMachine, Set
from openraft_trio.testing import open_cluster

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "bench_sustained.json"
CLIENTS = 256
TARGET_LAST_OVER_FIRST = 0.8
TARGET_AVERAGE_OVER_FLOOR = 0.6


def sustained_config(snapshot_policy: SnapshotPolicy | int | None = None) -> Config:
    """The default Config, but with election timeouts generous enough that leadership holds
    under full load (as in bench_core); the snapshot policy is the default one unless
    given."""
    config = Config(
        cluster_name="bench-sustained",
        election_timeout_min=1.0,
        election_timeout_max=2.0,
        heartbeat_interval=0.1,
    )
    if snapshot_policy is None:
        return config
    return attrs.evolve(config, snapshot_policy=snapshot_policy)


async def _drive(clients: int, make_call: Any, duration: float) -> tuple[float, list[float]]:
    """Run ``clients`` looping tasks for ``duration`` s; return (start, completion times)."""
    done: list[float] = []
    record = done.append
    clock = time.perf_counter
    start = clock()
    end = start + duration

    async def client(k: int) -> None:
        call = make_call(k)
        while clock() < end:
            await call()
            record(clock())

    async with trio.open_nursery() as nursery:
        for k in range(clients):
            nursery.start_soon(client, k)
    return start, [t for t in done if t <= end]


class CpuSamples:
    """(wall, process CPU) pairs taken every 0.1 s by a task: how much CPU this process got
    in each window. Other processes share the machine's cores, so a window's writes per
    CPU second is steadier than its writes per second."""

    def __init__(self) -> None:
        self.samples = [(time.perf_counter(), time.process_time())]

    async def run(self, until: float) -> None:
        while time.perf_counter() < until:
            await trio.sleep(0.1)
            self.samples.append((time.perf_counter(), time.process_time()))

    def cpu_at(self, wall: float) -> float:
        """Process CPU seconds at ``wall``, interpolated between samples."""
        before = max((s for s in self.samples if s[0] <= wall), default=self.samples[0])
        after = min((s for s in self.samples if s[0] >= wall), default=self.samples[-1])
        if after[0] == before[0]:
            return before[1]
        share = (wall - before[0]) / (after[0] - before[0])
        return before[1] + share * (after[1] - before[1])

    def per_second(self, start: float, seconds: int) -> list[float]:
        marks = [self.cpu_at(start + i) for i in range(seconds + 1)]
        return [b - a for a, b in itertools.pairwise(marks)]


async def run_floor(clients: int, duration: float) -> tuple[float, float]:
    """Writes/s and writes per CPU second of the Trio floor (one round trip to one Trio
    task, bench_core's)."""
    tx, rx = trio.open_memory_channel[tuple[list[Any], list[Reply]]](
        sustained_config().channel_capacity
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_floor_server, rx)

        def make_call(k: int) -> Any:
            async def call() -> Any:
                reply = Reply(trio.Event())
                await tx.send(([k], [reply]))
                return await reply.wait()

            return call

        cpu0 = time.process_time()
        _, done = await _drive(clients, make_call, duration)
        cpu = time.process_time() - cpu0
        nursery.cancel_scope.cancel()
    return len(done) / duration, len(done) / cpu


def _watch_builds(sm: Any, builds: list[tuple[float, float]]) -> None:
    """Record (start, seconds) of each snapshot ``sm`` builds, on the instance: inline
    (``build_snapshot``) or beside apply (the builder ``get_snapshot_builder`` returns)."""
    clock = time.perf_counter

    def timed(build: Any) -> Any:
        async def wrapper() -> Any:
            t0 = clock()
            snapshot = await build()
            builds.append((t0, clock() - t0))
            return snapshot

        return wrapper

    sm.build_snapshot = timed(sm.build_snapshot)
    get_builder = getattr(sm, "get_snapshot_builder", None)
    if get_builder is not None:

        def get_timed_builder() -> Any:
            builder = get_builder()
            builder.build_snapshot = timed(builder.build_snapshot)
            return builder

        sm.get_snapshot_builder = get_timed_builder


class InlineKv(KvStateMachine):
    """A KvStateMachine whose snapshots are built between applies (no snapshot builder)."""

    get_snapshot_builder = None  # type: ignore[assignment]


async def run_raft(
    clients: int,
    duration: float,
    seed: int,
    snapshot_policy: SnapshotPolicy | int | None = None,
    inline_builds: bool = False,
) -> dict[str, Any]:
    config = sustained_config(snapshot_policy)
    factory = InlineKv if inline_builds else KvStateMachine
    async with open_cluster(3, config=config, seed=seed, state_machine_factory=factory) as cluster:
        leader_id = await cluster.wait_for_leader(10)
        leader = cluster.nodes[leader_id]
        term = leader.metrics.current_term
        builds: list[tuple[float, float]] = []
        _watch_builds(cluster.state_machines[leader_id], builds)

        def make_call(k: int) -> Any:
            i = 0

            async def write() -> Any:
                nonlocal i
                i += 1
                try:
                    return await leader.client_write(Set(f"c{k}-{i}", i))
                except ForwardToLeader as e:
                    raise lost_leadership(leader_id, e) from e

            return write

        cpu = CpuSamples()
        with _GcPauses() as pauses:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(cpu.run, time.perf_counter() + duration + 0.5)
                start, done = await _drive(clients, make_call, duration)
        info = check_leadership(cluster, leader_id, term)
    per_second = [0] * max(1, int(duration))
    for t in done:
        per_second[min(len(per_second) - 1, int(t - start))] += 1
    inside = [d for t, d in pauses.pauses if start <= t <= start + duration]
    done.sort()
    # The longest time no write completed: a snapshot built on the apply path, or a full
    # GC collection, stops every client at once.
    stalls = sorted((b - a for a, b in itertools.pairwise(done)), reverse=True)
    return {
        "per_second": per_second,
        "cpu_per_second": [round(c, 3) for c in cpu.per_second(start, len(per_second))],
        "average": len(done) / duration,
        "max_stall_ms": round(stalls[0] * 1e3, 1) if stalls else 0.0,
        "stalls_over_50ms": sum(1 for d in stalls if d > 0.05),
        "gc_collections": len(inside),
        "gc_pause_ms": sum(inside) * 1e3,
        "gc_max_pause_ms": max(inside, default=0.0) * 1e3,
        "snapshots": len(builds),
        "snapshot_build_ms": [round(d * 1e3, 1) for _, d in builds],
        "snapshot_build_start_s": [round(t - start, 2) for t, _ in builds],
        "cluster": info,
    }


def windows(per_second: list[int], size: int) -> list[float]:
    """Writes/s in consecutive ``size``-second windows (a short last window is dropped)."""
    return [sum(per_second[i : i + size]) / size for i in range(0, len(per_second) - size + 1, size)]


def summarize(floor: tuple[float, float], raft: dict[str, Any], window: int) -> dict[str, Any]:
    wins = windows(raft["per_second"], window)
    cpu = windows(raft["cpu_per_second"], window)
    per_cpu = [w / c if c else 0.0 for w, c in zip(wins, cpu, strict=True)]
    first, last = wins[0], wins[-1]
    total_cpu = sum(raft["cpu_per_second"])
    return {
        "floor_ops_per_s": floor[0],
        "floor_ops_per_cpu_s": floor[1],
        "average_ops_per_s": raft["average"],
        "average_ops_per_cpu_s": raft["average"] * len(raft["per_second"]) / total_cpu,
        "windows_ops_per_s": wins,
        "windows_ops_per_cpu_s": per_cpu,
        "last_over_first": last / first if first else 0.0,
        "average_over_floor": raft["average"] / floor[0],
        # The same ratios per CPU second the process got (steadier on a shared machine).
        "cpu_last_over_first": per_cpu[-1] / per_cpu[0] if per_cpu[0] else 0.0,
        "cpu_average_over_floor": (
            raft["average"] * len(raft["per_second"]) / total_cpu / floor[1]
        ),
    }


def format_report(runs: list[dict[str, Any]], window: int) -> tuple[str, list[dict[str, Any]]]:
    lines: list[str] = []
    for n, run in enumerate(runs, 1):
        raft, summary = run["raft"], run["summary"]
        header = ("second", *(str(i) for i in range(len(raft["per_second"]))))
        lines += table_lines(header, [
            ("writes/s", *(f"{v / 1000:.0f}k" for v in raft["per_second"])),
            ("CPU s", *(f"{c:.2f}" for c in raft["cpu_per_second"])),
        ])
        header = ("window", *(f"{i * window}-{(i + 1) * window}s"
                              for i in range(len(summary["windows_ops_per_s"]))))
        lines += table_lines(header, [
            ("writes/s", *(f"{v:,.0f}" for v in summary["windows_ops_per_s"])),
            ("per CPU s", *(f"{v:,.0f}" for v in summary["windows_ops_per_cpu_s"])),
        ])
        builds = raft["snapshot_build_ms"]
        lines.append(
            f"run {n}: average {raft['average']:,.0f}/s, floor {summary['floor_ops_per_s']:,.0f}/s"
            f" (per CPU s: {summary['average_ops_per_cpu_s']:,.0f},"
            f" floor {summary['floor_ops_per_cpu_s']:,.0f});"
            f" GC {raft['gc_collections']} collections, {raft['gc_pause_ms']:,.0f} ms"
            f" (max {raft['gc_max_pause_ms']:,.0f} ms); longest stall {raft['max_stall_ms']:,.0f} ms,"
            f" {raft['stalls_over_50ms']} over 50 ms; {raft['snapshots']} snapshots, build ms"
            f" {builds if len(builds) <= 12 else [*builds[:6], '...', *builds[-6:]]}"
        )
        lines.append("")
    ratio = statistics.median(r["summary"]["last_over_first"] for r in runs)
    share = statistics.median(r["summary"]["average_over_floor"] for r in runs)
    tgts = [
        {
            "name": f"last {window} s window >= {TARGET_LAST_OVER_FIRST:g} x the first",
            "metric": "last window ops_per_s / first window ops_per_s (median of repeats)",
            "threshold": TARGET_LAST_OVER_FIRST,
            "value": ratio,
            "target_met": ratio >= TARGET_LAST_OVER_FIRST,
        },
        {
            "name": f"average >= {TARGET_AVERAGE_OVER_FLOOR:g} x the Trio floor",
            "metric": "run ops_per_s / floor ops_per_s (median of repeats)",
            "threshold": TARGET_AVERAGE_OVER_FLOOR,
            "value": share,
            "target_met": share >= TARGET_AVERAGE_OVER_FLOOR,
        },
    ]
    cpu_ratio = statistics.median(r["summary"]["cpu_last_over_first"] for r in runs)
    cpu_share = statistics.median(r["summary"]["cpu_average_over_floor"] for r in runs)
    for t, cpu_value in zip(tgts, (cpu_ratio, cpu_share), strict=True):
        t["value_per_cpu_s"] = cpu_value
        lines.append(f"target: {t['name']}: {t['value']:.2f} -> "
                     f"{'MET' if t['target_met'] else 'NOT MET'}"
                     f" (per CPU second: {cpu_value:.2f})")
    return "\n".join(lines), tgts


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--duration", type=float, help="measured seconds of the Raft run (30; 6 quick)")
    p.add_argument("--floor-duration", type=float, help="seconds of the floor run (5; 1 quick)")
    p.add_argument("--warmup", type=float, default=0.0, help="ignored (the run starts cold)")
    p.add_argument("--repeats", type=int, help="floor + Raft runs; medians reported (1)")
    p.add_argument("--snapshot-every", type=int, default=None,
                   help="a snapshot every N entries (Config(snapshot_policy=N)) instead of "
                   "the default policy")
    p.add_argument("--inline-builds", action="store_true",
                   help="build snapshots between applies, not beside them")
    p.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write the JSON")
    p.add_argument("--quick", action="store_true", help="a 6 s run, to check that it works")
    args = p.parse_args(argv)
    if args.duration is None:
        args.duration = 6.0 if args.quick else 30.0
    if args.floor_duration is None:
        args.floor_duration = 1.0 if args.quick else 5.0
    if args.repeats is None:
        args.repeats = 1
    if args.duration < 2 or args.floor_duration <= 0 or args.repeats < 1:
        p.error("need --duration >= 2, --floor-duration > 0, --repeats >= 1")
    return args


def policy(args: argparse.Namespace) -> int | None:
    """``--snapshot-every N``: ``Config(snapshot_policy=N)``, a snapshot every N entries."""
    return args.snapshot_every


async def run_all(args: argparse.Namespace) -> list[dict[str, Any]]:
    window = max(1, min(5, int(args.duration) // 3))
    runs = []
    for rep in range(args.repeats):
        gc.collect()
        floor = await run_floor(CLIENTS, args.floor_duration)
        gc.collect()
        raft = await run_raft(
            CLIENTS, args.duration, seed=rep, snapshot_policy=policy(args),
            inline_builds=args.inline_builds,
        )
        summary = summarize(floor, raft, window)
        runs.append({"raft": raft, "summary": summary})
        print(
            f"  [{rep + 1}/{args.repeats}] floor {floor[0]:,.0f}/s | raft average "
            f"{raft['average']:,.0f}/s, last/first {summary['last_over_first']:.2f}",
            flush=True,
        )
    return runs


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    env = environment()
    print(
        f"bench_sustained: {args.repeats} x ({args.floor_duration:g} s floor + "
        f"{args.duration:g} s Raft), {CLIENTS} clients; python {env['python']}, "
        f"trio {env['trio']}, {env['cpu_count']} CPUs",
        flush=True,
    )
    try:
        runs = trio.run(run_all, args)
    except BaseException as exc:
        if not report_leadership_changed("bench_sustained", exc):
            raise
        return 2
    window = max(1, min(5, int(args.duration) // 3))
    text, tgts = format_report(runs, window)
    print()
    print(text)
    config = sustained_config(policy(args))
    write_report(args.json, {
        "benchmark": "bench_sustained",
        "env": env,
        "settings": {
            "duration_s": args.duration,
            "floor_duration_s": args.floor_duration,
            "repeats": args.repeats,
            "clients": CLIENTS,
            "window_s": window,
            "cluster": "3 nodes, open_cluster: MemLogStore, Router (no faults), KvStateMachine",
            "config": {**config_settings(config), "snapshot_policy": repr(config.snapshot_policy)},
            "gc": "default thresholds " + repr(gc.get_threshold()),
            "inline_builds": args.inline_builds,
        },
        "runs": runs,
        "targets": tgts,
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
