"""Scaling: write throughput and latency as the cluster, the values and the state grow.

At a fixed number of concurrent writers (``--clients``, 64), one axis at a time:

* ``nodes``: 3, 5 and 7 voters (100-byte values, a fresh key per write);
* ``value``: 100 B, 4 KiB and 64 KiB values (3 voters, a fresh key per write);
* ``state``: a state machine holding 10k, 1M and 10M keys (3 voters; every write
  overwrites a uniformly random existing key, seeded, with a small int);
* ``tcp-value``: the ``value`` axis again over real TCP: a fresh cluster of 3 ``serve
  --mem --bench-op`` processes on loopback per run (election timeouts 1-2 s as in process,
  snapshots off), load generated in the leader's process (``bench_tcp``'s ``leader``
  mode, keys cycling over 1024 per writer), with each process's CPU time per committed
  write (leader / one follower).

The first three run in one process, as ``bench_core`` does (``open_cluster``:
``MemLogStore``, a fault-free in-process ``Router``, ``KvStateMachine``), driven by
``bench_core``'s client loop: a write counts when ``client_write`` returns (committed and
applied on the leader). In process the ``Router`` hands the very request object to the
followers (nothing is sent or decoded), so there a value is encoded once per write, by
``client_write``'s size check (the replication byte budget reuses that cached encoding);
``tcp-value`` adds the wire: frames, copies, decoding on each follower. ``encode us`` is
the codec alone: one ``Entry`` holding one ``Set`` with that value, ``codec.dumps`` +
``codec.loads``. All nodes of an in-process cluster share one Python thread, so the
``nodes`` axis measures the whole cluster's work per write (each follower's append and
apply included), not only the leader's fan-out.

**Big states without preloading through Raft.** The ``state`` axis builds one dict of N
keys (16-byte keys, int values) once; every node's ``KvStateMachine`` starts from its own
shallow copy of it (``dict.copy``: its own hash table, the key and value objects shared),
assigned before the node starts. Raft is none the wiser: the log starts empty and the
state machines are equal, as if every node had applied the same history and compacted it.
What a write costs on the state is the dict lookup and store in a table of N entries (cache
misses grow with N), plus any garbage-collector work that grows with the heap; both happen
exactly as they would after N writes through Raft. Shared key/value objects are never
written by the benchmark, the dicts are distinct, and str/int-only dicts are not tracked by
CPython's collector, as after real writes. What is *not* measured: taking or installing a
snapshot of such a state (``bench_snapshot`` does; the snapshot policy is off here, as in
``bench_core``). Memory: about 1 GB for 10M keys plus ~0.35 GB per node copy.

Each repeat runs every point of an axis in turn (points interleaved, because the machine is
noisy); ``x first`` is the median over repeats of each point's throughput divided by the
axis's first point's in the same repeat. ``--profile`` adds one cProfile'd run per
in-process point and prints where the time went (top functions by own time).

Run: ``python benchmarks/bench_scaling.py [--quick] [--axes nodes,value,state,tcp-value]
[--clients N] [--duration S] [--repeats N] [--profile] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import trio
from _bench_common import (
    AGGREGATION,
    CPU_HEADER,
    bench_config,
    check_leadership,
    config_settings,
    cpu_per_write,
    environment,
    format_cpu_pair,
    lost_leadership,
    median_or_none,
    report_leadership_changed,
    run_settings,
    table_lines,
    write_report,
)
from bench_core import Sample, _drive
from bench_tcp import SERVE_ARGS, node_cpu_seconds

from openraft_trio import Entry, ForwardToLeader, LeaderId, LogId, Normal, Vote, codec
from openraft_trio._messages import AppendEntriesRequest
from openraft_trio.kv import KvStateMachine, Set
from openraft_trio.network import _wire as wire
from openraft_trio.network._frames import FrameDecoder, join_frames
from openraft_trio.testing import open_cluster
from openraft_trio.testing.processes import open_process_cluster

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "bench_scaling.json"

AXES: dict[str, tuple[int, ...]] = {
    "nodes": (3, 5, 7),
    "value": (100, 4 * 1024, 64 * 1024),
    "state": (10_000, 1_000_000, 10_000_000),
    "tcp-value": (100, 4 * 1024, 64 * 1024),
}
QUICK_STATE = (10_000, 1_000_000)  # --quick: building 10M keys alone takes ~10 s
DEFAULT_VALUE_BYTES = 100
KEY_BYTES = 16
PROFILE_TOP = 8


def _point_name(axis: str, point: int) -> str:
    if axis == "nodes":
        return f"{point} nodes"
    if axis == "state":
        return f"{point:,} keys"
    size = f"{point // 1024} KiB" if point >= 1024 else f"{point} B"
    return f"{size} values" + (" (tcp)" if axis == "tcp-value" else "")


# -- in-process runs ---------------------------------------------------------------------------


class BaseState:
    """The pre-built state of the ``state`` axis: ``size`` keys, built once per size."""

    def __init__(self, size: int) -> None:
        # A tuple of str: CPython's collector stops tracking it after one pass, so, like
        # the state machines' str/int dicts, it adds nothing to later collections.
        self.keys = tuple(f"k{i:0{KEY_BYTES - 1}d}" for i in range(size))
        self.data: dict[str, Any] = dict(zip(self.keys, range(size), strict=True))

        self._copies: list[dict[str, Any]] = []

    def prepare(self, nodes: int) -> None:
        """Make the copies for a ``nodes``-node cluster now (outside a measured or profiled
        run: copying 10M keys takes about a second)."""
        self._copies = [self.data.copy() for _ in range(nodes)]

    def state_machine(self) -> KvStateMachine:
        """A fresh in-memory state machine holding a copy of the state (see the module
        docstring for why this stands in for N applied writes)."""
        sm = KvStateMachine()
        sm._data = self._copies.pop() if self._copies else self.data.copy()
        return sm


async def run_in_process(
    nodes: int,
    clients: int,
    warmup: float,
    duration: float,
    seed: int,
    value_bytes: int = DEFAULT_VALUE_BYTES,
    state: BaseState | None = None,
) -> tuple[Sample, dict[str, int]]:
    """A fresh ``nodes``-voter cluster; ``clients`` tasks writing in a loop."""
    factory: Callable[[], Any] = KvStateMachine if state is None else state.state_machine
    async with open_cluster(
        nodes, config=bench_config(), seed=seed, state_machine_factory=factory
    ) as cluster:
        leader_id = await cluster.wait_for_leader(10)
        leader = cluster.nodes[leader_id]
        term = leader.metrics.current_term
        payload = "x" * value_bytes

        def make_call(k: int) -> Callable[[], Awaitable[Any]]:
            i = 0
            rng = random.Random(seed * 100_003 + k)

            async def write_fresh() -> Any:
                nonlocal i
                i += 1
                try:
                    return await leader.client_write(Set(f"c{k}-{i}", payload))
                except ForwardToLeader as e:
                    raise lost_leadership(leader_id, e) from e

            async def write_existing() -> Any:
                nonlocal i
                i += 1
                assert state is not None
                key = state.keys[rng.randrange(len(state.keys))]
                try:
                    return await leader.client_write(Set(key, i))
                except ForwardToLeader as e:
                    raise lost_leadership(leader_id, e) from e

            return write_fresh if state is None else write_existing

        run = await _drive(clients, make_call, warmup, duration)
        info = check_leadership(cluster, leader_id, term)
    return Sample.from_run(run, 1), info


def encode_us(value_bytes: int, rounds: int = 200) -> float:
    """Median µs to ``codec.dumps`` + ``codec.loads`` one entry holding one ``Set``."""
    entry = Entry(LogId(LeaderId(1, 1), 1), Normal(Set("k" * KEY_BYTES, "x" * value_bytes)))
    codec.loads(codec.dumps(entry), Entry)  # warm caches (cattrs builds hooks lazily)
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(rounds):
            codec.loads(codec.dumps(entry), Entry)
        times.append((time.perf_counter() - t0) / rounds * 1e6)
    return statistics.median(times)


# Where own time goes, by where the function lives (first match wins).
AREAS: tuple[tuple[str, str], ...] = (
    ("openraft_trio/_engine/", "engine (protocol logic)"),
    ("openraft_trio/_core/", "core (tasks, replication, apply)"),
    ("openraft_trio/codec", "codec (encode/size checks)"),
    ("openraft_trio/kv/", "kv state machine"),
    ("openraft_trio/storage/", "log store"),
    ("openraft_trio/testing/", "in-process router"),
    ("openraft_trio/", "openraft_trio, other"),
    ("/trio/", "trio scheduler"),
    ("/attr", "attrs/cattrs"),
    ("/cattrs/", "attrs/cattrs"),
    ("cbor2", "codec (encode/size checks)"),
    ("benchmarks/", "benchmark clients"),
)


def _area(file: str, name: str) -> str:
    where = f"{file}:{name}"
    for needle, area in AREAS:
        if needle in where:
            return area
    return "builtins, other" if file == "~" else "stdlib, other"


def wire_us(value_bytes: int, rounds: int = 10) -> dict[str, float]:
    """CPU µs per entry on the TCP path, for one ``append`` message as full as
    ``Config.max_payload_bytes`` (1 MiB) or ``max_payload_entries`` (300) let it be, each
    entry one ``Set`` of ``value_bytes``: ``encode`` (the leader, per follower), ``frame``
    (a follower reassembling the frame from 256 KiB reads) and ``decode`` (a follower,
    the envelope check included). ``time.process_time``, median of 3."""
    per_frame = max(1, min(300, (1 << 20) // (value_bytes + 64)))
    entries = tuple(
        Entry(LogId(LeaderId(1, 1), i + 1), Normal(Set(f"k{i:0{KEY_BYTES - 1}d}", "x" * value_bytes)))
        for i in range(per_frame)
    )
    request = AppendEntriesRequest(Vote(LeaderId(1, 1), True), None, entries, None)
    body = wire.encode_message("append", 1, request)
    frame = join_frames([body], max_frame_size=1 << 26)

    def reassemble() -> list[bytes]:
        decoder = FrameDecoder(1 << 26)
        out: list[bytes] = []
        for i in range(0, len(frame), 256 * 1024):
            out += decoder.feed(frame[i : i + 256 * 1024])
        return out

    stages: dict[str, Callable[[], Any]] = {
        "encode": partial(wire.encode_message, "append", 1, request),
        "frame": reassemble,
        "decode": partial(wire.decode_message, body),
    }
    result = {}
    for name, fn in stages.items():
        fn()
        times = []
        for _ in range(3):
            t0 = time.process_time()
            for _ in range(rounds):
                fn()
            times.append((time.process_time() - t0) / rounds / per_frame * 1e6)
        result[name] = statistics.median(times)
    return result


def profile_run(
    fn: Callable[[], tuple[Sample, dict[str, int]]], top: int = PROFILE_TOP
) -> dict[str, Any]:
    """Run ``fn`` (one in-process cluster run) under cProfile: own time per committed write
    by area (:data:`AREAS`), and the ``top`` functions by own time. cProfile slows every
    Python call, so these µs are inflated: compare them between points, not with the
    unprofiled figures. The timer is the process's CPU time, so that other processes
    running on a shared machine do not count."""
    prof = cProfile.Profile(time.process_time)
    _sample, info = prof.runcall(fn)
    raw: dict[Any, Any] = pstats.Stats(prof).stats  # type: ignore[attr-defined]
    writes = max(1, info["committed_index"])
    areas: dict[str, float] = {}
    for (file, _line, name), row in raw.items():
        area = _area(file, name)
        areas[area] = areas.get(area, 0.0) + row[2] * 1e6 / writes
    rows = sorted(raw.items(), key=lambda kv: kv[1][2], reverse=True)[:top]
    return {
        "committed_writes": writes,
        "us_per_write": sum(areas.values()),
        "areas_us_per_write": dict(sorted(areas.items(), key=lambda kv: kv[1], reverse=True)),
        "top": [
            {
                "function": f"{Path(file).name}:{line}({name})",
                "us_per_write": row[2] * 1e6 / writes,
                "calls_per_write": row[1] / writes,
            }
            for (file, line, name), row in rows
        ],
    }


# -- TCP runs ----------------------------------------------------------------------------------


# The in-process runs' timing (``bench_config``) and no snapshots: on a shared 2-core
# machine the defaults (150-300 ms) let a busy moment cost the leadership, and a snapshot
# of a state of 64 KiB values blocks a node for a long time (see the README).
TCP_SERVE_ARGS = [
    *SERVE_ARGS, "--election-timeout", "1,2", "--heartbeat", "0.1",
    "--snapshot-every", str(10**9),
]


async def run_tcp_values(
    sizes: Sequence[int],
    clients: int,
    warmup: float,
    duration: float,
    repeats: int,
    serve_args: Sequence[str] = TCP_SERVE_ARGS,
) -> dict[int, list[dict[str, Any]]]:
    """A fresh 3-process cluster (in-memory stores, ``TCP_SERVE_ARGS``) per size and repeat
    (sizes interleaved), so no run inherits another's state or log; each run is the
    leader's ``bench`` op, with CPU per committed write."""
    runs: dict[int, list[dict[str, Any]]] = {s: [] for s in sizes}
    for _ in range(repeats):
        for size in sizes:
            run = await _tcp_run(size, clients, warmup, duration, serve_args)
            runs[size].append(run)
            _progress("tcp-value", size, run["ops_per_s"], run["p50_us"])
    return runs


async def _tcp_run(
    size: int, clients: int, warmup: float, duration: float, serve_args: Sequence[str]
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-scaling-") as base:
        async with open_process_cluster(
            3, base_dir=base, mem=True, extra_args=serve_args
        ) as cl:
            leader = await cl.initialize()
            addr = cl.nodes[leader].addr
            follower = min(n for n in cl.nodes if n != leader)
            async with cl.client(rpc_timeout=warmup + duration + 30) as kv:
                before = await kv.status(addr)
                cpu_before = node_cpu_seconds(cl)
                sys_before = node_cpu_seconds(cl, system_only=True)
                run: dict[str, Any] = await kv.call(
                    addr, "bench", clients, duration, warmup, size
                )
                cpu_after = node_cpu_seconds(cl)
                sys_after = node_cpu_seconds(cl, system_only=True)
                after = await kv.status(addr)
    writes = (after["committed"] or 0) - (before["committed"] or 0)  # None: nothing committed yet
    run["leader_changed"] = after["term"] != before["term"] or after["state"] != "LEADER"
    run["cpu"] = cpu_per_write(cpu_before, cpu_after, leader, follower, writes)
    run["system_cpu"] = cpu_per_write(sys_before, sys_after, leader, follower, writes)
    return run


# -- the axes ----------------------------------------------------------------------------------


def _progress(axis: str, point: int, ops: float, p50: float) -> None:
    print(f"  {_point_name(axis, point):<22} {ops:>9,.0f} writes/s  p50 {p50:>8,.0f} us",
          flush=True)


def measure_axis(axis: str, points: Sequence[int], args: argparse.Namespace) -> dict[str, Any]:
    """Every point of one axis, ``args.repeats`` times, points interleaved; each in-process
    run in a ``trio.run`` of its own."""
    if axis == "tcp-value":
        serve_args = SERVE_ARGS if args.tcp_defaults else TCP_SERVE_ARGS
        tcp = trio.run(
            run_tcp_values, points, args.clients, args.warmup, args.duration, args.repeats,
            serve_args,
        )
        return {"axis": axis, "points": [_tcp_summary(axis, p, tcp[p]) for p in points]}
    samples: dict[int, list[Sample]] = {p: [] for p in points}
    infos: dict[int, list[dict[str, int]]] = {p: [] for p in points}
    profiles: dict[int, dict[str, Any]] = {}
    states: dict[int, BaseState] = {}
    build_s: dict[int, float] = {}

    def set_up(point: int) -> dict[str, Any]:
        kwargs = _in_process_kwargs(axis, point, states, build_s)
        if "state" in kwargs:
            kwargs["state"].prepare(kwargs["nodes"])
        gc.collect()
        return kwargs

    def cluster_run(
        point: int, seed: int, kwargs: dict[str, Any]
    ) -> tuple[Sample, dict[str, int]]:
        return trio.run(
            partial(
                run_in_process, clients=args.clients, warmup=args.warmup,
                duration=args.duration, seed=seed, **kwargs,
            )
        )

    for rep in range(args.repeats):
        for point in points:
            sample, info = cluster_run(point, rep, set_up(point))
            samples[point].append(sample)
            infos[point].append(info)
            _progress(axis, point, sample.ops_per_s, sample.p50_us)
    if args.profile:
        for point in points:
            profiles[point] = profile_run(partial(cluster_run, point, 0, set_up(point)))
    states.clear()
    first = samples[points[0]]
    out = []
    for point in points:
        ss = samples[point]
        row: dict[str, Any] = {
            "name": _point_name(axis, point),
            "point": point,
            "writes_per_s": statistics.median(s.ops_per_s for s in ss),
            "p50_us": statistics.median(s.p50_us for s in ss),
            "p99_us": statistics.median(s.p99_us for s in ss),
            "gc_pause_ms": statistics.median(s.gc_pause_ms for s in ss),
            "x_first": statistics.median(
                s.ops_per_s / f.ops_per_s for s, f in zip(ss, first, strict=True)
            ),
            "repeats": [vars(s) for s in ss],
            "cluster": infos[point],
        }
        if axis == "value":
            row["encode_us"] = encode_us(point)
        if axis == "state":
            row["state_build_s"] = build_s[point]
        if point in profiles:
            row["profile"] = profiles[point]
        out.append(row)
    return {"axis": axis, "points": out}


def _in_process_kwargs(
    axis: str, point: int, states: dict[int, BaseState], build_s: dict[int, float]
) -> dict[str, Any]:
    if axis == "nodes":
        return {"nodes": point}
    if axis == "value":
        return {"nodes": 3, "value_bytes": point}
    if point not in states:
        t0 = time.perf_counter()
        states[point] = BaseState(point)
        build_s[point] = time.perf_counter() - t0
    return {"nodes": 3, "state": states[point]}


def _tcp_summary(axis: str, point: int, runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "name": _point_name(axis, point),
        "point": point,
        "writes_per_s": statistics.median(r["ops_per_s"] for r in runs),
        "p50_us": statistics.median(r["p50_us"] for r in runs),
        "p99_us": statistics.median(r["p99_us"] for r in runs),
        "errors": sum(len(r["errors"]) for r in runs),
        "leader_changes": sum(bool(r["leader_changed"]) for r in runs),
        "encode_us": encode_us(point),
        "wire_us_per_entry": wire_us(point),
        "cpu_us_per_write": {
            role: median_or_none([r["cpu"][f"{role}_us_per_write"] for r in runs])
            for role in ("leader", "follower")
        },
        "system_cpu_us_per_write": {
            role: median_or_none([r["system_cpu"][f"{role}_us_per_write"] for r in runs])
            for role in ("leader", "follower")
        },
        "repeats": runs,
    }


# -- report ------------------------------------------------------------------------------------


def format_tables(axes: Sequence[dict[str, Any]]) -> str:
    out: list[str] = []
    for ax in axes:
        header = ["point", "writes/s", "x first", "p50 us", "p99 us"]
        extra = {
            "nodes": ["GC ms"],
            "value": ["GC ms", "encode us"],
            "state": ["GC ms", "build s"],
            "tcp-value": ["errors", "ldr chg", "wire enc/frame/dec us", CPU_HEADER, "sys L / F"],
        }[ax["axis"]]
        rows = []
        points = ax["points"]
        for r in points:
            cells = [
                r["name"],
                f"{r['writes_per_s']:,.0f}",
                f"{r['x_first']:.2f}" if "x_first" in r
                else f"{r['writes_per_s'] / points[0]['writes_per_s']:.2f}",
                f"{r['p50_us']:,.0f}",
                f"{r['p99_us']:,.0f}",
            ]
            for col in extra:
                if col == "GC ms":
                    cells.append(f"{r['gc_pause_ms']:,.0f}")
                elif col == "encode us":
                    cells.append(f"{r['encode_us']:,.1f}")
                elif col.startswith("wire"):
                    w = r["wire_us_per_entry"]
                    cells.append(f"{w['encode']:.1f} / {w['frame']:.1f} / {w['decode']:.1f}")
                elif col == "errors":
                    cells.append(str(r["errors"]))
                elif col == "ldr chg":
                    cells.append(str(r["leader_changes"]))
                elif col == "build s":
                    cells.append(f"{r['state_build_s']:.1f}")
                elif col.startswith("sys"):
                    cpu = r["system_cpu_us_per_write"]
                    cells.append(format_cpu_pair(cpu["leader"], cpu["follower"]))
                else:
                    cpu = r["cpu_us_per_write"]
                    cells.append(format_cpu_pair(cpu["leader"], cpu["follower"]))
            rows.append(cells)
        out += [f"axis: {ax['axis']}", *table_lines(header + extra, rows), ""]
        for r in points:
            if "profile" in r:
                prof = r["profile"]
                areas = ", ".join(
                    f"{a} {v:,.0f}" for a, v in prof["areas_us_per_write"].items() if v >= 1
                )
                out.append(
                    f"  profile, {r['name']}: {prof['us_per_write']:,.0f} us/write "
                    f"(cProfile'd), by area: {areas}"
                )
                out += [
                    f"    {p['us_per_write']:7.1f} us  {p['calls_per_write']:6.2f} calls  "
                    f"{p['function']}"
                    for p in prof["top"]
                ]
        if any("profile" in r for r in points):
            out.append("")
    out.append(
        "writes/s: median of repeats; x first: per-repeat ratio to the axis's first point, "
        "median; latency per write, nearest-rank;\nGC ms: CPython GC pauses in the window; "
        "encode us: codec.dumps + codec.loads of one Entry with one Set of that value;\n"
        "wire enc/frame/dec us: CPU per entry of a full append message: the leader's encode "
        "(per follower), a follower's frame reassembly and decode;\n"
        f"{CPU_HEADER}: CPU time of the leader's process (load generator included) / one "
        "follower's over a run, per committed entry;\nsys L / F: the part of it spent in "
        "the kernel (system time)."
    )
    return "\n".join(out)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--clients", type=int, default=64, help="concurrent writers (64)")
    p.add_argument("--axes", type=lambda s: s.split(","), default=list(AXES),
                   help=f"comma-separated, from {','.join(AXES)} (all)")
    p.add_argument("--duration", type=float, help="measured seconds per run (2; 0.5 quick)")
    p.add_argument("--warmup", type=float, help="unmeasured seconds before each run (0.5; 0.2)")
    p.add_argument("--repeats", type=int, help="runs per point; medians reported (3; 1 quick)")
    p.add_argument("--profile", action="store_true",
                   help="one more cProfile'd run per in-process point; print the top functions")
    p.add_argument("--tcp-defaults", action="store_true",
                   help="tcp-value with serve's defaults (snapshots every 5000 entries, "
                   "election timeouts 0.15-0.3 s)")
    p.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write the JSON")
    p.add_argument("--quick", action="store_true",
                   help="short runs, states up to 1M keys: to check that it works")
    args = p.parse_args(argv)
    args.duration = args.duration or (0.5 if args.quick else 2.0)
    args.warmup = args.warmup if args.warmup is not None else (0.2 if args.quick else 0.5)
    args.repeats = args.repeats or (1 if args.quick else 3)
    unknown = [a for a in args.axes if a not in AXES]
    if unknown:
        p.error(f"unknown axes {unknown}; known: {', '.join(AXES)}")
    if args.clients < 1 or args.duration <= 0 or args.warmup < 0 or args.repeats < 1:
        p.error("need --clients >= 1, --duration > 0, --warmup >= 0, --repeats >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    env = environment()
    print(
        f"bench_scaling: {args.clients} writers, {args.repeats} repeat(s) x {args.duration:g}s "
        f"(+{args.warmup:g}s warm-up) per point; python {env['python']}, "
        f"{env['cpu_count']} CPUs",
        flush=True,
    )
    axes: list[dict[str, Any]] = []
    for axis in args.axes:
        points = QUICK_STATE if axis == "state" and args.quick else AXES[axis]
        print(f"axis {axis}:", flush=True)
        try:
            axes.append(measure_axis(axis, points, args))
        except BaseException as exc:
            if not report_leadership_changed("bench_scaling", exc):
                raise
            return 2
    print()
    print(format_tables(axes))
    report = {
        "benchmark": "bench_scaling",
        "env": env,
        "settings": {
            **run_settings(args),
            "clients": args.clients,
            "in_process_cluster": "open_cluster: MemLogStore, Router (no faults), "
            "KvStateMachine",
            "tcp_cluster": "3 processes on 127.0.0.1, serve --mem "
            f"{' '.join(SERVE_ARGS if args.tcp_defaults else TCP_SERVE_ARGS)}, "
            "load in the leader's process, a fresh cluster per run",
            "config": config_settings(bench_config()),
            "aggregation": AGGREGATION,
        },
        "axes": axes,
    }
    write_report(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
