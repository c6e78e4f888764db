"""The TCP transport: length-prefixed CBOR frames between nodes (and clients).

Run a node on it::

    async with (
        open_tcp_network(node_id, config) as network,
        open_raft(node_id, config, network=network, data_dir=d, state_machine=sm) as raft,
        trio.open_nursery() as nursery,
    ):
        server = await nursery.start(serve_raft, raft, "127.0.0.1", 7001)
        ...

* :func:`open_tcp_network` gives the ``RaftNetworkFactory``: two reused, pipelined
  connections per peer (:class:`~._client.RpcChannel`), each with one coalescing writer
  task: a *control* connection for heartbeats, votes and leader transfers and a *data*
  connection for entry-carrying appends and snapshots, so that the acks that keep a
  leader's lease alive never queue behind bulk data (PROTOCOL-NOTES "Replication");
  reconnect with exponential backoff; every call bounded by ``RPCOption.hard_ttl``;
  snapshots streamed in chunks of ``config.snapshot_max_chunk_size``. Its clients
  (:class:`TcpNetwork`) also offer the pipelined AppendEntries
  (:class:`~openraft_trio.network.PipelinedAppend`): see
  :meth:`TcpNetwork.send_append_entries`.
* :func:`serve_raft` serves a node's inbound RPCs (see :mod:`._server` for the handshake and
  the hostile-input limits, :class:`ServerLimits`).
* :func:`server_ssl_context` / :func:`client_ssl_context` build contexts for mutual TLS:
  every node presents a certificate signed by the cluster CA and requires one from its peer.

Wire format: :mod:`openraft_trio.network._wire` (messages) and
:mod:`openraft_trio.network._frames` (framing). Application data in ``Normal(data)`` entries
and state machine replies travels as CBOR: plain values as they are, classes once
registered with :func:`openraft_trio.codec.register_data_type`.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final, final

import trio

from .._config import Config
from .._errors import PayloadTooLarge, RPCTimeout, Unreachable
from .._messages import (
    AppendEntriesRequest,
    AppendEntriesResponse,
    InstallSnapshotResponse,
    TransferLeaderRequest,
    VoteRequest,
    VoteResponse,
)
from .._nursery import background_nursery
from .._statistics import TransportStatistics
from .._types import Node, Snapshot, Vote
from . import _wire as wire
from ._client import ChannelStats, NodeStopped, RpcChannel, parse_addr
from ._frames import DEFAULT_MAX_FRAME_SIZE
from ._protocols import AppendReply, RPCOption
from ._server import (
    ClientBatchHandler,
    ClientHandler,
    RaftServer,
    ServerLimits,
    ServerStats,
    serve_raft,
)

__all__ = [
    "CONTROL",
    "DATA",
    "ChannelStats",
    "ClientBatchHandler",
    "ClientHandler",
    "NodeStopped",
    "RaftServer",
    "ServerLimits",
    "ServerStats",
    "TcpNetwork",
    "TcpNetworkFactory",
    "client_ssl_context",
    "open_tcp_network",
    "parse_addr",
    "serve_raft",
    "server_ssl_context",
]

# Room for a chunk's envelope (vote, snapshot meta with its membership) in a frame, or for
# an AppendEntries' envelope and entry heads beside its payload.
_CHUNK_OVERHEAD = 64 * 1024

CONTROL: Final = "control"
"""The lane of heartbeats (appends without entries or commit index), votes and leader
transfers: small messages whose delay costs leadership."""
DATA: Final = "data"
"""The lane of entry-carrying appends and snapshot chunks (bulk data, in order)."""


@final
class TcpNetworkFactory:
    """``RaftNetworkFactory`` over TCP; make it with :func:`open_tcp_network`."""

    requires_encodable_data = True  # entries travel as CBOR: refuse others up front

    def __init__(
        self,
        nursery: trio.Nursery,
        node_id: int,
        config: Config,
        *,
        ssl_context: ssl.SSLContext | None = None,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        backoff_max: float = 1.0,
    ) -> None:
        for name in ("snapshot_max_chunk_size", "max_entry_bytes", "max_payload_bytes"):
            if getattr(config, name) + _CHUNK_OVERHEAD > max_frame_size:
                raise ValueError(
                    f"{name} {getattr(config, name)} does not fit in max_frame_size "
                    f"{max_frame_size}"
                )
        self.nursery = nursery
        self.node_id = node_id
        self.config = config
        self.ssl_context = ssl_context
        self.max_frame_size = max_frame_size
        self.backoff_max = backoff_max
        self.stats = ChannelStats()
        self._channels: dict[tuple[int, str], RpcChannel] = {}

    def channel(self, target: int, addr: str, lane: str = DATA) -> RpcChannel:
        """The channel to ``target`` for ``lane`` (:data:`CONTROL` or :data:`DATA`),
        replaced if its address changed."""
        ch = self._channels.get((target, lane))
        if ch is None or ch.addr != addr:
            if ch is not None:
                self.nursery.start_soon(ch.aclose)
            hello = wire.Hello(self.config.cluster_name, "raft", self.node_id, target)
            ch = RpcChannel(
                self.nursery,
                addr,
                hello,
                expect_node_id=target,
                ssl_context=self.ssl_context,
                max_frame_size=self.max_frame_size,
                backoff_max=self.backoff_max,
                stats=self.stats,
            )
            self._channels[(target, lane)] = ch
        return ch

    def statistics(self) -> TransportStatistics:
        """The counters of every connection this factory made, summed (read by
        ``Raft.statistics()``)."""
        stats = self.stats
        return TransportStatistics(
            connects=stats.connects,
            reconnects=stats.reconnects,
            connect_failures=stats.connect_failures,
            connections_lost=stats.connections_lost,
            calls=stats.calls,
            timeouts=stats.timeouts,
            frames_sent=stats.frames_sent,
            bytes_sent=stats.bytes_sent,
            frames_received=stats.frames_received,
            bytes_received=stats.bytes_received,
        )

    def existing_channel(self, target: int, lane: str) -> RpcChannel | None:
        """The channel to ``target`` for ``lane`` if one was made (none is made here)."""
        return self._channels.get((target, lane))

    async def new_client(self, target: int, node: Node | None) -> TcpNetwork:
        """A client to node ``target`` at ``node.addr``; connections are opened on first use."""
        addr = node.addr if node is not None else ""
        return TcpNetwork(self, target, addr)

    async def aclose(self) -> None:
        """Close every connection this factory opened."""
        for ch in self._channels.values():
            await ch.aclose()
        self._channels.clear()


@final
class TcpNetwork:
    """``RaftNetwork`` client to one target (a thin handle on the factory's channel); also
    a :class:`~openraft_trio.network.PipelinedAppend`."""

    def __init__(self, factory: TcpNetworkFactory, target: int, addr: str) -> None:
        self.factory = factory
        self.target = target
        self.addr = addr
        self._closed = False

    def _channel(self, lane: str = DATA) -> RpcChannel:
        try:
            parse_addr(self.addr)
        except ValueError as e:
            raise Unreachable(f"node {self.target}: {e}") from None
        return self.factory.channel(self.target, self.addr, lane)

    async def append_entries(
        self, req: AppendEntriesRequest, option: RPCOption
    ) -> AppendEntriesResponse:
        """Send an AppendEntries (a heartbeat on the control lane, other appends in order on the
        data lane) and return the response."""
        # A heartbeat carries only the leader's vote: it may overtake appends in flight.
        # Appends with entries or a commit index stay in order on the data lane.
        channel = self._channel(CONTROL if req.is_heartbeat else DATA)
        try:
            result: AppendEntriesResponse = await channel.call(
                "append", req, "append_resp", option.hard_ttl
            )
        except PayloadTooLarge as e:
            # Only entries logged under larger limits can get here (the factory checks
            # max_entry_bytes against max_frame_size): back off, do not spin.
            raise Unreachable(f"node {self.target}: {e}") from e
        return result

    def send_append_entries(
        self, req: AppendEntriesRequest, option: RPCOption, on_reply: AppendReply
    ) -> bool:
        """Queue ``req`` on its lane's connection without waiting (the
        :class:`~openraft_trio.network.PipelinedAppend` contract).

        The request takes the lane :meth:`append_entries` would (a heartbeat the control
        connection, the others the data connection, in call order) and the same path: the
        frame goes to the connection's coalescing writer, the channel's reader task matches
        the reply by request id and calls ``on_reply`` with it; the channel's one deadline
        task calls it with ``RPCTimeout`` after ``option.hard_ttl``. No task is started per
        request. ``on_reply`` gets what :meth:`append_entries` would raise:

        * the connection broke (or the factory closed it) while waiting -> ``NetworkError``
        * this client closed (:meth:`aclose`) while waiting -> ``NetworkError``
        * the remote handler failed -> ``RemoteError``; the node is stopped ->
          :class:`NodeStopped` (``Unreachable``); the remote refused the request as too
          large -> ``Unreachable``

        Returns False, with nothing sent, when the lane is not connected (never dialled,
        reconnecting, backing off), the address is malformed, this client or the factory
        is closed, or the request's frame is over ``max_frame_size``: the caller's
        :meth:`append_entries` then connects, or raises ``Unreachable``. A full writer queue
        does not refuse a request: the awaiting path would queue it too (the caller's
        window of requests in flight bounds the queue).
        """
        if self._closed:
            return False
        try:
            channel = self._channel(CONTROL if req.is_heartbeat else DATA)
        except Unreachable:
            return False
        pending = _PipelinedAppend(self, channel, option.hard_ttl, on_reply)
        try:
            return channel.start_call("append", req, option.hard_ttl, pending)
        except PayloadTooLarge:
            return False

    async def vote(self, req: VoteRequest, option: RPCOption) -> VoteResponse:
        """Send a (pre-)vote request on the control lane and return the response."""
        result: VoteResponse = await self._channel(CONTROL).call(
            "vote", req, "vote_resp", option.hard_ttl
        )
        return result

    async def full_snapshot(
        self, vote: Vote, snapshot: Snapshot, option: RPCOption
    ) -> InstallSnapshotResponse:
        """Stream ``snapshot`` in chunks of ``snapshot_max_chunk_size``, each acknowledged;
        the reply to the last comes once the target installed it. All within hard_ttl."""
        channel = self._channel()
        size = self.factory.config.snapshot_max_chunk_size
        data = memoryview(snapshot.data)
        deadline = trio.current_time() + option.hard_ttl
        offset = 0
        while True:
            piece = bytes(data[offset : offset + size])
            done = offset + len(piece) >= len(data)
            chunk = wire.SnapshotChunk(vote, snapshot.meta, offset, piece, done)
            remaining = deadline - trio.current_time()
            if remaining <= 0:
                raise RPCTimeout(
                    f"snapshot to node {self.target}: not sent within {option.hard_ttl}s"
                )
            reply_kind = "snapshot_resp" if done else "chunk_ack"
            reply = await channel.call("chunk", chunk, reply_kind, remaining)
            if done:
                result: InstallSnapshotResponse = reply
                return result
            offset += len(piece)

    async def transfer_leader(self, req: TransferLeaderRequest, option: RPCOption) -> None:
        """Tell the target to take over leadership (on the control lane)."""
        await self._channel(CONTROL).call("transfer", req, "transfer_resp", option.hard_ttl)

    async def aclose(self) -> None:
        """Fail this client's pipelined appends still waiting for a reply with
        ``NetworkError`` (a reply that comes later is dropped) and refuse new ones. The
        connections belong to the factory and stay open for its other clients; awaited
        calls keep working."""
        self._closed = True
        for lane in (CONTROL, DATA):
            channel = self.factory.existing_channel(self.target, lane)
            if channel is not None:
                channel.fail_calls(self._owns, f"node {self.target}: client closed")
        await trio.lowlevel.checkpoint()

    def _owns(self, pending: object) -> bool:
        return type(pending) is _PipelinedAppend and pending.network is self


@final
class _PipelinedAppend:
    """The :class:`~._client.PendingCall` of one pipelined AppendEntries: turns what the
    channel sets into the response or error :meth:`TcpNetwork.append_entries` would give,
    and passes it to the caller's ``on_reply``."""

    __slots__ = ("channel", "network", "on_reply", "timeout")

    def __init__(
        self, network: TcpNetwork, channel: RpcChannel, timeout: float, on_reply: AppendReply
    ) -> None:
        self.network = network
        self.channel = channel
        self.timeout = timeout
        self.on_reply = on_reply

    def set(self, value: tuple[str, Any]) -> None:
        got, body = value
        result = self.channel.outcome("append", "append_resp", self.timeout, got, body)
        if isinstance(result, PayloadTooLarge):  # as append_entries maps it
            error = Unreachable(f"node {self.network.target}: {result}")
            error.__cause__ = result
            result = error
        self.on_reply(result)


@asynccontextmanager
async def open_tcp_network(
    node_id: int,
    config: Config,
    *,
    ssl_context: ssl.SSLContext | None = None,
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
    backoff_max: float = 1.0,
) -> AsyncIterator[TcpNetworkFactory]:
    """The TCP ``RaftNetworkFactory`` of node ``node_id``; its connections close on exit.

    ``ssl_context``: a client context (:func:`client_ssl_context`) to speak TLS to peers.
    """
    async with background_nursery() as nursery:
        factory = TcpNetworkFactory(
            nursery,
            node_id,
            config,
            ssl_context=ssl_context,
            max_frame_size=max_frame_size,
            backoff_max=backoff_max,
        )
        try:
            yield factory
        finally:
            await factory.aclose()


def server_ssl_context(ca_file: str, cert_file: str, key_file: str) -> ssl.SSLContext:
    """A server context for mutual TLS: presents ``cert_file`` and accepts only clients
    whose certificate the CA in ``ca_file`` signed."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=ca_file)
    ctx.load_cert_chain(cert_file, key_file)
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def client_ssl_context(ca_file: str, cert_file: str, key_file: str) -> ssl.SSLContext:
    """A client context for mutual TLS: verifies the server against ``ca_file`` (its
    certificate must name the host of the address we dial) and presents ``cert_file``."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)
    ctx.load_cert_chain(cert_file, key_file)
    return ctx
