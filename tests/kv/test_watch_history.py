"""The change history of KvStateMachine (kv/_watch.py): which entries are changes, the
bounded ring, reads by prefix and batch, and the compaction error at its start (after
eviction, a snapshot install, a restart)."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest

from openraft_trio import (
    Blank,
    ForwardToLeader,
    InvalidRequest,
    Membership,
    MembershipChange,
    Node,
)
from openraft_trio.codec import DecodeError
from openraft_trio.kv import (
    ChangeKind,
    CompareAndSwap,
    Delete,
    Get,
    Increment,
    KvStateMachine,
    Set,
    WatchCompacted,
    WatchEvent,
)
from openraft_trio.kv._watch import MAX_BATCH_BYTES, ChangeHistory, check_watch_arguments
from openraft_trio.network._server import error_reply
from openraft_trio.sessions import OpenSession, SessionCommand
from openraft_trio.storage import run_inline

from ._kv_log import Log, apply

pytestmark = pytest.mark.trio

PUT, DELETE = ChangeKind.PUT, ChangeKind.DELETE


def everything(sm: KvStateMachine, from_index: int = 0) -> list[WatchEvent]:
    """Every held change at ``from_index`` or later."""
    applied = sm.last_applied.index if sm.last_applied is not None else -1
    events, after = sm.history.read("", from_index, 1000, applied)
    assert after == applied + 1
    return events


async def test_every_change_and_only_changes_are_recorded_with_their_index() -> None:
    sm, log = KvStateMachine(), Log()
    membership = MembershipChange(Membership([{1}], {1: Node("127.0.0.1:7001")}))
    await apply(
        sm,
        log,
        membership,  # 1: no key changes
        Blank(),  # 2
        Set("a", 1),  # 3: put
        CompareAndSwap("a", 5, 6),  # 4: no swap, no change
        CompareAndSwap("a", 1, 2),  # 5: swapped: a put of the new value
        Get("a"),  # 6: a read changes nothing
        Delete("nope"),  # 7: deleting an absent key changes nothing
        Set("n", None),  # 8: None is a value
        Delete("n"),  # 9: ...so deleting it is a change
        Delete("a"),  # 10
        "garbage",  # 11: malformed, rejected
        Delete(5),  # type: ignore[arg-type]  # 12: malformed key, rejected
        CompareAndSwap("b", None, "x"),  # 13: absent == None: swapped
    )
    assert everything(sm) == [
        WatchEvent(3, "a", PUT, 1),
        WatchEvent(5, "a", PUT, 2),
        WatchEvent(8, "n", PUT, None),
        WatchEvent(9, "n", DELETE, None),
        WatchEvent(10, "a", DELETE, None),
        WatchEvent(13, "b", PUT, "x"),
    ]
    assert sm.rejected == 2
    assert sm.history.oldest_index(13) == 0


async def test_writes_in_client_sessions_are_changes_once() -> None:
    sm, log = KvStateMachine(session_timeout=10.0), Log()
    put = SessionCommand(1, 1, 0, 1.0, Set("a", 1))
    await apply(
        sm,
        log,
        OpenSession(0.0),  # 1
        put,  # 2: a put
        put,  # 3: its retry, answered from the session: no change
        SessionCommand(1, 2, 1, 1.0, Increment("a", 2)),  # 4: a put of the new value
        SessionCommand(1, 3, 2, 1.0, Increment("s")),  # 5: absent counts as 0
        Set("t", "text"),  # 6
        Increment("t"),  # 7: not an integer: no change
        SessionCommand(1, 4, 3, 1.0, Delete("a")),  # 8
        SessionCommand(1, 5, 4, 99.0, Set("late", 1)),  # 9: the session expired: refused
    )
    assert everything(sm) == [
        WatchEvent(2, "a", PUT, 1),
        WatchEvent(4, "a", PUT, 3),
        WatchEvent(5, "s", PUT, 1),
        WatchEvent(6, "t", PUT, "text"),
        WatchEvent(8, "a", DELETE, None),
    ]


async def test_reads_filter_by_prefix_and_say_where_to_read_next() -> None:
    sm, log = KvStateMachine(), Log()
    await apply(sm, log, Set("user:1", "a"), Set("job:1", "b"), Set("user:2", "c"), Blank())
    history = sm.history
    # Indexes 1..4 applied; the changes at 1 and 3 match.
    assert history.read("user:", 1, 10, 4) == (
        [WatchEvent(1, "user:1", PUT, "a"), WatchEvent(3, "user:2", PUT, "c")],
        5,
    )
    # A full batch: next is right after its last change, not after what was applied.
    assert history.read("user:", 1, 1, 4) == ([WatchEvent(1, "user:1", PUT, "a")], 2)
    assert history.read("user:", 2, 1, 4) == ([WatchEvent(3, "user:2", PUT, "c")], 4)
    # Nothing matches from 4 on: next is past what was applied, so the caller moves on.
    assert history.read("user:", 4, 10, 4) == ([], 5)
    assert history.read("none:", 1, 10, 4) == ([], 5)
    # Beyond what was applied: nothing yet, and next stays where it was asked.
    assert history.read("", 9, 10, 4) == ([], 9)


async def test_the_ring_keeps_the_last_changes_and_refuses_older_indexes() -> None:
    sm, log = KvStateMachine(watch_history=3), Log()
    await apply(sm, log, *(Set(f"k{i}", i) for i in range(1, 6)))  # indexes 1..5
    assert len(sm.history) == 3
    assert sm.history.oldest_index(5) == 3  # 1 and 2 were evicted
    assert [e.index for e in everything(sm, 3)] == [3, 4, 5]
    with pytest.raises(WatchCompacted) as info:
        sm.history.read("", 2, 10, 5)
    assert (info.value.from_index, info.value.oldest_index) == (2, 3)
    assert "before index 3" in str(info.value)
    assert info.value.reply_detail == [2, 3]
    # Entries that change nothing do not use the ring.
    await apply(sm, log, Blank(), Get("k1"), Delete("absent"))
    assert sm.history.oldest_index(8) == 3
    # Once full, the oldest change held is the bound, also when nothing was evicted yet
    # (later than necessary, never earlier: no gap).
    full, log = KvStateMachine(watch_history=2), Log()
    await apply(full, log, Blank(), Set("a", 1), Set("b", 2))
    assert full.history.oldest_index(3) == 2


async def test_a_history_of_size_zero_holds_nothing() -> None:
    sm, log = KvStateMachine(watch_history=0), Log()
    assert sm.history.read("", 0, 10, -1) == ([], 0)
    await apply(sm, log, Set("a", 1), Blank())
    assert len(sm.history) == 0
    with pytest.raises(WatchCompacted) as info:
        sm.history.read("", 2, 10, 2)
    assert info.value.oldest_index == 3  # only what comes after the last applied entry
    assert sm.history.read("", 3, 10, 2) == ([], 3)


@pytest.mark.parametrize(("size", "error"), [(-1, ValueError), ("3", TypeError), (True, TypeError)])
async def test_the_history_size_is_checked(size: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="watch history size"):
        KvStateMachine(watch_history=size)


async def test_a_batch_is_bounded_by_the_bytes_of_its_values() -> None:
    history = ChangeHistory()
    big = "x" * (MAX_BATCH_BYTES // 3)
    for index in range(1, 6):
        history.record((index, f"k{index}", PUT, big))
    events, after = history.read("", 1, 100, 5)
    assert [e.index for e in events] == [1, 2]
    assert after == 3
    # One change larger than the budget still goes, alone.
    history.record((6, "huge", PUT, [b"y" * MAX_BATCH_BYTES]))
    assert history.read("huge", 1, 100, 6) == (
        [WatchEvent(6, "huge", PUT, [b"y" * MAX_BATCH_BYTES])],
        7,
    )


async def test_installing_a_snapshot_starts_the_history_after_it() -> None:
    source, log = KvStateMachine(), Log()
    await apply(source, log, Set("a", 1), Set("b", 2), Set("c", 3))
    snapshot = await source.build_snapshot()
    target = KvStateMachine(run_io=run_inline)
    await apply(target, Log(), Set("early", 0))
    await target.install_snapshot(snapshot.meta, snapshot.data)
    assert target.history.oldest_index(3) == 4
    assert len(target.history) == 0
    with pytest.raises(WatchCompacted) as info:
        target.history.read("", 1, 10, 3)
    assert info.value.oldest_index == 4
    assert target.history.read("", 4, 10, 3) == ([], 4)


async def test_a_restarted_durable_machine_holds_changes_after_its_snapshot(
    tmp_path: Path,
) -> None:
    sm, log = KvStateMachine(tmp_path, run_io=run_inline), Log()
    await apply(sm, log, Set("a", 1), Set("b", 2))
    await sm.build_snapshot()
    await apply(sm, log, Set("c", 3))
    restarted = KvStateMachine(tmp_path, run_io=run_inline)
    assert restarted.history.oldest_index(2) == 3
    # The log replays index 3 after the snapshot: the history holds it again.
    await restarted.apply([log_entry_at(3, Set("c", 3))])
    assert everything(restarted, 3) == [WatchEvent(3, "c", PUT, 3)]


def log_entry_at(index: int, payload: Any) -> Any:
    log = Log()
    log.next_index = index
    return log.entry(payload)


async def test_watch_events_travel_as_lists() -> None:
    event = WatchEvent(7, "k", PUT, {"a": [1, b"x"]})
    assert event.to_wire() == [7, "k", "put", {"a": [1, b"x"]}]
    assert WatchEvent.from_wire(event.to_wire()) == event
    assert WatchEvent.from_wire([8, "k", "delete", None]) == WatchEvent(8, "k", DELETE)
    for bad in ([7, "k", "set", 1], [0, "k", "put", 1], [7, 1, "put", 1], [7, "k", "put"], "x"):
        with pytest.raises(DecodeError, match="not a watch event"):
            WatchEvent.from_wire(bad)


async def test_watch_compacted_pickles_with_its_indexes() -> None:
    copy = pickle.loads(pickle.dumps(WatchCompacted(2, 9)))
    assert (copy.from_index, copy.oldest_index, str(copy)) == (2, 9, str(WatchCompacted(2, 9)))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((5, None, 10, 1.0), "prefix is a str"),
        (("p" * 4097, None, 10, 1.0), "prefix is a str"),
        (("p", -1, 10, 1.0), "from_index must be None or a log index"),
        (("p", "3", 10, 1.0), "from_index must be None or a log index"),
        (("p", True, 10, 1.0), "from_index must be None or a log index"),
        (("p", 0, 0, 1.0), "max_events must be an int in 1..1000"),
        (("p", 0, 1001, 1.0), "max_events must be an int in 1..1000"),
        (("p", 0, 10, -1), "wait must be seconds in 0..60"),
        (("p", 0, 10, 61), "wait must be seconds in 0..60"),
        (("p", 0, 10, float("nan")), "wait must be seconds in 0..60"),
        (("p", 0, 10, False), "wait must be seconds in 0..60"),
    ],
)
async def test_bad_watch_arguments_are_invalid_requests(
    args: tuple[Any, ...], message: str
) -> None:
    with pytest.raises(InvalidRequest, match=message):
        check_watch_arguments(*args)


async def test_good_watch_arguments_pass() -> None:
    assert check_watch_arguments("", None, 1, 0) == ("", None, 1, 0.0)
    assert check_watch_arguments("p", 0, 1000, 60.0) == ("p", 0, 1000, 60.0)


async def test_the_error_reply_of_a_compacted_watch_carries_its_indexes() -> None:
    reply = error_reply(WatchCompacted(2, 9))
    assert (reply.error_type, reply.detail) == ("WatchCompacted", [2, 9])
    assert "before index 9" in reply.message
    # The other errors' details are as they were.
    assert error_reply(ForwardToLeader(3, Node("h:1"))).detail == [3, "h:1", False]
    assert error_reply(InvalidRequest("no")).detail is None
