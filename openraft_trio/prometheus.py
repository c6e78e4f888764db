"""Prometheus export of a node's numbers (needs the ``prometheus`` extra:
``pip install 'openraft_trio[prometheus]'``, which installs ``prometheus_client``).

* :class:`RaftCollector`: a ``prometheus_client`` collector that reads
  ``Raft.statistics()`` at scrape time;
* :func:`metrics_registry`: a registry with one, plus the process collectors;
* :func:`serve_metrics`: answers ``GET /metrics`` over HTTP from a Trio task (no thread).

This module imports without ``prometheus_client``; making a collector or serving raises
``ImportError`` naming what to install. See ``docs/observability.md``.
"""

from ._prometheus import RaftCollector as RaftCollector
from ._prometheus import metrics_registry as metrics_registry
from ._prometheus import serve_metrics as serve_metrics
