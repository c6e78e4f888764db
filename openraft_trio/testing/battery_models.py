"""Linearizability models of the batteries (test tooling, not runtime code).

Each model is the sequential specification of one battery of
:mod:`openraft_trio.objects.batteries`, written again from the spec rather than by running
the battery's own code, so the simulator checks the battery against an independent reading
of what it should do:

* :class:`CounterModel` — ``Counter``;
* :class:`DictModel` — ``ReplicatedDict`` (checked one key at a time when the history only
  has single-key operations and no key limit);
* :class:`QueueModel` — ``FifoQueue``;
* :class:`LockModel` — ``LockService``: mutual exclusion by log time, strictly increasing
  fencing tokens, release and renew only by the holder with its token.

An operation's ``input`` is the :class:`~openraft_trio.objects.Call` the simulator
recorded (:class:`~openraft_trio.testing.sim.ObjectWorkload`): the method, its arguments
and, for a replicated method, the time ``now`` stamped into the log entry. Its ``output``
is the method's reply, or the :class:`~openraft_trio.objects.ErrorReply` of a method that
raised (naming the exception type the spec gives: ``TypeError`` or ``ValueError``).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from typing import Any, TypeGuard, final

import attrs

from ..objects import Call, ErrorReply
from ..objects.batteries import Acquired, Full, Held
from .linearizability import ANY_OUTPUT, Model, Operation, _freeze

__all__ = ["CounterModel", "DictModel", "LockModel", "QueueModel"]


# -- reading a recorded call ------------------------------------------------------------------


@attrs.frozen
class _Call:
    """A recorded call, its arguments bound to the parameter names of the method."""

    method: str
    arguments: dict[str, Any]
    now: float


def _read_call(input: Any, parameters: dict[str, tuple[str, ...]], model: str) -> _Call:
    """Bind ``input`` (a :class:`Call`) to the parameter names in ``parameters``.

    A parameter left out is absent from ``arguments`` (the model applies the default).

    Raises:
        TypeError: ``input`` is not a call of a method in ``parameters``.
    """
    if not isinstance(input, Call) or input.method not in parameters:
        raise TypeError(f"{model}: not a call of this object: {input!r}")
    names = parameters[input.method]
    if len(input.args) > len(names):
        raise TypeError(f"{model}: too many arguments for {input.method}: {input!r}")
    arguments = dict(zip(names, input.args, strict=False))
    arguments.update(input.kwargs)
    return _Call(input.method, arguments, input.now)


def _is_error(output: Any) -> bool:
    """True if ``output`` is the reply of a call that failed."""
    return isinstance(output, ErrorReply)


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _same(output: Any, expected: Any) -> bool:
    """Whether ``output`` is the reply ``expected`` (any reply matches an unknown outcome)."""
    return output is ANY_OUTPUT or (not _is_error(output) and _freeze(output) == _freeze(expected))


def _refused(output: Any, type_name: str) -> bool:
    """Whether ``output`` is an error reply naming ``type_name`` (any reply matches an
    unknown outcome)."""
    return output is ANY_OUTPUT or (
        isinstance(output, ErrorReply) and output.type_name == type_name
    )


# -- counter ----------------------------------------------------------------------------------

_COUNTER_PARAMETERS = {"add": ("n",), "set": ("value",), "get": ()}


@final
class CounterModel(Model):
    """The specification of ``Counter``: the state is the value, starting at ``initial``.

    * ``add(n=1)`` -> the new value; an ``n`` that is not an ``int`` is refused (a
      ``TypeError`` reply) and changes nothing;
    * ``set(value)`` -> the previous value; a ``value`` that is not an ``int`` is refused;
    * ``get()`` -> the value.

    Args:
        initial: the battery's starting ``value``.
    """

    def __init__(self, initial: int = 0) -> None:
        self.initial = initial

    def init(self) -> Hashable:
        return self.initial

    def step(self, state: Any, input: Any, output: Any) -> tuple[bool, Any]:
        call = _read_call(input, _COUNTER_PARAMETERS, "CounterModel")
        if call.method == "get":
            return _same(output, state), state
        if call.method == "add":
            n = call.arguments.get("n", 1)
            if not _is_int(n):
                return _refused(output, "TypeError"), state
            return _same(output, state + n), state + n
        value = call.arguments.get("value")
        if not _is_int(value):
            return _refused(output, "TypeError"), state
        return _same(output, state), value


# -- dict -------------------------------------------------------------------------------------

_DICT_PARAMETERS = {
    "set": ("key", "value"),
    "delete": ("key",),
    "compare_and_set": ("key", "expected", "new"),
    "get": ("key",),
    "keys": (),
    "items": (),
    "len": (),
}
_SINGLE_KEY = frozenset({"set", "delete", "compare_and_set", "get"})


@final
class DictModel(Model):
    """The specification of ``ReplicatedDict``: the state is the mapping (keys are ``str``).

    * ``set(key, value)`` -> the previous value or ``None``; a new key when the dict already
      has ``max_keys`` keys -> ``Full(max_keys)``, nothing stored;
    * ``delete(key)`` -> the previous value or ``None`` (the key is then absent);
    * ``compare_and_set(key, expected, new)`` -> ``True`` and stores ``new`` if the value
      equals ``expected`` (absent equals ``None``), else ``False``; like ``set`` for the
      limit;
    * ``get(key)`` -> the value or ``None``;
    * ``keys()`` -> the keys, ``items()`` -> ``[key, value]`` pairs, both sorted by key;
      ``len()`` -> the number of keys.

    A key that is not a ``str`` is refused (a ``TypeError`` reply). Values compare after a CBOR
    round trip (a tuple equals a list). The history is checked one key at a time when
    every operation names one key and there is no ``max_keys`` (the limit couples the
    keys); otherwise as a whole.

    Args:
        max_keys: the battery's ``max_keys`` (``None``: no limit).
    """

    def __init__(self, max_keys: int | None = None) -> None:
        self.max_keys = max_keys

    def partition(self, operations: Sequence[Operation]) -> list[list[Operation]]:
        calls = [_read_call(op.input, _DICT_PARAMETERS, "DictModel") for op in operations]
        if self.max_keys is not None or any(call.method not in _SINGLE_KEY for call in calls):
            return [list(operations)]
        by_key: dict[Any, list[Operation]] = {}
        for op, call in zip(operations, calls, strict=True):
            by_key.setdefault(_freeze(call.arguments.get("key")), []).append(op)
        return list(by_key.values())

    def init(self) -> Hashable:
        return ()

    def step(self, state: Any, input: Any, output: Any) -> tuple[bool, Any]:
        call = _read_call(input, _DICT_PARAMETERS, "DictModel")
        data: dict[str, Any] = dict(state)
        if call.method == "keys":
            return _same(output, sorted(data)), state
        if call.method == "items":
            return _same(output, [[key, data[key]] for key in sorted(data)]), state
        if call.method == "len":
            return _same(output, len(data)), state
        key = call.arguments.get("key")
        if not isinstance(key, str):
            return _refused(output, "TypeError"), state
        previous = data.get(key)
        if call.method == "get":
            return _same(output, previous), state
        if call.method == "delete":
            data.pop(key, None)
            return _same(output, previous), _thaw_sorted(data)
        if call.method == "compare_and_set" and previous != _freeze(call.arguments.get("expected")):
            return _same(output, False), state
        if key not in data and self.max_keys is not None and len(data) >= self.max_keys:
            return _same(output, Full(self.max_keys)), state
        new_value = call.arguments.get("new" if call.method == "compare_and_set" else "value")
        data[key] = _freeze(new_value)
        reply = True if call.method == "compare_and_set" else previous
        return _same(output, reply), _thaw_sorted(data)

    def describe_state(self, state: Any) -> str:
        return repr(dict(state))


def _thaw_sorted(data: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    """The hashable state of a mapping: its pairs sorted by key."""
    return tuple(sorted(data.items(), key=lambda pair: pair[0]))


# -- queue ------------------------------------------------------------------------------------

_QUEUE_PARAMETERS = {"put": ("item",), "get": (), "peek": (), "size": ()}


@final
class QueueModel(Model):
    """The specification of ``FifoQueue``: the state is the items, oldest first.

    * ``put(item)`` -> the size after adding ``item`` at the back; when the queue already
      holds ``max_size`` items -> ``Full(max_size)``, nothing added; ``put(None)`` is refused
      (a ``ValueError`` reply: ``None`` is what ``get`` replies on an empty queue);
    * ``get()`` -> the front item, removed, or ``None`` if the queue is empty;
    * ``peek()`` -> the front item (not removed) or ``None``; ``size()`` -> how many items.

    Args:
        max_size: the battery's ``max_size`` (``None``: no limit).
    """

    def __init__(self, max_size: int | None = None) -> None:
        self.max_size = max_size

    def init(self) -> Hashable:
        return ()

    def step(self, state: Any, input: Any, output: Any) -> tuple[bool, Any]:
        call = _read_call(input, _QUEUE_PARAMETERS, "QueueModel")
        front = state[0] if state else None
        if call.method == "peek":
            return _same(output, front), state
        if call.method == "size":
            return _same(output, len(state)), state
        if call.method == "get":
            return _same(output, front), state[1:]
        item = call.arguments.get("item")
        if item is None:
            return _refused(output, "ValueError"), state
        if self.max_size is not None and len(state) >= self.max_size:
            return _same(output, Full(self.max_size)), state
        return _same(output, len(state) + 1), (*state, _freeze(item))


# -- lock service -----------------------------------------------------------------------------

_LOCK_PARAMETERS = {
    "acquire": ("name", "holder", "lease_seconds"),
    "renew": ("name", "holder", "token", "lease_seconds"),
    "release": ("name", "holder", "token"),
    "owner": ("name",),
}


@attrs.frozen
class _Lease:
    """One held lock in the model. ``token`` is ``None`` when the acquisition's reply was
    never seen: the real token is then at least ``token_at_least``."""

    holder: str
    token: int | None
    token_at_least: int
    expires_at: float


@attrs.frozen
class _LockState:
    """The lock service in the model (hashable: the search caches states).

    Attributes:
        log_time: the largest ``now`` of the replicated calls linearized so far (0.0
            before any, as on a replicated object).
        next_token_at_least: every later acquisition's token is at least this (tokens are
            log indices: strictly increasing integers).
        leases: ``(name, lease)`` pairs sorted by name; a released lock has none, an
            expired one may still be listed (it is free all the same).
    """

    log_time: float = 0.0
    next_token_at_least: int = 1
    leases: tuple[tuple[str, _Lease], ...] = ()

    def lease(self, name: str) -> _Lease | None:
        for held_name, lease in self.leases:
            if held_name == name:
                return lease
        return None

    def with_lease(self, name: str, lease: _Lease | None) -> tuple[tuple[str, _Lease], ...]:
        others = [(held_name, held) for held_name, held in self.leases if held_name != name]
        if lease is not None:
            others.append((name, lease))
        return tuple(sorted(others, key=lambda pair: pair[0]))


@final
class LockModel(Model):
    """The specification of ``LockService``: leases that expire by log time, fencing tokens.

    The log time is the largest ``now`` among the replicated calls linearized so far (each
    call's own ``now`` included when it takes effect); a lease with ``expires_at`` is live
    while the log time is at most ``expires_at``. The model checks:

    * *mutual exclusion by log time*: ``acquire(name, holder, lease_seconds)`` replies
      ``Acquired(token, log_time + lease_seconds)`` only if the lock is free (never held,
      released, or its lease expired at this call's log time) or already held by the same
      ``holder`` (which gets a fresh token; the old one stops working); otherwise
      ``Held(holder, expires_at)`` of the live holder;
    * *fencing tokens*: the tokens of successive acquisitions (of any lock) strictly
      increase in linearization order; their values are not predicted (they are log
      indices, which also count entries no client wrote);
    * ``renew(name, holder, token, lease_seconds)`` -> ``Acquired(token, log_time +
      lease_seconds)`` if ``holder`` holds a live lease with ``token``, else ``None``;
    * ``release(name, holder, token)`` -> ``True`` (the lock is free) if ``holder`` holds a
      live lease with ``token``, else ``False``;
    * ``owner(name)`` -> ``Held(holder, expires_at)`` of a live lease, else ``None``;
    * refused, changing nothing: a ``lease_seconds`` that is not a number (``TypeError``)
      or not finite and greater than 0 (``ValueError``); a name or holder that is not a
      ``str``, a token that is not an ``int`` (``TypeError``).

    The log time is shared by every lock, so the history is checked as one part.

    An acquisition whose reply was never seen holds the lock with an unknown token (at
    least the next possible one). A later renew or release naming a token that could be
    it takes its outcome from its own reply; with no reply it is taken to have failed,
    since its caller could not have learnt the token.
    """

    def init(self) -> Hashable:
        return _LockState()

    def step(self, state: Any, input: Any, output: Any) -> tuple[bool, Any]:
        call = _read_call(input, _LOCK_PARAMETERS, "LockModel")
        assert isinstance(state, _LockState)
        replicated = call.method != "owner"  # a query carries no time
        if replicated and math.isfinite(call.now) and call.now > state.log_time:
            state = attrs.evolve(state, log_time=call.now)
        arguments = call.arguments
        name = arguments.get("name")
        if not isinstance(name, str):
            return _refused(output, "TypeError"), state
        lease = state.lease(name)
        if lease is not None and state.log_time > lease.expires_at:
            lease = None  # expired by log time: free
        if call.method == "owner":
            reply = None if lease is None else Held(lease.holder, lease.expires_at)
            return _same(output, reply), state
        holder = arguments.get("holder")
        if not isinstance(holder, str):
            return _refused(output, "TypeError"), state
        step = _LockStep(state, name, holder, lease, output)
        if call.method == "acquire":
            return step.acquire(arguments.get("lease_seconds"))
        token = arguments.get("token")
        if not _is_int(token):
            return _refused(output, "TypeError"), state
        if call.method == "release":
            return step.release(token)
        return step.renew(token, arguments.get("lease_seconds"))

    def describe_state(self, state: Any) -> str:
        assert isinstance(state, _LockState)
        leases = ", ".join(
            f"{name}: {lease.holder} token "
            f"{lease.token if lease.token is not None else f'>={lease.token_at_least}'} "
            f"until {lease.expires_at!r}"
            for name, lease in state.leases
        )
        return (
            f"log time {state.log_time!r}, next token >= {state.next_token_at_least}, "
            f"leases {{{leases}}}"
        )


@attrs.frozen
class _LockStep:
    """One acquire, renew or release by ``holder`` on lock ``name``, being checked.

    ``state`` already has this call's log time; ``lease`` is the lock's live lease (``None``
    if the lock is free at that log time).
    """

    state: _LockState
    name: str
    holder: str
    lease: _Lease | None
    output: Any

    def acquire(self, lease_seconds: Any) -> tuple[bool, Any]:
        state, lease, output = self.state, self.lease, self.output
        if (refusal := _lease_refusal(lease_seconds)) is not None:
            return _refused(output, refusal), state
        if lease is not None and lease.holder != self.holder:
            return _same(output, Held(lease.holder, lease.expires_at)), state
        expires_at = state.log_time + lease_seconds
        floor = state.next_token_at_least
        if output is ANY_OUTPUT:
            return True, self._grant(_Lease(self.holder, None, floor, expires_at), floor + 1)
        legal = (
            isinstance(output, Acquired)
            and _is_int(output.token)
            and output.token >= floor
            and output.expires_at == expires_at
        )
        if not legal:
            return False, state
        granted = _Lease(self.holder, output.token, output.token, expires_at)
        return True, self._grant(granted, output.token + 1)

    def release(self, token: int) -> tuple[bool, Any]:
        if not self._holds(token, replied_success=self.output is True):
            return _same(self.output, False), self.state
        leases = self.state.with_lease(self.name, None)
        return _same(self.output, True), attrs.evolve(self.state, leases=leases)

    def renew(self, token: int, lease_seconds: Any) -> tuple[bool, Any]:
        state = self.state
        if (refusal := _lease_refusal(lease_seconds)) is not None:
            return _refused(self.output, refusal), state
        if not self._holds(token, replied_success=isinstance(self.output, Acquired)):
            return _same(self.output, None), state
        expires_at = state.log_time + lease_seconds
        leases = state.with_lease(self.name, _Lease(self.holder, token, token, expires_at))
        return _same(self.output, Acquired(token, expires_at)), attrs.evolve(state, leases=leases)

    def _grant(self, granted: _Lease, next_token_at_least: int) -> _LockState:
        leases = self.state.with_lease(self.name, granted)
        return attrs.evolve(self.state, next_token_at_least=next_token_at_least, leases=leases)

    def _holds(self, token: int, *, replied_success: bool) -> bool:
        """Whether the caller holds the live lease with ``token``.

        With the lease's token unknown, a token that could be it holds only if the reply
        says so (``replied_success``).
        """
        lease = self.lease
        if lease is None or lease.holder != self.holder:
            return False
        if lease.token is not None:
            return lease.token == token
        return token >= lease.token_at_least and replied_success


def _lease_refusal(lease_seconds: Any) -> str | None:
    """The error type a bad lease is refused with, or ``None`` for a good one."""
    if isinstance(lease_seconds, bool) or not isinstance(lease_seconds, int | float):
        return "TypeError"
    if not math.isfinite(lease_seconds) or lease_seconds <= 0:
        return "ValueError"
    return None
