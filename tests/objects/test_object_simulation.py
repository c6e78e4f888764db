"""Replicated objects through the deterministic simulator, checked for linearizability
against the generic model (the class's own methods)."""

from __future__ import annotations

import random
from typing import Any

import pytest

from openraft_trio.objects import Call, ErrorReply, ObjectStateMachine, Upgrade, make_call
from openraft_trio.sessions import Apply, Duplicate, SessionTable
from openraft_trio.testing.linearizability import ANY_OUTPUT, Operation, Outcome, check
from openraft_trio.testing.sim import (
    FaultPlan,
    ObjectModel,
    ObjectWorkload,
    SimWorkload,
    run_simulation,
)

from ._objects import Account, Counter


def counter_ops(rng: random.Random, client_id: int) -> tuple[Any, ...]:
    if rng.random() < 0.4:
        return ("get", ())
    return ("add", (rng.randint(1, 9),))


def test_the_model_runs_the_class_methods() -> None:
    model = ObjectModel(Counter)
    state = model.init()
    legal, state = model.step(state, make_call("add", [5], now=3.0), 5)
    assert legal
    assert model.step(state, make_call("get"), 5) == (True, state)
    assert model.step(state, make_call("get"), 4)[0] is False
    legal, after = model.step(state, make_call("stamp", now=1.0), ANY_OUTPUT)
    assert legal
    assert model.step(after, make_call("stamp"), (3.0, 3)) == (
        True,
        model.step(after, make_call("stamp"), ANY_OUTPUT)[1],
    )
    assert model.step(
        state,
        make_call("nope"),
        ErrorReply("unknown_method", "", "Counter has no command 'nope' at version 1"),
    )[0]
    assert model.step(state, Upgrade(1), 1)[0]
    assert "Counter(value=5)" in model.describe_state(state)


def test_the_model_finds_a_stale_read() -> None:
    history = [
        Operation(0, make_call("add", [2]), 2, 0.0, 1.0),
        Operation(1, make_call("get"), 0, 2.0, 3.0),
    ]
    assert check(history, ObjectModel(Counter)).outcome is Outcome.ILLEGAL
    history[1] = Operation(1, make_call("get"), 2, 2.0, 3.0)
    assert check(history, ObjectModel(Counter)).outcome is Outcome.OK


def test_the_workload_draws_calls_and_refuses_unknown_names() -> None:
    workload = ObjectWorkload(Counter, ops=counter_ops, clock=lambda: 7.0)
    assert isinstance(workload, SimWorkload)
    rng = random.Random(1)
    drawn = [workload.next_op(rng, 0) for _ in range(20)]
    assert {(call.method, is_read) for call, is_read in drawn} == {("get", True), ("add", False)}
    assert all(isinstance(call, Call) for call, _ in drawn)
    assert {call.now for call, is_read in drawn if not is_read} == {7.0}
    with pytest.raises(ValueError, match="ops drew 'nope'"):
        ObjectWorkload(Counter, ops=lambda rng, cid: ("nope", ())).next_op(rng, 0)
    assert workload.liveness_command(3) == Upgrade(1)
    assert isinstance(workload.new_state_machine(), ObjectStateMachine)


def simulate_counter(seed: int, ops: Any = counter_ops, duration: float = 6.0) -> Any:
    return run_simulation(
        seed,
        nodes=3,
        duration=duration,
        clients=4,
        workload=ObjectWorkload(Counter, ops=ops),
        faults=FaultPlan(snapshot_every=20),
    )


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_counter_runs_linearizably_through_the_simulator(seed: int) -> None:
    # In client sessions (the default): a counter's add is not idempotent, so a call
    # applied twice, or a retry answered other than its first, would break the history.
    # Calls of unknown outcome are sent again until answered: none is left ambiguous.
    result = simulate_counter(seed)
    assert result.ok, result.violations
    assert result.stats.writes_acked > 0
    assert result.stats.reads_ok > 0
    assert result.stats.writes_retried > 0
    assert result.stats.writes_unknown == 0


def test_a_bank_account_runs_through_the_simulator() -> None:
    people = ["ann", "bob"]

    def ops(rng: random.Random, client_id: int) -> tuple[Any, ...]:
        roll = rng.random()
        if roll < 0.3:
            return ("balance", (rng.choice(people),))
        if roll < 0.6:
            return ("deposit", (rng.choice(people), rng.randint(1, 5)))
        return ("transfer", (*rng.sample(people, 2), rng.randint(1, 9)))

    result = run_simulation(
        4, nodes=3, duration=6.0, clients=4, workload=ObjectWorkload(Account, ops=ops)
    )
    assert result.ok, result.violations
    assert result.stats.writes_acked > 0


def test_a_query_path_without_ensure_linearizable_is_caught() -> None:
    # The bug: serve queries from whichever replica, without confirming anything (as a
    # handle that skipped ensure_linearizable on a follower would).
    machines: list[ObjectStateMachine[Any]] = []
    picks = random.Random(0)

    class AnyReplica:
        def __init__(self) -> None:
            self.inner = ObjectWorkload(Counter, ops=counter_ops)

        def new_state_machine(self) -> ObjectStateMachine[Any]:
            machine = self.inner.new_state_machine()
            machines.append(machine)
            return machine

        def read(self, state_machine: Any, request: Any) -> Any:
            return self.inner.read(picks.choice(machines[-3:]), request)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

    caught = [
        seed
        for seed in range(4)
        if "linearizability"
        in {
            v.kind
            for v in run_simulation(
                seed, nodes=3, duration=4.0, clients=4, workload=AnyReplica()
            ).violations
        }
    ]
    assert caught


def adds(rng: random.Random, client_id: int) -> tuple[Any, ...]:
    return ("get", ()) if rng.random() < 0.2 else ("add", (rng.randint(1, 9),))


def test_a_session_table_that_applies_retries_again_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The mutant: `if seq in session.replies:` never true, so a retry is applied again
    # (and its reply recorded over the first).
    begin, record = SessionTable.begin, SessionTable.record

    def begin_without_duplicates(self: SessionTable, *args: Any) -> Any:
        outcome = begin(self, *args)
        return Apply() if isinstance(outcome, Duplicate) else outcome

    def record_over(self: SessionTable, session_id: int, seq: int, reply: object) -> None:
        self._sessions[session_id].replies.pop(seq, None)
        record(self, session_id, seq, reply)

    monkeypatch.setattr(SessionTable, "begin", begin_without_duplicates)
    monkeypatch.setattr(SessionTable, "record", record_over)
    # Seed 4 double-applies a retried add within 4 virtual seconds. (Proving a history
    # non-linearizable is the checker's slow case: 18 s here, where seed 1 over 8 s took 70.)
    result = simulate_counter(4, adds, duration=4.0)
    assert "linearizability" in {v.kind for v in result.violations}
