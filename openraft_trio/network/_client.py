"""The calling side of a framed connection: :class:`RpcChannel`.

One channel is one reused connection to one address. Calls are pipelined on it: each gets a
request id, its frame goes through the connection's coalescing writer, and the reader task
matches replies back by id. The channel connects on first use and reconnects after a loss,
backing off exponentially while the address is unreachable (calls during the backoff fail
at once with ``Unreachable``). Errors map as DESIGN.md says:

* cannot connect, handshake refused, the remote node is stopped -> ``Unreachable``
* the connection broke while the call was outstanding -> ``NetworkError``
* no reply within the call's timeout -> ``RPCTimeout`` (``ConnectTimeout`` when the
  connection was not made in time: the request was never sent)
* the remote handler raised -> ``RemoteError`` (``remote`` is the :class:`ErrorReply`),
  except ``PayloadTooLarge``, which is raised as itself
* the request's frame would be over ``max_frame_size`` -> ``PayloadTooLarge``, before
  anything is sent (the connection and the other calls on it are unaffected)

A call is waited for by :meth:`RpcChannel.call`, or started with :meth:`RpcChannel.start_call`
and answered through a :class:`PendingCall` (the pipelined AppendEntries of
:mod:`.tcp`): both are the same entry in the channel's table of calls waiting for a reply,
which the reader task (a reply), the deadline task (a timeout), the end of the
connection (a loss) or :meth:`RpcChannel.fail_calls` removes and answers, exactly once.
"""

from __future__ import annotations

import heapq
import logging
import math
import ssl
from collections.abc import Callable
from typing import Any, Protocol, final

import trio

from .._errors import (
    NetworkError,
    PayloadTooLarge,
    RemoteError,
    RPCTimeout,
    Unreachable,
    short_repr,
    short_text,
)
from . import _wire as wire
from ._conn import ConnectionClosed, ConnectionTimeout, FramedStream
from ._frames import DEFAULT_MAX_FRAME_SIZE, FrameError, FrameTooLarge

log = logging.getLogger("openraft_trio.network")

_CONNECTION_ERRORS = (
    OSError,
    ssl.SSLError,
    trio.BrokenResourceError,
    trio.ClosedResourceError,
    ConnectionClosed,
    ConnectionTimeout,
    FrameError,
    wire.DecodeError,
)
HANDSHAKE_FRAME_SIZE = 64 * 1024
"""The largest frame accepted from a peer before its handshake reply checked out."""

_STOPPED_TYPES = frozenset({"Stopped", "StorageError", "Fatal"})


def parse_addr(addr: str) -> tuple[str, int]:
    """``"host:port"`` (``"[v6]:port"`` for IPv6) -> ``(host, port)``.

    Raises:
        ValueError: not of that form.
    """
    if not isinstance(addr, str):
        raise ValueError(f"address must be a 'host:port' string, got {short_repr(addr)}")
    host, sep, port_text = addr.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(
            f"address must be 'host:port' with a port in 1..65535, got {short_repr(addr)}"
        )
    return host, int(port_text)


def _payload_too_large(reply: wire.ErrorReply) -> PayloadTooLarge | None:
    """The remote refused a payload as too large: the typed error, rebuilt from the
    reply's ``detail`` (``[size, limit, what]``)."""
    detail = reply.detail
    if reply.error_type != "PayloadTooLarge" or not (
        type(detail) is list
        and len(detail) == 3
        and type(detail[0]) is int
        and type(detail[1]) is int
        and type(detail[2]) is str
    ):
        return None
    return PayloadTooLarge(detail[0], detail[1], short_text(detail[2]))


class NodeStopped(Unreachable):
    """The remote node answered that it is stopped (or failed). A request it answered this
    way may have been appended before it stopped: for a write, the outcome is unknown."""


class ConnectTimeout(RPCTimeout):
    """The call timed out before its connection was made (connect, TLS or the handshake
    did not finish): its request was never sent, so it had no effect anywhere."""


class PendingCall(Protocol):
    """A call waiting for its reply: the channel calls :meth:`set` once, with ``(kind,
    body)`` of the reply frame, ``("timeout", None)`` or ``("lost", reason)`` (see
    :meth:`RpcChannel.outcome`), from its reader task, its deadline task or the task that
    ends the connection. ``set`` must not block or raise."""

    def set(self, value: tuple[str, Any]) -> None: ...


class _Slot:
    """The :class:`PendingCall` of an awaiting :meth:`RpcChannel.call`."""

    __slots__ = ("event", "value")

    def __init__(self) -> None:
        self.event = trio.Event()
        self.value: Any = None

    def set(self, value: Any) -> None:
        self.value = value
        self.event.set()


@final
class ChannelStats:
    """Counters of a channel (or summed over a factory's channels); see
    :class:`~openraft_trio.observability.TransportStatistics` for what each counts."""

    def __init__(self) -> None:
        self.connects = 0
        self.reconnects = 0
        self.connect_failures = 0
        self.connections_lost = 0
        self.calls = 0
        self.timeouts = 0
        self.frames_sent = 0
        self.bytes_sent = 0
        self.frames_received = 0
        self.bytes_received = 0


class RpcChannel:
    """A reused, reconnecting connection to ``addr``; see the module docstring."""

    def __init__(
        self,
        nursery: trio.Nursery,
        addr: str,
        hello: wire.Hello,
        *,
        expect_node_id: int | None = None,
        ssl_context: ssl.SSLContext | None = None,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        backoff_min: float = 0.05,
        backoff_max: float = 1.0,
        stats: ChannelStats | None = None,
    ) -> None:
        self.nursery = nursery
        self.addr = addr
        self.hello = hello
        self.expect_node_id = expect_node_id
        self.ssl_context = ssl_context
        self.max_frame_size = max_frame_size
        self.backoff_min = backoff_min
        self.backoff_max = backoff_max
        self.stats = stats if stats is not None else ChannelStats()
        self._backoff = backoff_min
        self._retry_at = -float("inf")
        self._last_error = ""
        self._conn: FramedStream | None = None
        self._ever_connected = False
        self._lock = trio.Lock()
        self._pending: dict[int, PendingCall] = {}
        self._next_id = 1
        self._closed = False
        # Deadlines of the calls waiting for replies, watched by one task (_expire).
        self._deadlines: list[tuple[float, int]] = []
        self._next_expiry = math.inf
        self._deadline_moved = trio.Event()
        self._expirer: trio.CancelScope | None = None

    @property
    def connected(self) -> bool:
        return self._conn is not None

    async def call(self, kind: str, msg: Any, reply_kind: str, timeout: float) -> Any:
        """Send one request and return the reply's body (see the module docstring for the
        errors).

        The timeout of a call waiting for its reply is enforced by the channel's one
        deadline task (:meth:`_expire`), not by a cancel scope per call: entering and
        leaving a scope cost about as much CPU as the rest of a call.
        """
        self.stats.calls += 1
        deadline = trio.current_time() + timeout
        conn = self._conn
        if conn is None:
            with trio.move_on_at(deadline) as scope:
                conn = await self._ensure_connected()
            if scope.cancelled_caught:
                self.stats.timeouts += 1
                raise ConnectTimeout(f"{kind} to {self.addr}: not connected within {timeout}s")
            assert conn is not None
        slot = _Slot()
        try:
            rid = self._send_request(conn, kind, msg)
        except trio.ClosedResourceError:
            raise NetworkError(f"{self.addr}: connection closed") from None
        self._pending[rid] = slot
        self._watch(deadline, rid)
        try:
            await slot.event.wait()
        finally:
            self._pending.pop(rid, None)
        got, value = slot.value
        result = self.outcome(kind, reply_kind, timeout, got, value)
        if isinstance(result, Exception):
            raise result
        return result

    def start_call(self, kind: str, msg: Any, timeout: float, pending: PendingCall) -> bool:
        """Send one request without waiting: True when it was queued on the connection,
        then ``pending.set`` is called once, later, from one of the channel's tasks (a
        reply, a timeout after ``timeout`` seconds, the connection's end, or
        :meth:`fail_calls`). Requests started one after another leave in that order.

        False when it cannot leave without waiting (not connected, connecting, backing off,
        closed): nothing was sent and ``pending`` is never called; :meth:`call` connects.

        Raises:
            PayloadTooLarge: the request's frame would be over ``max_frame_size``; nothing
                was sent.
        """
        conn = self._conn
        if conn is None or self._closed:
            return False
        try:
            rid = self._send_request(conn, kind, msg)
        except trio.ClosedResourceError:
            return False  # the connection is closing: call() reconnects
        self.stats.calls += 1
        self._pending[rid] = pending
        self._watch(trio.current_time() + timeout, rid)
        return True

    def _send_request(self, conn: FramedStream, kind: str, msg: Any) -> int:
        """Queue one request frame on ``conn`` (its writer sends it); return its id.

        Raises:
            PayloadTooLarge: the frame would be over ``max_frame_size``; nothing was sent.
            trio.ClosedResourceError: the connection is closing; nothing was sent.
        """
        rid = self._next_id
        try:
            conn.send_nowait(wire.encode_message(kind, rid, msg))
        except FrameTooLarge as e:
            raise PayloadTooLarge(
                e.size, e.max_frame_size, f"a {kind} request frame (max_frame_size)"
            ) from None
        self._next_id = rid + 1
        return rid

    def outcome(self, kind: str, reply_kind: str, timeout: float, got: str, value: Any) -> Any:
        """What a call of ``kind`` ends with, given what its :class:`PendingCall` was set
        to: the reply's body, or the error (returned, not raised) the module docstring
        maps it to."""
        if got == reply_kind:
            return value
        if got == "timeout":
            self.stats.timeouts += 1
            return RPCTimeout(f"{kind} to {self.addr}: no reply within {timeout}s")
        if got == "lost":
            return NetworkError(f"{kind} to {self.addr}: {value}")
        if got == "error":
            return self._remote_error(value)
        return NetworkError(f"{kind} to {self.addr}: answered with {got!r}")

    def fail_calls(self, match: Callable[[PendingCall], bool], reason: str) -> None:
        """Answer every call waiting for a reply whose :class:`PendingCall` ``match``es
        with ``("lost", reason)`` (:class:`NetworkError`) now; their replies, if any come,
        are dropped."""
        failed = [rid for rid, pending in self._pending.items() if match(pending)]
        for rid in failed:
            self._pending.pop(rid).set(("lost", reason))

    def _watch(self, deadline: float, rid: int) -> None:
        """Have :meth:`_expire` time out call ``rid`` at ``deadline``."""
        heapq.heappush(self._deadlines, (deadline, rid))
        if self._expirer is None:
            self._expirer = trio.CancelScope()
            self.nursery.start_soon(self._expire, self._expirer)
        elif deadline < self._next_expiry:
            self._deadline_moved.set()

    async def _expire(self, scope: trio.CancelScope) -> None:
        """The channel's deadline task: fails each call still waiting at its deadline."""
        with scope:
            while True:
                heap = self._deadlines
                while heap and (heap[0][1] not in self._pending):
                    heapq.heappop(heap)  # answered already
                if not heap:
                    self._next_expiry = math.inf
                    self._deadline_moved = trio.Event()
                    await self._deadline_moved.wait()
                    continue
                now = trio.current_time()
                while heap and heap[0][0] <= now:
                    _, rid = heapq.heappop(heap)
                    slot = self._pending.pop(rid, None)
                    if slot is not None:
                        slot.set(("timeout", None))
                if heap:
                    self._next_expiry = heap[0][0]
                    self._deadline_moved = trio.Event()
                    with trio.move_on_at(self._next_expiry):
                        await self._deadline_moved.wait()

    def _remote_error(self, reply: wire.ErrorReply) -> Exception:
        message = short_text(reply.message)  # a foreign message: bounded
        if reply.error_type in _STOPPED_TYPES:
            return NodeStopped(f"{self.addr}: node stopped: {message}")
        too_large = _payload_too_large(reply)
        if too_large is not None:
            return too_large
        return RemoteError(f"{self.addr}: {short_repr(reply.error_type)}: {message}", remote=reply)

    def _current(self) -> FramedStream | None:
        return self._conn

    async def _ensure_connected(self) -> FramedStream:
        if self._conn is not None:
            return self._conn
        async with self._lock:
            conn = self._current()  # another caller may have connected while we waited
            if conn is not None:
                return conn
            if self._closed:
                raise Unreachable(f"{self.addr}: channel closed")
            now = trio.current_time()
            if now < self._retry_at:
                raise Unreachable(
                    f"{self.addr}: {self._last_error} (next attempt in {self._retry_at - now:.2f}s)"
                )
            try:
                conn = await self._connect()
            except _CONNECTION_ERRORS as e:
                self.stats.connect_failures += 1
                if self._backoff == self.backoff_min or self._last_error != str(e):
                    log.warning("cannot connect to %s: %s", self.addr, e)
                self._last_error = str(e) or type(e).__name__
                self._retry_at = trio.current_time() + self._backoff
                self._backoff = min(self._backoff * 2, self.backoff_max)
                raise Unreachable(f"{self.addr}: {self._last_error}") from e
            self.stats.connects += 1
            if self._ever_connected:
                self.stats.reconnects += 1
            self._ever_connected = True
            self._backoff = self.backoff_min
            self._retry_at = -float("inf")
            self._last_error = ""
            self._conn = conn
            self.nursery.start_soon(self._run, conn, name=f"openraft_trio.channel[{self.addr}]")
            return conn

    async def _connect(self) -> FramedStream:
        host, port = parse_addr(self.addr)
        stream: trio.abc.Stream = await trio.open_tcp_stream(host, port)
        try:
            if self.ssl_context is not None:
                tls = trio.SSLStream(stream, self.ssl_context, server_hostname=host)
                await tls.do_handshake()
                stream = tls
            # Until the peer proved it is the node we want, accept only a small frame.
            conn = FramedStream(
                stream,
                max_frame_size=self.max_frame_size,
                max_receive_size=min(HANDSHAKE_FRAME_SIZE, self.max_frame_size),
                counters=self.stats,
            )
            await conn.send_now(wire.encode_message("hello", 0, self.hello))
            frames = await conn.receive_frames()
            kind, _rid, reply = wire.decode_message(frames[0])
            if kind == "error":
                raise ConnectionRefusedError(f"handshake refused: {reply.message}")
            if kind != "hello_ok" or len(frames) != 1:
                raise wire.DecodeError(f"expected hello_ok, got {kind!r}")
            if reply.cluster_name != self.hello.cluster_name:
                raise ConnectionRefusedError(f"peer is in cluster {reply.cluster_name!r}")
            if self.expect_node_id is not None and reply.node_id != self.expect_node_id:
                raise ConnectionRefusedError(
                    f"expected node {self.expect_node_id}, found node {reply.node_id}"
                )
            conn.allow_frames_up_to(self.max_frame_size)
        except BaseException:
            await trio.aclose_forcefully(stream)
            raise
        return conn

    async def _run(self, conn: FramedStream) -> None:
        reason = "connection closed"

        async def read_replies(_nursery: trio.Nursery) -> None:
            while True:
                for frame in await conn.receive_frames():
                    kind, rid, msg = wire.decode_message(frame)
                    slot = self._pending.pop(rid, None)
                    if slot is not None:
                        slot.set((kind, msg))

        try:
            await conn.run(read_replies)
        except _CONNECTION_ERRORS as e:
            reason = f"connection lost: {e}" if str(e) else f"connection lost: {type(e).__name__}"
            if not isinstance(e, ConnectionClosed):
                log.info("connection to %s: %s", self.addr, reason)
        finally:
            self.stats.connections_lost += 1
            if self._conn is conn:
                self._conn = None
            pending, self._pending = self._pending, {}
            for slot in pending.values():
                slot.set(("lost", reason))
            await conn.aclose()

    async def aclose(self) -> None:
        """Close the connection; later calls fail with ``Unreachable``."""
        self._closed = True
        if self._expirer is not None:
            self._expirer.cancel()
        if self._conn is not None:
            await self._conn.aclose()
