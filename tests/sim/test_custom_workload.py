"""Users run their own replicated state machine through the simulator: a counter with
``Add(n)`` writes and ``Read()`` reads, checked against its own sequential model."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import attrs
import cbor2

from openraft_trio import (
    Entry,
    LogId,
    MembershipChange,
    Normal,
    Snapshot,
    SnapshotMeta,
    StoredMembership,
)
from openraft_trio.testing.linearizability import ANY_OUTPUT, Model
from openraft_trio.testing.sim import SimWorkload, run_simulation


@attrs.frozen
class Add:
    n: int


@attrs.frozen
class Read:
    pass


class CounterStateMachine:
    """Replies to ``Add`` with the counter's new value."""

    def __init__(self) -> None:
        self.value = 0
        self.applied: LogId | None = None
        self.membership = StoredMembership()
        self.snapshot: Snapshot | None = None

    async def applied_state(self) -> tuple[LogId | None, StoredMembership]:
        return self.applied, self.membership

    async def apply(self, entries: Sequence[Entry]) -> list[Any]:
        replies: list[Any] = []
        for e in entries:
            reply = None
            if isinstance(e.payload, Normal) and isinstance(e.payload.data, Add):
                self.value += e.payload.data.n
                reply = self.value
            elif isinstance(e.payload, MembershipChange):
                self.membership = StoredMembership(e.log_id, e.payload.membership)
            self.applied = e.log_id
            replies.append(reply)
        return replies

    async def build_snapshot(self) -> Snapshot:
        meta = SnapshotMeta(self.applied, self.membership, "counter")
        self.snapshot = Snapshot(meta, cbor2.dumps(self.value))
        return self.snapshot

    async def install_snapshot(self, meta: SnapshotMeta, data: bytes) -> None:
        self.value = cbor2.loads(data)
        self.applied, self.membership = meta.last_log_id, meta.last_membership
        self.snapshot = Snapshot(meta, data)

    async def get_current_snapshot(self) -> Snapshot | None:
        # The simulator builds and purges (snapshot_every): a lagging node needs this.
        return self.snapshot


class CounterModel(Model):
    def init(self) -> int:
        return 0

    def step(self, state: Any, input: Any, output: Any) -> tuple[bool, Any]:
        if isinstance(input, Add):
            new = state + input.n
            return (output is ANY_OUTPUT or output == new), new
        return (output is ANY_OUTPUT or output == state), state


class CounterWorkload:
    def new_state_machine(self) -> CounterStateMachine:
        return CounterStateMachine()

    def model(self) -> Model:
        return CounterModel()

    def next_op(self, rng: random.Random, client_id: int) -> tuple[Any, bool]:
        if rng.random() < 0.4:
            return Read(), True
        return Add(rng.randint(1, 9)), False

    def read(self, state_machine: Any, request: Any) -> Any:
        return state_machine.value

    def on_reply(self, client_id: int, request: Any, reply: Any) -> None:
        pass

    def state(self, state_machine: Any) -> Any:
        return state_machine.value


def test_a_user_state_machine_runs_through_the_simulator() -> None:
    workload = CounterWorkload()
    assert isinstance(workload, SimWorkload)
    result = run_simulation(5, nodes=3, duration=6.0, clients=4, workload=workload)
    assert result.ok, result.violations
    assert result.stats.writes_acked > 0
    assert result.stats.reads_ok > 0
    assert any(isinstance(op.input, Add) for op in result.history)


def test_a_broken_user_state_machine_is_caught_by_its_model() -> None:
    class OffByOne(CounterStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.reads = 0

    class BrokenReads(CounterWorkload):
        def new_state_machine(self) -> CounterStateMachine:
            return OffByOne()

        def read(self, state_machine: Any, request: Any) -> Any:
            state_machine.reads += 1
            # Every third read serves a stale value: not linearizable.
            return state_machine.value - (1 if state_machine.reads % 3 == 0 else 0)

    result = run_simulation(5, nodes=3, duration=6.0, clients=4, workload=BrokenReads())
    assert "linearizability" in {v.kind for v in result.violations}


class StrictCounterStateMachine(CounterStateMachine):
    """Refuses (raises on) any command it does not know, as a careful user's might."""

    async def apply(self, entries: Sequence[Entry]) -> list[Any]:
        for e in entries:
            if isinstance(e.payload, Normal) and not isinstance(e.payload.data, Add):
                raise TypeError(f"not a counter command: {e.payload.data!r}")
        return await super().apply(entries)


class StrictCounterWorkload(CounterWorkload):
    def new_state_machine(self) -> CounterStateMachine:
        return StrictCounterStateMachine()


def test_the_liveness_check_writes_the_workloads_own_command() -> None:
    class WithLivenessCommand(StrictCounterWorkload):
        def liveness_command(self, seed: int) -> Add:
            return Add(0)

    workload = WithLivenessCommand()
    assert isinstance(workload, SimWorkload)
    result = run_simulation(5, nodes=3, duration=6.0, clients=4, workload=workload)
    assert result.ok, result.violations
    # Without the hook the simulator's KV write reaches the strict machine, which refuses
    # it: the run fails, so the hook is what made the run above pass.
    without = run_simulation(5, nodes=3, duration=6.0, clients=4, workload=StrictCounterWorkload())
    assert not without.ok
