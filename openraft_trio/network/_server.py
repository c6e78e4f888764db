"""The TCP server: accepts peers (Raft RPCs) and, optionally, clients (a service's API).

Every connection starts with the handshake (``hello`` -> ``hello_ok``): the cluster name
must match, a peer must be asking for *this* node's id, and the wire version must be ours.
Then each frame is one request; replies carry its request id and go out through the
connection's coalescing writer. A connection's ``vote``/``append`` requests reach the Raft
core in the order they arrived (pipelined appends stay in order) while their replies are
awaited concurrently.

Hostile input closes the one connection it came on, with one log line and one counter in
:class:`ServerStats`; the node keeps serving. What a connection may hold is bounded:
``max_frame_size`` per frame, ``max_frame_items`` CBOR items and ``max_frame_depth``
nesting per message (checked before decoding), ``max_inflight`` requests being handled at
once (checked before each request is decoded) and ``max_pending_reply_bytes`` of replies
waiting for the peer to read them (the reader stops reading beyond either, so TCP flow
control pushes back on the peer, including one that does not read its replies), and one
partially received snapshot of at most ``max_snapshot_size``. ``docs/network.md`` ("Memory
per connection") adds these up.

Connection slots: a connection waiting for its handshake is a stranger (at most
``max_handshakes``; a new one closes the oldest). After the handshake a peer (role
``raft`` and an id of this node's membership, or any id while the node knows no
membership yet) has its own slots, ``max_connections_per_peer`` per id (a new one closes
the oldest of that id), so clients can never lock peers out. Everyone else shares
``max_connections`` slots; when they are full, a new connection takes the slot of the one
idle longest (no request in flight, no reply unsent, no frame half received), and is
refused only if every connection is busy.

Nothing a request decoded outlives its handling: error replies are built where the
exception is caught, so no exception (whose traceback holds the frames that hold the
request) is kept in a reference cycle that only the cyclic GC could free.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import Any, final

import attrs
import trio

from .._errors import ForwardToLeader, InvalidRequest, PayloadTooLarge, RaftError
from .._types import Snapshot
from . import _wire as wire
from ._conn import ConnectionClosed, ConnectionTimeout, FramedStream
from ._frames import DEFAULT_MAX_FRAME_SIZE, FrameError, FrameTooLarge

log = logging.getLogger("openraft_trio.network")

ClientHandler = Callable[[str, list[Any]], Awaitable[Any]]
"""``(op, args) -> value``: a service's client API, called for each ``client`` frame.
Raise a :class:`~openraft_trio.RaftError` to answer with an error reply."""

ClientBatchHandler = Callable[[list[tuple[str, list[Any]]]], Awaitable[list[Any]]]
"""Optional: ``[(op, args), ...] -> [value or exception, ...]`` for the client requests
that arrived together on one connection (one read), so a service can submit their writes
as one Raft batch. An exception in the list becomes that request's error reply."""


@final
@attrs.define
class ServerLimits:
    """Bounds on what one peer can make the server hold or wait for."""

    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE
    # Before the handshake passed a peer may send only this much: a stranger cannot make
    # the server buffer (or decode) a big frame.
    max_handshake_frame_size: int = 64 * 1024
    # One message decodes to at most ~128 bytes per CBOR item (plus its strings): the
    # item count, not the frame size, bounds what a frame may decode to.
    max_frame_items: int = wire.DEFAULT_MAX_ITEMS
    max_frame_depth: int = wire.DEFAULT_MAX_DEPTH
    max_inflight: int = 1024
    # Replies queued or being sent on one connection; beyond it no new request is handled.
    max_pending_reply_bytes: int = 4 * 1024**2
    max_connections: int = 256  # clients and non-member peers, after their handshake
    max_connections_per_peer: int = 4  # per member node id, beside max_connections
    max_handshakes: int = 64  # connections waiting for their handshake
    max_snapshot_size: int = 4 * 1024**3
    handshake_timeout: float = 5.0
    frame_timeout: float = 10.0
    write_timeout: float = 10.0
    idle_timeout: float | None = 300.0


@final
@attrs.define
class ServerStats:
    """Counters of the server (the ``transport`` part of a node's metrics)."""

    connections_accepted: int = 0
    connections_open: int = 0
    connections_refused: int = 0  # max_connections all busy
    connections_evicted: int = 0  # closed to make room (idle longest, or oldest)
    handshakes_refused: int = 0  # wrong cluster, node id, role or version
    bad_frames: int = 0  # oversized length prefix, truncated frame
    bad_messages: int = 0  # not CBOR, wrong shape, unexpected kind
    timeouts: int = 0  # silent or slow peer, slow reader, handshake
    broken_connections: int = 0  # reset, TLS failure
    requests: int = 0
    error_replies: int = 0
    handler_errors: int = 0  # bugs: an unexpected exception in a handler
    frames_sent: int = 0
    bytes_sent: int = 0
    frames_received: int = 0
    bytes_received: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counters as a ``{name: value}`` dict."""
        return attrs.asdict(self)


class _Refused(Exception):
    """Handshake refused; the message is sent to the peer and logged."""


class _Busy(_Refused):
    """No connection slot: ``max_connections`` connections, none of them idle."""


@final
class RaftServer:
    """A running server; :func:`serve_raft` hands it to ``task_status.started``."""

    def __init__(
        self,
        raft: Any,
        listeners: list[trio.abc.Listener[Any]],
        *,
        limits: ServerLimits,
        client_handler: ClientHandler | None,
        client_batch_handler: ClientBatchHandler | None = None,
    ) -> None:
        self.raft = raft
        self.listeners = listeners
        self.limits = limits
        self.client_handler = client_handler
        self.client_batch_handler = client_batch_handler
        self.stats = ServerStats()
        self.cluster_name: str = raft.config.cluster_name
        self.node_id: int = raft.node_id
        # Connection slots (dicts as ordered sets: the oldest first).
        self._strangers: dict[_Connection, None] = {}
        self._general: dict[_Connection, None] = {}
        self._peers: dict[int, dict[_Connection, None]] = {}

    @property
    def port(self) -> int:
        """The port of the first listener (useful after binding port 0)."""
        port: int = _sockname(self.listeners[0])[1]
        return port

    @property
    def addr(self) -> str:
        """The ``host:port`` the first listener is bound to."""
        host, port = _sockname(self.listeners[0])[:2]
        return f"{host}:{port}"

    async def handle_connection(self, stream: trio.abc.Stream) -> None:
        """Serve one accepted connection until it closes; a broken, bad or timed-out
        connection is closed and counted in ``stats``, not raised."""
        stats = self.stats
        stats.connections_accepted += 1
        peer = _peer_name(stream)
        limits = self.limits
        if len(self._strangers) >= limits.max_handshakes:
            self._evict(next(iter(self._strangers)), "too many handshakes pending")
        stats.connections_open += 1
        conn = FramedStream(
            stream,
            max_frame_size=limits.max_frame_size,
            max_receive_size=min(limits.max_handshake_frame_size, limits.max_frame_size),
            write_timeout=limits.write_timeout,
            frame_timeout=limits.frame_timeout,
            counters=stats,
        )
        connection = _Connection(self, conn, peer)
        self._strangers[connection] = None
        try:
            with connection.scope:
                await connection.run()
            if connection.scope.cancelled_caught:
                stats.connections_evicted += 1
                log.info("closed connection from %s: %s", peer, connection.evicted_because)
        except _Busy as e:
            stats.connections_refused += 1
            log.warning("refused connection from %s: %s", peer, e)
        except _Refused as e:
            stats.handshakes_refused += 1
            log.warning("refused handshake from %s: %s", peer, e)
        except FrameError as e:
            stats.bad_frames += 1
            log.warning("closing connection from %s: bad frame: %s", peer, e)
        except wire.DecodeError as e:
            stats.bad_messages += 1
            log.warning("closing connection from %s: bad message: %s", peer, e)
        except ConnectionTimeout as e:
            stats.timeouts += 1
            log.warning("closing connection from %s: %s", peer, e)
        except (trio.BrokenResourceError, ssl.SSLError, OSError) as e:
            stats.broken_connections += 1
            log.info("connection from %s broke: %s", peer, e)
        except ConnectionClosed:
            pass
        finally:
            self._release(connection)
            stats.connections_open -= 1
            await conn.aclose()

    # -- connection slots ---------------------------------------------------------------------

    def admit(self, connection: _Connection, hello: wire.Hello) -> None:
        """Move a connection whose handshake passed from the strangers to its slot.

        Raises:
            _Busy: ``max_connections`` non-peer connections, none of them idle.
        """
        limits = self.limits
        if hello.role == "raft" and hello.from_id is not None and self._is_peer(hello.from_id):
            same = self._peers.setdefault(hello.from_id, {})
            if len(same) >= limits.max_connections_per_peer:
                self._evict(next(iter(same)), f"a newer connection from node {hello.from_id}")
            same[connection] = None
        else:
            if len(self._general) >= limits.max_connections:
                idle = [c for c in self._general if c.is_idle()]
                if not idle:
                    raise _Busy(f"{len(self._general)} connections open, none idle")
                self._evict(min(idle, key=lambda c: c.last_active), "idle longest")
            self._general[connection] = None
        self._strangers.pop(connection, None)

    def _is_peer(self, node_id: int) -> bool:
        nodes = self.raft.metrics.membership.membership.nodes
        # A node that knows no membership yet (not initialized, a new learner) cannot
        # tell its peers: it takes any node id (per-id slots still apply).
        return node_id in nodes or not nodes

    def _evict(self, connection: _Connection, why: str) -> None:
        self._release(connection)
        connection.evicted_because = why
        connection.scope.cancel()

    def _release(self, connection: _Connection) -> None:
        self._strangers.pop(connection, None)
        self._general.pop(connection, None)
        for node_id, same in list(self._peers.items()):
            if same.pop(connection, 0) is None and not same:
                del self._peers[node_id]


class _Connection:
    """One accepted connection: handshake, then the request loop."""

    def __init__(self, server: RaftServer, conn: FramedStream, peer: str) -> None:
        self.server = server
        self.raft = server.raft
        self.conn = conn
        self.peer = peer
        self.role = ""
        self.inflight = 0
        self.room = trio.Event()
        self.scope = trio.CancelScope()  # cancelled to evict the connection
        self.evicted_because = ""
        self.last_active = trio.current_time()
        # The one snapshot being received: (vote, meta, bytes so far).
        self.snapshot: tuple[Any, Any, bytearray] | None = None

    async def run(self) -> None:
        await self._handshake()
        await self.conn.run(self._read_loop)

    def is_idle(self) -> bool:
        """After the handshake: nothing in flight, nothing unsent, nothing half received."""
        return (
            bool(self.role)
            and self.inflight == 0
            and self.conn.unsent == 0
            and not self.conn.receiving
            and self.snapshot is None
        )

    async def _handshake(self) -> None:
        server = self.server
        with trio.move_on_after(server.limits.handshake_timeout) as scope:
            frames = await self.conn.receive_frames()
        if scope.cancelled_caught:
            raise ConnectionTimeout(f"no handshake within {server.limits.handshake_timeout}s")
        kind, rid, hello = self._decode(frames[0])
        if kind != "hello" or len(frames) > 1:
            raise wire.DecodeError(f"expected one hello frame first, got {kind!r}")
        reason = self._check_hello(hello)
        if reason is not None:
            reply = wire.ErrorReply("HandshakeRefused", reason)
            await self.conn.send_now(wire.encode_message("error", rid, reply))
            raise _Refused(reason)
        try:
            server.admit(self, hello)
        except _Busy as e:
            reply = wire.ErrorReply("HandshakeRefused", f"server busy: {e}")
            await self.conn.send_now(wire.encode_message("error", rid, reply))
            raise
        self.role = hello.role
        self.conn.allow_frames_up_to(server.limits.max_frame_size)
        ok = wire.HelloOk(server.cluster_name, server.node_id)
        await self.conn.send_now(wire.encode_message("hello_ok", rid, ok))

    def _check_hello(self, hello: wire.Hello) -> str | None:
        server = self.server
        if hello.version != wire.PROTOCOL_VERSION:
            return f"wire version {hello.version} is not {wire.PROTOCOL_VERSION}"
        if hello.cluster_name != server.cluster_name:
            return (
                f"peer is in cluster {hello.cluster_name!r}, this node in {server.cluster_name!r}"
            )
        if hello.role == "raft":
            if hello.to_id != server.node_id:
                return f"peer asked for node {hello.to_id}, this is node {server.node_id}"
            if hello.from_id is None or hello.from_id == server.node_id:
                return f"peer claims node id {hello.from_id}, which cannot be a peer of {server.node_id}"
        elif server.client_handler is None:
            return "this server takes no client connections"
        return None

    def _decode(self, frame: bytes) -> tuple[str, int, Any]:
        limits = self.server.limits
        # A peer's AppendEntries carries whatever values the cluster accepted (each up to
        # Config.max_entry_bytes, whatever their item count): bounding its items more
        # tightly than its bytes would stall replication of a legitimate log for good.
        # A peer is trusted with the log anyway (authenticate peers with TLS); the item
        # bound protects the client API and anything before the handshake.
        max_items = limits.max_frame_size if self.role == "raft" else limits.max_frame_items
        return wire.decode_message(frame, max_items=max_items, max_depth=limits.max_frame_depth)

    async def _read_loop(self, nursery: trio.Nursery) -> None:
        limits = self.server.limits
        while True:
            frames = await self.conn.receive_frames(limits.idle_timeout)
            self.last_active = trio.current_time()
            # Client requests that arrived together are one batch (for the service's batch
            # handler), cut wherever the limits make the reader wait.
            client_batch: list[tuple[int, wire.ClientRequest]] = []
            for index in range(len(frames)):
                if self._full(len(client_batch)):
                    if client_batch:
                        self._dispatch_client(nursery, client_batch)
                        client_batch = []
                    await self._wait_for_room()
                # Decode one frame at a time, only once there is room for it: a read of
                # thousands of small requests never holds more than max_inflight decoded.
                frame, frames[index] = frames[index], b""
                self._take(nursery, frame, client_batch)
            if client_batch:
                self._dispatch_client(nursery, client_batch)
            del frames, client_batch

    def _full(self, batched: int) -> bool:
        limits = self.server.limits
        return (
            self.inflight + batched >= limits.max_inflight
            or self.conn.unsent >= limits.max_pending_reply_bytes
        )

    async def _wait_for_room(self) -> None:
        """Until fewer than ``max_inflight`` requests are in flight and fewer than
        ``max_pending_reply_bytes`` of replies wait for the peer to read them."""
        limits = self.server.limits
        while self._full(0):
            if self.inflight >= limits.max_inflight:
                self.room = trio.Event()
                await self.room.wait()
            else:
                await self.conn.wait_unsent_below(limits.max_pending_reply_bytes)

    def _take(
        self, nursery: trio.Nursery, frame: bytes, client_batch: list[tuple[int, Any]]
    ) -> None:
        """Decode one request and start it (or add it to ``client_batch``). A function of
        its own so that no local of the read loop keeps the last request alive."""
        kind, rid, msg = self._decode(frame)
        self.server.stats.requests += 1
        if self.role == "client" and kind == "client":
            client_batch.append((rid, msg))
        else:
            self._dispatch(nursery, kind, rid, msg)

    def _dispatch_client(
        self, nursery: trio.Nursery, batch: list[tuple[int, wire.ClientRequest]]
    ) -> None:
        batch_handler = self.server.client_batch_handler
        if batch_handler is None or len(batch) == 1:
            handler = self.server.client_handler
            assert handler is not None
            for rid, msg in batch:
                self._start(
                    nursery, rid, "client_resp", functools.partial(_client_call, handler, msg)
                )
            return
        self.inflight += len(batch)
        nursery.start_soon(self._handle_client_batch, batch_handler, batch)

    async def _handle_client_batch(
        self, handler: ClientBatchHandler, batch: list[tuple[int, wire.ClientRequest]]
    ) -> None:
        try:
            values = await handler([(msg.op, msg.args) for _, msg in batch])
        except Exception as e:  # a bug in the batch handler: every request gets it
            self.server.stats.handler_errors += 1
            log.exception("client batch handler failed (%d requests)", len(batch))
            # Kept in a list beyond this block: without its traceback (which holds this
            # frame, so the list) it is no reference cycle.
            values = [e.with_traceback(None)] * len(batch)
        for (rid, _), value in zip(batch, values, strict=True):
            if not isinstance(value, BaseException):
                value = wire.ClientReply(value)
            self._answer(rid, "client_resp", value)

    def _dispatch(self, nursery: trio.Nursery, kind: str, rid: int, msg: Any) -> None:
        raft = self.raft
        if self.role == "client":
            raise wire.DecodeError(f"a client connection cannot send {kind!r}")
        if kind == "append":
            self._start_posted(
                nursery, rid, "append_resp", raft.post_append_entries, raft.append_entries, msg
            )
        elif kind == "vote":
            self._start_posted(nursery, rid, "vote_resp", raft.post_vote, raft.vote, msg)
        elif kind == "transfer":
            self._start(nursery, rid, "transfer_resp", lambda: raft.handle_transfer_leader(msg))
        elif kind == "snapshot":
            self._start(
                nursery,
                rid,
                "snapshot_resp",
                lambda: raft.install_full_snapshot(msg.vote, msg.snapshot),
            )
        elif kind == "chunk":
            self._chunk(nursery, rid, msg)
        else:
            raise wire.DecodeError(f"a peer cannot send {kind!r}")

    def _chunk(self, nursery: trio.Nursery, rid: int, chunk: wire.SnapshotChunk) -> None:
        """Add a snapshot piece; install once the last one is here. Out-of-order or
        mismatched pieces are refused (the sender restarts from offset 0)."""
        if chunk.offset == 0:
            self.snapshot = (chunk.vote, chunk.meta, bytearray())
        current = self.snapshot
        error: str | None = None
        if current is None or current[1] != chunk.meta or current[0] != chunk.vote:
            error = "snapshot chunk does not continue the snapshot being received"
        elif chunk.offset != len(current[2]):
            error = f"snapshot chunk at offset {chunk.offset}, expected {len(current[2])}"
        elif chunk.offset + len(chunk.data) > self.server.limits.max_snapshot_size:
            error = f"snapshot larger than max_snapshot_size {self.server.limits.max_snapshot_size}"
        if error is not None:
            self.snapshot = None
            self._reply_error(rid, InvalidRequest(error))
            return
        assert current is not None
        current[2].extend(chunk.data)
        if not chunk.done:
            self._reply(rid, "chunk_ack", None)
            return
        self.snapshot = None
        snapshot = Snapshot(chunk.meta, bytes(current[2]))
        self._start(
            nursery,
            rid,
            "snapshot_resp",
            lambda: self.raft.install_full_snapshot(chunk.vote, snapshot),
        )

    # -- replies ------------------------------------------------------------------------------

    def _start_posted(
        self,
        nursery: trio.Nursery,
        rid: int,
        reply_kind: str,
        post: Callable[[Any, Callable[[Any], None]], bool],
        call: Callable[[Any], Awaitable[Any]],
        msg: Any,
    ) -> None:
        """Submit now (keeps the connection's order) and reply from the core's callback:
        no task per request on the hot path."""

        try:
            posted = post(msg, functools.partial(self._answer, rid, reply_kind))
        except RaftError as e:
            self._reply_error(rid, e)
            return
        if posted:
            self.inflight += 1
        else:  # the core is busy: wait our turn (order no longer guaranteed)
            self._start(nursery, rid, reply_kind, lambda: call(msg))

    def _start(
        self, nursery: trio.Nursery, rid: int, reply_kind: str, fn: Callable[[], Awaitable[Any]]
    ) -> None:
        self.inflight += 1
        nursery.start_soon(self._handle, rid, reply_kind, fn)

    async def _handle(self, rid: int, reply_kind: str, fn: Callable[[], Awaitable[Any]]) -> None:
        # Answer inside the except blocks: an exception kept in a local would hold its
        # traceback, which holds this frame, which holds the exception (and the frames
        # below, with the request's decoded arguments): a cycle only the GC frees.
        try:
            value = await fn()
        except RaftError as e:
            self._answer(rid, reply_kind, e)
            return
        except Exception as e:  # a bug: answer, log it, keep serving
            self.server.stats.handler_errors += 1
            log.exception("handler of request %d from %s failed", rid, self.peer)
            self._answer(rid, reply_kind, e)
            return
        self._answer(rid, reply_kind, value)

    def _answer(self, rid: int, reply_kind: str, value: Any) -> None:
        """Reply with ``value`` (an error reply if it is an exception); one in-flight
        request less."""
        try:
            if isinstance(value, BaseException):
                self._reply_error(rid, value)
                # It may sit in a list a batch handler built (a cycle through its
                # traceback): the reply is built, so the traceback can go.
                value.__traceback__ = None
            else:
                self._reply(rid, reply_kind, value)
        finally:
            self.inflight -= 1
            self.last_active = trio.current_time()
            self.room.set()

    def _reply(self, rid: int, kind: str, value: Any) -> None:
        try:
            body = wire.encode_message(kind, rid, value)
        except Exception as e:  # e.g. a state machine reply the codec cannot encode
            self.server.stats.handler_errors += 1
            log.error("cannot encode the %s reply to request %d: %s", kind, rid, e)
            body = wire.encode_message("error", rid, wire.ErrorReply.from_exception(e))
        try:
            self._send(body)
        except FrameTooLarge as e:  # e.g. a read of a value bigger than a frame
            what = f"a {kind} reply frame (max_frame_size)"
            self._reply_error(rid, PayloadTooLarge(e.size, e.max_frame_size, what))

    def _reply_error(self, rid: int, exc: BaseException) -> None:
        self.server.stats.error_replies += 1
        self._send(wire.encode_message("error", rid, error_reply(exc)))

    def _send(self, body: bytes) -> None:
        # A closed connection is going away; its peer times out or reconnects.
        with contextlib.suppress(trio.ClosedResourceError):
            self.conn.send_nowait(body)


def error_reply(exc: BaseException) -> wire.ErrorReply:
    """The error reply that answers a request which failed with ``exc``; its ``detail``
    carries what a client needs to rebuild the typed error: ``[leader_id, leader_addr,
    maybe_committed]`` of a ``ForwardToLeader``, ``[size, limit, what]`` of a
    ``PayloadTooLarge``, or a service error's own ``reply_detail`` attribute (CBOR), if it
    has one (e.g. the KV service's ``WatchCompacted``)."""
    detail = None
    if isinstance(exc, ForwardToLeader):
        addr = exc.leader_node.addr if exc.leader_node is not None else None
        detail = [exc.leader_id, addr, exc.maybe_committed]
    elif isinstance(exc, PayloadTooLarge):
        detail = [exc.size, exc.limit, exc.what]
    elif isinstance(exc, RaftError):
        detail = getattr(exc, "reply_detail", None)
    return wire.ErrorReply.from_exception(exc, detail)


async def _client_call(handler: ClientHandler, req: wire.ClientRequest) -> wire.ClientReply:
    return wire.ClientReply(await handler(req.op, req.args))


def _sockname(listener: Any) -> tuple[Any, ...]:
    inner = getattr(listener, "transport_listener", listener)
    return tuple(inner.socket.getsockname())


def _peer_name(stream: Any) -> str:
    inner = getattr(stream, "transport_stream", stream)
    sock = getattr(inner, "socket", None)
    try:
        host, port = sock.getpeername()[:2] if sock is not None else ("?", 0)
    except OSError:
        return "?"
    return f"{host}:{port}"


async def serve_raft(
    raft: Any,
    host: str | None,
    port: int,
    *,
    ssl_context: ssl.SSLContext | None = None,
    limits: ServerLimits | None = None,
    client_handler: ClientHandler | None = None,
    client_batch_handler: ClientBatchHandler | None = None,
    task_status: trio.TaskStatus[RaftServer] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``raft``'s inbound RPCs on ``host:port`` until cancelled (Trio style: run it in
    a nursery with ``server = await nursery.start(serve_raft, raft, host, port)``; port 0
    picks a free port, read it back from ``server.port``).

    ``ssl_context`` (a server-side context; for mutual TLS set ``verify_mode =
    CERT_REQUIRED`` and load the cluster CA: :func:`openraft_trio.network.tcp.server_ssl_context`)
    wraps every connection in TLS. ``client_handler`` also accepts ``client``-role
    connections, for a service's API on the same port; ``client_batch_handler``, if given,
    gets the requests that arrived together instead (see :data:`ClientBatchHandler`).
    """
    limits = limits if limits is not None else ServerLimits()
    try:
        listeners: list[Any] = list(await trio.open_tcp_listeners(port, host=host))
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise OSError(e.errno, f"cannot listen on {host}:{port}: address already in use") from e
        raise
    if ssl_context is not None:
        listeners = [
            trio.SSLListener(lst, ssl_context, https_compatible=False) for lst in listeners
        ]
    server = RaftServer(
        raft,
        listeners,
        limits=limits,
        client_handler=client_handler,
        client_batch_handler=client_batch_handler,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, server.handle_connection, listeners)
        log.info("node %s serving on %s", server.node_id, server.addr)
        task_status.started(server)
