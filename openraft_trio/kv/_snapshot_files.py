"""Snapshot files of the durable :class:`~openraft_trio.kv.KvStateMachine`.

File name
    ``snapshot-{term:020d}-{index:020d}-{seq:020d}.snap``: the term and index of the
    snapshot's last log id (``0`` and ``0`` for a snapshot of nothing), then a sequence
    number that grows with every file the state machine writes (it resumes above the
    largest one found in the directory). The fields are fixed-width, so names sort by
    position then age: the newest snapshot sorts last.

File content (big-endian)::

    offset  size  field
    0       8     magic b"ORTKVSNP"
    8       2     format version, 1
    10      2     length of the snapshot id, in bytes (UTF-8)
    12      8     length of the payload, in bytes
    20      4     CRC-32 (zlib) of bytes 0..20, then the snapshot id, then the payload
    24      ...   the snapshot id, then the payload

The payload is the CBOR snapshot :meth:`KvStateMachine.build_snapshot` produces (the same
bytes a leader sends to a follower). A file is written to ``<name>.tmp``, fsynced, renamed
to ``<name>`` and its directory fsynced (:func:`~openraft_trio.storage._fs.write_file_atomic`).
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from .._types import LogId

T = TypeVar("T")

MAGIC = b"ORTKVSNP"
FORMAT_VERSION = 1
_HEADER = struct.Struct(">8sHHQI")
HEADER_SIZE = _HEADER.size
_CRC_OFFSET = HEADER_SIZE - 4

SUFFIX = ".snap"
TMP_SUFFIX = ".tmp"
_PREFIX = "snapshot-"
_NAME = re.compile(r"snapshot-(\d{20})-(\d{20})-(\d{20})\.snap")


class IORunner(Protocol):
    """Runs a blocking function and returns its result, e.g. ``trio.to_thread.run_sync``."""

    def __call__(self, fn: Callable[[], T], /) -> Awaitable[T]: ...


class SnapshotFileError(ValueError):
    """A snapshot file is damaged or not one of ours (bad magic, version, length or CRC)."""


def log_id_position(log_id: LogId | None) -> tuple[int, int]:
    """``(term, index)`` as a file name spells it; ``(0, 0)`` for no log id."""
    if log_id is None:
        return (0, 0)
    return (log_id.term, log_id.index)


def snapshot_file_name(log_id: LogId | None, seq: int) -> str:
    term, index = log_id_position(log_id)
    return f"{_PREFIX}{term:020d}-{index:020d}-{seq:020d}{SUFFIX}"


def parse_snapshot_file_name(name: str) -> tuple[int, int, int] | None:
    """``(term, index, seq)`` of a snapshot file name, or ``None`` if it is not one."""
    match = _NAME.fullmatch(name)
    if match is None:
        return None
    return (int(match[1]), int(match[2]), int(match[3]))


def is_snapshot_tmp_name(name: str) -> bool:
    """True for a temp file a snapshot write left behind (``snapshot-*.tmp``)."""
    return name.startswith(_PREFIX) and name.endswith(TMP_SUFFIX)


def encode_snapshot_file(snapshot_id: str, payload: bytes) -> bytes:
    """The bytes of a snapshot file holding ``payload`` under ``snapshot_id``."""
    sid = snapshot_id.encode("utf-8")
    if len(sid) > 0xFFFF:
        raise ValueError(f"snapshot id is {len(sid)} bytes long; at most 65535 fit")
    prefix = _HEADER.pack(MAGIC, FORMAT_VERSION, len(sid), len(payload), 0)[:_CRC_OFFSET]
    crc = zlib.crc32(payload, zlib.crc32(sid, zlib.crc32(prefix)))
    return b"".join((prefix, crc.to_bytes(4, "big"), sid, payload))


def decode_snapshot_file(raw: bytes) -> tuple[str, bytes]:
    """``(snapshot_id, payload)`` of a snapshot file's bytes.

    Raises:
        SnapshotFileError: the bytes are truncated, too long, fail the CRC, or were not
            written by :func:`encode_snapshot_file` (magic, version).
    """
    if len(raw) < HEADER_SIZE:
        raise SnapshotFileError(f"truncated: {len(raw)} bytes, shorter than the header")
    magic, version, sid_len, payload_len, crc = _HEADER.unpack_from(raw)
    if magic != MAGIC:
        raise SnapshotFileError(f"bad magic {magic!r}")
    if version != FORMAT_VERSION:
        raise SnapshotFileError(f"unsupported format version {version}")
    expected = HEADER_SIZE + sid_len + payload_len
    if len(raw) != expected:
        what = "truncated" if len(raw) < expected else "trailing bytes"
        raise SnapshotFileError(f"{what}: {len(raw)} bytes, the header says {expected}")
    view = memoryview(raw)
    actual = zlib.crc32(view[HEADER_SIZE:], zlib.crc32(view[:_CRC_OFFSET]))
    if actual != crc:
        raise SnapshotFileError(f"checksum mismatch: stored {crc:#010x}, computed {actual:#010x}")
    try:
        snapshot_id = bytes(view[HEADER_SIZE : HEADER_SIZE + sid_len]).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SnapshotFileError(f"snapshot id is not UTF-8: {exc}") from exc
    return snapshot_id, bytes(view[HEADER_SIZE + sid_len :])
