"""``replication[target]``: streams log entries from the leader to one target.

The Engine decides *what* to send (``Replicate(epoch, prev, upto, committed)``) and judges
every reply; this task only moves bytes. Within an epoch it streams batches of up to
``max_payload_entries`` back to back — the next request leaves as soon as the previous
reply arrives, without a round trip through the core — and reports each reply. A conflict
or a higher vote stops the stream until the Engine starts a new epoch.

A new commit index alone does not make a request at once: it rides on the next batch of
entries, or leaves after ``heartbeat_interval`` if none comes. Followers learn the commit a
little later, and a busy leader saves one follower round per write.
"""

from __future__ import annotations

from typing import Any

import attrs
import trio

from .._config import Config
from .._errors import RPCError, Unreachable
from .._messages import AppendEntriesRequest
from .._types import LogId, Vote
from ..network import RaftNetwork, RPCOption
from .messages import HigherVote, ReplicationConflict, ReplicationProgress
from .signals import Notifier, Wakeup


@attrs.define
class ReplicationHandle:
    """The core's latest instruction to one replication task."""

    epoch: int = 0
    prev: LogId | None = None
    upto: LogId | None = None
    committed: LogId | None = None
    wakeup: Wakeup = attrs.field(factory=Wakeup)

    def update(self, epoch: int, prev: LogId | None, upto: LogId | None, committed: LogId | None) -> None:
        self.epoch, self.prev, self.upto, self.committed = epoch, prev, upto, committed
        self.wakeup.set()


def _index(log_id: LogId | None) -> int:
    return -1 if log_id is None else log_id.index


async def replication_task(
    target: int,
    vote: Vote,
    handle: ReplicationHandle,
    client: RaftNetwork,
    log_store: Any,
    config: Config,
    notify: Notifier,
) -> None:
    epoch = -1
    prev: LogId | None = None
    sent_committed: LogId | None = None
    stalled = False  # waiting for a new epoch after a conflict
    commit_only_deadline: float | None = None  # when a commit-only request must leave
    backoff = config.heartbeat_interval
    option = RPCOption(hard_ttl=config.election_timeout_max)
    while True:
        if handle.epoch != epoch:
            epoch, prev, stalled, sent_committed = handle.epoch, handle.prev, False, None
        upto, committed = handle.upto, handle.committed
        has_entries = _index(upto) > _index(prev)
        commit_news = committed is not None and committed != sent_committed
        if stalled or not (has_entries or commit_news):
            await handle.wakeup.wait()
            continue
        if not has_entries:
            now = trio.current_time()
            if commit_only_deadline is None:
                commit_only_deadline = now + config.heartbeat_interval
            if now < commit_only_deadline:
                with trio.move_on_at(commit_only_deadline):
                    await handle.wakeup.wait()
                continue
        commit_only_deadline = None
        start = _index(prev) + 1
        stop = min(_index(upto) + 1, start + config.max_payload_entries) if has_entries else start
        entries = await log_store.try_get_log_entries(start, stop) if stop > start else []
        req = AppendEntriesRequest(vote, prev, tuple(entries), committed)
        send_time = trio.current_time()
        try:
            resp = await client.append_entries(req, option)
        except RPCError as e:
            # Unreachable backs off longer; other failures retry after a short pause. Never
            # spin: a zero-delay retry would hang a MockClock world.
            delay = backoff if isinstance(e, Unreachable) else config.heartbeat_interval / 2
            backoff = min(backoff * 2, config.election_timeout_max)
            await trio.sleep(delay)
            continue
        backoff = config.heartbeat_interval
        if resp.success:
            prev = entries[-1].log_id if entries else prev
            sent_committed = committed
            await notify.send(ReplicationProgress(target, vote, epoch, resp.matching, send_time))
        elif resp.conflict:
            stalled = True
            hint = resp.conflict_hint if resp.conflict_hint is not None else 0
            await notify.send(ReplicationConflict(target, vote, epoch, prev, hint, send_time))
        else:
            stalled = True
            await notify.send(HigherVote(target, resp.vote))
