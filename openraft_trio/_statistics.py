"""Statistics: the numbers a node keeps for scraping, beside :class:`RaftMetrics`.

:class:`LatencyHistogram` is the recorder the runtime, the log store and the state machine
worker write into: fixed bucket bounds, one ``bisect`` and three additions per observation
(a batch of writes is one observation, weighted), nothing allocated. Readers take frozen
copies: :class:`HistogramSnapshot`, and :class:`RaftStatistics` (``Raft.statistics()``),
which the Prometheus collector (:mod:`openraft_trio.prometheus`) reads at scrape time.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping
from typing import Final, final

import attrs

from ._metrics import RaftMetrics

LATENCY_BUCKETS: Final = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
"""The upper bounds (seconds, inclusive) of the latency histograms' buckets; a last bucket
takes everything above 10 s."""


@final
@attrs.frozen
class HistogramSnapshot:
    """A copy of a latency histogram.

    Attributes:
        bounds: the buckets' upper bounds in seconds (inclusive), ascending.
        counts: observations per bucket (not cumulative): ``counts[i]`` fell in
            ``(bounds[i-1], bounds[i]]``, and ``counts[-1]`` (one more than ``bounds``)
            above the last bound.
        count: the number of observations.
        sum: their sum, in seconds.
    """

    bounds: tuple[float, ...]
    counts: tuple[int, ...]
    count: int
    sum: float

    def cumulative(self) -> list[tuple[float, int]]:
        """``(upper bound, observations <= it)`` for each bucket, the last one ``inf``
        (Prometheus's ``le`` buckets)."""
        total = 0
        out = []
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            total += count
            out.append((bound, total))
        return out


@final
class LatencyHistogram:
    """A latency recorder with fixed buckets (:data:`LATENCY_BUCKETS` by default)."""

    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.count = 0
        self.sum = 0.0

    def observe(self, seconds: float, weight: int = 1) -> None:
        """Record ``weight`` observations of ``seconds`` (a batch that took that long)."""
        self.counts[bisect_left(self.bounds, seconds)] += weight
        self.count += weight
        self.sum += seconds * weight

    def snapshot(self) -> HistogramSnapshot:
        """A frozen copy."""
        return HistogramSnapshot(self.bounds, tuple(self.counts), self.count, self.sum)


@final
@attrs.frozen
class TransportStatistics:
    """Counters of a network's outgoing connections (the TCP transport's
    ``TcpNetworkFactory.statistics()``), since it was opened.

    Attributes:
        connects: connections made (handshake passed).
        reconnects: connections made to a peer that had been connected before.
        connect_failures: attempts to connect that failed.
        connections_lost: connections that ended (broken, closed by the peer or by us).
        calls: requests sent.
        timeouts: requests that had no reply in time.
        frames_sent: frames written (requests).
        bytes_sent: bytes written, frame headers included.
        frames_received: frames read (replies).
        bytes_received: bytes read.
    """

    connects: int = 0
    reconnects: int = 0
    connect_failures: int = 0
    connections_lost: int = 0
    calls: int = 0
    timeouts: int = 0
    frames_sent: int = 0
    bytes_sent: int = 0
    frames_received: int = 0
    bytes_received: int = 0


@final
@attrs.frozen
class RaftStatistics:
    """A node's numbers at one moment: ``Raft.statistics()``.

    Attributes:
        metrics: the latest :class:`~openraft_trio.RaftMetrics` (term, role, leader, log
            indexes...).
        replication_lag: leader only (else None): per target, how many entries its log is
            behind ours (our last log index minus its matched index).
        commit_latency: client writes on this leader, from accepted (appended to the
            leader's log) to committed.
        apply_latency: log entries on this node, from known committed to applied by the
            state machine.
        log_flush_latency: the log store's write-and-fsync batches (the ``FileLogStore``;
            None for a store that keeps no such histogram, e.g. ``MemLogStore``).
        transport: the network's outgoing connection counters (the TCP transport; None
            for a network that keeps none, e.g. the test ``Router``).
    """

    metrics: RaftMetrics
    replication_lag: Mapping[int, int] | None
    commit_latency: HistogramSnapshot
    apply_latency: HistogramSnapshot
    log_flush_latency: HistogramSnapshot | None
    transport: TransportStatistics | None
