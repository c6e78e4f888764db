"""Core throughput/latency benchmark: an in-process 3-node cluster against the Trio floor.

Raft scenarios run a fresh 3-node ``open_cluster`` (``MemLogStore``, a fault-free
``Router``, ``KvStateMachine``) and drive its leader with N concurrent client tasks, each
doing ``client_write(Set(...))`` in a loop (or ``client_write_many`` with batches of 64).

The *Trio floor* is the same client tasks doing one request/response round trip with a
single server task over a memory channel, replying through the mechanism Raft uses (a
per-request ``trio.Event`` and slot, like ``openraft_trio._core.api_calls.Responder``) and
nothing else. It is what any single-task Trio service costs per request on this machine,
so each Raft figure is also shown as a ratio of it. Floor and Raft runs are interleaved
(floor, Raft, floor, Raft, ...) within each repeat, because the machine is noisy.

Run: ``python benchmarks/bench_core.py [--duration S] [--repeats N] [--json PATH] [--quick]``.
The targets are reported (``target_met``), never asserted.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import trio
from _bench_common import (
    AGGREGATION,
    bench_config,
    check_leadership,
    config_settings,
    environment,
    lost_leadership,
    percentile,
    report_leadership_changed,
    run_settings,
    table_lines,
    write_report,
)

from openraft_trio import ForwardToLeader
from openraft_trio._core.api_calls import Responder
from openraft_trio.kv import Set
from openraft_trio.testing import open_cluster

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "bench_core.json"

CLIENT_COUNTS = (1, 64, 256)
BATCH_SIZE = 64

# Targets from issue 14 (the hot path), judged on the default-collector rows.
TARGET_TPUT_CLIENTS = 256
TARGET_TPUT_RATIO = 0.80  # Raft throughput >= 80% of the floor's at 256 clients
TARGET_LAT_CLIENTS = 1
TARGET_LAT_ROUND_TRIPS = 12.0  # Raft p50 commit latency <= 12 floor round trips at 1 client


# -- measurement -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """The measured interval, in ``time.perf_counter()`` seconds."""

    start: float
    end: float


@dataclass
class Sample:
    """One run of one scenario."""

    ops_per_s: float  # completed requests (entries, for batches) per second
    calls_per_s: float  # completed calls (round trips / batches) per second
    p50_us: float  # per-call latency
    p99_us: float
    calls: int
    # Diagnostics: CPython garbage-collector pauses inside the window (they stall every task).
    gc_collections: int
    gc_pause_ms: float
    gc_max_pause_ms: float

    @classmethod
    def from_run(cls, run: Run, per_call: int) -> Sample:
        if not run.latencies:
            raise RuntimeError("no call completed inside the measurement window")
        lat = sorted(run.latencies)
        duration = run.window.end - run.window.start
        pauses = [d for t, d in run.gc_pauses if run.window.start <= t <= run.window.end]
        return cls(
            ops_per_s=len(lat) * per_call / duration,
            calls_per_s=len(lat) / duration,
            p50_us=percentile(lat, 50) * 1e6,
            p99_us=percentile(lat, 99) * 1e6,
            calls=len(lat),
            gc_collections=len(pauses),
            gc_pause_ms=sum(pauses) * 1e3,
            gc_max_pause_ms=max(pauses, default=0.0) * 1e3,
        )


@dataclass
class Run:
    """Raw observations of one run."""

    window: Window
    latencies: list[float]  # seconds, calls that completed inside the window
    gc_pauses: list[tuple[float, float]]  # (start, seconds) of each GC collection


class _GcPauses:
    """Records every garbage collection's start time and duration while installed."""

    def __init__(self) -> None:
        self.pauses: list[tuple[float, float]] = []
        self._start = 0.0

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.pauses.append((self._start, time.perf_counter() - self._start))

    def __enter__(self) -> _GcPauses:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)


async def _drive(
    clients: int,
    make_call: Callable[[int], Callable[[], Awaitable[Any]]],
    warmup: float,
    duration: float,
) -> Run:
    """Run ``clients`` tasks, each awaiting its call in a loop; collect latencies of the
    calls that completed inside the window after ``warmup``.

    At the end of the window every client finishes its in-flight call and stops (nothing is
    cancelled, so no half-done request leaks into the next run).
    """
    now = time.perf_counter()
    window = Window(now + warmup, now + warmup + duration)
    latencies: list[float] = []
    record = latencies.append
    clock = time.perf_counter

    async def client(k: int) -> None:
        call = make_call(k)
        start, end = window.start, window.end
        t1 = clock()
        while t1 < end:
            t0 = clock()
            await call()
            t1 = clock()
            if start <= t1 <= end:
                record(t1 - t0)

    with _GcPauses() as gc_pauses:
        async with trio.open_nursery() as nursery:
            for k in range(clients):
                nursery.start_soon(client, k)
    return Run(window, latencies, gc_pauses.pauses)


# -- the Trio floor ----------------------------------------------------------------------------


# The floor answers through the very reply slot the Raft handle uses.
Reply = Responder


async def _floor_server(rx: trio.MemoryReceiveChannel[tuple[list[Any], list[Reply]]]) -> None:
    """Answer each request item through its reply slot; nothing else."""
    while True:
        items, replies = await rx.receive()
        for item, reply in zip(items, replies, strict=True):
            reply.send(item)


async def run_floor(clients: int, batch: int, warmup: float, duration: float) -> Sample:
    """``clients`` tasks each sending ``batch`` items (one message) and awaiting every reply."""
    tx, rx = trio.open_memory_channel[tuple[list[Any], list[Reply]]](
        bench_config().channel_capacity
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_floor_server, rx)

        def make_call(k: int) -> Callable[[], Awaitable[Any]]:
            counter = 0

            async def call_one() -> Any:
                nonlocal counter
                counter += 1
                reply = Reply(trio.Event())
                await tx.send(([(k, counter)], [reply]))
                return await reply.wait()

            async def call_batch() -> Any:
                nonlocal counter
                items = [(k, counter + i) for i in range(batch)]
                counter += batch
                replies = [Reply(trio.Event()) for _ in items]
                await tx.send((items, replies))
                return [await r.wait() for r in replies]

            return call_one if batch == 1 else call_batch

        run = await _drive(clients, make_call, warmup, duration)
        nursery.cancel_scope.cancel()
    return Sample.from_run(run, batch)


# -- Raft ------------------------------------------------------------------------------------


async def run_raft(
    clients: int, batch: int, warmup: float, duration: float, seed: int, snapshots: bool = False
) -> tuple[Sample, dict[str, int]]:
    """Fresh 3-node cluster; ``clients`` tasks writing unique keys to the leader."""
    async with open_cluster(3, config=bench_config(snapshots), seed=seed) as cluster:
        leader_id = await cluster.wait_for_leader(10)
        leader = cluster.nodes[leader_id]
        term = leader.metrics.current_term

        def make_call(k: int) -> Callable[[], Awaitable[Any]]:
            i = 0

            async def write_one() -> Any:
                nonlocal i
                i += 1
                try:
                    return await leader.client_write(Set(f"c{k}-{i}", i))
                except ForwardToLeader as e:
                    raise lost_leadership(leader_id, e) from e

            async def write_batch() -> Any:
                nonlocal i
                items = [Set(f"c{k}-{i + j}", i + j) for j in range(batch)]
                i += batch
                try:
                    return await leader.client_write_many(items)
                except ForwardToLeader as e:
                    raise lost_leadership(leader_id, e) from e

            return write_one if batch == 1 else write_batch

        run = await _drive(clients, make_call, warmup, duration)
        info = check_leadership(cluster, leader_id, term)
    return Sample.from_run(run, batch), info


# -- scenarios & report ----------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    name: str
    clients: int
    batch: int  # items per call; 1 = client_write, >1 = client_write_many
    # Run with CPython's collector tuned for throughput (floor and Raft alike): see _gc_mode.
    gc_tuned: bool = False
    # The default snapshot policy (a snapshot of the whole kv store every 5000 entries).
    snapshots: bool = False


@dataclass
class Result:
    scenario: Scenario
    raft: list[Sample] = field(default_factory=list)
    floor: list[Sample] = field(default_factory=list)
    raft_info: list[dict[str, int]] = field(default_factory=list)

    @staticmethod
    def _median(samples: list[Sample]) -> dict[str, float]:
        return {
            "ops_per_s": statistics.median(s.ops_per_s for s in samples),
            "calls_per_s": statistics.median(s.calls_per_s for s in samples),
            "p50_us": statistics.median(s.p50_us for s in samples),
            "p99_us": statistics.median(s.p99_us for s in samples),
            "gc_pause_ms": statistics.median(s.gc_pause_ms for s in samples),
        }

    def medians(self) -> tuple[dict[str, float], dict[str, float]]:
        return self._median(self.raft), self._median(self.floor)

    def ratios(self) -> dict[str, float]:
        raft, floor = self.medians()
        return {
            # Raft throughput as a fraction of the floor's (1.0 = as fast as the floor).
            "throughput": raft["ops_per_s"] / floor["ops_per_s"],
            # Raft latency in floor round trips (1.0 = as fast as one round trip).
            "p50_round_trips": raft["p50_us"] / floor["p50_us"],
            "p99_round_trips": raft["p99_us"] / floor["p99_us"],
        }

    def paired_ratios(self) -> list[dict[str, float]]:
        """Per-repeat ratios (each Raft run against the floor run just before it)."""
        return [
            {
                "throughput": r.ops_per_s / f.ops_per_s,
                "p50_round_trips": r.p50_us / f.p50_us,
            }
            for r, f in zip(self.raft, self.floor, strict=True)
        ]

    def to_json(self) -> dict[str, Any]:
        raft, floor = self.medians()
        return {
            **asdict(self.scenario),
            "api": "client_write" if self.scenario.batch == 1 else "client_write_many",
            "raft": raft,
            "floor": floor,
            "ratio": self.ratios(),
            "repeats": {
                "raft": [asdict(s) for s in self.raft],
                "floor": [asdict(s) for s in self.floor],
                "paired_ratio": self.paired_ratios(),
                "raft_cluster": self.raft_info,
            },
        }


def scenarios(batch_clients: int) -> list[Scenario]:
    out = [Scenario(f"write x{n}", n, 1) for n in CLIENT_COUNTS]
    out.append(Scenario(f"batch{BATCH_SIZE} x{batch_clients}", batch_clients, BATCH_SIZE))
    n = TARGET_TPUT_CLIENTS
    out.append(Scenario(f"write x{n} gc", n, 1, gc_tuned=True))
    out.append(Scenario(f"write x{n} snap", n, 1, snapshots=True))
    return out


@contextmanager
def _gc_mode(tuned: bool) -> Iterator[None]:
    """Default collector, or the common server tuning: objects alive at the start are frozen
    out of collections and generation 0 is collected 100x less often. The in-memory log of
    an uncompacted benchmark run grows by ~150k entries, and full collections over it are
    what the default setting pays for (reported in the GC ms column)."""
    if not tuned:
        yield
        return
    old = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(70_000, 50, 100)
    try:
        yield
    finally:
        gc.set_threshold(*old)
        gc.unfreeze()


def targets(results: dict[str, Result]) -> list[dict[str, Any]]:
    by_clients = {
        r.scenario.clients: r
        for r in results.values()
        if r.scenario.batch == 1 and not r.scenario.gc_tuned and not r.scenario.snapshots
    }
    out: list[dict[str, Any]] = []
    if TARGET_TPUT_CLIENTS in by_clients:
        got = by_clients[TARGET_TPUT_CLIENTS].ratios()["throughput"]
        out.append({
            "name": f"throughput at {TARGET_TPUT_CLIENTS} clients >= "
                    f"{TARGET_TPUT_RATIO:.0%} of floor",
            "scenario": by_clients[TARGET_TPUT_CLIENTS].scenario.name,
            "metric": "raft ops_per_s / floor ops_per_s",
            "threshold": TARGET_TPUT_RATIO,
            "value": got,
            "target_met": got >= TARGET_TPUT_RATIO,
        })
    if TARGET_LAT_CLIENTS in by_clients:
        got = by_clients[TARGET_LAT_CLIENTS].ratios()["p50_round_trips"]
        out.append({
            "name": f"p50 commit latency at {TARGET_LAT_CLIENTS} client <= "
                    f"{TARGET_LAT_ROUND_TRIPS:g} floor round trips",
            "scenario": by_clients[TARGET_LAT_CLIENTS].scenario.name,
            "metric": "raft p50_us / floor p50_us",
            "threshold": TARGET_LAT_ROUND_TRIPS,
            "value": got,
            "target_met": got <= TARGET_LAT_ROUND_TRIPS,
        })
    return out


def format_table(results: dict[str, Result], tgts: list[dict[str, Any]]) -> str:
    header = (
        "scenario", "ops/s", "p50 us", "p99 us",
        "floor ops/s", "floor p50", "floor p99", "x floor tput", "p50 in RTs", "p99 in RTs", "GC ms",
    )
    rows: list[tuple[str, ...]] = []
    for res in results.values():
        raft, floor = res.medians()
        ratio = res.ratios()
        rows.append((
            res.scenario.name,
            f"{raft['ops_per_s']:,.0f}",
            f"{raft['p50_us']:,.0f}",
            f"{raft['p99_us']:,.0f}",
            f"{floor['ops_per_s']:,.0f}",
            f"{floor['p50_us']:,.1f}",
            f"{floor['p99_us']:,.1f}",
            f"{ratio['throughput']:.2f}",
            f"{ratio['p50_round_trips']:.1f}",
            f"{ratio['p99_round_trips']:.1f}",
            f"{raft['gc_pause_ms']:,.0f}",
        ))
    out = [*table_lines(header, rows), ""]
    out.append(
        "ops/s: committed entries per second (median of repeats); latency per call "
        "(a batch, for batchN); floor = same clients, one round trip to one Trio task;\n"
        "RTs = floor round trips; GC ms = CPython GC pause time inside a Raft run's window."
    )
    for t in tgts:
        mark = "MET" if t["target_met"] else "NOT MET"
        out.append(f"target: {t['name']}: {t['value']:.2f} -> {mark}")
    return "\n".join(out)


# -- main ------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--duration", type=float, default=None,
                   help="measured seconds per scenario run (default 3; 0.5 with --quick)")
    p.add_argument("--warmup", type=float, default=None,
                   help="unmeasured seconds before each run (default 0.5; 0.2 with --quick)")
    p.add_argument("--repeats", type=int, default=None,
                   help="runs of every scenario; medians are reported (default 3; 1 with --quick)")
    p.add_argument("--batch-clients", type=int, default=8,
                   help=f"concurrent client_write_many callers (batches of {BATCH_SIZE})")
    p.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write the JSON")
    p.add_argument("--quick", action="store_true", help="short runs, to check that it works")
    args = p.parse_args(argv)
    if args.duration is None:
        args.duration = 0.5 if args.quick else 3.0
    if args.warmup is None:
        args.warmup = 0.2 if args.quick else 0.5
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    if args.duration <= 0 or args.warmup < 0 or args.repeats < 1 or args.batch_clients < 1:
        p.error("need --duration > 0, --warmup >= 0, --repeats >= 1, --batch-clients >= 1")
    return args


async def run_all(args: argparse.Namespace) -> dict[str, Result]:
    results = {s.name: Result(s) for s in scenarios(args.batch_clients)}
    for rep in range(args.repeats):
        for res in results.values():
            sc = res.scenario
            gc.collect()
            with _gc_mode(sc.gc_tuned):
                floor = await run_floor(sc.clients, sc.batch, args.warmup, args.duration)
            res.floor.append(floor)
            gc.collect()
            with _gc_mode(sc.gc_tuned):
                raft, info = await run_raft(
                    sc.clients, sc.batch, args.warmup, args.duration, seed=rep,
                    snapshots=sc.snapshots,
                )
            res.raft.append(raft)
            res.raft_info.append(info)
            print(
                f"  [{rep + 1}/{args.repeats}] {sc.name:<12} floor {floor.ops_per_s:>10,.0f}/s "
                f"p50 {floor.p50_us:>8,.1f}us | raft {raft.ops_per_s:>10,.0f}/s "
                f"p50 {raft.p50_us:>9,.0f}us",
                flush=True,
            )
    return results


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    env = environment()
    print(
        f"bench_core: {args.repeats} repeat(s) x {args.duration:g}s (+{args.warmup:g}s warm-up) "
        f"per scenario; python {env['python']}, trio {env['trio']}, {env['cpu_count']} CPUs",
        flush=True,
    )
    try:
        results = trio.run(run_all, args)
    except BaseException as exc:
        if not report_leadership_changed("bench_core", exc):
            raise
        return 2
    tgts = targets(results)
    print()
    print(format_table(results, tgts))
    report = {
        "benchmark": "bench_core",
        "env": env,
        "settings": {
            **run_settings(args),
            "batch_size": BATCH_SIZE,
            "batch_clients": args.batch_clients,
            "cluster": "3 nodes, open_cluster: MemLogStore, Router (no faults), KvStateMachine",
            "config": config_settings(bench_config()),
            "aggregation": AGGREGATION,
        },
        "scenarios": [res.to_json() for res in results.values()],
        "targets": tgts,
    }
    write_report(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
