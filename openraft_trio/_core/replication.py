"""``replication[target]``: streams log entries from the leader to one target.

The Engine decides *what* to send (``Replicate(epoch, prev, upto, committed)``) and judges
every reply; this task only moves bytes. Within an epoch it streams batches of up to
``max_payload_entries``, **pipelined**: up to ``max_inflight_append_entries`` requests are
on the wire at once, each sent right after the previous one without waiting for its reply
or for the core, and every reply is reported. A batch is also bounded by bytes: it stops
before the entry that would take it over ``max_payload_bytes`` (an entry larger than that
goes alone), so no frame holds a connection, or a follower storing it, for long. A
conflict or a higher vote stops the stream until the Engine starts a new epoch; an RPC
failure resends from the last acknowledged entry after a backoff.

Order: each request is issued from a child task started with ``nursery.start``; the parent
resumes only once the child has run up to its first checkpoint inside
``RaftNetwork.append_entries``. A transport that enqueues the request before its first
checkpoint (the in-process Router without latency; an ordered connection) therefore sees
the requests in order. A reordering network only costs a conflict and a retry.

A new commit index alone does not make a request at once: it rides on the next batch of
entries, or leaves after ``heartbeat_interval`` if none comes. Followers learn the commit a
little later, and a busy leader saves one follower round per write.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import final

import attrs
import trio

from .._config import Config
from .._errors import RPCError, StorageContractViolation, Unreachable
from .._messages import AppendEntriesRequest
from .._types import Entry, LogId, Vote
from ..network import RaftNetwork, RPCOption
from ..storage import RaftLogStorage, RaftStateMachine
from .notifications import HigherVote, ReplicationConflict, ReplicationProgress
from .signals import Notifier, Wakeup


@final
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


@final
class ReplicationStream:
    """``replication[target]``: one leader-to-target stream (see the module docstring)."""

    def __init__(
        self,
        *,
        target: int,
        vote: Vote,
        handle: ReplicationHandle,
        client: RaftNetwork,
        log_store: RaftLogStorage,
        state_machine: RaftStateMachine,
        config: Config,
        notify: Notifier,
        entry_size: Callable[[Entry], int],
        clock: Callable[[], float] = trio.current_time,
    ) -> None:
        self.clock = clock
        self.entry_size = entry_size
        self.state_machine = state_machine
        self.target = target
        self.vote = vote
        self.handle = handle
        self.client = client
        self.log_store = log_store
        self.config = config
        self.notify = notify
        self.option = RPCOption(hard_ttl=config.election_timeout_max)
        self.epoch = -1
        self.sent: LogId | None = None  # last log id sent in this epoch (ahead of acked)
        self.acked: LogId | None = None  # last log id the target acknowledged
        self.sent_committed: LogId | None = None
        self.inflight = 0
        self.stalled = False  # after a conflict or a higher vote: wait for a new epoch
        self.retry_at: float | None = None  # after an RPC failure: resend from acked then
        self.backoff = config.heartbeat_interval
        self.commit_only_deadline: float | None = None
        # When the commit index was last sent, and how often an idle stream repeats it.
        self.commit_sent_at = -math.inf
        self.commit_refresh = config.election_timeout_max
        # How many entries to read for the next batch: max_payload_entries, fewer after a
        # batch was cut by max_payload_bytes (large entries: do not read 300 to send 2).
        self.fetch_count = config.max_payload_entries

    async def run(self) -> None:
        handle, config = self.handle, self.config
        async with trio.open_nursery() as nursery:
            while True:
                if handle.epoch != self.epoch:
                    # In-flight requests of the old epoch finish on their own; their replies
                    # are dropped (they still count against the window).
                    self.epoch, self.sent, self.acked = handle.epoch, handle.prev, handle.prev
                    self.stalled, self.retry_at, self.sent_committed = False, None, None
                if self.retry_at is not None:
                    if trio.current_time() < self.retry_at:
                        with trio.move_on_at(self.retry_at):
                            await handle.wakeup.wait()
                        continue
                    self.retry_at, self.sent = None, self.acked
                upto, committed = handle.upto, handle.committed
                has_entries = _index(upto) > _index(self.sent)
                commit_news = committed is not None and committed != self.sent_committed
                if (
                    self.stalled
                    or not (has_entries or commit_news)
                    or self.inflight >= config.max_inflight_append_entries
                ):
                    if self.stalled or has_entries or committed is None:
                        await handle.wakeup.wait()
                        continue
                    # Idle: re-send the commit index now and then. A follower that restarted
                    # lost its (volatile) commit index, and nothing else would tell it until
                    # the next write. While a request is still out, look again a heartbeat
                    # later (never a deadline already past: that would spin).
                    refresh_at = self.commit_sent_at + self.commit_refresh
                    if self.inflight:
                        refresh_at = max(refresh_at, trio.current_time() + config.heartbeat_interval)
                    with trio.move_on_at(refresh_at) as idle:
                        await handle.wakeup.wait()
                    if idle.cancelled_caught and self.inflight == 0:
                        self.sent_committed = None
                    continue
                if not has_entries and not self._commit_only_due():
                    await self._wait_commit_only()
                    continue
                self.commit_only_deadline = None
                start = _index(self.sent) + 1
                stop = min(_index(upto) + 1, start + self.fetch_count) if has_entries else start
                entries = await self.log_store.try_get_log_entries(start, stop) if stop > start else []
                if stop > start and (not entries or entries[0].index != start):
                    # The entries the target needs next were purged: send the snapshot.
                    await self._send_snapshot()
                    continue
                entries = self._within_byte_budget(entries)
                req = AppendEntriesRequest(self.vote, self.sent, tuple(entries), committed)
                await nursery.start(
                    self._send, req, self.epoch, name=f"openraft_trio.append_entries[{self.target}]"
                )
                if entries:
                    self.sent = entries[-1].log_id
                self.sent_committed = committed
                self.commit_sent_at = trio.current_time()

    def _within_byte_budget(self, entries: list[Entry]) -> list[Entry]:
        """The longest prefix of ``entries`` within ``max_payload_bytes`` (at least one
        entry); adapts how many entries the next batch reads."""
        budget, total, kept = self.config.max_payload_bytes, 0, 0
        entry_size = self.entry_size
        for entry in entries:
            total += entry_size(entry)
            if total > budget and kept:
                break
            kept += 1
        if kept < len(entries):
            self.fetch_count = kept
            return entries[:kept]
        self.fetch_count = min(self.fetch_count * 2, self.config.max_payload_entries)
        return entries

    async def _send_snapshot(self) -> None:
        """Send the state machine's current snapshot (whole; a transport may chunk it by
        ``snapshot_max_chunk_size``), then stream entries after its last log id."""
        snapshot = await self.state_machine.get_current_snapshot()
        if snapshot is None:
            raise StorageContractViolation(
                f"log entries replication[{self.target}] needs were purged, but the state "
                f"machine has no snapshot (purge may drop only entries a snapshot covers)"
            )
        epoch, send_time = self.epoch, self.clock()
        option = RPCOption(hard_ttl=self.config.install_snapshot_timeout)
        try:
            resp = await self.client.full_snapshot(self.vote, snapshot, option)
        except RPCError:
            self.retry_at = trio.current_time() + self.backoff
            self.backoff = min(self.backoff * 2, self.config.election_timeout_max)
            return
        if epoch != self.epoch:
            return
        if resp.vote > self.vote:
            self.stalled = True
            await self.notify.send(HigherVote(self.target, resp.vote))
            return
        last = snapshot.meta.last_log_id
        self.sent = self.acked = last
        await self.notify.send(ReplicationProgress(self.target, self.vote, epoch, last, send_time))

    def _commit_only_due(self) -> bool:
        """A new commit index alone waits up to a heartbeat interval for entries to ride on."""
        now = trio.current_time()
        if self.commit_only_deadline is None:
            self.commit_only_deadline = now + self.config.heartbeat_interval
        return now >= self.commit_only_deadline

    async def _wait_commit_only(self) -> None:
        assert self.commit_only_deadline is not None
        with trio.move_on_at(self.commit_only_deadline):
            await self.handle.wakeup.wait()

    async def _send(
        self,
        req: AppendEntriesRequest,
        epoch: int,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        send_time = self.clock()
        self.inflight += 1
        task_status.started()
        try:
            resp = await self.client.append_entries(req, self.option)
        except RPCError as e:
            if epoch == self.epoch and self.retry_at is None:
                # Unreachable backs off longer; other failures retry after a short pause.
                # Never zero: a zero-delay retry would spin a MockClock world.
                unreachable = isinstance(e, Unreachable)
                delay = self.backoff if unreachable else self.config.heartbeat_interval / 2
                self.backoff = min(self.backoff * 2, self.config.election_timeout_max)
                self.retry_at = trio.current_time() + delay
            return
        finally:
            # Wake the stream only if it may be waiting on us: the window was full, or it
            # must retry. Otherwise it is already waiting for the core's next instruction.
            if self.inflight == self.config.max_inflight_append_entries or self.retry_at:
                self.handle.wakeup.set()
            self.inflight -= 1
        if epoch != self.epoch or self.stalled:
            return
        if resp.success:
            self.backoff = self.config.heartbeat_interval
            last = req.entries[-1].log_id if req.entries else req.prev_log_id
            if _index(last) > _index(self.acked):
                self.acked = last
            await self.notify.send(
                ReplicationProgress(self.target, self.vote, epoch, resp.matching, send_time)
            )
        elif resp.conflict:
            self.stalled = True
            hint = resp.conflict_hint if resp.conflict_hint is not None else 0
            await self.notify.send(
                ReplicationConflict(self.target, self.vote, epoch, req.prev_log_id, hint, send_time)
            )
        else:
            self.stalled = True
            await self.notify.send(HigherVote(self.target, resp.vote))
