"""ObjectHandle on a running cluster: commands through the log, linearizable queries,
errors re-raised, upgrades."""

from __future__ import annotations

import pytest
import trio

from openraft_trio import ForwardToLeader, InvalidRequest, ReadPolicy
from openraft_trio.objects import (
    BadArgumentsError,
    ObjectHandle,
    ObjectStateMachine,
    ReplicatedMethodError,
    UnknownMethodError,
)
from openraft_trio.testing import open_cluster

from ._objects import Counter


async def test_a_handle_calls_commands_and_queries(autojump_clock: trio.testing.MockClock) -> None:
    async with open_cluster(
        3, seed=1, state_machine_factory=lambda: ObjectStateMachine(Counter)
    ) as c:
        leader = await c.wait_for_leader(5)
        handle = ObjectHandle(c.nodes[leader], c.state_machines[leader], clock=trio.current_time)
        assert await handle.add(5) == 5
        assert await handle.call("add", n=2) == 7
        assert await handle.get() == 7
        assert await handle.query("get") == 7
        stamped_time, stamped_index = await handle.stamp()
        assert stamped_time == pytest.approx(trio.current_time())
        assert stamped_index == c.state_machines[leader].last_applied.index
        lease = ObjectHandle(
            c.nodes[leader], c.state_machines[leader], read_policy=ReadPolicy.LEASE_READ
        )
        assert await lease.get() == 7
        await c.wait_applied(c.nodes[leader].metrics.last_applied.index)  # type: ignore[union-attr]
        states = [c.state_machines[n].state() for n in sorted(c.nodes)]
        assert states == [c.state_machines[leader].state()] * 3


async def test_a_handle_raises_the_reply_errors(autojump_clock: trio.testing.MockClock) -> None:
    async with open_cluster(
        1, seed=2, state_machine_factory=lambda: ObjectStateMachine(Counter)
    ) as c:
        await c.wait_for_leader(5)
        handle = ObjectHandle(c.nodes[1], c.state_machines[1])
        with pytest.raises(ReplicatedMethodError, match="ValueError: boom") as info:
            await handle.fail("boom")
        assert (info.value.type_name, info.value.message) == ("ValueError", "boom")
        assert await handle.get() == 100  # what the method did before raising stays
        with pytest.raises(BadArgumentsError):
            await handle.add(1, 2)
        with pytest.raises(BadArgumentsError):
            await handle.get(1)
        with pytest.raises(UnknownMethodError, match="no command 'get'"):
            await handle.call("get")
        with pytest.raises(UnknownMethodError, match="no query 'add'"):
            await handle.query("add")
        with pytest.raises(AttributeError, match="no replicated method or query 'nope'"):
            handle.nope  # noqa: B018
        with pytest.raises(InvalidRequest, match="cannot encode"):
            await handle.add(object())
        with pytest.raises(InvalidRequest, match="no version 2"):
            await handle.upgrade(2)
        assert await handle.upgrade(1) == 1


async def test_a_handle_on_a_follower_is_forwarded(autojump_clock: trio.testing.MockClock) -> None:
    async with open_cluster(
        3, seed=3, state_machine_factory=lambda: ObjectStateMachine(Counter)
    ) as c:
        leader = await c.wait_for_leader(5)
        follower = next(n for n in c.nodes if n != leader)
        handle = ObjectHandle(c.nodes[follower], c.state_machines[follower])
        with pytest.raises(ForwardToLeader):
            await handle.add(1)
        with pytest.raises(ForwardToLeader):
            await handle.get()


async def test_a_handle_pinned_to_a_version_not_active_is_refused(
    autojump_clock: trio.testing.MockClock,
) -> None:
    from openraft_trio.objects import VersionNotActiveError

    from . import _wallet_v2

    async with open_cluster(
        1, seed=4, state_machine_factory=lambda: ObjectStateMachine(_wallet_v2.Wallet)
    ) as c:
        await c.wait_for_leader(5)
        pinned = ObjectHandle(c.nodes[1], c.state_machines[1], version=2)
        with pytest.raises(VersionNotActiveError, match="version 2 is not active"):
            await pinned.add(1)
        assert await ObjectHandle(c.nodes[1], c.state_machines[1]).upgrade(2) == 2
        assert await pinned.add(1) == 2
        with pytest.raises(InvalidRequest, match="read_policy"):
            ObjectHandle(c.nodes[1], c.state_machines[1], read_policy="fast")  # type: ignore[arg-type]
