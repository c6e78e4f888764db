"""The Engine's state that is not log pointers (those are :mod:`io_state`'s): the
membership, and the leader's and the candidate's state."""

from __future__ import annotations

import math
from typing import Any

import attrs

from .._types import LogId, Membership, ReadPolicy, StoredMembership, Vote


@attrs.define
class MembershipState:
    """The committed membership and the effective one (the last appended; may be newer).

    A membership takes effect when appended and reverts if its entry is truncated, so the
    uncommitted ones are kept in order after ``committed``.
    """

    committed: StoredMembership = attrs.field(factory=StoredMembership)
    uncommitted: list[StoredMembership] = attrs.field(factory=list)

    @property
    def effective(self) -> StoredMembership:
        return self.uncommitted[-1] if self.uncommitted else self.committed

    @property
    def membership(self) -> Membership:
        return self.effective.membership

    def append(self, stored: StoredMembership) -> None:
        self.uncommitted.append(stored)

    def commit_upto(self, index: int) -> None:
        while self.uncommitted:
            first = self.uncommitted[0]
            assert first.log_id is not None
            if first.log_id.index > index:
                break
            self.committed = self.uncommitted.pop(0)

    def truncate_after(self, index: int) -> None:
        self.uncommitted = [
            stored
            for stored in self.uncommitted
            if stored.log_id is not None and stored.log_id.index <= index
        ]


@attrs.define
class ProgressEntry:
    """What the leader knows about one target's log.

    ``matching`` only moves forward (a stale or reordered reply never lowers it) — except
    when the target is found to have lost entries it acknowledged (log reversion): then it
    falls to None, since those acknowledgements no longer hold. ``epoch`` names the current
    replication stream — replies from an older one are ignored.
    """

    matching: LogId | None = None
    epoch: int = 0
    # Where the current stream started (the prev_log_id of its first request).
    stream_prev: LogId | None = None
    # ``matching`` when the current stream started: every request of the stream left after
    # the target had acknowledged it, so a conflict at or below it is a log reversion.
    stream_start_matching: LogId | None = None
    # The last ``upto``/``committed`` sent to the stream, to avoid redundant commands.
    sent_upto: LogId | None = None
    sent_committed: LogId | None = None
    # Log reversions found on this target, and the index its log was found to need
    # entries from at the last one (its conflict hint: 0 for a wiped log).
    log_reversions: int = 0
    reverted_to: int | None = None
    # Replication stopped after a log reversion (``Config.allow_log_reversion`` is off).
    halted: bool = False


@attrs.define
class PendingRead:
    read_time: float
    read_round: int
    read_log_id: LogId | None
    policy: ReadPolicy
    responder: Any


@attrs.define
class LeaderState:
    vote: Vote
    noop_log_id: LogId
    progress: dict[int, ProgressEntry]
    # Send time of the latest heartbeat/append each voter acknowledged under our vote.
    ack_time: dict[int, float]
    # The latest ReadIndex round each voter acknowledged, and the last round issued.
    ack_round: dict[int, int] = attrs.field(factory=dict)
    read_round: int = 0
    pending_reads: list[PendingRead] = attrs.field(factory=list)
    # A change_membership() in progress: its joint entry is in the log, the uniform one
    # follows once the joint one commits.
    pending_change: PendingChange | None = None
    # Check-quorum does not depose the leader before this time (voters just added by a
    # membership change get one lease to acknowledge it).
    check_quorum_grace_until: float = -math.inf
    # Leader transfer in progress: the target, and when we give up and lead on.
    transfer_to: int | None = None
    transfer_deadline: float = -math.inf
    transfer_sent: bool = False
    # Set when a transfer starts and never cleared in this term: the target's vote
    # request crosses every follower's lease, so ours no longer proves anything.
    lease_given_up: bool = False


@attrs.define
class PendingChange:
    voter_ids: frozenset[int]
    retain: bool
    joint_log_id: LogId
    responder: Any


@attrs.define
class CandidateState:
    """An election in progress; ``pre_vote`` is the non-disruptive first round (§9.6)."""

    vote: Vote
    pre_vote: bool
    granted: set[int]
    started_at: float
