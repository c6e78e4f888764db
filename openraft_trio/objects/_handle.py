"""``ObjectHandle``: call a replicated object through a Raft node in this process.

With a client session (:func:`openraft_trio.sessions.open_session`) every call is a
:class:`~openraft_trio.sessions.SessionCall`, numbered once and sent again after an unknown
outcome until answered; the state machine answers a copy it applied before from its session
table, so the call runs exactly once.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Generic, TypeVar, final

import trio

from .._core.handle import Raft
from .._errors import ForwardToLeader, InvalidRequest, Stopped
from .._types import ReadPolicy
from ..sessions import ClientSession, SessionCall, SessionStateMachine
from ._calls import Call, Upgrade, make_call, run_query, unwrap_reply
from ._declare import ReplicatedObject
from ._errors import UnknownMethodError
from ._state_machine import ObjectStateMachine

T = TypeVar("T", bound=ReplicatedObject)


@final
class ObjectHandle(Generic[T]):
    """Calls a replicated object's methods through ``raft``, whose state machine is
    ``state_machine`` (an :class:`ObjectStateMachine`, or a
    :class:`~openraft_trio.sessions.SessionStateMachine` around one: queries read its
    ``inner``).

    ``await handle.add(5)`` is ``await handle.call("add", 5)`` for a command and
    ``await handle.query("add", 5)`` for a query: attribute sugar for every marked method
    whose name is not one of the handle's own (``call``, ``query``, ``upgrade``).

    Args:
        raft: the node (a ``Raft`` from ``open_raft`` or ``open_cluster``).
        state_machine: the node's object state machine (queries read its object).
        clock: what stamps ``now`` into each call (seconds; default ``time.time``; the
            simulator passes ``trio.current_time``). With a ``session``, its clock stamps
            both the call and the session entry; then give no ``clock``.
        read_policy: how queries confirm leadership (``ensure_linearizable``'s policy).
        version: the code version calls run with; ``None`` (usual): the active one.
        session: a client session (from ``open_session``) to make every call in, so that
            it is sent again after an unknown outcome and runs exactly once.
        nodes: with a session, where to send a call again when ``raft`` names another
            leader (node id -> ``Raft``, e.g. ``open_cluster``'s ``nodes``); without, a
            call is sent again through ``raft`` only.
        retry_for: with a session, how long (Trio seconds) a call is sent again.
        attempt_timeout: with a session, how long one sending may take before it counts
            as an unknown outcome and is sent again.

    Raises:
        InvalidRequest: a bad ``read_policy``, ``retry_for`` or ``attempt_timeout``, or
            both ``session`` and ``clock``.
    """

    def __init__(
        self,
        raft: Raft[Any, Any],
        state_machine: ObjectStateMachine[T] | SessionStateMachine[Any, Any],
        *,
        clock: Callable[[], float] | None = None,
        read_policy: ReadPolicy = ReadPolicy.READ_INDEX,
        version: int | None = None,
        session: ClientSession | None = None,
        nodes: Mapping[int, Raft[Any, Any]] | None = None,
        retry_for: float = 10.0,
        attempt_timeout: float = 5.0,
    ) -> None:
        if not isinstance(read_policy, ReadPolicy):
            raise InvalidRequest(f"read_policy must be a ReadPolicy, got {read_policy!r}")
        if session is not None and clock is not None:
            raise InvalidRequest("with a session, calls are stamped by its clock: give no clock")
        for name, value in (("retry_for", retry_for), ("attempt_timeout", attempt_timeout)):
            if not (isinstance(value, int | float) and value > 0 and math.isfinite(value)):
                raise InvalidRequest(f"{name} must be a positive number, got {value!r}")
        self._raft = raft
        inner: Any = state_machine
        if isinstance(inner, SessionStateMachine):
            inner = inner.inner
        self._state_machine: ObjectStateMachine[T] = inner
        self._session = session
        self._clock = session.clock if session is not None else clock or time.time
        self._read_policy = read_policy
        self._version = version
        self._nodes = nodes
        self._retry_for = float(retry_for)
        self._attempt_timeout = float(attempt_timeout)

    @property
    def state_machine(self) -> ObjectStateMachine[T]:
        """The object state machine queries read."""
        return self._state_machine

    @property
    def session(self) -> ClientSession | None:
        """The client session calls are made in, if any."""
        return self._session

    async def call(self, method: str, /, *args: Any, **kwargs: Any) -> Any:
        """Run command ``method(*args, **kwargs)`` through the log; return its reply.

        Raises:
            UnknownMethodError: this code has no command ``method`` (checked before
                writing), or the replicas have none at the version it ran with.
            BadArgumentsError: the arguments do not fit the method.
            ReplicatedMethodError: the method raised (its effects so far stay).
            VersionNotActiveError: the handle's ``version`` is not active yet.
            InvalidRequest: an argument cannot be encoded.
            ForwardToLeader: this node does not lead; nothing was written, or (with
                ``maybe_committed``) the outcome is unknown. With a session, only once
                ``retry_for`` ran out (then ``trio.TooSlowError`` or ``Stopped`` too).
            SessionExpired: the session expired (``maybe_applied`` when an earlier
                sending's outcome was unknown); make a new session.
        """
        if method not in self._state_machine.object_class.object_methods.commands:
            raise UnknownMethodError(
                f"{self._state_machine.object_class.__qualname__} has no command {method!r}"
            )
        call = make_call(method, args, kwargs, now=self._clock(), version=self._version)
        if self._session is not None:
            return unwrap_reply(await self._send_in_session(self._session.call(call)))
        response = await self._raft.client_write(call)
        return unwrap_reply(response.data)

    async def _send_in_session(self, call: SessionCall[Call]) -> Any:
        """Send ``call`` until it is answered (see :meth:`call`), following leader hints."""
        deadline = trio.current_time() + self._retry_for
        raft = self._raft
        while True:
            hinted: Raft[Any, Any] | None = None
            try:
                with trio.fail_after(min(self._attempt_timeout, self._retry_for)):
                    return (await call.send(raft)).data
            except ForwardToLeader as error:
                last: Exception = error
                if self._nodes is not None and error.leader_id is not None:
                    hinted = self._nodes.get(error.leader_id)
            except (Stopped, trio.TooSlowError) as error:
                last = error
            if trio.current_time() >= deadline:
                call.session.completed(call.seq)  # given up: its reply is not needed
                raise last
            if hinted is not None and hinted is not raft:
                raft = hinted
            else:
                # No leader named (an election), or the same node: wait before asking again.
                await trio.sleep(0.05)

    async def query(self, method: str, /, *args: Any, **kwargs: Any) -> Any:
        """Run query ``method(*args, **kwargs)`` on this node after
        ``ensure_linearizable``; return its reply.

        Raises:
            UnknownMethodError: the object has no query ``method``.
            BadArgumentsError: the arguments do not fit the method.
            ReplicatedMethodError: the query raised.
            ForwardToLeader, QuorumNotEnough: from ``ensure_linearizable``.
        """
        if method not in self._state_machine.object_class.object_methods.queries:
            raise UnknownMethodError(
                f"{self._state_machine.object_class.__qualname__} has no query {method!r}"
            )
        call = make_call(method, args, kwargs)
        await self._raft.ensure_linearizable(self._read_policy)
        # No checkpoint between the confirmation and the read.
        return unwrap_reply(run_query(self._state_machine.object, call))

    async def upgrade(self, version: int) -> int:
        """Make ``version`` the active code version (once every node runs code that has it);
        return the active version afterwards (never lowered).

        Raises:
            InvalidRequest: ``version`` is not an int of at least 1, or above this code's.
        """
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise InvalidRequest(f"version must be an int of at least 1, got {version!r}")
        if version > self._state_machine.object_class.object_methods.max_version:
            raise InvalidRequest(f"this node's code has no version {version}")
        response = await self._raft.client_write(Upgrade(version))
        reply: int = response.data
        return reply

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        methods = self._state_machine.object_class.object_methods
        if name in methods.commands:
            return functools.partial(self.call, name)
        if name in methods.queries:
            return functools.partial(self.query, name)
        raise AttributeError(
            f"{self._state_machine.object_class.__qualname__} has no replicated method or "
            f"query {name!r}"
        )
