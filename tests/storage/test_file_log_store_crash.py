"""Crash testing of FileLogStore on CrashFS.

* A deterministic workload (appends with group commit and segment rollover, votes, commits,
  truncations, purges) is stopped at EVERY file-system operation; the post-crash disk is
  built in several ways (unsynced data dropped, the last write torn at every byte offset,
  all unsynced data kept, the volatile namespace kept, random survival) and the store is
  reopened on each. It must open, hold a contiguous prefix of some version of the log that
  contains every acknowledged entry not removed by a returned truncation or purge, the
  last durable vote, a purge point at least the last returned one, and keep working.
* Corruption (flipped bits, a missing segment) must be reported as ``StorageError`` naming
  the file and offset; a zero-filled or short tail is cut silently.
* Fail-stop on injected I/O errors, in the store and in a whole node.
* The directory lock.

Scheduling: everything runs with ``run_io=run_inline`` on one Trio thread, and Trio's
scheduler is made deterministic (seeded) for the crash loop, so the run stopped at operation
``k`` performs exactly the first ``k`` operations of the uncrashed run (checked).
"""

from __future__ import annotations

import errno
import hashlib
import random
import struct
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

import pytest
import trio
import trio.testing

import openraft_trio as raft
from openraft_trio import (
    Blank,
    Entry,
    LeaderId,
    LogId,
    LogState,
    Membership,
    MembershipChange,
    Node,
    Normal,
    StorageError,
    Vote,
)
from openraft_trio._types import next_index
from openraft_trio.kv import Set
from openraft_trio.storage import FileLogStore, OsFileSystem, open_file_log_store, run_inline
from openraft_trio.storage import _file_format as fmt
from openraft_trio.testing import open_cluster
from openraft_trio.testing.crashfs import CrashFS, SimulatedCrash
from openraft_trio.testing.deterministic import deterministic_scheduling

DIR = "/data/log"
SEGMENT_SIZE = 400
CACHE_ENTRIES = 4
SEGMENT_HEADER = fmt.SEGMENT_HEADER.size  # 24
RECORD_HEADER = fmt.RECORD_HEADER.size  # 37


def lid(term: int, index: int) -> LogId:
    return LogId(LeaderId(term, 1), index)


def open_store(fs: CrashFS, directory: str = DIR) -> AbstractAsyncContextManager[FileLogStore]:
    return open_file_log_store(
        directory,
        fs=fs,
        segment_size=SEGMENT_SIZE,
        cache_entries=CACHE_ENTRIES,
        run_io=run_inline,
    )


@pytest.fixture
def deterministic_trio() -> Iterator[Callable[[int], None]]:
    """Make Trio's scheduler order runnable tasks by a seeded RNG, as the simulator does.
    Returns ``reseed(seed)``, to call before every ``trio.run`` that must repeat an earlier
    one exactly."""
    with deterministic_scheduling() as reseed:
        yield reseed


# --- the model --------------------------------------------------------------------------------


@dataclass
class Model:
    """What the workload did, as far as it knows at the moment of the crash."""

    #: The log as the workload issued it (index -> entry; purged indexes removed).
    log: dict[int, Entry] = field(default_factory=dict)
    #: Every version of ``log`` (after each append call, truncation and purge).
    versions: list[dict[int, Entry]] = field(default_factory=lambda: [{}])
    #: The recovered log must be a prefix of one of ``versions[stable_from:]``: the version
    #: made by the last truncation or purge that RETURNED, or any later one.
    stable_from: int = 0
    #: Entries whose append callback fired with None.
    acked: set[LogId] = field(default_factory=set)
    #: Callbacks that fired with an error.
    errors: list[BaseException] = field(default_factory=list)
    vote_returned: Vote | None = None
    purge_returned: LogId | None = None
    committed_saved: set[LogId] = field(default_factory=set)
    #: The awaited call the crash interrupted: ("vote", Vote), ("truncate", keep_next,
    #: log before it) or ("purge", LogId, log before it).
    in_flight: tuple[Any, ...] | None = None
    purged: LogId | None = None
    last: LogId | None = None

    def snapshot(self) -> int:
        self.versions.append(dict(self.log))
        return len(self.versions) - 1

    def callback(self, entries: list[Entry]) -> Callable[[BaseException | None], None]:
        ids = [e.log_id for e in entries]

        def done(err: BaseException | None) -> None:
            if err is None:
                self.acked.update(ids)
            else:
                self.errors.append(err)

        return done


def make_payload(rng: random.Random, index: int) -> Blank | Normal | MembershipChange:
    kind = rng.randrange(10)
    if kind == 0:
        return Blank()
    if kind == 1:
        voters = {1, 2, 3} if rng.random() < 0.5 else {1, 2}
        return MembershipChange(
            Membership(configs=[voters], nodes={n: Node(f"node-{n}") for n in voters | {4}})
        )
    if kind < 5:
        return Normal(
            {"k": f"key-{index}", "v": rng.randrange(10**6), "pad": "x" * rng.randrange(40)}
        )
    if kind < 8:
        return Normal(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 50))))
    return Normal(f"str-{index}-" + "y" * rng.randrange(30))


STEPS = 40


async def workload(store: FileLogStore, model: Model, seed: int) -> None:
    """A deterministic (per seed) mix of store operations, recorded in ``model``."""
    rng = random.Random(seed)
    term = 1
    vote_term = 1

    async def save_vote(vote: Vote) -> None:
        model.in_flight = ("vote", vote)
        await store.save_vote(vote)
        model.in_flight = None
        model.vote_returned = vote

    async def append_calls(n_calls: int) -> None:
        done: trio.Event | None = None
        for _ in range(n_calls):
            first = next_index(model.last)
            entries = [
                Entry(lid(term, i), make_payload(rng, i))
                for i in range(first, first + rng.randint(1, 3))
            ]
            event = trio.Event()
            record = model.callback(entries)

            def callback(
                err: BaseException | None, record: Any = record, event: Any = event
            ) -> None:
                record(err)
                event.set()

            await store.append(entries, callback)
            for e in entries:
                model.log[e.index] = e
            model.last = entries[-1].log_id
            model.snapshot()
            done = event
            if rng.random() < 0.3:
                await trio.lowlevel.checkpoint()  # let the flusher take a batch in between
        mode = rng.random()
        if mode < 0.5 and done is not None:
            await done.wait()
        elif mode < 0.8:
            await trio.lowlevel.checkpoint()

    await save_vote(Vote(LeaderId(1, 1), committed=True))
    for _ in range(STEPS):
        x = rng.random()
        if x < 0.42 or model.last is None or model.last == model.purged:
            await append_calls(rng.randint(1, 3))
        elif x < 0.52:
            # A newer vote: a later term (sometimes uncommitted: a candidate).
            vote_term += 1
            await save_vote(Vote(LeaderId(vote_term, rng.choice([1, 2])), rng.random() < 0.5))
        elif x < 0.62:
            # Committed only moves forward.
            lo = max(
                next_index(model.purged),
                max((c.index for c in model.committed_saved), default=0),
            )
            if lo > model.last.index:
                continue
            index = rng.randrange(lo, model.last.index + 1)
            committed = model.log[index].log_id
            await store.save_committed(committed)
            model.committed_saved.add(committed)
        elif x < 0.76:
            # A conflict: cut the log after a point, then a new leader appends its entries.
            # Never at or below the committed point (Raft never truncates committed entries).
            lo = max(
                -1 if model.purged is None else model.purged.index,
                max((c.index for c in model.committed_saved), default=-1),
            )
            if lo >= model.last.index:
                continue
            index = rng.randrange(max(lo, model.last.index - 4), model.last.index)
            keep = (
                model.purged
                if model.purged is not None and index == model.purged.index
                else (None if index < 0 else model.log[index].log_id)
            )
            before = dict(model.log)
            for i in [i for i in model.log if i > index]:
                del model.log[i]
            model.last = keep
            version = model.snapshot()
            model.in_flight = ("truncate", index + 1, before)
            await store.truncate_after(keep)
            model.in_flight = None
            model.stable_from = version
            term = max(term, vote_term) + 1
            vote_term = term
            if rng.random() < 0.5:
                await save_vote(Vote(LeaderId(term, 1), committed=True))
            await append_calls(1)
        elif x < 0.86:
            if rng.random() < 0.15:
                # At or past the end.
                extra = rng.randint(0, 2)
                upto = model.last if extra == 0 else lid(term, model.last.index + extra)
            else:
                lo = next_index(model.purged)
                upto = model.log[rng.randrange(lo, model.last.index + 1)].log_id
            before = dict(model.log)
            for i in [i for i in model.log if i <= upto.index]:
                del model.log[i]
            model.purged = upto
            if upto.index >= model.last.index:
                model.last = upto
            version = model.snapshot()
            model.in_flight = ("purge", upto, before)
            await store.purge(upto)
            model.in_flight = None
            model.stable_from = version
            model.purge_returned = upto
        elif x < 0.93:
            # Read the whole log back (most of it from the segment files: small cache).
            entries = await store.try_get_log_entries(0, 10**6)
            assert {e.index: e for e in entries} == model.log
        else:
            await trio.lowlevel.checkpoint()
    # The store is closed with whatever is still queued or in flight: the close drains it.


# --- running it -------------------------------------------------------------------------------


async def run_workload(
    fs: CrashFS, seed: int
) -> tuple[Model, bool]:
    """Run the workload on ``fs`` until it ends or ``fs.crash_at`` stops it.

    Returns ``(model, crashed)``."""
    model = Model()
    crashed = False
    try:
        async with open_store(fs) as store:
            await workload(store, model, seed)
    except* SimulatedCrash:
        crashed = True
    except* StorageError:
        # The store fails the waiters of the batch the power cut interrupted ("stopped").
        if not fs.crashed:
            raise
    # Only a power cut may fail a callback.
    assert crashed or not model.errors, model.errors
    assert all(isinstance(err, StorageError) for err in model.errors), model.errors
    return model, crashed


def run(fn: Callable[[], Awaitable[Any]], reseed: Callable[[int], None], seed: int = 0) -> Any:
    reseed(seed)
    return trio.run(fn)


# --- checking a recovered store ---------------------------------------------------------------


@dataclass
class Recovered:
    state: LogState
    vote: Vote | None
    committed: LogId | None
    entries: list[Entry]


async def read_back(fs: CrashFS) -> Recovered:
    async with open_store(fs) as store:
        return Recovered(
            await store.get_log_state(),
            await store.read_vote(),
            await store.read_committed(),
            await store.try_get_log_entries(0, 10**6),
        )


async def check_recovered(fs: CrashFS, model: Model, label: str) -> None:
    """Reopen the store on a post-crash ``fs`` and check it against ``model``."""
    try:
        got = await read_back(fs)
    except StorageError as exc:
        raise AssertionError(f"{label}: a crash was reported as corruption: {exc}") from exc
    purged, last = got.state.last_purged_log_id, got.state.last_log_id
    entries = got.entries
    # Contiguous: exactly (purged, last].
    assert [e.index for e in entries] == list(range(next_index(purged), next_index(last))), label
    assert (entries[-1].log_id if entries else purged) == last, label

    # Purge point: the last returned purge, or the one in flight.
    allowed_purged = {model.purge_returned}
    if model.in_flight is not None and model.in_flight[0] == "purge":
        allowed_purged.add(model.in_flight[1])
    assert purged in allowed_purged, (label, purged, allowed_purged)

    # Vote: the last returned save_vote, or the one in flight.
    allowed_votes = {model.vote_returned}
    if model.in_flight is not None and model.in_flight[0] == "vote":
        allowed_votes.add(model.in_flight[1])
    assert got.vote in allowed_votes, (label, got.vote, allowed_votes)

    # Log matching: a prefix of some version of the log since the last returned truncation
    # or purge (so entries a returned truncation removed never come back).
    by_index = {e.index: e for e in entries}
    assert any(
        all(version.get(i) == e for i, e in by_index.items())
        for version in model.versions[model.stable_from :]
    ), (label, [str(e.log_id) for e in entries])

    # Durability: every acknowledged entry that no returned truncation or purge removed is
    # there (a truncation or purge in flight may or may not have happened).
    current = model.log
    cut_from: int | None = None
    if model.in_flight is not None and model.in_flight[0] in ("truncate", "purge"):
        current = model.in_flight[2]
        if model.in_flight[0] == "truncate":
            cut_from = model.in_flight[1]
    first_kept = next_index(purged)
    for index, entry in current.items():
        if entry.log_id not in model.acked or index < first_kept:
            continue
        if cut_from is not None and index >= cut_from:
            continue
        assert by_index.get(index) == entry, (label, "lost acknowledged entry", str(entry.log_id))

    # Committed (advisory): None or one that was saved, within the log.
    if got.committed is not None:
        assert got.committed in model.committed_saved, (label, got.committed)
        assert last is not None, label
        assert got.committed.index <= last.index, (label, got.committed)
        if got.committed.index in by_index:
            assert by_index[got.committed.index].log_id == got.committed, label

    # The store keeps working: an append at the end is acknowledged ...
    term = 1 + max([0 if last is None else last.term, *(e.log_id.term for e in entries)])
    new = Entry(lid(term, next_index(last)), Normal("after-crash"))
    results: list[BaseException | None] = []
    flushed = trio.Event()

    def callback(err: BaseException | None) -> None:
        results.append(err)
        flushed.set()

    async with open_store(fs) as store:
        await store.append([new], callback)
        await flushed.wait()
    assert results == [None], (label, results)
    # ... and a second reopen sees the same, plus the new entry.
    again = await read_back(fs)
    assert again.state == LogState(purged, new.log_id), label
    assert again.vote == got.vote, label
    assert again.entries == [*entries, new], label


def record_boundaries(data: bytes) -> list[int]:
    """Where records start in segment bytes (and where the last whole one ends)."""
    out = [SEGMENT_HEADER]
    offset = SEGMENT_HEADER
    while offset + RECORD_HEADER <= len(data):
        try:
            header = fmt.RecordHeader(data, offset)
        except fmt.FormatError:
            break
        offset += RECORD_HEADER + header.payload_len
        out.append(offset)
    return out


def boundary_tears(fs: CrashFS) -> list[int]:
    """Tear offsets of the last write around segment-header and record-header boundaries
    (where recovery switches between "header cut short", "record cut short" and whole)."""
    info = fs.last_write_info()
    if info is None or info.unsynced == 0:
        return [0]
    offsets = {0, 1, info.unsynced - 1, info.unsynced}
    data = fs.files().get(info.path, b"")
    for b in record_boundaries(data):
        for d in (-1, 0, 1, RECORD_HEADER - 1, RECORD_HEADER, RECORD_HEADER + 1):
            if 0 <= (t := b + d - info.durable_size) <= info.unsynced:
                offsets.add(t)
    return sorted(offsets)


def post_crash_states(fs: CrashFS, k: int) -> Iterator[tuple[str, CrashFS]]:
    """Every way the disk may look after a power cut at this point that we check."""
    yield "crash()", fs.crash()
    yield "keep_unsynced", fs.crash(keep_unsynced=True)
    yield "keep_unsynced_names", fs.crash(keep_unsynced_names=True)
    yield "keep_unsynced+names", fs.crash(keep_unsynced=True, keep_unsynced_names=True)
    info = fs.last_write_info()
    # The last write torn at EVERY byte offset of its unsynced bytes ...
    for t in range(1 + (0 if info is None else info.unsynced)):
        yield f"tear={t}", fs.crash(tear=t)
    # ... and at the interesting ones with the volatile namespace kept (a file created or
    # renamed without fsync_dir is there).
    for t in boundary_tears(fs):
        yield f"tear={t}+names", fs.crash(tear=t, keep_unsynced_names=True)
    # Every file keeps a random prefix of its unsynced bytes.
    for r in range(3):
        yield f"rng={r}", fs.crash(rng=random.Random(f"{k}-{r}"))
    yield "rng+names", fs.crash(rng=random.Random(f"{k}-names"), keep_unsynced_names=True)


def fingerprint(fs: CrashFS) -> bytes:
    h = hashlib.sha256()
    for path, data in sorted(fs.files().items()):
        h.update(path.encode() + b"\0" + struct.pack("<Q", len(data)) + data)
    return h.digest()


@pytest.mark.parametrize("seed", [1, 2])
def test_crash_at_every_operation_keeps_an_acknowledged_prefix(
    seed: int, deterministic_trio: Callable[[int], None]
) -> None:
    """Stop the workload at EVERY file-system operation; reopen on every post-crash disk.

    Per run (``-s`` prints the numbers): seed 1 has 234 crash points and 6,905 distinct
    post-crash disks, seed 2 has 240 and 6,624;
    each disk is reopened, checked, appended to and reopened again.
    """
    started = time.perf_counter()
    reference_fs = CrashFS()
    reference, crashed = run(
        lambda: run_workload(reference_fs, seed),
        deterministic_trio,
    )
    assert not crashed
    reference_ops = reference_fs.op_log
    n = len(reference_ops)
    # The workload really exercises what it should.
    names = [op.name for op in reference_ops]
    assert len({op.path for op in reference_ops if op.path.endswith(".log")}) >= 5, "rollover"
    assert {"truncate", "unlink", "rename"} <= set(names)
    assert reference.purge_returned is not None
    assert reference.stable_from > 0
    assert len(reference.log) >= 10
    assert reference.committed_saved

    checked = 0
    for k in range(n + 1):
        fs = CrashFS(crash_at=k)
        model, crashed = run(
            lambda fs=fs: run_workload(fs, seed),  # type: ignore[misc]
            deterministic_trio,
        )
        assert crashed == (k < n), k
        assert fs.op_log == reference_ops[:k], f"crash point {k}: the run diverged"
        at = f"seed {seed}, crash at op {k} ({reference_ops[k] if k < n else 'the end'})"
        seen: set[bytes] = set()
        states: list[tuple[str, CrashFS]] = []
        for how, after in post_crash_states(fs, k):
            key = fingerprint(after)
            if key not in seen:
                seen.add(key)
                states.append((f"{at}, {how}", after))

        async def check_all(
            states: list[tuple[str, CrashFS]] = states, model: Model = model
        ) -> None:
            for label, after in states:
                await check_recovered(after, model, label)

        run(check_all, deterministic_trio)
        checked += len(states)
    print(
        f"\nseed {seed}: {n + 1} crash points, {checked} distinct post-crash disks reopened "
        f"and checked in {time.perf_counter() - started:.1f}s"
    )


# --- minimal reproductions of bugs this suite found --------------------------------------------
# (It also found two fixed before these tests landed, covered in test_file_log_store.py:
# records queued before a segment rollover were not fsynced before the next segment was
# created, and commit records were not counted in the segment size.)


def filler(index: int, term: int = 1) -> Entry:
    return Entry(lid(term, index), Normal({"i": index, "pad": "p" * 60}))


async def test_a_crash_inside_a_truncation_across_segments_is_not_corruption() -> None:
    fs = CrashFS()
    async with open_store(fs) as store:
        for i in range(12):  # ~4 entries per 400-byte segment: 3 segments
            await store.append([filler(i)], lambda err: None)
        await trio.testing.wait_all_tasks_blocked()
    base = fs.crash()  # everything durable
    assert len(segments_of(base)) >= 3
    # Truncate in the first segment: cut it and drop the later ones. Learn the operations
    # that takes, then crash at each of them.
    dry = base.crash()
    async with open_store(dry) as store:
        first_op = dry.op_count
        await store.truncate_after(lid(1, 1))
        last_op = dry.op_count
    before, after = [filler(i) for i in range(12)], [filler(0), filler(1)]
    for k in range(first_op, last_op + 1):
        copy = base.crash()
        try:
            async with open_store(copy) as store:
                copy.crash_at = k
                await store.truncate_after(lid(1, 1))
        except* SimulatedCrash:
            pass
        except* StorageError:
            assert copy.crashed  # the interrupted call fails ("stopped")
        for keep_unsynced in (False, True):
            for keep_unsynced_names in (False, True):
                state = copy.crash(
                    keep_unsynced=keep_unsynced, keep_unsynced_names=keep_unsynced_names
                )
                # The interrupted truncation may have happened, not at all or partly (later
                # segments gone): a prefix of the old log that keeps what it had to keep.
                # Corruption is not fine.
                got = await read_back(state)
                assert got.entries == before[: len(got.entries)], k
                assert got.entries[:2] == after, k


async def test_closing_while_a_batch_is_in_flight_and_more_is_queued_does_not_hang() -> None:
    """Regression: _drain waited on the idle Event of the batch in flight, which the flusher
    replaced (never set) when it went straight on to the next batch: the shielded close hung
    forever."""
    fs = CrashFS()
    gate = trio.Event()
    in_io = trio.Event()

    async def gated_io(fn: Callable[[], Any]) -> Any:
        in_io.set()
        await gate.wait()
        return fn()

    results: list[BaseException | None] = []
    closed = trio.Event()
    stale_idle: list[trio.Event] = []

    async def user() -> None:
        async with open_file_log_store(DIR, fs=fs, run_io=gated_io) as store:
            await store.append([filler(0)], results.append)
            await in_io.wait()  # the flusher holds batch 1 at the gate
            stale_idle.append(store._idle)  # private: to unstick the hang below
            await store.append([filler(1)], results.append)  # batch 2, queued
        closed.set()  # leaving the block drained both batches

    async with trio.open_nursery() as nursery:
        nursery.start_soon(user)
        await trio.testing.wait_all_tasks_blocked()  # user is closing the store
        gate.set()
        await trio.testing.wait_all_tasks_blocked()
        hung = not closed.is_set()
        if hung:
            stale_idle[0].set()  # unstick the close so that the test ends
    assert results == [None, None]
    assert not hung, "closing the store hung"


# --- corruption ---------------------------------------------------------------------------------


async def clean_store(seed: int = 1) -> tuple[CrashFS, Model]:
    """A workload run to the end and closed; every file durable."""
    fs = CrashFS()
    model, crashed = await run_workload(fs, seed)
    assert not crashed
    return fs.crash(), model


def segments_of(fs: CrashFS) -> list[str]:
    return sorted(p for p in fs.files() if p.endswith(fmt.SEGMENT_SUFFIX))


def records_of(data: bytes) -> list[tuple[int, fmt.RecordHeader]]:
    out = []
    offset = SEGMENT_HEADER
    while offset < len(data):
        header = fmt.RecordHeader(data, offset)
        out.append((offset, header))
        offset += RECORD_HEADER + header.payload_len
    return out


async def expect_corrupt(fs: CrashFS, *fragments: str) -> str:
    with pytest.raises(StorageError) as info:
        async with open_store(fs):
            pass
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


async def test_flipped_bit_in_a_record_payload_of_a_middle_segment_is_reported() -> None:
    fs, _ = await clean_store()
    segments = segments_of(fs)
    path = segments[len(segments) // 2]
    records = records_of(fs.files()[path])
    offset, header = records[len(records) // 2]
    fs.flip_bit(path, offset + RECORD_HEADER + header.payload_len // 2, 3)
    await expect_corrupt(fs, repr(path), f"at offset {offset}", "checksum")


async def test_flipped_bit_in_a_record_length_is_reported() -> None:
    fs, _ = await clean_store()
    for path in (segments_of(fs)[1], segments_of(fs)[-1]):
        after = fs.crash()
        offset, _ = records_of(after.files()[path])[-1]
        after.flip_bit(path, offset + 1, 0)  # payload_len, second byte: +256 bytes
        await expect_corrupt(after, repr(path), f"at offset {offset}")


async def test_flipped_bit_in_the_last_acknowledged_record_is_reported_not_cut() -> None:
    fs, model = await clean_store()
    path = segments_of(fs)[-1]
    offset, header = records_of(fs.files()[path])[-1]
    assert header.kind == fmt.KIND_ENTRY
    assert header.log_id in model.acked
    fs.flip_bit(path, len(fs.files()[path]) - 1, 7)
    await expect_corrupt(fs, repr(path), f"at offset {offset}", "checksum")


async def test_flipped_bit_in_a_segment_header_is_reported() -> None:
    fs, _ = await clean_store()
    for path in (segments_of(fs)[0], segments_of(fs)[-1]):
        for byte in (0, 9, 14, 20):  # magic, version, first index, checksum
            after = fs.crash()
            after.flip_bit(path, byte, 2)
            await expect_corrupt(after, repr(path), "at offset 0")


async def test_flipped_bit_in_the_meta_file_is_reported() -> None:
    fs, _ = await clean_store()
    meta = f"{DIR}/{fmt.META_NAME}"
    size = len(fs.files()[meta])
    for byte in (0, 9, size // 2, size - 1):
        after = fs.crash()
        after.flip_bit(meta, byte, 5)
        await expect_corrupt(after, "meta", repr(meta))


async def test_a_missing_middle_segment_is_reported() -> None:
    fs, _ = await clean_store()
    segments = segments_of(fs)
    fs.unlink(segments[len(segments) // 2])
    await expect_corrupt(fs, repr(segments[len(segments) // 2 + 1]), "starts at index")


async def test_a_missing_first_segment_is_reported() -> None:
    fs, _ = await clean_store()
    segments = segments_of(fs)
    fs.unlink(segments[0])
    await expect_corrupt(fs, "missing", repr(segments[1]))


async def check_all_acknowledged_present(fs: CrashFS, model: Model) -> None:
    async with open_store(fs) as store:
        entries = await store.try_get_log_entries(0, 10**6)
        state = await store.get_log_state()
    assert state == LogState(model.purged, model.last)
    assert {i: e for i, e in model.log.items()} == {e.index: e for e in entries}
    assert all(e.log_id in model.acked for e in entries)


@pytest.mark.parametrize("zeros", [1, RECORD_HEADER - 1, RECORD_HEADER, 100, 4096])
async def test_a_zero_filled_tail_is_cut(zeros: int) -> None:
    fs, model = await clean_store()
    path = segments_of(fs)[-1]
    size = len(fs.files()[path])
    handle = fs.open(path)
    handle.write(bytes(zeros))
    handle.fsync()
    await check_all_acknowledged_present(fs, model)
    assert len(fs.files()[path]) == size  # cut durably
    await check_all_acknowledged_present(fs.crash(), model)


@pytest.mark.parametrize("keep", [1, 20, RECORD_HEADER - 1, RECORD_HEADER, RECORD_HEADER + 5])
async def test_a_short_tail_is_cut(keep: int) -> None:
    fs, model = await clean_store()
    path = segments_of(fs)[-1]
    size = len(fs.files()[path])
    assert model.last is not None
    record = fmt.encode_entry(Entry(lid(99, model.last.index + 1), Normal({"pad": "z" * 30})))
    handle = fs.open(path)
    handle.write(record[:keep])
    handle.fsync()
    await check_all_acknowledged_present(fs, model)
    assert len(fs.files()[path]) == size
    await check_all_acknowledged_present(fs.crash(), model)


# --- fail-stop ------------------------------------------------------------------------------------


class Gate:
    """An I/O runner (inline) that can hold the flusher's next batch until opened."""

    def __init__(self) -> None:
        self._open = trio.Event()
        self._open.set()
        self.holding = trio.Event()

    def close(self) -> None:
        self._open = trio.Event()
        self.holding = trio.Event()

    def open(self) -> None:
        self._open.set()

    async def __call__(self, fn: Callable[[], Any]) -> Any:
        if not self._open.is_set():
            self.holding.set()
            await self._open.wait()
        return fn()


@pytest.mark.parametrize(("op", "code"), [("fsync", errno.EIO), ("write", errno.ENOSPC)])
async def test_an_io_error_during_appends_is_fail_stop(op: str, code: int) -> None:
    fs = CrashFS()
    gate = Gate()
    results: dict[int, list[BaseException | None]] = {}

    def callback(index: int) -> Callable[[BaseException | None], None]:
        return lambda err: results.setdefault(index, []).append(err)

    async with open_file_log_store(DIR, fs=fs, segment_size=SEGMENT_SIZE, run_io=gate) as store:
        await store.save_vote(Vote(LeaderId(1, 1), committed=True))
        await store.append([Entry(lid(1, 0), Blank())], callback(0))
        await trio.testing.wait_all_tasks_blocked()
        assert results == {0: [None]}
        fs.fail_next(op, code)
        gate.close()
        # Two appends in the failing batch, one more queued behind it.
        await store.append([Entry(lid(1, 1), Normal("a"))], callback(1))
        await store.append(
            [Entry(lid(1, 2), Normal(b"b")), Entry(lid(1, 3), Normal({"c": 1}))], callback(2)
        )
        await gate.holding.wait()
        await store.append([Entry(lid(1, 4), Normal("d"))], callback(4))
        gate.open()
        await trio.testing.wait_all_tasks_blocked()
        failed = store.failed
        assert isinstance(failed, StorageError)
        assert results == {0: [None], 1: [failed], 2: [failed], 4: [failed]}
        # Every later call raises StorageError; no callback is called again.
        calls: list[Callable[[], Awaitable[Any]]] = [
            lambda: store.append([Entry(lid(1, 5), Blank())], callback(5)),
            lambda: store.append([], callback(6)),
            lambda: store.save_vote(Vote(LeaderId(2, 1))),
            lambda: store.save_committed(lid(1, 0)),
            lambda: store.truncate_after(lid(1, 0)),
            lambda: store.purge(lid(1, 0)),
            lambda: store.try_get_log_entries(0, 10),
            lambda: store.get_log_state(),
            lambda: store.read_vote(),
        ]
        for call in calls:
            with pytest.raises(StorageError):
                await call()
        await trio.testing.wait_all_tasks_blocked()
        assert results == {0: [None], 1: [failed], 2: [failed], 4: [failed]}
    # What was acknowledged survives a power cut; the store opens again.
    got = await read_back(fs.crash())
    assert got.vote == Vote(LeaderId(1, 1), committed=True)
    assert got.entries[:1] == [Entry(lid(1, 0), Blank())]


async def test_an_io_error_writing_meta_fails_save_vote_and_stops_the_store() -> None:
    fs = CrashFS()
    async with open_store(fs) as store:
        await store.save_vote(Vote(LeaderId(1, 1)))
        fs.fail_next("fsync", errno.EIO, path=f"{DIR}/{fmt.META_NAME}.tmp")
        with pytest.raises(StorageError):
            await store.save_vote(Vote(LeaderId(2, 1)))
        with pytest.raises(StorageError):
            await store.append([Entry(lid(1, 0), Blank())], lambda err: None)
    async with open_store(fs.crash()) as store:
        assert await store.read_vote() == Vote(LeaderId(1, 1))


async def test_an_fsync_error_stops_a_node_with_a_fatal_storage_error(autojump_clock: Any) -> None:
    fs = CrashFS()
    async with open_cluster(1, data_dir="/data", fs=fs, run_io=run_inline) as cluster:
        await cluster.wait_for_leader()
        node = cluster.nodes[1]
        await node.client_write(Set("a", 1))
        fs.fail_next("fsync", errno.EIO)
        with pytest.raises(StorageError):
            await node.client_write(Set("b", 2))
        assert isinstance(node.fatal_error, StorageError)
        with pytest.raises(StorageError):
            await node.client_write(Set("c", 3))
        await node.wait(5).state(raft.ServerState.SHUTDOWN)
        assert node.metrics.state == raft.ServerState.SHUTDOWN


# --- the directory lock ---------------------------------------------------------------------------


async def test_a_second_open_on_crashfs_is_refused_until_the_first_closes() -> None:
    fs = CrashFS()
    async with open_store(fs):
        with pytest.raises(StorageError, match="in use"):
            async with open_store(fs):
                pass
    async with open_store(fs) as store:
        assert await store.get_log_state() == LogState(None, None)


async def test_a_second_open_on_disk_is_refused_until_the_first_closes(tmp_path: Any) -> None:
    directory = tmp_path / "log"
    async with open_file_log_store(directory, segment_size=SEGMENT_SIZE):
        with pytest.raises(StorageError, match="in use"):
            async with open_file_log_store(directory, fs=OsFileSystem()):
                pass
    async with open_file_log_store(directory) as store:
        assert await store.get_log_state() == LogState(None, None)
