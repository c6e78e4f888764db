"""FileLogStore: the durable default :class:`~openraft_trio.storage.RaftLogStorage`.

Theory of operation
-------------------

The log lives in append-only **segment** files (format in ``_file_format``); the vote,
the purge point and a committed log id live in a small ``meta`` file that is replaced
atomically (temp file, fsync, rename, fsync the directory).

Every write goes through one ordered queue of I/O operations, run by one **flusher** task
off the Trio thread (``trio.to_thread.run_sync`` by default)::

    append(e1) ─┐                        ┌─ write e1 e2 e3 ─ fsync ─ callbacks(e1, e2, e3)
    append(e2) ─┼─> queue ─> flusher ────┤
    append(e3) ─┘     ^                  └─ then the next batch ...
    save_vote(v) ─────┘  (fsync earlier writes, write meta, wait until done)

* ``append`` encodes the entries, keeps them in memory (readable at once), queues the
  bytes and returns. The flusher takes **everything** queued, writes it, fsyncs once and
  then calls each append's callback: one fsync serves every append that arrived before it
  (group commit).
* ``save_vote``, ``truncate_after`` and ``purge`` queue an operation and wait for it. The
  flusher fsyncs the writes queued before such an operation first, so vote and log writes
  become durable in submission order (openraft ``io_ordering.md``).
* ``save_committed`` queues a small ``COMMITTED`` record that is written with the next
  batch but not fsynced on its own: the committed log id is advisory (a restart may find
  an older one; Raft re-learns it from the leader).
* Reads are served from an in-memory cache of the newest entries (every entry not yet
  durable is in it) and otherwise read back from the segment files (``pread``).
* A failed write, fsync, rename or unlink is **fail-stop**: the store remembers the error,
  calls every pending callback with it and every later call raises ``StorageError``. It
  never retries and continues, because after a failed fsync the kernel may already have
  dropped the dirty pages (the "fsyncgate" lesson).

Opening the directory takes an exclusive ``flock`` on ``LOCK`` (a second store, in this or
another process, is refused) and runs recovery (``_file_recovery``).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import struct
import threading
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Final, TypeVar, final

import cbor2
import trio

from .._errors import StorageError
from .._nursery import background_nursery
from .._statistics import LatencyHistogram
from .._types import Entry, LogId, LogState, Vote, next_index
from . import _file_format as fmt
from ._file_recovery import Segment, recover
from ._fs import FileHandle, FileLock, FileSystem, OsFileSystem, join, write_file_atomic
from ._protocols import IOCallback, check_append

T = TypeVar("T")
RunIO = Callable[[Callable[[], T]], Awaitable[T]]

DEFAULT_SEGMENT_SIZE: Final = 64 * 1024 * 1024
DEFAULT_CACHE_ENTRIES: Final = 16384

log = logging.getLogger("openraft_trio.storage")


async def run_in_thread(fn: Callable[[], T]) -> T:
    """The default I/O runner: a worker thread (the Trio thread never blocks on a disk)."""
    return await trio.to_thread.run_sync(fn)


async def run_inline(fn: Callable[[], T]) -> T:
    """An I/O runner for in-memory file systems and the deterministic simulator."""
    await trio.lowlevel.checkpoint()
    return fn()


class _Write:
    """Bytes for one segment, queued by consecutive appends (merged) and commit records.

    ``durable_next``: once fsynced, every entry below this index is durable.
    """

    __slots__ = ("callbacks", "chunks", "durable_next", "needs_fsync", "segment")

    def __init__(self, segment: Segment | None) -> None:
        self.segment = segment
        self.chunks: list[bytes] = []
        self.callbacks: list[IOCallback] = []
        self.needs_fsync = False
        self.durable_next: int | None = None


class _Call:
    """A sync function run in order with the writes (after fsyncing them); awaited.

    ``durable_next``: when set, the durable prefix ends there once the call is done (a
    truncation or a purge past the end moves it).
    """

    __slots__ = ("done", "durable_next", "error", "fn")

    def __init__(self, fn: Callable[[], None], durable_next: int | None = None) -> None:
        self.fn = fn
        self.durable_next = durable_next
        self.done = trio.Event()
        self.error: BaseException | None = None


@final
class FileLogStore:
    """The durable log store. Open it with :func:`open_file_log_store`.

    Attributes:
        directory: the store's directory.
    """

    #: ``open_raft`` refuses client data the codec cannot encode, before it is logged.
    requires_encodable_data = True

    def __init__(
        self,
        directory: str,
        fs: FileSystem,
        lock: FileLock,
        *,
        segment_size: int,
        cache_entries: int,
        run_io: RunIO[Any],
    ) -> None:
        self.directory = directory
        self._fs = fs
        self._lock: FileLock | None = lock
        self._segment_size = segment_size
        self._cache_entries = cache_entries
        self._run_io = run_io
        self._vote: Vote | None = None
        self._committed: LogId | None = None
        self._committed_written: LogId | None = None
        self._purged: LogId | None = None
        self._last_log_id: LogId | None = None
        self._segments: list[Segment] = []
        self._handles: dict[str, FileHandle] = {}
        # _cache[i] has index _cache_first + i; it ends at the last entry.
        self._cache: list[Entry] = []
        self._cache_first = 0
        self._durable_next = 0
        self._queue: deque[_Write | _Call] = deque()
        self._queued = trio.Event()
        self._urgent = False  # something queued waits for a callback or a caller
        self._failed: StorageError | None = None
        self._closed = False
        self._flusher_done = False
        self._idle = trio.Event()
        self._idle.set()
        self._handles_lock = threading.Lock()
        # Files written but not fsynced yet (touched only by the flusher's I/O calls).
        self._unsynced: dict[str, FileHandle] = {}
        self.fsync_count = 0
        self.batch_count = 0
        #: How long each batch that fsynced took (its writes and fsyncs, thread hop
        #: included), on trio's clock: the ``log_flush_latency`` of ``Raft.statistics()``.
        self.flush_latency = LatencyHistogram()
        #: What opening had to repair: torn-tail bytes cut, stray segments removed.
        self.recovered_cut_bytes = 0
        self.recovered_removed_files = 0

    # -- opening -------------------------------------------------------------------------

    def _load(self) -> None:
        """Recover the directory (sync; run through the I/O runner)."""
        state = recover(self._fs, self.directory)
        self._vote = state.vote
        self._purged = state.purged
        self._committed = self._committed_written = state.committed
        self._last_log_id = state.last_log_id
        self._segments = state.segments
        self.recovered_cut_bytes = state.cut_bytes
        self.recovered_removed_files = state.removed_files
        self._cache_first = self._durable_next = next_index(state.last_log_id)

    # -- RaftLogStorage ------------------------------------------------------------------

    async def get_log_state(self) -> LogState:
        """The last purged and the last log id; raises ``StorageError`` once closed or failed."""
        self._check()
        return LogState(last_purged_log_id=self._purged, last_log_id=self._last_log_id)

    async def read_vote(self) -> Vote | None:
        """The saved vote, or ``None``; raises ``StorageError`` once closed or failed."""
        self._check()
        return self._vote

    async def save_vote(self, vote: Vote) -> None:
        """Persist ``vote`` in ``meta``; durable (after every earlier append) on return."""
        self._check()
        self._vote = vote
        await self._call(self._meta_writer())

    async def read_committed(self) -> LogId | None:
        """The saved committed log id, or ``None``; raises ``StorageError`` once closed or
        failed."""
        self._check()
        return self._committed

    async def save_committed(self, log_id: LogId | None) -> None:
        """Remember ``log_id``; written with the next batch, fsynced lazily (advisory)."""
        self._check()
        self._committed = log_id
        if log_id is None or log_id == self._committed_written or not self._segments:
            return
        self._committed_written = log_id
        record = fmt.encode_committed(log_id)
        self._segments[-1].size += len(record)  # entries appended later start after it
        self._queue_chunks([record], None, None)

    async def append(self, entries: Sequence[Entry], callback: IOCallback) -> None:
        """Append ``entries`` (readable on return); ``callback(None)`` once fsynced.

        Raises:
            ValueError: the entries would leave a hole, overlap the log, or are not
                contiguous. Nothing is appended; the callback is not called.
            StorageError: the store failed earlier (fail-stop).
        """
        self._check()
        if not entries:
            if self._durable_next == next_index(self._last_log_id) and not self._queue:
                callback(None)
            else:
                self._queue_chunks([], callback, None)
            return
        check_append(entries, self._last_log_id)
        first = entries[0].log_id.index
        last = entries[-1].log_id.index
        try:
            records = [fmt.encode_entry(entry) for entry in entries]
        except (TypeError, ValueError, cbor2.CBOREncodeError) as exc:
            # open_raft checks client data up front; reaching this is a bug, and a log
            # that cannot be written is a storage failure (nothing was changed).
            raise StorageError(f"cannot encode entries {first}..{last}: {exc}") from exc
        chunks: list[bytes] = []
        segment = self._active_segment(first)
        for entry, record in zip(entries, records, strict=True):
            if segment.size >= self._segment_size:
                self._queue_chunks(chunks, None, None)
                chunks = []
                segment = self._roll_segment(entry.log_id.index)
            segment.offsets.append(segment.size)
            segment.size += len(record)
            chunks.append(record)
        self._cache.extend(entries)
        self._last_log_id = entries[-1].log_id
        self._queue_chunks(chunks, callback, last + 1)

    async def truncate_after(self, log_id: LogId | None) -> None:
        """Delete every entry after ``log_id`` (``None``: all); durable on return.

        Raises:
            ValueError: ``log_id`` is before the purge point (purged entries are committed).
        """
        self._check()
        keep_next = next_index(log_id)
        if keep_next < next_index(self._purged):
            raise ValueError(
                f"cannot truncate after {log_id}: entries up to {self._purged} are purged "
                "(committed)"
            )
        if keep_next >= next_index(self._last_log_id):
            return
        drop: list[Segment] = []
        cut: tuple[Segment, int] | None = None
        while self._segments and self._segments[-1].first_index >= keep_next:
            drop.append(self._segments.pop())
        if self._segments and self._segments[-1].next_index > keep_next:
            segment = self._segments[-1]
            keep = keep_next - segment.first_index
            size = segment.offsets[keep]
            del segment.offsets[keep:]
            segment.size = size
            cut = (segment, size)
        del self._cache[max(0, keep_next - self._cache_first) :]
        self._cache_first = min(self._cache_first, keep_next)
        if keep_next > next_index(self._purged):
            self._last_log_id = log_id
        else:
            self._last_log_id = self._purged
        if self._committed is not None and self._committed.index >= keep_next:
            self._committed = self._committed_written = None
        await self._call(lambda: self._do_truncate(cut, drop), durable_next=keep_next)

    async def purge(self, upto: LogId) -> None:
        """Delete every entry up to and including ``upto``; durable on return.

        Whole segments are removed; the purge point is recorded in ``meta`` first, so
        a crash in between leaves segments that the next open removes. Purging past the
        last entry leaves an empty log whose last log id is ``upto``.
        """
        self._check()
        if upto.index < next_index(self._purged):
            return
        self._purged = upto
        new_first = upto.index + 1
        drop: list[Segment] = []
        durable_next = None
        if new_first >= next_index(self._last_log_id):
            self._last_log_id = upto
            drop, self._segments = self._segments, []
            self._cache = []
            self._cache_first = durable_next = new_first
        else:
            while len(self._segments) > 1 and self._segments[1].first_index <= new_first:
                drop.append(self._segments.pop(0))
            if new_first > self._cache_first:
                del self._cache[: new_first - self._cache_first]
                self._cache_first = new_first
        write_meta = self._meta_writer()

        def purge_files() -> None:
            write_meta()
            self._remove_segments(drop)

        await self._call(purge_files, durable_next=durable_next)

    async def try_get_log_entries(self, start: int, stop: int) -> list[Entry]:
        """Entries with ``start <= index < stop`` that exist (clipped; no holes).

        Raises:
            StorageError: an entry read back from disk is corrupt (or the store failed).
        """
        self._check()
        start = max(start, next_index(self._purged))
        stop = min(stop, next_index(self._last_log_id))
        if stop <= start:
            return []
        if start >= self._cache_first:
            return self._cache[start - self._cache_first : stop - self._cache_first]
        disk = self._read_disk(start, min(stop, self._cache_first))
        if stop > self._cache_first:
            disk.extend(self._cache[: stop - self._cache_first])
        return disk

    # -- introspection ---------------------------------------------------------------------

    @property
    def flushed_log_id(self) -> LogId | None:
        """The last entry known durable (what a crash now keeps at least)."""
        index = min(self._durable_next, next_index(self._last_log_id)) - 1
        if index < next_index(self._purged):
            return self._purged
        return self._entry_log_id(index)

    @property
    def failed(self) -> StorageError | None:
        """The error that stopped the store, if any."""
        return self._failed

    # -- internals: queueing ---------------------------------------------------------------

    def _check(self) -> None:
        if self._failed is not None:
            raise self._failed
        if self._closed:
            raise StorageError(f"log store {self.directory!r} is closed")

    def _active_segment(self, first_index: int) -> Segment:
        if not self._segments:
            return self._roll_segment(first_index)
        return self._segments[-1]

    def _roll_segment(self, first_index: int) -> Segment:
        segment = Segment(first_index, join(self.directory, fmt.segment_name(first_index)))
        self._segments.append(segment)
        header = fmt.encode_segment_header(first_index)
        self._queue.append(_Call(lambda: self._create_segment(segment, header)))
        self._wake_flusher()
        return segment

    def _queue_chunks(
        self, chunks: list[bytes], callback: IOCallback | None, durable_next: int | None
    ) -> None:
        """Queue bytes for the last segment; ``callback`` runs once they (and every write
        queued before) are durable. A callback with no bytes needs no fsync of its own:
        everything queued before it that carried a callback is fsynced."""
        if not chunks and callback is None:
            return
        last = self._queue[-1] if self._queue else None
        segment = self._segments[-1] if self._segments else None
        if isinstance(last, _Write) and (last.segment is segment or not chunks):
            write = last
        else:
            write = _Write(segment)
            self._queue.append(write)
        write.chunks.extend(chunks)
        if callback is not None:
            write.callbacks.append(callback)
            if chunks:
                write.needs_fsync = True
        if durable_next is not None:
            write.durable_next = durable_next
        if callback is not None:
            self._wake_flusher()
        # Bytes without a callback (commit records) wait for the next batch: a batch of
        # their own would cost a thread round trip and delay the append queued behind it.

    def _wake_flusher(self) -> None:
        self._urgent = True
        self._queued.set()

    def _meta_writer(self) -> Callable[[], None]:
        data = fmt.encode_meta(self._vote, self._purged, self._committed)
        return lambda: write_file_atomic(self._fs, self.directory, fmt.META_NAME, data)

    async def _call(self, fn: Callable[[], None], durable_next: int | None = None) -> None:
        call = _Call(fn, durable_next)
        self._queue.append(call)
        self._wake_flusher()
        await call.done.wait()
        if call.error is not None:
            raise call.error

    # -- internals: the flusher --------------------------------------------------------------

    async def _flusher(self) -> None:
        try:
            await self._flush_forever()
        finally:
            self._flusher_done = True
            # Cancelled from outside (a cancel scope around the store's block) while a
            # call was queued, e.g. the closing drain's: nobody may wait on it forever.
            queued = list(self._queue)
            self._queue.clear()
            self._fail_batch(queued, StorageError(f"log store {self.directory!r} stopped"))
            self._idle.set()

    async def _flush_forever(self) -> None:
        while True:
            if not self._urgent:
                self._idle.set()
                await self._queued.wait()
                self._queued = trio.Event()
                continue
            self._urgent = False
            if self._idle.is_set():
                # Replace only a set event: _drain() may be waiting on the current one.
                self._idle = trio.Event()
            batch = list(self._queue)
            self._queue.clear()
            if self._failed is not None:
                self._fail_batch(batch, self._failed)
                continue
            started, fsyncs = trio.current_time(), self.fsync_count
            try:
                await self._run_io(functools.partial(self._write_batch, batch))
            except OSError as exc:
                self._fail(exc, batch)
                continue
            except BaseException:
                # Cancelled, or a simulated power cut: nobody may wait on this batch forever.
                self._fail_batch(batch, StorageError(f"log store {self.directory!r} stopped"))
                raise
            self.batch_count += 1
            if self.fsync_count != fsyncs:
                self.flush_latency.observe(trio.current_time() - started)
            self._finish_batch(batch)

    def _write_batch(self, batch: list[_Write | _Call]) -> None:
        """Run a batch in order (worker thread).

        Every file written since its last fsync is fsynced before a call runs (a vote, a
        truncation, a new segment: nothing may become durable ahead of earlier writes) and
        at the end of a batch that carries an append callback. Only a batch of nothing but
        commit records skips the fsync (the committed log id is advisory).
        """
        unsynced = self._unsynced
        need_sync = False
        for op in batch:
            if isinstance(op, _Write):
                if op.chunks and op.segment is not None:
                    handle = self._handle(op.segment)
                    handle.write(b"".join(op.chunks))
                    unsynced[op.segment.path] = handle
                need_sync = need_sync or op.needs_fsync or bool(op.callbacks)
            else:
                self._fsync_all()
                op.fn()
        if need_sync:
            self._fsync_all()

    def _fsync_all(self) -> None:
        for handle in self._unsynced.values():
            handle.fsync()
            self.fsync_count += 1
        self._unsynced.clear()

    def _finish_batch(self, batch: list[_Write | _Call]) -> None:
        for op in batch:
            if op.durable_next is not None:
                self._durable_next = op.durable_next
            if isinstance(op, _Write):
                for callback in op.callbacks:
                    callback(None)
            else:
                op.done.set()
        self._evict()

    def _fail(self, exc: OSError, batch: list[_Write | _Call]) -> None:
        error = StorageError(f"log store {self.directory!r}: I/O failed: {exc}")
        error.__cause__ = exc
        self._failed = error
        log.error("log store %s failed, stopping (fail-stop): %s", self.directory, exc)
        self._fail_batch(batch, error)

    def _fail_batch(self, batch: list[_Write | _Call], error: StorageError) -> None:
        for op in batch:
            if isinstance(op, _Write):
                for callback in op.callbacks:
                    callback(error)
            else:
                op.error = error
                op.done.set()

    def _evict(self) -> None:
        excess = len(self._cache) - self._cache_entries
        evictable = self._durable_next - self._cache_first
        drop = min(excess, evictable)
        if drop > 0:
            del self._cache[:drop]
            self._cache_first += drop

    # -- internals: file operations (worker thread) --------------------------------------------

    def _handle(self, segment: Segment) -> FileHandle:
        with self._handles_lock:
            handle = self._handles.get(segment.path)
            if handle is None:
                handle = self._fs.open(segment.path)
                self._handles[segment.path] = handle
            return handle

    def _create_segment(self, segment: Segment, header: bytes) -> None:
        handle = self._fs.open(segment.path, create=True, truncate=True)
        with self._handles_lock:
            self._handles[segment.path] = handle
        handle.write(header)
        handle.fsync()
        self.fsync_count += 1
        self._fs.fsync_dir(self.directory)

    def _do_truncate(self, cut: tuple[Segment, int] | None, drop: list[Segment]) -> None:
        # Newest first: remove the later segments (durably), then cut the kept one. A crash
        # in between leaves a longer prefix of the old log, never a gap between segments.
        self._remove_segments(drop)
        if cut is not None:
            segment, size = cut
            handle = self._handle(segment)
            handle.truncate(size)
            handle.fsync()
            self.fsync_count += 1

    def _remove_segments(self, segments: list[Segment]) -> None:
        if not segments:
            return
        for segment in segments:
            self._unsynced.pop(segment.path, None)
            with self._handles_lock:
                handle = self._handles.pop(segment.path, None)
            if handle is not None:
                handle.close()
            self._fs.unlink(segment.path)
        self._fs.fsync_dir(self.directory)

    def _read_disk(self, start: int, stop: int) -> list[Entry]:
        """Entries ``[start, stop)`` from the segment files (all of them were written)."""
        out: list[Entry] = []
        try:
            for segment in self._segments:
                if segment.next_index <= start or segment.first_index >= stop:
                    continue
                lo = max(start, segment.first_index) - segment.first_index
                hi = min(stop, segment.next_index) - segment.first_index
                begin = segment.offsets[lo]
                # Up to the next entry, or to the end (a queued commit record may not be
                # written yet: parsing stops after the entries we want).
                end = segment.offsets[hi] if hi < len(segment.offsets) else segment.size
                data = memoryview(self._handle(segment).pread(begin, end - begin))
                out.extend(_parse_entries(data, segment.path, begin, hi - lo))
        except OSError as exc:
            error = StorageError(f"log store {self.directory!r}: read failed: {exc}")
            self._failed = error
            raise error from exc
        return out

    def _entry_log_id(self, index: int) -> LogId | None:
        if index >= self._cache_first:
            return self._cache[index - self._cache_first].log_id
        return self._read_disk(index, index + 1)[0].log_id

    # -- closing ---------------------------------------------------------------------------------

    async def _drain(self) -> None:
        """Write and fsync everything queued (or fail it), as a clean close must."""
        if self._failed is None and not self._flusher_done:
            # A call fsyncs every file written before it: lazy commit records included.
            with contextlib.suppress(StorageError):
                await self._call(lambda: None)
        while not self._flusher_done and (self._queue or not self._idle.is_set()):
            if self._queue:
                self._wake_flusher()
            await self._idle.wait()

    def _close_files(self) -> None:
        self._closed = True
        for handle in self._handles.values():
            handle.close()
        self._handles.clear()
        if self._lock is not None:
            self._lock.release()
            self._lock = None


def _parse_entries(data: memoryview, path: str, base: int, count: int) -> list[Entry]:
    out: list[Entry] = []
    offset = 0
    header_size = fmt.RECORD_HEADER.size
    try:
        while len(out) < count:
            header = fmt.RecordHeader(data, offset)
            payload = data[offset + header_size : offset + header_size + header.payload_len]
            header.check_payload(payload)
            if header.kind == fmt.KIND_ENTRY:
                out.append(fmt.decode_entry_payload(header, payload))
            offset += header_size + header.payload_len
    except (fmt.FormatError, ValueError, struct.error) as exc:
        raise StorageError(
            f"corrupt log segment {path!r} at offset {base + offset}: {exc}"
        ) from exc
    return out


@contextlib.asynccontextmanager
async def open_file_log_store(
    directory: str | os.PathLike[str],
    *,
    fs: FileSystem | None = None,
    segment_size: int = DEFAULT_SEGMENT_SIZE,
    cache_entries: int = DEFAULT_CACHE_ENTRIES,
    run_io: RunIO[Any] | None = None,
) -> AsyncIterator[FileLogStore]:
    """Open (creating if needed) the durable log store in ``directory``.

    Leaving the block writes and fsyncs everything queued, closes the files and releases
    the directory lock. An exception the body raises comes out as itself.

    Args:
        directory: where the store lives (created if missing).
        fs: the file system (default: the real one); tests pass
            :class:`openraft_trio.testing.crashfs.CrashFS`.
        segment_size: start a new segment file once the current one reaches this size.
        cache_entries: how many of the newest durable entries to keep in memory.
        run_io: how blocking I/O runs: :func:`run_in_thread` (default) or
            :func:`run_inline` (in-memory file systems, the deterministic simulator).

    Raises:
        StorageError: another store has the directory open, the directory is corrupt
            (the message names the file and offset), or an I/O error.
        ValueError: ``segment_size`` or ``cache_entries`` is not positive.
    """
    if segment_size <= 0 or cache_entries < 0:
        raise ValueError("segment_size must be > 0 and cache_entries >= 0")
    fs = fs if fs is not None else OsFileSystem()
    run = run_io if run_io is not None else run_in_thread
    path = os.fspath(directory)

    def take_lock() -> FileLock:
        fs.makedirs(path)
        try:
            return fs.lock(join(path, fmt.LOCK_NAME))
        except BlockingIOError as exc:
            raise StorageError(
                f"log store {path!r} is in use by another process (or another open store): "
                f"{fmt.LOCK_NAME} is locked"
            ) from exc

    try:
        lock = await run(take_lock)
    except OSError as exc:
        raise StorageError(f"cannot open log store {path!r}: {exc}") from exc
    store = FileLogStore(
        path, fs, lock, segment_size=segment_size, cache_entries=cache_entries, run_io=run
    )
    try:
        await run(store._load)
        async with background_nursery() as nursery:
            nursery.start_soon(store._flusher, name="openraft_trio.log_flusher")
            try:
                yield store
            finally:
                with trio.CancelScope(shield=True):
                    await store._drain()
                nursery.cancel_scope.cancel()
    finally:
        store._close_files()
