"""Messages into RaftCore: API calls (``RaftMsg``) and worker reports (``Notification``)."""

from __future__ import annotations

from typing import Any

import attrs

from .._messages import AppendEntriesRequest, VoteRequest, VoteResponse
from .._types import LogId, Membership, ReadPolicy, Vote


class Responder:
    """A one-shot reply slot: the core ``send``s once, the caller ``wait``s.

    Cheaper than a channel per call (an Event and a slot). A value that is an exception is
    raised in the caller.
    """

    __slots__ = ("_event", "_value", "done")

    def __init__(self, event: Any) -> None:
        self._event = event
        self._value: Any = None
        self.done = False

    def send(self, value: Any) -> None:
        if self.done:
            return
        self.done = True
        self._value = value
        self._event.set()

    async def wait(self) -> Any:
        await self._event.wait()
        if isinstance(self._value, BaseException):
            raise self._value
        return self._value


class ClientWriteResponse:
    """Reply to a committed write: its ``log_id``, the state machine's ``data`` and, for a
    membership entry, the ``membership``."""

    __slots__ = ("data", "log_id", "membership")

    def __init__(self, log_id: LogId, data: Any, membership: Any = None) -> None:
        self.log_id = log_id
        self.data = data
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


@attrs.frozen(eq=False)
class WorkerFailed:
    error: BaseException
