"""Network interfaces: how a leader or candidate reaches the other nodes.

A ``RaftNetworkFactory`` makes one ``RaftNetwork`` client per target. Each call is bounded
by ``RPCOption.hard_ttl`` and fails with an :class:`~openraft_trio.RPCError`:
``Unreachable`` (the caller backs off), ``NetworkError`` (retry), ``RPCTimeout``,
``RemoteError``.
"""

from __future__ import annotations

from typing import Protocol, final, runtime_checkable

import attrs

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
    ) -> AppendEntriesResponse: ...

    async def vote(self, req: VoteRequest, option: RPCOption) -> VoteResponse: ...

    async def full_snapshot(
        self, vote: Vote, snapshot: Snapshot, option: RPCOption
    ) -> InstallSnapshotResponse: ...

    async def transfer_leader(self, req: TransferLeaderRequest, option: RPCOption) -> None: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class RaftNetworkFactory(Protocol):
    """Makes the :class:`RaftNetwork` client for each replication or vote target."""

    async def new_client(self, target: int, node: Node | None) -> RaftNetwork:
        """A client for ``target``; ``node`` is its entry in the membership (None for a
        voter the membership gives no ``Node``)."""
