"""Commands: what the Engine asks the runtime to do, in order.

The Engine never performs I/O. Each call appends Commands to ``engine.output``; RaftCore
takes them and runs them *in order* (so a ``SaveVote`` is durable before a later
``Respond`` is sent). Commands that must wait for an asynchronous log flush are held by the
Engine and released into ``output`` once their :class:`IOId` is flushed.
"""

from __future__ import annotations

from typing import Any

import attrs

from .._messages import TransferLeaderRequest, VoteRequest
from .._types import Entry, LogId, Snapshot, Vote


@attrs.frozen(order=False)
class IOId:
    """Identity of a log I/O: the vote it was submitted under and the last log id after it.

    Tracking by ``(vote, log_id)`` instead of by index alone keeps a stale completion from
    acknowledging an entry that was truncated and rewritten in a later term (the ABA race in
    openraft ``io_ordering.md``).
    """

    vote: Vote
    log_id: LogId | None

    def is_flushed_by(self, flushed: IOId | None) -> bool:
        """True once ``flushed`` covers this I/O.

        Writes are durable in submission order, so a flush under a greater vote covers every
        earlier write; under the same vote it covers log ids up to its own.
        """
        if flushed is None:
            return False
        if flushed.vote > self.vote:
            return True
        if flushed.vote.partial_cmp(self.vote) != 0:
            return False
        if self.log_id is None:
            return True
        return flushed.log_id is not None and flushed.log_id >= self.log_id


class Command:
    """Base class of commands (for isinstance checks and typing)."""

    __slots__ = ()


@attrs.frozen
class SaveVote(Command):
    """Persist ``vote``; later commands run only after it is durable."""

    vote: Vote


@attrs.frozen
class AppendEntries(Command):
    """Append ``entries`` to the local log; report ``IOFlushed(IOId(vote, last))``."""

    vote: Vote
    entries: tuple[Entry, ...]


@attrs.frozen
class TruncateLog(Command):
    """Delete every local log entry after ``after`` (a real conflict, never a stale one)."""

    after: LogId | None


@attrs.frozen
class SaveCommitted(Command):
    committed: LogId


@attrs.frozen
class Apply(Command):
    """Apply committed entries up to and including ``upto`` on the state machine."""

    upto: LogId


@attrs.frozen
class AdvanceCommitted(Command):
    """Internal to the Engine, never emitted: a follower's commit index move held back
    until the entries it covers are flushed (``committed <= flushed``)."""

    committed: LogId


@attrs.frozen
class BuildSnapshot(Command):
    """Ask the state machine worker for a snapshot of everything applied."""


@attrs.frozen(eq=False)
class InstallSnapshot(Command):
    """Install ``snapshot`` on the state machine (serialized with apply)."""

    snapshot: Snapshot


@attrs.frozen
class PurgeLog(Command):
    """Delete log entries up to and including ``upto`` (covered by a snapshot)."""

    upto: LogId


@attrs.frozen
class SendVote(Command):
    """Send ``req`` to every target in ``targets`` (a pre-vote if ``req.pre_vote``)."""

    req: VoteRequest
    targets: tuple[int, ...]


@attrs.frozen
class BecomeLeader(Command):
    """Open the leader nursery with replication and heartbeat tasks for ``targets``."""

    vote: Vote
    targets: tuple[int, ...]


@attrs.frozen
class AddReplicationTargets(Command):
    """A membership change added ``targets``: start their replication and heartbeat tasks."""

    vote: Vote
    targets: tuple[int, ...]


@attrs.frozen
class RemoveReplicationTargets(Command):
    """A membership change removed ``targets``: cancel their tasks."""

    targets: tuple[int, ...]


@attrs.frozen(eq=False)
class RespondWhenApplied(Command):
    """Answer ``responder`` with the ClientWriteResponse of ``log_id`` once it is applied."""

    log_id: LogId
    responder: Any


@attrs.frozen
class SendTransferLeader(Command):
    """Tell ``req.to_node_id`` to campaign now (it is up to date; we stopped writing)."""

    req: TransferLeaderRequest


@attrs.frozen
class QuitLeader(Command):
    """Cancel the leader nursery; fail the pending client writes that did not commit.

    A write at or below ``committed`` is committed: it stays pending and is answered with
    its success once applied, even though this node no longer leads (PROTOCOL-NOTES
    "Reads": only what was not yet committed is of unknown outcome). Writes after it fail
    with ``ForwardToLeader(leader_id, maybe_committed=True)``.
    """

    leader_id: int | None
    committed: LogId | None


@attrs.frozen
class Replicate(Command):
    """Tell ``replication[target]`` what to stream.

    A new ``epoch`` resets the stream to start right after ``prev``; within one epoch only
    ``upto`` and ``committed`` move forward and the stream continues from where it is.
    """

    target: int
    epoch: int
    prev: LogId | None
    upto: LogId | None
    committed: LogId | None


@attrs.frozen
class ReportLogReversion(Command):
    """``target`` lost log entries it had acknowledged up to ``lost_matching``: it now needs
    entries from ``reverted_to``. Log it once (an error, or a warning when ``allowed``:
    the target is then replicated again from there)."""

    target: int
    lost_matching: LogId
    reverted_to: int
    allowed: bool


@attrs.frozen
class SendHeartbeat(Command):
    """Make every heartbeat task send one heartbeat now, stamped with ``read_round``.

    A heartbeat carries the latest round issued when it leaves, so its ack proves that the
    target still followed us *after* every read that asked for that round (ReadIndex).
    """

    read_round: int


@attrs.frozen(eq=False)
class Respond(Command):
    """Send ``value`` (a result, or an exception to raise) to the caller behind ``responder``."""

    responder: Any
    value: Any


__all__ = [
    "AddReplicationTargets",
    "AppendEntries",
    "Apply",
    "BecomeLeader",
    "BuildSnapshot",
    "Command",
    "IOId",
    "InstallSnapshot",
    "PurgeLog",
    "QuitLeader",
    "RemoveReplicationTargets",
    "Replicate",
    "ReportLogReversion",
    "Respond",
    "RespondWhenApplied",
    "SaveCommitted",
    "SaveVote",
    "SendHeartbeat",
    "SendTransferLeader",
    "SendVote",
    "TruncateLog",
]
