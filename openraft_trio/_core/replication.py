"""``replication[target]``: streams log entries from the leader to one target.

The Engine decides *what* to send (``Replicate(epoch, prev, upto, committed)``) and judges
every reply. :class:`~openraft_trio._core.replication_session.ReplicationSession` decides
when and how (batches, the pipelining window, retries, commit news, the snapshot fallback;
its docstring has the rules). This task does the I/O the session asks for: it reads
entries, sends requests, sleeps, and reports each reply to the core.

**One task per target, no task per request.** A network that implements
:class:`~openraft_trio.network.PipelinedAppend` takes each request without waiting and
reports its reply through a callback: the callback updates the session and puts the
progress on the core's channel at once, so a reply costs the stream no task step unless it
frees a slot in a full window or schedules a retry. A network with only
``async def append_entries`` goes through an adapter: one child task per request, started
with ``nursery.start`` (it resumes the stream only once the child has run up to its first
checkpoint inside ``append_entries``, so a transport that enqueues the request before that
sees the requests in order). A reordering network only costs a conflict and a retry.

The stream is woken by the core only for a new epoch or new entries; a new commit index
alone rides on the next request (the session's "commit news" rule).
"""

from __future__ import annotations

import functools
import math
from collections import deque
from collections.abc import Callable
from typing import final

import trio

from .. import _events as events
from .._config import Config
from .._errors import RPCError, StorageContractViolation
from .._messages import AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotResponse
from .._types import Entry, LogId, Vote
from ..network import PipelinedAppend, RaftNetwork, RPCOption
from ..storage import RaftLogStorage, RaftStateMachine
from .replication_session import (
    ReadEntries,
    ReplicationNote,
    ReplicationSession,
    SendSnapshot,
    Wait,
)
from .signals import Notifier, Wakeup


@final
class ReplicationHandle:
    """The core's latest instruction to one replication task."""

    __slots__ = ("committed", "epoch", "prev", "upto", "wakeup")

    def __init__(self) -> None:
        self.epoch = 0
        self.prev: LogId | None = None
        self.upto: LogId | None = None
        self.committed: LogId | None = None
        self.wakeup = Wakeup()

    def update(
        self, epoch: int, prev: LogId | None, upto: LogId | None, committed: LogId | None
    ) -> None:
        """Record the instruction; wake the stream for a new epoch or new entries only (a
        commit index alone waits for the stream to look: see the session's rules)."""
        wake = epoch != self.epoch or upto != self.upto or prev != self.prev
        self.epoch, self.prev, self.upto, self.committed = epoch, prev, upto, committed
        if wake:
            self.wakeup.set()


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
        self.state_machine = state_machine
        self.target = target
        self.vote = vote
        self.handle = handle
        self.client = client
        self.send_now = client.send_append_entries if isinstance(client, PipelinedAppend) else None
        self.log_store = log_store
        self.config = config
        self.notify = notify
        self.option = RPCOption(hard_ttl=config.election_timeout_max)
        self.session = ReplicationSession(
            target=target, vote=vote, config=config, entry_size=entry_size
        )
        # Notes a reply callback could not put on the core's (full) channel: the stream
        # sends them, waiting for room.
        self.outbox: deque[ReplicationNote] = deque()
        self.running = False
        # Since when requests to the target fail (None: the last one succeeded), and how
        # many failed since: the ``replication.stalled``/``resumed`` log events.
        self.failing_since: float | None = None
        self.failures = 0

    async def run(self) -> None:
        handle, session = self.handle, self.session
        self.running = True
        try:
            async with trio.open_nursery() as nursery:
                while True:
                    while self.outbox:
                        await self.notify.send(self.outbox.popleft())
                    action = session.next_action(
                        trio.current_time(),
                        epoch=handle.epoch,
                        prev=handle.prev,
                        upto=handle.upto,
                        committed=handle.committed,
                    )
                    if isinstance(action, Wait):
                        if action.until == math.inf:
                            await handle.wakeup.wait()
                        else:
                            with trio.move_on_at(action.until):
                                await handle.wakeup.wait()
                    elif isinstance(action, ReadEntries):
                        await self._send_entries(action, nursery)
                    else:
                        await self._send_snapshot()
        finally:
            self.running = False

    async def _send_entries(self, read: ReadEntries, nursery: trio.Nursery) -> None:
        session, epoch = self.session, self.session.epoch
        if read.stop > read.start:
            entries = await self.log_store.try_get_log_entries(read.start, read.stop)
            if self.handle.epoch != epoch:
                return  # a new epoch started meanwhile: decide again
        else:
            entries = []
        req = session.request_for(read, entries, self.handle.committed, trio.current_time())
        if isinstance(req, SendSnapshot):
            await self._send_snapshot()
            return
        send_time = self.clock()
        if self.send_now is not None and self.send_now(
            req, self.option, functools.partial(self._on_reply, req, epoch, send_time)
        ):
            return
        await nursery.start(
            self._call, req, epoch, send_time, name=f"openraft_trio.append_entries[{self.target}]"
        )

    async def _call(
        self,
        req: AppendEntriesRequest,
        epoch: int,
        send_time: float,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """The adapter for a network without ``send_append_entries``: one child task."""
        task_status.started()
        result: AppendEntriesResponse | RPCError
        try:
            result = await self.client.append_entries(req, self.option)
        except RPCError as e:
            result = e
        self._on_reply(req, epoch, send_time, result)

    def _on_reply(
        self,
        req: AppendEntriesRequest,
        epoch: int,
        send_time: float,
        result: AppendEntriesResponse | RPCError,
    ) -> None:
        """A reply (or failure) of ``req``: update the session, tell the core, and wake the
        stream only if the session needs it. Runs in whichever task delivered the reply."""
        if not self.running:
            return  # the stream stopped (leadership lost): nobody waits for this
        if self.failing_since is not None or isinstance(result, RPCError):
            self._track_failures(result)
        note, wake = self.session.on_reply(req, epoch, result, trio.current_time(), send_time)
        if note is not None and (self.outbox or not self.notify.try_send(note)):
            self.outbox.append(note)
            wake = True
        if wake:
            self.handle.wakeup.set()

    async def _send_snapshot(self) -> None:
        """Send the state machine's current snapshot (whole; a transport may chunk it by
        ``snapshot_max_chunk_size``), then stream entries after its last log id."""
        snapshot = await self.state_machine.get_current_snapshot()
        if snapshot is None:
            raise StorageContractViolation(
                f"log entries replication[{self.target}] needs were purged, but the state "
                f"machine has no snapshot (purge may drop only entries a snapshot covers)"
            )
        session = self.session
        epoch, send_time = session.epoch, self.clock()
        option = RPCOption(hard_ttl=self.config.install_snapshot_timeout)
        result: InstallSnapshotResponse | RPCError
        try:
            result = await self.client.full_snapshot(self.vote, snapshot, option)
        except RPCError as e:
            result = e
        self._track_failures(result)
        note = session.on_snapshot_reply(
            epoch, result, snapshot.meta.last_log_id, trio.current_time(), send_time
        )
        if note is not None:
            await self.notify.send(note)

    def _track_failures(self, result: object) -> None:
        """Log ``replication.stalled`` at the first failed request after a success, and
        ``replication.resumed`` at the first success after failures."""
        if isinstance(result, RPCError):
            self.failures += 1
            if self.failing_since is None:
                self.failing_since = trio.current_time()
                events.emit(
                    events.REPLICATION_STALLED,
                    "node {node_id}: replication to node {target} stalled (term {term}): "
                    "{error_type}: {error}",
                    node_id=self.vote.leader_id.node_id,
                    term=self.vote.term,
                    target=self.target,
                    error_type=type(result).__name__,
                    error=str(result),
                )
        elif self.failing_since is not None:
            events.emit(
                events.REPLICATION_RESUMED,
                "node {node_id}: replication to node {target} resumed after {stalled_for:.3f}s "
                "and {failures} failed requests (term {term})",
                node_id=self.vote.leader_id.node_id,
                term=self.vote.term,
                target=self.target,
                stalled_for=trio.current_time() - self.failing_since,
                failures=self.failures,
            )
            self.failing_since, self.failures = None, 0
