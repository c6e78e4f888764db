"""In-process Raft nodes over real loopback TCP, for the transport tests.

:func:`open_tcp_cluster` starts N nodes (``open_tcp_network`` + ``open_raft`` with
``MemLogStore``/``KvStateMachine`` + ``serve_raft`` on ``127.0.0.1:0``), initializes them
from node 1 and waits for a leader. These tests run on trio's real clock: every wait here
is on a condition, bounded by a generous timeout, never a fixed sleep.

Also here: raw-socket helpers for speaking (or abusing) the wire protocol by hand.
"""

from __future__ import annotations

import itertools
import socket
import ssl
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import attrs
import trio

import openraft_trio as raft
from openraft_trio._open import open_raft
from openraft_trio.kv import KvService, KvStateMachine, Set
from openraft_trio.network import _wire as wire
from openraft_trio.network._frames import encode_frame
from openraft_trio.network.tcp import (
    RaftServer,
    ServerLimits,
    ServerStats,
    TcpNetworkFactory,
    open_tcp_network,
    serve_raft,
)
from openraft_trio.storage import MemLogStore

# Real clock, loopback, a loaded CI machine: elections a bit slower than the defaults so a
# scheduling hiccup does not depose a leader mid-test.
CONFIG = raft.Config(
    cluster_name="tcp-test",
    election_timeout_min=0.4,
    election_timeout_max=0.8,
    heartbeat_interval=0.05,
)
WAIT = 10.0  # seconds: generous bound on any condition a test waits for
_keys = itertools.count()


# ServerStats counters of a connection closed for misbehaving (each case moves exactly one).
FAILURES = (
    "connections_refused",
    "handshakes_refused",
    "bad_frames",
    "bad_messages",
    "timeouts",
    "broken_connections",
    "handler_errors",
)


async def wait_until(pred: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    """Poll ``pred`` until true; fail (not hang) after ``timeout`` seconds."""
    with trio.move_on_after(timeout):
        while not pred():  # noqa: ASYNC110 (a counter has no event to wait on)
            await trio.sleep(0.01)
        return
    raise AssertionError(f"timed out waiting for {what}")


@attrs.define(eq=False)
class TcpNode:
    node_id: int
    raft: raft.Raft
    server: RaftServer
    network: TcpNetworkFactory
    state_machine: KvStateMachine
    scope: trio.CancelScope
    done: trio.Event
    addr: str = ""  # the server's, kept: it cannot be read back once the server stopped
    service: KvService | None = None  # the client API, if started with kv_service=True

    def __attrs_post_init__(self) -> None:
        self.addr = self.server.addr

    @property
    def stats(self) -> ServerStats:
        return self.server.stats

    async def stop(self) -> None:
        """Stop the node (server, Raft, network) and wait until it is gone."""
        self.scope.cancel()
        await self.done.wait()


async def run_node(
    node_id: int,
    config: raft.Config,
    *,
    port: int = 0,
    limits: ServerLimits | None = None,
    server_ssl: ssl.SSLContext | None = None,
    client_ssl: ssl.SSLContext | None = None,
    client_handler: Any = None,
    kv_service: bool = False,
    task_status: trio.TaskStatus[TcpNode] = trio.TASK_STATUS_IGNORED,
) -> None:
    """One node until cancelled: start it with ``await nursery.start(run_node, ...)``.
    ``kv_service`` serves the KV client API (:class:`KvService`) on client connections."""
    done = trio.Event()
    try:
        with trio.CancelScope() as scope:
            sm = KvStateMachine()
            async with (
                open_tcp_network(node_id, config, ssl_context=client_ssl) as network,
                open_raft(
                    node_id, config, network=network, log_store=MemLogStore(), state_machine=sm
                ) as node,
                trio.open_nursery() as nursery,
            ):
                service = None
                if kv_service:
                    service = KvService(
                        node, sm, addr="", peers={}, transport_stats=lambda: server.stats.as_dict()
                    )
                    client_handler = service.handle
                server: RaftServer = await nursery.start(
                    partial(
                        serve_raft,
                        node,
                        "127.0.0.1",
                        port,
                        ssl_context=server_ssl,
                        limits=limits,
                        client_handler=client_handler,
                    )
                )
                task_status.started(
                    TcpNode(node_id, node, server, network, sm, scope, done, service=service)
                )
                await trio.sleep_forever()
    finally:
        done.set()


class TcpCluster:
    """Handles on the running nodes; made by :func:`open_tcp_cluster`."""

    def __init__(
        self,
        nursery: trio.Nursery,
        config: raft.Config,
        *,
        limits: Mapping[int, ServerLimits],
        server_ssl: ssl.SSLContext | None,
        client_ssl: ssl.SSLContext | None,
    ) -> None:
        self.nursery = nursery
        self.config = config
        self.limits = limits
        self.server_ssl = server_ssl
        self.client_ssl = client_ssl
        self.nodes: dict[int, TcpNode] = {}

    async def start(self, node_id: int, **kwargs: Any) -> TcpNode:
        kwargs.setdefault("limits", self.limits.get(node_id))
        kwargs.setdefault("server_ssl", self.server_ssl)
        kwargs.setdefault("client_ssl", self.client_ssl)
        node: TcpNode = await self.nursery.start(
            partial(run_node, node_id, kwargs.pop("config", self.config), **kwargs)
        )
        self.nodes[node_id] = node
        return node

    def members(self) -> dict[int, raft.Node]:
        return {i: raft.Node(n.addr) for i, n in self.nodes.items()}

    async def leader(self, timeout: float = WAIT) -> TcpNode:
        """The node every running node agrees leads (waits for one)."""
        first = next(iter(self.nodes.values()))
        m = await first.raft.wait(timeout).metrics(
            lambda m: m.current_leader is not None and m.current_leader in self.nodes,
            "a leader",
        )
        assert m.current_leader is not None
        leader = self.nodes[m.current_leader]
        await leader.raft.wait(timeout).state(raft.ServerState.LEADER)
        return leader

    async def write(self, key: str, value: Any) -> int:
        """Commit ``Set(key, value)`` through the leader; its log index."""
        for _ in range(20):
            leader = await self.leader()
            try:
                resp = await leader.raft.client_write(Set(key, value))
            except raft.ForwardToLeader:
                await trio.sleep(0.05)
                continue
            return resp.log_id.index
        raise AssertionError(f"could not write {key!r}")

    async def wait_applied(self, index: int, ids: Any = None) -> None:
        for i in ids if ids is not None else list(self.nodes):
            await self.nodes[i].raft.wait(WAIT).applied_index_at_least(index)

    async def assert_commits(self) -> None:
        """The cluster still works: a fresh write commits and every node applies it."""
        key = f"check-{next(_keys)}"
        index = await self.write(key, "ok")
        await self.wait_applied(index)
        for node in self.nodes.values():
            assert node.state_machine.get(key) == "ok"


@asynccontextmanager
async def open_tcp_cluster(
    n: int = 3,
    *,
    config: raft.Config = CONFIG,
    limits: Mapping[int, ServerLimits] | None = None,
    server_ssl: ssl.SSLContext | None = None,
    client_ssl: ssl.SSLContext | None = None,
    kv_service: bool = False,
    initialize: bool = True,
) -> AsyncIterator[TcpCluster]:
    """``n`` nodes on loopback, initialized by node 1, with a leader elected and its
    blank entry applied everywhere (unless ``initialize`` is false: then the test
    initializes them). ``kv_service``: every node also serves the KV client API."""
    async with trio.open_nursery() as nursery:
        cluster = TcpCluster(
            nursery,
            config,
            limits=limits or {},
            server_ssl=server_ssl,
            client_ssl=client_ssl,
        )
        for i in range(1, n + 1):
            await cluster.start(i, kv_service=kv_service)
        if initialize:
            await cluster.nodes[1].raft.initialize(cluster.members())
            leader = await cluster.leader()
            # Once every node applied the leader's blank entry, the leader has opened both
            # its connections (control and data) to each follower: the counts are settled.
            await cluster.wait_applied(leader.raft.metrics.last_log_index or 0)
        try:
            yield cluster
        finally:
            nursery.cancel_scope.cancel()


# -- raw sockets ---------------------------------------------------------------------------


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def frame(body: bytes) -> bytes:
    return encode_frame(body, max_frame_size=2**32 - 1)


def hello_frame(
    cluster_name: str = CONFIG.cluster_name,
    to_id: int | None = 1,
    *,
    from_id: int | None = 99,
    role: str = "raft",
    version: int = wire.PROTOCOL_VERSION,
) -> bytes:
    return frame(
        wire.encode_message("hello", 0, wire.Hello(cluster_name, role, from_id, to_id, version))
    )


async def read_frame(stream: trio.abc.ReceiveStream) -> tuple[str, int, Any]:
    """Read exactly one frame and decode it (raw-socket side)."""
    buf = bytearray()
    while len(buf) < 4 or len(buf) < 4 + int.from_bytes(buf[:4], "big"):
        chunk = await stream.receive_some(65536)
        if not chunk:
            raise AssertionError(f"EOF after {len(buf)} bytes, wanted one frame")
        buf += chunk
    size = int.from_bytes(buf[:4], "big")
    assert len(buf) == 4 + size, "more than one frame arrived"
    return wire.decode_message(bytes(buf[4:]))


async def raw_hello(
    addr: str, to_id: int, *, rcvbuf: int | None = None, **kwargs: Any
) -> trio.SocketStream:
    """A raw connection that passed the handshake as a (fake) peer. ``rcvbuf`` sets
    ``SO_RCVBUF`` before connecting, so the TCP window stays that small."""
    host, port = addr.rsplit(":", 1)
    if rcvbuf is None:
        stream = await trio.open_tcp_stream(host, int(port))
    else:
        sock = trio.socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        await sock.connect((host, int(port)))
        stream = trio.SocketStream(sock)
    await stream.send_all(hello_frame(to_id=to_id, **kwargs))
    kind, _rid, ok = await read_frame(stream)
    assert kind == "hello_ok", (kind, ok)
    assert ok.node_id == to_id
    return stream


async def raw_connect(addr: str) -> trio.SocketStream:
    host, port = addr.rsplit(":", 1)
    return await trio.open_tcp_stream(host, int(port))


async def read_until_closed(stream: trio.abc.ReceiveStream) -> bytes:
    """Everything the server sends until it closes the connection (EOF or reset)."""
    got = bytearray()
    while True:
        try:
            chunk = await stream.receive_some(65536)
        except trio.BrokenResourceError:  # reset: closed with our bytes unread
            return bytes(got)
        if not chunk:
            return bytes(got)
        got += chunk
