"""The one percentile function: the ``bench`` op of the KV service and the benchmarks
(``benchmarks/``) report latencies with it, so their numbers mean the same thing."""

from __future__ import annotations

from collections.abc import Sequence


def percentile(sorted_values: Sequence[float], pct: float) -> float:
    """The nearest-rank ``pct``-th percentile of ``sorted_values`` (ascending): the
    smallest value with at least ``pct`` percent of the values at or below it.

    Raises:
        ValueError: ``sorted_values`` is empty.
    """
    if not sorted_values:
        raise ValueError("no values: a percentile of nothing is undefined")
    rank = max(1, -(-len(sorted_values) * pct // 100))  # ceil(n * pct / 100)
    return sorted_values[int(rank) - 1]
