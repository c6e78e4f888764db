"""The run's summary, as text or JSON, and the command that replays it."""

from __future__ import annotations

from collections import Counter
from typing import Any

from ..linearizability import Outcome
from ._checks import Verdict
from ._history import FaultKind, History, OpKind, OpOutcome
from ._run import JepsenOptions, JepsenReport

PROG = "python -m openraft_trio.testing.jepsen"


def replay_command(options: JepsenOptions) -> str:
    """The command that runs ``options`` again: the same requests and fault schedule (the
    OS decides the timing, so not necessarily the same interleaving)."""
    clients, nemesis = options.clients, options.nemesis
    kinds = ",".join(kind.value for kind in nemesis.kinds) or "none"
    command = (
        f"{PROG} --seed {options.seed} --duration {options.duration:g} "
        f"--nodes {options.nodes} --clients {clients.count} --keys {len(clients.keys)} "
        f"--faults {kinds} --fault-interval {nemesis.interval[0]:g},{nemesis.interval[1]:g}"
    )
    return command


def op_counts(history: History) -> dict[str, dict[str, int]]:
    """``{kind: {outcome: count}}`` with every kind and outcome present."""
    counts = {kind.value: {outcome.value: 0 for outcome in OpOutcome} for kind in OpKind}
    for record in history.ops:
        if record.outcome is not None:
            counts[record.kind.value][record.outcome.value] += 1
    return counts


def fault_counts(history: History) -> dict[str, dict[str, int]]:
    """``{kind: {"count", "on_leader", "refused"}}`` with every kind present."""
    counts = {kind.value: {"count": 0, "on_leader": 0, "refused": 0} for kind in FaultKind}
    for fault in history.faults:
        row = counts[fault.kind.value]
        row["count"] += 1
        row["on_leader"] += fault.on_leader
        row["refused"] += "refused" in fault.detail
    return counts


def error_counts(history: History) -> dict[str, int]:
    """How often each error type ended an operation that failed or has an unknown outcome."""
    counts = Counter(record.error.split(":", 1)[0] for record in history.ops if record.error)
    return dict(sorted(counts.items()))


def acknowledged_writes(history: History) -> int:
    return sum(
        1
        for record in history.ops
        if record.outcome is OpOutcome.OK and not record.kind.is_read
    )


def violation_details(report: JepsenReport) -> list[str]:
    """For a non-linearizable history: the offending key's shrunk sub-history as the clients
    saw it (read policy, reply, serving node, times since the start), and the faults around
    it."""
    result = report.findings.linearizability
    if result is None or result.outcome is not Outcome.ILLEGAL:
        return []
    records = [report.history.record_for(op) for op in result.counterexample]
    lines = [f"offending sub-history of key {records[0].key!r} (times in s since the start):"]
    lines += [f"  {record.describe()}" for record in records]
    start = min(record.call for record in records)
    end = max(record.ret if record.ret is not None else record.call for record in records)
    faults = report.history.faults_near(start, end)
    lines.append("faults within 1 s of it:" if faults else "no fault within 1 s of it")
    lines += [f"  {fault.describe()}" for fault in faults]
    return lines


def summary_json(report: JepsenReport) -> dict[str, Any]:
    """Everything :func:`format_summary` shows, as JSON-able data."""
    findings = report.findings
    result = findings.linearizability
    return {
        "seed": report.options.seed,
        "duration": report.options.duration,
        "verdict": report.verdict.value,
        "ops": op_counts(report.history),
        "faults": fault_counts(report.history),
        "errors": error_counts(report.history),
        "acknowledged_writes": acknowledged_writes(report.history),
        "linearizability": result.outcome.value if result is not None else None,
        "linearizability_explanation": result.explanation if result is not None else "",
        "violation": violation_details(report),
        "check_seconds": round(findings.check_seconds, 3),
        "divergence": findings.divergence,
        "lost_writes": findings.lost_writes,
        "problems": findings.problems,
        "nodes_agree": bool(report.final_state) and not findings.divergence,
        "run_dir": report.run_dir,
        "elapsed": round(report.elapsed, 3),
        "replay": replay_command(report.options),
    }


def format_summary(report: JepsenReport) -> str:
    """The summary table, the verdict, what went wrong (if anything) and the replay command."""
    options, history, findings = report.options, report.history, report.findings
    kinds = ",".join(kind.value for kind in options.nemesis.kinds) or "none"
    lines = [
        f"== jepsen: seed {options.seed}, {options.duration:g} s, {options.nodes} nodes, "
        f"{options.clients.count} clients on {len(options.clients.keys)} keys, "
        f"faults: {kinds}",
        "",
        f"{'operation':<16}{'ok':>8}{'fail':>8}{'unknown':>9}{'total':>8}",
    ]
    totals = Counter[str]()
    for kind, row in op_counts(history).items():
        totals.update(row)
        lines.append(
            f"{kind:<16}{row['ok']:>8}{row['fail']:>8}{row['unknown']:>9}{sum(row.values()):>8}"
        )
    lines.append(
        f"{'total':<16}{totals['ok']:>8}{totals['fail']:>8}{totals['unknown']:>9}"
        f"{sum(totals.values()):>8}"
    )
    lines += ["", f"{'fault':<16}{'count':>8}{'leader':>8}{'refused':>9}"]
    for kind, row in fault_counts(history).items():
        lines.append(f"{kind:<16}{row['count']:>8}{row['on_leader']:>8}{row['refused']:>9}")
    errors = error_counts(history)
    if errors:
        lines += ["", "errors: " + ", ".join(f"{name} {n}" for name, n in errors.items())]
    lines.append("")
    if report.final_state:
        agree = "DISAGREE" if findings.divergence else "agree"
        lines.append(
            f"final state: the {len(report.final_state)} nodes {agree} on "
            f"{len(options.clients.keys)} keys"
        )
    else:
        lines.append("final state: not read (see the problems below)")
    lost = len(findings.lost_writes)
    lines.append(
        f"acknowledged writes: {acknowledged_writes(history)}, "
        + (f"{lost} LOST or contradicted" if lost else "none lost")
    )
    result = findings.linearizability
    if result is not None:
        lines.append(
            f"linearizability: {result.outcome.value} ({result.partitions_checked} of "
            f"{result.partitions_total} keys decided, {result.steps} steps, "
            f"{findings.check_seconds:.1f} s)"
        )
    for title, items in (
        ("problems", findings.problems),
        ("replicas disagree", findings.divergence),
        ("lost writes", findings.lost_writes),
    ):
        if items:
            lines += ["", f"{title}:"] + [f"  {item}" for item in items]
    if result is not None and result.outcome is not Outcome.OK:
        lines += ["", result.explanation]
        lines += violation_details(report)
    lines += ["", f"verdict: {report.verdict.value.upper()}"]
    if report.run_dir is not None:
        lines.append(f"node data and logs kept in {report.run_dir}")
    lines.append(f"replay: {replay_command(options)}")
    if report.verdict is not Verdict.PASS:
        lines.append(
            "(the seed replays the requests and the fault schedule, not the OS's timing: "
            "a replay may take several runs to hit the same interleaving)"
        )
    return "\n".join(lines)
