"""The leader nursery: ``replication[t]`` and ``heartbeat[t]`` for every target.

RaftCore opens one for each stretch of its loop. When the node stops leading
(``QuitLeader``) it stops every task in it at once, finishes the round (the commands after
``QuitLeader`` — the ``SaveVote`` of the vote that deposed it, the ``Respond`` granting it
— run in full: cancelling the nursery would cancel the core's own storage calls in it),
then cancels the nursery and waits for every task in it to finish before it takes its
next message. While the node leads, ``BecomeLeader`` and ``AddReplicationTargets`` start a
pair of tasks per target, each under a cancel scope of its own, so that a membership change
(``RemoveReplicationTargets``) stops only the targets it removes.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, final

import trio

from .._types import LogId, Vote
from .heartbeat import heartbeat_task
from .replication import ReplicationHandle, ReplicationStream
from .signals import HeartbeatTrigger

if TYPE_CHECKING:
    from .raft_core import RaftCore


@final
class LeaderNursery:
    """The leader's tasks in ``nursery``, and the core's handles to them."""

    def __init__(self, nursery: trio.Nursery, core: RaftCore) -> None:
        self._nursery = nursery
        self._core = core
        self._replication: dict[int, ReplicationHandle] = {}
        self._heartbeat_triggers: dict[int, HeartbeatTrigger] = {}
        self._target_scopes: dict[int, tuple[trio.CancelScope, ...]] = {}

    async def start_targets(self, vote: Vote, targets: tuple[int, ...]) -> None:
        """Start ``replication[t]`` and ``heartbeat[t]`` for each target, each pair under a
        cancel scope of its own."""
        core = self._core
        nursery = self._nursery
        for target in targets:
            client = await core.client_for(target)
            scopes = (trio.CancelScope(), trio.CancelScope())
            self._target_scopes[target] = scopes
            handle = ReplicationHandle()
            self._replication[target] = handle
            stream = ReplicationStream(
                target=target,
                vote=vote,
                handle=handle,
                client=client,
                log_store=core.log_store,
                state_machine=core.state_machine,
                config=core.config,
                notify=core.notifier(),
                entry_size=core.entry_size,
                clock=core.clock,
            )
            nursery.start_soon(
                _scoped, scopes[0], stream.run, name=f"openraft_trio.replication[{target}]"
            )
            trigger = HeartbeatTrigger()
            self._heartbeat_triggers[target] = trigger
            nursery.start_soon(
                _scoped,
                scopes[1],
                functools.partial(
                    heartbeat_task,
                    target=target,
                    vote=vote,
                    trigger=trigger,
                    client=client,
                    config=core.config,
                    notify=core.notifier(),
                    runtime_config=core.runtime_config,
                    clock=core.clock,
                ),
                name=f"openraft_trio.heartbeat[{target}]",
            )

    def stop_targets(self, targets: tuple[int, ...]) -> None:
        for target in targets:
            for scope in self._target_scopes.pop(target, ()):
                scope.cancel()
            self._replication.pop(target, None)
            self._heartbeat_triggers.pop(target, None)

    def replicate(
        self,
        target: int,
        epoch: int,
        prev: LogId | None,
        upto: LogId | None,
        committed: LogId | None,
    ) -> None:
        """Hand ``replication[target]`` its latest instruction (nothing if it is gone)."""
        handle = self._replication.get(target)
        if handle is not None:
            handle.update(epoch, prev, upto, committed)

    def trigger_heartbeats(self, read_round: int | None = None) -> None:
        """Make every ``heartbeat[t]`` send now (stamped with ``read_round``, if given)."""
        for trigger in self._heartbeat_triggers.values():
            trigger.trigger(read_round)

    def stop_all(self) -> None:
        """Stop every target's tasks (the node stops leading); the core's own work in the
        nursery's body goes on."""
        self.stop_targets(tuple(self._target_scopes))


async def _scoped(scope: trio.CancelScope, fn: Callable[[], Awaitable[None]]) -> None:
    with scope:
        await fn()
