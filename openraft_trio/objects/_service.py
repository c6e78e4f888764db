"""Serving a replicated object over TCP: the ``call``, ``query`` and ``upgrade`` operations
of the client API when a node runs ``openraft-trio serve --object module:Class``, and the
client session operations.

============= ========================================== ====================================
op            args                                       reply
============= ========================================== ====================================
call          ``encode_data(Call)``                      {"reply": encode_data(reply), "index"}
query         ``encode_data(Call)``, policy (optional)   {"reply": encode_data(reply), "index"}
upgrade       version                                    {"version": active, "index"}
open_session  (none)                                     {"session_id", "timeout", "window"}
session_write session_id, seq, acked_seq, "call",        as ``call``, applied at most once per
              [``encode_data(Call)``]                    (session, seq)
keep_alive    session_id, acked_seq                      null
close_session session_id                                 null
============= ========================================== ====================================

Calls travel as application data (:func:`openraft_trio.codec.encode_data`), so arguments
and replies may be of registered types; a failed call's reply is an
:class:`~openraft_trio.objects.ErrorReply` the client raises. The server stamps ``now`` into
each call when it receives it (its own clock: the leader's, since writes go to the leader),
and refuses a method this node's class does not declare without writing anything. In a
session write the call and the session entry carry the same stamp; the object state
machine keeps the session table (:mod:`openraft_trio.sessions._service`).
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Awaitable, Callable
from typing import Any, final

import attrs

from .. import codec
from .._core.handle import Raft
from .._errors import InvalidRequest, short_repr, short_text
from .._types import ReadPolicy
from ..sessions._service import SessionOps
from ._calls import Call, ErrorReply, Upgrade, run_query
from ._declare import ReplicatedObject
from ._state_machine import ObjectStateMachine


def load_object_class(spec: str) -> type[ReplicatedObject] | ReplicatedObject:
    """The object ``spec`` names: ``"package.module:Name"`` (imported), where ``Name`` is a
    :class:`ReplicatedObject` subclass (its initial state is ``Name()``) or an instance of
    one (the initial state itself, e.g. ``jobs = FifoQueue(max_size=100)``, for a battery
    configured by its fields). :class:`ObjectStateMachine` takes either.

    Raises:
        ValueError: not ``module:Name``, the module or name is missing, or it is neither a
            :class:`ReplicatedObject` subclass nor an instance of one.
    """
    module_name, _, name = spec.partition(":")
    if not module_name or not name:
        raise ValueError(f"--object takes module:Class (or module:instance), got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import {module_name!r}: {exc}") from exc
    found: Any = module
    for part in name.split("."):
        found = getattr(found, part, None)
    if isinstance(found, ReplicatedObject):
        return found
    if not (isinstance(found, type) and issubclass(found, ReplicatedObject)):
        raise ValueError(f"{spec!r} is not a ReplicatedObject subclass or instance")
    return found


def _call(raw: Any) -> Call:
    try:
        call = codec.decode_data(raw)
    except codec.DecodeError as exc:
        raise InvalidRequest(f"not a call: {short_text(str(exc))}") from exc
    if not isinstance(call, Call):
        raise InvalidRequest(f"not a call: {short_repr(call)}")
    return call


def _encoded_reply(reply: Any) -> Any:
    try:
        codec.check_encodable(reply)
    except InvalidRequest as exc:
        raise InvalidRequest(f"the reply cannot be sent: {exc}") from exc
    return codec.encode_data(reply)


def _policy(raw: Any) -> ReadPolicy:
    for policy in ReadPolicy:
        if policy.value == raw:
            return policy
    raise InvalidRequest(
        f"policy must be one of {[p.value for p in ReadPolicy]}, got {short_repr(raw)}"
    )


@final
class ObjectService:
    """The object operations of one node's client API (see the module docstring).

    Args:
        raft: the node.
        state_machine: its object state machine.
        clock: what stamps ``now`` into calls on receipt (default ``time.time``).
    """

    def __init__(
        self,
        raft: Raft[Any, Any],
        state_machine: ObjectStateMachine[Any],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.raft = raft
        self.state_machine = state_machine
        self._clock = clock
        self._sessions = SessionOps(raft, state_machine, clock)

    def ops(self) -> dict[str, Callable[..., Awaitable[Any]]]:
        """Operation name -> handler, for the node's client API."""
        return {
            "call": self.call,
            "query": self.query,
            "upgrade": self.upgrade,
            **self._sessions.ops(),
            "session_write": self.session_write,
        }

    def _command(self, raw: Any) -> Call | dict[str, Any]:
        """The call ``raw`` stamped now, or the reply refusing a method the class lacks."""
        call = _call(raw)
        methods = self.state_machine.object_class.object_methods
        if call.method not in methods.commands:
            name = self.state_machine.object_class.__qualname__
            reply: Any = ErrorReply("unknown_method", "", f"{name} has no command {call.method!r}")
            return {"reply": codec.encode_data(reply), "index": None}
        return attrs.evolve(call, now=self._clock())

    async def call(self, raw: Any) -> dict[str, Any]:
        """Write the call (``now`` stamped here) and wait for its reply."""
        call = self._command(raw)
        if isinstance(call, dict):
            return call
        response = await self.raft.client_write(call)
        return {"reply": _encoded_reply(response.data), "index": response.log_id.index}

    async def session_write(
        self, session_id: Any, seq: Any, acked_seq: Any, op: Any, args: Any
    ) -> dict[str, Any]:
        """Write ``op`` (``"call"``) with ``args`` (``[call]``) as command ``seq`` of session
        ``session_id``: applied at most once however often it is sent; the reply of
        ``call``, the first one's on a retry.

        Raises:
            SessionError: the session refused it (``SessionExpired`` and so on).
            InvalidRequest: not a call, or impossible numbers.
        """
        if op != "call" or not isinstance(args, list) or len(args) != 1:
            raise InvalidRequest(
                f'session_write takes the op "call" and [call], got {short_repr(op)}, '
                f"{short_repr(args)}"
            )
        call = self._command(args[0])
        if isinstance(call, dict):
            return call
        command = self._sessions.command(session_id, seq, acked_seq, call, now=call.now)
        response = await self.raft.client_write(command)
        reply = SessionOps.answer(response.data)
        return {"reply": _encoded_reply(reply), "index": response.log_id.index}

    async def query(self, raw: Any, policy: Any = ReadPolicy.READ_INDEX.value) -> dict[str, Any]:
        """Run the query on this node after ``ensure_linearizable(policy)``."""
        call = _call(raw)
        read = await self.raft.ensure_linearizable(_policy(policy))
        reply = run_query(self.state_machine.object, call)
        return {"reply": _encoded_reply(reply), "index": None if read is None else read.index}

    async def upgrade(self, version: Any) -> dict[str, Any]:
        """Write ``Upgrade(version)``; reply the active version afterwards."""
        if type(version) is not int or version < 1:
            raise InvalidRequest(f"version must be an int of at least 1, got {short_repr(version)}")
        if version > self.state_machine.object_class.object_methods.max_version:
            raise InvalidRequest(f"this node's code has no version {version}")
        response = await self.raft.client_write(Upgrade(version))
        return {"version": response.data, "index": response.log_id.index}
