"""The one cattrs converter: how openraft_trio values become CBOR and come back.

Used by the durable log store (entries on disk) and the TCP transport (frames). Hot types
have positional (list) encodings, registered as cattrs hooks, because building attrs
objects dominates codec cost and lists shrink frames:

* ``LogId`` -> ``[term, node_id, index]``; ``Vote`` -> ``[term, node_id, committed]``
* ``Entry`` -> ``[term, node_id, index, kind, ...]`` with kind 0 ``Blank``, 1 ``Normal``
  (the payload's encoding follows, a byte string), 2 ``MembershipChange`` (the membership
  follows)
* ``Membership`` -> ``[[sorted voter ids]...], {node_id: [addr, data]}]``

**Application data** (``Normal(data)`` payloads and state-machine replies) is either plain
CBOR (None, bool, int, float, str, bytes, lists, maps; tuples come back as lists) or an
instance of a class registered with :func:`register_data_type`, which travels as
``[tag, converter.unstructure(value)]``::

    @attrs.frozen
    class Deposit:
        account: str
        amount: int

    openraft_trio.codec.register_data_type(Deposit, "bank.deposit")

Register the same types under the same tags on every node (at import time of the module
that defines them); :mod:`openraft_trio.kv` registers its requests as ``kv.Set`` and so on.
Decoding an unknown tag or a value of the wrong shape raises :class:`DecodeError`.

**Payloads are encoded once.** A ``Normal`` payload's encoding is the CBOR of
``[tag, value]`` (:func:`encoded_data`), computed once on the leader (by the write check of
``client_write``) and kept in the payload (:attr:`Normal.encoded
<openraft_trio.Normal.encoded>`). The wire and the durable log store carry those bytes as
they are; a follower keeps the bytes it received (after :func:`check_payload_tag`, a look
at the tag only) and decodes them where the entry is applied (``payload.data``,
:func:`decode_payload`), once. A payload that does not decode then raises
:class:`PayloadDecodeError`, a ``StorageError``: the node stops rather than skip an entry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, TypeVar

import cattrs
import cbor2

from ._errors import InvalidRequest, PayloadTooLarge, StorageError, short_repr, short_text
from ._types import (
    BLANK,
    Blank,
    Entry,
    LeaderId,
    LogId,
    Membership,
    MembershipChange,
    Node,
    Normal,
    StoredMembership,
    Vote,
)

__all__ = [
    "ENCODE_ERRORS",
    "ENTRY_HEAD_BYTES",
    "MAX_PAYLOAD_DEPTH",
    "MAX_PAYLOAD_ITEMS",
    "SEMANTIC_DECODERS",
    "DecodeError",
    "PayloadDecodeError",
    "check_encodable",
    "check_items",
    "check_payload",
    "check_payload_tag",
    "converter",
    "decode_data",
    "decode_payload",
    "dumps",
    "encode_data",
    "encoded_data",
    "entry_size",
    "loads",
    "register_data_type",
    "structure_entry",
    "structure_log_id",
    "structure_membership",
    "structure_stored_membership",
    "structure_vote",
    "unstructure_entry",
    "unstructure_log_id",
    "unstructure_membership",
    "unstructure_stored_membership",
    "unstructure_vote",
]

T = TypeVar("T")

converter: Final = cattrs.Converter(detailed_validation=False)
"""The converter every openraft_trio codec goes through; register your hooks on it."""


class DecodeError(ValueError):
    """Bytes or a decoded value do not have the shape the codec expects."""


_KIND_BLANK: Final = 0
_KIND_NORMAL: Final = 1
_KIND_MEMBERSHIP: Final = 2

_tag_of: dict[type, str] = {}
# The first bytes of the payloads of each registered tag: 0x82 (an array of 2), the tag.
_known_heads: set[bytes] = set()
# The same as a tuple for bytes.startswith, with null's (plain data); the longest's length.
# A head is self-delimiting (the tag's length is in it), so a payload that starts with one
# has that tag.
_heads: tuple[bytes, ...] = (b"\x82\xf6",)
_longest_head = 2
_type_of: dict[str, type] = {}
# Unstructure hook per registered type, looked up once (the hot path of every write).
_unstructure_of: dict[type, Callable[[Any], Any]] = {}
# Structure hook per registered type, likewise (every applied entry on a follower).
_structure_of: dict[type, Callable[[Any, Any], Any]] = {}


def register_data_type(cls: type[Any], tag: str) -> None:
    """Let instances of ``cls`` travel as application data under ``tag``.

    Registering the same class under the same tag again is a no-op. Register any custom
    cattrs hooks for ``cls`` on :data:`converter` before the first value is encoded.

    Raises:
        ValueError: ``tag`` is taken by another class, or ``cls`` has another tag.
    """
    if _type_of.get(tag, cls) is not cls or _tag_of.get(cls, tag) != tag:
        raise ValueError(f"cannot register {cls.__qualname__} as {tag!r}: already registered")
    _tag_of[cls] = tag
    _type_of[tag] = cls
    global _heads, _longest_head
    head = b"\x82" + cbor2.dumps(tag)
    _known_heads.add(head)
    _heads = (*_heads, head)
    _longest_head = max(_longest_head, len(head))


def encode_data(value: Any) -> Any:
    """Application data -> a CBOR-ready value (``[tag, fields]`` or ``[None, value]``)."""
    cls = type(value)
    tag = _tag_of.get(cls)
    if tag is None:
        return [None, value]
    hook = _unstructure_of.get(cls)
    if hook is None:
        hook = _unstructure_of[cls] = converter.get_unstructure_hook(cls)
    return [tag, hook(value)]


def decode_data(raw: Any) -> Any:
    """The inverse of :func:`encode_data`.

    Raises:
        DecodeError: not ``[tag, value]``, an unknown tag, or fields of the wrong shape.
    """
    if not (isinstance(raw, list) and len(raw) == 2):
        raise DecodeError(f"application data must be [tag, value], got {short_repr(raw)}")
    tag, value = raw
    if tag is None:
        return value
    cls = _type_of.get(tag) if isinstance(tag, str) else None
    if cls is None:
        raise DecodeError(f"unknown application data tag {short_repr(tag)} (not registered)")
    try:
        hook = _structure_of.get(cls)
        if hook is None:
            hook = _structure_of[cls] = converter.get_structure_hook(cls)
        return hook(value, cls)
    except Exception as exc:
        raise DecodeError(f"bad fields for {tag!r}: {short_text(str(exc))}") from exc


ENCODE_ERRORS: Final = (cbor2.CBOREncodeError, TypeError, ValueError)
"""What encoding application data raises when it is neither plain CBOR nor registered."""


def encoded_data(data: Any) -> bytes:
    """The CBOR bytes of :func:`encode_data` ``(data)``: a payload's encoding
    (:attr:`Normal.encoded <openraft_trio.Normal.encoded>` computes it once per payload).

    Raises:
        cbor2.CBOREncodeError, TypeError, ValueError: ``data`` cannot be encoded.
    """
    return cbor2.dumps(encode_data(data))


class PayloadDecodeError(DecodeError, StorageError):
    """A ``Normal`` payload's bytes do not decode to application data (an unknown tag,
    fields of the wrong shape, not CBOR, over the decoding limits).

    Raised where the payload is decoded: by ``entry.payload.data``, i.e. when the state
    machine applies the entry. The log then holds an entry this node cannot apply and
    must not skip, so it is a :class:`~openraft_trio.StorageError` too: raised from
    ``RaftStateMachine.apply`` it stops the node (fail-stop, logged, in
    ``Raft.fatal_error``), like a log record that does not decode.
    """


MAX_PAYLOAD_ITEMS: Final = 2**18
"""The most CBOR data items one payload may decode to (the frame limit of the wire)."""

MAX_PAYLOAD_DEPTH: Final = 64
"""The deepest nesting of arrays and maps in one payload."""


def _reject_shared_reference(_decoder: Any) -> Any:
    raise DecodeError("shared-reference CBOR tags (28/29) are not allowed")


SEMANTIC_DECODERS: Final = {28: _reject_shared_reference, 29: _reject_shared_reference}
"""cbor2 tag decoders that refuse tags 28/29 (shared, even cyclic, structures): nothing
we encode uses them."""


def decode_payload(encoded: bytes) -> Any:
    """The application data ``encoded`` is (the inverse of :func:`encoded_data`).

    Bounded like a frame: at most :data:`MAX_PAYLOAD_ITEMS` items nested at most
    :data:`MAX_PAYLOAD_DEPTH` deep, no shared references, no indefinite lengths. Bytes
    after the first item are ignored (no encoder of ours writes any; every replica decodes
    the same bytes alike).

    Raises:
        PayloadDecodeError: the bytes are not one such CBOR item, or not application data
            (see :func:`decode_data`).
    """
    try:
        if len(encoded) > MAX_PAYLOAD_ITEMS:
            check_items(encoded, MAX_PAYLOAD_ITEMS, MAX_PAYLOAD_DEPTH)
        raw = cbor2.loads(
            encoded,
            semantic_decoders=SEMANTIC_DECODERS,
            allow_duplicate_keys=False,
            allow_indefinite=False,
            max_depth=MAX_PAYLOAD_DEPTH,
        )
        return decode_data(raw)
    except Exception as exc:  # cbor2 raises several types (and RecursionError, ...)
        # No ``from exc``: the message says it all, and a cause's traceback would keep the
        # decoder's frames alive as long as this error.
        reason = short_text(str(exc) if isinstance(exc, DecodeError) else repr(exc))
        raise PayloadDecodeError(f"entry payload does not decode: {reason}") from None


def check_payload_tag(encoded: bytes) -> bytes:
    """Return ``encoded`` if it starts as application data does, ``[tag, ...]`` with
    ``tag`` null or registered here; raise :class:`DecodeError` otherwise.

    What a follower checks of a payload it receives, without decoding it: a leader that
    sends data of a type this node does not know (another version, a missing
    ``register_data_type``) is refused when it replicates, not when the entry is applied.
    """
    if len(encoded) > _longest_head and encoded.startswith(_heads):
        return encoded  # the usual case, in two C calls
    end = 0
    if len(encoded) > 2 and encoded[0] == 0x82:
        head = encoded[1]
        if head == 0xF6:  # null: plain CBOR data
            return encoded
        if 0x60 <= head <= 0x77:  # a text string of head - 0x60 bytes
            start, end = 2, head - 0x5E
        elif head == 0x78:  # a text string whose length is the next byte
            start, end = 3, 3 + encoded[2]
        elif head == 0x79 and len(encoded) > 4:  # ... the next two bytes
            start, end = 4, 4 + int.from_bytes(encoded[2:4], "big")
        if end and len(encoded) > end:
            if encoded[:end] in _known_heads:
                return encoded
            tag = encoded[start:end].decode(errors="replace")
            raise DecodeError(f"unknown application data tag {short_repr(tag)} (not registered)")
    raise DecodeError(
        f"a payload is CBOR [tag, value] with a str or null tag, got {short_repr(encoded[:16])}"
    )


def check_payload(payload: Normal, max_bytes: int | None = None) -> None:
    """:func:`check_encodable` for a payload: encodes it (kept in ``payload.encoded``).

    Raises:
        InvalidRequest: the data cannot be encoded.
        PayloadTooLarge: its encoding is longer than ``max_bytes``.
    """
    try:
        size = len(payload.encoded)
    except ENCODE_ERRORS as exc:
        raise InvalidRequest(
            f"cannot encode {type(payload.data).__qualname__} as application data: "
            f"{short_text(str(exc))} "
            "(register its type with openraft_trio.codec.register_data_type)"
        ) from exc
    if max_bytes is not None and size > max_bytes:
        raise PayloadTooLarge(size, max_bytes)


def check_encodable(data: Any, max_bytes: int | None = None) -> None:
    """Raise unless ``data`` can travel as application data, within ``max_bytes`` if given.

    Raises:
        InvalidRequest: ``data`` (or something inside it) is neither plain CBOR nor of a
            registered type.
        PayloadTooLarge: its encoding is longer than ``max_bytes``.
    """
    check_payload(Normal(data), max_bytes)


ENTRY_HEAD_BYTES: Final = 32
"""What an entry adds to its payload when encoded, at most: ``[term, node_id, index, kind,
...]`` with ids below 2**64, plus the byte-string header of the payload's encoding."""


def entry_size(entry: Entry) -> int:
    """About how many bytes ``entry`` takes encoded (an upper bound for ids below 2**64):
    what a replication stream budgets AppendEntries by (``Config.max_payload_bytes``).

    Cheap: a payload is encoded once (on its leader, by the write check) and keeps its
    bytes. Data that cannot be encoded (possible only with in-memory storage and network)
    counts as its head alone.
    """
    payload = entry.payload
    if payload.__class__ is Normal:
        assert isinstance(payload, Normal)
        try:
            return ENTRY_HEAD_BYTES + len(payload.encoded)
        except ENCODE_ERRORS:
            return ENTRY_HEAD_BYTES
    if isinstance(payload, MembershipChange):
        return ENTRY_HEAD_BYTES + len(cbor2.dumps(unstructure_membership(payload.membership)))
    return ENTRY_HEAD_BYTES


_ARGUMENT_SIZES: Final = {24: 1, 25: 2, 26: 4, 27: 8}


def check_items(data: bytes | bytearray | memoryview, max_items: int, max_depth: int) -> None:
    """Walk the CBOR item headers of ``data`` (one message or payload) without building anything, and
    refuse it if it holds more than ``max_items`` items or nests arrays and maps deeper
    than ``max_depth``. Strings are skipped by their length, so the walk costs one step
    per item, and it stops at the first item over the limit.

    Raises:
        DecodeError: over a limit, truncated, or indefinite-length (never sent by us).
    """
    view = memoryview(data).cast("B")
    end = len(view)
    pos = 0
    items = 0
    left = 1  # items still to read in the innermost open container (the top level: 1)
    outer: list[int] = []  # the same count of every enclosing container
    while True:
        if pos >= end:
            raise DecodeError("not valid CBOR: truncated")
        initial = view[pos]
        pos += 1
        items += 1
        if items > max_items:
            raise DecodeError(f"message has more than {max_items} CBOR items")
        major, info = initial >> 5, initial & 31
        if info < 24:
            arg = info
        else:
            size = _ARGUMENT_SIZES.get(info)
            if size is None:
                raise DecodeError("not valid CBOR: indefinite length or reserved value")
            arg = int.from_bytes(view[pos : pos + size], "big")  # (a float's bits: unused)
            pos += size
        left -= 1
        if major in (2, 3):  # byte or text string
            pos += arg
        elif major in (4, 5, 6):
            children = arg if major == 4 else 2 * arg if major == 5 else 1
            if children:
                if major != 6 and len(outer) >= max_depth:
                    raise DecodeError(f"message nests deeper than {max_depth}")
                outer.append(left)
                left = children
        while left == 0:
            if not outer:
                return
            left = outer.pop()



# -- hot types -------------------------------------------------------------------------------


# Shape checks of decoded CBOR, the one set for this module and the wire
# (``network/_wire.py``): exact types (``bool`` is not an int here), and a ``DecodeError``
# whose message names ``what`` was expected and shows a clipped repr of what came.


def _what(what: str | None) -> str:
    return "" if what is None else f"{what}: "


def _int(raw: Any, what: str | None = None) -> int:
    if type(raw) is not int:
        raise DecodeError(f"{_what(what)}expected an int, got {short_repr(raw)}")
    return raw


def _opt_int(raw: Any, what: str | None = None) -> int | None:
    return None if raw is None else _int(raw, what)


def _bool(raw: Any, what: str) -> bool:
    if type(raw) is not bool:
        raise DecodeError(f"{what}: expected a bool, got {short_repr(raw)}")
    return raw


def _str(raw: Any, what: str) -> str:
    if type(raw) is not str:
        raise DecodeError(f"{what}: expected a str, got {short_repr(raw)}")
    return raw


def _bytes(raw: Any, what: str) -> bytes:
    if type(raw) is not bytes:
        raise DecodeError(f"{what}: expected bytes, got {short_repr(raw)}")
    return raw


def _fields(raw: Any, n: int, what: str) -> list[Any]:
    if type(raw) is not list or len(raw) != n:
        raise DecodeError(f"{what}: expected a list of {n}, got {short_repr(raw)}")
    return raw


def _structure_hook(fn: Callable[[Any], T]) -> Callable[[Any, Any], T]:
    """A cattrs structure hook (``(raw, cls)``) from a one-argument structure function."""
    return lambda raw, _cls: fn(raw)


def unstructure_log_id(log_id: LogId | None) -> list[Any] | None:
    """``LogId`` -> ``[term, node_id, index]`` (None stays None)."""
    if log_id is None:
        return None
    leader = log_id.leader_id
    return [leader.term, leader.node_id, log_id.index]


def structure_log_id(raw: Any) -> LogId | None:
    """The inverse of :func:`unstructure_log_id`; raises :class:`DecodeError`."""
    if raw is None:
        return None
    if not (isinstance(raw, list) and len(raw) == 3):
        raise DecodeError(f"a log id is [term, node_id, index], got {short_repr(raw)}")
    return LogId(LeaderId(_int(raw[0]), _opt_int(raw[1])), _int(raw[2]))


def unstructure_vote(vote: Vote) -> list[Any]:
    """``Vote`` -> ``[term, node_id, committed]``."""
    return [vote.leader_id.term, vote.leader_id.node_id, vote.committed]


def structure_vote(raw: Any) -> Vote:
    """The inverse of :func:`unstructure_vote`; raises :class:`DecodeError`."""
    if not (isinstance(raw, list) and len(raw) == 3 and isinstance(raw[2], bool)):
        raise DecodeError(f"a vote is [term, node_id, committed], got {short_repr(raw)}")
    return Vote(LeaderId(_int(raw[0]), _opt_int(raw[1])), raw[2])


def unstructure_membership(membership: Membership) -> list[Any]:
    """``Membership`` -> ``[[sorted voter ids]...], {node_id: [addr, data]}]``."""
    nodes = membership.nodes
    return [
        [sorted(config) for config in membership.configs],
        {node_id: [nodes[node_id].addr, dict(nodes[node_id].data)] for node_id in sorted(nodes)},
    ]


def structure_membership(raw: Any) -> Membership:
    """The inverse of :func:`unstructure_membership`; raises :class:`DecodeError`."""
    if not (isinstance(raw, list) and len(raw) == 2):
        raise DecodeError(f"a membership is [configs, nodes], got {short_repr(raw)}")
    configs, nodes = raw
    if not (isinstance(configs, list) and all(isinstance(c, list) for c in configs)):
        raise DecodeError("membership configs must be lists of node ids")
    if not isinstance(nodes, dict):
        raise DecodeError("membership nodes must be a map")
    decoded: dict[int, Node] = {}
    for node_id, value in nodes.items():
        if not (
            isinstance(value, list)
            and len(value) == 2
            and isinstance(value[0], str)
            and isinstance(value[1], dict)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in value[1].items())
        ):
            raise DecodeError(f"membership node {node_id!r} must be [addr, {{str: str}}]")
        decoded[_int(node_id)] = Node(value[0], value[1])
    return Membership(configs=[[_int(i) for i in c] for c in configs], nodes=decoded)


def unstructure_stored_membership(stored: StoredMembership) -> list[Any]:
    """``StoredMembership`` -> ``[log_id, membership]``."""
    return [unstructure_log_id(stored.log_id), unstructure_membership(stored.membership)]


def structure_stored_membership(raw: Any) -> StoredMembership:
    """The inverse of :func:`unstructure_stored_membership`; raises :class:`DecodeError`."""
    if not (isinstance(raw, list) and len(raw) == 2):
        raise DecodeError(f"a stored membership is [log_id, membership], got {short_repr(raw)}")
    return StoredMembership(structure_log_id(raw[0]), structure_membership(raw[1]))


def unstructure_entry(entry: Entry) -> list[Any]:
    """``Entry`` -> ``[term, node_id, index, kind, ...]`` (see the module docstring)."""
    leader = entry.log_id.leader_id
    payload = entry.payload
    head = [leader.term, leader.node_id, entry.log_id.index]
    if isinstance(payload, Normal):
        return [*head, _KIND_NORMAL, payload.encoded]
    if isinstance(payload, MembershipChange):
        return [*head, _KIND_MEMBERSHIP, unstructure_membership(payload.membership)]
    return [*head, _KIND_BLANK]


def structure_entry(raw: Any) -> Entry:
    """The inverse of :func:`unstructure_entry`; raises :class:`DecodeError`."""
    if not (isinstance(raw, list) and len(raw) >= 4):
        raise DecodeError(f"an entry is [term, node_id, index, kind, ...], got {short_repr(raw)}")
    log_id = LogId(LeaderId(_int(raw[0]), _opt_int(raw[1])), _int(raw[2]))
    kind = raw[3]
    if type(kind) is not int:
        raise DecodeError(f"an entry's payload kind must be an int, got {short_repr(kind)}")
    if kind == _KIND_NORMAL and len(raw) == 5:
        return Entry(log_id, Normal.from_encoded(check_payload_tag(_bytes(raw[4], "payload"))))
    if kind == _KIND_MEMBERSHIP and len(raw) == 5:
        return Entry(log_id, MembershipChange(structure_membership(raw[4])))
    if kind == _KIND_BLANK and len(raw) == 4:
        return Entry(log_id, BLANK)
    raise DecodeError(f"unknown entry payload kind {short_repr(kind)} (or wrong length)")


converter.register_unstructure_hook(LogId, unstructure_log_id)
converter.register_structure_hook(LogId, _structure_hook(structure_log_id))
converter.register_unstructure_hook(Vote, unstructure_vote)
converter.register_structure_hook(Vote, _structure_hook(structure_vote))
converter.register_unstructure_hook(Membership, unstructure_membership)
converter.register_structure_hook(Membership, _structure_hook(structure_membership))
converter.register_unstructure_hook(StoredMembership, unstructure_stored_membership)
converter.register_structure_hook(StoredMembership, _structure_hook(structure_stored_membership))
converter.register_unstructure_hook(Entry, unstructure_entry)
converter.register_structure_hook(Entry, _structure_hook(structure_entry))
converter.register_unstructure_hook(Blank, lambda _b: [])


def dumps(value: Any) -> bytes:
    """``value`` (anything the converter knows) -> CBOR bytes."""
    return cbor2.dumps(converter.unstructure(value))


def loads(data: bytes, cls: type[T]) -> T:
    """CBOR bytes -> a ``cls`` instance.

    Raises:
        DecodeError: not CBOR, or not the shape of ``cls``.
    """
    try:
        raw = cbor2.loads(data)
    except (cbor2.CBORDecodeError, ValueError, TypeError, OverflowError) as exc:
        raise DecodeError(f"not valid CBOR: {exc}") from exc
    if cls is Entry:
        return structure_entry(raw)  # type: ignore[return-value]
    try:
        return converter.structure(raw, cls)
    except DecodeError:
        raise
    except Exception as exc:
        raise DecodeError(f"not a {cls.__qualname__}: {short_text(str(exc))}") from exc


