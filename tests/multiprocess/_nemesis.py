"""Faults for real-process clusters: kill -9 and restart, or SIGSTOP and resume, a node
(often the leader) while writers run."""

from __future__ import annotations

import random
import signal
from collections.abc import Awaitable, Callable

import trio

from openraft_trio.kv import AmbiguousOutcome
from openraft_trio.testing.processes import ProcessCluster


async def increment_through_kills_and_pauses(
    cl: ProcessCluster, rng: random.Random, increment: Callable[[], Awaitable[None]]
) -> tuple[int, int]:
    """Four writers call ``increment`` for four rounds; in each, a node (the leader 70 % of
    the time) is SIGKILLed and restarted or SIGSTOPped and resumed. Returns how many
    increments were acknowledged and how many raised ``AmbiguousOutcome``."""
    acked = 0
    ambiguous = 0

    async def incrementer(stop: trio.Event) -> None:
        nonlocal acked, ambiguous
        while not stop.is_set():
            try:
                await increment()
                acked += 1
            except AmbiguousOutcome:
                ambiguous += 1

    for _ in range(4):
        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            for _ in range(4):
                nursery.start_soon(incrementer, stop)
            await trio.sleep(0.3)
            await kill_or_pause_one(cl, rng)
            stop.set()
        await cl.wait_leader()
    return acked, ambiguous


async def kill_or_pause_one(cl: ProcessCluster, rng: random.Random) -> None:
    """SIGKILL and restart, or SIGSTOP and resume, one node (the leader 70 % of the time);
    then let the cluster run a moment."""
    statuses = await cl.statuses()
    leaders = [s["id"] for s in statuses.values() if s["state"] == "LEADER"]
    victim = leaders[0] if leaders and rng.random() < 0.7 else rng.choice([1, 2, 3])
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
