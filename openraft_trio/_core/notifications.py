"""Notifications: what RaftCore's workers report to it (openraft's ``Notification``).

Workers (the ticker, ``replication[t]``, ``heartbeat[t]``, the vote RPCs, the sm_worker)
send them on the core's bounded notification channel, typed
``trio.MemorySendChannel[Notification]``, through a :class:`~.signals.Notifier` that also
wakes the core. The core drains that channel before API calls each round.
"""

from __future__ import annotations

from typing import final

import attrs

from .._messages import VoteRequest, VoteResponse
from .._types import LogId, SnapshotMeta, Vote


@final
@attrs.frozen
class Tick:
    pass


@final
@attrs.frozen
class VoteResult:
    target: int
    req: VoteRequest
    resp: VoteResponse


@final
@attrs.frozen
class ReplicationProgress:
    target: int
    vote: Vote
    epoch: int
    matching: LogId | None
    send_time: float


@final
@attrs.frozen
class ReplicationConflict:
    target: int
    vote: Vote
    epoch: int
    prev: LogId | None
    hint: int
    send_time: float


@final
@attrs.frozen
class HigherVote:
    target: int
    vote: Vote


@final
@attrs.frozen
class HeartbeatAck:
    target: int
    vote: Vote
    send_time: float
    resp_vote: Vote
    read_round: int = 0


@final
@attrs.frozen
class Applied:
    upto: LogId


@final
@attrs.frozen
class SnapshotBuilt:
    meta: SnapshotMeta
    size: int  # bytes of snapshot data, for the snapshot policy


@final
@attrs.frozen
class SnapshotInstalled:
    meta: SnapshotMeta
    size: int


Notification = (
    Tick
    | VoteResult
    | ReplicationProgress
    | ReplicationConflict
    | HigherVote
    | HeartbeatAck
    | Applied
    | SnapshotBuilt
    | SnapshotInstalled
)
"""Every report a worker sends RaftCore."""
