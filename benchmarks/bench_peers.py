"""openraft_trio against PySyncObj (the most used Python Raft library), in one run.

Both run as 3 processes on 127.0.0.1 with small writes (16-byte keys, 100-byte values) and
N requests kept in flight (1, 64, 256):

* PySyncObj (:mod:`_pysyncobj_bench`): load generated inside the leader's process (it has
  no client protocol), with its default ``SyncObjConf()`` and with batching off
  (``appendEntriesUseBatch=False``); no fsync (it has no durable log).
* openraft_trio (:mod:`bench_tcp`): MemLogStore and FileLogStore (fsync on), with the load
  inside the leader's process (like PySyncObj) and from a KvClient over TCP (what an
  application sees, one more network hop).

Both tables give each run's CPU time per committed write on the leader's process and on
one follower's (``CPU us/write L / F``, from ``/proc/<pid>/stat``; see :mod:`bench_tcp`).
The comparison table gives, per point, our throughput as a multiple of PySyncObj's and
whether our p99 is lower. Targets (issue 6): >= 3x PySyncObj's throughput with a lower
p99 at every point; single-writer latency under 1 ms with MemLogStore.

Run with ``nox -s bench_peers`` (installs PySyncObj into that session only), or
``python benchmarks/bench_peers.py [--quick] [--json PATH]`` with pysyncobj installed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from _bench_common import add_run_options, apply_quick, emit_report, environment, table_lines
from _pysyncobj_bench import PYSYNCOBJ_REQUIREMENT, PySyncObjMissing, measure_pysyncobj
from _pysyncobj_bench import format_table as format_pysyncobj_table
from bench_tcp import format_table as format_openraft_table
from bench_tcp import measure_openraft

# Issue 14's targets, each against PySyncObj with batching off, measured in the same run:
# (our config, clients, what is compared, threshold).
BASELINE_CONFIG = "no-batching"
TARGETS: tuple[tuple[str, int, str, float], ...] = (
    ("mem/leader", 1, "p50", 2.0),  # p50 <= 2 x theirs
    ("mem/leader", 64, "tput+p99", 3.0),  # >= 3 x their writes/s, with a lower p99
    ("mem/leader", 256, "tput+p99", 3.0),
    ("mem/client", 64, "tput", 2.0),  # >= 2 x their writes/s
    ("mem/client", 256, "tput", 2.0),
    ("file/leader", 256, "tput", 1.5),
)
TARGET_RATIO = 3.0  # the comparison table's "x tput" column is read against this


def compare(ours: list[dict[str, Any]], theirs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (our config, their config, clients)."""
    rows = []
    for o in ours:
        for t in theirs:
            if t["clients"] != o["clients"]:
                continue
            ratio = o["ops_per_s"] / t["ops_per_s"] if t["ops_per_s"] else float("inf")
            rows.append(
                {
                    "ours": o["config"],
                    "theirs": t["config"],
                    "clients": o["clients"],
                    "throughput_ratio": ratio,
                    "p99_ours_us": o["p99_us"],
                    "p99_theirs_us": t["p99_us"],
                    "p99_lower": o["p99_us"] < t["p99_us"],
                    "met": ratio >= TARGET_RATIO and o["p99_us"] < t["p99_us"],
                }
            )
    return rows


def targets(ours: list[dict[str, Any]], theirs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Issue 14's targets, each judged against PySyncObj without batching in this run."""
    by_ours = {(o["config"], o["clients"]): o for o in ours}
    by_theirs = {t["clients"]: t for t in theirs if t["config"] == BASELINE_CONFIG}
    out = []
    for config, clients, kind, threshold in TARGETS:
        o, t = by_ours.get((config, clients)), by_theirs.get(clients)
        if o is None or t is None:
            continue
        if kind == "p50":
            value = o["p50_us"] / t["p50_us"] if t["p50_us"] else float("inf")
            met = value <= threshold
            name = f"{config} x{clients}: p50 <= {threshold:g} x PySyncObj's"
        else:
            value = o["ops_per_s"] / t["ops_per_s"] if t["ops_per_s"] else float("inf")
            met = value >= threshold
            name = f"{config} x{clients}: writes/s >= {threshold:g} x PySyncObj's"
            if kind == "tput+p99":
                met = met and o["p99_us"] < t["p99_us"]
                name += ", lower p99"
        out.append({"name": name, "value": value, "threshold": threshold, "met": met})
    return out


def format_targets(rows: Sequence[dict[str, Any]]) -> str:
    return "\n".join(
        f"target: {r['name']}: {r['value']:.2f} -> {'MET' if r['met'] else 'NOT MET'}"
        for r in rows
    )


def format_comparison(rows: Sequence[dict[str, Any]]) -> str:
    header = [
        "openraft_trio",
        "vs pysyncobj",
        "clients",
        "x tput",
        "p99 ours",
        "p99 theirs",
        "target",
    ]
    lines = [
        [
            r["ours"],
            r["theirs"],
            str(r["clients"]),
            f"{r['throughput_ratio']:.2f}",
            f"{r['p99_ours_us']:,.0f}",
            f"{r['p99_theirs_us']:,.0f}",
            "met" if r["met"] else "NOT met",
        ]
        for r in rows
    ]
    return "\n".join(table_lines(header, lines))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_run_options(p)
    return apply_quick(p.parse_args(argv))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    run = {"duration": args.duration, "repeats": args.repeats, "warmup": args.warmup}
    print(
        f"bench_peers: {args.repeats} x {args.duration}s (+{args.warmup}s warm-up) per point",
        flush=True,
    )
    try:
        print("\nPySyncObj:", flush=True)
        theirs = measure_pysyncobj(args.points, **run)
    except PySyncObjMissing as e:
        print(e, file=sys.stderr)
        return 2
    print("\nopenraft_trio:", flush=True)
    ours = measure_openraft(args.points, **run)
    rows = compare(ours, theirs)
    goals = targets(ours, theirs)
    report = {
        "benchmark": "peers",
        "env": environment(),
        "settings": {**run, "pysyncobj": PYSYNCOBJ_REQUIREMENT, "target_ratio": TARGET_RATIO},
        "pysyncobj": theirs,
        "openraft_trio": ours,
        "comparison": rows,
        "targets": goals,
    }
    lines = [
        "PySyncObj",
        format_pysyncobj_table(theirs),
        "",
        "openraft_trio",
        format_openraft_table(ours),
        "",
        "Comparison (x tput against 3x, and a lower p99)",
        format_comparison(rows),
        "",
        f"Issue 14's targets (against PySyncObj {BASELINE_CONFIG}, this run):",
        format_targets(goals),
    ]
    return emit_report(report, "\n".join(lines), args.json)


if __name__ == "__main__":
    sys.exit(main())
