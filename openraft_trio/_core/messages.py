"""Messages into RaftCore: API calls (``RaftMsg``) and worker reports (``Notification``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from .._messages import AppendEntriesRequest, TransferLeaderRequest, VoteRequest, VoteResponse
from .._messages import ClientWriteResponse as ClientWriteResponse
from .._types import LogId, Membership, Node, ReadPolicy, Snapshot, SnapshotMeta, Vote


class Responder:
    """A one-shot reply slot: the core ``send``s once, the caller ``wait``s.

    Cheaper than a channel per call (an Event and a slot). A value that is an exception is
    raised in the caller. ``on_done``, if set, is called with the value inside ``send``
    (in the core's task: it must not block or raise) — the TCP server replies that way
    without a task per request.
    """

    __slots__ = ("_event", "_value", "done", "on_done")

    def __init__(self, event: Any) -> None:
        self._event = event
        self._value: Any = None
        self.done = False
        self.on_done: Callable[[Any], None] | None = None

    def send(self, value: Any) -> None:
        if self.done:
            return
        self.done = True
        self._value = value
        self._event.set()
        if self.on_done is not None:
            self.on_done(value)

    async def wait(self) -> Any:
        await self._event.wait()
        return self.result()

    async def wait_done(self) -> None:
        """Wait until a value was sent; no checkpoint if it already was (a caller of a
        batch waits on many slots that are mostly filled at once)."""
        if not self.done:
            await self._event.wait()

    def result(self) -> Any:
        """The value sent (raised, if it is an exception); only once ``done``."""
        if isinstance(self._value, BaseException):
            raise self._value
        return self._value


# -- API calls --------------------------------------------------------------------------------


@attrs.frozen(eq=False)
class ClientWrite:
    items: list[Any]
    responders: list[Responder]


@attrs.frozen(eq=False)
class Initialize:
    membership: Membership
    responder: Responder


@attrs.frozen(eq=False)
class EnsureLinearizable:
    policy: ReadPolicy
    responder: Responder


@attrs.frozen(eq=False)
class InboundAppendEntries:
    req: AppendEntriesRequest
    responder: Responder


@attrs.frozen(eq=False)
class InboundVote:
    req: VoteRequest
    responder: Responder


@attrs.frozen(eq=False)
class AddLearner:
    node_id: int
    node: Node
    responder: Responder


@attrs.frozen(eq=False)
class ChangeMembership:
    voter_ids: frozenset[int]
    retain: bool
    responder: Responder


@attrs.frozen(eq=False)
class Query:
    """Run ``fn(core)`` inside the core task and reply with its result."""

    fn: Any
    responder: Responder


@attrs.frozen(eq=False)
class TriggerElect:
    pass


@attrs.frozen(eq=False)
class TriggerHeartbeat:
    pass


@attrs.frozen(eq=False)
class TriggerTransferLeader:
    to: int


@attrs.frozen(eq=False)
class InboundTransferLeader:
    req: TransferLeaderRequest
    responder: Responder


# -- Notifications from workers ----------------------------------------------------------------


@attrs.frozen
class Tick:
    pass


@attrs.frozen
class VoteResult:
    target: int
    req: VoteRequest
    resp: VoteResponse


@attrs.frozen
class ReplicationProgress:
    target: int
    vote: Vote
    epoch: int
    matching: LogId | None
    send_time: float


@attrs.frozen
class ReplicationConflict:
    target: int
    vote: Vote
    epoch: int
    prev: LogId | None
    hint: int
    send_time: float


@attrs.frozen
class HigherVote:
    target: int
    vote: Vote


@attrs.frozen
class HeartbeatAck:
    target: int
    vote: Vote
    send_time: float
    resp_vote: Vote
    read_round: int = 0


@attrs.frozen
class Applied:
    upto: LogId


@attrs.frozen
class SnapshotBuilt:
    meta: SnapshotMeta


@attrs.frozen
class SnapshotInstalled:
    meta: SnapshotMeta


@attrs.frozen(eq=False)
class InboundInstallSnapshot:
    vote: Vote
    snapshot: Snapshot
    responder: Responder


@attrs.frozen(eq=False)
class TriggerSnapshot:
    pass


@attrs.frozen(eq=False)
class TriggerPurge:
    upto: int


@attrs.frozen(eq=False)
class WorkerFailed:
    error: BaseException
