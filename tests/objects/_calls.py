"""Recorded object calls and error replies for the model tests."""

from __future__ import annotations

from typing import Any

import attrs


@attrs.frozen
class FakeCall:
    method: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    now: float | None


@attrs.frozen
class FakeError:
    type_name: str
    message: str = ""


def call(method: str, *args: Any, now: float | None = None, **kwargs: Any) -> Any:
    return FakeCall(method, args, kwargs, now)


def error(type_name: str) -> Any:
    return FakeError(type_name)
