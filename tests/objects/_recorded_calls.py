"""Recorded object calls and error replies for the model tests, as the simulator records
them."""

from __future__ import annotations

from typing import Any

from openraft_trio.objects import Call, ErrorReply, make_call


def call(method: str, *args: Any, now: float = 0.0, **kwargs: Any) -> Call:
    return make_call(method, args, kwargs, now=now)


def error(type_name: str) -> ErrorReply:
    return ErrorReply("method_raised", type_name, "")
