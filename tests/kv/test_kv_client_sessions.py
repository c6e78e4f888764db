"""KvClient writes in a client session: what it does after each kind of failure.

The decision logic is driven through a scripted ``leader_call`` (the transport's outcomes,
one per call); the last test runs the real thing on a loopback node (real clock, bounded
by ``trio.fail_after``).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
import trio

import openraft_trio as raft
from openraft_trio._errors import RemoteError
from openraft_trio.kv import (
    AmbiguousOutcome,
    KvClient,
    KvNode,
    KvNodeOptions,
    NoLeader,
    open_kv_client,
    serve_kv_node,
)
from openraft_trio.network import _wire as wire

from ..network._tcp_nodes import free_port


def expired() -> RemoteError:
    return RemoteError("expired", wire.ErrorReply("SessionExpired", "session expired"))


class Script:
    """Stands in for ``KvClient.leader_call``: each call takes the next step, a function of
    ``(op, args, attempts)`` that returns a reply or raises."""

    def __init__(self, *steps: Callable[[str, tuple[Any, ...], Any], Any]) -> None:
        self.steps = list(steps)
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    async def __call__(
        self, op: str, *args: Any, idempotent: bool, attempts: Any = None, deadline: Any = None
    ) -> Any:
        self.calls.append((op, args))
        return self.steps.pop(0)(op, args, attempts)


def opened(session_id: int) -> Callable[..., Any]:
    return lambda *_: {"session_id": session_id, "timeout": 60.0, "window": 4}


def reply(value: Any) -> Callable[..., Any]:
    return lambda *_: {"value": value, "index": 9}


def unknown_then(error: BaseException) -> Callable[..., Any]:
    def step(_op: str, _args: Any, attempts: Any) -> Any:
        attempts.unknown("connection lost after sending")
        raise error

    return step


def raising(error: BaseException) -> Callable[..., Any]:
    def step(*_: Any) -> Any:
        raise error

    return step


async def with_script(script: Script, body: Callable[[KvClient], Any]) -> Any:
    async with open_kv_client(["127.0.0.1:1"], timeout=5.0) as kv:
        kv.leader_call = script  # type: ignore[method-assign]
        try:
            return await body(kv)
        finally:
            kv._session = None  # nothing to close: there is no server


async def test_writes_share_one_session_and_number_their_commands(
    autojump_clock: trio.testing.MockClock,
) -> None:
    script = Script(opened(7), reply(1), reply(2))

    async def body(kv: KvClient) -> None:
        assert await kv.incr("c") == 1
        assert await kv.incr("c") == 2

    await with_script(script, body)
    assert script.calls == [
        ("open_session", ()),
        ("session_write", (7, 1, 0, "incr", ["c", 1])),
        ("session_write", (7, 2, 1, "incr", ["c", 1])),
    ]


async def test_an_expiry_after_an_unknown_outcome_is_ambiguous(
    autojump_clock: trio.testing.MockClock,
) -> None:
    script = Script(opened(7), unknown_then(expired()))

    async def body(kv: KvClient) -> None:
        with pytest.raises(AmbiguousOutcome, match="session expired"):
            await kv.incr("c")

    await with_script(script, body)


async def test_an_expiry_of_a_first_sending_opens_a_new_session_and_sends_again(
    autojump_clock: trio.testing.MockClock,
) -> None:
    script = Script(opened(7), raising(expired()), opened(12), reply(1))

    async def body(kv: KvClient) -> None:
        assert await kv.incr("c") == 1

    await with_script(script, body)
    assert script.calls[2:] == [
        ("open_session", ()),
        ("session_write", (12, 1, 0, "incr", ["c", 1])),
    ]


async def test_giving_up_after_an_unknown_outcome_is_ambiguous(
    autojump_clock: trio.testing.MockClock,
) -> None:
    script = Script(opened(7), unknown_then(NoLeader("no leader within the timeout")))

    async def body(kv: KvClient) -> None:
        with pytest.raises(AmbiguousOutcome, match="connection lost after sending"):
            await kv.incr("c")

    await with_script(script, body)


async def test_giving_up_when_nothing_was_sent_is_no_leader(
    autojump_clock: trio.testing.MockClock,
) -> None:
    script = Script(opened(7), raising(NoLeader("no leader within the timeout")))

    async def body(kv: KvClient) -> None:
        with pytest.raises(NoLeader):
            await kv.incr("c")

    await with_script(script, body)


async def test_a_write_waits_for_acknowledgements_beyond_the_window(
    autojump_clock: trio.testing.MockClock,
) -> None:
    release = trio.Event()
    sent: list[int] = []

    async def leader_call(
        op: str, *args: Any, idempotent: bool, attempts: Any = None, deadline: Any = None
    ) -> Any:
        if op == "open_session":
            return {"session_id": 7, "timeout": 60.0, "window": 2}
        sent.append(args[1])
        if args[1] == 1:
            await release.wait()
        return {"prev": None, "index": 1}

    async with open_kv_client(["127.0.0.1:1"], timeout=5.0) as kv:
        kv.leader_call = leader_call  # type: ignore[method-assign]
        async with trio.open_nursery() as nursery:
            for i in range(3):
                nursery.start_soon(kv.put, f"k{i}", i)
                await trio.sleep(0.1)
            # Seq 3 is beyond acked 0 + window 2 while seq 1 is unanswered.
            assert sorted(sent) == [1, 2]
            release.set()
        assert sorted(sent) == [1, 2, 3]
        kv._session = None


async def test_without_sessions_a_write_is_sent_once_as_before(
    autojump_clock: trio.testing.MockClock,
) -> None:
    calls: list[tuple[str, bool]] = []

    async def leader_call(
        op: str, *args: Any, idempotent: bool, attempts: Any = None, deadline: Any = None
    ) -> Any:
        calls.append((op, idempotent))
        return {"prev": None, "index": 1}

    async with open_kv_client(["127.0.0.1:1"], sessions=False) as kv:
        kv.leader_call = leader_call  # type: ignore[method-assign]
        await kv.put("k", "v")
    assert calls == [("put", False)]


async def test_a_session_write_sent_twice_applies_once_on_a_real_node() -> None:
    config = raft.Config(cluster_name="kv-sessions")
    addr = f"127.0.0.1:{free_port()}"
    options = KvNodeOptions(node_id=1, listen=addr, data_dir=None, config=config)
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            node: KvNode = await nursery.start(partial(serve_kv_node, options))
            async with open_kv_client([addr], cluster_name="kv-sessions") as kv:
                await kv.init({1: addr})
                assert await kv.incr("c") == 1
                # A session of our own, and one command sent twice, as a retry after a lost
                # reply would send it.
                session_id = (await kv.call(addr, "open_session"))["session_id"]
                write = ["session_write", session_id, 1, 0, "incr", ["c", 5]]
                first = await kv.call(addr, *write)
                again = await kv.call(addr, *write)
                assert first["value"] == again["value"] == 6
                assert await kv.get("c") == 6
                # Malformed session numbers are refused, and the node keeps serving.
                with pytest.raises(RemoteError, match="seq must be an integer >= 1"):
                    await kv.call(addr, "session_write", session_id, 0, 0, "incr", ["c"])
                with pytest.raises(RemoteError, match="a write op"):
                    await kv.call(addr, "session_write", session_id, 2, 1, "get", ["c"])
                with pytest.raises(RemoteError, match="SessionExpired"):
                    await kv.call(addr, "session_write", 999, 1, 0, "incr", ["c"])
                await kv.call(addr, "close_session", session_id)
                assert await kv.incr("c", 2) == 8
                assert len(node.state_machine.sessions) == 1
            # The client closed its session on the way out.
            assert len(node.state_machine.sessions) == 0
            nursery.cancel_scope.cancel()


async def test_concurrent_session_writes_leave_the_client_timeout_as_it_was() -> None:
    """The first session client gave each write its deadline by swapping ``kv.timeout`` for
    the time left and restoring it after: concurrent writes restored each other's values,
    and the client's timeout drifted. Each call now carries its own deadline."""
    config = raft.Config(cluster_name="kv-sessions")
    addr = f"127.0.0.1:{free_port()}"
    options = KvNodeOptions(node_id=1, listen=addr, data_dir=None, config=config)
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await nursery.start(partial(serve_kv_node, options))
            async with open_kv_client([addr], cluster_name="kv-sessions", timeout=7.0) as kv:
                await kv.init({1: addr})
                async with trio.open_nursery() as writers:
                    for _ in range(32):
                        writers.start_soon(kv.incr, "c")
                assert kv.timeout == 7.0
                assert await kv.get("c") == 32
            nursery.cancel_scope.cancel()
