"""The kill-and-pause schedule the real-process fault tests share."""

from __future__ import annotations

import random
import signal
from collections.abc import Awaitable, Callable

import trio

from openraft_trio.kv import AmbiguousOutcome
from openraft_trio.testing.processes import ProcessCluster


async def kill_and_pause_rounds(
    cl: ProcessCluster,
    rng: random.Random,
    worker: Callable[[int, trio.Event], Awaitable[None]],
    *,
    rounds: int = 4,
    workers: int = 4,
) -> None:
    """``rounds`` rounds of: ``workers`` copies of ``worker(w, stop)`` run while a node
    (the leader 70 % of the time) is SIGKILLed and restarted, or SIGSTOPped and resumed;
    then ``stop`` is set, the round waits for its workers and for a leader."""
    for _ in range(rounds):
        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            for w in range(workers):
                nursery.start_soon(worker, w, stop)
            await trio.sleep(0.3)
            statuses = await cl.statuses()
            leaders = [s["id"] for s in statuses.values() if s["state"] == "LEADER"]
            victim = leaders[0] if leaders and rng.random() < 0.7 else rng.choice(list(cl.nodes))
            proc = cl.nodes[victim].process
            assert proc is not None
            if rng.random() < 0.5:
                await cl.kill(victim, signal.SIGKILL)
                await trio.sleep(0.5)
                await cl.start(victim)
            else:
                proc.send_signal(signal.SIGSTOP)
                await trio.sleep(0.8)
                proc.send_signal(signal.SIGCONT)
            await trio.sleep(0.3)
            stop.set()
        await cl.wait_leader()


class Increments:
    """Workers for :func:`kill_and_pause_rounds` that repeat ``increment`` (a write that is
    not idempotent), counting the acknowledged ones and those raising ``AmbiguousOutcome``."""

    def __init__(self, increment: Callable[[], Awaitable[object]]) -> None:
        self.increment = increment
        self.acked = 0
        self.ambiguous = 0

    async def worker(self, _w: int, stop: trio.Event) -> None:
        while not stop.is_set():
            try:
                await self.increment()
                self.acked += 1
            except AmbiguousOutcome:
                self.ambiguous += 1
