"""MemLogStore: log operations, log state after each, and the flush/crash durability model."""

from __future__ import annotations

import pytest

from openraft_trio._types import Blank, Entry, LeaderId, LogId, LogState, Normal, Vote
from openraft_trio.storage import IOCallback, MemLogStore, RaftLogStorage

pytestmark = pytest.mark.trio


def log_id(term: int, index: int, node_id: int = 1) -> LogId:
    return LogId(LeaderId(term, node_id), index)


def entries(start: int, stop: int, term: int = 1) -> list[Entry]:
    return [Entry(log_id(term, i), Normal(i)) for i in range(start, stop)]


class Recorder:
    """Collects callback results; ``cb(tag)`` makes an IOCallback that records ``(tag, err)``."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, BaseException | None]] = []

    def cb(self, tag: str) -> IOCallback:
        def callback(err: BaseException | None) -> None:
            self.calls.append((tag, err))

        return callback


async def filled(n: int) -> MemLogStore:
    store = MemLogStore()
    await store.append(entries(0, n), Recorder().cb("fill"))
    return store


async def indexes(store: MemLogStore, start: int = 0, stop: int = 10**9) -> list[int]:
    return [e.index for e in await store.try_get_log_entries(start, stop)]


async def test_is_a_raft_log_storage() -> None:
    assert isinstance(MemLogStore(), RaftLogStorage)


async def test_rejects_unknown_flush_mode() -> None:
    with pytest.raises(ValueError, match="flush_mode"):
        MemLogStore("sometimes")  # type: ignore[arg-type]


async def test_empty_store_state() -> None:
    store = MemLogStore()
    assert await store.get_log_state() == LogState(None, None)
    assert await store.read_vote() is None
    assert await store.read_committed() is None
    assert await store.try_get_log_entries(0, 10) == []


async def test_append_then_read_half_open_ranges() -> None:
    store = await filled(10)
    all_entries = entries(0, 10)
    assert await store.try_get_log_entries(0, 10) == all_entries
    assert await store.try_get_log_entries(3, 7) == all_entries[3:7]
    assert await store.try_get_log_entries(3, 4) == [all_entries[3]]
    assert await store.try_get_log_entries(3, 3) == []
    assert await store.try_get_log_entries(7, 3) == []
    # Clipped to what exists.
    assert await indexes(store, 8, 100) == [8, 9]
    assert await indexes(store, -5, 2) == [0, 1]
    assert await store.try_get_log_entries(10, 20) == []
    assert await store.get_log_state() == LogState(None, log_id(1, 9))


async def test_returned_entries_are_a_copy() -> None:
    store = await filled(3)
    got = await store.try_get_log_entries(0, 3)
    got.clear()
    assert await indexes(store) == [0, 1, 2]


async def test_append_in_batches_and_entries_of_several_terms() -> None:
    store = MemLogStore()
    rec = Recorder()
    await store.append([Entry(log_id(1, 0), Blank())], rec.cb("a"))
    await store.append(entries(1, 4, term=2), rec.cb("b"))
    await store.append([], rec.cb("empty"))
    assert await indexes(store) == [0, 1, 2, 3]
    assert await store.get_log_state() == LogState(None, log_id(2, 3))
    assert rec.calls == [("a", None), ("b", None), ("empty", None)]


@pytest.mark.parametrize("first", [0, 4, 6, 100])
async def test_append_that_would_leave_a_hole_or_overlap_is_refused(first: int) -> None:
    store = await filled(5)
    rec = Recorder()
    with pytest.raises(ValueError, match="must start at index 5"):
        await store.append(entries(first, first + 2), rec.cb("bad"))
    assert rec.calls == []
    assert await indexes(store) == [0, 1, 2, 3, 4]


async def test_first_append_must_start_at_zero() -> None:
    store = MemLogStore()
    with pytest.raises(ValueError, match="must start at index 0"):
        await store.append(entries(1, 2), Recorder().cb("x"))


async def test_append_of_non_contiguous_batch_is_refused() -> None:
    store = await filled(2)
    batch = [Entry(log_id(1, 2), Blank()), Entry(log_id(1, 4), Blank())]
    with pytest.raises(ValueError, match="not contiguous"):
        await store.append(batch, Recorder().cb("x"))
    assert await indexes(store) == [0, 1]


@pytest.mark.parametrize("after", [None, 0, 1, 2, 3, 4, 5, 8])
async def test_truncate_after_each_position(after: int | None) -> None:
    store = await filled(5)
    await store.truncate_after(None if after is None else log_id(1, after))
    keep = 0 if after is None else min(after + 1, 5)
    assert await indexes(store) == list(range(keep))
    expected_last = log_id(1, keep - 1) if keep else None
    assert await store.get_log_state() == LogState(None, expected_last)
    # The next append continues right after the truncation point.
    await store.append(entries(keep, keep + 1, term=2), Recorder().cb("next"))
    assert await store.get_log_state() == LogState(None, log_id(2, keep))


async def test_purge_then_reads_and_log_state() -> None:
    store = await filled(10)
    await store.purge(log_id(1, 3))
    assert await indexes(store) == [4, 5, 6, 7, 8, 9]
    assert await indexes(store, 0, 6) == [4, 5]
    assert await store.get_log_state() == LogState(log_id(1, 3), log_id(1, 9))
    # Purging at or before the last purged log id changes nothing.
    await store.purge(log_id(1, 2))
    await store.purge(log_id(1, 3))
    assert await store.get_log_state() == LogState(log_id(1, 3), log_id(1, 9))
    assert await indexes(store) == [4, 5, 6, 7, 8, 9]
    # Purging everything leaves an empty log whose last log id is the purged one.
    await store.purge(log_id(1, 9))
    assert await indexes(store) == []
    assert await store.get_log_state() == LogState(log_id(1, 9), log_id(1, 9))
    await store.append(entries(10, 12), Recorder().cb("after"))
    assert await indexes(store) == [10, 11]
    assert await store.get_log_state() == LogState(log_id(1, 9), log_id(1, 11))


async def test_purge_beyond_last_log() -> None:
    store = await filled(3)
    await store.purge(log_id(2, 7))
    assert await indexes(store) == []
    assert await store.get_log_state() == LogState(log_id(2, 7), log_id(2, 7))
    with pytest.raises(ValueError, match="must start at index 8"):
        await store.append(entries(3, 4), Recorder().cb("x"))
    await store.append(entries(8, 9, term=2), Recorder().cb("ok"))
    assert await store.get_log_state() == LogState(log_id(2, 7), log_id(2, 8))


async def test_purge_empty_store() -> None:
    store = MemLogStore()
    await store.purge(log_id(1, 4))
    assert await store.get_log_state() == LogState(log_id(1, 4), log_id(1, 4))
    await store.append(entries(5, 6), Recorder().cb("ok"))
    assert await indexes(store) == [5]


async def test_truncate_after_purge() -> None:
    store = await filled(10)
    await store.purge(log_id(1, 4))
    await store.truncate_after(log_id(1, 6))
    assert await indexes(store) == [5, 6]
    # Truncating exactly at the purge point empties the log.
    await store.truncate_after(log_id(1, 4))
    assert await indexes(store) == []
    assert await store.get_log_state() == LogState(log_id(1, 4), log_id(1, 4))
    # Purged entries are committed: they cannot be truncated.
    with pytest.raises(ValueError, match="purged"):
        await store.truncate_after(log_id(1, 3))
    with pytest.raises(ValueError, match="purged"):
        await store.truncate_after(None)


async def test_vote_and_committed_round_trip() -> None:
    store = MemLogStore()
    vote = Vote(LeaderId(3, 2), committed=True)
    await store.save_vote(vote)
    assert await store.read_vote() == vote
    await store.save_committed(log_id(1, 5))
    assert await store.read_committed() == log_id(1, 5)
    await store.save_committed(None)
    assert await store.read_committed() is None


async def test_large_log() -> None:
    store = MemLogStore()
    rec = Recorder()
    for start in range(0, 120_000, 1000):
        await store.append(entries(start, start + 1000), rec.cb("x"))
    await store.purge(log_id(1, 49_999))
    assert await indexes(store, 99_998, 100_002) == [99_998, 99_999, 100_000, 100_001]
    assert await store.get_log_state() == LogState(log_id(1, 49_999), log_id(1, 119_999))
    assert len(rec.calls) == 120


# -- durability model -------------------------------------------------------------------


async def test_immediate_mode_calls_back_once_before_append_returns() -> None:
    store = MemLogStore()
    rec = Recorder()
    await store.append(entries(0, 2), rec.cb("a"))
    assert rec.calls == [("a", None)]
    assert store.flushed_log_id == log_id(1, 1)
    store.flush()
    store.crash()
    assert rec.calls == [("a", None)]
    assert await indexes(store) == [0, 1]


async def test_manual_mode_calls_back_only_on_flush_in_order() -> None:
    store = MemLogStore("manual")
    rec = Recorder()
    await store.append(entries(0, 2), rec.cb("a"))
    await store.append(entries(2, 3), rec.cb("b"))
    # Readable at once, durable later.
    assert await indexes(store) == [0, 1, 2]
    assert await store.get_log_state() == LogState(None, log_id(1, 2))
    assert rec.calls == []
    assert store.pending_flush_count == 2
    nothing_flushed = store.flushed_log_id
    assert nothing_flushed is None
    store.flush()
    assert rec.calls == [("a", None), ("b", None)]
    assert store.pending_flush_count == 0
    assert store.flushed_log_id == log_id(1, 2)
    store.flush()
    assert rec.calls == [("a", None), ("b", None)]


async def test_crash_drops_unflushed_entries_and_their_callbacks() -> None:
    store = MemLogStore("manual")
    rec = Recorder()
    await store.append(entries(0, 2), rec.cb("a"))
    store.flush()
    await store.append(entries(2, 5), rec.cb("b"))
    await store.append(entries(5, 6), rec.cb("c"))
    store.crash()
    assert await indexes(store) == [0, 1]
    assert await store.get_log_state() == LogState(None, log_id(1, 1))
    assert store.pending_flush_count == 0
    store.flush()
    assert rec.calls == [("a", None)]
    # The log continues from the durable boundary.
    await store.append(entries(2, 3, term=2), rec.cb("d"))
    store.flush()
    assert rec.calls == [("a", None), ("d", None)]
    assert await store.get_log_state() == LogState(None, log_id(2, 2))


async def test_save_vote_in_manual_mode_flushes_earlier_appends_first() -> None:
    store = MemLogStore("manual")
    order: list[str] = []

    def on_flushed(err: BaseException | None) -> None:
        assert err is None
        order.append("append flushed")

    await store.append(entries(0, 3), on_flushed)
    await store.save_vote(Vote(LeaderId(2, 1)))
    order.append("vote saved")
    assert order == ["append flushed", "vote saved"]
    store.crash()
    assert await indexes(store) == [0, 1, 2]
    assert await store.read_vote() == Vote(LeaderId(2, 1))


@pytest.mark.parametrize("op", ["save_committed", "truncate_after", "purge"])
async def test_other_durable_writes_in_manual_mode_flush_earlier_appends(op: str) -> None:
    store = MemLogStore("manual")
    rec = Recorder()
    await store.append(entries(0, 4), rec.cb("a"))
    if op == "save_committed":
        await store.save_committed(log_id(1, 1))
    elif op == "truncate_after":
        await store.truncate_after(log_id(1, 2))
    else:
        await store.purge(log_id(1, 0))
    assert rec.calls == [("a", None)]
    before = await store.get_log_state()
    store.crash()
    assert await store.get_log_state() == before


async def test_crash_after_truncate_and_reappend() -> None:
    store = MemLogStore("manual")
    rec = Recorder()
    await store.append(entries(0, 5), rec.cb("a"))
    await store.truncate_after(log_id(1, 2))  # flushes "a", then truncates
    await store.append(entries(3, 6, term=2), rec.cb("b"))
    store.crash()
    assert [e.log_id for e in await store.try_get_log_entries(0, 10)] == [
        log_id(1, 0),
        log_id(1, 1),
        log_id(1, 2),
    ]
    assert rec.calls == [("a", None)]


async def test_entries_snapshot_helper() -> None:
    store = await filled(5)
    assert [e.index for e in store.entries_snapshot()] == [0, 1, 2, 3, 4]
    assert [e.index for e in store.entries_snapshot(2, 4)] == [2, 3]
    assert store.log_state() == await store.get_log_state()
