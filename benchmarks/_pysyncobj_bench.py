"""Peer benchmark: PySyncObj, the most used Python Raft library, on the same load shape.

A 3-node PySyncObj cluster runs as 3 OS processes (``multiprocessing``, spawn context) on
127.0.0.1, replicating a small dict (``@replicated def set(self, key, value)``; 16-byte keys
from a space of 1024, 100-byte values). PySyncObj has no client protocol, so the load is
generated inside the leader's process: N requests are kept in flight with the async form
(``set(key, value, callback=...)``); each callback records the latency (submit to callback,
``time.perf_counter``) and, until the window ends, submits the next request. Like
``bench_core``, a run has a warm-up, then a window; a request counts (and its latency is
recorded) if its callback comes inside the window; ops/s = those / window length. At the end
no new request is submitted and every in-flight one is waited for (one still unanswered
after ``DRAIN_TIMEOUT`` counts as an error, ``no_reply``).

Configs (``CONFIGS``):

* ``default``: ``SyncObjConf()`` as shipped (pysyncobj 0.3.17: ``appendEntriesUseBatch=True``,
  ``appendEntriesPeriod=0.1``, ``autoTickPeriod=0.05``, ``commandsQueueSize=100000``, in-memory
  log, no journal file).
* ``no-batching``: ``SyncObjConf(appendEntriesUseBatch=False)``, the one switch that controls
  batching. With it off (read in ``pysyncobj/syncobj.py``) the leader sends ``append_entries``
  right after appending each command (``_checkCommandsToApply``), again right after applying
  entries (so followers learn the commit index at once), and a pipe (``PipeNotifier``) wakes
  the tick thread's poll as soon as a command is queued. With it on, queued commands are
  appended to the log every tick but sent only when ``appendEntriesPeriod`` (0.1 s) has
  passed since the last send: a write waits about that period for its ``append_entries``
  (measured p50 ~101-106 ms at every N), so ops/s is about N / 0.1 s.
  Left alone on purpose: ``appendEntriesBatchSizeBytes`` (64 KiB) only caps the bytes of one
  ``append_entries`` message, it does not delay anything (and a value below the entry size
  makes PySyncObj chunk each pickled entry into pieces of that size); ``raftMinTimeout`` /
  ``raftMaxTimeout`` are election timeouts; ``commandsQueueSize`` bounds the queue of submitted
  commands (100000, far above 256 in flight: a full queue is reported as ``QUEUE_FULL``
  errors, not hidden).

Each config gets a fresh cluster that serves all its points and repeats (repeats outer,
points inner). Before each run the leader is looked up (every node must report the same
leader, which must report itself leader); after it, a change of leader or term is recorded
(``leader_changed``) and warned about, not hidden. pysyncobj's own log records of level
WARNING and above on any node are counted per run (``node_warnings``, with the last message
of each node in ``node_warning_sample``) instead of printed. With ``no-batching`` followers
log, at CRITICAL, "truncating already-applied log entries ... state machine may have
diverged": a leader that pipelines ``append_entries`` moves a follower's next index back on
a late success reply (the ``next_node_idx`` handler in ``syncobj.py``) and resends entries
the follower already has; it re-adds the same entries. To show that no divergence is
hidden, after each config's runs the 3 replicated dicts (values are distinct per write) are
compared once every node has applied the same index (``state_consistent``).

CPU per committed write (``cpu`` per run, ``cpu_us_per_write`` per point): the CPU time of
the leader's process and of one follower's (``/proc/<pid>/stat``, read by the parent just
before and just after each run) divided by the entries the leader committed in between.

Run: ``python benchmarks/_pysyncobj_bench.py [--quick] [--duration S] [--repeats N]
[--json PATH]``. ``measure_pysyncobj`` is the entry point for ``bench_peers``. The module
imports without pysyncobj (it is imported only inside functions); ``measure_pysyncobj``
raises ``PySyncObjMissing`` naming ``PYSYNCOBJ_REQUIREMENT`` if it is not installed.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import logging
import multiprocessing
import socket
import statistics
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any

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

PYSYNCOBJ_REQUIREMENT = "pysyncobj==0.3.17"

# SyncObjConf keyword arguments of each config (see the module docstring).
CONFIGS: dict[str, dict[str, Any]] = {
    "default": {},
    "no-batching": {"appendEntriesUseBatch": False},
}

NODES = 3
KEY_SPACE = 1024  # keys cycle, so the state (and PySyncObj's log compaction) stays small
KEY_BYTES = 16
VALUE_BYTES = 100

LEADER_TIMEOUT = 30.0  # seconds to wait for an agreed leader
DRAIN_TIMEOUT = 10.0  # seconds to wait, after a window, for in-flight requests
REPLY_TIMEOUT = 60.0  # seconds to wait for a node process to answer a command
STOP_TIMEOUT = 3.0  # seconds a node gets to exit after "stop" (then terminate, then kill)


class PySyncObjMissing(RuntimeError):
    """pysyncobj is not importable."""


def require_pysyncobj() -> str:
    """Import pysyncobj or raise ``PySyncObjMissing`` naming the pip requirement; its version."""
    try:
        from pysyncobj.version import VERSION
    except ImportError as exc:
        raise PySyncObjMissing(
            f"the PySyncObj benchmark needs pysyncobj: pip install '{PYSYNCOBJ_REQUIREMENT}'"
        ) from exc
    return str(VERSION)


# -- the node process ----------------------------------------------------------------------------


def _store_class() -> type:
    """The replicated dict, defined here so that the module imports without pysyncobj."""
    from pysyncobj import SyncObj, replicated

    class Store(SyncObj):  # type: ignore[misc]
        def __init__(self, self_addr: str, partners: list[str], conf: Any) -> None:
            super().__init__(self_addr, partners, conf)
            self._data: dict[str, bytes] = {}  # after __init__: SyncObj serialises it

        @replicated  # type: ignore[untyped-decorator]
        def set(self, key: str, value: bytes) -> int:
            self._data[key] = value
            return len(self._data)

    return Store


class _LogCounter(logging.Handler):
    """Counts pysyncobj's log records of level WARNING and above (in place of printing them
    to stderr) and keeps the last few; the parent reports them per run."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0
        self.last: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        self.last = [*self.last[-2:], f"{record.levelname}: {record.getMessage()}"]


def _status(obj: Any, log: _LogCounter) -> dict[str, Any]:
    leader = obj._getLeader()
    return {
        "self": obj.selfNode.address,
        "is_leader": obj._isLeader(),
        "leader": None if leader is None else leader.address,
        "term": obj._getTerm(),
        "commit_idx": obj.raftCommitIndex,
        "last_applied": obj.raftLastApplied,
        "log_warnings": log.count,
        "log_last": log.last,
    }


def _digest(obj: Any) -> dict[str, Any]:
    """A hash of the replicated dict (call it when no write is in flight)."""
    data = sorted(obj._data.items())
    return {
        "last_applied": obj.raftLastApplied,
        "sha256": hashlib.sha256(repr(data).encode()).hexdigest(),
    }


def _run_load(obj: Any, clients: int, warmup: float, duration: float) -> dict[str, Any]:
    """Keep ``clients`` requests in flight for ``warmup + duration`` seconds (in this node's
    process); latencies of the requests answered inside the window."""
    from pysyncobj import FAIL_REASON

    reasons = {v: k for k, v in vars(FAIL_REASON).items() if k.isupper()}
    clock = time.perf_counter
    keys = [f"k{i:0{KEY_BYTES - 1}d}" for i in range(KEY_SPACE)]
    latencies: list[float] = []
    record = latencies.append
    errors: Counter[str] = Counter()
    err_lock = threading.Lock()
    state = {"seq": 0, "inflight": clients, "retry": 0, "submitted": 0}
    drained = threading.Event()
    now = clock()
    start, end = now + warmup, now + warmup + duration

    # Callbacks run in PySyncObj's tick thread; the first ``clients`` submissions run here.
    def submit() -> None:
        seq = state["seq"]
        state["seq"] = seq + 1
        state["submitted"] += 1
        t0 = clock()
        value = (
            f"{seq:0{VALUE_BYTES}d}".encode()
        )  # distinct, so that the state check means something
        obj.set(keys[seq % KEY_SPACE], value, callback=lambda res, err: done(t0, err))

    def done(t0: float, err: int) -> None:
        t1 = clock()
        if err == FAIL_REASON.SUCCESS:
            if start <= t1 <= end:
                record(t1 - t0)
        else:
            with err_lock:
                errors[reasons.get(err, str(err))] += 1
                if err == FAIL_REASON.QUEUE_FULL and t1 < end:
                    # Called synchronously by the refused submit: resubmit on the next tick.
                    state["retry"] += 1
                    return
        if t1 < end:
            submit()
        else:
            finish_one()

    def finish_one() -> None:
        with err_lock:
            state["inflight"] -= 1
            if state["inflight"] <= 0:
                drained.set()

    def on_tick() -> None:
        with err_lock:
            retry, state["retry"] = state["retry"], 0
        for _ in range(retry):
            if clock() < end:
                submit()
            else:
                finish_one()

    obj.addOnTickCallback(on_tick)
    try:
        for _ in range(clients):
            submit()
        time.sleep(max(0.0, end - clock()))
        if not drained.wait(DRAIN_TIMEOUT):
            # on_tick may still owe some retries; either way these got no reply.
            with err_lock:
                errors["no_reply"] += state["inflight"]
    finally:
        obj.removeOnTickCallback(on_tick)
    lat = sorted(latencies)
    return {
        "ops_per_s": len(lat) / duration,
        "p50_us": percentile(lat, 50) * 1e6 if lat else float("nan"),
        "p99_us": percentile(lat, 99) * 1e6 if lat else float("nan"),
        "completed": len(lat),
        "submitted": state["submitted"],
        "errors": sum(errors.values()),
        "error_reasons": dict(errors),
    }


def _node_main(
    self_addr: str, partners: list[str], conf_kwargs: dict[str, Any], conn: Connection
) -> None:
    """A node process: serve ``(command, kwargs)`` requests from ``conn`` until "stop" or
    until the parent goes away. Replies are ``("ok", payload)`` or ``("error", traceback)``."""
    obj = None
    try:
        from pysyncobj import SyncObjConf

        log = _LogCounter()
        logging.getLogger("pysyncobj").addHandler(log)
        obj = _store_class()(self_addr, partners, SyncObjConf(**conf_kwargs))
        conn.send(("ok", self_addr))
        while True:
            try:
                cmd, kwargs = conn.recv()
            except EOFError:
                return
            if cmd == "stop":
                conn.send(("ok", None))
                return
            try:
                if cmd == "status":
                    reply: Any = _status(obj, log)
                elif cmd == "digest":
                    reply = _digest(obj)
                elif cmd == "run":
                    reply = _run_load(obj, **kwargs)
                else:
                    raise ValueError(f"unknown command {cmd!r}")
            except Exception:
                conn.send(("error", traceback.format_exc()))
            else:
                conn.send(("ok", reply))
    except Exception:
        with contextlib.suppress(OSError):
            conn.send(("error", traceback.format_exc()))
    finally:
        if obj is not None:
            obj.destroy()


# -- the parent: cluster control -----------------------------------------------------------------


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports the OS considers free on 127.0.0.1 (all bound at once, then
    released)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class _Node:
    def __init__(self, ctx: Any, addr: str, partners: list[str], conf: dict[str, Any]) -> None:
        self.addr = addr
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(
            target=_node_main,
            args=(addr, partners, conf, child),
            name=f"pysyncobj {addr}",
            daemon=True,
        )
        self.proc.start()
        child.close()

    def recv(self, timeout: float) -> Any:
        if not self.conn.poll(timeout):
            raise RuntimeError(f"pysyncobj node {self.addr}: no reply in {timeout:g}s")
        try:
            kind, payload = self.conn.recv()
        except EOFError:
            self.proc.join(1.0)
            raise RuntimeError(
                f"pysyncobj node {self.addr} died (exit code {self.proc.exitcode})"
            ) from None
        if kind != "ok":
            raise RuntimeError(f"pysyncobj node {self.addr} failed:\n{payload}")
        return payload

    def call(self, cmd: str, timeout: float = REPLY_TIMEOUT, **kwargs: Any) -> Any:
        self.conn.send((cmd, kwargs))
        return self.recv(timeout)

    def stop(self) -> None:
        """Ask the node to exit; terminate, then kill it if it does not. Never raises."""
        try:
            if self.proc.is_alive():
                self.conn.send(("stop", {}))
        except OSError:
            pass
        self.proc.join(STOP_TIMEOUT)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(STOP_TIMEOUT)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
        self.conn.close()


class _Cluster:
    def __init__(self, conf: dict[str, Any]) -> None:
        self.conf = conf
        self.nodes: list[_Node] = []

    def __enter__(self) -> _Cluster:
        ctx = multiprocessing.get_context("spawn")
        addrs = [f"127.0.0.1:{p}" for p in free_ports(NODES)]
        try:
            for a in addrs:
                self.nodes.append(_Node(ctx, a, [b for b in addrs if b != a], self.conf))
            for node in self.nodes:
                node.recv(REPLY_TIMEOUT)  # constructed (its port bound)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for node in self.nodes:
            node.stop()

    def cpu_seconds(self) -> dict[str, float | None]:
        """CPU seconds used so far by each node process, by address."""
        return {node.addr: process_cpu_seconds(node.proc.pid) for node in self.nodes}

    def statuses(self) -> list[dict[str, Any]]:
        return [node.call("status") for node in self.nodes]

    def agreed_leader(self, st: list[dict[str, Any]]) -> tuple[_Node, dict[str, Any]] | None:
        """In statuses ``st``: the leader every node names, if it says it is leader and all
        nodes are in one term."""
        leaders = {s["leader"] for s in st}
        terms = {s["term"] for s in st}
        if len(leaders) != 1 or len(terms) != 1 or None in leaders:
            return None
        (addr,) = leaders
        idx = [n.addr for n in self.nodes].index(addr)
        if not st[idx]["is_leader"]:
            return None
        return self.nodes[idx], st[idx]

    def wait_for_leader(
        self, timeout: float = LEADER_TIMEOUT
    ) -> tuple[_Node, list[dict[str, Any]]]:
        """The agreed leader and every node's status."""
        deadline = time.monotonic() + timeout
        while True:
            st = self.statuses()
            found = self.agreed_leader(st)
            if found is not None:
                return found[0], st
            if time.monotonic() > deadline:
                raise RuntimeError(f"pysyncobj: no agreed leader after {timeout:g}s: {st}")
            time.sleep(0.05)

    def state_check(self, timeout: float = DRAIN_TIMEOUT) -> bool | None:
        """Once every node has applied the same log index (no write in flight): whether all
        replicated dicts are equal; None if they did not catch up within ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            digests = [node.call("digest") for node in self.nodes]
            if len({d["last_applied"] for d in digests}) == 1:
                return len({d["sha256"] for d in digests}) == 1
            if time.monotonic() > deadline:
                return None
            time.sleep(0.05)


# -- measurement ---------------------------------------------------------------------------------


def _log_delta(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> dict[str, Any]:
    """pysyncobj's WARNING+ log records on all nodes between two ``statuses()``, and the last
    such message of each node that logged any."""
    count, sample = 0, []
    for b, a in zip(before, after, strict=True):
        d = a["log_warnings"] - b["log_warnings"]
        if d:
            count += d
            sample.append(f"{a['self']}: {a['log_last'][-1]}")
    return {"node_warnings": count, "node_warning_sample": sample}


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def measure_pysyncobj(
    points: Sequence[int] = (1, 64, 256),
    *,
    configs: Sequence[str] = ("default", "no-batching"),
    duration: float = 2.0,
    repeats: int = 3,
    warmup: float = 0.5,
    verbose: bool = True,
) -> list[dict[str, Any]]:
    """One dict per (config, point), in that order: medians across ``repeats`` of ops/s and
    of each run's nearest-rank p50/p99 latency (µs), ``errors`` summed over the repeats, and
    the per-repeat dicts under ``repeats``."""
    version = require_pysyncobj()
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        raise ValueError(f"unknown config(s) {unknown}; known: {sorted(CONFIGS)}")
    if duration <= 0 or warmup < 0 or repeats < 1 or any(n < 1 for n in points):
        raise ValueError("need duration > 0, warmup >= 0, repeats >= 1, every point >= 1")
    results: list[dict[str, Any]] = []
    for config in configs:
        runs: dict[int, list[dict[str, Any]]] = {n: [] for n in points}
        with _Cluster(CONFIGS[config]) as cluster:
            for rep in range(repeats):
                for n in points:
                    leader, before_all = cluster.wait_for_leader()
                    before = before_all[[x.addr for x in cluster.nodes].index(leader.addr)]
                    cpu_before = cluster.cpu_seconds()
                    run = leader.call(
                        "run",
                        timeout=warmup + duration + DRAIN_TIMEOUT + REPLY_TIMEOUT,
                        clients=n,
                        warmup=warmup,
                        duration=duration,
                    )
                    cpu_after = cluster.cpu_seconds()
                    after_all = cluster.statuses()
                    after = cluster.agreed_leader(after_all)
                    follower = next(x.addr for x in cluster.nodes if x is not leader)
                    leader_after = after_all[[x.addr for x in cluster.nodes].index(leader.addr)]
                    cpu = cpu_per_write(
                        cpu_before,
                        cpu_after,
                        leader.addr,
                        follower,
                        leader_after["commit_idx"] - before["commit_idx"],
                    )
                    changed = after is None or (after[1]["leader"], after[1]["term"]) != (
                        before["leader"],
                        before["term"],
                    )
                    run = {
                        "repeat": rep,
                        **run,
                        "leader": before["leader"],
                        "term": before["term"],
                        "leader_changed": changed,
                        **_log_delta(before_all, after_all),
                        "cpu": cpu,
                    }
                    runs[n].append(run)
                    if verbose:
                        print(
                            f"  [{rep + 1}/{repeats}] pysyncobj {config:<11} clients {n:>3}: "
                            f"{run['ops_per_s']:>9,.0f}/s p50 {run['p50_us']:>9,.0f}us "
                            f"p99 {run['p99_us']:>9,.0f}us errors {run['errors']}",
                            flush=True,
                        )
                    if changed:
                        print(
                            f"  WARNING: pysyncobj {config} clients {n}: leadership changed "
                            f"during the run (was {before['leader']} term {before['term']})",
                            file=sys.stderr,
                            flush=True,
                        )
            consistent = cluster.state_check()
        if verbose and consistent is not True:
            print(
                f"  WARNING: pysyncobj {config}: replicated state "
                + ("differs between nodes" if consistent is False else "did not settle"),
                file=sys.stderr,
                flush=True,
            )
        for n in points:
            reps = runs[n]
            results.append(
                {
                    "system": "pysyncobj",
                    "config": config,
                    "clients": n,
                    "ops_per_s": _median([r["ops_per_s"] for r in reps]),
                    "p50_us": _median([r["p50_us"] for r in reps]),
                    "p99_us": _median([r["p99_us"] for r in reps]),
                    "errors": sum(r["errors"] for r in reps),
                    "repeats": reps,
                    "version": version,
                    "conf": CONFIGS[config],
                    "node_warnings": sum(r["node_warnings"] for r in reps),
                    "state_consistent": consistent,
                    "cpu_us_per_write": {
                        role: median_or_none([r["cpu"][f"{role}_us_per_write"] for r in reps])
                        for role in ("leader", "follower")
                    },
                }
            )
    return results


# -- report --------------------------------------------------------------------------------------


def format_table(results: Sequence[dict[str, Any]]) -> str:
    header = (
        "config",
        "clients",
        "ops/s",
        "p50 us",
        "p99 us",
        "errors",
        "ldr chg",
        "warns",
        "state",
        CPU_HEADER,
    )
    state = {True: "same", False: "DIFFERS", None: "unsettled"}
    rows = [
        (
            r["config"],
            str(r["clients"]),
            f"{r['ops_per_s']:,.0f}",
            f"{r['p50_us']:,.0f}",
            f"{r['p99_us']:,.0f}",
            str(r["errors"]),
            str(sum(x["leader_changed"] for x in r["repeats"])),
            str(r["node_warnings"]),
            state[r["state_consistent"]],
            format_cpu_pair(r["cpu_us_per_write"]["leader"], r["cpu_us_per_write"]["follower"]),
        )
        for r in results
    ]
    lines = table_lines(header, rows)
    lines.append("")
    lines.append(
        "pysyncobj, 3 processes on 127.0.0.1, load in the leader's process; ops/s and "
        "latency (submit to callback): median of repeats;\n"
        "errors: failed or unanswered requests, summed over repeats; ldr chg: runs during "
        "which leadership changed;\nwarns: pysyncobj WARNING+ log records on any node during "
        "the runs; state: replicated dicts of the 3 nodes compared after the config's runs;\n"
        "CPU us/write L / F: CPU time (user+sys) of the leader's process (load generator "
        "included) / of one follower's over a run,\nper entry the leader committed in it."
    )
    warned = {m for r in results for x in r["repeats"] for m in x["node_warning_sample"]}
    for m in sorted(warned)[:5]:
        lines.append(f"  e.g. {m}")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    add_run_options(p)
    p.add_argument(
        "--configs",
        nargs="+",
        choices=sorted(CONFIGS),
        default=list(CONFIGS),
        help="PySyncObj configs (default: all)",
    )
    return apply_quick(p.parse_args(argv))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        version = require_pysyncobj()
    except PySyncObjMissing as exc:
        print(exc, file=sys.stderr)
        return 2
    env = environment()
    print(
        f"pysyncobj {version}: {args.repeats} repeat(s) x {args.duration:g}s "
        f"(+{args.warmup:g}s warm-up) per point; python {env['python']}, "
        f"{env['cpu_count']} CPUs",
        flush=True,
    )
    results = measure_pysyncobj(
        args.points,
        configs=args.configs,
        duration=args.duration,
        repeats=args.repeats,
        warmup=args.warmup,
    )
    report = {
        "benchmark": "pysyncobj",
        "env": {**env, "pysyncobj": version},
        "settings": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "repeats": args.repeats,
            "requirement": PYSYNCOBJ_REQUIREMENT,
            "cluster": f"{NODES} processes on 127.0.0.1, load in the leader's process",
            "key_bytes": KEY_BYTES,
            "key_space": KEY_SPACE,
            "value_bytes": VALUE_BYTES,
            "configs": {c: CONFIGS[c] for c in args.configs},
            "aggregation": AGGREGATION,
        },
        "results": results,
    }
    return emit_report(report, format_table(results), args.json)


if __name__ == "__main__":
    sys.exit(main())
