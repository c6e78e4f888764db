"""The Prometheus export of a node's numbers (the optional ``prometheus`` extra).

:class:`RaftCollector` is a ``prometheus_client`` collector that reads
``Raft.statistics()`` (and a TCP server's counters) when it is scraped: nothing is counted
twice, and nothing is done between scrapes. :func:`serve_metrics` answers ``GET /metrics``
over HTTP in a Trio task — no thread, so the collector reads the node's state in the node's
own thread, between two rounds of its core, never while a round changes it.

``prometheus_client`` is imported only when a collector is made or metrics are served, so
this module imports without it; those then raise :class:`ImportError` saying what to
install.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterable, Iterator
from typing import Any, Final, Protocol, final

import trio

from ._core.handle import Raft
from ._types import ServerState, index_of
from .network._server import RaftServer


class Collectable(Protocol):
    """What :func:`serve_metrics` needs of a registry (``prometheus_client``'s
    ``CollectorRegistry`` has it): its metric families, collected now."""

    def collect(self) -> Iterable[Any]: ...

INSTALL_HINT: Final = "pip install 'openraft_trio[prometheus]'"
_PREFIX: Final = "openraft_trio_"
_SERVER_ERRORS: Final = (
    "connections_refused",
    "connections_evicted",
    "handshakes_refused",
    "bad_frames",
    "bad_messages",
    "timeouts",
    "broken_connections",
    "error_replies",
    "handler_errors",
)
_CLIENT_COUNTERS: Final = (
    ("connects", "outgoing connections made (handshake passed)"),
    ("reconnects", "outgoing connections made to a peer connected before"),
    ("connect_failures", "outgoing connection attempts that failed"),
    ("connections_lost", "outgoing connections that ended"),
    ("calls", "requests sent to peers"),
    ("timeouts", "requests to peers with no reply in time"),
)


def require_prometheus_client() -> Any:
    """Import ``prometheus_client`` (the ``prometheus`` extra) or say how to install it.

    Raises:
        ImportError: it is not installed; the message says what to install.
    """
    try:
        return importlib.import_module("prometheus_client")
    except ImportError as e:
        raise ImportError(
            f"exporting metrics needs the prometheus_client package: {INSTALL_HINT}"
        ) from e


def _go_float(bound: float) -> str:
    """A bucket bound as Prometheus writes it (``+Inf``, ``0.5``, ``1.0``)."""
    return "+Inf" if bound == float("inf") else repr(float(bound))



@final
class RaftCollector:
    """A ``prometheus_client`` collector of one node's numbers, read at each scrape.

    Register it (``registry.register(RaftCollector(raft))``), or use
    :func:`metrics_registry`. Every metric is labelled ``node`` (the node id), so the
    collectors of several nodes in one process can share a registry.
    ``docs/observability.md`` lists the metrics.

    Args:
        raft: the node.
        server: the node's TCP server (:func:`~openraft_trio.network.tcp.serve_raft`), for
            its counters; None to leave them out.

    Raises:
        ImportError: ``prometheus_client`` is not installed.
    """

    def __init__(self, raft: Raft, *, server: RaftServer | None = None) -> None:
        require_prometheus_client()
        self.raft = raft
        self.server = server

    def collect(self) -> Iterator[Any]:
        """The metric families, read now (``prometheus_client`` calls this per scrape)."""
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        stats = self.raft.statistics()
        m = stats.metrics
        node = str(m.id)

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            family = GaugeMetricFamily(_PREFIX + name, doc, labels=["node"])
            family.add_metric([node], value)
            return family

        yield gauge("term", "the node's current term", m.current_term)
        state = GaugeMetricFamily(
            _PREFIX + "server_state",
            "1 for the node's role (state label), 0 for the others",
            labels=["node", "state"],
        )
        for each in ServerState:
            state.add_metric([node, each.name.lower()], 1.0 if m.state is each else 0.0)
        yield state
        leader = -1 if m.current_leader is None else m.current_leader
        yield gauge("current_leader", "the leader's node id this node knows (-1: none)", leader)
        last = -1 if m.last_log_index is None else m.last_log_index
        yield gauge("last_log_index", "index of the last log entry (-1: empty log)", last)
        yield gauge("flushed_index", "index of the last durable log entry", index_of(m.flushed))
        yield gauge("committed_index", "index of the last committed entry", index_of(m.committed))
        yield gauge(
            "applied_index", "index of the last entry applied", index_of(m.last_applied)
        )
        yield gauge(
            "snapshot_index", "last index the current snapshot covers", index_of(m.snapshot)
        )
        yield gauge("purged_index", "index of the last purged log entry", index_of(m.purged))
        membership = m.membership.membership
        yield gauge("membership_voters", "voters in the membership", len(membership.voter_ids))
        yield gauge(
            "membership_learners",
            "learners in the membership",
            len(set(membership.nodes) - membership.voter_ids),
        )
        if m.millis_since_quorum_ack is not None:
            yield gauge(
                "seconds_since_quorum_ack",
                "leader only: seconds since a quorum last acknowledged it",
                m.millis_since_quorum_ack / 1000.0,
            )

        if m.replication is not None and stats.replication_lag is not None:
            matched = GaugeMetricFamily(
                _PREFIX + "replication_matched_index",
                "leader only: the last log index each target is known to hold",
                labels=["node", "target"],
            )
            lag = GaugeMetricFamily(
                _PREFIX + "replication_lag_entries",
                "leader only: how many entries each target's log is behind the leader's",
                labels=["node", "target"],
            )
            halted = GaugeMetricFamily(
                _PREFIX + "replication_halted",
                "leader only: 1 if replication to the target halted after a log reversion",
                labels=["node", "target"],
            )
            status = m.replication_status or {}
            for target in sorted(m.replication):
                labels = [node, str(target)]
                matched.add_metric(labels, index_of(m.replication[target]))
                lag.add_metric(labels, stats.replication_lag[target])
                target_status = status.get(target)
                halted.add_metric(labels, 1.0 if target_status and target_status.halted else 0.0)
            yield matched
            yield lag
            yield halted

        histograms = (
            ("commit_latency_seconds", "client writes on the leader, accepted to committed",
             stats.commit_latency),
            ("apply_latency_seconds", "log entries, known committed to applied",
             stats.apply_latency),
            ("log_flush_seconds", "log store write-and-fsync batches (FileLogStore)",
             stats.log_flush_latency),
        )
        for name, doc, snapshot in histograms:
            if snapshot is None:
                continue
            histogram = HistogramMetricFamily(_PREFIX + name, doc, labels=["node"])
            histogram.add_metric(
                [node],
                [(_go_float(bound), float(n)) for bound, n in snapshot.cumulative()],
                sum_value=snapshot.sum,
            )
            yield histogram

        transport = stats.transport
        server = self.server.stats if self.server is not None else None
        if transport is not None or server is not None:
            for name, doc in (
                ("frames_sent", "frames written"),
                ("bytes_sent", "bytes written"),
                ("frames_received", "frames read"),
                ("bytes_received", "bytes read"),
            ):
                family = CounterMetricFamily(
                    _PREFIX + "transport_" + name,
                    f"{doc} (endpoint: client = connections to peers, server = connections "
                    f"accepted)",
                    labels=["node", "endpoint"],
                )
                if transport is not None:
                    family.add_metric([node, "client"], getattr(transport, name))
                if server is not None:
                    family.add_metric([node, "server"], getattr(server, name))
                yield family
        if transport is not None:
            for name, doc in _CLIENT_COUNTERS:
                family = CounterMetricFamily(
                    _PREFIX + "transport_" + name, doc, labels=["node"]
                )
                family.add_metric([node], getattr(transport, name))
                yield family
        if server is not None:
            accepted = CounterMetricFamily(
                _PREFIX + "server_connections_accepted", "connections accepted",
                labels=["node"],
            )
            accepted.add_metric([node], server.connections_accepted)
            yield accepted
            yield gauge("server_connections_open", "connections open now", server.connections_open)
            requests = CounterMetricFamily(
                _PREFIX + "server_requests", "requests handled", labels=["node"]
            )
            requests.add_metric([node], server.requests)
            yield requests
            errors = CounterMetricFamily(
                _PREFIX + "server_errors",
                "connections closed or requests refused, by kind",
                labels=["node", "kind"],
            )
            for kind in _SERVER_ERRORS:
                errors.add_metric([node, kind], getattr(server, kind))
            yield errors


def metrics_registry(raft: Raft, *, server: RaftServer | None = None, process: bool = True) -> Any:
    """A new ``prometheus_client`` registry with a :class:`RaftCollector` of ``raft`` (and
    ``server``), plus, with ``process``, the standard process, platform and GC collectors.

    Returns:
        a ``prometheus_client.CollectorRegistry``.

    Raises:
        ImportError: ``prometheus_client`` is not installed.
    """
    prometheus_client = require_prometheus_client()
    registry = prometheus_client.CollectorRegistry()
    registry.register(RaftCollector(raft, server=server))
    if process:
        prometheus_client.ProcessCollector(registry=registry)
        prometheus_client.PlatformCollector(registry=registry)
        prometheus_client.GCCollector(registry=registry)
    return registry


_MAX_REQUEST_HEAD = 8192
_REQUEST_TIMEOUT = 10.0


async def serve_metrics(
    registry: Collectable,
    host: str,
    port: int,
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Answer ``GET /metrics`` on ``host:port`` with ``registry``'s metrics in the
    Prometheus text format, until cancelled; ``task_status.started(port)`` once it listens
    (the bound port: useful with port 0).

    A minimal HTTP/1.x server in this task's nursery (no thread): one request per
    connection, a request head of at most 8 KiB read within 10 s; ``/metrics`` (and ``/``)
    answer 200, other paths 404, other methods than GET and HEAD 405.

    Raises:
        ImportError: ``prometheus_client`` is not installed.
        OSError: the address cannot be bound.
    """
    prometheus_client = require_prometheus_client()
    listeners = await trio.open_tcp_listeners(port, host=host)

    async def handle(stream: trio.SocketStream) -> None:
        # A broken or slow client costs its own connection only.
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            async with stream:
                with trio.move_on_after(_REQUEST_TIMEOUT):
                    head = await _read_head(stream)
                    if head is None:
                        return
                    await stream.send_all(_respond(prometheus_client, registry, head))

    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, handle, listeners)
        bound: int = listeners[0].socket.getsockname()[1]
        task_status.started(bound)


async def _read_head(stream: trio.SocketStream) -> bytes | None:
    data = b""
    while b"\r\n\r\n" not in data and b"\n\n" not in data:
        if len(data) > _MAX_REQUEST_HEAD:
            return None
        chunk = await stream.receive_some(4096)
        if not chunk:
            return data or None
        data += chunk
    return data


def _respond(prometheus_client: Any, registry: Collectable, head: bytes) -> bytes:
    parts = head.split(b"\n", 1)[0].decode("latin-1").split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        return _response(400, "text/plain", b"bad request\n")
    method, target = parts[0], parts[1].split("?", 1)[0]
    if method not in ("GET", "HEAD"):
        return _response(405, "text/plain", b"method not allowed\n", allow=True)
    if target not in ("/metrics", "/"):
        return _response(404, "text/plain", b"not found: try /metrics\n")
    body = prometheus_client.generate_latest(registry)
    return _response(200, prometheus_client.CONTENT_TYPE_LATEST, body, head_only=method == "HEAD")


_REASONS: Final = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}


def _response(
    status: int, content_type: str, body: bytes, *, head_only: bool = False, allow: bool = False
) -> bytes:
    headers = [
        f"HTTP/1.1 {status} {_REASONS[status]}",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body)}",
        "Connection: close",
    ]
    if allow:
        headers.append("Allow: GET, HEAD")
    return ("\r\n".join(headers) + "\r\n\r\n").encode("latin-1") + (b"" if head_only else body)
