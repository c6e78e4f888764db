"""ObjectStateMachine passes the storage conformance suite's state-machine checks."""

from __future__ import annotations

import pytest

from openraft_trio.objects import Call, ObjectStateMachine
from openraft_trio.testing.storage_suite import (
    MakeRequest,
    StateMachineFactory,
    StateMachineSuite,
    make_state_machine_factory,
)

from ._objects import Account, call


def deposit(i: int) -> Call:
    # The reply (the new balance) depends on the state, as the suite requires.
    return call("deposit", f"k{i}", i, now=float(i))


class TestObjectStateMachine(StateMachineSuite):
    # Not applicable: an in-memory state machine keeps nothing across a restart.
    test_sm_restart_restores_snapshot = None  # type: ignore[assignment]

    @pytest.fixture
    def state_machine_factory(self) -> StateMachineFactory:
        return make_state_machine_factory(lambda name: ObjectStateMachine(Account))

    @pytest.fixture
    def make_request(self) -> MakeRequest:
        return deposit
