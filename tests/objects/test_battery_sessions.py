"""Batteries behind client sessions: a retried ``get`` or ``acquire`` applies once and gets
the first reply (what the tutorials promise for calls whose outcome was unknown)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio

from openraft_trio.objects import ObjectHandle, ObjectStateMachine, make_call
from openraft_trio.objects.batteries import Acquired, FifoQueue, LockService
from openraft_trio.sessions import SessionStateMachine, open_session
from openraft_trio.testing import open_cluster


@asynccontextmanager
async def in_a_session(cls: type[Any]) -> AsyncIterator[tuple[Any, ObjectHandle[Any], Any]]:
    """A three-node cluster of ``cls`` behind sessions: the leader, a plain handle on the
    inner object, and an open session."""

    def factory() -> SessionStateMachine:
        return SessionStateMachine(ObjectStateMachine(cls))

    async with open_cluster(3, state_machine_factory=factory) as c:
        leader = await c.wait_for_leader()
        raft = c.nodes[leader]
        handle = ObjectHandle(raft, c.state_machines[leader].inner, clock=trio.current_time)
        yield raft, handle, await open_session(raft, clock=trio.current_time)


async def test_a_retried_get_in_a_session_takes_one_item(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with in_a_session(FifoQueue) as (raft, jobs, session):
        assert await jobs.put("first") == 1
        assert await jobs.put("second") == 2
        get = session.call(make_call("get", now=trio.current_time()))
        assert (await get.send(raft)).data == "first"
        assert (await get.send(raft)).data == "first"  # the retry: the same item
        assert await jobs.size() == 1
        assert await jobs.peek() == "second"


async def test_a_retried_acquire_in_a_session_gets_the_first_token(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with in_a_session(LockService) as (raft, locks, session):
        acquire = session.call(make_call("acquire", ["L", "a", 5.0], now=trio.current_time()))
        first = (await acquire.send(raft)).data
        assert isinstance(first, Acquired)
        await trio.sleep(1)
        assert (await acquire.send(raft)).data == first
        assert await locks.release("L", "a", first.token) is True
