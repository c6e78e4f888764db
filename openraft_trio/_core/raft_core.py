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
import math
from collections import deque
from collections.abc import Callable
from typing import Any, assert_never, final

import attrs
import trio
import trio_util

from .. import _events as events
from .._config import Config
from .._engine import Engine, IOId, commands
from .._errors import ForwardToLeader, RaftError, RPCError, StorageError, copy_for_caller
from .._messages import TransferLeaderRequest, VoteRequest, VoteResponse
from .._metrics import RaftMetrics, ReplicationStatus
from .._statistics import LatencyHistogram, RaftStatistics, TransportStatistics
from .._types import Entry, LogId, Normal, ServerState, index_of
from ..network import RaftNetwork, RaftNetworkFactory, RPCOption
from ..storage import RaftLogStorage, RaftStateMachine
from .api_calls import (
    AddLearner,
    ApiCall,
    ChangeMembership,
    ClientWrite,
    EnsureLinearizable,
    InboundAppendEntries,
    InboundInstallSnapshot,
    InboundTransferLeader,
    InboundVote,
    Initialize,
    Query,
    RemoveLearner,
    Responder,
    TriggerElect,
    TriggerHeartbeat,
    TriggerPurge,
    TriggerSnapshot,
    TriggerTransferLeader,
)
from .leader_nursery import LeaderNursery
from .notifications import (
    Applied,
    HeartbeatAck,
    HigherVote,
    Notification,
    ReplicationConflict,
    ReplicationProgress,
    SnapshotBuilt,
    SnapshotInstalled,
    Tick,
    VoteResult,
)
from .runtime_config import RuntimeConfig
from .signals import Wakeup
from .sm_worker import ApplyHandle
from .state_events import StateEvents


@final
class RaftCore:
    """``openraft_trio.raft_core``: the node's event loop (see the module docstring)."""

    def __init__(
        self,
        *,
        engine: Engine,
        config: Config,
        network: RaftNetworkFactory,
        log_store: RaftLogStorage,
        state_machine: RaftStateMachine,
        runtime_config: RuntimeConfig,
        metrics_watch: trio_util.AsyncValue[RaftMetrics],
        api_rx: trio.MemoryReceiveChannel[ApiCall],
        notify_tx: trio.MemorySendChannel[Notification],
        notify_rx: trio.MemoryReceiveChannel[Notification],
        apply_handle: ApplyHandle,
        entry_size: Callable[[Entry], int],
        clock: Callable[[], float] = trio.current_time,
        observer: Callable[[RaftCore], None] | None = None,
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
        # An entry's encoded size, for replication's byte budget (the codec's, given by
        # open_raft: the runtime does not import the codec).
        self.entry_size = entry_size
        self.wakeup = trio.Event()
        self.waiting = False
        self.flushed: deque[IOId] = deque()
        self.io_error: BaseException | None = None
        # The reply slots of client writes not yet handed to the sm_worker, in log order:
        # ``Apply(upto)`` hands over those up to ``upto``; the worker answers them.
        self.replies: deque[tuple[LogId, Responder]] = deque()
        self.clients: dict[int, RaftNetwork] = {}
        # replication[t] and heartbeat[t], while the core loop runs (see run()).
        self.leader_nursery: LeaderNursery | None = None
        self.rpc_nursery: trio.Nursery | None = None
        self.quit_leader = False
        self.pending_committed: LogId | None = None
        self.last_metrics: RaftMetrics | None = None
        self._metrics_key: tuple[Any, ...] | None = None
        self._progress_key: tuple[Any, ...] = ()
        # The leader's replication views of the metrics, rebuilt only when progress changed
        # (published metrics share them: they are never mutated).
        self._replication_views: (
            tuple[dict[int, LogId | None], dict[int, ReplicationStatus]] | None
        ) = None
        self._tick_seen = False
        # Log events of role, term, leader and membership changes (see state_events.py).
        self._state_events = StateEvents(engine)
        # Client writes accepted and not yet committed, one ``(first index, last index,
        # accepted at)`` per batch, for the commit latency histogram.
        self._accepted: deque[tuple[int, int, float]] = deque()
        self.commit_latency = LatencyHistogram()

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
                    async with trio.open_nursery() as nursery:
                        self.leader_nursery = LeaderNursery(nursery, self)
                        self.quit_leader = False
                        await self._loop()
                        nursery.cancel_scope.cancel()
                    self.leader_nursery = None
                    self._publish_metrics()
        finally:
            with trio.CancelScope(shield=True):
                for client in self.clients.values():
                    await client.aclose()

    async def _loop(self) -> None:
        """Run rounds until this node stops leading (then the leader nursery is torn down)."""
        api_batch = self.config.api_batch_size
        while not self.quit_leader:
            notes: list[Notification] = []
            while True:
                try:
                    notes.append(self.notify_rx.receive_nowait())
                except trio.WouldBlock:
                    break
            calls: list[ApiCall] = []
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

    def _handle_notification(self, note: Notification) -> None:
        engine = self.engine
        match note:
            case ReplicationProgress():
                engine.handle_replication_progress(
                    note.target, note.vote, note.epoch, note.matching, note.send_time
                )
            case HeartbeatAck():
                engine.handle_heartbeat_ack(
                    note.target, note.vote, note.send_time, note.resp_vote, note.read_round
                )
            case Applied():
                engine.on_applied(note.upto)
            case Tick():
                self._tick()
            case VoteResult():
                engine.handle_vote_resp(note.target, note.req, note.resp)
            case ReplicationConflict():
                engine.handle_replication_conflict(
                    note.target, note.vote, note.epoch, note.prev, note.hint, note.send_time
                )
            case SnapshotBuilt():
                engine.on_snapshot_built(note.meta, note.size)
                self._snapshot_event(events.SNAPSHOT_BUILT, note.meta.last_log_id, note.size)
            case SnapshotInstalled():
                before = engine.io.snapshot
                engine.on_snapshot_installed(note.meta, note.size)
                if engine.io.snapshot != before:  # not an older one, ignored
                    self._snapshot_event(
                        events.SNAPSHOT_INSTALLED, note.meta.last_log_id, note.size
                    )
            case HigherVote():
                engine.handle_higher_vote(note.vote)
            case _:
                assert_never(note)

    def _tick(self) -> None:
        self._tick_seen = True
        engine = self.engine
        engine.elect_enabled = self.runtime_config.elect
        if self.runtime_config.tick:
            engine.tick(engine.now)

    def _handle_calls(self, calls: list[ApiCall]) -> None:
        engine = self.engine
        writes: list[Normal] = []
        responders: list[Responder] = []
        for call in calls:
            # Consecutive writes go to the engine as one batch.
            if isinstance(call, ClientWrite):
                writes.extend(call.items)
                responders.extend(call.responders)
                continue
            if writes:
                self._client_write(writes, responders)
                writes, responders = [], []
            match call:
                case InboundAppendEntries():
                    engine.handle_append_entries(call.req, call.responder)
                case InboundVote():
                    resp = engine.handle_vote_req(call.req)
                    engine.respond(call.responder, resp)
                case EnsureLinearizable():
                    engine.ensure_linearizable(call.policy, call.responder)
                case Initialize():
                    try:
                        engine.initialize(call.membership)
                    except RaftError as e:
                        call.responder.send(e)
                    else:
                        engine.respond(call.responder, None)
                case AddLearner():
                    engine.add_learner(call.node_id, call.node, call.responder)
                case ChangeMembership():
                    engine.change_membership(call.voter_ids, call.retain, call.responder)
                case RemoveLearner():
                    engine.remove_learner(call.node_id, call.responder)
                case Query():
                    call.responder.send(call.fn(self))
                case TriggerElect():
                    engine.elect()
                case InboundInstallSnapshot():
                    engine.handle_install_snapshot(call.vote, call.snapshot, call.responder)
                case TriggerSnapshot():
                    engine.maybe_build_snapshot(force=True)
                case TriggerPurge():
                    engine.purge_log(call.upto)
                case TriggerTransferLeader():
                    engine.transfer_leader(call.to, call.responder)
                case InboundTransferLeader():
                    engine.handle_transfer_leader(call.req)
                    engine.respond(call.responder, None)
                case TriggerHeartbeat():
                    if self.leader_nursery is not None:
                        self.leader_nursery.trigger_heartbeats()
                case _:
                    assert_never(call)
        if writes:
            self._client_write(writes, responders)

    def _client_write(self, items: list[Normal], responders: list[Responder]) -> None:
        try:
            log_ids = self.engine.client_write(items)  # Normal payloads, encoded by the handle
        except ForwardToLeader as e:
            # One refusal for many callers (a batch): each raises its own copy.
            shared = len(responders) > 1
            for responder in responders:
                responder.send(copy_for_caller(e) if shared else e)
            return
        self.replies.extend(zip(log_ids, responders, strict=True))
        self._accepted.append((log_ids[0].index, log_ids[-1].index, self.engine.now))

    # -- commands ------------------------------------------------------------------------------

    async def _run_commands(self) -> None:
        """Run the Engine's commands in order, until it emits no more (running one, e.g. a
        log append that is flushed at once, may release more)."""
        engine = self.engine
        while output := engine.take_output():
            for command in output:
                await self._run_command(command)
        if self.pending_committed is not None:
            committed, self.pending_committed = self.pending_committed, None
            await self.log_store.save_committed(committed)

    async def _run_command(self, command: commands.Command) -> None:
        match command:
            case commands.Respond():
                command.responder.send(command.value)
            case commands.AppendEntries():
                io = IOId(command.vote, command.entries[-1].log_id)
                await self.log_store.append(
                    command.entries, functools.partial(self._on_log_flushed, io)
                )
                self._drain_flushed()
            case commands.Replicate():
                if self.leader_nursery is not None:
                    self.leader_nursery.replicate(
                        command.target, command.epoch, command.prev, command.upto, command.committed
                    )
            case commands.Apply():
                upto = command.upto
                if self._accepted:
                    self._observe_commit(upto.index)
                self.apply_handle.commit_marks.append((upto.index, self.engine.now))
                self.apply_handle.apply_upto(upto, self._take_replies(upto.index))
            case commands.SaveCommitted():
                self.pending_committed = command.committed
            case commands.SaveVote():
                await self.log_store.save_vote(command.vote)
            case commands.TruncateLog():
                await self.log_store.truncate_after(command.after)
                after = command.after
                events.emit(
                    events.LOG_TRUNCATED,
                    "node {node_id}: log truncated after index {after} (term {term}, leader "
                    "{leader})",
                    node_id=self.id,
                    term=self.engine.vote.term,
                    after=None if after is None else after.index,
                    leader=self.engine.current_leader,
                )
            case commands.BuildSnapshot():
                self.apply_handle.request_build()
            case commands.InstallSnapshot():
                self.apply_handle.request_install(command.snapshot)
            case commands.PurgeLog():
                await self.log_store.purge(command.upto)
                events.emit(
                    events.LOG_PURGED,
                    "node {node_id}: log purged up to index {upto}",
                    node_id=self.id,
                    upto=command.upto.index,
                )
            case commands.SendTransferLeader():
                assert self.rpc_nursery is not None
                self.rpc_nursery.start_soon(
                    self._transfer_rpc,
                    command.req,
                    name=f"openraft_trio.transfer[{command.req.to_node_id}]",
                )
            case commands.SendVote():
                for target in command.targets:
                    self._send_vote(target, command.req)
            case commands.SendHeartbeat():
                if self.leader_nursery is not None:
                    self.leader_nursery.trigger_heartbeats(command.read_round)
            case commands.BecomeLeader():
                assert self.leader_nursery is not None
                # Leading again in the round it stepped down in (a single voter): the old
                # term's tasks are stopped already, the nursery serves the new term.
                self.quit_leader = False
                await self.leader_nursery.start_targets(command.vote, command.targets)
            case commands.AddReplicationTargets():
                assert self.leader_nursery is not None
                await self.leader_nursery.start_targets(command.vote, command.targets)
            case commands.RemoveReplicationTargets():
                if self.leader_nursery is not None:
                    self.leader_nursery.stop_targets(command.targets)
            case commands.RespondWhenApplied():
                self.replies.append((command.log_id, command.responder))
            case commands.QuitLeader():
                self._quit_leader(command.leader_id, command.committed)
            case commands.ReportLogReversion():
                self._report_log_reversion(command)
            case _:  # pragma: no cover - a command this runtime does not know: a bug
                # (``Command`` is an open base class, so mypy cannot prove this exhaustive).
                raise TypeError(f"unknown command {command!r}")

    async def client_for(self, target: int) -> RaftNetwork:
        client = self.clients.get(target)
        if client is None:
            client = await self.network.new_client(target, self.engine.node_of(target))
            self.clients[target] = client
        return client

    def _send_vote(self, target: int, req: VoteRequest) -> None:
        assert self.rpc_nursery is not None
        self.rpc_nursery.start_soon(
            self._vote_rpc, target, req, name=f"openraft_trio.vote[{target}]"
        )

    async def _vote_rpc(self, target: int, req: VoteRequest) -> None:
        client = await self.client_for(target)
        try:
            resp: VoteResponse = await client.vote(
                req, RPCOption(hard_ttl=self.config.election_timeout_min)
            )
        except RPCError:
            return
        await self.notify_tx.send(VoteResult(target, req, resp))
        self.wake()

    async def _transfer_rpc(self, req: TransferLeaderRequest) -> None:
        client = await self.client_for(req.to_node_id)
        # A lost request only delays the handover; the leader gives up at its deadline.
        with contextlib.suppress(RPCError):
            await client.transfer_leader(req, RPCOption(hard_ttl=self.config.election_timeout_min))

    def notifier(self) -> _WakingSender:
        """A send side of the notification channel for a worker (it also wakes the core)."""
        return _WakingSender(self)

    def _quit_leader(self, leader_id: int | None, committed: LogId | None) -> None:
        """Stop the leader's tasks now; the leader nursery is torn down at the end of this
        round (the commands after this one still run in full). Writes up to ``committed``
        stay pending: the sm_worker answers them with their success once applied. The rest
        may or may not be committed by the next leader: they fail as ``maybe_committed``."""
        if self.leader_nursery is not None:
            self.leader_nursery.stop_all()
        self.quit_leader = True
        self._accepted.clear()  # what committed was counted at its Apply
        node = self.engine.node_of(leader_id)
        # Writes up to ``committed`` go to the worker (their Apply may still be ahead).
        upto = -1 if committed is None else committed.index
        self.apply_handle.replies.extend(self._take_replies(upto))
        while self.replies:
            log_id, responder = self.replies.popleft()
            responder.send(ForwardToLeader(leader_id, node, maybe_committed=True, log_id=log_id))

    def _take_replies(self, upto: int) -> list[tuple[LogId, Responder]]:
        """Remove and return the reply slots of the writes at indexes up to ``upto``."""
        replies = self.replies
        taken = []
        while replies and replies[0][0].index <= upto:
            taken.append(replies.popleft())
        return taken

    def _report_log_reversion(self, report: commands.ReportLogReversion) -> None:
        what = (
            "node {node_id}: log reversion on node {target}: it had acknowledged our log up "
            "to {lost_matching} but now needs entries from index {reverted_to} (its storage "
            "was wiped or restored from an older copy)"
        )
        if report.allowed:
            message = what + "; allow_log_reversion is on: replicating its log again"
        else:
            message = what + (
                "; replication to it is halted and it no longer counts toward the commit "
                "quorum (set Config.allow_log_reversion to replicate it again; see the "
                "guide, 'Log reversion')"
            )
        events.emit(
            events.REPLICATION_LOG_REVERSION,
            message,
            level=events.WARNING if report.allowed else events.ERROR,
            node_id=self.id,
            term=self.engine.vote.term,
            target=report.target,
            lost_matching=str(report.lost_matching),
            reverted_to=report.reverted_to,
            allowed=report.allowed,
        )

    def _snapshot_event(self, event: events.EventType, last: LogId | None, size: int) -> None:
        fields: dict[str, Any] = {"index": None, "term": None}
        if last is not None:
            fields = {"index": last.index, "term": last.term}
        if event is events.SNAPSHOT_INSTALLED:
            fields["leader"] = self.engine.current_leader
        events.emit(
            event,
            "node {node_id}: snapshot " + event.name.partition(".")[2] + " up to index "
            "{index} (term {term}), {size} bytes",
            node_id=self.id,
            size=size,
            **fields,
        )

    # -- statistics ----------------------------------------------------------------------------

    def _observe_commit(self, upto: int) -> None:
        """Count the client writes committed up to index ``upto`` in the commit latency
        histogram (each batch once, weighted by its writes)."""
        accepted, now, histogram = self._accepted, self.engine.now, self.commit_latency
        while accepted:
            first, last, at = accepted[0]
            if first > upto:
                break
            if last <= upto:
                histogram.observe(now - at, last - first + 1)
                accepted.popleft()
            else:  # a part of the batch committed
                histogram.observe(now - at, upto - first + 1)
                accepted[0] = (upto + 1, last, at)
                break

    def statistics(self) -> RaftStatistics:
        """The node's numbers now (see :class:`RaftStatistics`)."""
        metrics = self.metrics_watch.value
        lag: dict[int, int] | None = None
        if metrics.replication is not None:
            last = -1 if metrics.last_log_index is None else metrics.last_log_index
            lag = {
                target: last - index_of(matching)
                for target, matching in metrics.replication.items()
            }
        flush = getattr(self.log_store, "flush_latency", None)
        network_statistics = getattr(self.network, "statistics", None)
        transport = network_statistics() if callable(network_statistics) else None
        return RaftStatistics(
            metrics=metrics,
            replication_lag=lag,
            commit_latency=self.commit_latency.snapshot(),
            apply_latency=self.apply_handle.apply_latency.snapshot(),
            log_flush_latency=flush.snapshot() if isinstance(flush, LatencyHistogram) else None,
            transport=transport if isinstance(transport, TransportStatistics) else None,
        )

    # -- metrics -------------------------------------------------------------------------------

    def _publish_metrics(self, force: bool = False) -> None:
        """Publish new metrics if anything they show changed (cheap check first: this runs
        after every round). ``millis_since_quorum_ack`` alone refreshes on ticks only."""
        engine = self.engine
        leader = engine.leader
        io, log_ids = engine.io, engine.log_ids
        # Everything the metrics show, read off the engine's state directly: a tuple
        # compared in C (the values are immutable and mostly the very same objects).
        key: tuple[Any, ...] = (
            engine.vote,
            leader,
            engine.candidate,
            engine.current_leader,
            log_ids.last,
            io.committed,
            io.applied,
            io.flushed,
            engine.membership.effective,
            io.snapshot,
            log_ids.purged,
        )
        progress_key: tuple[Any, ...] = ()
        if leader is not None:
            progress_key = tuple(
                [(p.matching, p.log_reversions, p.halted) for p in leader.progress.values()]
            )
        if not force and key == self._metrics_key and progress_key == self._progress_key:
            return
        self._metrics_key = key
        self._state_events.update(engine)
        if leader is not None:
            quorum_ack_time = engine.quorum_ack_time()
            since = (
                None
                if quorum_ack_time == -math.inf
                else max(0.0, (engine.now - quorum_ack_time) * 1000.0)
            )
            if progress_key != self._progress_key or self._replication_views is None:
                by_target = sorted(leader.progress.items())
                self._replication_views = (
                    {target: progress.matching for target, progress in by_target},
                    {
                        target: ReplicationStatus(
                            progress.matching,
                            progress.log_reversions,
                            progress.reverted_to,
                            progress.halted,
                        )
                        for target, progress in by_target
                    },
                )
            replication: dict[int, LogId | None] | None = self._replication_views[0]
            status: dict[int, ReplicationStatus] | None = self._replication_views[1]
        else:
            since, replication, status = None, None, None
            self._replication_views = None
        self._progress_key = progress_key
        last = engine.log_ids.last
        metrics = RaftMetrics(
            id=engine.id,
            current_term=engine.vote.term,
            vote=engine.vote,
            state=engine.server_state,
            current_leader=engine.current_leader,
            last_log_index=None if last is None else last.index,
            committed=engine.committed,
            last_applied=engine.last_applied,
            snapshot=engine.snapshot_last_log_id,
            purged=engine.log_ids.purged,
            membership=engine.membership.effective,
            millis_since_quorum_ack=since,
            replication=replication,
            replication_status=status,
            last_log_id=last,
            flushed=None if engine.flushed is None else engine.flushed.log_id,
        )
        self.last_metrics = metrics
        self.metrics_watch.value = metrics

    def publish_shutdown(self) -> None:
        if self.last_metrics is not None:
            self.metrics_watch.value = attrs.evolve(
                self.last_metrics,
                state=ServerState.SHUTDOWN,
                current_leader=None,
                replication=None,
                replication_status=None,
            )


@final
class _WakingSender:
    """A worker's send side of the notification channel that also wakes the core."""

    __slots__ = ("_core",)

    def __init__(self, core: RaftCore) -> None:
        self._core = core

    async def send(self, value: Notification) -> None:
        core = self._core
        try:
            core.notify_tx.send_nowait(value)
        except trio.WouldBlock:
            await core.notify_tx.send(value)  # a full channel is backpressure
        core.wake()

    def try_send(self, value: Notification) -> bool:
        core = self._core
        try:
            core.notify_tx.send_nowait(value)
        except trio.WouldBlock:
            return False
        core.wake()
        return True
