"""The checks over a finished run: no processes, only the :class:`History` and what each
node held at the end. Kept apart from the driver so a fabricated history can be fed to
exactly the code that judges real ones.

* **Linearizability**: the history (every operation that did not certainly fail, with
  unknown outcomes as such) against :class:`~openraft_trio.testing.linearizability.KvModel`,
  split per key.
* **Replicas agree**: every node holds the same value for every key.
* **No acknowledged write is lost**: each key's final value was written by a write that
  may have taken effect, and no acknowledged write on that key started after every such
  write had returned (it would have to come later in any order, so the final value
  cannot be older than it).
"""

from __future__ import annotations

import enum
import math
import time
from collections.abc import Mapping
from typing import Any, final

import attrs

from ..linearizability import CheckResult, KvModel, Outcome, check
from ._history import History, OpOutcome, OpRecord


class Verdict(enum.Enum):
    """The run's verdict."""

    PASS = "pass"  # every check passed
    FAIL = "fail"  # a check found a violation: a bug (or a bug in this tool)
    INCONCLUSIVE = "inconclusive"  # the checker ran out of budget or time: never a pass


@final
@attrs.define
class Findings:
    """What the checks found.

    Attributes:
        linearizability: the checker's result (``None`` if it was not run).
        check_seconds: how long the linearizability check took.
        divergence: one line per key on which the nodes disagree.
        lost_writes: one line per acknowledged write missing from (or contradicted by) the
            final state, and per final value no write explains.
        problems: anything else that went wrong: a node exited on its own, the cluster
            did not converge after the faults were healed.
    """

    linearizability: CheckResult | None = None
    check_seconds: float = 0.0
    divergence: list[str] = attrs.field(factory=list)
    lost_writes: list[str] = attrs.field(factory=list)
    problems: list[str] = attrs.field(factory=list)

    @property
    def verdict(self) -> Verdict:
        """``FAIL`` on any divergence, lost write, problem or illegal history; ``INCONCLUSIVE``
        if linearizability was not decided; else ``PASS``."""
        if self.divergence or self.lost_writes or self.problems:
            return Verdict.FAIL
        if self.linearizability is None:
            return Verdict.INCONCLUSIVE
        if self.linearizability.outcome is Outcome.ILLEGAL:
            return Verdict.FAIL
        if self.linearizability.outcome is Outcome.UNKNOWN:
            return Verdict.INCONCLUSIVE
        return Verdict.PASS


def check_history(
    history: History,
    final_state: Mapping[int, Mapping[str, Any]],
    *,
    problems: list[str] | None = None,
    budget: int = 20_000_000,
    timeout: float | None = 300.0,
) -> Findings:
    """Run every check.

    Args:
        history: the run's operations (faults are only used to explain).
        final_state: ``{node id: {key: value}}`` read from each node after the cluster
            converged (``None`` for an absent key); empty if it never converged.
        problems: failures the driver already saw (they make the verdict ``FAIL``).
        budget, timeout: the linearizability checker's limits (see
            :func:`~openraft_trio.testing.linearizability.check`).
    """
    findings = Findings(problems=list(problems or ()))
    findings.divergence = _divergence(final_state)
    seen: set[str] = set()
    for node_id, values in sorted(final_state.items()):
        for line in _lost_writes(history, node_id, values):
            if line not in seen:
                seen.add(line)
                findings.lost_writes.append(line)
    started = time.monotonic()
    findings.linearizability = check(
        history.operations(), KvModel(), budget=budget, timeout=timeout
    )
    findings.check_seconds = time.monotonic() - started
    return findings


def _divergence(final_state: Mapping[int, Mapping[str, Any]]) -> list[str]:
    keys = sorted({key for values in final_state.values() for key in values})
    lines = []
    for key in keys:
        by_node = {node_id: values.get(key) for node_id, values in sorted(final_state.items())}
        if len({repr(value) for value in by_node.values()}) > 1:
            seen = ", ".join(f"node {n}: {v!r}" for n, v in by_node.items())
            lines.append(f"key {key!r} differs: {seen}")
    return lines


def _lost_writes(history: History, node_id: int, values: Mapping[str, Any]) -> list[str]:
    lines = []
    for key, final_value in sorted(values.items()):
        on_key = [record for record in history.ops if record.key == key]
        writes = [
            record
            for record in on_key
            if record.outcome in (OpOutcome.OK, OpOutcome.UNKNOWN) and record.written_value()[0]
        ]
        writers = [record for record in writes if record.written_value()[1] == final_value]
        if final_value is not None and not writers:
            failed = [
                record
                for record in on_key
                if record.outcome is OpOutcome.FAIL and record.written_value() == (True, final_value)
            ]
            why = f" (a write reported as failed: {failed[0].describe()})" if failed else ""
            lines.append(
                f"node {node_id}: key {key!r} holds {final_value!r}, which no write that may have "
                f"taken effect wrote{why}"
            )
            continue
        # The final value's write took effect last, so at the latest when it returned (an
        # absent key may also be the initial state, before everything).
        latest = max((_ret(record) for record in writers), default=-math.inf)
        for record in writes:
            if (
                record.outcome is OpOutcome.OK
                and record.call > latest
                and record.written_value()[1] != final_value
            ):
                lines.append(
                    f"node {node_id}: key {key!r} ends as {final_value!r}, but an acknowledged "
                    f"write started after every write of that value had returned: "
                    f"{record.describe()}"
                )
    return lines


def _ret(record: OpRecord) -> float:
    if record.outcome is OpOutcome.OK and record.ret is not None:
        return record.ret
    return math.inf
