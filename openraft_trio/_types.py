"""Raft value types: leader ids, log ids, votes, entries, membership, snapshots.

All are frozen attrs classes. Raft orders some of them:

* ``LeaderId(term, node_id)`` and ``LogId(leader_id, index)`` are totally ordered
  (term first). A ``LeaderId`` with ``node_id=None`` is "no leader chosen in this term"
  and sorts before every node of the same term.
* ``Vote`` is *partially* ordered (openraft ``vote.md``): two uncommitted votes of one term
  for different nodes are incomparable, so neither replaces the other. Use
  :meth:`Vote.partial_cmp`, or the ``>=``/``>`` operators, which answer ``False`` for
  incomparable votes.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from typing import Any, Final, Generic, final

import attrs
from typing_extensions import TypeVar

# The application data a payload carries (the state machine's command type). Defaults to
# ``Any``: a bare ``Entry`` or ``Normal`` is one of any data (PEP 696 default, spelled with
# ``typing_extensions`` until Python 3.13).
_Command = TypeVar("_Command", covariant=True, default=Any)


@final
@attrs.frozen(order=False)
class LeaderId:
    """The leader (or candidate) of a term: ``(term, node_id)``."""

    term: int
    node_id: int | None = None

    def _key(self) -> tuple[int, int]:
        return (self.term, -1 if self.node_id is None else self.node_id)

    def __lt__(self, other: LeaderId) -> bool:
        return self._key() < other._key()

    def __le__(self, other: LeaderId) -> bool:
        return self._key() <= other._key()

    def __gt__(self, other: LeaderId) -> bool:
        return self._key() > other._key()

    def __ge__(self, other: LeaderId) -> bool:
        return self._key() >= other._key()

    def __str__(self) -> str:
        return f"T{self.term}-N{self.node_id}"


@final
@attrs.frozen(order=False)
class LogId:
    """Identity of a log entry: the leader that proposed it and its index."""

    leader_id: LeaderId
    index: int

    @property
    def term(self) -> int:
        """The term of the leader that wrote the entry (``leader_id.term``)."""
        return self.leader_id.term

    def _key(self) -> tuple[int, int, int]:
        lid = self.leader_id
        return (lid.term, -1 if lid.node_id is None else lid.node_id, self.index)

    def __lt__(self, other: LogId) -> bool:
        return self._key() < other._key()

    def __le__(self, other: LogId) -> bool:
        return self._key() <= other._key()

    def __gt__(self, other: LogId) -> bool:
        return self._key() > other._key()

    def __ge__(self, other: LogId) -> bool:
        return self._key() >= other._key()

    def __str__(self) -> str:
        return f"{self.leader_id}.{self.index}"


def log_id_ge(a: LogId | None, b: LogId | None) -> bool:
    """``a >= b`` where ``None`` (an empty log) is the smallest log id."""
    if b is None:
        return True
    if a is None:
        return False
    return a >= b


def max_log_id(a: LogId | None, b: LogId | None) -> LogId | None:
    """The larger of two optional log ids."""
    return a if log_id_ge(a, b) else b


def index_of(log_id: LogId | None) -> int:
    """The index of ``log_id`` (-1 for none: an empty log)."""
    return -1 if log_id is None else log_id.index


def next_index(log_id: LogId | None) -> int:
    """The index right after ``log_id`` (0 for an empty log)."""
    return 0 if log_id is None else log_id.index + 1


@final
@attrs.frozen(order=False)
class Vote:
    """A node's vote: which leader it backs in which term, and whether that leader won.

    ``committed=True`` means a quorum granted this vote: ``leader_id`` is the leader.
    """

    leader_id: LeaderId
    committed: bool = False

    @property
    def term(self) -> int:
        """The term of the vote (``leader_id.term``)."""
        return self.leader_id.term

    def partial_cmp(self, other: Vote) -> int | None:
        """-1, 0 or 1 as ``self`` is less than, equal to or greater than ``other``;
        ``None`` if they are incomparable (same term, different candidates, neither won).
        """
        a, b = self.leader_id, other.leader_id
        if a.term != b.term:
            return -1 if a.term < b.term else 1
        if a.node_id == b.node_id:
            if self.committed == other.committed:
                return 0
            return 1 if self.committed else -1
        # Same term, different nodes. "No vote yet" is below any vote of the term; a
        # committed vote (an elected leader) is above an uncommitted one.
        if a.node_id is None:
            return -1
        if b.node_id is None:
            return 1
        if self.committed and not other.committed:
            return 1
        if other.committed and not self.committed:
            return -1
        return None

    def __ge__(self, other: Vote) -> bool:
        c = self.partial_cmp(other)
        return c is not None and c >= 0

    def __gt__(self, other: Vote) -> bool:
        return self.partial_cmp(other) == 1

    def __le__(self, other: Vote) -> bool:
        c = self.partial_cmp(other)
        return c is not None and c <= 0

    def __lt__(self, other: Vote) -> bool:
        return self.partial_cmp(other) == -1

    def is_leader_of(self, node_id: int) -> bool:
        """True if this vote is committed and makes ``node_id`` the leader."""
        return self.committed and self.leader_id.node_id == node_id

    def __str__(self) -> str:
        return f"<{self.leader_id}{':Q' if self.committed else ''}>"


@final
@attrs.frozen
class Node:
    """Address book entry of a cluster member."""

    addr: str
    data: Mapping[str, str] = attrs.field(factory=dict)


def _voter_sets(configs: Any) -> tuple[frozenset[int], ...]:
    return tuple(frozenset(c) for c in configs)


@final
@attrs.frozen
class Membership:
    """Voter configuration(s) and the nodes (voters and learners) to replicate to.

    ``configs`` holds one voter set, or two while a joint configuration is in effect.
    Every node in ``nodes`` that is not a voter is a learner.
    """

    configs: tuple[frozenset[int], ...] = attrs.field(converter=_voter_sets)
    nodes: Mapping[int, Node] = attrs.field(factory=dict)

    @property
    def voter_ids(self) -> frozenset[int]:
        """Every voter: the union of the voter sets (both while joint)."""
        out: frozenset[int] = frozenset()
        for c in self.configs:
            out |= c
        return out

    @property
    def learner_ids(self) -> frozenset[int]:
        """The members that are not voters in any voter set."""
        return frozenset(self.nodes) - self.voter_ids

    @property
    def is_joint(self) -> bool:
        """True while two voter sets are in effect (joint consensus)."""
        return len(self.configs) > 1

    def is_voter(self, node_id: int) -> bool:
        """True if ``node_id`` is a voter in any of the voter sets."""
        return any(node_id in c for c in self.configs)

    def is_quorum(self, granted: set[int] | frozenset[int]) -> bool:
        """True if ``granted`` holds a majority of *each* voter set (joint consensus)."""
        return all(len(c & granted) * 2 > len(c) for c in self.configs)

    def sorted_node_ids(self) -> list[int]:
        """Every member (voters and learners), sorted."""
        return sorted(self.nodes)


@final
@attrs.frozen
class StoredMembership:
    """A membership and the log id of the entry that carried it (None: the empty one)."""

    log_id: LogId | None = None
    membership: Membership = attrs.field(factory=lambda: Membership(configs=()))


# Entry payloads ---------------------------------------------------------------------------


@final
@attrs.frozen
class Blank:
    """A no-op entry; a new leader appends one of its term (Raft §5.4.2, §8)."""


_UNDECODED: Final = object()  # Normal._data before a payload received as bytes is decoded


def _bind_then_decode(encoded: bytes) -> Any:
    _Codec.bind()
    return _Codec.decode(encoded)


def _bind_then_encode(data: Any) -> bytes:
    _Codec.bind()
    return _Codec.encode(data)


class _Codec:
    """The codec's payload functions, bound on first use (the codec imports this module;
    an import statement per decode would cost more than the decode's own overhead). Until
    then each attribute is a stand-in that binds both, then calls the real one."""

    decode: Callable[[bytes], Any] = _bind_then_decode
    encode: Callable[[Any], bytes] = _bind_then_encode

    @classmethod
    def bind(cls) -> None:
        from .codec import decode_payload, encoded_data

        cls.decode = decode_payload
        cls.encode = encoded_data


@final
class Normal(Generic[_Command]):
    """Application data, handed to the state machine.

    ``Normal(data)`` holds the value; :meth:`Normal.from_encoded` holds its encoding (the
    CBOR bytes of :func:`openraft_trio.codec.encode_data`), as a follower receives it and a
    log store reads it. Each side is computed from the other at most once, when first
    asked for, and kept: a write is encoded once on its leader and carried as those bytes
    through the log, the wire and the disk; a follower decodes it only where it is applied
    (``payload.data``). Immutable; equal when the data are equal. Generic in the data's
    type for type checkers (``Normal[Deposit]``); at run time the same class.
    """

    __slots__ = ("_data", "_encoded")
    __match_args__ = ("data",)

    _data: Any
    _encoded: bytes | None

    def __init__(self, data: _Command) -> None:
        _set_data(self, data)
        _set_encoded(self, None)

    @classmethod
    def from_encoded(cls, encoded: bytes) -> Normal:
        """The payload whose data ``encoded`` is (see :attr:`encoded`); decoded lazily."""
        if type(encoded) is not bytes:
            raise TypeError(f"encoded must be bytes, got {type(encoded).__name__}")
        payload = _new(cls)
        _set_data(payload, _UNDECODED)
        _set_encoded(payload, encoded)
        return payload

    @property
    def data(self) -> _Command:
        """The application data, decoded from :attr:`encoded` on first access.

        Raises:
            openraft_trio.codec.PayloadDecodeError: the bytes do not decode (an unknown
                tag, fields of the wrong shape, not CBOR). It is a ``StorageError``: the
                log holds an entry this node cannot apply, so the node stops.
        """
        data: _Command = self._data
        if data is _UNDECODED:
            encoded = self._encoded
            assert encoded is not None  # one of the two is always at hand
            data = _Codec.decode(encoded)
            _set_data(self, data)
        return data

    @property
    def encoded(self) -> bytes:
        """The data's encoding, computed on first access (see
        :func:`openraft_trio.codec.encoded_data`).

        Raises:
            cbor2.CBOREncodeError, TypeError, ValueError: the data cannot be encoded (it is
                neither plain CBOR nor of a registered type).
        """
        encoded = self._encoded
        if encoded is None:
            encoded = _Codec.encode(self._data)
            _set_encoded(self, encoded)
        return encoded

    @property
    def is_decoded(self) -> bool:
        """Whether :attr:`data` is at hand without decoding."""
        return self._data is not _UNDECODED

    def __setattr__(self, name: str, value: Any) -> None:
        raise attrs.exceptions.FrozenInstanceError()

    def __delattr__(self, name: str) -> None:
        raise attrs.exceptions.FrozenInstanceError()

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not Normal:
            return NotImplemented
        assert isinstance(other, Normal)
        if self is other:
            return True
        # Equal encodings are equal data; unequal ones may still be (1 == 1.0).
        if self._encoded is not None and self._encoded == other._encoded:
            return True
        return bool(self.data == other.data)

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    def __hash__(self) -> int:
        return hash((Normal, self.data))

    def __repr__(self) -> str:
        if self._data is _UNDECODED:
            from .codec import DecodeError

            try:
                self.data  # noqa: B018 (decodes and keeps the value)
            except DecodeError:
                encoded = self._encoded
                assert encoded is not None
                return f"Normal.from_encoded({encoded[:32]!r}{'...' if len(encoded) > 32 else ''})"
        return f"Normal(data={self._data!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        if self._encoded is not None:
            return (Normal.from_encoded, (self._encoded,))
        return (Normal, (self._data,))


@final
@attrs.frozen
class MembershipChange:
    """A new membership configuration (effective as soon as it is appended)."""

    membership: Membership


# Normal's slots are written through their descriptors: its __setattr__ refuses (frozen).
_new: Final = object.__new__
_set_data: Final = Normal.__dict__["_data"].__set__
_set_encoded: Final = Normal.__dict__["_encoded"].__set__

Payload = Blank | Normal | MembershipChange

BLANK: Final = Blank()


@final
@attrs.frozen
class Entry(Generic[_Command]):
    """One log entry: its ``log_id`` and its ``payload`` (``Blank``, ``Normal`` or
    ``MembershipChange``). Generic in the ``Normal`` data's type for type checkers
    (``Entry[Deposit]``); a bare ``Entry`` carries any data."""

    log_id: LogId
    payload: Blank | Normal[_Command] | MembershipChange

    @property
    def index(self) -> int:
        """The entry's log index (``log_id.index``)."""
        return self.log_id.index


@final
@attrs.frozen
class SnapshotMeta:
    """What a snapshot covers: the ``last_log_id`` applied into it, the membership in
    effect there (``last_membership``) and a ``snapshot_id`` naming this build."""

    last_log_id: LogId | None
    last_membership: StoredMembership
    snapshot_id: str


@final
@attrs.frozen
class Snapshot:
    """A snapshot: its ``meta`` and the state machine's serialized state (``data``)."""

    meta: SnapshotMeta
    data: bytes


@final
@attrs.frozen
class LogState:
    """What a log store holds: the last purged log id and the last log id (either None)."""

    last_purged_log_id: LogId | None
    last_log_id: LogId | None


class ServerState(enum.Enum):
    """A node's role: ``LEARNER``, ``FOLLOWER``, ``CANDIDATE``, ``LEADER``, or ``SHUTDOWN``
    once it stopped."""

    LEARNER = "Learner"
    FOLLOWER = "Follower"
    CANDIDATE = "Candidate"
    LEADER = "Leader"
    SHUTDOWN = "Shutdown"


class ReadPolicy(enum.Enum):
    """How ``ensure_linearizable`` confirms this node still leads.

    READ_INDEX: one quorum round of heartbeats sent after the read arrived.
    LEASE_READ: no round trip while the leader lease is valid (bounded clock drift).
    """

    READ_INDEX = "ReadIndex"
    LEASE_READ = "LeaseRead"
