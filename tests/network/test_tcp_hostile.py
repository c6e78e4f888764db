"""Hostile input against a live node of a running 3-node cluster over loopback TCP.

Each case opens raw connections and misbehaves. The server must close *that* connection
(the raw stream sees EOF or a reset), count it in exactly the matching ``ServerStats``
counter, hold nothing for it afterwards (``connections_open`` back where it was), and the
cluster must still commit a write. Real clock: bounded by ``trio.fail_after``; waits are on
conditions.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, contextmanager
from typing import Any

import attrs
import cbor2
import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from openraft_trio import AppendEntriesRequest, LeaderId, LogId, Vote, VoteRequest
from openraft_trio.network import _wire as wire
from openraft_trio.network._conn import FRAME_OVERHEAD
from openraft_trio.network.tcp import ServerLimits

from ._tcp_nodes import (
    CONFIG,
    FAILURES,
    TcpCluster,
    TcpNode,
    frame,
    hello_frame,
    open_tcp_cluster,
    raw_connect,
    raw_hello,
    read_frame,
    read_until_closed,
    wait_until,
)

LIMIT = 20
MAX_FRAME = 64 * 1024
LIMITS = ServerLimits(
    max_frame_size=MAX_FRAME,
    max_inflight=32,
    max_pending_reply_bytes=8192,
    max_connections=8,
    handshake_timeout=0.3,
    frame_timeout=0.3,
    write_timeout=0.3,
)
TARGET = 2  # the node under attack (any role)


def cluster() -> AbstractAsyncContextManager[TcpCluster]:
    return open_tcp_cluster(3, limits={i: LIMITS for i in (1, 2, 3)})


def vote_frame(rid: int = 1) -> bytes:
    """A well-formed pre-vote from a stranger: the node refuses it (harmlessly)."""
    req = VoteRequest(Vote(LeaderId(0, 99)), None, pre_vote=True)
    return frame(wire.encode_message("vote", rid, req))


def cbor_frame(value: Any) -> bytes:
    return frame(cbor2.dumps(value))


async def assert_closes_with(
    c: TcpCluster,
    counter: str,
    attack: Callable[[TcpNode], Awaitable[trio.SocketStream]],
) -> bytes:
    """Run ``attack`` (returns the raw stream it misbehaved on), then check the server
    closed it and counted it in ``counter`` only; return what the server sent before."""
    target = c.nodes[TARGET]
    before = attrs.asdict(target.stats)
    stream = await attack(target)
    got = await read_until_closed(stream)
    await stream.aclose()
    await wait_until(
        lambda: target.stats.connections_open == before["connections_open"], "connection gone"
    )
    after = attrs.asdict(target.stats)
    assert after["connections_accepted"] == before["connections_accepted"] + 1
    for name in FAILURES:
        assert after[name] == before[name] + (name == counter), (name, before, after)
    await c.assert_commits()
    return got


# -- attacks: each returns the stream it used --------------------------------------------------


def sends(*chunks: bytes, hello: bool = False, eof: bool = False) -> Any:
    async def attack(target: TcpNode) -> trio.SocketStream:
        if hello:
            stream = await raw_hello(target.addr, target.node_id)
        else:
            stream = await raw_connect(target.addr)
        for chunk in chunks:
            await stream.send_all(chunk)
        if eof:
            await stream.send_eof()
        return stream

    return attack


HTTP = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
OVERSIZED = (MAX_FRAME + 1).to_bytes(4, "big")
HALF_FRAME = (100).to_bytes(4, "big") + b"x" * 10

CASES = {
    # garbage
    "http request (its first bytes read as a huge length)": ("bad_frames", sends(HTTP)),
    "a frame that is not CBOR": ("bad_messages", sends(frame(b"\xff\xfenot cbor"))),
    "not CBOR, after hello": ("bad_messages", sends(frame(b"\x1f\x00"), hello=True)),
    # truncation
    "truncated frame, then close": ("bad_frames", sends(HALF_FRAME, eof=True)),
    "truncated length prefix, then close": ("bad_frames", sends(b"\x00\x00", eof=True)),
    "truncated frame after hello, then close": (
        "bad_frames",
        sends(HALF_FRAME, hello=True, eof=True),
    ),
    # oversized
    "oversized length prefix": ("bad_frames", sends(OVERSIZED)),
    "oversized length prefix after hello": ("bad_frames", sends(OVERSIZED + b"x", hello=True)),
    # valid CBOR, wrong shape or kind
    "CBOR map instead of hello": ("bad_messages", sends(cbor_frame({"kind": "hello"}))),
    "request instead of hello": ("bad_messages", sends(vote_frame())),
    "hello then a request, pipelined": ("bad_messages", sends(hello_frame(to_id=2) + vote_frame())),
    "wrong body shape after hello": ("bad_messages", sends(cbor_frame([1, 5, ["x"]]), hello=True)),
    "unknown kind after hello": ("bad_messages", sends(cbor_frame([15, 5, None]), hello=True)),
    "bad request id after hello": ("bad_messages", sends(cbor_frame([1, -1, None]), hello=True)),
    "a reply kind after hello": (
        "bad_messages",
        sends(frame(wire.encode_message("hello_ok", 3, wire.HelloOk("x", 1))), hello=True),
    ),
    "a second hello": ("bad_messages", sends(hello_frame(to_id=2), hello=True)),
    "a client request on a raft connection": (
        "bad_messages",
        sends(
            frame(wire.encode_message("client", 4, wire.ClientRequest("get", ["k"]))), hello=True
        ),
    ),
    # silence and stalls
    "silent peer: no hello": ("timeouts", sends()),
    "half a hello, then stall": ("timeouts", sends(hello_frame(to_id=2)[:7])),
    "half a frame after hello, then stall": ("timeouts", sends(HALF_FRAME, hello=True)),
}


@pytest.mark.parametrize("name", list(CASES))
async def test_hostile_input_closes_only_that_connection(name: str) -> None:
    counter, attack = CASES[name]
    with trio.fail_after(LIMIT):
        async with cluster() as c:
            await assert_closes_with(c, counter, attack)


REFUSED_HELLOS: dict[str, dict[str, Any]] = {
    "another cluster": dict(cluster_name="not-" + CONFIG.cluster_name, to_id=TARGET),
    "another node id": dict(to_id=TARGET + 1),
    "another wire version": dict(to_id=TARGET, version=wire.PROTOCOL_VERSION + 1),
    "no peer id": dict(to_id=TARGET, from_id=None),
    "the node's own id": dict(to_id=TARGET, from_id=TARGET),
    "client role without a client handler": dict(role="client", from_id=None, to_id=None),
}


@pytest.mark.parametrize("name", list(REFUSED_HELLOS))
async def test_refused_hello_gets_an_error_and_the_connection_closes(name: str) -> None:
    with trio.fail_after(LIMIT):
        async with cluster() as c:
            got = await assert_closes_with(
                c, "handshakes_refused", sends(hello_frame(**REFUSED_HELLOS[name]))
            )
            kind, rid, reply = wire.decode_message(got[4:])
            assert (kind, rid) == ("error", 0)
            assert reply.error_type == "HandshakeRefused"


async def test_malformed_request_gets_an_error_reply_and_the_connection_stays() -> None:
    """Well-shaped but invalid (a vote from a term the log contradicts) is the node's
    ``InvalidRequest``: an error reply on a connection that keeps serving."""
    bad = VoteRequest(Vote(LeaderId(1, 99)), LogId(LeaderId(5, 99), 3))
    with trio.fail_after(LIMIT):
        async with cluster() as c:
            target = c.nodes[TARGET]
            before = attrs.asdict(target.stats)
            stream = await raw_hello(target.addr, TARGET)
            await stream.send_all(frame(wire.encode_message("vote", 7, bad)))
            kind, rid, reply = await read_frame(stream)
            assert (kind, rid, reply.error_type) == ("error", 7, "InvalidRequest")
            await stream.send_all(vote_frame(8))
            kind, rid, resp = await read_frame(stream)
            assert (kind, rid, resp.vote_granted) == ("vote_resp", 8, False)
            after = attrs.asdict(target.stats)
            assert after["error_replies"] == before["error_replies"] + 1
            assert after["connections_open"] == before["connections_open"] + 1
            for name in FAILURES:
                assert after[name] == before[name]
            await stream.aclose()
            await c.assert_commits()


async def test_slow_reader_is_timed_out() -> None:
    """A peer that sends requests but never reads the replies: once the socket buffers
    fill, the server's writer stalls for ``write_timeout`` and the connection is closed.

    The flood is made cheap for the shared event loop (a tiny receive window; requests the
    node refuses before they reach the Raft core, with large error replies), so that it
    does not starve the cluster's own traffic in this same process."""
    refused = AppendEntriesRequest(Vote(LeaderId(0, 99)), None, (), None)  # vote not committed
    with trio.fail_after(LIMIT):
        async with cluster() as c:

            async def flood(target: TcpNode) -> trio.SocketStream:
                stream = await raw_hello(target.addr, TARGET, rcvbuf=1024)
                batch = frame(wire.encode_message("append", 1, refused)) * 100
                try:  # until the server gives up on us (bounded by fail_after)
                    while True:
                        await stream.send_all(batch)
                except trio.BrokenResourceError:
                    pass
                return stream

            await assert_closes_with(c, "timeouts", flood)


async def test_slow_reader_cannot_grow_the_reply_queue() -> None:
    """Replies a peer does not read count against ``max_pending_reply_bytes``: the server
    stops reading its requests (TCP pushes back) instead of queueing replies without bound.
    A lockstep stream has no kernel buffers, so the bound is exact."""
    with trio.fail_after(LIMIT):
        async with cluster() as c, trio.open_nursery() as nursery:
            target = c.nodes[TARGET]
            before = attrs.asdict(target.stats)
            client, server_side = trio.testing.lockstep_stream_pair()
            nursery.start_soon(target.server.handle_connection, server_side)
            await client.send_all(hello_frame(to_id=TARGET))
            kind, _, _ = await read_frame(client)
            assert kind == "hello_ok"
            sent = 0
            try:
                for rid in range(20 * LIMITS.max_inflight):  # never reading a reply
                    await client.send_all(vote_frame(rid))
                    sent += 1
            except trio.BrokenResourceError:
                pass
            await wait_until(lambda: target.stats.timeouts == before["timeouts"] + 1, "timeout")
            read = target.stats.requests - before["requests"]
            queued = LIMITS.max_pending_reply_bytes // FRAME_OVERHEAD  # each costs more
            assert read <= LIMITS.max_inflight + queued + 1 < 20 * LIMITS.max_inflight
            assert sent <= read + 1
            await wait_until(
                lambda: target.stats.connections_open == before["connections_open"], "closed"
            )
            await c.assert_commits()


async def test_idle_connection_makes_room_when_max_connections_are_open() -> None:
    """``max_connections`` (non-peer) connections are open and idle: a new one closes the
    one idle longest (``connections_evicted``) and is served."""
    with trio.fail_after(LIMIT):
        async with cluster() as c:
            await c.assert_commits()  # the target knows its peers: 99 is none of them
            target = c.nodes[TARGET]
            before = attrs.asdict(target.stats)
            held = [await raw_hello(target.addr, TARGET) for _ in range(LIMITS.max_connections)]
            stream = await raw_hello(target.addr, TARGET)  # one too many
            assert await read_until_closed(held[0]) == b""  # the oldest, idle longest
            await stream.send_all(vote_frame(9))
            kind, rid, _ = await read_frame(stream)
            assert (kind, rid) == ("vote_resp", 9)
            after = attrs.asdict(target.stats)
            assert after["connections_evicted"] == before["connections_evicted"] + 1
            for name in FAILURES:
                assert after[name] == before[name], name
            for s in [*held, stream]:
                await s.aclose()
            await c.assert_commits()


async def test_connections_over_max_connections_are_refused_when_none_is_idle() -> None:
    """Every one of ``max_connections`` connections has a reply its peer has not read (a
    lockstep stream buffers nothing): a new one is refused with ``HandshakeRefused`` and
    counted in ``connections_refused``; peers keep replicating."""
    limits = attrs.evolve(LIMITS, write_timeout=LIMIT)  # the busy ones must stay busy
    with trio.fail_after(LIMIT):
        async with (
            open_tcp_cluster(3, limits={i: limits for i in (1, 2, 3)}) as c,
            trio.open_nursery() as nursery,
        ):
            await c.assert_commits()  # the target knows its peers: 99 is none of them
            target = c.nodes[TARGET]
            before = attrs.asdict(target.stats)
            busy = []
            for rid in range(LIMITS.max_connections):
                client, server_side = trio.testing.lockstep_stream_pair()
                nursery.start_soon(target.server.handle_connection, server_side)
                await client.send_all(hello_frame(to_id=TARGET))
                kind, _, _ = await read_frame(client)
                assert kind == "hello_ok"
                await client.send_all(vote_frame(rid))  # its reply is never read
                busy.append(client)
            await wait_until(
                lambda: target.stats.requests >= before["requests"] + len(busy), "requests"
            )
            await assert_closes_with(c, "connections_refused", sends(hello_frame(to_id=TARGET)))
            for client in busy:
                await client.aclose()
            await wait_until(
                lambda: target.stats.connections_open == before["connections_open"], "closed"
            )


# -- random bytes, one live server for every example --------------------------------------------


@attrs.define
class _Live:
    cluster: TcpCluster
    token: trio.lowlevel.TrioToken
    stop: trio.Event

    def stats(self) -> dict[str, int]:
        target = self.cluster.nodes[TARGET]
        return trio.from_thread.run_sync(lambda: attrs.asdict(target.stats), trio_token=self.token)

    def run(self, fn: Callable[[], Awaitable[Any]]) -> Any:
        return trio.from_thread.run(fn, trio_token=self.token)


@contextmanager
def cluster_in_a_thread() -> Iterator[_Live]:
    """A running cluster on its own trio loop in a thread, so that hypothesis (which runs
    each example as a plain call) can hit one live server with all its examples."""
    ready = threading.Event()
    box: list[Any] = []

    async def main() -> None:
        try:
            async with cluster() as c:
                live = _Live(c, trio.lowlevel.current_trio_token(), trio.Event())
                box.append(live)
                ready.set()
                await live.stop.wait()
        finally:
            ready.set()

    def run() -> None:
        try:
            trio.run(main)
        except BaseException as e:
            box.append(e)

    thread = threading.Thread(target=run, name="hostile-cluster", daemon=True)
    thread.start()
    try:
        assert ready.wait(LIMIT), "cluster did not start"
        assert isinstance(box[0], _Live), box
        live = box[0]
        yield live
        trio.from_thread.run_sync(live.stop.set, trio_token=live.token)
    finally:
        thread.join(LIMIT)
    assert not thread.is_alive()
    assert len(box) == 1, box[1:]  # the loop ended without an error


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        assert chunk, "EOF during the handshake"
        buf += chunk
    return buf


def test_random_bytes_only_ever_close_that_connection() -> None:
    with cluster_in_a_thread() as live:
        host, port = live.cluster.nodes[TARGET].addr.rsplit(":", 1)
        baseline = live.stats()

        @settings(max_examples=30, deadline=None, database=None)
        @given(data=st.binary(max_size=300), hello=st.booleans())
        def example(data: bytes, hello: bool) -> None:
            before = live.stats()
            with socket.create_connection((host, int(port)), timeout=LIMIT) as sock:
                if hello:
                    sock.sendall(hello_frame(to_id=TARGET))
                    size = int.from_bytes(_recv_exactly(sock, 4), "big")
                    kind, _, _ = wire.decode_message(_recv_exactly(sock, size))
                    assert kind == "hello_ok"
                try:
                    sock.sendall(data)
                    sock.shutdown(socket.SHUT_WR)  # so a truncated frame ends at once
                except OSError:
                    pass  # it already closed on us
                try:  # until the server closes (a socket.timeout here fails the test)
                    while sock.recv(65536):
                        pass
                except ConnectionResetError:
                    pass
            for _ in range(int(LIMIT / 0.01)):  # poll until the server let go of it
                after = live.stats()
                if after["connections_open"] == before["connections_open"]:
                    break
                time.sleep(0.01)
            assert after["connections_open"] == before["connections_open"]
            assert after["connections_accepted"] == before["connections_accepted"] + 1
            assert after["handler_errors"] == 0
            failures = sum(after[k] - before[k] for k in FAILURES)
            assert failures <= 1  # one connection, at most one reason to close it

        example()
        live.run(live.cluster.assert_commits)
        final = live.stats()
        assert final["connections_open"] == baseline["connections_open"]
        assert final["handler_errors"] == 0


async def test_only_a_small_frame_is_accepted_before_the_handshake() -> None:
    """A stranger cannot make the server buffer or decode a big frame: before the hello
    passed, frames are limited to ``max_handshake_frame_size``; after it, to
    ``max_frame_size``."""
    limits = attrs.evolve(LIMITS, max_frame_size=1024 * 1024, max_handshake_frame_size=1024)
    big = cbor_frame([1, 5, ["x" * 100_000]])  # ~100 KB of valid CBOR, wrong shape
    with trio.fail_after(LIMIT):
        async with open_tcp_cluster(3, limits={i: limits for i in (1, 2, 3)}) as c:
            # Refused as soon as the length prefix arrives, before any body byte is read.
            await assert_closes_with(c, "bad_frames", sends((2048).to_bytes(4, "big")))
            # After the handshake the same big frame is read whole (and refused for its
            # shape, not its size).
            await assert_closes_with(c, "bad_messages", sends(big, hello=True))
