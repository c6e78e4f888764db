"""Argument checks shared by the batteries (a failed check is an error reply)."""

from __future__ import annotations

import math
from typing import Any


def check_int(value: Any, what: str) -> int:
    """``value`` if it is an ``int`` (not a ``bool``); raise ``TypeError`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, got {type(value).__name__}")
    return value


def check_str(value: Any, what: str) -> str:
    """``value`` if it is a ``str``; raise ``TypeError`` otherwise."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, got {type(value).__name__}")
    return value


def check_limit(value: int | None, what: str) -> None:
    """Refuse a size limit that is neither ``None`` nor an ``int`` of at least 1."""
    if value is None:
        return
    if check_int(value, what) < 1:
        raise ValueError(f"{what} must be at least 1 (or None for no limit), got {value}")


def check_seconds(value: Any, what: str) -> float:
    """``value`` if it is a finite number of seconds greater than 0; raise otherwise.

    Raises:
        TypeError: not an ``int`` or ``float`` (a ``bool`` is not a number of seconds).
        ValueError: not finite, or not greater than 0.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{what} must be a number of seconds, got {type(value).__name__}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{what} must be a finite number of seconds greater than 0, got {value!r}")
    return value
