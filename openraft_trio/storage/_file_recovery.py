"""Opening a :class:`FileLogStore` directory: scan, verify, cut a torn tail.

What a crash can leave behind, and what we do about it:

* a record (or segment header) cut short at the end of the **last** segment, or a tail of
  zero bytes there: a write that was never fsynced, so never acknowledged. Cut it off
  (ftruncate + fsync) and go on;
* a last segment too short to hold its header: a segment created but never made durable.
  Remove it;
* segments wholly covered by the purge point (a purge interrupted after ``meta`` was
  written): remove them;
* a stray ``*.tmp`` from an interrupted atomic write: remove it.

Anything else is **corruption** and the store refuses to open with a ``StorageError``
naming the file and byte offset: a record whose checksum fails, a bad record in a segment
that is not the last (every earlier segment was fsynced before the next was created), a gap
or overlap between segments, entries missing right after the purge point, a bad ``meta``.
Dropping any of those could lose an acknowledged write, so we never do it silently.
"""

from __future__ import annotations

from array import array

import attrs

from .._errors import StorageError
from .._types import LogId, Vote
from . import _file_format as fmt
from ._fs import FileSystem, join


@attrs.define
class Segment:
    """One segment file: entry ``first_index + i`` starts at byte ``offsets[i]``."""

    first_index: int
    path: str
    offsets: array[int] = attrs.field(factory=lambda: array("Q"))
    size: int = fmt.SEGMENT_HEADER.size  # bytes written or queued

    @property
    def next_index(self) -> int:
        return self.first_index + len(self.offsets)


@attrs.define
class Recovered:
    vote: Vote | None
    purged: LogId | None
    committed: LogId | None
    last_log_id: LogId | None
    segments: list[Segment]
    cut_bytes: int = 0  # torn tail bytes cut off (a write that was never fsynced)
    removed_files: int = 0  # half-created or wholly purged segments removed


def recover(fs: FileSystem, directory: str) -> Recovered:
    """Scan ``directory`` (already locked) and bring it to a consistent state.

    Raises:
        StorageError: corruption (names file and offset) or an I/O error.
    """
    try:
        return _recover(fs, directory)
    except OSError as exc:
        raise StorageError(f"cannot open log store {directory!r}: {exc}") from exc


def _recover(fs: FileSystem, directory: str) -> Recovered:
    names = fs.listdir(directory)
    for name in names:
        if name.endswith(".tmp"):
            fs.unlink(join(directory, name))
    vote = purged = meta_committed = None
    if fmt.META_NAME in names:
        meta_path = join(directory, fmt.META_NAME)
        try:
            vote, purged, meta_committed = fmt.decode_meta(fs.read_file(meta_path))
        except fmt.FormatError as exc:
            raise StorageError(f"corrupt log store meta file {meta_path!r}: {exc}") from exc

    firsts = sorted(i for i in map(fmt.parse_segment_name, names) if i is not None)
    segments: list[Segment] = []
    committed = meta_committed
    last_log_id: LogId | None = None
    removed = 0
    cut_bytes = 0
    purged_next = 0 if purged is None else purged.index + 1
    for n, first in enumerate(firsts):
        path = join(directory, fmt.segment_name(first))
        is_last = n == len(firsts) - 1
        data = fs.read_file(path)
        if len(data) < fmt.SEGMENT_HEADER.size:
            if not is_last:
                raise StorageError(f"corrupt log segment {path!r}: short header at offset 0")
            fs.unlink(path)
            removed += 1
            continue
        try:
            header_first = fmt.decode_segment_header(data)
        except fmt.FormatError as exc:
            raise StorageError(f"corrupt log segment {path!r} at offset 0: {exc}") from exc
        if header_first != first:
            raise StorageError(
                f"corrupt log segment {path!r} at offset 0: header says first index "
                f"{header_first}, the name says {first}"
            )
        segment = Segment(first, path)
        good_end, seg_last, seg_committed = _scan_records(data, segment, is_last)
        if good_end < len(data):
            cut_bytes += len(data) - good_end
            handle = fs.open(path)
            try:
                handle.truncate(good_end)
                handle.fsync()
            finally:
                handle.close()
        segment.size = good_end
        if seg_committed is not None:
            committed = seg_committed
        if segment.next_index <= purged_next:
            # Wholly purged (a purge interrupted after writing meta left it behind).
            fs.unlink(path)
            removed += 1
            continue
        if segments:
            expected = segments[-1].next_index
            if first != expected:
                raise StorageError(
                    f"corrupt log store {directory!r}: segment {path!r} starts at index "
                    f"{first}, but the previous segment ends before index {expected}"
                )
        elif first > purged_next:
            raise StorageError(
                f"corrupt log store {directory!r}: entries {purged_next}..{first - 1} are "
                f"missing (purged up to {purged}, first segment {path!r} starts at {first})"
            )
        if seg_last is not None:
            last_log_id = seg_last
        segments.append(segment)
    if removed:
        fs.fsync_dir(directory)

    if last_log_id is None or (purged is not None and last_log_id.index <= purged.index):
        last_log_id = purged
    if committed is not None and last_log_id is not None and committed.index > last_log_id.index:
        committed = meta_committed
    return Recovered(vote, purged, committed, last_log_id, segments, cut_bytes, removed)


def _scan_records(
    data: bytes, segment: Segment, is_last: bool
) -> tuple[int, LogId | None, LogId | None]:
    """Verify every record; fill ``segment.offsets``.

    Returns ``(end of the last good record, last entry's log id, last committed log id)``.
    """
    view = memoryview(data)
    offset = fmt.SEGMENT_HEADER.size
    end = len(data)
    header_size = fmt.RECORD_HEADER.size
    last: LogId | None = None
    committed: LogId | None = None
    expected_index = segment.first_index
    while offset < end:
        torn = None
        if end - offset < header_size:
            torn = "a record header cut short"
        else:
            try:
                header = fmt.RecordHeader(view, offset)
            except fmt.FormatError as exc:
                if is_last and not any(view[offset:]):
                    torn = "a zero-filled tail"
                else:
                    raise StorageError(
                        f"corrupt log segment {segment.path!r} at offset {offset}: {exc}"
                    ) from exc
            else:
                record_end = offset + header_size + header.payload_len
                if record_end > end:
                    torn = "a record cut short"
        if torn is not None:
            if not is_last:
                raise StorageError(
                    f"corrupt log segment {segment.path!r} at offset {offset}: {torn} in a "
                    "segment that is not the last"
                )
            return offset, last, committed
        try:
            header.check_payload(view[offset + header_size : record_end])
        except fmt.FormatError as exc:
            raise StorageError(
                f"corrupt log segment {segment.path!r} at offset {offset}: {exc}"
            ) from exc
        if header.kind == fmt.KIND_ENTRY:
            if header.log_id.index != expected_index:
                raise StorageError(
                    f"corrupt log segment {segment.path!r} at offset {offset}: entry index "
                    f"{header.log_id.index}, expected {expected_index}"
                )
            if last is not None and header.log_id.leader_id < last.leader_id:
                raise StorageError(
                    f"corrupt log segment {segment.path!r} at offset {offset}: entry "
                    f"{header.log_id} has an older leader than the entry before it ({last})"
                )
            segment.offsets.append(offset)
            expected_index += 1
            last = header.log_id
        else:
            committed = header.log_id
        offset = record_end
    return offset, last, committed
