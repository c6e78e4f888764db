"""Durable storage benchmark: a 3-node cluster on FileLogStore against MemLogStore and fsync.

    python benchmarks/bench_storage.py [--duration S] [--repeats N] [--clients 1,64,256]
        [--dir PATH] [--recovery-gb GB] [--no-recovery] [--quick]

All in one run, on one file system (``--dir``):

1. **Raw fsync**: append a 100-byte record to a file and ``fsync`` it, N times (one writer,
   and three writers at once as a diagnostic: the cluster's three nodes share the disk).
2. **Cluster rows**: for each client count, a fresh 3-node ``open_cluster`` on
   ``MemLogStore`` and one with ``data_dir`` (every node: a durable ``FileLogStore`` and
   ``KvStateMachine``), each driven by N client tasks doing ``client_write(Set(...))`` in a
   loop; committed writes/s, p50/p99 latency and, for files, fsyncs per committed write.
   Memory and file runs are interleaved, and the raw fsync probe runs at the start of every
   repeat, because the machine is noisy.
3. **Targets** (from the issue; reported, never asserted): at 256 clients the durable
   cluster keeps >= 50 % of the in-memory throughput; at 1 client its p50 latency is at most
   the in-memory p50 plus 2.5 raw fsync p50s.
4. **Recovery**: the time to open a ~1 GB log (scan and verify every record) and read its
   state, with a warm page cache and after dropping the files' cached pages.
"""

from __future__ import annotations

import argparse
import faulthandler
import gc
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Sequence
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
from openraft_trio._types import Entry, LeaderId, LogId, Normal
from openraft_trio.kv import Set
from openraft_trio.storage import open_file_log_store
from openraft_trio.testing import open_cluster

HERE = Path(__file__).resolve().parent
DEFAULT_JSON = HERE / "results" / "bench_storage.json"
DEFAULT_DIR = HERE / "results" / "tmp"

STORES = ("mem", "file")
FSYNC_RECORD = 100  # bytes per raw fsync probe append
FSYNC_WRITERS = 3  # the concurrent probe: as many writers as cluster nodes
RECOVERY_PAYLOAD = 1024  # bytes of Normal(bytes) payload per entry of the recovery log
RECOVERY_PER_APPEND = 1000  # entries per append() while building it
RECOVERY_IN_FLIGHT = 4  # appends queued ahead of the flusher while building it
RUN_TIMEOUT = 120.0  # seconds beyond warm-up + window before a cluster run counts as hung
GB = 10**9
MB = 10**6

# Targets from the issue.
TARGET_TPUT_CLIENTS = 256
TARGET_TPUT_RATIO = 0.50  # file ops/s >= 50% of mem ops/s at 256 clients
TARGET_LAT_CLIENTS = 1
TARGET_LAT_FSYNCS = 2.5  # file p50 <= mem p50 + 2.5 x raw fsync p50 at 1 client


# -- raw fsync -----------------------------------------------------------------------------------


@dataclass
class FsyncSample:
    """One probe: ``samples`` appends of ``FSYNC_RECORD`` bytes, each fsynced."""

    p50_us: float
    p99_us: float
    mean_us: float
    samples: int
    # The same with FSYNC_WRITERS threads, each on its own file, at once (diagnostic).
    concurrent_p50_us: float
    concurrent_p99_us: float


def _fsync_loop(path: str, samples: int, out: list[float], start: threading.Barrier | None) -> None:
    """Append a record at the end of ``path`` and fsync it, ``samples`` times (as the log's
    ``pwrite`` + ``fsync``); the first, creating fsync is not measured."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        os.fsync(fd)
        record = os.urandom(FSYNC_RECORD)
        offset = 0
        clock = time.perf_counter
        if start is not None:
            start.wait()
        for _ in range(samples):
            t0 = clock()
            os.pwrite(fd, record, offset)
            os.fsync(fd)
            out.append(clock() - t0)
            offset += FSYNC_RECORD
    finally:
        os.close(fd)
        os.unlink(path)


def measure_fsync(directory: str, samples: int) -> FsyncSample:
    single: list[float] = []
    _fsync_loop(os.path.join(directory, "fsync-probe"), samples, single, None)
    concurrent: list[list[float]] = [[] for _ in range(FSYNC_WRITERS)]
    barrier = threading.Barrier(FSYNC_WRITERS)
    threads = [
        threading.Thread(
            target=_fsync_loop,
            args=(os.path.join(directory, f"fsync-probe-{k}"), samples, concurrent[k], barrier),
        )
        for k in range(FSYNC_WRITERS)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    single.sort()
    together = sorted(x for lat in concurrent for x in lat)
    return FsyncSample(
        p50_us=percentile(single, 50) * 1e6,
        p99_us=percentile(single, 99) * 1e6,
        mean_us=statistics.fmean(single) * 1e6,
        samples=len(single),
        concurrent_p50_us=percentile(together, 50) * 1e6,
        concurrent_p99_us=percentile(together, 99) * 1e6,
    )


# -- cluster rows ------------------------------------------------------------------------------


@dataclass
class Sample:
    """One cluster run."""

    ops_per_s: float  # writes committed (and applied on the leader) per second
    p50_us: float
    p99_us: float
    writes: int
    # File rows: fsyncs (and flusher batches) of all three nodes per committed entry, over
    # the measured window. Mem rows: None.
    fsyncs_per_write: float | None
    batches_per_write: float | None


@dataclass
class _Mark:
    """Counters read at a window edge."""

    at: float
    committed: int
    fsyncs: int | None
    batches: int | None


def _mark(cluster: Any, leader: Any) -> _Mark:
    stores = list(cluster.log_stores.values())
    committed = leader.metrics.committed
    durable = stores and all(hasattr(s, "fsync_count") for s in stores)
    return _Mark(
        at=time.perf_counter(),
        committed=committed.index if committed is not None else 0,
        fsyncs=sum(s.fsync_count for s in stores) if durable else None,
        batches=sum(s.batch_count for s in stores) if durable else None,
    )


async def _quiesce(cluster: Any, leader: Any, timeout: float = 10.0) -> None:
    """After the clients stop, let the cluster settle before it is closed: every node has
    applied the leader's last entry, every file store has made its log durable, and a
    heartbeat has carried the final commit index (written lazily by file stores). No I/O of
    one run then spills into the next, and a store is never closed in the middle of a burst
    of flushes."""
    last = leader.metrics.last_log_index or 0
    with trio.move_on_after(timeout):
        await cluster.wait_applied(last, timeout)
        for store in list(cluster.log_stores.values()):
            if not hasattr(store, "fsync_count"):
                continue
            while True:
                state = await store.get_log_state()
                if store.flushed_log_id == state.last_log_id:
                    break
                await trio.sleep(0.005)
        await trio.sleep(1.5 * bench_config().heartbeat_interval)


async def run_cluster(
    store: str, clients: int, warmup: float, duration: float, seed: int, data_dir: str | None
) -> tuple[Sample, dict[str, int]]:
    """Fresh 3-node cluster; ``clients`` tasks writing unique keys to the leader for a
    ``warmup`` (not measured) and a ``duration`` window. At the end of the window every
    client finishes its in-flight call and stops; only calls completed inside it count."""
    assert (store == "file") == (data_dir is not None)
    async with open_cluster(3, config=bench_config(), seed=seed, data_dir=data_dir) as cluster:
        leader_id = await cluster.wait_for_leader(10)
        leader = cluster.nodes[leader_id]
        term = leader.metrics.current_term
        now = time.perf_counter()
        start, end = now + warmup, now + warmup + duration
        latencies: list[float] = []
        record = latencies.append
        clock = time.perf_counter
        marks: list[_Mark] = []

        async def client(k: int) -> None:
            i = 0
            t1 = clock()
            while t1 < end:
                i += 1
                t0 = clock()
                try:
                    await leader.client_write(Set(f"c{k}-{i}", i))
                except ForwardToLeader as e:
                    raise lost_leadership(leader_id, e) from e
                t1 = clock()
                if start <= t1 <= end:
                    record(t1 - t0)

        async def monitor() -> None:
            for edge in (start, end):
                await trio.sleep(max(0.0, edge - clock()))
                marks.append(_mark(cluster, leader))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(monitor)
            for k in range(clients):
                nursery.start_soon(client, k)

        await _quiesce(cluster, leader)
        info = check_leadership(cluster, leader_id, term)
    if not latencies:
        raise RuntimeError("no write completed inside the measurement window")
    lat = sorted(latencies)
    first, last = marks
    committed = last.committed - first.committed
    fsyncs = batches = None
    if first.fsyncs is not None and last.fsyncs is not None and committed > 0:
        fsyncs = (last.fsyncs - first.fsyncs) / committed
    if first.batches is not None and last.batches is not None and committed > 0:
        batches = (last.batches - first.batches) / committed
    sample = Sample(
        ops_per_s=len(lat) / duration,
        p50_us=percentile(lat, 50) * 1e6,
        p99_us=percentile(lat, 99) * 1e6,
        writes=len(lat),
        fsyncs_per_write=fsyncs,
        batches_per_write=batches,
    )
    return sample, info


@dataclass
class Row:
    store: str
    clients: int
    samples: list[Sample] = field(default_factory=list)
    cluster: list[dict[str, int]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.store} x{self.clients}"

    def median(self) -> dict[str, float | None]:
        def med(values: list[float | None]) -> float | None:
            known = [v for v in values if v is not None]
            return statistics.median(known) if known else None

        return {
            "ops_per_s": med([s.ops_per_s for s in self.samples]),
            "p50_us": med([s.p50_us for s in self.samples]),
            "p99_us": med([s.p99_us for s in self.samples]),
            "fsyncs_per_write": med([s.fsyncs_per_write for s in self.samples]),
            "batches_per_write": med([s.batches_per_write for s in self.samples]),
        }


@dataclass
class Results:
    fsync: list[FsyncSample] = field(default_factory=list)
    rows: dict[tuple[str, int], Row] = field(default_factory=dict)

    def fsync_median(self) -> dict[str, float]:
        return {
            k: statistics.median(getattr(s, k) for s in self.fsync)
            for k in ("p50_us", "p99_us", "mean_us", "concurrent_p50_us", "concurrent_p99_us")
        }

    def clients(self) -> list[int]:
        return sorted({c for _, c in self.rows})

    def compare(self, clients: int) -> dict[str, float] | None:
        """File against mem at ``clients``: throughput ratio, p50 cost in raw fsyncs."""
        mem, fil = self.rows.get(("mem", clients)), self.rows.get(("file", clients))
        if mem is None or fil is None or not mem.samples or not fil.samples:
            return None
        m, f = mem.median(), fil.median()
        fsync_p50 = self.fsync_median()["p50_us"]
        mem_ops, file_ops = m["ops_per_s"], f["ops_per_s"]
        mem_p50, file_p50 = m["p50_us"], f["p50_us"]
        if not (mem_ops and file_ops and mem_p50 and file_p50):
            return None
        return {
            "throughput_ratio": file_ops / mem_ops,
            "p50_extra_us": file_p50 - mem_p50,
            "p50_extra_in_fsyncs": (file_p50 - mem_p50) / fsync_p50,
            "p99_ratio": f["p99_us"] / m["p99_us"] if m["p99_us"] and f["p99_us"] else 0.0,
        }

    def paired_throughput(self, clients: int) -> list[float]:
        """Per-repeat ratios (each file run against the mem run just before it)."""
        mem, fil = self.rows.get(("mem", clients)), self.rows.get(("file", clients))
        if mem is None or fil is None:
            return []
        return [f.ops_per_s / m.ops_per_s for m, f in zip(mem.samples, fil.samples, strict=False)]


def targets(res: Results) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    tput = res.compare(TARGET_TPUT_CLIENTS)
    if tput is not None:
        mem = res.rows[("mem", TARGET_TPUT_CLIENTS)].median()["ops_per_s"]
        fil = res.rows[("file", TARGET_TPUT_CLIENTS)].median()["ops_per_s"]
        got = tput["throughput_ratio"]
        out.append({
            "name": f"durable throughput at {TARGET_TPUT_CLIENTS} clients >= "
                    f"{TARGET_TPUT_RATIO:.0%} of in-memory",
            "metric": "file ops_per_s / mem ops_per_s (medians)",
            "file_ops_per_s": fil,
            "mem_ops_per_s": mem,
            "threshold": TARGET_TPUT_RATIO,
            "value": got,
            "paired_values": res.paired_throughput(TARGET_TPUT_CLIENTS),
            "target_met": got >= TARGET_TPUT_RATIO,
        })
    lat = res.compare(TARGET_LAT_CLIENTS)
    if lat is not None:
        mem_p50 = res.rows[("mem", TARGET_LAT_CLIENTS)].median()["p50_us"]
        file_p50 = res.rows[("file", TARGET_LAT_CLIENTS)].median()["p50_us"]
        fsync_p50 = res.fsync_median()["p50_us"]
        assert mem_p50 is not None
        assert file_p50 is not None
        bound = mem_p50 + TARGET_LAT_FSYNCS * fsync_p50
        out.append({
            "name": f"durable p50 at {TARGET_LAT_CLIENTS} client <= in-memory p50 + "
                    f"{TARGET_LAT_FSYNCS:g} x fsync p50",
            "metric": "file p50_us <= mem p50_us + 2.5 * fsync p50_us (medians)",
            "file_p50_us": file_p50,
            "mem_p50_us": mem_p50,
            "fsync_p50_us": fsync_p50,
            "threshold": bound,
            "value": file_p50,
            "extra_in_fsyncs": lat["p50_extra_in_fsyncs"],
            "target_met": file_p50 <= bound,
        })
    return out


# -- recovery ----------------------------------------------------------------------------------


def _dir_bytes(directory: str) -> tuple[int, int]:
    """(bytes, number of segment files) in a store directory."""
    total = segments = 0
    for name in os.listdir(directory):
        total += os.path.getsize(os.path.join(directory, name))
        segments += name.endswith(".log")
    return total, segments


async def build_log(directory: str, target_bytes: int) -> dict[str, Any]:
    """Append ~1 KiB ``Normal(bytes)`` entries, ``RECOVERY_PER_APPEND`` per append, with a
    few appends queued ahead of the flusher, until the segments hold ``target_bytes``."""
    payload = os.urandom(RECOVERY_PAYLOAD)
    leader = LeaderId(1, 1)
    pending: deque[trio.Event] = deque()
    errors: list[BaseException] = []
    index = 0
    t0 = time.perf_counter()
    async with open_file_log_store(directory) as store:
        while True:
            entries = [
                Entry(LogId(leader, i), Normal(payload))
                for i in range(index, index + RECOVERY_PER_APPEND)
            ]
            index += RECOVERY_PER_APPEND
            done = trio.Event()

            def callback(err: BaseException | None, done: trio.Event = done) -> None:
                if err is not None:
                    errors.append(err)
                done.set()

            await store.append(entries, callback)
            pending.append(done)
            while len(pending) > RECOVERY_IN_FLIGHT:
                await pending.popleft().wait()
            if errors:
                raise errors[0]
            # The files lag the queue by RECOVERY_IN_FLIGHT appends (a few MB) at most.
            if _dir_bytes(directory)[0] >= target_bytes:
                break
        while pending:
            await pending.popleft().wait()
        if errors:
            raise errors[0]
        fsyncs = store.fsync_count
    elapsed = time.perf_counter() - t0
    size, segments = _dir_bytes(directory)
    return {
        "entries": index,
        "bytes": size,
        "segments": segments,
        "build_s": elapsed,
        "build_mb_per_s": size / MB / elapsed,
        "build_fsyncs": fsyncs,
    }


async def time_recovery(directory: str) -> tuple[float, int]:
    """Seconds to ``open_file_log_store`` + ``get_log_state`` (+ close); entries found."""
    t0 = time.perf_counter()
    async with open_file_log_store(directory) as store:
        state = await store.get_log_state()
    elapsed = time.perf_counter() - t0
    last = state.last_log_id
    return elapsed, 0 if last is None else last.index + 1


def drop_cached_pages(directory: str) -> bool:
    """Ask the kernel to drop the cached pages of every file in ``directory`` (clean after
    the fsyncs, so they can go) without root: ``posix_fadvise(POSIX_FADV_DONTNEED)``."""
    if not hasattr(os, "posix_fadvise"):
        return False
    for name in os.listdir(directory):
        fd = os.open(os.path.join(directory, name), os.O_RDONLY)
        try:
            os.fdatasync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    return True


def recovery_size(requested_gb: float, base: str) -> tuple[float, str | None]:
    """The log size to build: the requested one, scaled down to a third of the free space."""
    free = shutil.disk_usage(base).free
    if free >= 3 * requested_gb * GB:
        return requested_gb, None
    scaled = free / 3 / GB
    return scaled, (
        f"only {free / GB:.1f} GB free on {base}: recovery log scaled down from "
        f"{requested_gb:g} GB to {scaled:.2f} GB (a third of the free space)"
    )


async def run_recovery(base: str, size_gb: float) -> dict[str, Any]:
    directory = tempfile.mkdtemp(prefix="recovery-", dir=base)
    try:
        built = await build_log(os.path.join(directory, "log"), int(size_gb * GB))
        log_dir = os.path.join(directory, "log")
        warm_s, warm_entries = await time_recovery(log_dir)
        dropped = drop_cached_pages(log_dir)
        cold_s, cold_entries = await time_recovery(log_dir)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    if warm_entries != built["entries"] or cold_entries != built["entries"]:
        raise RuntimeError(
            f"recovery found {warm_entries}/{cold_entries} entries, {built['entries']} written"
        )
    mb = built["bytes"] / MB
    return {
        **built,
        "requested_gb": size_gb,
        "payload_bytes": RECOVERY_PAYLOAD,
        "warm_s": warm_s,
        "warm_mb_per_s": mb / warm_s,
        "cold_s": cold_s if dropped else None,
        "cold_mb_per_s": mb / cold_s if dropped else None,
        "cold_method": "posix_fadvise(POSIX_FADV_DONTNEED) on every file" if dropped else None,
    }


# -- report ------------------------------------------------------------------------------------


def storage_environment(directory: str) -> dict[str, Any]:
    return {
        **environment(),
        "data_dir": directory,
        "file_system": _file_system(directory),
    }


def _file_system(path: str) -> dict[str, str] | None:
    """Device, mount point and type of the file system holding ``path`` (Linux)."""
    try:
        with open("/proc/self/mounts") as f:
            mounts = [line.split()[:3] for line in f]
    except OSError:
        return None
    real = os.path.realpath(path)
    best: list[str] | None = None
    for m in mounts:
        inside = len(m) == 3 and (real == m[1] or real.startswith(m[1].rstrip("/") + "/"))
        if inside and (best is None or len(m[1]) > len(best[1])):
            best = m
    return None if best is None else {"device": best[0], "mount": best[1], "type": best[2]}


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def format_report(
    res: Results, tgts: list[dict[str, Any]], recovery: dict[str, Any] | None, fsync_n: int
) -> str:
    fs = res.fsync_median()
    out = [
        f"raw fsync ({FSYNC_RECORD}-byte append + fsync, {fsync_n} per probe, median of "
        f"{len(res.fsync)} probes): p50 {fs['p50_us']:,.0f} us, p99 {fs['p99_us']:,.0f} us; "
        f"{FSYNC_WRITERS} writers at once: p50 {fs['concurrent_p50_us']:,.0f} us, "
        f"p99 {fs['concurrent_p99_us']:,.0f} us",
        "",
    ]
    header = ("store", "clients", "ops/s", "p50 us", "p99 us", "fsyncs/write",
              "x mem tput", "p50 +fsyncs")
    rows: list[tuple[str, ...]] = []
    for clients in res.clients():
        cmp = res.compare(clients)
        for store in STORES:
            row = res.rows.get((store, clients))
            if row is None or not row.samples:
                continue
            m = row.median()
            is_file = store == "file" and cmp is not None
            rows.append((
                store,
                str(clients),
                _fmt(m["ops_per_s"], ",.0f"),
                _fmt(m["p50_us"], ",.0f"),
                _fmt(m["p99_us"], ",.0f"),
                _fmt(m["fsyncs_per_write"], ".3f"),
                _fmt(cmp["throughput_ratio"] if is_file and cmp else None, ".2f"),
                _fmt(cmp["p50_extra_in_fsyncs"] if is_file and cmp else None, ".1f"),
            ))
    out += [*table_lines(header, rows), ""]
    out.append(
        "ops/s: writes committed and applied per second, medians of repeats; mem = "
        "MemLogStore, file = FileLogStore + durable KvStateMachine;\n"
        "fsyncs/write: fsyncs of all 3 nodes per committed write; x mem tput: file ops/s / "
        "mem ops/s; p50 +fsyncs: (file p50 - mem p50) / raw fsync p50."
    )
    out.append("")
    out.append("targets:")
    if not tgts:
        out.append("  (none: need both stores at 1 and 256 clients)")
    for t in tgts:
        mark = "MET" if t["target_met"] else "NOT MET"
        if "file_ops_per_s" in t:
            out.append(
                f"  {t['name']}: {t['file_ops_per_s']:,.0f} / {t['mem_ops_per_s']:,.0f} = "
                f"{t['value']:.2f} (>= {t['threshold']:.2f}) -> {mark}"
            )
        else:
            out.append(
                f"  {t['name']}: {t['file_p50_us']:,.0f} us vs {t['mem_p50_us']:,.0f} + "
                f"{TARGET_LAT_FSYNCS:g} x {t['fsync_p50_us']:,.0f} = {t['threshold']:,.0f} us "
                f"-> {mark}"
            )
    if recovery is not None:
        out.append("")
        out.append(
            f"recovery: {recovery['bytes'] / GB:.2f} GB log, {recovery['entries']:,} entries of "
            f"{RECOVERY_PAYLOAD} B in {recovery['segments']} segments (built in "
            f"{recovery['build_s']:.1f} s, {recovery['build_mb_per_s']:,.0f} MB/s)"
        )
        out.append(
            f"  open + scan, warm page cache: {recovery['warm_s']:.2f} s "
            f"({recovery['warm_mb_per_s']:,.0f} MB/s)"
        )
        if recovery["cold_s"] is not None:
            out.append(
                f"  open + scan, file pages dropped (posix_fadvise DONTNEED; no root, so the "
                f"rest of the page cache and any host cache stay): {recovery['cold_s']:.2f} s "
                f"({recovery['cold_mb_per_s']:,.0f} MB/s)"
            )
    return "\n".join(out)


# -- main --------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None, allow_abbrev=False
    )
    p.add_argument("--duration", type=float, default=None,
                   help="measured seconds per cluster run (default 2; 0.3 with --quick)")
    p.add_argument("--warmup", type=float, default=None,
                   help="unmeasured seconds before each run (default 0.5; 0.1 with --quick)")
    p.add_argument("--repeats", type=int, default=None,
                   help="runs of every row; medians are reported (default 3; 1 with --quick)")
    p.add_argument("--clients", default="1,64,256",
                   help="comma-separated client counts (default 1,64,256)")
    p.add_argument("--fsync-samples", type=int, default=None,
                   help="fsyncs per raw fsync probe (default 300; 50 with --quick)")
    p.add_argument("--dir", type=Path, default=DEFAULT_DIR,
                   help="where the cluster data, the fsync probe and the recovery log go "
                        f"(a temporary directory inside it; default {DEFAULT_DIR})")
    p.add_argument("--recovery-gb", type=float, default=None,
                   help="size of the recovery log in GB (default 1; 0.02 with --quick)")
    p.add_argument("--no-recovery", action="store_true", help="skip the recovery measurement")
    p.add_argument("--json-storage", dest="json", type=Path, default=DEFAULT_JSON,
                   help=f"where to write the JSON (default {DEFAULT_JSON})")
    p.add_argument("--quick", action="store_true", help="tiny settings, to check that it works")
    # run_all.py passes every benchmark the same arguments: ignore the others' options.
    args, unknown = p.parse_known_args(argv)
    if unknown:
        print(f"bench_storage: ignoring arguments {' '.join(unknown)}", file=sys.stderr)
    if args.duration is None:
        args.duration = 0.3 if args.quick else 2.0
    if args.warmup is None:
        args.warmup = 0.1 if args.quick else 0.5
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    if args.fsync_samples is None:
        args.fsync_samples = 50 if args.quick else 300
    if args.recovery_gb is None:
        args.recovery_gb = 0.02 if args.quick else 1.0
    try:
        args.clients = [int(c) for c in str(args.clients).split(",") if c.strip()]
    except ValueError:
        p.error("--clients: comma-separated integers, e.g. 1,64,256")
    if (
        args.duration <= 0 or args.warmup < 0 or args.repeats < 1 or args.fsync_samples < 1
        or args.recovery_gb <= 0 or not args.clients or min(args.clients) < 1
    ):
        p.error("need --duration > 0, --warmup >= 0, --repeats >= 1, --fsync-samples >= 1, "
                "--recovery-gb > 0, --clients >= 1")
    return args


async def run_all(args: argparse.Namespace, base: str) -> Results:
    res = Results()
    for clients in args.clients:
        for store in STORES:
            res.rows[(store, clients)] = Row(store, clients)
    for rep in range(args.repeats):
        fs = measure_fsync(base, args.fsync_samples)
        res.fsync.append(fs)
        print(
            f"  [{rep + 1}/{args.repeats}] raw fsync p50 {fs.p50_us:,.0f}us p99 "
            f"{fs.p99_us:,.0f}us ({FSYNC_WRITERS} at once: p50 {fs.concurrent_p50_us:,.0f}us)",
            flush=True,
        )
        for clients in args.clients:
            for store in STORES:
                data_dir = None
                if store == "file":
                    data_dir = tempfile.mkdtemp(prefix="cluster-", dir=base)
                gc.collect()
                # A run that hangs (e.g. a store that never finishes closing) must not hang
                # `nox -s bench` forever: dump every thread's stack and exit.
                faulthandler.dump_traceback_later(
                    args.warmup + args.duration + RUN_TIMEOUT, exit=True
                )
                try:
                    sample, info = await run_cluster(
                        store, clients, args.warmup, args.duration, seed=rep, data_dir=data_dir
                    )
                finally:
                    faulthandler.cancel_dump_traceback_later()
                    if data_dir is not None:
                        shutil.rmtree(data_dir, ignore_errors=True)
                row = res.rows[(store, clients)]
                row.samples.append(sample)
                row.cluster.append(info)
                extra = (
                    f" {sample.fsyncs_per_write:.3f} fsyncs/write"
                    if sample.fsyncs_per_write is not None else ""
                )
                print(
                    f"  [{rep + 1}/{args.repeats}] {row.name:<10} {sample.ops_per_s:>9,.0f}/s "
                    f"p50 {sample.p50_us:>8,.0f}us p99 {sample.p99_us:>8,.0f}us{extra}",
                    flush=True,
                )
    return res


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    args.dir.mkdir(parents=True, exist_ok=True)
    base = tempfile.mkdtemp(prefix="bench_storage-", dir=args.dir)
    env = storage_environment(base)
    fsinfo = env["file_system"] or {}
    print(
        f"bench_storage: {args.repeats} repeat(s) x {args.duration:g}s (+{args.warmup:g}s "
        f"warm-up) per row, clients {','.join(map(str, args.clients))}; data in {base} "
        f"({fsinfo.get('type', '?')} on {fsinfo.get('device', '?')}); python {env['python']}, "
        f"trio {env['trio']}, {env['cpu_count']} CPUs",
        flush=True,
    )
    recovery: dict[str, Any] | None = None
    note: str | None = None
    try:
        try:
            res = trio.run(run_all, args, base)
        except BaseException as exc:
            if not report_leadership_changed("bench_storage", exc):
                raise
            return 2
        if not args.no_recovery:
            size_gb, note = recovery_size(args.recovery_gb, base)
            if note:
                print(f"  note: {note}", flush=True)
            if size_gb * GB < RECOVERY_PER_APPEND * RECOVERY_PAYLOAD:
                print("  recovery skipped: not enough free disk space", flush=True)
            else:
                print(f"  recovery: building a {size_gb:.2f} GB log ...", flush=True)
                recovery = trio.run(run_recovery, base, size_gb)
                if note:
                    recovery["note"] = note
    finally:
        shutil.rmtree(base, ignore_errors=True)

    tgts = targets(res)
    print()
    print(format_report(res, tgts, recovery, args.fsync_samples))
    report = {
        "benchmark": "bench_storage",
        "env": env,
        "settings": {
            **run_settings(args),
            "clients": args.clients,
            "fsync_samples": args.fsync_samples,
            "fsync_record_bytes": FSYNC_RECORD,
            "cluster": "3 nodes, open_cluster, Router (no faults), KvStateMachine; "
                       "mem = MemLogStore, file = data_dir (FileLogStore + durable "
                       "KvStateMachine per node)",
            "config": {**config_settings(bench_config()), "snapshot_policy": "off"},
            "recovery_gb": None if args.no_recovery else args.recovery_gb,
            "aggregation": AGGREGATION,
        },
        "fsync": {
            "median": res.fsync_median(),
            "repeats": [asdict(s) for s in res.fsync],
        },
        "rows": [
            {
                "store": row.store,
                "clients": row.clients,
                "median": row.median(),
                "repeats": [asdict(s) for s in row.samples],
                "cluster": row.cluster,
            }
            for row in res.rows.values()
        ],
        "file_vs_mem": {str(c): res.compare(c) for c in res.clients()},
        "targets": tgts,
        "recovery": recovery,
    }
    write_report(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
