"""API calls: what the ``Raft`` handle sends RaftCore (openraft's ``RaftMsg``).

Each call that expects an answer carries a :class:`Responder`, a one-shot reply slot the
core (or the sm_worker, for writes) fills once. The core takes calls off its bounded API
channel, typed ``trio.MemorySendChannel[ApiCall]``, and dispatches on :data:`ApiCall`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, final

import attrs
import trio

from .._messages import AppendEntriesRequest, TransferLeaderRequest, VoteRequest
from .._types import Membership, Node, Normal, ReadPolicy, Snapshot, Vote

if TYPE_CHECKING:
    from .raft_core import RaftCore


@final
class Responder:
    """A one-shot reply slot: the core ``send``s once, the caller ``wait``s.

    Cheaper than a channel per call (an Event and a slot). A value that is an exception is
    raised in the caller. ``on_done``, if set, is called with the value inside ``send``
    (in the core's task: it must not block or raise) — the TCP server replies that way
    without a task per request.
    """

    __slots__ = ("_event", "_value", "done", "on_done")

    def __init__(self, event: trio.Event) -> None:
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


@final
@attrs.frozen(eq=False)
class ClientWrite:
    items: list[Normal]
    responders: list[Responder]


@final
@attrs.frozen(eq=False)
class Initialize:
    membership: Membership
    responder: Responder


@final
@attrs.frozen(eq=False)
class EnsureLinearizable:
    policy: ReadPolicy
    responder: Responder


@final
@attrs.frozen(eq=False)
class InboundAppendEntries:
    req: AppendEntriesRequest
    responder: Responder


@final
@attrs.frozen(eq=False)
class InboundVote:
    req: VoteRequest
    responder: Responder


@final
@attrs.frozen(eq=False)
class InboundInstallSnapshot:
    vote: Vote
    snapshot: Snapshot
    responder: Responder


@final
@attrs.frozen(eq=False)
class InboundTransferLeader:
    req: TransferLeaderRequest
    responder: Responder


@final
@attrs.frozen(eq=False)
class AddLearner:
    node_id: int
    node: Node
    responder: Responder


@final
@attrs.frozen(eq=False)
class ChangeMembership:
    voter_ids: frozenset[int]
    retain: bool
    responder: Responder


@final
@attrs.frozen(eq=False)
class Query:
    """Run ``fn(core)`` inside the core task and reply with its result."""

    fn: Callable[[RaftCore], Any]
    responder: Responder


@final
@attrs.frozen(eq=False)
class TriggerElect:
    pass


@final
@attrs.frozen(eq=False)
class TriggerHeartbeat:
    pass


@final
@attrs.frozen(eq=False)
class TriggerSnapshot:
    pass


@final
@attrs.frozen(eq=False)
class TriggerPurge:
    upto: int


@final
@attrs.frozen(eq=False)
class TriggerTransferLeader:
    to: int
    responder: Responder


@final
@attrs.frozen(eq=False)
class RemoveLearner:
    node_id: int
    responder: Responder


ApiCall = (
    ClientWrite
    | Initialize
    | EnsureLinearizable
    | InboundAppendEntries
    | InboundVote
    | InboundInstallSnapshot
    | InboundTransferLeader
    | AddLearner
    | ChangeMembership
    | RemoveLearner
    | Query
    | TriggerElect
    | TriggerHeartbeat
    | TriggerSnapshot
    | TriggerPurge
    | TriggerTransferLeader
)
"""Every message the ``Raft`` handle sends RaftCore."""
