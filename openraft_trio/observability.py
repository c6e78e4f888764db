"""Observability: the log events a node emits, and the numbers it keeps for monitoring.

* Log events: every event is one :mod:`logging` record on a logger under
  ``openraft_trio.``, with its stable name in ``record.event`` and its fields in the
  record's ``extra``; :data:`EVENTS` is the catalogue (:class:`EventType`), and
  :class:`JsonLogFormatter` writes one JSON object per line.
* Numbers: ``Raft.statistics()`` returns a :class:`RaftStatistics` (the metrics, replication
  lag, latency histograms as :class:`HistogramSnapshot`, transport counters as
  :class:`TransportStatistics`); :mod:`openraft_trio.prometheus` exports them.

See ``docs/observability.md``.
"""

from ._events import EVENTS as _EVENTS
from ._events import EventType as EventType
from ._events import JsonLogFormatter as JsonLogFormatter
from ._statistics import LATENCY_BUCKETS as _LATENCY_BUCKETS
from ._statistics import HistogramSnapshot as HistogramSnapshot
from ._statistics import RaftStatistics as RaftStatistics
from ._statistics import TransportStatistics as TransportStatistics

#: Every log event a node emits, by its stable name (``"election.won"``, ...): the
#: :class:`EventType` says its level, logger and fields. The table in
#: ``docs/observability.md`` is checked against it.
EVENTS = _EVENTS

#: The upper bounds, in seconds, of the latency histograms' buckets (100 µs to 10 s); a
#: last, unbounded bucket counts what is slower.
LATENCY_BUCKETS = _LATENCY_BUCKETS
