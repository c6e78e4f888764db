"""``Wait``: ``await raft.wait(timeout).state(ServerState.LEADER)`` and friends."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, final

import trio

from .._errors import WaitTimeout
from .._metrics import RaftMetrics
from .._types import ServerState

if TYPE_CHECKING:
    from .handle import Raft


@final
class Wait:
    """``await raft.wait(timeout).state(ServerState.LEADER)`` and friends.

    Each waits until the node's metrics satisfy the condition and returns those metrics,
    or raises ``WaitTimeout`` after ``timeout`` seconds.
    """

    def __init__(self, raft: Raft, timeout: float) -> None:
        self._raft = raft
        self._timeout = timeout

    async def metrics(self, predicate: Callable[[RaftMetrics], bool], what: str) -> RaftMetrics:
        with trio.move_on_after(self._timeout):
            result: RaftMetrics = await self._raft._metrics_watch.wait_value(predicate)
            return result
        raise WaitTimeout(
            f"node {self._raft.node_id}: timeout after {self._timeout}s waiting for {what}; "
            f"metrics: {self._raft.metrics}"
        )

    async def current_leader(self, leader_id: int) -> RaftMetrics:
        return await self.metrics(lambda x: x.current_leader == leader_id, f"leader {leader_id}")

    async def state(self, state: ServerState) -> RaftMetrics:
        return await self.metrics(lambda x: x.state == state, f"state {state}")

    async def log_index_at_least(self, index: int) -> RaftMetrics:
        return await self.metrics(
            lambda x: x.last_log_index is not None and x.last_log_index >= index,
            f"log index >= {index}",
        )

    async def applied_index_at_least(self, index: int) -> RaftMetrics:
        return await self.metrics(
            lambda x: x.last_applied is not None and x.last_applied.index >= index,
            f"applied index >= {index}",
        )

    async def voter_ids(self, voter_ids: set[int] | frozenset[int]) -> RaftMetrics:
        want = frozenset(voter_ids)
        return await self.metrics(
            lambda x: x.membership.membership.voter_ids == want, f"voters {sorted(want)}"
        )

    async def snapshot_index_at_least(self, index: int) -> RaftMetrics:
        return await self.metrics(
            lambda x: x.snapshot is not None and x.snapshot.index >= index,
            f"snapshot index >= {index}",
        )
