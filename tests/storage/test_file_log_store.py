"""FileLogStore: group commit, segments, the read cache, recovery, the codec boundary.

Crash points, torn writes and bit flips are in ``test_file_log_store_crash.py``; the
conformance suite runs in ``test_storage_suite.py``. These tests use ``CrashFS`` with
``run_inline`` (deterministic, no threads) unless they need the real disk.
"""

from __future__ import annotations

import os

import pytest
import trio
import trio.testing

from openraft_trio import (
    Blank,
    Config,
    Entry,
    InvalidRequest,
    LeaderId,
    LogId,
    Membership,
    MembershipChange,
    Node,
    Normal,
    StorageError,
    Vote,
)
from openraft_trio.storage import FileLogStore, open_file_log_store, run_inline
from openraft_trio.storage import _file_format as fmt
from openraft_trio.storage._fs import write_file_atomic
from openraft_trio.testing.crashfs import CrashFS

D = "/store"


def lid(index: int, term: int = 1) -> LogId:
    return LogId(LeaderId(term, 1), index)


def entry(index: int, term: int = 1) -> Entry:
    kinds = [
        Normal({"i": index, "b": b"x" * (index % 7)}),
        Blank(),
        MembershipChange(Membership([{1, 2}], {1: Node("a"), 2: Node("b", {"z": "1"})})),
    ]
    return Entry(lid(index, term), kinds[index % 3] if index % 5 else Normal(f"s{index}"))


def store_on(fs: CrashFS, **kw: int) -> object:
    return open_file_log_store(D, fs=fs, run_io=run_inline, **kw)


async def test_one_fsync_serves_every_append_queued_before_it() -> None:
    fs = CrashFS()
    fired: list[int] = []
    async with open_file_log_store(D, fs=fs, run_io=run_inline) as store:
        for i in range(10):
            await store.append([entry(i)], lambda err, i=i: fired.append(i) if err is None else None)
        # append never waits for the disk: entries are readable, nothing is durable yet.
        assert fired == []
        assert [e.index for e in await store.try_get_log_entries(0, 10)] == list(range(10))
        assert store.flushed_log_id is None
        fsyncs_before = sum(op.name == "fsync" for op in fs.op_log)
        await trio.testing.wait_all_tasks_blocked()
        assert fired == list(range(10))
        # One segment header fsync + one fsync for the ten appends.
        data_fsyncs = sum(op.name == "fsync" for op in fs.op_log) - fsyncs_before
        assert data_fsyncs == 2
        assert store.flushed_log_id == lid(9)


async def test_callback_fires_only_after_the_fsync() -> None:
    fs = CrashFS()
    seen: list[tuple[int, bytes]] = []
    async with open_file_log_store(D, fs=fs, run_io=run_inline) as store:
        path = os.path.join(D, fmt.segment_name(0))

        def callback(err: BaseException | None) -> None:
            # What a crash right now would keep: the entry must already be there.
            seen.append((fs.op_count, fs.durable_files()[path]))

        await store.append([entry(0)], callback)
        await trio.testing.wait_all_tasks_blocked()
    assert len(seen) == 1
    durable = seen[0][1]
    assert len(durable) > fmt.SEGMENT_HEADER.size
    assert fs.op_log[seen[0][0] - 1].name == "fsync"


async def test_entries_roll_over_into_segments_and_read_back_from_disk() -> None:
    fs = CrashFS()
    async with open_file_log_store(
        D, fs=fs, run_io=run_inline, segment_size=300, cache_entries=2
    ) as store:
        entries = [entry(i) for i in range(40)]
        for i in range(0, 40, 3):
            await store.append(entries[i : i + 3], lambda err: None)
        await trio.testing.wait_all_tasks_blocked()
        segments = [n for n in fs.listdir(D) if n.endswith(".log")]
        assert len(segments) > 3
        # Reads that cross segment boundaries and the cache boundary.
        assert await store.try_get_log_entries(0, 40) == entries
        assert await store.try_get_log_entries(5, 23) == entries[5:23]
        assert await store.try_get_log_entries(38, 100) == entries[38:]
    async with open_file_log_store(D, fs=fs, run_io=run_inline, segment_size=300) as store:
        assert await store.try_get_log_entries(0, 40) == entries


async def test_truncate_across_segments_is_durable_and_appends_continue() -> None:
    fs = CrashFS()
    async with open_file_log_store(D, fs=fs, run_io=run_inline, segment_size=300) as store:
        await store.append([entry(i) for i in range(30)], lambda err: None)
        await store.truncate_after(lid(7))
        assert (await store.get_log_state()).last_log_id == lid(7)
        await store.append([entry(i, term=2) for i in range(8, 12)], lambda err: None)
        await trio.testing.wait_all_tasks_blocked()
    after = fs.crash()
    async with open_file_log_store(D, fs=after, run_io=run_inline, segment_size=300) as store:
        got = await store.try_get_log_entries(0, 100)
        assert [e.log_id for e in got] == [lid(i) for i in range(8)] + [
            lid(i, 2) for i in range(8, 12)
        ]


async def test_truncate_everything_then_start_over() -> None:
    fs = CrashFS()
    async with open_file_log_store(D, fs=fs, run_io=run_inline) as store:
        await store.append([entry(i) for i in range(5)], lambda err: None)
        await store.truncate_after(None)
        assert (await store.get_log_state()).last_log_id is None
        await store.append([entry(0, term=3)], lambda err: None)
    async with open_file_log_store(D, fs=fs, run_io=run_inline) as store:
        assert [e.log_id for e in await store.try_get_log_entries(0, 9)] == [lid(0, 3)]


async def test_purge_drops_whole_segments_and_records_the_purge_point() -> None:
    fs = CrashFS()
    async with open_file_log_store(D, fs=fs, run_io=run_inline, segment_size=300) as store:
        await store.append([entry(i) for i in range(40)], lambda err: None)
        await trio.testing.wait_all_tasks_blocked()
        before = [n for n in fs.listdir(D) if n.endswith(".log")]
        await store.purge(lid(20))
        after = [n for n in fs.listdir(D) if n.endswith(".log")]
        assert len(after) < len(before)
        assert all(fmt.parse_segment_name(n) is not None for n in after)
        # The first kept segment still holds entries <= 20: they are hidden, not read.
        assert [e.index for e in await store.try_get_log_entries(0, 25)] == [21, 22, 23, 24]
    async with open_file_log_store(D, fs=fs.crash(), run_io=run_inline) as store:
        state = await store.get_log_state()
        assert state.last_purged_log_id == lid(20)
        assert state.last_log_id == lid(39)
        assert (await store.try_get_log_entries(0, 100))[0].index == 21


async def test_purge_past_the_end_leaves_an_empty_log_that_continues_after_it() -> None:
    fs = CrashFS()
    async with open_file_log_store(D, fs=fs, run_io=run_inline) as store:
        await store.append([entry(i) for i in range(5)], lambda err: None)
        await store.purge(lid(9, 2))
        assert fs.listdir(D) == ["LOCK", "meta"]
        await store.append([entry(10, term=2)], lambda err: None)
    async with open_file_log_store(D, fs=fs.crash(), run_io=run_inline) as store:
        state = await store.get_log_state()
        assert state.last_purged_log_id == lid(9, 2)
        assert state.last_log_id == lid(10, 2)


async def test_an_interrupted_purge_is_finished_on_open() -> None:
    # purge() writes meta (the purge point) before it unlinks segments: a crash in between
    # leaves wholly-purged segments behind, which the next open removes.
    fs = CrashFS()
    async with open_file_log_store(D, fs=fs, run_io=run_inline, segment_size=300) as store:
        await store.append([entry(i) for i in range(40)], lambda err: None)
    segments = [n for n in fs.listdir(D) if n.endswith(".log")]
    write_file_atomic(fs, D, fmt.META_NAME, fmt.encode_meta(None, lid(20), None))
    async with open_file_log_store(D, fs=fs.crash(), run_io=run_inline) as store:
        state = await store.get_log_state()
        assert (state.last_purged_log_id, state.last_log_id) == (lid(20), lid(39))
        assert [e.index for e in await store.try_get_log_entries(0, 23)] == [21, 22]
    kept = [n for n in fs.listdir(D) if n.endswith(".log")]
    assert kept == segments  # the original fs is untouched; check the reopened one instead


async def test_vote_and_committed_survive_reopen() -> None:
    fs = CrashFS()
    vote = Vote(LeaderId(4, 2), committed=True)
    async with open_file_log_store(D, fs=fs, run_io=run_inline) as store:
        await store.append([entry(i) for i in range(6)], lambda err: None)
        await store.save_vote(vote)  # durable on return (fsyncs the appends first)
        await store.save_committed(lid(4))
        await store.append([entry(6)], lambda err: None)
        await trio.testing.wait_all_tasks_blocked()
    async with open_file_log_store(D, fs=fs.crash(), run_io=run_inline) as store:
        assert await store.read_vote() == vote
        assert await store.read_committed() == lid(4)
        assert (await store.get_log_state()).last_log_id == lid(6)


async def test_a_vote_is_durable_when_save_vote_returns() -> None:
    fs = CrashFS()
    async with open_file_log_store(D, fs=fs, run_io=run_inline) as store:
        await store.append([entry(0)], lambda err: None)
        await store.save_vote(Vote(LeaderId(2, 3)))
        crashed = fs.crash()  # power loss right after save_vote returned
    async with open_file_log_store(D, fs=crashed, run_io=run_inline) as store:
        assert await store.read_vote() == Vote(LeaderId(2, 3))
        # I/O ordering: the append queued before the vote is durable too.
        assert (await store.get_log_state()).last_log_id == lid(0)


async def test_holes_and_overlaps_are_refused_and_change_nothing() -> None:
    fs = CrashFS()
    calls: list[object] = []
    async with open_file_log_store(D, fs=fs, run_io=run_inline) as store:
        await store.append([entry(0), entry(1)], calls.append)
        with pytest.raises(ValueError, match="holes"):
            await store.append([entry(3)], calls.append)
        with pytest.raises(ValueError, match="holes"):
            await store.append([entry(1)], calls.append)
        with pytest.raises(ValueError, match="contiguous"):
            await store.append([entry(2), entry(4)], calls.append)
        await trio.testing.wait_all_tasks_blocked()
        assert calls == [None]
        assert (await store.get_log_state()).last_log_id == lid(1)
        await store.purge(lid(1))
        with pytest.raises(ValueError, match="purged"):
            await store.truncate_after(lid(0))


async def test_a_second_store_on_the_same_directory_is_refused(tmp_path: object) -> None:
    directory = os.fspath(tmp_path)  # type: ignore[call-overload]
    async with open_file_log_store(directory):
        with pytest.raises(StorageError, match="in use"):
            async with open_file_log_store(directory):
                pass  # pragma: no cover
    async with open_file_log_store(directory) as store:
        assert (await store.get_log_state()).last_log_id is None


async def test_real_disk_round_trip(tmp_path: object) -> None:
    directory = os.fspath(tmp_path)  # type: ignore[call-overload]
    done = trio.Event()
    async with open_file_log_store(directory, segment_size=4096) as store:
        await store.append([entry(i) for i in range(100)], lambda err: done.set())
        await done.wait()
        await store.save_vote(Vote(LeaderId(1, 1), committed=True))
    async with open_file_log_store(directory, cache_entries=0) as store:
        assert await store.try_get_log_entries(0, 100) == [entry(i) for i in range(100)]
        assert await store.read_vote() == Vote(LeaderId(1, 1), committed=True)


async def test_an_io_error_stops_the_store_for_good() -> None:
    import errno

    fs = CrashFS()
    results: list[BaseException | None] = []
    async with open_file_log_store(D, fs=fs, run_io=run_inline) as store:
        await store.append([entry(0)], results.append)
        await trio.testing.wait_all_tasks_blocked()
        fs.fail_next("fsync", errno.EIO)
        await store.append([entry(1)], results.append)
        await trio.testing.wait_all_tasks_blocked()
        assert results[0] is None
        assert isinstance(results[1], StorageError)
        assert store.failed is results[1]
        with pytest.raises(StorageError, match="I/O failed"):
            await store.append([entry(2)], results.append)
        with pytest.raises(StorageError):
            await store.save_vote(Vote(LeaderId(1, 1)))
    assert len(results) == 2


async def test_undecodable_application_data_is_refused_before_it_is_logged(
    tmp_path: object, autojump_clock: object
) -> None:
    from openraft_trio import open_raft
    from openraft_trio.kv import KvStateMachine, Set
    from openraft_trio.testing import Router

    class NotRegistered:
        pass

    router = Router(0)
    async with open_raft(
        1,
        Config(cluster_name="t"),
        network=router.factory(1),
        state_machine=KvStateMachine(),
        data_dir=os.fspath(tmp_path),  # type: ignore[call-overload]
    ) as node:
        router.add(1, node)
        await node.initialize({1: Node("n1")})
        await node.wait(5).state(node.metrics.state.LEADER)
        with pytest.raises(InvalidRequest, match="register_data_type"):
            await node.client_write(NotRegistered())
        with pytest.raises(InvalidRequest):
            await node.client_write_many([Set("a", 1), NotRegistered()])
        # The node keeps serving.
        reply = await node.client_write(Set("a", 2))
        assert reply.data is None
        assert node.fatal_error is None


def test_format_rejects_what_it_did_not_write() -> None:
    header = fmt.encode_segment_header(7)
    assert fmt.decode_segment_header(header) == 7
    with pytest.raises(fmt.FormatError, match="magic"):
        fmt.decode_segment_header(b"X" + header[1:])
    with pytest.raises(fmt.FormatError, match="checksum"):
        fmt.decode_segment_header(header[:12] + b"\x09" + header[13:])
    record = fmt.encode_entry(entry(3))
    parsed = fmt.RecordHeader(record, 0)
    parsed.check_payload(record[fmt.RECORD_HEADER.size :])
    assert fmt.decode_entry_payload(parsed, record[fmt.RECORD_HEADER.size :]) == entry(3)
    flipped = record[:-1] + bytes([record[-1] ^ 1])
    with pytest.raises(fmt.FormatError, match="checksum"):
        fmt.RecordHeader(flipped, 0).check_payload(flipped[fmt.RECORD_HEADER.size :])
    with pytest.raises(fmt.FormatError, match="header checksum"):
        fmt.RecordHeader(bytes([record[0] ^ 4]) + record[1:], 0)
    assert fmt.decode_meta(fmt.encode_meta(None, lid(3), None)) == (None, lid(3), None)
    with pytest.raises(fmt.FormatError):
        fmt.decode_meta(b"ORTMETA1\0\0\0\0garbage")


def test_file_log_store_is_a_raft_log_storage() -> None:
    from openraft_trio.storage import RaftLogStorage

    assert issubclass(FileLogStore, RaftLogStorage)


async def test_commit_records_between_entries_keep_entry_offsets_right() -> None:
    # Regression (found by the conformance suite's random history): a COMMITTED record
    # queued between two appends was not counted in the segment's size, so the offsets of
    # the entries after it pointed 37 bytes early and reads from disk failed.
    fs = CrashFS()
    async with open_file_log_store(D, fs=fs, run_io=run_inline, cache_entries=0) as store:
        await store.append([entry(0), entry(1)], lambda err: None)
        await store.save_committed(lid(1))
        await store.append([entry(2), entry(3)], lambda err: None)
        await trio.testing.wait_all_tasks_blocked()
        assert await store.try_get_log_entries(0, 4) == [entry(i) for i in range(4)]
        await store.save_committed(lid(3))
        await store.truncate_after(lid(2))
        await store.append([entry(3, term=2)], lambda err: None)
        await trio.testing.wait_all_tasks_blocked()
        assert await store.try_get_log_entries(2, 4) == [entry(2), entry(3, term=2)]
    async with open_file_log_store(D, fs=fs.crash(), run_io=run_inline) as store:
        assert await store.try_get_log_entries(0, 4) == [entry(0), entry(1), entry(2), entry(3, 2)]
        # The commit record for index 3 was cut with the truncated entry; 1 survives.
        assert await store.read_committed() == lid(1)


async def test_a_commit_record_waits_for_the_next_batch() -> None:
    # A COMMITTED record alone would cost a batch (a thread round trip) and delay the
    # append queued behind it; it rides with the next append instead, or the close.
    fs = CrashFS()
    async with open_file_log_store(D, fs=fs, run_io=run_inline) as store:
        await store.append([entry(0), entry(1)], lambda err: None)
        await trio.testing.wait_all_tasks_blocked()
        ops = fs.op_count
        batches = store.batch_count
        await store.save_committed(lid(1))
        await trio.testing.wait_all_tasks_blocked()
        assert (fs.op_count, store.batch_count) == (ops, batches)
        await store.append([entry(2)], lambda err: None)
        await trio.testing.wait_all_tasks_blocked()
        assert store.batch_count == batches + 1
        assert [op.name for op in fs.op_log[ops:]] == ["write", "fsync"]
        await store.save_committed(lid(2))
    # Closing writes what is still queued.
    async with open_file_log_store(D, fs=fs.crash(), run_io=run_inline) as store:
        assert await store.read_committed() == lid(2)


def test_a_payload_is_encoded_once_and_keeps_its_encoding() -> None:
    from openraft_trio import codec
    from openraft_trio.kv import Set

    payload = Normal(Set("k", 1))
    assert payload.encoded is payload.encoded  # one encoding, kept
    assert payload.encoded == codec.encoded_data(Set("k", 1))
    mutable = {"a": 1}
    first = codec.encoded_data(mutable)
    mutable["a"] = 2  # encoded_data itself keeps nothing
    assert codec.encoded_data(mutable) != first
    assert codec.decode_payload(codec.encoded_data(mutable)) == {"a": 2}


async def test_the_store_writes_a_payloads_encoding_and_reads_it_back_undecoded() -> None:
    from openraft_trio.kv import Set

    fs = CrashFS()
    payload = Normal(Set("k", "v"))
    async with open_file_log_store(D, fs=fs, run_io=run_inline) as store:
        await store.append([Entry(lid(0), payload)], lambda err: None)
    async with open_file_log_store(D, fs=fs.crash(), run_io=run_inline) as store:
        [read] = await store.try_get_log_entries(0, 1)
    assert isinstance(read.payload, Normal)
    assert not read.payload.is_decoded
    assert read.payload.encoded == payload.encoded
    assert read == Entry(lid(0), payload)
    assert read.payload.data == Set("k", "v")


async def test_a_second_process_on_the_same_directory_is_refused(tmp_path: object) -> None:
    import subprocess
    import sys

    directory = os.fspath(tmp_path)  # type: ignore[call-overload]
    code = (
        "import sys, trio\n"
        "from openraft_trio import StorageError\n"
        "from openraft_trio.storage import open_file_log_store\n"
        "async def main():\n"
        "    try:\n"
        "        async with open_file_log_store(sys.argv[1]):\n"
        "            print('opened')\n"
        "    except StorageError as exc:\n"
        "        print('refused:', exc)\n"
        "trio.run(main)\n"
    )

    def other_process() -> str:
        done = subprocess.run(
            [sys.executable, "-c", code, directory],
            capture_output=True, text=True, timeout=60, check=True,
        )
        return done.stdout

    async with open_file_log_store(directory):
        out = await trio.to_thread.run_sync(other_process)
        assert out.startswith("refused:"), out
        assert "in use" in out
    assert (await trio.to_thread.run_sync(other_process)).startswith("opened")


async def test_a_cancel_scope_around_the_store_does_not_hang_its_close() -> None:
    # The block is left with the scope cancelled and the flusher not yet told: the closing
    # drain queues its call, then the flusher stops on the cancellation. It must fail that
    # call (the drain then ends) rather than leave it waiting, shielded, forever.
    fs = CrashFS()
    with trio.CancelScope() as scope:
        async with open_file_log_store(D, fs=fs, run_io=run_inline) as store:
            await store.save_vote(Vote(LeaderId(1, 1)))
            await trio.testing.wait_all_tasks_blocked()
            scope.cancel()
    async with open_file_log_store(D, fs=fs, run_io=run_inline) as store:
        assert await store.read_vote() == Vote(LeaderId(1, 1))
