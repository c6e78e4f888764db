"""Run a sequence of calls on a battery's state machine and check each reply against its
model; optionally snapshot mid-way and check that the restored replica behaves the same."""

from __future__ import annotations

from typing import Any

import attrs
import trio

from openraft_trio import Blank, Entry, LeaderId, LogId, Normal
from openraft_trio.objects import ObjectStateMachine, ReplicatedObject, make_call
from openraft_trio.objects._calls import run_query
from openraft_trio.testing.linearizability import Model


@attrs.frozen
class Step:
    """A call of ``method`` or, with ``method`` empty, a blank entry (a log index no client
    wrote, as a new leader's). A command without ``now`` is stamped with its step number."""

    method: str
    args: tuple[Any, ...] = ()
    now: float | None = None


BLANK_STEP = Step("")


@attrs.define
class _Replica:
    machine: ObjectStateMachine[Any]
    next_index: int = 1

    async def run(self, step: Step, queries: frozenset[str], number: int) -> Any:
        """Apply ``step``; return (the recorded input, the reply) or None for a blank."""
        if not step.method:
            await self.machine.apply([Entry(self._log_id(), Blank())])
            return None
        if step.method in queries:
            call = make_call(step.method, step.args)
            return call, run_query(self.machine.object, call)  # as a handle runs it
        call = make_call(step.method, step.args, now=number if step.now is None else step.now)
        (reply,) = await self.machine.apply([Entry(self._log_id(), Normal(call))])
        return call, reply

    def _log_id(self) -> LogId:
        log_id = LogId(LeaderId(1, 1), self.next_index)
        self.next_index += 1
        return log_id


def check_against_model(
    initial: ReplicatedObject | type[ReplicatedObject],
    model: Model,
    steps: list[Step],
    snapshot_at: int | None = None,
) -> list[Any]:
    """Apply ``steps`` in order; every reply must be legal for ``model``. Return the replies.

    With ``snapshot_at``, a second replica installs a snapshot taken after that many steps
    and runs the rest: its replies and final state must equal the first's.
    """

    async def main() -> list[Any]:
        replica = _Replica(ObjectStateMachine(initial))
        queries = frozenset(replica.machine.object_class.object_methods.queries)
        restored: _Replica | None = None
        state = model.init()
        replies: list[Any] = []
        for number, step in enumerate(steps):
            if number == snapshot_at:
                snapshot = await replica.machine.build_snapshot()
                restored = _Replica(ObjectStateMachine(initial), replica.next_index)
                await restored.machine.install_snapshot(snapshot.meta, snapshot.data)
                assert restored.machine.state() == replica.machine.state()
            outcome = await replica.run(step, queries, number)
            if restored is not None:
                assert await restored.run(step, queries, number) == outcome, step
            if outcome is None:
                continue
            call, reply = outcome
            before = state
            legal, state = model.step(before, call, reply)
            assert legal, (
                f"step {number}: {step} replied {reply!r}, not what the model allows from "
                f"{model.describe_state(before)}"
            )
            replies.append(reply)
        if restored is not None:
            assert restored.machine.state() == replica.machine.state()
        return replies

    return trio.run(main)


def final_object(initial: ReplicatedObject | type[ReplicatedObject], steps: list[Step]) -> Any:
    """The object after applying ``steps`` to a fresh replica."""

    async def main() -> Any:
        replica = _Replica(ObjectStateMachine(initial))
        queries = frozenset(replica.machine.object_class.object_methods.queries)
        for number, step in enumerate(steps):
            await replica.run(step, queries, number)
        return replica.machine.object

    return trio.run(main)
