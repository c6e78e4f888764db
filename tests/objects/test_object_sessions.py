"""A replicated object wrapped in client sessions: ``SessionStateMachine(ObjectStateMachine(
cls))``. Calls travel as opaque inner commands; a retried call applies once; a handle with
a session takes the wrapper (its queries read the inner machine)."""

from __future__ import annotations

import trio

from openraft_trio.objects import ObjectHandle, ObjectStateMachine, make_call
from openraft_trio.sessions import SessionStateMachine, open_session
from openraft_trio.testing import open_cluster

from ._objects import Counter


async def test_a_retried_call_in_a_session_applies_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_cluster(
        3, seed=5, state_machine_factory=lambda: SessionStateMachine(ObjectStateMachine(Counter))
    ) as c:
        leader = await c.wait_for_leader()
        raft = c.nodes[leader]
        session = await open_session(raft, clock=trio.current_time)
        call = session.call(make_call("add", [5], now=trio.current_time()))
        first = await call.send(raft)
        again = await call.send(raft)  # a retry, as after a timeout: answered from the cache
        assert (first.data, again.data) == (5, 5)
        objects = c.state_machines[leader].inner
        assert objects.object.value == 5
        # Queries and plain calls still go through a handle on the inner machine.
        handle = ObjectHandle(raft, objects)
        assert await handle.add(1) == 6
        assert await handle.get() == 6
        # A handle with a session takes the wrapper itself.
        in_session = ObjectHandle(raft, c.state_machines[leader], session=session, nodes=c.nodes)
        assert in_session.state_machine is objects
        assert in_session.session is session
        assert await in_session.add(2) == 8
        assert await in_session.get() == 8
        await c.wait_applied(objects.last_applied.index)
        states = [c.state_machines[n].inner.state() for n in sorted(c.nodes)]
        assert states == [states[0]] * 3
