"""The real-process fault test (``openraft_trio.testing.jepsen``).

The checks are first fed fabricated histories, no processes: a stale lease read, a write
reported as failed that took effect, a lost acknowledged write, replicas that disagree.
Each must turn the verdict to FAIL, and the same histories without the defect must pass,
so the verdict cannot be a constant. Then a short run against real processes must inject
every kind of fault, record every kind of operation and reach a verdict.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio

from openraft_trio.kv import Delete, Get, Set
from openraft_trio.testing.jepsen import (
    ClientOptions,
    FaultKind,
    FaultRecord,
    History,
    JepsenOptions,
    JepsenReport,
    NemesisOptions,
    OpKind,
    OpOutcome,
    OpRecord,
    Verdict,
    check_history,
    format_summary,
    run_jepsen,
    summary_json,
)
from openraft_trio.testing.linearizability import Outcome


def ok(client: int, kind: OpKind, request: Any, call: float, ret: float, reply: Any) -> OpRecord:
    return OpRecord(client, kind, request, call, ret, OpOutcome.OK, reply, served_by=1)


def ended(client: int, kind: OpKind, request: Any, call: float, outcome: OpOutcome) -> OpRecord:
    return OpRecord(client, kind, request, call, call + 1, outcome, error="NoLeader: fabricated")


def two_puts_then_a_read(read_kind: OpKind, seen: Any) -> History:
    """put k=a, then put k=b, then (strictly later) a read of k that saw ``seen``; the
    leadership moved between the second put and the read."""
    return History(
        ops=[
            ok(0, OpKind.PUT, Set("k", "a"), 0.0, 1.0, None),
            ok(1, OpKind.PUT, Set("k", "b"), 2.0, 3.0, "a"),
            ok(2, read_kind, Get("k"), 4.0, 5.0, seen),
        ],
        faults=[FaultRecord(FaultKind.TRANSFER, 1, True, 3.5, 3.6, "to node 2")],
    )


def report_of(history: History, final: dict[int, dict[str, Any]]) -> JepsenReport:
    findings = check_history(history, final)
    return JepsenReport(JepsenOptions(seed=99), history, findings, final, {}, None, 1.0)


def test_a_stale_lease_read_is_a_violation() -> None:
    report = report_of(two_puts_then_a_read(OpKind.GET_LEASE, "a"), {1: {"k": "b"}})
    assert report.findings.linearizability is not None
    assert report.findings.linearizability.outcome is Outcome.ILLEGAL
    assert report.verdict is Verdict.FAIL
    summary = format_summary(report)
    assert "verdict: FAIL" in summary
    # The offending sub-history names the read policy, the node that served it, and the
    # fault around it.
    assert "client 2 get/lease k -> 'a' from node 1" in summary
    assert "transfer node 1 (leader) [3.500 .. 3.600]: to node 2" in summary
    assert summary_json(report)["verdict"] == "fail"


@pytest.mark.parametrize("read_kind", [OpKind.GET_LEASE, OpKind.GET_READ_INDEX])
def test_the_same_history_with_a_fresh_read_passes(read_kind: OpKind) -> None:
    report = report_of(two_puts_then_a_read(read_kind, "b"), {1: {"k": "b"}, 2: {"k": "b"}})
    assert report.verdict is Verdict.PASS, format_summary(report)
    assert "verdict: PASS" in format_summary(report)


@pytest.mark.parametrize(
    ("outcome", "verdict"), [(OpOutcome.FAIL, Verdict.FAIL), (OpOutcome.UNKNOWN, Verdict.PASS)]
)
def test_a_write_reported_as_failed_must_not_take_effect(
    outcome: OpOutcome, verdict: Verdict
) -> None:
    """A read sees the value of a write the client was told failed: a violation. Had the
    client been told "unknown", the read is fine."""
    history = History(
        ops=[
            ended(0, OpKind.PUT, Set("k", "a"), 0.0, outcome),
            ok(1, OpKind.GET_READ_INDEX, Get("k"), 2.0, 3.0, "a"),
        ]
    )
    findings = check_history(history, {1: {"k": "a"}})
    assert findings.verdict is verdict
    assert bool(findings.lost_writes) is (verdict is Verdict.FAIL)  # "no write ... wrote"


def test_a_lost_acknowledged_write_is_reported() -> None:
    history = History(
        ops=[
            ok(0, OpKind.PUT, Set("k", "a"), 0.0, 1.0, None),
            ok(1, OpKind.PUT, Set("k", "b"), 2.0, 3.0, "a"),
        ]
    )
    # Node 3 ends with the older value; node 1 with the right one.
    findings = check_history(history, {1: {"k": "b"}, 3: {"k": "a"}})
    assert findings.verdict is Verdict.FAIL
    assert findings.divergence == ["key 'k' differs: node 1: 'b', node 3: 'a'"]
    assert len(findings.lost_writes) == 1
    assert findings.lost_writes[0].startswith("node 3: key 'k' ends as 'a'")
    # A key deleted last may end absent; one written after the delete may not.
    deleted = History(ops=[*history.ops, ok(2, OpKind.DELETE, Delete("k"), 4.0, 5.0, "b")])
    assert check_history(deleted, {1: {"k": None}}).verdict is Verdict.PASS
    rewritten = History(ops=[*deleted.ops, ok(0, OpKind.PUT, Set("k", "c"), 6.0, 7.0, None)])
    assert check_history(rewritten, {1: {"k": None}}).lost_writes


def test_an_unknown_write_may_or_may_not_be_in_the_final_state() -> None:
    history = History(
        ops=[
            ok(0, OpKind.PUT, Set("k", "a"), 0.0, 1.0, None),
            OpRecord(1, OpKind.PUT, Set("k", "b"), 2.0, 3.0, OpOutcome.UNKNOWN, error="x"),
        ]
    )
    for final in ("a", "b"):
        assert check_history(history, {1: {"k": final}}).verdict is Verdict.PASS
    assert history.operations()[1].ret == math.inf


def test_a_check_out_of_budget_is_inconclusive_never_a_pass() -> None:
    findings = check_history(two_puts_then_a_read(OpKind.GET_LEASE, "b"), {}, budget=1)
    assert findings.verdict is Verdict.INCONCLUSIVE


def test_operations_the_run_stopped_waiting_for() -> None:
    history = History(
        ops=[
            OpRecord(0, OpKind.PUT, Set("k", "a"), 0.0),
            OpRecord(1, OpKind.GET_LEASE, Get("k"), 0.5),
        ]
    )
    history.close_pending(9.0, "stopped")
    assert [r.outcome for r in history.ops] == [OpOutcome.UNKNOWN, OpOutcome.FAIL]


@pytest.mark.slow
async def test_a_short_run_injects_every_fault_and_reaches_a_verdict(tmp_path: Path) -> None:
    options = JepsenOptions(
        seed=5,
        duration=8.0,
        clients=ClientOptions(count=4),
        nemesis=NemesisOptions(interval=(0.3, 0.8), down_time=(0.2, 0.6), pause_time=((0.05, 0.3), (0.3, 0.8))),
        base_dir=str(tmp_path),
    )
    with trio.fail_after(120):
        report = await run_jepsen(options)
    summary = format_summary(report)
    print(summary)
    faults = {fault.kind for fault in report.history.faults}
    assert faults == set(FaultKind), summary
    ok_kinds = {r.kind for r in report.history.ops if r.outcome is OpOutcome.OK}
    assert ok_kinds == set(OpKind), summary
    assert report.findings.linearizability is not None
    assert report.findings.linearizability.outcome is not Outcome.UNKNOWN, summary
    assert report.verdict in (Verdict.PASS, Verdict.FAIL)
    # The run's directory is removed when it passes, kept (for the logs) when it does not.
    assert (report.run_dir is None) is (report.verdict is Verdict.PASS)
    assert attrs.asdict(report.options)["seed"] == 5
