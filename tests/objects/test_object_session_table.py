"""ObjectStateMachine keeps client sessions itself: a retried call applies once, with its
first reply; an expired session is refused; the table travels in snapshots (installed, and
in durable files across a restart); snapshots from before sessions still load."""

from __future__ import annotations

from pathlib import Path

import cbor2
import pytest

from openraft_trio.objects import MalformedSnapshotError, ObjectStateMachine
from openraft_trio.sessions import (
    CloseSession,
    Expired,
    KeepAlive,
    OpenSession,
    SessionCommand,
    TooManySessions,
)
from openraft_trio.storage import run_inline

from ._objects import Counter, Log, apply, call


async def test_a_retried_call_applies_once_with_its_first_reply() -> None:
    sm, log = ObjectStateMachine(Counter, session_timeout=10.0), Log()
    assert await apply(sm, log, OpenSession(0.0)) == [1]
    first = SessionCommand(1, 1, 0, 1.0, call("add", 5, now=1.0))
    # Another client's add lands between the call and its retry: the retry is answered
    # with the first reply (5), not applied again (which would give 12).
    replies = await apply(sm, log, first, call("add", 2, now=1.5), first)
    assert replies == [5, 7, 5]
    assert sm.object.value == 7
    assert sm.object.log_index == 4  # the answered retry still moves the log position
    assert 1 in sm.sessions


async def test_an_expired_session_is_refused_and_nothing_applies() -> None:
    sm, log = ObjectStateMachine(Counter, session_timeout=10.0), Log()
    await apply(sm, log, OpenSession(0.0))
    late = SessionCommand(1, 1, 0, 11.0, call("add", 5, now=11.0))
    assert await apply(sm, log, late) == [Expired(1)]
    assert sm.object.value == 0
    assert sm.rejected == 0


async def test_keep_alive_close_and_a_full_table() -> None:
    sm, log = ObjectStateMachine(Counter, session_timeout=10.0, max_sessions=1), Log()
    replies = await apply(
        sm, log, OpenSession(0.0), OpenSession(1.0), KeepAlive(1, 0, 9.0), CloseSession(1, 15.0)
    )
    assert replies == [1, TooManySessions(1), None, None]
    assert len(sm.sessions) == 0
    assert await apply(sm, log, KeepAlive(1, 0, 16.0)) == [Expired(1)]


async def test_the_window_and_the_table_settings_apply() -> None:
    sm, log = ObjectStateMachine(Counter, session_window=2), Log()
    await apply(sm, log, OpenSession(0.0))
    assert sm.sessions.window == 2
    beyond = SessionCommand(1, 3, 0, 1.0, call("add", 1))
    (reply,) = await apply(sm, log, beyond)
    assert type(reply).__name__ == "WindowExceeded"
    assert sm.object.value == 0


async def test_a_session_command_of_something_else_is_rejected_and_recorded() -> None:
    sm, log = ObjectStateMachine(Counter), Log()
    await apply(sm, log, OpenSession(0.0))
    command = SessionCommand(1, 1, 0, 1.0, "not a call")
    assert await apply(sm, log, command, command) == [None, None]
    assert sm.rejected == 1


async def test_sessions_travel_in_an_installed_snapshot() -> None:
    sm, log = ObjectStateMachine(Counter, session_timeout=10.0), Log()
    first = SessionCommand(1, 1, 0, 1.0, call("add", 5, now=1.0))
    await apply(sm, log, OpenSession(0.0), first)
    snapshot = await sm.build_snapshot()
    other = ObjectStateMachine(Counter, session_timeout=10.0)
    await other.install_snapshot(snapshot.meta, snapshot.data)
    assert await apply(other, log, first) == [5]
    assert other.object.value == 5


async def test_sessions_survive_a_restart_from_the_durable_snapshot(tmp_path: Path) -> None:
    sm = ObjectStateMachine(Counter, snapshot_dir=tmp_path, run_io=run_inline)
    log = Log()
    first = SessionCommand(1, 1, 0, 1.0, call("add", 5, now=1.0))
    await apply(sm, log, OpenSession(0.0), first)
    await sm.build_snapshot()
    restarted = ObjectStateMachine(Counter, snapshot_dir=tmp_path, run_io=run_inline)
    assert 1 in restarted.sessions
    assert await apply(restarted, log, first) == [5]
    assert restarted.object.value == 5


async def test_a_snapshot_from_before_sessions_still_installs() -> None:
    sm, log = ObjectStateMachine(Counter), Log()
    await apply(sm, log, call("add", 3))
    snapshot = await sm.build_snapshot()
    document = cbor2.loads(snapshot.data)
    del document["sessions"]
    other = ObjectStateMachine(Counter)
    await other.install_snapshot(snapshot.meta, cbor2.dumps(document, canonical=True))
    assert other.object.value == 3
    assert len(other.sessions) == 0


async def test_malformed_sessions_in_a_snapshot_are_refused() -> None:
    sm, log = ObjectStateMachine(Counter), Log()
    await apply(sm, log, call("add", 3))
    snapshot = await sm.build_snapshot()
    document = cbor2.loads(snapshot.data)
    document["sessions"] = {"version": 1, "time": 0.0, "sessions": [[0, 0.0, 0, []]]}
    other = ObjectStateMachine(Counter)
    with pytest.raises(MalformedSnapshotError, match="malformed sessions"):
        await other.install_snapshot(snapshot.meta, cbor2.dumps(document))
    assert other.last_applied is None
