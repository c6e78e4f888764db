"""``python -m openraft_trio.testing.sim``: run many seeds, or replay one with its timeline.

    python -m openraft_trio.testing.sim --seeds 0-999 --nodes 5 --duration 60 --jobs 8
    python -m openraft_trio.testing.sim --replay 17 --nodes 5 --duration 60 --trace sim-17.jsonl

See ``docs/simulator.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import re
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

import attrs

from ._faults import FaultPlan
from ._runner import SimResult, run_simulation
from ._timeline import render_html, render_text
from ._trace import _plain
from ._workload import KvWorkload

DEFAULT_SEEDS = "0-99"
DEFAULT_NODES = 5
DEFAULT_DURATION = 60.0
DEFAULT_CLIENTS = 8
MAX_SEEDS = 1_000_000
#: Violations shown per failing seed in the summary (the JSON output has them all).
SHOWN_VIOLATIONS = 3
PROG = "python -m openraft_trio.testing.sim"

# Summed and averaged in the summary table, in this order.
STAT_ROWS = (
    ("commits", "commits"),
    ("elections", "elections"),
    ("faults_injected", "faults injected"),
    ("operations", "client operations"),
    ("writes_acked", "writes acked"),
    ("writes_unknown", "writes unknown"),
    ("reads_ok", "reads ok"),
    ("reads_lease_ok", "  by LEASE_READ"),
    ("reads_index_ok", "  by READ_INDEX"),
    ("probes", "race probes"),
    ("transfers_ok", "transfers done"),
    ("membership_changes_ok", "member changes"),
    ("snapshots", "snapshots built"),
    ("snapshot_installs", "snapshots sent"),
    ("messages", "messages"),
    ("dropped", "dropped"),
    ("duplicated", "duplicated"),
    ("virtual_time", "virtual time (s)"),
    ("trace_events", "trace events"),
)


# -- seeds -----------------------------------------------------------------------------------


def parse_seeds(spec: str) -> list[int]:
    """``"A-B"`` (inclusive), ``"N"``, or a comma list of those -> sorted, distinct seeds.

    Raises ValueError with a readable message for anything else.
    """
    seeds: set[int] = set()
    if not spec.strip():
        raise ValueError("empty seed list")
    for raw in spec.split(","):
        part = raw.strip()
        m = re.fullmatch(r"(\d+)(?:\s*-\s*(\d+))?", part)
        if m is None:
            raise ValueError(
                f"bad seed item {part!r}: expected N or A-B (non-negative integers), "
                "comma-separated, e.g. 0-999 or 1,5,10-20"
            )
        lo = int(m.group(1))
        hi = lo if m.group(2) is None else int(m.group(2))
        if hi < lo:
            raise ValueError(f"bad seed range {part!r}: {hi} < {lo}")
        if hi - lo + 1 + len(seeds) > MAX_SEEDS:
            raise ValueError(f"too many seeds (more than {MAX_SEEDS})")
        seeds.update(range(lo, hi + 1))
    return sorted(seeds)


def _seeds_arg(spec: str) -> list[int]:
    try:
        return parse_seeds(spec)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _bounded(kind: type[int] | type[float], lo: float, what: str) -> Callable[[str], Any]:
    def conv(text: str) -> Any:
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a valid {what}") from None
        if not (v >= lo and math.isfinite(v)):
            raise argparse.ArgumentTypeError(f"{what} must be >= {lo:g}, got {text}")
        return v

    return conv


# -- one seed --------------------------------------------------------------------------------


@attrs.frozen
class SeedSummary:
    """The small, picklable outcome of one seed (what a worker process sends back)."""

    seed: int
    ok: bool
    trace_hash: str
    violations: tuple[str, ...]
    violation_kinds: tuple[str, ...]
    stats: dict[str, Any]
    linearizability: str  # "ok", "illegal", "unknown", "n/a" or "error"
    replay: str
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        d = attrs.asdict(self)
        d["violations"] = list(self.violations)
        d["violation_kinds"] = list(self.violation_kinds)
        return d


@attrs.frozen
class RunSpec:
    nodes: int = DEFAULT_NODES
    duration: float = DEFAULT_DURATION
    clients: int = DEFAULT_CLIENTS
    faults: bool = True
    membership: bool = False
    storage: str = "mem"
    sessions: bool = True

    def workload(self) -> KvWorkload:
        return KvWorkload(sessions=self.sessions)

    def plan(self) -> FaultPlan:
        plan = FaultPlan() if self.faults else FaultPlan.none()
        if self.storage != "mem":
            plan = attrs.evolve(plan, storage=self.storage)
        if not self.membership:
            return plan
        return attrs.evolve(plan, membership_changes=True, snapshot_every=100)

    def extra_args(self) -> str:
        extra = ""
        if self.clients != DEFAULT_CLIENTS:
            extra += f" --clients {self.clients}"
        if not self.faults:
            extra += " --no-faults"
        if self.membership:
            extra += " --membership"
        if self.storage != "mem":
            extra += f" --storage {self.storage}"
        if not self.sessions:
            extra += " --no-sessions"
        return extra

    def describe(self) -> str:
        return (
            f"{self.nodes} nodes, {self.duration:g}s of faults, {self.clients} clients, "
            f"faults {'on' if self.faults else 'off'}"
            + (", membership churn" if self.membership else "")
            + (f", {self.storage} storage" if self.storage != "mem" else "")
            + ("" if self.sessions else ", no client sessions")
        )


def replay_command(result: SimResult, spec: RunSpec) -> str:
    """The one command that replays ``result``'s seed (``SimResult.replay_command`` plus the
    options that differ from the defaults)."""
    return result.replay_command(spec.nodes, spec.duration) + spec.extra_args()


def summarize(result: SimResult, spec: RunSpec) -> SeedSummary:
    lin = "n/a" if result.linearizability is None else result.linearizability.outcome.value
    return SeedSummary(
        seed=result.seed,
        ok=result.ok,
        trace_hash=result.trace_hash,
        violations=tuple(str(v) for v in result.violations),
        violation_kinds=tuple(v.kind for v in result.violations),
        stats=attrs.asdict(result.stats),
        linearizability=lin,
        replay=replay_command(result, spec),
    )


def run_seed(task: tuple[int, RunSpec]) -> SeedSummary:
    """Run one seed without keeping its trace. Top-level, so worker processes can run it. A
    crash of the simulator itself is reported as a failure of that seed, not raised."""
    seed, spec = task
    try:
        result = run_simulation(
            seed,
            nodes=spec.nodes,
            duration=spec.duration,
            clients=spec.clients,
            faults=spec.plan(),
            workload=spec.workload(),
            keep_trace=False,
        )
    except Exception as e:
        tb = traceback.format_exc(limit=-3).rstrip()
        return SeedSummary(
            seed=seed,
            ok=False,
            trace_hash="",
            violations=(f"[seed {seed}] simulator error: {type(e).__name__}: {e}\n{tb}",),
            violation_kinds=("simulator error",),
            stats={},
            linearizability="error",
            replay=(
                f"{PROG} --replay {seed} --nodes {spec.nodes} --duration {spec.duration:g} "
                f"--trace sim-{seed}.jsonl{spec.extra_args()}"
            ),
            error=f"{type(e).__name__}: {e}",
        )
    return summarize(result, spec)


# -- progress --------------------------------------------------------------------------------


class Progress:
    """A counter: rewritten in place on a terminal, else a line about every 5 %."""

    def __init__(
        self,
        total: int,
        out: TextIO,
        *,
        tty: bool | None = None,
        enabled: bool = True,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = total
        self.out = out
        self.tty = _isatty(out) if tty is None else tty
        self.enabled = enabled
        self.now = now
        self.start = now()
        self.done = 0
        self.failed = 0
        self.step = max(1, math.ceil(total / 20))
        self._dirty = False

    def line(self) -> str:
        pct = 100.0 * self.done / self.total if self.total else 100.0
        elapsed = self.now() - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        w = len(str(self.total))
        text = (
            f"[{self.done:>{w}}/{self.total}] {pct:5.1f}%  ok={self.done - self.failed} "
            f"fail={self.failed}  {rate:.1f} seeds/s"
        )
        if self.tty:
            filled = int(20 * self.done / self.total) if self.total else 20
            text = "|" + "#" * filled + "." * (20 - filled) + "| " + text
        return text

    def update(self, summary: SeedSummary) -> None:
        self.done += 1
        if not summary.ok:
            self.failed += 1
        if not self.enabled:
            return
        if self.tty:
            self.out.write("\r" + self.line() + "  ")
            self.out.flush()
            self._dirty = True
        elif self.done % self.step == 0 or self.done == self.total:
            self.out.write(self.line() + "\n")
            self.out.flush()

    def close(self) -> None:
        if self._dirty:
            self.out.write("\n")
            self.out.flush()
            self._dirty = False


def _isatty(out: TextIO) -> bool:
    try:
        return out.isatty()
    except (AttributeError, ValueError):
        return False


def run_seeds(
    seeds: Sequence[int],
    spec: RunSpec,
    jobs: int,
    on_done: Callable[[SeedSummary], None],
) -> list[SeedSummary]:
    """Run every seed (in ``jobs`` worker processes if more than one); ``on_done`` is called
    as each finishes. Returns the summaries in seed order. On KeyboardInterrupt the workers
    are terminated and the summaries finished so far are attached to the exception as
    ``partial``."""
    tasks = [(s, spec) for s in seeds]
    done: list[SeedSummary] = []
    try:
        if jobs <= 1 or len(tasks) <= 1:
            for task in tasks:
                summary = run_seed(task)
                done.append(summary)
                on_done(summary)
        else:
            methods = multiprocessing.get_all_start_methods()
            ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
            with ctx.Pool(min(jobs, len(tasks))) as pool:
                for summary in pool.imap_unordered(run_seed, tasks, chunksize=1):
                    done.append(summary)
                    on_done(summary)
    except KeyboardInterrupt as e:
        e.partial = sorted(done, key=lambda s: s.seed)  # type: ignore[attr-defined]
        raise
    return sorted(done, key=lambda s: s.seed)


# -- did the fault plan happen? ---------------------------------------------------------------

#: A sweep with at least this many virtual seconds of faults in total must have exercised
#: every part of its fault plan (a smaller one only reports what it missed).
COVERAGE_MIN_SECONDS = 120.0


def plan_gaps(summaries: Sequence[SeedSummary], spec: RunSpec) -> list[str]:
    """What the sweep's fault plan should have made happen and never did, summed over every
    seed: a nemesis action that silently does nothing must not pass as coverage."""
    stats = [s.stats for s in summaries if s.stats]
    if not stats or not spec.faults:
        return []
    plan = spec.plan()

    def total(key: str) -> int:
        return sum(int(st.get(key, 0)) for st in stats)

    kinds: Counter[str] = Counter()
    for st in stats:
        kinds.update(st.get("fault_counts", {}))
    wanted: dict[str, int] = {
        "writes acknowledged": total("writes_acked"),
        "LEASE_READ reads served": total("reads_lease_ok"),
        "READ_INDEX reads served": total("reads_index_ok"),
        "snapshots built": total("snapshots"),
    }
    if plan.crashes or plan.partitions:
        wanted["snapshots installed on a lagging node"] = total("snapshot_installs")
    if plan.leadership:
        for kind in ("transfer-leader", "elect", "isolate-leader", "long-delay"):
            wanted[f"{kind} faults"] = kinds[kind]
        if plan.crashes:
            wanted["majority-restart faults"] = kinds["majority-restart"]
            wanted["power-cut faults"] = kinds["power-cut"]
        wanted["leader transfers that took effect"] = total("transfers_ok")
        wanted["race probes"] = total("probes")
    if plan.membership_changes:
        wanted["membership changes that took effect"] = total("membership_changes_ok")
    if plan.crashes:
        wanted["crash faults"] = kinds["crash"]
    return [what for what, count in wanted.items() if count == 0]


def coverage_required(summaries: Sequence[SeedSummary], spec: RunSpec) -> bool:
    return len(summaries) * spec.duration >= COVERAGE_MIN_SECONDS


# -- summary ---------------------------------------------------------------------------------


def _num(x: float) -> str:
    if isinstance(x, int) or float(x).is_integer():
        return f"{int(x):,}"
    return f"{x:,.1f}"


def format_summary(
    summaries: Sequence[SeedSummary],
    spec: RunSpec,
    *,
    wall: float,
    jobs: int,
    requested: int | None = None,
    quiet: bool = False,
) -> str:
    n = len(summaries)
    failing = [s for s in summaries if not s.ok]
    rate = n / wall if wall > 0 else 0.0
    lines: list[str] = []
    head = f"Simulation summary ({spec.describe()})"
    if requested is not None and requested != n:
        head += f" -- INTERRUPTED after {n} of {requested} seeds"
    lines.append(head)
    if quiet:
        lines.append(f"  {n} seeds, {len(failing)} failed, {wall:.1f}s wall, {rate:.2f} seeds/s")
    else:
        lin = Counter(s.linearizability for s in summaries)
        lin_text = "  ".join(
            f"{k}={lin[k]}"
            for k in ("ok", "illegal", "unknown", "n/a", "error")
            if lin[k] or k == "ok"
        )
        rows = [
            ("seeds run", f"{n:,}"),
            ("failures", f"{len(failing):,}"),
            ("wall time", f"{wall:.1f}s"),
            ("seeds/s", f"{rate:.2f}  ({jobs} job{'s' if jobs != 1 else ''})"),
            ("linearizability", lin_text),
        ]
        for label, value in rows:
            lines.append(f"  {label:<18} {value}")
        with_stats = [s.stats for s in summaries if s.stats]
        if with_stats:
            lines.append("")
            lines.append(f"  {'stat':<18} {'total':>14} {'mean/seed':>12}")
            for key, label in STAT_ROWS:
                total = sum(st.get(key, 0) for st in with_stats)
                mean = total / len(with_stats)
                lines.append(f"  {label:<18} {_num(total):>14} {mean:>12,.1f}")
            kinds: Counter[str] = Counter()
            for st in with_stats:
                kinds.update(st.get("fault_counts", {}))
            if kinds:
                lines.append(
                    "  fault kinds        "
                    + "  ".join(f"{k}={v}" for k, v in sorted(kinds.items()))
                )
    gaps = plan_gaps(summaries, spec)
    if gaps:
        verdict = "FAILED" if coverage_required(summaries, spec) else "not checked (short sweep)"
        lines.append(f"  fault plan         {verdict}: never happened: {', '.join(gaps)}")
    elif spec.faults:
        lines.append("  fault plan         every part happened")
    lines.append("")
    if not failing:
        lines.append(f"All {n} seeds passed.")
    else:
        lines.append(f"{len(failing)} failing seed{'s' if len(failing) != 1 else ''}:")
        for s in failing:
            lines.append(
                f"  seed {s.seed}: {len(s.violations)} violation"
                f"{'s' if len(s.violations) != 1 else ''}"
                + (f", trace hash {s.trace_hash}" if s.trace_hash else "")
            )
            for v in s.violations[:SHOWN_VIOLATIONS]:
                lines += ["    " + ln for ln in v.splitlines()]
            if len(s.violations) > SHOWN_VIOLATIONS:
                lines.append(f"    ... and {len(s.violations) - SHOWN_VIOLATIONS} more")
            lines.append(f"    replay: {s.replay}")
    # The plain closing line CI tools read: seeds passed and failed.
    lines.append(f"{n - len(failing)} passed, {len(failing)} failed")
    return "\n".join(lines) + "\n"


def _write_json(
    path: Path, summaries: Sequence[SeedSummary], spec: RunSpec, wall: float, jobs: int
) -> None:
    doc = {
        "nodes": spec.nodes,
        "duration": spec.duration,
        "clients": spec.clients,
        "faults": spec.faults,
        "jobs": jobs,
        "seeds_run": len(summaries),
        "failures": sum(1 for s in summaries if not s.ok),
        "wall_time": wall,
        "results": [s.to_json() for s in summaries],
    }
    path.write_text(json.dumps(doc, indent=1) + "\n")


# -- replay ----------------------------------------------------------------------------------


def timeline_paths(trace: Path) -> tuple[Path, Path]:
    """``out.jsonl`` -> (``out.timeline.txt``, ``out.html``)."""
    return trace.with_suffix(".timeline.txt"), trace.with_suffix(".html")


def _replay(args: argparse.Namespace, spec: RunSpec, out: TextIO) -> int:
    seed: int = args.replay
    result = run_simulation(
        seed,
        nodes=spec.nodes,
        duration=spec.duration,
        clients=spec.clients,
        faults=spec.plan(),
        workload=spec.workload(),
        keep_trace=True,
    )
    summary = summarize(result, spec)
    st = result.stats
    w = out.write
    w(f"Replay of seed {seed} ({spec.describe()})\n")
    w(f"  {'trace hash':<18} {result.trace_hash}\n")
    w(f"  {'result':<18} {'ok' if result.ok else 'FAILED'}\n")
    w(f"  {'linearizability':<18} {summary.linearizability}\n")
    for key, label in STAT_ROWS:
        w(f"  {label:<18} {_num(getattr(st, key))}\n")
    if st.fault_counts:
        kinds = "  ".join(f"{k}={v}" for k, v in st.fault_counts.items())
        w(f"  {'fault kinds':<18} {kinds}\n")
    w(f"  {'wall time':<18} {st.wall_time:.2f}s\n")
    if result.violations:
        w(f"{len(result.violations)} violation(s):\n")
        for v in result.violations:
            w(f"  {v}\n")
    else:
        w("No violations.\n")
    title = f"seed {seed}: {spec.describe()}"
    text = render_text(result.trace, title=f"Timeline of {title}")
    if not args.quiet:
        w("\n" + text)
    written: list[Path] = []
    html_path: Path | None = args.timeline
    if args.trace is not None:
        trace_path: Path = args.trace
        txt_path, default_html = timeline_paths(trace_path)
        html_path = html_path or default_html
        trace_path.parent.mkdir(parents=True, exist_ok=True)
        with trace_path.open("w") as f:
            for e in result.trace:
                f.write(json.dumps(_event_json(e)) + "\n")
        txt_path.write_text(text)
        written += [trace_path, txt_path]
    if html_path is not None:
        html_path.parent.mkdir(parents=True, exist_ok=True)
        info = [
            ("seed", str(seed)),
            ("run", spec.describe()),
            ("result", "ok" if result.ok else f"FAILED ({len(result.violations)} violations)"),
            ("trace hash", result.trace_hash),
            ("linearizability", summary.linearizability),
            *((label, _num(getattr(st, key))) for key, label in STAT_ROWS),
            ("replay", summary.replay),
        ]
        html_path.write_text(
            render_html(
                result.trace,
                title=f"Simulation timeline, {title}",
                info=info,
                violations=[(v.time, f"{v.kind}: {v.message}") for v in result.violations],
            )
        )
        written.append(html_path)
    if args.json is not None:
        _write_json(args.json, [summary], spec, st.wall_time, 1)
        written.append(args.json)
    for p in written:
        w(f"wrote {p}\n")
    return 0 if result.ok else 1


def _event_json(e: tuple[Any, ...]) -> dict[str, Any]:
    """The same JSONL line as ``Trace.write_jsonl``."""
    return {"t": e[0], "kind": e[1], "data": [_plain(x) for x in e[2:]]}


# -- main ------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Deterministic Raft cluster simulator: run many seeds with fault injection and "
            "safety/linearizability checks, or replay one seed and draw its timeline."
        ),
        epilog=(
            "examples:\n"
            f"  {PROG} --seeds 0-999 --nodes 5 --duration 60 --jobs 8\n"
            f"  {PROG} --replay 17 --nodes 5 --duration 60 --trace sim-17.jsonl"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    what = p.add_mutually_exclusive_group()
    what.add_argument(
        "--seeds",
        type=_seeds_arg,
        default=None,
        metavar="SPEC",
        help=f"seeds to run: A-B (inclusive), N, or a comma list of those (default {DEFAULT_SEEDS})",
    )
    what.add_argument(
        "--replay",
        type=_bounded(int, 0, "seed"),
        default=None,
        metavar="SEED",
        help="run one seed keeping its full trace; print its stats, violations and timeline",
    )
    p.add_argument("--nodes", type=_bounded(int, 1, "node count"), default=DEFAULT_NODES)
    p.add_argument(
        "--duration",
        type=_bounded(float, 0, "duration"),
        default=DEFAULT_DURATION,
        metavar="SECONDS",
        help=f"virtual seconds of the fault phase (default {DEFAULT_DURATION:g})",
    )
    p.add_argument(
        "--clients",
        type=_bounded(int, 0, "client count"),
        default=DEFAULT_CLIENTS,
        help=f"concurrent simulated clients (default {DEFAULT_CLIENTS})",
    )
    p.add_argument(
        "--jobs",
        "-j",
        type=_bounded(int, 1, "job count"),
        default=1,
        help="worker processes for --seeds (default 1)",
    )
    p.add_argument(
        "--no-faults",
        action="store_true",
        help="no faults at all: FaultPlan.none() (healthy network, no crashes, exact clocks)",
    )
    p.add_argument(
        "--membership",
        action="store_true",
        help="membership churn too (add learners, promote, remove voters, transfer "
        "leadership) and a snapshot every 100 entries with purging",
    )
    p.add_argument(
        "--storage",
        choices=("mem", "file"),
        default="mem",
        help="mem: MemLogStore with a flush delay (default); file: the durable FileLogStore "
        "and KvStateMachine on a simulated disk (CrashFS) where a crash is a power cut that "
        "tears unsynced writes",
    )
    p.add_argument(
        "--no-sessions",
        action="store_true",
        help="KV clients write without client sessions: a write of unknown outcome is not "
        "sent again (to compare the ambiguous outcomes with and without sessions)",
    )
    p.add_argument("--json", type=Path, metavar="PATH", help="write every seed's summary as JSON")
    p.add_argument(
        "--trace",
        type=Path,
        metavar="PATH",
        help="with --replay: write the JSONL event trace here, plus PATH-stem.timeline.txt "
        "and PATH-stem.html next to it",
    )
    p.add_argument(
        "--timeline",
        type=Path,
        metavar="PATH",
        help="with --replay: write the HTML/SVG timeline here (overrides the --trace-derived name)",
    )
    p.add_argument("--quiet", "-q", action="store_true", help="no progress; a short summary")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    out = sys.stdout
    spec = RunSpec(
        nodes=args.nodes,
        duration=args.duration,
        clients=args.clients,
        faults=not args.no_faults,
        membership=args.membership,
        storage=args.storage,
        sessions=not args.no_sessions,
    )
    if args.replay is not None:
        return _replay(args, spec, out)
    if args.trace is not None or args.timeline is not None:
        parser.error("--trace and --timeline need --replay SEED")
    seeds: list[int] = args.seeds if args.seeds is not None else parse_seeds(DEFAULT_SEEDS)
    jobs: int = args.jobs
    if not args.quiet:
        out.write(
            f"Running {len(seeds)} seed{'s' if len(seeds) != 1 else ''} ({spec.describe()}, "
            f"{jobs} job{'s' if jobs != 1 else ''})\n"
        )
        out.flush()
    progress = Progress(len(seeds), out, enabled=not args.quiet)
    start = time.perf_counter()
    interrupted = False
    try:
        summaries = run_seeds(seeds, spec, jobs, progress.update)
    except KeyboardInterrupt as e:
        summaries = getattr(e, "partial", [])
        interrupted = True
    wall = time.perf_counter() - start
    progress.close()
    out.write(
        ("" if args.quiet else "\n")
        + format_summary(
            summaries, spec, wall=wall, jobs=jobs, requested=len(seeds), quiet=args.quiet
        )
    )
    if args.json is not None:
        _write_json(args.json, summaries, spec, wall, jobs)
        out.write(f"wrote {args.json}\n")
    out.flush()
    if interrupted:
        return 130
    if plan_gaps(summaries, spec) and coverage_required(summaries, spec):
        return 1
    return 0 if all(s.ok for s in summaries) else 1
