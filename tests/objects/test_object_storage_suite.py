"""ObjectStateMachine passes the storage conformance suite's state-machine checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from openraft_trio.objects import Call, ObjectStateMachine, UnknownVersionError, Upgrade
from openraft_trio.testing.storage_suite import (
    MakeRequest,
    StateMachineFactory,
    StateMachineSuite,
    make_state_machine_factory,
)

from ._objects import Account, Log, apply, call


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


class TestDurableObjectStateMachine(StateMachineSuite):
    """With a snapshot directory: the restart check runs too."""

    @pytest.fixture
    def state_machine_factory(self, tmp_path: Path) -> StateMachineFactory:
        return make_state_machine_factory(
            lambda name: ObjectStateMachine(Account, snapshot_dir=tmp_path / name), durable=True
        )

    @pytest.fixture
    def make_request(self) -> MakeRequest:
        return deposit


def files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def damage(path: Path) -> None:
    path.write_bytes(b"junk")


async def test_a_durable_machine_restores_its_newest_snapshot(tmp_path: Path) -> None:
    first = ObjectStateMachine(Account, snapshot_dir=tmp_path)
    log = Log()
    await apply(first, log, call("deposit", "ann", 3, now=2.0))
    await first.build_snapshot()
    await apply(first, log, Upgrade(1), call("deposit", "ann", 4, now=5.0))
    newest = await first.build_snapshot()
    assert files(tmp_path) == [
        "snapshot-00000000000000000001-00000000000000000001-00000000000000000001.snap",
        "snapshot-00000000000000000001-00000000000000000003-00000000000000000002.snap",
    ]
    again = ObjectStateMachine(Account, snapshot_dir=tmp_path)
    assert again.snapshot_dir == str(tmp_path)
    assert again.state() == first.state()
    assert await again.applied_state() == await first.applied_state()
    assert await again.get_current_snapshot() == newest
    # A damaged newest file is skipped (with a warning): the older one is restored.
    damage(tmp_path / files(tmp_path)[-1])
    older = ObjectStateMachine(Account, snapshot_dir=tmp_path)
    assert older.object.balances == {"ann": 3}
    assert older.object.log_time == 2.0


async def test_a_durable_machine_refuses_a_snapshot_of_newer_code(tmp_path: Path) -> None:
    from . import _wallet_v1, _wallet_v2

    new = ObjectStateMachine(_wallet_v2.Wallet, snapshot_dir=tmp_path)
    await new.apply([Log().entry(Upgrade(2))])
    await new.build_snapshot()
    with pytest.raises(UnknownVersionError):
        ObjectStateMachine(_wallet_v1.Wallet, snapshot_dir=tmp_path)
    with pytest.raises(ValueError, match="at least 1"):
        ObjectStateMachine(Account, snapshot_dir=tmp_path, keep_snapshots=0)
    with pytest.raises(TypeError):
        ObjectStateMachine(Account, snapshot_dir=tmp_path, keep_snapshots="2")  # type: ignore[arg-type]
