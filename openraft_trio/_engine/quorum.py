"""Quorums over one or two voter sets (joint consensus)."""

from __future__ import annotations

import math
from collections.abc import Callable

from .._types import Membership


def quorum_value(membership: Membership, value_of: Callable[[int], float]) -> float:
    """The highest value a quorum has reached: per voter set the value a majority is at or
    above, the lowest over the sets (joint consensus); ``inf`` with no voter set."""
    result = math.inf
    for config in membership.configs:
        values = sorted((value_of(v) for v in config), reverse=True)
        result = min(result, values[len(values) // 2])
    return result
