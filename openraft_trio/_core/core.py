"""RaftCore: the one task that owns the Engine and the log store.

Loop: take every message waiting (API calls and worker notifications, drained with
``receive_nowait``, API calls bounded per round so they cannot starve notifications), feed
them to the Engine, run the Commands it emits in order, publish metrics, repeat. The core
never decides protocol questions and never blocks on a worker.

While this node leads, the core's leader nursery holds ``replication[t]`` and
``heartbeat[t]`` for every target. Losing leadership cancels that nursery, and the core
waits for every task in it to finish before it takes its next message.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from .._config import Config
from .._engine import Engine, IOId
from .._engine import commands as cmd
from .._errors import ForwardToLeader, RaftError, StorageError
from .._messages import VoteRequest, VoteResponse
from .._metrics import RaftMetrics, ReplicationStatus
from .._types import LogId, Normal, ServerState
from ..network import RaftNetwork, RPCOption
from . import messages as m
from .heartbeat import heartbeat_task
from .replication import ReplicationHandle, ReplicationStream
from .signals import Wakeup
from .sm_worker import ApplyHandle

_log = logging.getLogger("openraft_trio")


class RaftCore:
    def __init__(
        self,
        engine: Engine,
        config: Config,
        *,
        network: Any,
        log_store: Any,
        runtime_config: Any,
        metrics_watch: Any,
        api_rx: trio.MemoryReceiveChannel[Any],
        notify_tx: trio.MemorySendChannel[Any],
        notify_rx: trio.MemoryReceiveChannel[Any],
        apply_handle: ApplyHandle,
        clock: Callable[[], float] = trio.current_time,
        observer: Callable[[RaftCore], None] | None = None,
        state_machine: Any = None,
    ) -> None:
        self.engine = engine
        self.state_machine = state_machine
        # Called after every core round (the simulator checks invariants there).
        self.observer = observer
        # The node's clock for protocol time (leases, elections). trio's clock by default;
        # the simulator gives each node a skewed one.
        self.clock = clock
        # When the engine next needs a Tick (node-clock time); the ticker sleeps until then.
        self.next_deadline = math.inf
        self.deadline_moved_earlier = Wakeup()
        self.id = engine.id
        self.config = config
        self.network = network
        self.log_store = log_store
        self.runtime_config = runtime_config
        self.metrics_watch = metrics_watch
        self.api_rx = api_rx
        self.notify_tx = notify_tx
        self.notify_rx = notify_rx
        self.apply_handle = apply_handle
        self.wakeup = trio.Event()
        self.waiting = False
        self.flushed: deque[IOId] = deque()
        self.io_error: BaseException | None = None
        # Client writes waiting to be applied; the sm_worker answers them.
        self.pending_writes = apply_handle.pending
        self.clients: dict[int, RaftNetwork] = {}
        self.replication: dict[int, ReplicationHandle] = {}
        self.heartbeat_triggers: dict[int, Any] = {}
        self.target_scopes: dict[int, tuple[trio.CancelScope, ...]] = {}
        self.leader_nursery: trio.Nursery | None = None
        self.rpc_nursery: trio.Nursery | None = None
        self.quit_leader = False
        self.pending_committed: LogId | None = None
        self.last_metrics: RaftMetrics | None = None
        self._metrics_key: tuple[Any, ...] | None = None
        self._tick_seen = False

    # -- wakeups -------------------------------------------------------------------------------

    def wake(self) -> None:
        """Called by senders after they put a message on a channel (sync, cheap)."""
        if self.waiting:
            self.wakeup.set()

    def _on_log_flushed(self, io: IOId, err: BaseException | None) -> None:
        if err is not None:
            self.io_error = err
        else:
            self.flushed.append(io)
        self.wake()

    # -- main loop -----------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            async with trio.open_nursery() as rpc_nursery:
                self.rpc_nursery = rpc_nursery
                await self._run_commands()
                self._publish_metrics()
                while True:
                    async with trio.open_nursery() as leader_nursery:
                        self.leader_nursery = leader_nursery
                        self.quit_leader = False
                        await self._loop()
                        leader_nursery.cancel_scope.cancel()
                    self.leader_nursery = None
                    self.replication.clear()
                    self.heartbeat_triggers.clear()
                    self.target_scopes.clear()
                    self._publish_metrics()
        finally:
            with trio.CancelScope(shield=True):
                for client in self.clients.values():
                    await client.aclose()

    async def _loop(self) -> None:
        """Run rounds until this node stops leading (then the leader nursery is torn down)."""
        api_batch = self.config.api_batch_size
        while not self.quit_leader:
            notes: list[Any] = []
            while True:
                try:
                    notes.append(self.notify_rx.receive_nowait())
                except trio.WouldBlock:
                    break
            calls: list[Any] = []
            while len(calls) < api_batch:
                try:
                    calls.append(self.api_rx.receive_nowait())
                except trio.WouldBlock:
                    break
            if not notes and not calls and not self.flushed and self.io_error is None:
                self.waiting = True
                await self.wakeup.wait()
                self.wakeup = trio.Event()
                self.waiting = False
                continue
            self.engine.now = self.clock()
            for note in notes:
                self._handle_notification(note)
            self._drain_flushed()
            self._handle_calls(calls)
            await self._run_commands()
            self._publish_metrics(force=self._tick_seen)
            self._tick_seen = False
            self._update_deadline()
            if self.observer is not None:
                self.observer(self)
            # No checkpoint here: when the round produced nothing new (no other task ran),
            # the next pass finds the channels empty and waits, which yields.

    def _update_deadline(self) -> None:
        deadline = self.engine.next_deadline()
        if deadline < self.next_deadline:
            self.deadline_moved_earlier.set()
        self.next_deadline = deadline

    def _drain_flushed(self) -> None:
        if self.io_error is not None:
            raise StorageError(f"log write failed: {self.io_error!r}") from self.io_error
        while self.flushed:
            self.engine.on_io_flushed(self.flushed.popleft())

    # -- inputs --------------------------------------------------------------------------------

    def _handle_notification(self, note: Any) -> None:
        eng = self.engine
        if isinstance(note, m.ReplicationProgress):
            eng.handle_replication_progress(
                note.target, note.vote, note.epoch, note.matching, note.send_time
            )
        elif isinstance(note, m.HeartbeatAck):
            eng.handle_heartbeat_ack(
                note.target, note.vote, note.send_time, note.resp_vote, note.read_round
            )
        elif isinstance(note, m.Applied):
            self.engine.on_applied(note.upto)
        elif isinstance(note, m.Tick):
            self._tick()
        elif isinstance(note, m.VoteResult):
            eng.handle_vote_resp(note.target, note.req, note.resp)
        elif isinstance(note, m.ReplicationConflict):
            eng.handle_replication_conflict(
                note.target, note.vote, note.epoch, note.prev, note.hint, note.send_time
            )
        elif isinstance(note, m.SnapshotBuilt):
            eng.on_snapshot_built(note.meta)
        elif isinstance(note, m.SnapshotInstalled):
            eng.on_snapshot_installed(note.meta)
        elif isinstance(note, m.HigherVote):
            eng.handle_higher_vote(note.vote)
        elif isinstance(note, m.WorkerFailed):
            raise note.error
        else:  # pragma: no cover - a bug in this module
            raise TypeError(f"unknown notification {note!r}")

    def _tick(self) -> None:
        self._tick_seen = True
        eng = self.engine
        eng.elect_enabled = self.runtime_config.elect
        if self.runtime_config.tick:
            eng.tick(eng.now)

    def _handle_calls(self, calls: list[Any]) -> None:
        eng = self.engine
        writes: list[Any] = []
        responders: list[m.Responder] = []
        for call in calls:
            if isinstance(call, m.ClientWrite):
                writes.extend(call.items)
                responders.extend(call.responders)
                continue
            if writes:
                self._client_write(writes, responders)
                writes, responders = [], []
            if isinstance(call, m.InboundAppendEntries):
                eng.handle_append_entries(call.req, call.responder)
            elif isinstance(call, m.InboundVote):
                resp = eng.handle_vote_req(call.req)
                eng.respond(call.responder, resp)
            elif isinstance(call, m.EnsureLinearizable):
                eng.ensure_linearizable(call.policy, call.responder)
            elif isinstance(call, m.Initialize):
                try:
                    eng.initialize(call.membership)
                except RaftError as e:
                    call.responder.send(e)
                else:
                    eng.respond(call.responder, None)
            elif isinstance(call, m.AddLearner):
                eng.add_learner(call.node_id, call.node, call.responder)
            elif isinstance(call, m.ChangeMembership):
                eng.change_membership(call.voter_ids, call.retain, call.responder)
            elif isinstance(call, m.Query):
                call.responder.send(call.fn(self))
            elif isinstance(call, m.TriggerElect):
                eng.elect()
            elif isinstance(call, m.InboundInstallSnapshot):
                eng.handle_install_snapshot(call.vote, call.snapshot, call.responder)
            elif isinstance(call, m.TriggerSnapshot):
                eng.maybe_build_snapshot(force=True)
            elif isinstance(call, m.TriggerPurge):
                eng.purge_log(call.upto)
            elif isinstance(call, m.TriggerTransferLeader):
                eng.transfer_leader(call.to)
            elif isinstance(call, m.InboundTransferLeader):
                eng.handle_transfer_leader(call.req)
                eng.respond(call.responder, None)
            elif isinstance(call, m.TriggerHeartbeat):
                for trigger in self.heartbeat_triggers.values():
                    trigger.set()
            else:  # pragma: no cover
                raise TypeError(f"unknown call {call!r}")
        if writes:
            self._client_write(writes, responders)

    def _client_write(self, items: list[Any], responders: list[m.Responder]) -> None:
        try:
            log_ids = self.engine.client_write([Normal(d) for d in items])
        except ForwardToLeader as e:
            for r in responders:
                r.send(e)
            return
        pending = self.pending_writes
        for log_id, r in zip(log_ids, responders, strict=True):
            pending[log_id.index] = (log_id, r)

    # -- commands ------------------------------------------------------------------------------

    async def _run_commands(self) -> None:
        eng = self.engine
        out = eng.output
        while out:
            c = out.popleft()
            if isinstance(c, cmd.Respond):
                c.responder.send(c.value)
            elif isinstance(c, cmd.AppendEntries):
                io = IOId(c.vote, c.entries[-1].log_id)
                await self.log_store.append(
                    c.entries, lambda err, io=io: self._on_log_flushed(io, err)
                )
                self._drain_flushed()
            elif isinstance(c, cmd.Replicate):
                handle = self.replication.get(c.target)
                if handle is not None:
                    handle.update(c.epoch, c.prev, c.upto, c.committed)
            elif isinstance(c, cmd.Apply):
                self.apply_handle.apply_upto(c.upto)
            elif isinstance(c, cmd.SaveCommitted):
                self.pending_committed = c.committed
            elif isinstance(c, cmd.SaveVote):
                await self.log_store.save_vote(c.vote)
            elif isinstance(c, cmd.TruncateLog):
                await self.log_store.truncate_after(c.after)
            elif isinstance(c, cmd.BuildSnapshot):
                self.apply_handle.request_build()
            elif isinstance(c, cmd.InstallSnapshot):
                self.apply_handle.request_install(c.snapshot)
            elif isinstance(c, cmd.PurgeLog):
                await self.log_store.purge(c.upto)
            elif isinstance(c, cmd.SendTransferLeader):
                assert self.rpc_nursery is not None
                self.rpc_nursery.start_soon(
                    self._transfer_rpc, c.req, name=f"openraft_trio.transfer[{c.req.to_node_id}]"
                )
            elif isinstance(c, cmd.SendVote):
                for target in c.targets:
                    self._send_vote(target, c.req)
            elif isinstance(c, cmd.SendHeartbeat):
                for trigger in self.heartbeat_triggers.values():
                    trigger.trigger(c.read_round)
            elif isinstance(c, cmd.BecomeLeader | cmd.AddReplicationTargets):
                await self._start_targets(c.vote, c.targets)
            elif isinstance(c, cmd.RemoveReplicationTargets):
                self._stop_targets(c.targets)
            elif isinstance(c, cmd.RespondWhenApplied):
                self.pending_writes[c.log_id.index] = (c.log_id, c.responder)
            elif isinstance(c, cmd.QuitLeader):
                self._quit_leader(c.leader_id, c.committed)
            elif isinstance(c, cmd.ReportLogReversion):
                self._report_log_reversion(c)
            else:  # pragma: no cover
                raise TypeError(f"unknown command {c!r}")
        if self.pending_committed is not None:
            committed, self.pending_committed = self.pending_committed, None
            await self.log_store.save_committed(committed)

    async def _client_for(self, target: int) -> RaftNetwork:
        client = self.clients.get(target)
        if client is None:
            node = self.engine.membership.membership.nodes.get(target)
            client = await self.network.new_client(target, node)
            self.clients[target] = client
        return client

    def _send_vote(self, target: int, req: VoteRequest) -> None:
        assert self.rpc_nursery is not None
        self.rpc_nursery.start_soon(
            self._vote_rpc, target, req, name=f"openraft_trio.vote[{target}]"
        )

    async def _vote_rpc(self, target: int, req: VoteRequest) -> None:
        from .._errors import RPCError

        client = await self._client_for(target)
        try:
            resp: VoteResponse = await client.vote(
                req, RPCOption(hard_ttl=self.config.election_timeout_min)
            )
        except RPCError:
            return
        await self.notify_tx.send(m.VoteResult(target, req, resp))
        self.wake()

    async def _transfer_rpc(self, req: Any) -> None:
        from .._errors import RPCError

        client = await self._client_for(req.to_node_id)
        # A lost request only delays the handover; the leader gives up at its deadline.
        with contextlib.suppress(RPCError):
            await client.transfer_leader(req, RPCOption(hard_ttl=self.config.election_timeout_min))

    async def _start_targets(self, vote: Any, targets: tuple[int, ...]) -> None:
        """Start ``replication[t]`` and ``heartbeat[t]`` for each target, in the leader
        nursery, each pair under a cancel scope of its own (membership changes stop only
        the targets they remove)."""
        from .signals import HeartbeatTrigger

        nursery = self.leader_nursery
        assert nursery is not None
        for target in targets:
            client = await self._client_for(target)
            scopes = (trio.CancelScope(), trio.CancelScope())
            self.target_scopes[target] = scopes
            handle = ReplicationHandle()
            self.replication[target] = handle
            stream = ReplicationStream(
                target, vote, handle, client, self.log_store, self.config, self._notifier(),
                self.clock, self.state_machine,
            )
            nursery.start_soon(
                _scoped, scopes[0], stream.run, name=f"openraft_trio.replication[{target}]"
            )
            trigger = HeartbeatTrigger()
            self.heartbeat_triggers[target] = trigger
            nursery.start_soon(
                _scoped,
                scopes[1],
                functools.partial(
                    heartbeat_task,
                    target, vote, trigger, client, self.config, self._notifier(),
                    self.runtime_config, self.clock,
                ),
                name=f"openraft_trio.heartbeat[{target}]",
            )

    def _stop_targets(self, targets: tuple[int, ...]) -> None:
        for target in targets:
            for scope in self.target_scopes.pop(target, ()):
                scope.cancel()
            self.replication.pop(target, None)
            self.heartbeat_triggers.pop(target, None)

    def _notifier(self) -> _WakingSender:
        return _WakingSender(self)

    def _quit_leader(self, leader_id: int | None, committed: LogId | None) -> None:
        """Tear down the leader nursery. Writes up to ``committed`` stay pending: the
        sm_worker answers them with their success once applied. The rest may or may not
        be committed by the next leader: they fail as ``maybe_committed``."""
        if self.leader_nursery is not None:
            self.leader_nursery.cancel_scope.cancel()
        self.quit_leader = True
        node = self.engine.node_of(leader_id)
        pending = self.pending_writes
        upto = -1 if committed is None else committed.index
        for index in [i for i in pending if i > upto]:
            log_id, r = pending.pop(index)
            r.send(ForwardToLeader(leader_id, node, maybe_committed=True, log_id=log_id))

    def _report_log_reversion(self, c: cmd.ReportLogReversion) -> None:
        what = (
            f"node {self.id}: log reversion on node {c.target}: it had acknowledged our log "
            f"up to {c.lost_matching} but now needs entries from index {c.reverted_to} "
            f"(its storage was wiped or restored from an older copy)"
        )
        if c.allowed:
            _log.warning("%s; allow_log_reversion is on: replicating its log again", what)
        else:
            _log.error(
                "%s; replication to it is halted and it no longer counts toward the commit "
                "quorum (set Config.allow_log_reversion to replicate it again; see the "
                "guide, 'Log reversion')",
                what,
            )

    # -- metrics -------------------------------------------------------------------------------

    def _publish_metrics(self, force: bool = False) -> None:
        """Publish new metrics if anything they show changed (cheap check first: this runs
        after every round). ``millis_since_quorum_ack`` alone refreshes on ticks only."""
        eng = self.engine
        leader = eng.leader
        # The engine replaces these immutable values when they change, so comparing by
        # identity is exact enough (at worst a spurious publish) and much cheaper.
        key: tuple[Any, ...] = (
            eng.vote,
            eng.server_state,
            eng.current_leader,
            eng.log_ids.last,
            eng.committed,
            eng.last_applied,
            eng.flushed,
            eng.membership.effective,
            eng.snapshot_last_log_id,
            eng.log_ids.purged,
        )
        if leader is not None:
            for p in leader.progress.values():
                key += (p.matching, p.log_reversions, p.halted)
        old = self._metrics_key
        if (
            not force
            and old is not None
            and len(old) == len(key)
            and all(a is b for a, b in zip(old, key, strict=True))
        ):
            return
        self._metrics_key = key
        if leader is not None:
            qt = eng.quorum_ack_time()
            since = None if qt == -math.inf else max(0.0, (eng.now - qt) * 1000.0)
            progress = sorted(leader.progress.items())
            replication: dict[int, LogId | None] | None = {t: p.matching for t, p in progress}
            status: dict[int, ReplicationStatus] | None = {
                t: ReplicationStatus(p.matching, p.log_reversions, p.reverted_to, p.halted)
                for t, p in progress
            }
        else:
            since, replication, status = None, None, None
        last = eng.log_ids.last
        metrics = RaftMetrics(
            id=eng.id,
            current_term=eng.vote.term,
            vote=eng.vote,
            state=eng.server_state,
            current_leader=eng.current_leader,
            last_log_index=None if last is None else last.index,
            committed=eng.committed,
            last_applied=eng.last_applied,
            snapshot=eng.snapshot_last_log_id,
            purged=eng.log_ids.purged,
            membership=eng.membership.effective,
            millis_since_quorum_ack=since,
            replication=replication,
            replication_status=status,
            last_log_id=last,
            flushed=None if eng.flushed is None else eng.flushed.log_id,
        )
        self.last_metrics = metrics
        self.metrics_watch.value = metrics

    def publish_shutdown(self) -> None:
        if self.last_metrics is not None:
            import attrs

            self.metrics_watch.value = attrs.evolve(
                self.last_metrics,
                state=ServerState.SHUTDOWN,
                current_leader=None,
                replication=None,
                replication_status=None,
            )


async def _scoped(scope: trio.CancelScope, fn: Callable[[], Awaitable[None]]) -> None:
    with scope:
        await fn()


class _WakingSender:
    """A worker's send side of the notification channel that also wakes the core."""

    __slots__ = ("_core",)

    def __init__(self, core: RaftCore) -> None:
        self._core = core

    async def send(self, value: Any) -> None:
        core = self._core
        try:
            core.notify_tx.send_nowait(value)
        except trio.WouldBlock:
            await core.notify_tx.send(value)  # a full channel is backpressure
        core.wake()
