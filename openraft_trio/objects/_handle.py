"""``ObjectHandle``: call a replicated object through a Raft node in this process."""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar, final

from .._core.handle import Raft
from .._errors import InvalidRequest
from .._types import ReadPolicy
from ._calls import Upgrade, make_call, run_query, unwrap_reply
from ._declare import ReplicatedObject
from ._errors import UnknownMethodError
from ._state_machine import ObjectStateMachine

T = TypeVar("T", bound=ReplicatedObject)


@final
class ObjectHandle(Generic[T]):
    """Calls a replicated object's methods through ``raft``, whose state machine is
    ``state_machine`` (or wraps it).

    ``await handle.add(5)`` is ``await handle.call("add", 5)`` for a command and
    ``await handle.query("add", 5)`` for a query: attribute sugar for every marked method
    whose name is not one of the handle's own (``call``, ``query``, ``upgrade``).

    Args:
        raft: the node (a ``Raft`` from ``open_raft`` or ``open_cluster``).
        state_machine: the node's object state machine (queries read its object).
        clock: what stamps ``now`` into each call (seconds; default ``time.time``; the
            simulator passes ``trio.current_time``).
        read_policy: how queries confirm leadership (``ensure_linearizable``'s policy).
        version: the code version calls run with; ``None`` (usual): the active one.
    """

    def __init__(
        self,
        raft: Raft[Any, Any],
        state_machine: ObjectStateMachine[T],
        *,
        clock: Callable[[], float] = time.time,
        read_policy: ReadPolicy = ReadPolicy.READ_INDEX,
        version: int | None = None,
    ) -> None:
        if not isinstance(read_policy, ReadPolicy):
            raise InvalidRequest(f"read_policy must be a ReadPolicy, got {read_policy!r}")
        self._raft = raft
        self._state_machine = state_machine
        self._clock = clock
        self._read_policy = read_policy
        self._version = version

    @property
    def state_machine(self) -> ObjectStateMachine[T]:
        """The state machine queries read."""
        return self._state_machine

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
                ``maybe_committed``) the outcome is unknown.
        """
        if method not in self._state_machine.object_class.object_methods.commands:
            raise UnknownMethodError(
                f"{self._state_machine.object_class.__qualname__} has no command {method!r}"
            )
        call = make_call(method, args, kwargs, now=self._clock(), version=self._version)
        response = await self._raft.client_write(call)
        return unwrap_reply(response.data)

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
