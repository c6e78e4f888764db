"""An in-process network with seeded fault injection.

``Router`` delivers each RPC by calling the target's ``Raft`` handle directly. Faults —
isolation, partitions, one-way blocks, latency, message loss — are drawn from the router's
own ``random.Random``, so a seeded run is reproducible. A lost request or reply looks like
a real one: the caller waits out ``RPCOption.hard_ttl`` and gets ``RPCTimeout``.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import trio

from .._errors import RPCTimeout, Stopped, Unreachable
from .._messages import (
    AppendEntriesRequest,
    AppendEntriesResponse,
    InstallSnapshotResponse,
    TransferLeaderRequest,
    VoteRequest,
    VoteResponse,
)
from .._types import Node, Snapshot, Vote
from ..network import RPCOption

T = TypeVar("T")


class Router:
    """In-process "network" between ``Raft`` handles, with fault injection.

    Args:
        seed: seeds the router's randomness (latency, loss).
    """

    def __init__(self, seed: int = 0) -> None:
        self.rng = random.Random(seed)
        self.nodes: dict[int, Any] = {}
        self._blocked: set[tuple[int, int]] = set()
        self._latency: tuple[float, float] = (0.0, 0.0)
        self._drop_rate = 0.0
        self.rpc_count = 0
        self.dropped = 0

    # -- membership of the router ---------------------------------------------------------

    def add(self, node_id: int, raft: Any) -> None:
        self.nodes[node_id] = raft

    def remove(self, node_id: int) -> None:
        self.nodes.pop(node_id, None)

    def factory(self, src: int) -> RouterNetworkFactory:
        return RouterNetworkFactory(self, src)

    # -- faults ---------------------------------------------------------------------------

    def isolate(self, node_id: int) -> None:
        """Cut ``node_id`` off from every other node, both ways."""
        for other in self._all_ids():
            if other != node_id:
                self._blocked.add((node_id, other))
                self._blocked.add((other, node_id))

    def partition(self, *groups: Iterable[int]) -> None:
        """Only nodes in the same group can talk (nodes in no group are isolated)."""
        sets = [set(g) for g in groups]
        ids = self._all_ids() | set().union(*sets)
        group_of = {n: i for i, g in enumerate(sets) for n in g}
        self._blocked = {
            (a, b)
            for a in ids
            for b in ids
            if a != b and (group_of.get(a, -1 - a) != group_of.get(b, -1 - b))
        }

    def block(self, src: int, dst: int) -> None:
        """Drop every message from ``src`` to ``dst`` (one way)."""
        self._blocked.add((src, dst))

    def heal(self) -> None:
        """Remove every partition and block (latency and loss stay as set)."""
        self._blocked.clear()

    def set_latency(self, lo: float, hi: float) -> None:
        """Each message (request and reply) takes a uniform ``[lo, hi]`` seconds."""
        if not 0 <= lo <= hi:
            raise ValueError(f"need 0 <= lo <= hi, got {lo}, {hi}")
        self._latency = (lo, hi)

    def set_drop_rate(self, p: float) -> None:
        """Lose each message (request or reply) with probability ``p``."""
        if not 0 <= p <= 1:
            raise ValueError(f"drop rate must be in [0, 1], got {p}")
        self._drop_rate = p

    def is_blocked(self, src: int, dst: int) -> bool:
        return (src, dst) in self._blocked

    def _all_ids(self) -> set[int]:
        return set(self.nodes) | {a for a, _ in self._blocked} | {b for _, b in self._blocked}

    # -- delivery -------------------------------------------------------------------------

    async def _hop(self, src: int, dst: int) -> bool:
        """One message's trip; False if it is lost on the way."""
        lo, hi = self._latency
        if hi > 0:
            await trio.sleep(self.rng.uniform(lo, hi))
        if self._drop_rate and self.rng.random() < self._drop_rate:
            self.dropped += 1
            return False
        return (src, dst) not in self._blocked

    async def deliver(
        self, src: int, dst: int, option: RPCOption, call: Callable[[Any], Awaitable[T]]
    ) -> T:
        self.rpc_count += 1
        with trio.move_on_after(option.hard_ttl) as scope:
            if await self._hop(src, dst):
                target = self.nodes.get(dst)
                if target is None:
                    raise Unreachable(f"node {dst} is down")
                try:
                    result = await call(target)
                except Stopped:
                    raise Unreachable(f"node {dst} stopped") from None
                if await self._hop(dst, src):
                    return result
            await trio.sleep_forever()
        assert scope.cancelled_caught
        raise RPCTimeout(f"rpc {src}->{dst} timed out after {option.hard_ttl}s")


class RouterNetworkFactory:
    def __init__(self, router: Router, src: int) -> None:
        self.router = router
        self.src = src

    async def new_client(self, target: int, node: Node | None) -> RouterNetwork:
        return RouterNetwork(self.router, self.src, target)


class RouterNetwork:
    """A ``RaftNetwork`` client from ``src`` to ``target`` through a ``Router``."""

    def __init__(self, router: Router, src: int, target: int) -> None:
        self.router = router
        self.src = src
        self.target = target

    async def append_entries(
        self, req: AppendEntriesRequest, option: RPCOption
    ) -> AppendEntriesResponse:
        return await self.router.deliver(
            self.src, self.target, option, lambda t: t.append_entries(req)
        )

    async def vote(self, req: VoteRequest, option: RPCOption) -> VoteResponse:
        return await self.router.deliver(self.src, self.target, option, lambda t: t.vote(req))

    async def full_snapshot(
        self, vote: Vote, snapshot: Snapshot, option: RPCOption
    ) -> InstallSnapshotResponse:
        return await self.router.deliver(
            self.src, self.target, option, lambda t: t.install_full_snapshot(vote, snapshot)
        )

    async def transfer_leader(self, req: TransferLeaderRequest, option: RPCOption) -> None:
        await self.router.deliver(
            self.src, self.target, option, lambda t: t.handle_transfer_leader(req)
        )

    async def aclose(self) -> None:
        return None
