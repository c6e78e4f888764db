"""Coalescing hand-offs from RaftCore to its workers.

RaftCore must never block on a worker (workers block on RaftCore's bounded channel, so a
blocking send in the other direction could deadlock). So the core writes the *latest*
instruction into a slot and wakes the worker; repeated instructions coalesce.
"""

from __future__ import annotations

from typing import Protocol, final

import trio

from .notifications import Notification


class Notifier(Protocol):
    """Where workers report to RaftCore (a bounded channel that also wakes the core)."""

    async def send(self, value: Notification) -> None: ...

    def try_send(self, value: Notification) -> bool:
        """Send without waiting; False (nothing sent) when the channel is full."""
        ...


class Wakeup:
    """A flag a worker sleeps on; ``set`` is sync and idempotent."""

    def __init__(self) -> None:
        self._event = trio.Event()

    def set(self) -> None:
        self._event.set()

    async def wait(self) -> None:
        # Already set: take it without a scheduling round trip (every worker loop does I/O
        # or blocks on an unset flag before it comes back here, so this cannot spin).
        if not self._event.is_set():
            await self._event.wait()
        self._event = trio.Event()

    def is_set(self) -> bool:
        return self._event.is_set()


@final
class HeartbeatTrigger(Wakeup):
    """Wakes a heartbeat task; ``read_round`` is the latest ReadIndex round to stamp."""

    def __init__(self) -> None:
        super().__init__()
        self.read_round = 0

    def trigger(self, read_round: int | None = None) -> None:
        if read_round is not None and read_round > self.read_round:
            self.read_round = read_round
        self.set()
