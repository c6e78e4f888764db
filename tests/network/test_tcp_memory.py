"""What one connection (and many) can make a live node hold (issue 11, defects 7 and 8).

A 3-node cluster over loopback TCP whose nodes also serve the KV client API; the attacks
come over raw connections. Memory is Python's, traced with ``tracemalloc`` in this process
(the nodes run here too), with the cyclic garbage collector *off*: a ``serve`` process
freezes its heap and raises the collection threshold, so memory that only a collection
would free is, in practice, never freed. The bounds asserted are the figures of
``docs/network.md`` ("Memory per connection"), computed from the limits and the frames
sent. Real clock, bounded by ``trio.fail_after``; waits are on conditions.
"""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager, contextmanager
from typing import Any

import attrs
import pytest
import trio

from openraft_trio.network import _wire as wire
from openraft_trio.network.tcp import ServerLimits

from ._tcp_nodes import (
    FAILURES,
    TcpCluster,
    TcpNode,
    frame,
    open_tcp_cluster,
    raw_hello,
    read_frame,
    wait_until,
)

LIMIT = 60
MIB = 1024 * 1024
LIMITS = ServerLimits(
    max_frame_size=MIB,
    max_inflight=4,
    max_connections=8,
    handshake_timeout=10.0,  # generous: decoding under tracemalloc is slow
    frame_timeout=10.0,
    write_timeout=10.0,
)
TARGET = 2
RECEIVE_SIZE = 256 * 1024  # FramedStream's read size
SLACK = 4 * MIB  # the cluster's own traffic, tracemalloc's bookkeeping, logging
BYTES_PER_ITEM = 128  # the most one CBOR item decodes to (docs/network.md)


def cluster(
    limits: ServerLimits = LIMITS, **kwargs: Any
) -> AbstractAsyncContextManager[TcpCluster]:
    return open_tcp_cluster(3, limits={i: limits for i in (1, 2, 3)}, kv_service=True, **kwargs)


@contextmanager
def traced_memory_without_gc() -> Iterator[Callable[[], tuple[int, int]]]:
    """Trace allocations with the cyclic GC off; yields ``growth() -> (now, peak)`` in
    bytes above the start."""
    gc.collect()
    gc.disable()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    try:
        yield lambda: (
            tracemalloc.get_traced_memory()[0] - base,
            tracemalloc.get_traced_memory()[1] - base,
        )
    finally:
        tracemalloc.stop()
        gc.enable()


async def client_connection(node: TcpNode) -> trio.SocketStream:
    return await raw_hello(node.addr, node.node_id, role="client", from_id=None)


def client_frame(rid: int, op: str, *args: Any) -> bytes:
    return frame(wire.encode_message("client", rid, wire.ClientRequest(op, list(args))))


def nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


def decoded_bound(items: int, frame_size: int) -> int:
    """What a frame of ``frame_size`` bytes holding ``items`` CBOR items may decode to."""
    return BYTES_PER_ITEM * items + 4 * frame_size


def connection_bound(limits: ServerLimits, items: int, frame_size: int) -> int:
    """docs/network.md, refused requests with small replies: the receive buffers plus
    ``max_inflight`` decoded requests."""
    buffers = 2 * limits.max_frame_size + RECEIVE_SIZE
    return buffers + limits.max_inflight * decoded_bound(items, frame_size)


def closed(node: TcpNode) -> int:
    """Connections the node has closed (peers may connect meanwhile: count closures)."""
    return node.stats.connections_accepted - node.stats.connections_open


async def closed_by_server(stream: trio.SocketStream) -> bool:
    """True if the server closes the stream without answering."""
    try:
        return await stream.receive_some(65536) == b""
    except trio.BrokenResourceError:
        return True


# -- (a) frames over the decode limits are refused before they are decoded ---------------------

TOO_MANY_ITEMS = 400_000  # over the default max_frame_items (2**18), in a 400 KB frame
OVER_LIMITS = {
    "too many items": client_frame(1, "get", [{}] * TOO_MANY_ITEMS),
    "too deep": client_frame(1, "get", nested(300)),
}


@pytest.mark.parametrize("name", list(OVER_LIMITS))
async def test_frame_over_the_decode_limits_closes_the_connection(name: str) -> None:
    """Old code: decoded (400,000 empty maps: ~29 MB), answered ``InvalidRequest`` and the
    connection stayed open."""
    data = OVER_LIMITS[name]
    with trio.fail_after(LIMIT):
        async with cluster() as c:
            target = c.nodes[TARGET]
            stream = await client_connection(target)
            before = attrs.asdict(target.stats)
            closed_before = closed(target)
            with traced_memory_without_gc() as growth:
                await stream.send_all(data)
                assert await closed_by_server(stream), "the server answered instead"
                await wait_until(lambda: closed(target) == closed_before + 1, "connection gone")
                _, peak = growth()
            await stream.aclose()
            after = attrs.asdict(target.stats)
            for counter in FAILURES:
                assert after[counter] == before[counter] + (counter == "bad_messages"), counter
            # Refused before decoding: the frame's bytes and buffers, never its objects.
            assert peak < 2 * LIMITS.max_frame_size + RECEIVE_SIZE + SLACK, peak
            await c.assert_commits()


# -- (b, c) refused requests are freed, without the cyclic GC ----------------------------------

ITEMS = 30_000  # under max_frame_items: decoded (~2.2 MB), then refused by the service
REFUSED = client_frame(1, "get", [{}] * ITEMS)  # InvalidRequest: a key is a str


async def send_refused(target: TcpNode, count: int) -> None:
    """One client connection: ``count`` refused requests, pipelined; read every reply."""
    stream = await client_connection(target)
    await stream.send_all(REFUSED * count)
    for _ in range(count):
        kind, _, reply = await read_frame_or_more(stream)
        assert (kind, reply.error_type) == ("error", "InvalidRequest")
    await stream.aclose()


_pending: dict[int, bytearray] = {}


async def read_frame_or_more(stream: trio.SocketStream) -> tuple[str, int, Any]:
    """One frame from a stream whose frames may arrive together (kept per stream)."""
    buf = _pending.setdefault(id(stream), bytearray())
    while len(buf) < 4 or len(buf) < 4 + int.from_bytes(buf[:4], "big"):
        chunk = await stream.receive_some(65536)
        assert chunk, "EOF"
        buf += chunk
    size = int.from_bytes(buf[:4], "big")
    body = bytes(buf[4 : 4 + size])
    del buf[: 4 + size]
    return wire.decode_message(body)


@pytest.mark.parametrize(("connections", "frames"), [(1, 20), (5, 12)])
async def test_refused_requests_are_freed_and_memory_is_bounded(
    connections: int, frames: int
) -> None:
    """Old code: every refused request's decoded arguments stayed reachable from a
    reference cycle (the exception kept in a local of the frame its traceback holds), so
    without a collection 20 requests on one connection kept ~44 MB after it closed, and
    5 connections of 12 requests ~130 MB."""
    with trio.fail_after(LIMIT):
        async with cluster() as c:
            target = c.nodes[TARGET]
            before = attrs.asdict(target.stats)
            closed_before = closed(target)
            with traced_memory_without_gc() as growth:
                async with trio.open_nursery() as nursery:
                    for _ in range(connections):
                        nursery.start_soon(send_refused, target, frames)
                await wait_until(
                    lambda: closed(target) == closed_before + connections, "connections gone"
                )
                now, peak = growth()
            after = attrs.asdict(target.stats)
            assert after["error_replies"] == before["error_replies"] + connections * frames
            for counter in FAILURES:
                assert after[counter] == before[counter], counter
            bound = connections * connection_bound(LIMITS, ITEMS + 8, len(REFUSED)) + SLACK
            assert peak < bound, (peak, bound)
            assert now < SLACK, f"{now / MIB:.1f} MiB still held after the connections closed"
            await c.assert_commits()


# -- (d) max_inflight holds per request ---------------------------------------------------------

VALUE = "v" * 16 * 1024
GETS = 2000


async def test_max_inflight_holds_per_request_for_a_peer_that_never_reads() -> None:
    """2,000 linearizable ``get`` of a 16 KiB value in one write, replies never read.
    Old code: all 2,000 were handled at once (the limit was checked only between reads)
    and their 32 MB of replies queued."""
    limits = attrs.evolve(LIMITS, max_inflight=32, write_timeout=1.0)
    with trio.fail_after(LIMIT):
        async with cluster(limits) as c:
            await c.write("big", VALUE)
            target = await c.leader()
            service = target.service
            assert service is not None
            active = 0
            most = 0
            real_get = service._ops["get"]

            async def counting_get(*args: Any) -> Any:
                nonlocal active, most
                active += 1
                most = max(most, active)
                try:
                    return await real_get(*args)
                finally:
                    active -= 1

            service._ops["get"] = counting_get
            closed_before = closed(target)
            stream = await client_connection(target)
            requests = b"".join(client_frame(rid, "get", "big") for rid in range(GETS))
            with traced_memory_without_gc() as growth:
                with trio.move_on_after(5 * limits.write_timeout):
                    await stream.send_all(requests)  # the server may stop reading first
                with trio.move_on_after(LIMIT / 3):  # closed: write_timeout, or broken
                    while closed(target) == closed_before:  # noqa: ASYNC110
                        await trio.sleep(0.05)
                now, peak = growth()
            await stream.aclose()
            assert 0 < most <= limits.max_inflight, f"{most} requests handled at once"
            assert closed(target) == closed_before + 1
            reply = len(VALUE) + 64
            # docs/network.md: max_inflight replies being built, the unsent-reply budget,
            # the writer's one slice, the receive buffers.
            bound = (
                limits.max_inflight * reply
                + 2 * limits.max_pending_reply_bytes
                + 2 * limits.max_frame_size
                + RECEIVE_SIZE
                + SLACK
            )
            assert peak < bound, (peak, bound)
            assert now < SLACK, now
            await c.assert_commits()


# -- (e) peers always get a connection ---------------------------------------------------------


async def test_peers_connect_while_idle_connections_hold_every_slot() -> None:
    """Old code: ``max_connections`` idle handshaken connections locked the peers out for
    ``idle_timeout``; the cluster could not replicate to the node."""
    with trio.fail_after(LIMIT):
        async with cluster(initialize=False) as c:
            target = c.nodes[TARGET]
            held = [await client_connection(target) for _ in range(LIMITS.max_connections)]
            await c.nodes[1].raft.initialize(c.members())
            await c.leader()
            await c.assert_commits()  # every node, the target too, applies a write
            # A client still gets in: the longest idle connection makes room.
            stream = await client_connection(target)
            await stream.send_all(client_frame(5, "get", "k", True))
            kind, rid, _ = await read_frame(stream)
            assert (kind, rid) == ("client_resp", 5)
            assert target.stats.connections_evicted >= 1
            for s in [*held, stream]:
                await s.aclose()
