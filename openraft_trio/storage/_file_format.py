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

``kind`` is ``ENTRY`` or ``COMMITTED``, with bit ``0x80`` set when the log id's node id is
not ``None``. An ENTRY's payload is the CBOR of the entry's payload: ``[0]`` (Blank),
``[1, data]`` (Normal) or ``[2, membership]``, in :mod:`openraft_trio.codec`'s encodings;
its log id is the header's. A Normal record's ``data`` is the payload's encoding as it is
(``Normal.encoded``, ``[tag, value]``): the store writes the bytes the leader encoded and
reads them back undecoded (the record checksum covers them); they are decoded when the
entry is applied. A COMMITTED record has no payload: the log id in its header is
the committed log id. The header has its own checksum so a
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
from .._types import BLANK, Entry, LeaderId, LogId, MembershipChange, Normal, Vote

SEGMENT_MAGIC: Final = b"ORTLOG\r\n"
FORMAT_VERSION: Final = 1
SEGMENT_HEADER: Final = struct.Struct("<8sIQI")
RECORD_HEADER: Final = struct.Struct("<IBQQqII")
_HEADER_FIELDS: Final = struct.Struct("<IBQQq")
_CRCS: Final = struct.Struct("<II")
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
    return b"".join((fields, _CRCS.pack(header_crc, zlib.crc32(payload, header_crc)), payload))


# ENTRY payloads hold only the payload (the log id is in the header): CBOR
# ``[0]`` (Blank), ``[1, data]`` (Normal; data as codec.encode_data) or ``[2, membership]``.
# A Normal record is its prefix and the payload's encoding, the bytes the leader encoded
# once (``Normal.encoded``): written and read back without encoding or decoding the data.
_BLANK_PAYLOAD: Final = cbor2.dumps([0])
_NORMAL_PREFIX: Final = b"\x82\x01"  # a CBOR array of 2 items, the first the int 1


def encode_entry(entry: Entry) -> bytes:
    payload = entry.payload
    if isinstance(payload, Normal):
        body = _NORMAL_PREFIX + payload.encoded
    elif isinstance(payload, MembershipChange):
        body = cbor2.dumps([2, codec.unstructure_membership(payload.membership)])
    else:
        body = _BLANK_PAYLOAD
    return encode_record(KIND_ENTRY, entry.log_id, body)


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
    log_id = header.log_id
    if payload[:2] == _NORMAL_PREFIX:
        # Kept as the bytes the leader encoded; decoded where applied (``payload.data``
        # raises codec.PayloadDecodeError, a StorageError, if they do not decode).
        return Entry(log_id, Normal.from_encoded(bytes(payload[2:])))
    try:
        raw = cbor2.loads(payload)
        if isinstance(raw, list) and raw:
            kind = raw[0]
            if kind == 0 and len(raw) == 1:
                return Entry(log_id, BLANK)
            if kind == 2 and len(raw) == 2:
                return Entry(log_id, MembershipChange(codec.structure_membership(raw[1])))
    except (codec.DecodeError, cbor2.CBORDecodeError, ValueError, TypeError) as exc:
        raise FormatError(f"entry {log_id} does not decode: {exc}") from exc
    raise FormatError(f"entry {log_id}: unknown payload {payload[:16]!r}")


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
