"""ObjectService and ObjectClient with client sessions, in-process under MockClock: a call
is a session write (``session_write`` wrapping ``call``), a retried one is answered from
the object machine's table, an expired session is refused with the typed error."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from openraft_trio import InvalidRequest, codec
from openraft_trio.objects import Call, ObjectClient, ObjectStateMachine
from openraft_trio.sessions import SessionExpired
from openraft_trio.testing import open_cluster

from ..kv._in_process_client import open_in_process_client, service
from ._objects import Counter


def encoded(method: str, *args: Any) -> Any:
    return codec.encode_data(Call(method, None, args, 0.0, {}))


def machines(**settings: Any) -> Any:
    return lambda: ObjectStateMachine(Counter, **settings)


async def test_a_client_call_is_a_session_write_applied_once(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with (
        open_cluster(3, seed=3, state_machine_factory=machines()) as c,
        open_in_process_client(c, monkeypatch) as kv,
    ):
        leader = await c.wait_for_leader()
        counter = ObjectClient(kv, Counter)
        assert await counter.add(5) == 5
        assert await counter.add(2) == 7
        assert await counter.get() == 7
        sessions = c.state_machines[leader].sessions
        assert len(sessions) == 1
        assert kv._session is not None
        assert kv._session.session_id in sessions


async def test_a_retried_session_write_is_answered_from_the_table(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_cluster(1, seed=4, state_machine_factory=machines()) as c:
        await c.wait_for_leader()
        node = service(c, 1)
        opened = await node.handle("open_session", [])
        assert (opened["timeout"], opened["window"]) == (60.0, 64)
        session_id = opened["session_id"]
        write = [session_id, 1, 0, "call", [encoded("add", 5)]]
        first = await node.handle("session_write", write)
        await node.handle("call", [encoded("add", 2)])  # another client's call between
        again = await node.handle("session_write", write)
        # The same reply (the first one's), from the retry's own entry.
        assert (first["reply"], again["reply"]) == (codec.encode_data(5), codec.encode_data(5))
        assert again["index"] == first["index"] + 2
        assert c.state_machines[1].object.value == 7
        await node.handle("keep_alive", [session_id, 1])
        await node.handle("close_session", [session_id])
        assert len(c.state_machines[1].sessions) == 0


async def test_an_expired_session_is_refused_with_the_typed_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_cluster(1, seed=4, state_machine_factory=machines(session_timeout=5.0)) as c:
        await c.wait_for_leader()
        node = service(c, 1)
        session_id = (await node.handle("open_session", []))["session_id"]
        await trio.sleep(6)
        with pytest.raises(SessionExpired):
            await node.handle("session_write", [session_id, 1, 0, "call", [encoded("add", 5)]])
        with pytest.raises(SessionExpired):
            await node.handle("keep_alive", [session_id, 0])
        assert c.state_machines[1].object.value == 0


async def test_a_session_write_of_an_unknown_method_writes_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_cluster(1, seed=4, state_machine_factory=machines()) as c:
        await c.wait_for_leader()
        node = service(c, 1)
        session_id = (await node.handle("open_session", []))["session_id"]
        applied = c.state_machines[1].last_applied
        reply = await node.handle("session_write", [session_id, 1, 0, "call", [encoded("nope")]])
        assert reply["index"] is None
        assert codec.decode_data(reply["reply"]).kind == "unknown_method"
        assert c.state_machines[1].last_applied == applied
        with pytest.raises(InvalidRequest, match='takes the op "call"'):
            await node.handle("session_write", [session_id, 1, 0, "put", ["k", 1]])


async def test_without_sessions_a_call_is_a_plain_call(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with (
        open_cluster(3, seed=3, state_machine_factory=machines()) as c,
        open_in_process_client(c, monkeypatch, sessions=False) as kv,
    ):
        leader = await c.wait_for_leader()
        counter = ObjectClient(kv, Counter)
        assert await counter.add(5) == 5
        assert len(c.state_machines[leader].sessions) == 0
