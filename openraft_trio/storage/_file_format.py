"""On-disk format of :class:`FileLogStore`: segment headers, records, the meta file.

A store directory holds::

    LOCK                          flock()ed while a store has the directory open
    meta                          vote, purge point, committed (replaced atomically)
    00000000000000000000.log      segment: header, then records, append-only
    00000000000000004711.log      the next segment; its name is the index of its first entry

Segment header (24 bytes, little endian)::

    magic b"ORTLOG\\r\\n" | u32 version | u64 first_index | u32 crc32(previous 20 bytes)

Record (37-byte header, then the payload)::

    u32 payload_len | u8 kind | u64 index | u64 term | i64 node_id
    | u32 header_crc = crc32(previous 29 bytes)
    | u32 record_crc = crc32(payload, header_crc)       (header *and* payload)

``kind`` is ``ENTRY`` (payload: the CBOR of the whole entry, see :mod:`openraft_trio.codec`)
or ``COMMITTED`` (no payload; the log id in the header is the committed log id), with bit
``0x80`` set when the log id's node id is not ``None``. The header has its own checksum so a
flipped bit in ``payload_len`` is caught as corruption instead of looking like a record cut
short by a crash.

Meta file: ``b"ORTMETA1" | u32 crc32(cbor) | cbor`` where the CBOR map holds
``vote``, ``purged`` and ``committed`` in the codec's positional encodings.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any, Final

import cbor2

from .. import codec
from .._types import Entry, LeaderId, LogId, Vote

SEGMENT_MAGIC: Final = b"ORTLOG\r\n"
FORMAT_VERSION: Final = 1
SEGMENT_HEADER: Final = struct.Struct("<8sIQI")
RECORD_HEADER: Final = struct.Struct("<IBQQqII")
_HEADER_FIELDS: Final = struct.Struct("<IBQQq")
_CRC_FIELDS_END: Final = _HEADER_FIELDS.size  # header_crc covers bytes [0, 29)

KIND_ENTRY: Final = 1
KIND_COMMITTED: Final = 2
_HAS_NODE: Final = 0x80

META_NAME: Final = "meta"
META_MAGIC: Final = b"ORTMETA1"
LOCK_NAME: Final = "LOCK"
SEGMENT_SUFFIX: Final = ".log"


class FormatError(ValueError):
    """Bytes on disk are not what the format says (the message names what is wrong)."""


def segment_name(first_index: int) -> str:
    return f"{first_index:020d}{SEGMENT_SUFFIX}"


def parse_segment_name(name: str) -> int | None:
    """The first index in a segment file name, or None if ``name`` is not a segment."""
    stem = name[: -len(SEGMENT_SUFFIX)]
    if name.endswith(SEGMENT_SUFFIX) and len(stem) == 20 and stem.isdigit():
        return int(stem)
    return None


def encode_segment_header(first_index: int) -> bytes:
    fields = struct.pack("<8sIQ", SEGMENT_MAGIC, FORMAT_VERSION, first_index)
    return fields + struct.pack("<I", zlib.crc32(fields))


def decode_segment_header(data: bytes) -> int:
    """The first index of a segment header.

    Raises:
        FormatError: bad magic, unknown version or checksum mismatch.
    """
    magic, version, first_index, crc = SEGMENT_HEADER.unpack(data[: SEGMENT_HEADER.size])
    if magic != SEGMENT_MAGIC:
        raise FormatError(f"not a segment (magic {magic!r})")
    if zlib.crc32(data[: SEGMENT_HEADER.size - 4]) != crc:
        raise FormatError("segment header checksum mismatch")
    if version != FORMAT_VERSION:
        raise FormatError(f"unsupported segment format version {version}")
    return int(first_index)


def encode_record(kind: int, log_id: LogId, payload: bytes) -> bytes:
    node_id = log_id.leader_id.node_id
    if node_id is not None:
        kind |= _HAS_NODE
    fields = _HEADER_FIELDS.pack(
        len(payload), kind, log_id.index, log_id.leader_id.term, node_id or 0
    )
    header_crc = zlib.crc32(fields)
    record_crc = zlib.crc32(payload, header_crc)
    return fields + struct.pack("<II", header_crc, record_crc) + payload


def encode_entry(entry: Entry) -> bytes:
    return encode_record(KIND_ENTRY, entry.log_id, cbor2.dumps(codec.unstructure_entry(entry)))


def encode_committed(log_id: LogId) -> bytes:
    return encode_record(KIND_COMMITTED, log_id, b"")


class RecordHeader:
    """A decoded record header (header checksum verified, payload not yet)."""

    __slots__ = ("header_crc", "kind", "log_id", "payload_len", "record_crc")

    def __init__(self, data: bytes | memoryview, offset: int) -> None:
        length, kind, index, term, node_id, header_crc, record_crc = RECORD_HEADER.unpack_from(
            data, offset
        )
        if zlib.crc32(data[offset : offset + _CRC_FIELDS_END]) != header_crc:
            raise FormatError("record header checksum mismatch")
        base_kind = kind & ~_HAS_NODE
        if base_kind not in (KIND_ENTRY, KIND_COMMITTED):
            raise FormatError(f"unknown record kind {kind}")
        self.payload_len: int = length
        self.kind: int = base_kind
        self.log_id = LogId(LeaderId(term, node_id if kind & _HAS_NODE else None), index)
        self.header_crc: int = header_crc
        self.record_crc: int = record_crc

    def check_payload(self, payload: bytes | memoryview) -> None:
        if zlib.crc32(payload, self.header_crc) != self.record_crc:
            raise FormatError(f"record checksum mismatch (entry {self.log_id})")


def decode_entry_payload(header: RecordHeader, payload: bytes | memoryview) -> Entry:
    """The entry in a verified ENTRY record.

    Raises:
        FormatError: the payload does not decode, or disagrees with the header's log id.
    """
    try:
        entry = codec.structure_entry(cbor2.loads(payload))
    except (codec.DecodeError, cbor2.CBORDecodeError, ValueError, TypeError) as exc:
        raise FormatError(f"entry {header.log_id} does not decode: {exc}") from exc
    if entry.log_id != header.log_id:
        raise FormatError(f"entry payload is {entry.log_id}, header says {header.log_id}")
    return entry


def encode_meta(vote: Vote | None, purged: LogId | None, committed: LogId | None) -> bytes:
    body = cbor2.dumps(
        {
            "vote": None if vote is None else codec.unstructure_vote(vote),
            "purged": codec.unstructure_log_id(purged),
            "committed": codec.unstructure_log_id(committed),
        }
    )
    return META_MAGIC + struct.pack("<I", zlib.crc32(body)) + body


def decode_meta(data: bytes) -> tuple[Vote | None, LogId | None, LogId | None]:
    """``(vote, purged, committed)`` from a meta file.

    Raises:
        FormatError: bad magic, checksum mismatch or malformed content.
    """
    if len(data) < 12 or data[:8] != META_MAGIC:
        raise FormatError("bad magic (not a meta file, or a newer format)")
    (crc,) = struct.unpack_from("<I", data, 8)
    body = data[12:]
    if zlib.crc32(body) != crc:
        raise FormatError("checksum mismatch")
    try:
        raw: Any = cbor2.loads(body)
        if not isinstance(raw, dict):
            raise FormatError("meta is not a map")
        vote_raw = raw.get("vote")
        vote = None if vote_raw is None else codec.structure_vote(vote_raw)
        purged = codec.structure_log_id(raw.get("purged"))
        committed = codec.structure_log_id(raw.get("committed"))
    except (codec.DecodeError, cbor2.CBORDecodeError) as exc:
        raise FormatError(f"malformed content: {exc}") from exc
    return vote, purged, committed
