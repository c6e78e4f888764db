"""ObjectHandle with a client session: each call travels in the session and is sent again
after an unknown outcome (ForwardToLeader with maybe_committed, a timeout, a stopped node),
following the leader it is told of; the retry is answered from the session table."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from openraft_trio import ClientWriteResponse, ForwardToLeader, InvalidRequest, Stopped
from openraft_trio.objects import ObjectHandle, ObjectStateMachine
from openraft_trio.sessions import (
    ClientSession,
    SessionCommand,
    SessionExpired,
    open_session,
)

from ._objects import Counter, Log


class FakeRaft:
    """Applies each write to ``state_machine`` at once; ``failures`` script what the
    next session commands do instead of answering: ``"lost"`` applies it, then raises
    ``ForwardToLeader(maybe_committed=True)`` naming ``leader``; ``"stopped"`` applies it
    and raises ``Stopped``; ``"hang"`` applies it and never answers."""

    def __init__(self, state_machine: Any, log: Log, *failures: str, leader: int | None = None):
        self.state_machine = state_machine
        self.log = log
        self.failures = list(failures)
        self.leader = leader
        self.writes: list[Any] = []

    async def client_write(self, data: Any) -> ClientWriteResponse[Any]:
        await trio.lowlevel.checkpoint()
        self.writes.append(data)
        entry = self.log.entry(data)
        (reply,) = await self.state_machine.apply([entry])
        scripted = self.failures and isinstance(data, SessionCommand)
        failure = self.failures.pop(0) if scripted else None
        if failure == "lost":
            raise ForwardToLeader(self.leader, maybe_committed=True, log_id=entry.log_id)
        if failure == "stopped":
            raise Stopped()
        if failure == "hang":
            await trio.sleep_forever()
        return ClientWriteResponse(entry.log_id, reply)


def clock() -> float:
    return trio.current_time()


async def test_a_call_lost_with_its_leader_is_sent_again_and_applied_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sm, log = ObjectStateMachine(Counter), Log()
    raft = FakeRaft(sm, log, "lost", "stopped")
    session = await open_session(raft, clock=clock)  # type: ignore[arg-type]
    handle = ObjectHandle(raft, sm, session=session)  # type: ignore[arg-type]
    assert await handle.add(5) == 5  # applied by the first send; answered from the table
    assert sm.object.value == 5
    assert [type(w).__name__ for w in raft.writes] == ["OpenSession", *["SessionCommand"] * 3]
    commands = raft.writes[1:]
    assert {(c.session_id, c.seq) for c in commands} == {(1, 1)}
    # The call and the session entry are stamped from the session's clock.
    assert commands[0].command.now == commands[0].now
    assert await handle.add(1) == 6
    assert raft.writes[-1].acked_seq == 1


async def test_a_timed_out_call_is_sent_again(autojump_clock: trio.testing.MockClock) -> None:
    sm, log = ObjectStateMachine(Counter), Log()
    raft = FakeRaft(sm, log, "hang")
    session = await open_session(raft, clock=clock)  # type: ignore[arg-type]
    handle = ObjectHandle(raft, sm, session=session, attempt_timeout=1.0)  # type: ignore[arg-type]
    assert await handle.add(5) == 5
    assert sm.object.value == 5
    assert len(raft.writes) == 3


async def test_the_handle_follows_the_leader_named_by_forward_to_leader(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sm, log = ObjectStateMachine(Counter), Log()
    old = FakeRaft(sm, log, "lost", leader=2)
    new = FakeRaft(sm, log)
    session = await open_session(old, clock=clock)  # type: ignore[arg-type]
    handle = ObjectHandle(old, sm, session=session, nodes={1: old, 2: new})  # type: ignore[arg-type,dict-item]
    assert await handle.add(5) == 5
    assert (len(old.writes), len(new.writes)) == (2, 1)
    assert isinstance(new.writes[0], SessionCommand)
    assert sm.object.value == 5


async def test_an_expired_session_raises_the_typed_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sm, log = ObjectStateMachine(Counter, session_timeout=10.0), Log()
    raft = FakeRaft(sm, log)
    session = await open_session(raft, clock=clock)  # type: ignore[arg-type]
    handle = ObjectHandle(raft, sm, session=session)  # type: ignore[arg-type]
    await trio.sleep(11)
    with pytest.raises(SessionExpired) as info:
        await handle.add(5)
    assert info.value.maybe_applied is False
    assert sm.object.value == 0


async def test_an_expired_session_after_an_unknown_outcome_may_have_applied(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sm, log = ObjectStateMachine(Counter, session_timeout=10.0), Log()
    raft = FakeRaft(sm, log, "hang")
    session = await open_session(raft, clock=clock)  # type: ignore[arg-type]
    handle = ObjectHandle(
        raft, sm, session=session, attempt_timeout=11.0, retry_for=30.0  # type: ignore[arg-type]
    )
    with pytest.raises(SessionExpired) as info:
        await handle.add(5)
    assert info.value.maybe_applied is True
    assert sm.object.value == 5


async def test_an_unknown_outcome_past_retry_for_is_raised(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sm, log = ObjectStateMachine(Counter), Log()
    raft = FakeRaft(sm, log, *["lost"] * 100)
    session = await open_session(raft, clock=clock)  # type: ignore[arg-type]
    handle = ObjectHandle(raft, sm, session=session, retry_for=1.0)  # type: ignore[arg-type]
    with pytest.raises(ForwardToLeader) as info:
        await handle.add(5)
    assert info.value.maybe_committed
    assert sm.object.value == 5
    assert session.acked_seq == 1  # given up: the next call does not wait for it


def test_bad_session_options_are_refused() -> None:
    sm = ObjectStateMachine(Counter)
    session = ClientSession(1)
    with pytest.raises(InvalidRequest, match="clock"):
        ObjectHandle(None, sm, session=session, clock=clock)  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest, match="retry_for"):
        ObjectHandle(None, sm, session=session, retry_for=-1)  # type: ignore[arg-type]

