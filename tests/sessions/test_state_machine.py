"""SessionStateMachine: client sessions around any state machine.

Each rule with its exact replies and what the inner state machine saw; a property test that
applying the same entries in any batch split gives the same replies and state (the wrapper
batches commands for ``inner`` and must flush exactly where the table needs it); snapshots
carry the table; the codec carries session entries; and the in-process client in a real
cluster applies a retried write once.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import cbor2
import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from openraft_trio import (
    Entry,
    LeaderId,
    LogId,
    Normal,
    Snapshot,
    SnapshotMeta,
    StoredMembership,
    codec,
)
from openraft_trio._errors import InvalidRequest
from openraft_trio.kv import KvStateMachine, Set
from openraft_trio.sessions import (
    CloseSession,
    Expired,
    KeepAlive,
    OpenSession,
    SessionCommand,
    SessionExpired,
    SessionStateMachine,
    Stale,
    TooManySessions,
    WindowExceeded,
    open_session,
)
from openraft_trio.storage import BuildsSnapshotsAside


class Adder:
    """A tiny in-memory state machine: ``Normal(int)`` adds to a total, replies the total.
    It records every batch it is given."""

    def __init__(self) -> None:
        self.total = 0
        self.last_applied: LogId | None = None
        self.batches: list[list[Any]] = []

    async def applied_state(self) -> tuple[LogId | None, StoredMembership]:
        return self.last_applied, StoredMembership()

    async def apply(self, entries: Sequence[Entry[Any]]) -> list[Any]:
        self.batches.append(
            [e.payload.data if isinstance(e.payload, Normal) else "blank" for e in entries]
        )
        replies: list[Any] = []
        for entry in entries:
            if isinstance(entry.payload, Normal):
                self.total += entry.payload.data
                replies.append(self.total)
            else:
                replies.append(None)
            self.last_applied = entry.log_id
        return replies

    async def build_snapshot(self) -> Snapshot:
        meta = SnapshotMeta(self.last_applied, StoredMembership(), "s")
        return Snapshot(meta, cbor2.dumps(self.total))

    async def install_snapshot(self, meta: SnapshotMeta, data: bytes) -> None:
        self.total = cbor2.loads(data)
        self.last_applied = meta.last_log_id

    async def get_current_snapshot(self) -> Snapshot | None:
        return None


def entries(*datas: Any, start: int = 1) -> list[Entry[Any]]:
    return [Entry(LogId(LeaderId(1, 1), start + i), Normal(d)) for i, d in enumerate(datas)]


def cmd(session: int, seq: int, value: Any, now: float, acked: int = 0) -> SessionCommand[Any]:
    return SessionCommand(session, seq, acked, now, value)


def machine(**kwargs: Any) -> tuple[SessionStateMachine[Any, Any], Adder]:
    inner = Adder()
    options: dict[str, Any] = {"timeout": 10.0, "window": 4, "max_sessions": 2}
    options.update(kwargs)
    return SessionStateMachine(inner, **options), inner


async def test_open_session_replies_its_log_index() -> None:
    sm, inner = machine()
    assert await sm.apply(entries(OpenSession(0.0), start=5)) == [5]
    assert inner.batches == [["blank"]]
    assert await sm.applied_state() == (LogId(LeaderId(1, 1), 5), StoredMembership())


async def test_a_retried_command_is_applied_once_and_answered_alike() -> None:
    sm, inner = machine()
    await sm.apply(entries(OpenSession(0.0)))
    assert await sm.apply(entries(cmd(1, 1, 10, 1.0), start=2)) == [10]
    assert await sm.apply(entries(cmd(1, 1, 10, 2.0), start=3)) == [10]
    assert await sm.apply(entries(cmd(1, 2, 5, 3.0), start=4)) == [15]
    assert inner.total == 15
    assert inner.batches[1:] == [[10], ["blank"], [5]]


async def test_a_retry_in_the_same_batch_flushes_first() -> None:
    sm, inner = machine()
    replies = await sm.apply(
        entries(OpenSession(0.0), cmd(1, 1, 10, 1.0), cmd(1, 2, 1, 1.0), cmd(1, 1, 10, 2.0))
    )
    assert replies == [1, 10, 11, 10]
    assert inner.total == 11
    # One batch for the open and the two new commands; the retry waits for their replies.
    assert inner.batches == [["blank", 10, 1], ["blank"]]


async def test_an_acknowledgement_of_a_pending_reply_flushes_first() -> None:
    # Found by the batch-split property: seq 2 acknowledges seq 1, whose reply is still in
    # the batch; recording it after the acknowledgement dropped it would be refused.
    sm, inner = machine()
    replies = await sm.apply(
        entries(OpenSession(0.0), cmd(1, 1, 10, 1.0), cmd(1, 2, 1, 1.0, acked=1))
    )
    assert replies == [1, 10, 11]
    assert inner.batches == [["blank", 10], [1]]


async def test_plain_commands_pass_through_unchanged() -> None:
    sm, inner = machine()
    assert await sm.apply(entries(3, 4)) == [3, 7]
    assert inner.batches == [[3, 4]]


async def test_refusals_are_replies_and_reach_inner_as_blank() -> None:
    sm, inner = machine()
    await sm.apply(entries(OpenSession(0.0)))
    replies = await sm.apply(
        entries(
            cmd(9, 1, 1, 1.0),  # unknown session
            cmd(1, 6, 1, 1.0),  # beyond acked 0 + window 4
            cmd(1, 1, 1, 1.0, acked=1),  # the client acknowledged 1 itself
            start=2,
        )
    )
    assert replies == [Expired(9), WindowExceeded(1, 6, 0, 4), Stale(1, 1, 1)]
    assert inner.total == 0
    assert inner.batches[1] == ["blank", "blank", "blank"]
    assert await sm.applied_state() == (LogId(LeaderId(1, 1), 4), StoredMembership())


async def test_sessions_expire_by_log_time_and_keep_alive_holds_them() -> None:
    sm, _ = machine()
    await sm.apply(entries(OpenSession(0.0), OpenSession(0.0)))
    # Session 2 is kept alive at 8; at 15 session 1 (last used at 0) has expired.
    assert await sm.apply(entries(KeepAlive(2, 0, 8.0), start=3)) == [None]
    assert await sm.apply(entries(cmd(1, 1, 1, 15.0), cmd(2, 1, 1, 15.0), start=4)) == [
        Expired(1),
        1,
    ]
    assert await sm.apply(entries(KeepAlive(1, 0, 16.0), start=6)) == [Expired(1)]


async def test_close_frees_a_place_and_the_table_refuses_when_full() -> None:
    sm, _ = machine()
    assert await sm.apply(entries(OpenSession(0.0), OpenSession(0.0), OpenSession(0.0))) == [
        1,
        2,
        TooManySessions(2),
    ]
    assert await sm.apply(entries(CloseSession(1, 1.0), OpenSession(1.0), start=4)) == [None, 5]
    assert await sm.apply(entries(CloseSession(1, 2.0), start=6)) == [Expired(1)]


async def test_an_expiry_inside_a_batch_flushes_before_the_expiring_entry() -> None:
    sm, inner = machine()
    await sm.apply(entries(OpenSession(0.0), OpenSession(0.0)))
    # Session 1's command is pending when session 2's entry, 20 s later, expires session 1:
    # its reply must be recorded first (else the table would lose or refuse it).
    replies = await sm.apply(entries(cmd(1, 1, 5, 1.0), cmd(2, 1, 1, 21.0), start=3))
    assert replies == [5, Expired(2)]
    assert inner.batches[1:] == [[5], ["blank"]]


def test_session_entries_refuse_impossible_numbers() -> None:
    with pytest.raises(ValueError, match="seq must be an integer >= 1"):
        SessionCommand(1, 0, 0, 1.0, "x")
    with pytest.raises(ValueError, match="acked_seq must be an integer >= 0"):
        SessionCommand(1, 1, -1, 1.0, "x")
    with pytest.raises(ValueError, match="now must be a finite number"):
        OpenSession(float("nan"))
    with pytest.raises(ValueError, match="session_id must be an integer >= 1"):
        KeepAlive(0, 0, 1.0)


def test_session_entries_travel_through_the_codec() -> None:
    for data in (
        OpenSession(1.5),
        SessionCommand(3, 2, 1, 4.0, Set("k", [1, 2])),
        SessionCommand(3, 2, 1, 4.0, {"plain": 1}),
        KeepAlive(3, 2, 5.0),
        CloseSession(3, 6.0),
        Expired(3),
        Stale(3, 1, 2),
        WindowExceeded(3, 9, 1, 4),
        TooManySessions(10),
    ):
        assert codec.decode_payload(codec.encoded_data(data)) == data


def test_a_session_command_of_the_wrong_shape_does_not_decode() -> None:
    good = codec.encode_data(SessionCommand(3, 2, 1, 4.0, 7))
    for fields in ([3, 2, 1, 4.0], [3, 0, 1, 4.0, [None, 7]], [3, 2, 1, "now", [None, 7]]):
        with pytest.raises(codec.DecodeError):
            codec.decode_payload(cbor2.dumps([good[0], fields]))


async def test_a_snapshot_carries_the_table() -> None:
    sm, _ = machine()
    await sm.apply(entries(OpenSession(0.0), cmd(1, 1, 10, 1.0)))
    snapshot = await sm.build_snapshot()
    assert await sm.get_current_snapshot() == snapshot
    other, inner = machine()
    await other.install_snapshot(snapshot.meta, snapshot.data)
    assert inner.total == 10
    # The retry is answered from the restored table; a new command applies.
    assert await other.apply(entries(cmd(1, 1, 10, 2.0), cmd(1, 2, 1, 2.0), start=3)) == [10, 11]
    # Installing it again (not newer) changes nothing.
    await other.install_snapshot(snapshot.meta, snapshot.data)
    assert inner.total == 11


async def test_a_malformed_snapshot_is_refused_and_changes_nothing() -> None:
    sm, inner = machine()
    meta = SnapshotMeta(LogId(LeaderId(1, 1), 3), StoredMembership(), "x")
    for data in (b"junk", cbor2.dumps([9, {}, b""]), cbor2.dumps([1, {"version": 1}, b""])):
        with pytest.raises(InvalidRequest, match="not a session snapshot"):
            await sm.install_snapshot(meta, data)
    assert inner.last_applied is None


async def test_snapshots_are_built_aside_when_inner_builds_them_aside() -> None:
    assert not isinstance(machine()[0], BuildsSnapshotsAside)
    sm: SessionStateMachine[Any, Any] = SessionStateMachine(KvStateMachine(), timeout=10.0)
    assert isinstance(sm, BuildsSnapshotsAside)
    await sm.apply(entries(OpenSession(0.0), cmd(1, 1, Set("k", "v"), 1.0)))
    builder = sm.get_snapshot_builder()
    # Applies made while it builds are not in it.
    await sm.apply(entries(cmd(1, 2, Set("k", "w"), 2.0), start=3))
    snapshot = await builder.build_snapshot()
    restored: SessionStateMachine[Any, Any] = SessionStateMachine(KvStateMachine(), timeout=10.0)
    await restored.install_snapshot(snapshot.meta, snapshot.data)
    assert restored.inner.get("k") == "v"  # type: ignore[attr-defined]
    assert await restored.apply(entries(cmd(1, 1, Set("k", "x"), 3.0), start=3)) == [None]
    assert restored.inner.get("k") == "v"  # type: ignore[attr-defined]


# --- any batch split gives the same result ------------------------------------------------


def _history(draw: Any) -> list[Any]:
    """Session entries as clients make them, with everything else mixed in: a command
    mostly names a session opened earlier (its id is its entry's index) and numbers its
    calls in order; time mostly moves a little (sometimes past the timeout, sometimes
    backwards, as a new leader's clock may); and a client sends a call again after an
    unknown outcome, so a retry often lands in the same batch as its first copy (the
    wrapper's flush rule), not only by chance."""
    datas: list[Any] = []
    opened: list[int] = []
    next_seq: dict[int, int] = {}  # session id -> the seq its client numbers next
    now = 0.0
    for _ in range(draw(st.integers(1, 30))):
        now = max(0.0, now + draw(st.sampled_from([0, 1, 1, 2, 3, 0, 1, 2, 12, -2])))
        recent = [d for d in datas[-4:] if isinstance(d, SessionCommand)]
        if not opened and draw(st.booleans()):
            kind = "open"
        elif recent and draw(st.integers(0, 2)) == 0:
            datas.append(draw(st.sampled_from(recent)))  # a retry: the very same entry
            continue
        else:
            kind = draw(st.sampled_from(["open", "cmd", "cmd", "cmd", "keep", "close", "plain"]))
        known = st.sampled_from(opened) if opened else st.integers(1, 6)
        session = draw(st.one_of(known, known, known, st.integers(1, 6)))
        if kind == "open":
            opened.append(len(datas) + 1)
            datas.append(OpenSession(now))
        elif kind == "cmd":
            ordered = next_seq.get(session, 1)
            seq = draw(st.sampled_from([ordered, ordered, ordered + 1]) | st.integers(1, 6))
            next_seq[session] = max(ordered, seq + 1)
            acked = draw(st.integers(max(0, seq - 3), max(0, seq - 1)) | st.integers(0, 3))
            datas.append(cmd(session, seq, draw(st.integers(1, 9)), now, acked))
        elif kind == "keep":
            datas.append(KeepAlive(session, draw(st.integers(0, 3)), now))
        elif kind == "close":
            datas.append(CloseSession(session, now))
        else:
            datas.append(draw(st.integers(1, 9)))
    return datas


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_any_batch_split_gives_the_same_replies_and_state(data: st.DataObject) -> None:
    datas = _history(data.draw)
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(datas) - 1)), max_size=6)))

    async def run(split: list[int]) -> tuple[list[Any], int, Any]:
        sm, inner = machine(timeout=10.0, window=3, max_sessions=3)
        all_entries = entries(*datas)
        replies: list[Any] = []
        bounds = [0, *split, len(all_entries)]
        for low, high in itertools.pairwise(bounds):
            if low < high:
                replies += await sm.apply(all_entries[low:high])
        return replies, inner.total, (await sm.build_snapshot()).data

    one_by_one = trio.run(run, list(range(1, len(datas))))
    assert trio.run(run, cuts) == one_by_one
    assert trio.run(run, []) == one_by_one


# --- the in-process client in a cluster ---------------------------------------------------


async def test_a_call_sent_twice_through_a_cluster_is_applied_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    from openraft_trio.testing import open_cluster

    def factory() -> Any:
        return SessionStateMachine(KvStateMachine(), timeout=30.0)

    async with open_cluster(3, state_machine_factory=factory) as cluster:
        leader = cluster.nodes[await cluster.wait_for_leader()]
        session = await open_session(leader, clock=trio.current_time)
        call = session.call(Set("k", "v1"))
        # The first sending's reply is lost: the client sends the call again.
        lost = await leader.client_write(session.command(call.seq, call.command, 1.0))
        again = await call.send(leader)
        assert lost.data is None
        assert again.data is None
        assert again.log_id.index == lost.log_id.index + 1
        assert session.acked_seq == 1
        # A second write sees v1 as the previous value: the retry did not apply again.
        assert (await session.call(Set("k", "v2")).send(leader)).data == "v1"
        await session.close(leader)
        with pytest.raises(SessionExpired) as caught:
            await session.call(Set("k", "v3")).send(leader)
        assert caught.value.maybe_applied is False
        await cluster.wait_applied(again.log_id.index + 2)
        for node_id in cluster.node_ids:
            sm = cluster.state_machines[node_id]
            assert sm.inner.get("k") == "v2"
