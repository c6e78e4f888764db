"""Replicated objects on a three-node ``open_cluster``: the leader is killed mid-way, the
replicas end equal; a rolling upgrade moves every node to new code, then to version 2."""

from __future__ import annotations

import math
import random
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from openraft_trio import ForwardToLeader, Stopped
from openraft_trio.objects import ObjectHandle, ObjectStateMachine, ReplicatedObject
from openraft_trio.testing import open_cluster
from openraft_trio.testing._cluster import Cluster

from . import _wallet_v1, _wallet_v2
from ._objects import Account, Counter


class Unknown(Exception):
    """The write's outcome is unknown (the node it went to was killed, or stepped down)."""


async def write(c: Cluster, method: str, *args: Any) -> Any:
    """Call ``method`` on the current leader; retry only what surely was not written."""
    while True:
        leader = await c.wait_for_leader(10)
        handle = ObjectHandle(c.nodes[leader], c.state_machines[leader], clock=trio.current_time)
        try:
            return await handle.call(method, *args)
        except ForwardToLeader as error:
            if error.maybe_committed:
                raise Unknown from error
        except Stopped as error:
            raise Unknown from error


async def run_clients(
    c: Cluster, clients: int, operations: int, operation: Callable[[random.Random], Awaitable[None]]
) -> None:
    async def client(cid: int) -> None:
        rng = random.Random(cid)
        for _ in range(operations):
            await trio.sleep(rng.uniform(0.0, 0.05))
            await operation(rng)

    async with trio.open_nursery() as nursery:
        for cid in range(clients):
            nursery.start_soon(client, cid)


async def kill_leader_after(c: Cluster, delay: float, done: Callable[[], int], total: int) -> int:
    """Crash the leader after ``delay``, checking that the clients are mid-way."""
    await trio.sleep(delay)
    assert 0 < done() < total
    leader = await c.wait_for_leader(10)
    await c.crash(leader)
    return leader


async def end_equal(c: Cluster, killed: int) -> list[Any]:
    """Restart the killed node, wait until every node applied everything; their states."""
    await c.restart(killed)
    leader = await c.wait_for_leader(10)
    last = c.nodes[leader].metrics.last_log_index
    assert last is not None
    await c.wait_applied(last)
    return [c.state_machines[n].state() for n in sorted(c.nodes)]


def factory(cls: type[ReplicatedObject]) -> Callable[[], ObjectStateMachine[Any]]:
    return lambda: ObjectStateMachine(cls)


async def test_counter_replicas_end_equal_after_the_leader_is_killed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    acked: list[int] = []
    unknown: list[int] = []

    async def add(rng: random.Random) -> None:
        n = rng.randint(1, 9)
        try:
            await write(c, "add", n)
        except Unknown:
            unknown.append(n)
        else:
            acked.append(n)

    async with open_cluster(3, seed=11, state_machine_factory=factory(Counter)) as c:
        await c.wait_for_leader(10)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_clients, c, 4, 25, add)
            killed = await kill_leader_after(c, 0.3, lambda: len(acked), 100)
        states = await end_equal(c, killed)
        assert states == [states[0]] * 3
        value = c.state_machines[killed].object.value
        assert len(acked) + len(unknown) == 100
        # Every acknowledged add is in; some of those with an unknown outcome may be.
        assert sum(acked) <= value <= sum(acked) + sum(unknown)
        assert math.isclose(states[0].log_time, max(s.log_time for s in states))


async def test_bank_account_conserves_money_when_the_leader_is_killed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    people = ["ann", "bob", "cy"]
    outcomes: dict[str, int] = {"done": 0, "refused": 0, "unknown": 0}

    async def transfer(rng: random.Random) -> None:
        source, target = rng.sample(people, 2)
        try:
            moved = await write(c, "transfer", source, target, rng.randint(1, 60))
        except Unknown:
            outcomes["unknown"] += 1
        else:
            outcomes["done" if moved else "refused"] += 1

    async with open_cluster(3, seed=12, state_machine_factory=factory(Account)) as c:
        await c.wait_for_leader(10)
        for person in people:
            assert await write(c, "deposit", person, 100) == 100
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_clients, c, 4, 20, transfer)
            killed = await kill_leader_after(c, 0.3, lambda: sum(outcomes.values()), 80)
        states = await end_equal(c, killed)
        assert states == [states[0]] * 3
        balances = c.state_machines[killed].object.balances
        assert sum(balances.values()) == 300
        assert min(balances.values()) >= 0
        assert outcomes["done"] > 0
        assert outcomes["refused"] > 0  # overdrafts were refused
        leader = await c.wait_for_leader(10)
        handle = ObjectHandle(c.nodes[leader], c.state_machines[leader])
        assert [await handle.balance(p) for p in people] == [balances[p] for p in people]


async def test_a_rolling_upgrade_then_the_upgrade_entry(
    autojump_clock: trio.testing.MockClock,
) -> None:
    code: dict[str, type[ReplicatedObject]] = {"next": _wallet_v1.Wallet}
    async with open_cluster(
        3, seed=13, state_machine_factory=lambda: ObjectStateMachine(code["next"])
    ) as c:
        await c.wait_for_leader(10)
        assert await write(c, "add", 5) == 5
        # One node at a time: stop it, start it on the new code (it replays the log,
        # written with version 1, with version 1's code).
        code["next"] = _wallet_v2.Wallet
        for node in (1, 2, 3):
            await write(c, "add", 1)
            await c.crash(node)
            await c.restart(node)
            await c.wait_for_leader(10)
        assert all(type(sm.object) is _wallet_v2.Wallet for sm in c.state_machines.values())
        assert await write(c, "add", 1) == 9  # still version 1: no bonus
        leader = await c.wait_for_leader(10)
        handle = ObjectHandle(c.nodes[leader], c.state_machines[leader])
        assert await handle.upgrade(2) == 2
        assert await handle.add(1) == 11  # version 2: a bonus coin
        assert await handle.reset() == 0
        await c.wait_applied(c.nodes[leader].metrics.last_log_index or 0)
        states = [sm.state() for _, sm in sorted(c.state_machines.items())]
        assert states == [states[0]] * 3
        assert states[0].active_version == 2
