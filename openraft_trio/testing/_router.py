"""An in-process network with seeded fault injection.

``Router`` delivers each RPC by calling the target's ``Raft`` handle directly. Faults —
isolation, partitions, one-way blocks, latency, message loss — are drawn from the router's
own ``random.Random``, so a seeded run is reproducible. A lost request or reply looks like
a real one: the caller waits out ``RPCOption.hard_ttl`` and gets ``RPCTimeout``.
"""

from __future__ import annotations

import contextlib
import math
import random
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar, final

import trio

from .._errors import (
    NetworkError,
    RaftError,
    RemoteError,
    RPCError,
    RPCTimeout,
    Stopped,
    Unreachable,
)
from .._messages import (
    AppendEntriesRequest,
    AppendEntriesResponse,
    InstallSnapshotResponse,
    TransferLeaderRequest,
    VoteRequest,
    VoteResponse,
)
from .._types import Node, Snapshot, Vote
from ..network import AppendReply, RPCOption

T = TypeVar("T")


@final
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
        self._quantum = 0.0
        self._drop_rate = 0.0
        self._duplicate_rate = 0.0
        self._spike: tuple[float, float] = (0.0, 0.0)
        # Where duplicated requests are delivered in the background (see attach()).
        self._nursery: trio.Nursery | None = None
        # Called with (kind, src, dst, what) for every message fate: the simulator's trace.
        self.on_event: Callable[[str, int, int, str], None] | None = None
        self.rpc_count = 0
        self.dropped = 0
        self.duplicated = 0
        # Snapshots travel in chunks of at most this many bytes (Config.snapshot_max_chunk_size).
        self.snapshot_chunk_size = 3 * 1024 * 1024
        self.snapshot_chunks_sent = 0
        self.max_snapshot_chunk = 0

    # -- membership of the router ---------------------------------------------------------

    def add(self, node_id: int, raft: Any) -> None:
        """Route messages for ``node_id`` to ``raft``."""
        self.nodes[node_id] = raft

    def remove(self, node_id: int) -> None:
        """Stop routing to ``node_id`` (its RPCs then fail with ``Unreachable``)."""
        self.nodes.pop(node_id, None)

    def factory(self, src: int) -> RouterNetworkFactory:
        """The network factory node ``src`` sends through."""
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

    def set_latency(self, lo: float, hi: float, quantum: float = 0.0) -> None:
        """Each message (request and reply) takes a uniform ``[lo, hi]`` seconds, rounded
        up to a multiple of ``quantum`` if given (messages then often arrive together,
        which makes a simulation much cheaper to run without changing what can happen)."""
        if not 0 <= lo <= hi or quantum < 0:
            raise ValueError(f"need 0 <= lo <= hi and quantum >= 0, got {lo}, {hi}, {quantum}")
        self._latency = (lo, hi)
        self._quantum = quantum

    def bridge(self, left: Iterable[int], right: Iterable[int], via: int) -> None:
        """A bridge partition: ``left`` and ``right`` cannot talk to each other, but node
        ``via`` talks to both halves (a partial partition)."""
        a, b = set(left) - {via}, set(right) - {via}
        for x in a:
            for y in b:
                self._blocked.add((x, y))
                self._blocked.add((y, x))

    def set_duplicate_rate(self, p: float) -> None:
        """Deliver each request a second time, later, with probability ``p`` (the copy's
        reply is lost). Needs ``attach(nursery)``: copies travel in background tasks."""
        if not 0 <= p <= 1:
            raise ValueError(f"duplicate rate must be in [0, 1], got {p}")
        self._duplicate_rate = p

    def set_latency_spikes(self, p: float, extra: float) -> None:
        """With probability ``p`` a message takes up to ``extra`` seconds longer (reordering)."""
        if not 0 <= p <= 1 or extra < 0:
            raise ValueError(f"need 0 <= p <= 1 and extra >= 0, got {p}, {extra}")
        self._spike = (p, extra)

    def attach(self, nursery: trio.Nursery) -> None:
        """Give the router a nursery for background deliveries (duplicated messages)."""
        self._nursery = nursery

    def set_drop_rate(self, p: float) -> None:
        """Lose each message (request or reply) with probability ``p``."""
        if not 0 <= p <= 1:
            raise ValueError(f"drop rate must be in [0, 1], got {p}")
        self._drop_rate = p

    def is_blocked(self, src: int, dst: int) -> bool:
        """True if messages from ``src`` to ``dst`` are blocked."""
        return (src, dst) in self._blocked

    def is_clean(self, src: int, dst: int) -> bool:
        """No fault to simulate between ``src`` and ``dst``: no latency, loss, duplicates,
        latency spikes or block (a message can be handed over at once)."""
        return (
            self._latency[1] == 0
            and not self._drop_rate
            and not self._duplicate_rate
            and not self._spike[0]
            and (src, dst) not in self._blocked
        )

    def _all_ids(self) -> set[int]:
        return set(self.nodes) | {a for a, _ in self._blocked} | {b for _, b in self._blocked}

    # -- delivery -------------------------------------------------------------------------

    def _event(self, fate: str, src: int, dst: int, kind: str) -> None:
        if self.on_event is not None:
            self.on_event(fate, src, dst, kind)

    async def _hop(self, src: int, dst: int, kind: str) -> bool:
        """One message's trip; False if it is lost on the way."""
        lo, hi = self._latency
        delay = self.rng.uniform(lo, hi) if hi > 0 else 0.0
        p, extra = self._spike
        if p and self.rng.random() < p:
            delay += self.rng.uniform(0, extra)
        if self._quantum and delay > 0:
            delay = math.ceil(delay / self._quantum) * self._quantum
        if delay > 0:
            await trio.sleep(delay)
        if self._drop_rate and self.rng.random() < self._drop_rate:
            self.dropped += 1
            self._event("drop", src, dst, kind)
            return False
        if (src, dst) in self._blocked:
            self._event("blocked", src, dst, kind)
            return False
        return True

    def _refused(self, src: int, dst: int, kind: str, error: RaftError) -> RPCError:
        """What a transport reports for a call ``dst`` failed with ``error`` (and its trace
        event): a stopped node is ``Unreachable``; any other refusal (e.g. InvalidRequest:
        the remote handled the call and refused it) is a ``RemoteError``."""
        if isinstance(error, Stopped):
            self._event("down", src, dst, kind)
            return Unreachable(f"node {dst} stopped")
        self._event("remote-error", src, dst, kind)
        return RemoteError(f"node {dst}: {error}", remote=error)

    async def deliver(
        self,
        src: int,
        dst: int,
        option: RPCOption,
        call: Callable[[Any], Awaitable[T]],
        kind: str = "rpc",
    ) -> T:
        """Carry one RPC from ``src`` to ``dst`` and its reply back, under the router's faults.

        Raises ``Unreachable`` if ``dst`` is down or stopped, ``RemoteError`` if it refused
        the call, or ``RPCTimeout`` after ``option.hard_ttl`` if a message is lost."""
        self.rpc_count += 1
        if (
            self._duplicate_rate
            and self._nursery is not None
            and self.rng.random() < self._duplicate_rate
        ):
            self.duplicated += 1
            self._nursery.start_soon(self._deliver_copy, src, dst, option, call, kind)
        with trio.move_on_after(option.hard_ttl) as scope:
            if await self._hop(src, dst, kind):
                target = self.nodes.get(dst)
                if target is None:
                    self._event("down", src, dst, kind)
                    raise Unreachable(f"node {dst} is down")
                try:
                    result = await call(target)
                except RaftError as e:
                    raise self._refused(src, dst, kind, e) from (
                        None if isinstance(e, Stopped) else e
                    )
                if await self._hop(dst, src, kind + "-reply"):
                    self._event("ok", src, dst, kind)
                    return result
            await trio.sleep_forever()
        assert scope.cancelled_caught
        self._event("timeout", src, dst, kind)
        raise RPCTimeout(f"rpc {src}->{dst} timed out after {option.hard_ttl}s")

    async def _deliver_copy(
        self, src: int, dst: int, option: RPCOption, call: Callable[[Any], Awaitable[T]],
        kind: str,
    ) -> None:
        """A duplicate of a request: arrives on its own schedule; its reply is dropped."""
        with trio.move_on_after(option.hard_ttl):
            if await self._hop(src, dst, kind + "-dup"):
                target = self.nodes.get(dst)
                if target is not None:
                    self._event("dup", src, dst, kind)
                    with contextlib.suppress(RaftError):
                        await call(target)


@final
class RouterNetworkFactory:
    """The ``RaftNetworkFactory`` of node ``src`` on a :class:`Router`: one
    :class:`RouterNetwork` per target."""

    def __init__(self, router: Router, src: int) -> None:
        self.router = router
        self.src = src

    async def new_client(self, target: int, node: Node | None) -> RouterNetwork:
        """A client to node ``target`` through the router."""
        return RouterNetwork(self.router, self.src, target)


@final
class RouterNetwork:
    """A ``RaftNetwork`` client from ``src`` to ``target`` through a ``Router``."""

    def __init__(self, router: Router, src: int, target: int) -> None:
        self.router = router
        self.src = src
        self.target = target

    async def append_entries(
        self, req: AppendEntriesRequest, option: RPCOption
    ) -> AppendEntriesResponse:
        """Deliver an AppendEntries to the target through the router."""
        kind = "heartbeat" if req.is_heartbeat else "append"
        return await self.router.deliver(
            self.src, self.target, option, lambda t: t.append_entries(req), kind
        )

    def send_append_entries(
        self, req: AppendEntriesRequest, option: RPCOption, on_reply: AppendReply
    ) -> bool:
        """The pipelined append (:class:`~openraft_trio.network.PipelinedAppend`): handed
        to the target's core at once when the link has no faults to simulate (no latency,
        loss, duplicates or block, the target up and not busy); otherwise False, and the
        caller awaits :meth:`append_entries`, which simulates them."""
        router = self.router
        if not router.is_clean(self.src, self.target):
            return False
        target = router.nodes.get(self.target)
        if target is None:
            return False
        src, dst = self.src, self.target
        kind = "heartbeat" if req.is_heartbeat else "append"

        def done(value: object) -> None:
            if isinstance(value, RaftError):
                on_reply(router._refused(src, dst, kind, value))
            else:
                router._event("ok", src, dst, kind)
                on_reply(value)  # type: ignore[arg-type]

        try:
            taken: bool = target.post_append_entries(req, done)
        except RaftError:
            return False  # refused before anything was sent: the awaiting path reports it
        if taken:
            router.rpc_count += 1
        return taken

    async def vote(self, req: VoteRequest, option: RPCOption) -> VoteResponse:
        """Deliver a (pre-)vote request to the target through the router."""
        kind = "prevote" if req.pre_vote else "vote"
        return await self.router.deliver(
            self.src, self.target, option, lambda t: t.vote(req), kind
        )

    async def full_snapshot(
        self, vote: Vote, snapshot: Snapshot, option: RPCOption
    ) -> InstallSnapshotResponse:
        """Send ``snapshot`` as a stream of chunks of at most ``router.snapshot_chunk_size``
        bytes — each one a message with its own latency and loss, like a transport would —
        and have the target install it once the last chunk arrived."""
        router = self.router
        size = router.snapshot_chunk_size
        chunks = [snapshot.data[i : i + size] for i in range(0, len(snapshot.data), size)] or [b""]
        with trio.move_on_after(option.hard_ttl):
            received = bytearray()
            for chunk in chunks:
                router.snapshot_chunks_sent += 1
                router.max_snapshot_chunk = max(router.max_snapshot_chunk, len(chunk))
                if not await router._hop(self.src, self.target, "snapshot-chunk"):
                    raise NetworkError(f"snapshot chunk {self.src}->{self.target} lost")
                received += chunk
            assembled = Snapshot(snapshot.meta, bytes(received))
            return await router.deliver(
                self.src, self.target, option, lambda t: t.install_full_snapshot(vote, assembled),
                "snapshot",
            )
        raise RPCTimeout(f"snapshot {self.src}->{self.target} timed out after {option.hard_ttl}s")

    async def transfer_leader(self, req: TransferLeaderRequest, option: RPCOption) -> None:
        """Deliver a leadership transfer to the target through the router."""
        await self.router.deliver(
            self.src, self.target, option, lambda t: t.handle_transfer_leader(req)
        )

    async def aclose(self) -> None:
        """Nothing to close."""
        return None
