"""The lock service on a three-node ``open_cluster``: a holder that stops renewing loses
the lock after its lease (by log time) to a holder with a larger fencing token, which a
storage checking tokens uses to refuse the old holder; every replica, a lagging one too,
frees the lock at the same log index."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import trio

from openraft_trio import Entry
from openraft_trio.objects import ObjectHandle, ObjectStateMachine
from openraft_trio.objects.batteries import Acquired, Held, LockService
from openraft_trio.testing import open_cluster
from openraft_trio.testing._cluster import Cluster


class Stamps:
    """The handle's clock: ``trio.current_time``, remembering what it stamped."""

    def __init__(self) -> None:
        self.stamped: list[float] = []

    def __call__(self) -> float:
        self.stamped.append(trio.current_time())
        return self.stamped[-1]


class FencedStorage:
    """A storage that accepts a write only with a token at least the largest it has seen."""

    def __init__(self) -> None:
        self.largest_token = 0
        self.value: str | None = None

    def write(self, token: int, value: str) -> bool:
        if token < self.largest_token:
            return False
        self.largest_token = token
        self.value = value
        return True


async def leader_handle(c: Cluster, clock: Any) -> ObjectHandle[Any]:
    leader = await c.wait_for_leader(10)
    return ObjectHandle(c.nodes[leader], c.state_machines[leader], clock=clock)


async def test_a_holder_that_stops_renewing_loses_the_lock_to_a_larger_token(
    autojump_clock: trio.testing.MockClock,
) -> None:
    stamps = Stamps()
    factory = lambda: ObjectStateMachine(LockService)  # noqa: E731
    async with open_cluster(3, state_machine_factory=factory) as c:
        handle = await leader_handle(c, stamps)
        storage = FencedStorage()

        first = await handle.acquire("report", "worker-1", 2.0)
        assert first == Acquired(first.token, stamps.stamped[-1] + 2.0)
        assert storage.write(first.token, "worker-1's first write")
        # worker-1 now pauses (a GC pause, a crash): it stops renewing.

        assert await handle.acquire("report", "worker-2", 2.0) == Held("worker-1", first.expires_at)
        await trio.sleep(1.0)
        assert await handle.acquire("report", "worker-2", 2.0) == Held("worker-1", first.expires_at)
        await trio.sleep(1.5)  # past first.expires_at: the next entry frees the lock
        second = await handle.acquire("report", "worker-2", 2.0)
        assert second == Acquired(second.token, stamps.stamped[-1] + 2.0)
        assert second.token > first.token
        assert await handle.owner("report") == Held("worker-2", second.expires_at)
        assert storage.write(second.token, "worker-2's write")

        # worker-1 wakes up still believing it holds the lock: its write is fenced off,
        # and the lock service tells it the truth.
        assert not storage.write(first.token, "worker-1's late write")
        assert storage.value == "worker-2's write"
        assert await handle.renew("report", "worker-1", first.token, 2.0) is None
        assert await handle.release("report", "worker-1", first.token) is False
        assert await handle.release("report", "worker-2", second.token) is True
        assert await handle.owner("report") is None


class RecordingStateMachine:
    """An ObjectStateMachine of a LockService that applies one entry at a time and
    records, after each, the log index and who owns lock ``"L"``."""

    def __init__(self) -> None:
        self.inner = ObjectStateMachine(LockService)
        self.owners: dict[int, Any] = {}

    async def apply(self, entries: Sequence[Entry[Any]]) -> list[Any]:
        replies = []
        for entry in entries:
            replies += await self.inner.apply([entry])
            self.owners[entry.log_id.index] = self.inner.object.owner("L")
        return replies

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def test_every_replica_frees_the_lock_at_the_same_log_index(
    autojump_clock: trio.testing.MockClock,
) -> None:
    stamps = Stamps()
    async with open_cluster(3, state_machine_factory=RecordingStateMachine) as c:
        leader = await c.wait_for_leader(10)
        lagging = next(node for node in sorted(c.nodes) if node != leader)
        c.router.isolate(lagging)  # it will catch up on the whole story later
        handle = await leader_handle(c, stamps)

        granted = await handle.acquire("L", "holder", 1.0)
        assert isinstance(granted, Acquired)
        expired_by: int | None = None  # the first entry whose log time is past the lease
        for _ in range(8):  # other clients' writes, spread over the lease's end
            await trio.sleep(0.3)
            reply = await handle.acquire("M", "someone", 0.1)
            if expired_by is None and stamps.stamped[-1] > granted.expires_at:
                expired_by = reply.token  # the token is that entry's log index
        assert expired_by is not None

        c.router.heal()
        last = c.nodes[leader].metrics.last_log_index
        assert last is not None
        await c.wait_applied(last)

        histories = {node: c.state_machines[node].owners for node in sorted(c.nodes)}
        for owners in histories.values():
            assert owners == histories[leader]
        owners = histories[leader]
        held = sorted(index for index, owner in owners.items() if owner is not None)
        assert held == list(range(granted.token, expired_by))
        assert all(owners[index] == Held("holder", granted.expires_at) for index in held)
        assert owners[expired_by] is None
