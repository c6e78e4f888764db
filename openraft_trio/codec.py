"""The one cattrs converter: how openraft_trio values become CBOR and come back.

Used by the durable log store (entries on disk) and the TCP transport (frames). Hot types
have positional (list) encodings, registered as cattrs hooks, because building attrs
objects dominates codec cost and lists shrink frames:

* ``LogId`` -> ``[term, node_id, index]``; ``Vote`` -> ``[term, node_id, committed]``
* ``Entry`` -> ``[term, node_id, index, kind, ...]`` with kind 0 ``Blank``, 1 ``Normal``
  (``[tag, value]`` follows), 2 ``MembershipChange`` (the membership follows)
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
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, TypeVar

import cattrs
import cbor2

from ._errors import InvalidRequest, PayloadTooLarge, short_repr, short_text
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
    "DecodeError",
    "check_encodable",
    "converter",
    "decode_data",
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
_type_of: dict[str, type] = {}
# Unstructure hook per registered type, looked up once (the hot path of every write).
_unstructure_of: dict[type, Callable[[Any], Any]] = {}


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
        return converter.structure(value, cls)
    except Exception as exc:
        raise DecodeError(f"bad fields for {tag!r}: {short_text(str(exc))}") from exc


_IMMUTABLE_SCALARS: Final = (str, bytes, int, float, bool, type(None))
_ENCODED_CACHE_SIZE: Final = 4096
_ENCODED_CACHE_BYTES: Final = 64 * 1024 * 1024
ENCODE_ERRORS: Final = (cbor2.CBOREncodeError, TypeError, ValueError)
"""What encoding application data raises when it is neither plain CBOR nor registered."""
# id(data) -> (data, CBOR of encode_data(data)) for immutable values: a write is checked
# (check_encodable), sized for replication (entry_size) and written to disk; all use one
# encoding. Holding ``data`` keeps its id from being reused while the entry is cached.
# Bounded in entries and in bytes (large values would otherwise pin gigabytes).
_encoded: dict[int, tuple[Any, bytes]] = {}
_encoded_bytes = 0


def encoded_data(data: Any) -> bytes:
    """The CBOR bytes of :func:`encode_data` ``(data)``, cached for immutable values
    (registered frozen types and scalars; a mutable container is encoded every time).

    Raises:
        cbor2.CBOREncodeError, TypeError, ValueError: ``data`` cannot be encoded.
    """
    global _encoded_bytes
    key = id(data)
    hit = _encoded.get(key)
    if hit is not None and hit[0] is data:
        return hit[1]
    raw = cbor2.dumps(encode_data(data))
    if type(data) in _tag_of or isinstance(data, _IMMUTABLE_SCALARS):
        if len(_encoded) >= _ENCODED_CACHE_SIZE or _encoded_bytes + len(raw) > _ENCODED_CACHE_BYTES:
            _encoded.clear()
            _encoded_bytes = 0
        _encoded[key] = (data, raw)
        _encoded_bytes += len(raw)
    return raw


def check_encodable(data: Any, max_bytes: int | None = None) -> None:
    """Raise unless ``data`` can travel as application data, within ``max_bytes`` if given.

    Raises:
        InvalidRequest: ``data`` (or something inside it) is neither plain CBOR nor of a
            registered type.
        PayloadTooLarge: its encoding is longer than ``max_bytes``.
    """
    try:
        size = len(encoded_data(data))
    except ENCODE_ERRORS as exc:
        raise InvalidRequest(
            f"cannot encode {type(data).__qualname__} as application data: "
            f"{short_text(str(exc))} "
            "(register its type with openraft_trio.codec.register_data_type)"
        ) from exc
    if max_bytes is not None and size > max_bytes:
        raise PayloadTooLarge(size, max_bytes)


ENTRY_HEAD_BYTES: Final = 32
"""What an entry adds to its payload when encoded, at most: ``[term, node_id, index, kind,
...]`` with ids below 2**64, plus the ``[tag, value]`` wrapper of application data."""


def entry_size(entry: Entry) -> int:
    """About how many bytes ``entry`` takes encoded (an upper bound for ids below 2**64):
    what a replication stream budgets AppendEntries by (``Config.max_payload_bytes``).

    Cheap for a recent write: its data's encoding is cached. Data that cannot be encoded
    (possible only with in-memory storage and network) counts as its head alone.
    """
    payload = entry.payload
    if isinstance(payload, Normal):
        data = payload.data
        hit = _encoded.get(id(data))  # the hot path, inlined: a write checked just now
        if hit is not None and hit[0] is data:
            return ENTRY_HEAD_BYTES + len(hit[1])
        try:
            return ENTRY_HEAD_BYTES + len(encoded_data(data))
        except ENCODE_ERRORS:
            return ENTRY_HEAD_BYTES
    if isinstance(payload, MembershipChange):
        return ENTRY_HEAD_BYTES + len(cbor2.dumps(unstructure_membership(payload.membership)))
    return ENTRY_HEAD_BYTES


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
        return [*head, _KIND_NORMAL, encode_data(payload.data)]
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
        return Entry(log_id, Normal(decode_data(raw[4])))
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


