"""Metrics: a frozen snapshot of a node's state, published after every core round."""

from __future__ import annotations

from collections.abc import Mapping
from typing import final

import attrs

from ._types import LogId, ServerState, StoredMembership, Vote


@final
@attrs.frozen
class ReplicationStatus:
    """A leader's view of one replication target.

    Attributes:
        matching: the last log id the target is known to hold (as in
            ``RaftMetrics.replication``).
        log_reversions: how many times this leader found the target had lost log entries
            it acknowledged (a wiped disk, a restored backup): "log reversion".
        reverted_to: at the last reversion, the index the target needed entries from
            again (0: its log was empty); None if it never reverted.
        halted: replication to the target stopped after a log reversion, because
            ``Config.allow_log_reversion`` is off. It no longer counts toward the commit
            quorum. A new leader, or removing the node and adding it back, starts afresh.
    """

    matching: LogId | None
    log_reversions: int = 0
    reverted_to: int | None = None
    halted: bool = False


@final
@attrs.frozen
class RaftMetrics:
    """What one node knows, as of the end of its last core round (published after each
    core round in which it changed).

    Attributes:
        id: the node's id.
        current_term: the term of the node's vote.
        vote: the node's current vote.
        state: its role (``ServerState``); ``SHUTDOWN`` once stopped.
        current_leader: the leader this node knows of, or None.
        last_log_index: the index of the last log entry (None: the log is empty).
        committed: the highest log id known to be committed.
        last_applied: the highest log id applied to the state machine.
        snapshot: the last log id of the current snapshot (built or installed).
        purged: the last purged log id.
        membership: the effective membership, with the log id that set it.
        millis_since_quorum_ack: leader only: how long ago a quorum last acknowledged
            it (None if not leader).
        replication: leader only: each target's matching log id (None if not leader).
        last_log_id: the last log id, with its term.
        flushed: the last log id known to be durable.
        replication_status: leader only: each target's :class:`ReplicationStatus` (None
            if not leader).
    """

    id: int
    current_term: int
    vote: Vote
    state: ServerState
    current_leader: int | None
    last_log_index: int | None
    committed: LogId | None
    last_applied: LogId | None
    snapshot: LogId | None
    purged: LogId | None
    membership: StoredMembership
    millis_since_quorum_ack: float | None
    replication: Mapping[int, LogId | None] | None
    # Counters not in openraft's metrics but useful for users and tests.
    last_log_id: LogId | None = None
    flushed: LogId | None = None
    replication_status: Mapping[int, ReplicationStatus] | None = None
