"""Network interfaces: how a leader or candidate reaches the other nodes.

A ``RaftNetworkFactory`` makes one ``RaftNetwork`` client per target. Each call is bounded
by ``RPCOption.hard_ttl`` and fails with an :class:`~openraft_trio.RPCError`:
``Unreachable`` (the caller backs off), ``NetworkError`` (retry), ``RPCTimeout``,
``RemoteError``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, final, runtime_checkable

import attrs

from .._errors import RPCError
from .._messages import (
    AppendEntriesRequest,
    AppendEntriesResponse,
    InstallSnapshotResponse,
    TransferLeaderRequest,
    VoteRequest,
    VoteResponse,
)
from .._types import Node, Snapshot, Vote


@final
@attrs.frozen
class RPCOption:
    """Per-call options. ``hard_ttl``: seconds after which the call fails with RPCTimeout."""

    hard_ttl: float


@runtime_checkable
class RaftNetwork(Protocol):
    """A client for one target node: sends it the Raft RPCs (one object per target, made
    by :class:`RaftNetworkFactory`). Every call is bounded by ``option.hard_ttl`` and
    raises ``Unreachable`` (the node backs off), ``NetworkError`` (it retries),
    ``RPCTimeout`` or ``RemoteError``."""

    async def append_entries(
        self, req: AppendEntriesRequest, option: RPCOption
    ) -> AppendEntriesResponse:
        """Send entries (or a heartbeat) to the target; the target's
        :meth:`~openraft_trio.Raft.append_entries` answers."""

    async def vote(self, req: VoteRequest, option: RPCOption) -> VoteResponse:
        """Ask the target for its (pre-)vote; the target's :meth:`~openraft_trio.Raft.vote`
        answers."""

    async def full_snapshot(
        self, vote: Vote, snapshot: Snapshot, option: RPCOption
    ) -> InstallSnapshotResponse:
        """Send the leader's whole snapshot (chunked if the transport wants); the target's
        :meth:`~openraft_trio.Raft.install_full_snapshot` answers."""

    async def transfer_leader(self, req: TransferLeaderRequest, option: RPCOption) -> None:
        """Tell the target to campaign now (leader transfer); the target's
        :meth:`~openraft_trio.Raft.handle_transfer_leader` handles it."""

    async def aclose(self) -> None:
        """Release the client's resources; called once, when the node stops."""


AppendReply = Callable[[AppendEntriesResponse | RPCError], None]
"""Where a pipelined append's outcome goes: called once with the response or the error."""


@runtime_checkable
class PipelinedAppend(Protocol):
    """What a :class:`RaftNetwork` may also offer: an AppendEntries that does not wait.

    ``replication[t]`` keeps many AppendEntries in flight to one target. With only
    ``async def append_entries`` that takes a child task per request (the adapter the
    runtime falls back to); a network that implements this method lets one task stream
    requests and lets each reply arrive as a call, with no task step of its own.
    """

    def send_append_entries(
        self, req: AppendEntriesRequest, option: RPCOption, on_reply: AppendReply
    ) -> bool:
        """Send ``req`` without waiting, in order after the requests sent before it.

        Returns True when the request was taken: then ``on_reply`` is called exactly once,
        later (never inside this call), from a task of the same Trio run, with the
        :class:`~openraft_trio.AppendEntriesResponse` or an
        :class:`~openraft_trio.RPCError` (``RPCTimeout`` after ``option.hard_ttl`` at the
        latest), the errors ``append_entries`` would raise. ``on_reply`` does not block
        or raise.

        Returns False when the request cannot leave without waiting (no connection yet,
        a full queue, a fault to simulate): nothing was sent, ``on_reply`` is never
        called, and the caller uses ``await append_entries(req, option)`` instead.
        """
        ...


@runtime_checkable
class RaftNetworkFactory(Protocol):
    """Makes the :class:`RaftNetwork` client for each replication or vote target."""

    async def new_client(self, target: int, node: Node | None) -> RaftNetwork:
        """A client for ``target``; ``node`` is its entry in the membership (None for a
        voter the membership gives no ``Node``)."""
