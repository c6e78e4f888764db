"""What ``bench_core`` and ``bench_storage`` share: the cluster config, the leadership check
around a measured run, nearest-rank percentiles, and the pieces of their reports (the
environment record, the text table, the common settings, the JSON file).

Imported as the top-level module ``_bench_common``: running ``python benchmarks/X.py``
puts this directory first on ``sys.path``, and ``run_all.py`` adds it before importing the
benchmarks.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import trio

from openraft_trio import Config, ServerState
from openraft_trio._percentile import percentile as percentile  # the one definition
from openraft_trio.testing import Cluster

AGGREGATION = "median across repeats; latency percentiles are nearest-rank per run"


def bench_config(snapshots: bool = False) -> Config:
    """Election timeouts generous enough that leadership holds under full load.

    Snapshots are off (a policy no run reaches) unless ``snapshots``: the benchmarks measure
    the write path; snapshot cost grows with the state machine (every write here adds a
    key) and is measured on its own by ``bench_snapshot.py``. ``bench_core``'s ``snap`` row
    shows the default policy (every 5000 entries) in the same run.
    """
    return Config(
        cluster_name="bench",
        election_timeout_min=1.0,
        election_timeout_max=2.0,
        heartbeat_interval=0.1,
        snapshot_policy=5000 if snapshots else 10**12,
    )


def config_settings(config: Config) -> dict[str, Any]:
    """The timing settings of ``config``, for a report's ``settings.config``."""
    return {
        "election_timeout_min": config.election_timeout_min,
        "election_timeout_max": config.election_timeout_max,
        "heartbeat_interval": config.heartbeat_interval,
    }


# -- leadership ----------------------------------------------------------------------------------


class LeadershipChanged(RuntimeError):
    """Leadership moved during a measurement: the run is invalid."""


def lost_leadership(leader_id: int, exc: BaseException) -> LeadershipChanged:
    """The error for a write the leader refused (``ForwardToLeader``); raise it ``from exc``."""
    return LeadershipChanged(f"node {leader_id} lost leadership: {exc!r}")


def check_leadership(cluster: Cluster, leader_id: int, term: int) -> dict[str, int]:
    """After a run: raise ``LeadershipChanged`` unless every node still has ``leader_id`` as
    leader in ``term`` and that node is leader; return the leader's log position."""
    for nid in cluster.node_ids:
        mtr = cluster.nodes[nid].metrics
        if mtr.current_term != term or mtr.current_leader != leader_id:
            raise LeadershipChanged(
                f"node {nid}: term {mtr.current_term} leader {mtr.current_leader}, "
                f"expected term {term} leader {leader_id}"
            )
    leader = cluster.nodes[leader_id]
    if leader.metrics.state != ServerState.LEADER:
        raise LeadershipChanged(f"node {leader_id} is {leader.metrics.state}, not leader")
    mtr = leader.metrics
    return {
        "leader": leader_id,
        "term": term,
        "last_log_index": mtr.last_log_index or 0,
        "committed_index": mtr.committed.index if mtr.committed is not None else 0,
    }


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for sub in exc.exceptions for leaf in _leaves(sub)]
    return [exc]


def report_leadership_changed(benchmark: str, exc: BaseException) -> bool:
    """Print every ``LeadershipChanged`` inside ``exc`` (an exception group's leaves) to
    stderr; False if there is none (the caller re-raises ``exc``)."""
    changed = [e for e in _leaves(exc) if isinstance(e, LeadershipChanged)]
    for e in changed:
        print(f"{benchmark}: FAILED, leadership changed mid-run: {e}", file=sys.stderr)
    return bool(changed)


# -- CPU time of a process ----------------------------------------------------------------------


CPU_HEADER = "CPU us/write L / F"


def process_cpu_seconds(pid: int, *, system_only: bool = False) -> float | None:
    """User + system CPU seconds process ``pid`` (all its threads, live and exited) has used
    (system time alone with ``system_only``), from ``/proc/<pid>/stat`` (clock-tick
    resolution, usually 10 ms); None where there is no ``/proc`` or the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            stat = f.read()
    except OSError:
        return None
    # Fields after the command name (which may hold spaces) start at the state, field 3;
    # utime and stime are fields 14 and 15.
    fields = stat[stat.rindex(")") + 2 :].split()
    ticks = int(fields[12]) if system_only else int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def cpu_us_per_write(
    before: float | None, after: float | None, writes: int
) -> float | None:
    """CPU microseconds per write between two :func:`process_cpu_seconds` readings."""
    if before is None or after is None or writes <= 0:
        return None
    return (after - before) * 1e6 / writes


def cpu_per_write(
    before: dict[Any, float | None],
    after: dict[Any, float | None],
    leader: Any,
    follower: Any,
    writes: int,
) -> dict[str, Any]:
    """A run's ``cpu`` record from :func:`process_cpu_seconds` readings per node (keyed by
    node) before and after it: the leader's and ``follower``'s CPU µs per committed write,
    and every node's CPU seconds."""
    return {
        "committed_writes": writes,
        "leader_us_per_write": cpu_us_per_write(before[leader], after[leader], writes),
        "follower_us_per_write": cpu_us_per_write(before[follower], after[follower], writes),
        "leader": leader,
        "follower": follower,
        "cpu_s": {str(n): _difference(before[n], after[n]) for n in before},
    }


def _difference(before: float | None, after: float | None) -> float | None:
    return None if before is None or after is None else after - before


def median_or_none(values: Sequence[float | None]) -> float | None:
    """The median of the known values; None if there is none."""
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def format_cpu_pair(leader: float | None, follower: float | None) -> str:
    """``"L / F"`` CPU µs per write for a table cell, ``-`` where unknown."""
    return " / ".join("-" if v is None else f"{v:,.0f}" for v in (leader, follower))


# -- report --------------------------------------------------------------------------------------


def environment() -> dict[str, Any]:
    return {
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "trio": trio.__version__,
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "machine": platform.machine(),
    }


def table_lines(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A text table: the first column left-aligned, the others right-aligned, two spaces
    apart; a rule of dashes under the header."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = (c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))
        return "  ".join([first, *rest])

    return [line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)]


def run_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The first keys of a report's ``settings``: the window, warm-up and repeats."""
    return {"duration_s": args.duration, "warmup_s": args.warmup, "repeats": args.repeats}


def write_report(path: Path, report: dict[str, Any]) -> None:
    """Write ``report`` as indented JSON to ``path`` (its directory is created); say where."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nJSON written to {path}")


def emit_report(report: dict[str, Any], text: str, json_path: Path | None) -> int:
    """Print ``text`` (the readable tables) and ``report`` as JSON; also write the JSON to
    ``json_path`` if given. Returns 0, the benchmark's exit status."""
    print()
    print(text)
    print()
    print(json.dumps(report, indent=2))
    if json_path is not None:
        write_report(json_path, report)
    return 0


def add_run_options(p: argparse.ArgumentParser) -> None:
    """The options every load benchmark shares: ``--quick`` (0.5 s runs, 1 repeat, 0.2 s
    warm-up unless given), ``--duration``, ``--warmup``, ``--repeats``, ``--points``
    (requests kept in flight, ``1,64,256``) and ``--json PATH``. Call
    :func:`apply_quick` on the parsed arguments."""
    p.add_argument("--quick", action="store_true", help="0.5 s runs, 1 repeat")
    p.add_argument("--duration", type=float, help="measured seconds per run (2; 0.5 quick)")
    p.add_argument("--warmup", type=float, help="unmeasured seconds before each run (0.5)")
    p.add_argument("--repeats", type=int, help="runs per point; medians reported (3; 1 quick)")
    p.add_argument(
        "--points",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[1, 64, 256],
        help="requests kept in flight, comma-separated (1,64,256)",
    )
    p.add_argument("--json", type=Path, help="also write the JSON report here")


def apply_quick(args: argparse.Namespace) -> argparse.Namespace:
    """Fill the defaults of :func:`add_run_options` (shorter with ``--quick``)."""
    quick = args.quick
    if args.duration is None:
        args.duration = 0.5 if quick else 2.0
    if args.repeats is None:
        args.repeats = 1 if quick else 3
    if args.warmup is None:
        args.warmup = 0.2 if quick else 0.5
    return args
