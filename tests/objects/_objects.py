"""Objects and a log for the replicated-object tests."""

from __future__ import annotations

from typing import Any

from openraft_trio import LogId
from openraft_trio.objects import (
    Call,
    ObjectStateMachine,
    ReplicatedObject,
    make_call,
    query,
    replicated,
)
from openraft_trio.objects.batteries import FifoQueue

from ..kv._kv_log import Log as Log
from ..kv._kv_log import log_id as kv_log_id


class Counter(ReplicatedObject):
    value: int = 0

    @replicated
    def add(self, n: int = 1) -> int:
        self.value += n
        return self.value

    @replicated
    def fail(self, message: str) -> None:
        self.value += 100  # a method that raises keeps what it did (on every replica)
        raise ValueError(message)

    @replicated
    def stamp(self) -> tuple[float, int]:
        return (self.log_time, self.log_index)

    @query
    def get(self) -> int:
        return self.value


class Account(ReplicatedObject):
    """The bank account of the docs: ten lines."""

    balances: dict[str, int] = {}  # copied per instance

    @replicated
    def deposit(self, who: str, amount: int) -> int:
        self.balances[who] = self.balances.get(who, 0) + amount
        return self.balances[who]

    @replicated
    def transfer(self, source: str, target: str, amount: int) -> bool:
        if self.balances.get(source, 0) < amount:
            return False
        self.balances[source] -= amount
        self.balances[target] = self.balances.get(target, 0) + amount
        return True

    @query
    def balance(self, who: str) -> int:
        return self.balances.get(who, 0)


def log_id(index: int, term: int = 1) -> LogId:
    return kv_log_id(term, index)


def call(
    method: str, *args: Any, now: float = 0.0, version: int | None = None, **kwargs: Any
) -> Call:
    return make_call(method, args, kwargs, now=now, version=version)


async def apply(sm: ObjectStateMachine[Any], log: Log, *payloads: Any) -> list[Any]:
    return await sm.apply([log.entry(p) for p in payloads])


# An instance is a starting state `serve --object tests.objects._objects:BOUNDED_QUEUE` can
# serve: a battery configured by its fields.
BOUNDED_QUEUE = FifoQueue(max_size=2)
