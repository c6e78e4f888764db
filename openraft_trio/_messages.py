"""RPC messages exchanged between Raft nodes (the wire contract of every transport)."""

from __future__ import annotations

from typing import Any, Generic, final

import attrs
from typing_extensions import TypeVar

from ._types import Entry, LogId, Vote

# The state machine's reply type (``ClientWriteResponse.data``); ``Any`` unless known.
_Reply = TypeVar("_Reply", covariant=True, default=Any)


@final
@attrs.frozen
class VoteRequest:
    """Ask for a vote (or, with ``pre_vote``, ask whether a vote *would* be granted).

    ``leader_transfer`` marks a campaign started by a leader transfer: followers' leader
    lease does not block it.
    """

    vote: Vote
    last_log_id: LogId | None
    pre_vote: bool = False
    leader_transfer: bool = False


@final
@attrs.frozen
class VoteResponse:
    """``vote`` is the responder's vote after handling the request."""

    vote: Vote
    vote_granted: bool
    last_log_id: LogId | None


@final
@attrs.frozen
class AppendEntriesRequest:
    """Replicate ``entries`` after ``prev_log_id``; also a heartbeat when empty.

    A heartbeat has ``prev_log_id=None``, no entries and ``leader_commit=None``: it asserts
    leadership and touches no log state.
    """

    vote: Vote
    prev_log_id: LogId | None
    entries: tuple[Entry, ...]
    leader_commit: LogId | None

    @property
    def is_heartbeat(self) -> bool:
        """True when the request carries only the vote: no ``prev_log_id``, no entries, no
        ``leader_commit``."""
        return self.prev_log_id is None and not self.entries and self.leader_commit is None


@final
@attrs.frozen
class AppendEntriesResponse:
    """Outcome of an AppendEntries.

    * ``success``: the follower's log matches the leader's up to ``matching``.
    * ``conflict``: ``prev_log_id`` was not found; ``conflict_hint`` is where the follower
      wants the leader to try next (its last log index + 1, or the first index of the
      conflicting term), so the leader backs up in one step.
    * neither: the request's vote was rejected; ``vote`` is the higher vote.
    """

    vote: Vote
    success: bool
    matching: LogId | None = None
    conflict: bool = False
    conflict_hint: int | None = None


@final
@attrs.frozen
class TransferLeaderRequest:
    """Sent by the leader to ``to_node_id``: campaign now, you are up to date."""

    from_vote: Vote
    to_node_id: int
    last_log_id: LogId | None


@final
@attrs.frozen
class InstallSnapshotResponse:
    """Reply to ``RaftNetwork.full_snapshot``: the receiver's vote after the install."""

    vote: Vote


@final
class ClientWriteResponse(Generic[_Reply]):
    """Reply to a committed write: its ``log_id``, the state machine's ``data`` and, for a
    membership entry, the ``membership``.

    Generic in the state machine's reply type: a ``Raft[Deposit, Receipt]`` answers
    ``client_write`` with a ``ClientWriteResponse[Receipt]``, whose ``data`` is a
    ``Receipt`` for type checkers (at run time the class is the same)."""

    __slots__ = ("data", "log_id", "membership")

    def __init__(self, log_id: LogId, data: _Reply, membership: Any = None) -> None:
        self.log_id = log_id
        self.data: _Reply = data
        self.membership = membership

    def __repr__(self) -> str:
        return f"ClientWriteResponse(log_id={self.log_id}, data={self.data!r})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, ClientWriteResponse)
            and (self.log_id, self.data, self.membership)
            == (other.log_id, other.data, other.membership)
        )

    __hash__ = None  # type: ignore[assignment]
