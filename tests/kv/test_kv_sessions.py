"""KvStateMachine keeps client sessions: a retried request applies once, with its first
reply; the table travels in snapshots (in memory, installed, and in durable files across a
restart); snapshots of the format before sessions still load."""

from __future__ import annotations

from pathlib import Path

import cbor2
import pytest

from openraft_trio import codec
from openraft_trio._errors import InvalidRequest
from openraft_trio.kv import CompareAndSwap, KvStateMachine, Set
from openraft_trio.sessions import Expired, OpenSession, SessionCommand
from openraft_trio.storage import run_inline

from ._kv_log import Log, apply


async def test_a_retried_request_applies_once_with_its_first_reply() -> None:
    sm = KvStateMachine(session_timeout=10.0)
    log = Log()
    assert await apply(sm, log, OpenSession(0.0)) == [1]
    cas = CompareAndSwap("k", None, "a")
    first = SessionCommand(1, 1, 0, 1.0, cas)
    # The retry arrives after another client's write changed the key: had it applied again,
    # it would fail its compare; it is answered with the first reply instead.
    replies = await apply(sm, log, first, Set("k", "b"), first)
    assert replies == [(True, "a"), "a", (True, "a")]
    assert sm.get("k") == "b"


async def test_an_expired_session_is_refused_and_nothing_applies() -> None:
    sm = KvStateMachine(session_timeout=10.0)
    log = Log()
    await apply(sm, log, OpenSession(0.0))
    assert await apply(sm, log, SessionCommand(1, 1, 0, 11.0, Set("k", "v"))) == [Expired(1)]
    assert sm.get("k") is None


async def test_sessions_travel_in_an_installed_snapshot() -> None:
    sm = KvStateMachine(session_timeout=10.0)
    log = Log()
    await apply(sm, log, OpenSession(0.0), SessionCommand(1, 1, 0, 1.0, Set("k", "v")))
    snapshot = await sm.build_snapshot()
    other = KvStateMachine(session_timeout=10.0)
    await other.install_snapshot(snapshot.meta, snapshot.data)
    assert await apply(other, log, SessionCommand(1, 1, 0, 2.0, Set("k", "w"))) == [None]
    assert other.get("k") == "v"


async def test_sessions_survive_a_restart_from_the_durable_snapshot(tmp_path: Path) -> None:
    sm = KvStateMachine(tmp_path, run_io=run_inline, session_timeout=10.0)
    log = Log()
    await apply(sm, log, OpenSession(0.0), SessionCommand(1, 1, 0, 1.0, Set("k", "v")))
    await sm.build_snapshot()
    restarted = KvStateMachine(tmp_path, run_io=run_inline, session_timeout=10.0)
    assert 1 in restarted.sessions
    assert await apply(restarted, log, SessionCommand(1, 1, 0, 2.0, Set("k", "w"))) == [None]
    assert restarted.get("k") == "v"


async def test_a_snapshot_of_the_format_before_sessions_still_installs() -> None:
    sm = KvStateMachine()
    log = Log()
    await apply(sm, log, Set("k", "v"))
    snapshot = await sm.build_snapshot()
    document = cbor2.loads(snapshot.data)
    assert document["format"] == 3
    del document["sessions"]
    document["format"] = 2
    other = KvStateMachine()
    await other.install_snapshot(snapshot.meta, cbor2.dumps(document))
    assert other.get("k") == "v"
    assert len(other.sessions) == 0


async def test_malformed_sessions_in_a_snapshot_are_refused() -> None:
    sm = KvStateMachine()
    log = Log()
    await apply(sm, log, Set("k", "v"))
    snapshot = await sm.build_snapshot()
    document = cbor2.loads(snapshot.data)
    document["sessions"] = {"version": 1, "time": 0.0, "sessions": [[0, 0.0, 0, []]]}
    other = KvStateMachine()
    with pytest.raises(InvalidRequest, match="malformed sessions"):
        await other.install_snapshot(snapshot.meta, cbor2.dumps(document))
    assert other.last_applied is None


def test_session_entries_of_kv_requests_round_trip_through_the_codec() -> None:
    command = SessionCommand(4, 2, 1, 9.5, CompareAndSwap("k", None, [1, "x"]))
    assert codec.decode_payload(codec.encoded_data(command)) == command
