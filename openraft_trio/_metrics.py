"""Metrics: a frozen snapshot of a node's state, published after every core round."""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from ._types import LogId, ServerState, StoredMembership, Vote


@attrs.frozen
class RaftMetrics:
    """What one node knows, as of the end of its last core round.

    ``replication`` maps each target to its matching log id (leader only, else None).
    ``millis_since_quorum_ack`` is how long ago a quorum last acknowledged this leader
    (None if not leader).
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
