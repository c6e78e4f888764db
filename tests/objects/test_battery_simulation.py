"""The batteries through the deterministic simulator (faults, snapshots), each history
checked against the battery's own independent model."""

from __future__ import annotations

import random
from typing import Any

import pytest

from openraft_trio.objects import Call
from openraft_trio.objects.batteries import (
    Acquired,
    Counter,
    FifoQueue,
    Full,
    Held,
    LockService,
    ReplicatedDict,
)
from openraft_trio.testing.battery_models import CounterModel, DictModel, LockModel, QueueModel
from openraft_trio.testing.sim import FaultPlan, ObjectWorkload, SimResult, run_simulation

SEEDS = [1, 2, 3]


def simulate(seed: int, workload: Any) -> SimResult:
    result = run_simulation(
        seed,
        nodes=3,
        duration=6.0,
        clients=4,
        workload=workload,
        faults=FaultPlan(snapshot_every=20),
    )
    assert result.ok, result.violations
    assert result.stats.writes_acked > 0
    assert result.stats.reads_ok > 0
    return result


def replies_of(result: SimResult, method: str) -> list[Any]:
    return [
        op.output
        for op in result.history
        if op.outcome_known and isinstance(op.input, Call) and op.input.method == method
    ]


def counter_ops(rng: random.Random, client_id: int) -> tuple[Any, ...]:
    roll = rng.random()
    if roll < 0.3:
        return ("get", ())
    if roll < 0.9:
        return ("add", (rng.randint(-3, 9),))
    return ("set", (rng.randint(0, 100),))


@pytest.mark.parametrize("seed", SEEDS)
def test_counter_in_the_simulator(seed: int) -> None:
    simulate(seed, ObjectWorkload(Counter, ops=counter_ops, model=CounterModel()))


def dict_ops(rng: random.Random, client_id: int) -> tuple[Any, ...]:
    key = rng.choice("abc")
    roll = rng.random()
    if roll < 0.25:
        return ("get", (key,))
    if roll < 0.3:
        return (rng.choice(["keys", "items", "len"]), ())
    if roll < 0.65:
        return ("set", (key, rng.randint(0, 4)))
    if roll < 0.8:
        return ("delete", (key,))
    return ("compare_and_set", (key, rng.choice([None, 0, 1, 2]), rng.randint(0, 4)))


@pytest.mark.parametrize("seed", SEEDS)
def test_dict_in_the_simulator(seed: int) -> None:
    simulate(seed, ObjectWorkload(ReplicatedDict, ops=dict_ops, model=DictModel()))


def test_dict_with_a_key_limit_in_the_simulator() -> None:
    workload = ObjectWorkload(ReplicatedDict(max_keys=2), ops=dict_ops, model=DictModel(2))
    result = simulate(4, workload)
    assert Full(2) in replies_of(result, "set")


def queue_ops(rng: random.Random, client_id: int) -> tuple[Any, ...]:
    roll = rng.random()
    if roll < 0.2:
        return (rng.choice(["peek", "size"]), ())
    if roll < 0.6:
        return ("put", (f"{client_id}.{rng.randrange(10**6)}",))
    return ("get", ())


@pytest.mark.parametrize("seed", SEEDS)
def test_queue_in_the_simulator(seed: int) -> None:
    result = simulate(seed, ObjectWorkload(FifoQueue(max_size=4), ops=queue_ops, model=QueueModel(4)))
    taken = [item for item in replies_of(result, "get") if item is not None]
    assert taken
    assert len(taken) == len(set(taken))  # no item delivered twice


class LockClients:
    """A SimWorkload: ObjectWorkload of a LockService whose clients remember the token
    each acquisition replied and renew or release with it (or go quiet, as a crash)."""

    names = ("L", "M")

    def __init__(self) -> None:
        self.inner = ObjectWorkload(LockService, ops=self.ops, model=LockModel())
        self.held: dict[int, dict[str, int]] = {}

    def ops(self, rng: random.Random, client_id: int) -> tuple[Any, ...]:
        holder = f"client{client_id}"
        held = self.held.setdefault(client_id, {})
        name = rng.choice(self.names)
        roll = rng.random()
        if name in held and roll < 0.7:
            method = "renew" if roll < 0.45 else "release"
            if method == "release":
                token = held.pop(name)
                return ("release", (name, holder, token))
            return ("renew", (name, holder, held[name], rng.choice([0.3, 0.6])))
        if roll < 0.25:
            return ("owner", (name,))
        return ("acquire", (name, holder, rng.choice([0.3, 0.6, 1.0])))

    def on_reply(self, client_id: int, request: Any, reply: Any) -> None:
        held = self.held.setdefault(client_id, {})
        if request.method in ("acquire", "renew") and isinstance(reply, Acquired):
            held[request.args[0]] = reply.token
        elif request.method in ("acquire", "renew"):
            held.pop(request.args[0], None)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.mark.parametrize("seed", SEEDS)
def test_lock_service_in_the_simulator(seed: int) -> None:
    result = simulate(seed, LockClients())
    acquired = [reply for reply in replies_of(result, "acquire") if isinstance(reply, Acquired)]
    assert len(acquired) > 3
    assert any(isinstance(reply, Held) for reply in replies_of(result, "acquire"))
    assert any(isinstance(reply, Acquired) for reply in replies_of(result, "renew"))
    assert True in replies_of(result, "release")
    tokens = [reply.token for reply in acquired]
    assert len(set(tokens)) == len(tokens)


class LeasesNeverExpire(LockService):  # type: ignore[misc]
    """A broken lock service: it ignores expiry, so a crashed holder keeps the lock."""

    def _live(self, name: str) -> Any:
        return self.leases.get(name)


def test_a_lock_service_whose_leases_never_expire_is_caught() -> None:
    class Broken(LockClients):
        def __init__(self) -> None:
            super().__init__()
            self.inner = ObjectWorkload(LeasesNeverExpire, ops=self.ops, model=LockModel())

    result = run_simulation(1, nodes=3, duration=6.0, clients=4, workload=Broken())
    assert "linearizability" in {v.kind for v in result.violations}
