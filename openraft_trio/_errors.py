"""The error families. Every error raised to users subclasses :class:`RaftError`.

No message embeds a whole value: values are shown with :func:`short_repr`, messages
quoted from elsewhere are clipped with :func:`short_text`.

Rejections that are part of the protocol (a refused vote, a conflicting append) are data in
responses, not exceptions. Exceptions say whose fault a failure was:

* ``ForwardToLeader``: you asked a node that does not lead; ask ``leader_id``.
* ``QuorumNotEnough``: this node cannot prove it still leads (no quorum reachable).
* ``ChangeMembershipError``, ``InitializeError``, ``ConfigError``, ``InvalidRequest``
  (``PayloadTooLarge``: a value over a size limit): you asked for something invalid.
* ``Fatal``: the node is stopped (``Stopped``) or its storage failed (``StorageError``).
* ``RPCError``: the network failed (raised by ``RaftNetwork`` implementations).
"""

from __future__ import annotations

import copy
import reprlib
from typing import Any, Final, TypeVar

from ._types import LogId, Node

_repr = reprlib.Repr()
_repr.maxlevel = 3
_repr.maxlist = 6
_repr.maxdict = 4
_repr.maxstring = 40
_repr.maxother = 40
SHORT_TEXT: Final = 500
"""The most characters of foreign text (a remote's or a library's message) an error
message carries."""


def short_repr(value: Any) -> str:
    """A bounded ``repr`` for error messages: no message embeds a whole value (a 10 MB
    value must not make a 10 MB message), however big, deep or odd the value is."""
    try:
        return _repr.repr(value)
    except Exception:  # a broken __repr__: its type is enough
        return f"<{type(value).__name__}>"


def short_text(text: str) -> str:
    """``text`` clipped to :data:`SHORT_TEXT` characters (for messages built from other
    errors, which may embed a value)."""
    return text if len(text) <= SHORT_TEXT else text[: SHORT_TEXT - 3] + "..."


_E = TypeVar("_E", bound=BaseException)


def copy_for_caller(error: _E) -> _E:
    """A new instance of ``error`` (same type and attributes) chained ``from`` it.

    One exception object raised in several tasks collects their tracebacks into one and
    links their contexts; when one failure answers many callers, each raises its own copy.
    """
    fresh = copy.copy(error)
    fresh.__cause__ = error
    return fresh


class RaftError(Exception):
    """Base class of every openraft_trio error."""


class ForwardToLeader(RaftError):
    """This node is not the leader; ``leader_id``/``leader_node`` say who is, if known.

    ``maybe_committed`` is True when a write was appended to this node's log before it
    lost leadership: its outcome is unknown (a later leader may still commit it), so retry
    it elsewhere only if it is idempotent. When False the write was not appended.
    ``log_id`` is then where it was appended (when known): the write took effect exactly
    if that log id is later committed.
    """

    def __init__(
        self,
        leader_id: int | None = None,
        leader_node: Node | None = None,
        *,
        maybe_committed: bool = False,
        log_id: LogId | None = None,
    ) -> None:
        super().__init__(leader_id, leader_node)
        self.leader_id = leader_id
        self.leader_node = leader_node
        self.maybe_committed = maybe_committed
        self.log_id = log_id

    def __str__(self) -> str:
        if self.leader_id is None:
            return "not the leader; leader unknown"
        addr = f" at {self.leader_node.addr}" if self.leader_node is not None else ""
        return f"not the leader; forward to node {self.leader_id}{addr}"


class QuorumNotEnough(RaftError):
    """The leader could not confirm its leadership with a quorum."""


class ChangeMembershipError(RaftError):
    """A membership change was refused."""


class InProgress(ChangeMembershipError):
    """Another membership change has not committed yet."""


class EmptyMembership(ChangeMembershipError):
    """The requested voter set is empty."""


class LearnerNotFound(ChangeMembershipError):
    """A requested voter is not a learner (or voter) of the cluster yet, or the learner
    ``remove_learner`` was asked to remove is not a member."""

    def __init__(self, node_id: int, message: str | None = None) -> None:
        super().__init__(message or f"node {node_id} must be added as a learner first")
        self.node_id = node_id

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.node_id, str(self)))


class NotALearner(ChangeMembershipError):
    """``remove_learner`` was asked to remove a voter: voters leave through
    ``change_membership`` (joint consensus), never by being dropped from ``nodes``."""

    def __init__(self, node_id: int) -> None:
        super().__init__(
            f"node {node_id} is a voter, not a learner: remove it with change_membership"
        )
        self.node_id = node_id

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.node_id,))


class NotAVoter(RaftError):
    """A leader transfer was asked for a node that is not a voter of the effective
    membership (a learner, or an unknown id): only a voter can be elected."""

    def __init__(self, node_id: int) -> None:
        super().__init__(f"node {node_id} is not a voter: leadership can only go to a voter")
        self.node_id = node_id

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.node_id,))


class InitializeError(RaftError):
    """``initialize()`` was refused."""


class NotAllowed(InitializeError):
    """The node already has a vote or log; it cannot be initialized again."""


class NotInMembers(InitializeError):
    """The node initializing the cluster is not one of the members."""


class Fatal(RaftError):
    """The node stopped and cannot serve requests."""


class Stopped(Fatal):
    """The node was shut down (or its ``open_raft`` block exited)."""

    def __init__(self, msg: str = "raft node is stopped") -> None:
        super().__init__(msg)


class StorageError(Fatal):
    """Storage failed; the node stops (fail-stop, never retried-and-continued)."""


class StorageContractViolation(StorageError):
    """A log store or state machine broke the storage contract (e.g. entries the log must
    still hold are missing, or entries were purged with no snapshot covering them): a bug
    in the storage implementation, not an I/O failure. The node stops, like any
    ``StorageError``.
    """


class ConfigError(RaftError):
    """A configuration value is invalid. ``field`` names it."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"invalid config {field}: {reason}")
        self.field = field
        self.reason = reason


class WaitTimeout(RaftError):
    """``raft.wait(timeout)...`` did not see the awaited condition in time."""


class RPCError(RaftError):
    """A remote call failed."""


class Unreachable(RPCError):
    """The target cannot be reached; the caller backs off before retrying."""


class NetworkError(RPCError):
    """A transient network failure; the caller may retry at once."""


class RPCTimeout(RPCError):
    """The call did not finish within ``RPCOption.hard_ttl``."""


class RemoteError(RPCError):
    """The remote node handled the call and failed."""

    def __init__(self, message: str, remote: Any = None) -> None:
        super().__init__(message)
        self.remote = remote


class InvalidRequest(RaftError):
    """An inbound RPC or API argument is malformed; it was rejected and nothing changed."""


class PayloadTooLarge(InvalidRequest):
    """A value or request is larger than a configured limit. It was refused before
    anything was logged or sent: retrying it cannot help, and nothing needs cleaning up.

    ``size`` is its encoded size in bytes, ``limit`` the limit it broke and ``what`` names
    the thing and the setting (``Config.max_entry_bytes`` for a write's data,
    ``max_frame_size`` for a transport frame).
    """

    def __init__(
        self, size: int, limit: int, what: str = "entry data (Config.max_entry_bytes)"
    ) -> None:
        super().__init__(f"{what}: {size} bytes, over the limit of {limit} bytes")
        self.size = size
        self.limit = limit
        self.what = what

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.size, self.limit, self.what))


# The contract names sub-errors both ways: ``raft.InProgress`` and
# ``raft.ChangeMembershipError.InProgress`` are the same class.
ChangeMembershipError.InProgress = InProgress  # type: ignore[attr-defined]
ChangeMembershipError.EmptyMembership = EmptyMembership  # type: ignore[attr-defined]
ChangeMembershipError.LearnerNotFound = LearnerNotFound  # type: ignore[attr-defined]
ChangeMembershipError.NotALearner = NotALearner  # type: ignore[attr-defined]
InitializeError.NotAllowed = NotAllowed  # type: ignore[attr-defined]
InitializeError.NotInMembers = NotInMembers  # type: ignore[attr-defined]
Fatal.StorageError = StorageError  # type: ignore[attr-defined]
Fatal.Stopped = Stopped  # type: ignore[attr-defined]
RPCError.Unreachable = Unreachable  # type: ignore[attr-defined]
RPCError.NetworkError = NetworkError  # type: ignore[attr-defined]
RPCError.RPCTimeout = RPCTimeout  # type: ignore[attr-defined]
RPCError.RemoteError = RemoteError  # type: ignore[attr-defined]
