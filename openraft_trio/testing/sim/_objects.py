"""Replicated objects in the simulator: a workload and a generic linearizability model.

:class:`ObjectWorkload` runs any :class:`~openraft_trio.objects.ReplicatedObject` through
:func:`~openraft_trio.testing.sim.run_simulation`: clients call the operations ``ops``
draws, commands through the log and queries after ``ensure_linearizable``. The history is
checked against :class:`ObjectModel` by default: the class's own methods, run one call at
a time on a copy of the state, are the sequential specification. That checks the
replication (every acknowledged call applied once, in one order, reads never stale), not
the methods themselves; a battery with an independent model checks both.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Hashable, Mapping
from typing import Any, final

import cbor2
import trio

from ...objects import Call, ObjectStateMachine, ReplicatedObject, Upgrade, make_call
from ...objects._calls import apply_call, run_query
from ...objects._state_machine import capture, decode_state, encode_state, restore
from ...sessions import table_to_plain
from ..linearizability import ANY_OUTPUT, Model

OpsFunction = Callable[[random.Random, int], tuple[Any, ...]]
"""``ops(rng, client_id) -> (method, args)`` or ``(method, args, kwargs)``: a client's next
call, drawn only from ``rng``."""


@final
class ObjectModel(Model):
    """The sequential specification of a replicated object: its own methods.

    A state is the object's snapshot document (CBOR, keys sorted: hashable, equal for
    equal states). A command's reply is what :func:`apply_call` gives on the decoded copy,
    a query's what the query gives; log time is the largest ``now`` of the calls taken so
    far. Log indexes are not known to a model: the ``n``-th call linearized runs with
    ``log_index == n`` (an object whose replies depend on ``log_index`` needs a model of
    its own). :class:`~openraft_trio.objects.Upgrade` inputs raise the active version.

    Args:
        obj: the class (initial state ``cls()``) or an initial instance.
        initial_version: the active code version at the start.
    """

    def __init__(
        self, obj: type[ReplicatedObject] | ReplicatedObject, *, initial_version: int = 1
    ) -> None:
        self._initial = ObjectStateMachine(obj, initial_version=initial_version)
        self._class = self._initial.object_class

    def init(self) -> Hashable:
        """The initial object's state document."""
        return encode_state(self._class, self._initial.state(), {})

    def step(self, state: Any, input: Any, output: Any) -> tuple[bool, Any]:
        """Run ``input`` (a :class:`Call` or :class:`Upgrade`) on a copy of ``state``."""
        decoded, _ = decode_state(self._class, state)
        obj = restore(self._class, decoded)
        active = decoded.active_version
        if isinstance(input, Upgrade):
            active = max(active, input.version)
            reply: Any = active
        elif isinstance(input, Call) and input.method in self._class.object_methods.queries:
            return (output is ANY_OUTPUT or run_query(obj, input) == output), state
        else:
            reply = apply_call(obj, input, active_version=active, log_index=obj.log_index + 1)
        new_state = encode_state(self._class, capture(obj, active), {})
        return (output is ANY_OUTPUT or reply == output), new_state

    def describe_state(self, state: Any) -> str:
        """The object's repr, its log time and active version."""
        decoded, _ = decode_state(self._class, state)
        obj = restore(self._class, decoded)
        return f"{obj!r} (log time {decoded.log_time}, version {decoded.active_version})"


@final
class ObjectWorkload:
    """A :class:`~openraft_trio.testing.sim.SimWorkload` calling a replicated object.

    Each client operation is ``ops(rng, client_id)``: a method name and its arguments; it
    is a read when the method is a :func:`~openraft_trio.objects.query`. Calls are stamped
    with ``trio.current_time()`` (the simulator's virtual clock) as a handle would.

    Commands are written in client sessions unless ``sessions`` is false: a call whose
    outcome is unknown is sent again with the same sequence number until answered, and the
    object state machine (which keeps the session table) applies it once, so the history
    check holds the object to exactly-once (a non-idempotent method such as a counter's
    ``add`` applied twice is caught). Without sessions such a call is left ambiguous.

    Args:
        obj: the object's class or initial instance (as for ``ObjectStateMachine``).
        ops: draws the next call (see :data:`OpsFunction`).
        model: the specification to check the history against (default
            ``ObjectModel(obj)``).
        initial_version: the active code version at the start, on every node.
        clock: what stamps ``now`` (default ``trio.current_time``).
        sessions: write commands in client sessions (see above).
        session_timeout: log seconds an unused session lives on the state machines.
    """

    def __init__(
        self,
        obj: type[ReplicatedObject] | ReplicatedObject,
        *,
        ops: OpsFunction,
        model: Model | None = None,
        initial_version: int = 1,
        clock: Callable[[], float] = trio.current_time,
        sessions: bool = True,
        session_timeout: float = 20.0,
    ) -> None:
        self.sessions = sessions
        self.session_timeout = session_timeout
        self._obj = obj
        self._initial_version = initial_version
        self._ops = ops
        self._model = model
        self._clock = clock
        self._class = ObjectStateMachine(obj, initial_version=initial_version).object_class

    def new_state_machine(self) -> ObjectStateMachine[Any]:
        """A fresh ``ObjectStateMachine`` of the object."""
        return ObjectStateMachine(
            self._obj,
            initial_version=self._initial_version,
            session_timeout=self.session_timeout,
        )

    def model(self) -> Model:
        """The given model, or ``ObjectModel`` of the object."""
        if self._model is not None:
            return self._model
        return ObjectModel(self._obj, initial_version=self._initial_version)

    def next_op(self, rng: random.Random, client_id: int) -> tuple[Any, bool]:
        """The next :class:`Call` of ``client_id`` and whether it is a query.

        Raises:
            ValueError: ``ops`` drew a name that is neither a command nor a query.
        """
        method, args, *rest = self._ops(rng, client_id)
        kwargs: Mapping[str, Any] = rest[0] if rest else {}
        methods = self._class.object_methods
        if method in methods.queries:
            return make_call(method, tuple(args), kwargs), True
        if method not in methods.commands:
            raise ValueError(f"ops drew {method!r}, not a method of {self._class.__qualname__}")
        return make_call(method, tuple(args), kwargs, now=self._clock()), False

    def read(self, state_machine: Any, request: Any) -> Any:
        """Run query ``request`` on the node's object (right after ensure_linearizable)."""
        return run_query(state_machine.object, request)

    def on_reply(self, client_id: int, request: Any, reply: Any) -> None:
        """Nothing: ``ops`` draws from its ``rng`` alone."""

    def state(self, state_machine: Any) -> Any:
        """The object's fields, log time and active version, and the session table (in
        CBOR): replicas must end equal, sessions expired at the same index."""
        state = state_machine.state()
        sessions = cbor2.dumps(table_to_plain(state_machine.sessions))
        return (state.fields, state.log_time, state.active_version, sessions)

    def liveness_command(self, seed: int) -> Upgrade:
        """``Upgrade(1)``: a no-op write (the active version is never lowered)."""
        return Upgrade(1)
