"""The ``Raft`` handle and ``open_raft()``: how applications embed a node.

Task tree (DESIGN.md §3)::

    open_raft()                      nursery N0 (owned by the context manager)
     ├─ openraft_trio.raft_core       Engine + log storage calls
     │   └─ leader nursery            replication[t], heartbeat[t] while leading
     ├─ openraft_trio.sm_worker
     └─ openraft_trio.ticker

Leaving ``open_raft()`` (or ``await raft.shutdown()``) cancels N0; calls still pending then
fail with ``Stopped``. A storage failure (``StorageError`` or ``OSError`` from a storage call)
stops the node the same way, fail-stop: pending and later calls raise that ``StorageError``
(also in ``Raft.fatal_error``) and nothing is retried.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any, cast

import attrs
import trio
import trio_util

from .._config import Config
from .._engine import Engine
from .._errors import (
    Fatal,
    InvalidRequest,
    PayloadTooLarge,
    RaftError,
    Stopped,
    StorageError,
    WaitTimeout,
    short_repr,
)
from .._messages import (
    AppendEntriesRequest,
    AppendEntriesResponse,
    InstallSnapshotResponse,
    TransferLeaderRequest,
    VoteRequest,
    VoteResponse,
)
from .._metrics import RaftMetrics
from .._types import (
    LogId,
    Membership,
    MembershipChange,
    Node,
    ReadPolicy,
    ServerState,
    Snapshot,
    StoredMembership,
    Vote,
)
from .._validate import check_append_entries, check_vote_request
from ..codec import ENCODE_ERRORS, check_encodable, encoded_data
from ..storage import open_file_log_store
from . import messages as m
from .core import RaftCore
from .messages import ClientWriteResponse
from .sm_worker import ApplyHandle, sm_worker

STARTUP_READ_CHUNK = 4096


@attrs.define
class RuntimeConfig:
    """Switches that can be flipped while running (openraft ``runtime_config``)."""

    tick: bool = True
    heartbeat: bool = True
    elect: bool = True


class Trigger:
    """Ask the node to do something now: ``await raft.trigger.elect()``."""

    def __init__(self, raft: Raft) -> None:
        self._raft = raft

    async def elect(self) -> None:
        """Start an election at once (a pre-vote round first, if enabled).

        Does nothing on the leader, on a learner, or while this node heard from a live
        leader within the lease (or started less than a lease ago): leader stickiness binds
        the node's own vote. Use ``transfer_leader`` to move leadership on purpose.
        """
        await self._raft._send(m.TriggerElect())

    async def heartbeat(self) -> None:
        """Make the leader send a heartbeat to every target now."""
        await self._raft._send(m.TriggerHeartbeat())

    async def snapshot(self) -> None:
        """Build a snapshot of everything applied now (then purge per the config)."""
        await self._raft._send(m.TriggerSnapshot())

    async def purge_log(self, upto: int) -> None:
        """Purge log entries up to index ``upto``, never beyond the latest snapshot."""
        if not isinstance(upto, int) or isinstance(upto, bool):
            raise InvalidRequest(f"purge_log(upto) takes a log index, got {short_repr(upto)}")
        await self._raft._send(m.TriggerPurge(upto))

    async def transfer_leader(self, to: int) -> None:
        """Hand leadership to voter ``to`` (leader only; otherwise nothing happens).

        The leader stops accepting writes (they raise ``ForwardToLeader(to)``), brings
        ``to`` up to date, then tells it to campaign at once; if ``to`` has not taken over
        within ``election_timeout_max`` the leader accepts writes again. From the start of
        the transfer to the end of its term the leader serves ``LEASE_READ`` as
        ``READ_INDEX`` (the target may be let through every follower's lease).
        """
        if not isinstance(to, int) or isinstance(to, bool):
            raise InvalidRequest(f"transfer_leader(to) takes a node id, got {short_repr(to)}")
        await self._raft._send(m.TriggerTransferLeader(to))


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


_log = logging.getLogger("openraft_trio")


def _first_leaf(group: BaseExceptionGroup[StorageError | OSError]) -> StorageError | OSError:
    first: BaseException = group
    while isinstance(first, BaseExceptionGroup):
        first = first.exceptions[0]
    return cast("StorageError | OSError", first)


class Raft:
    """Handle to a running node. Obtain one from :func:`open_raft`."""

    def __init__(self, node_id: int, config: Config, core: RaftCore, api_tx: Any) -> None:
        self.node_id = node_id
        self.config = config
        self.runtime_config: RuntimeConfig = core.runtime_config
        self.trigger = Trigger(self)
        self._core = core
        self._api_tx: trio.MemorySendChannel[Any] = api_tx
        self._metrics_watch: trio_util.AsyncValue[RaftMetrics] = core.metrics_watch
        self._pending: set[m.Responder] = set()
        self._stopped = False
        self._fatal: Fatal | None = None
        # Stores that encode entries (FileLogStore) declare it: then a write whose data
        # cannot be encoded is refused up front instead of failing the store.
        self._max_entry_bytes = config.max_entry_bytes
        self._check_encodable = any(
            getattr(part, "requires_encodable_data", False)
            for part in (core.log_store, core.network)
        )
        # The node's own tasks, each in a cancel scope of its own, so that shutdown() stops
        # them without cancelling the caller's ``async with open_raft()`` body.
        self._task_scopes: list[trio.CancelScope] = []
        self._running_tasks = 0
        self._done = trio.Event()

    # -- plumbing ------------------------------------------------------------------------------

    def _responder(self) -> m.Responder:
        r = m.Responder(trio.Event())
        self._pending.add(r)
        return r

    def _stop_error(self) -> Fatal:
        """What calls on a stopped node raise: the storage failure that stopped it, or
        ``Stopped``."""
        return self._fatal if self._fatal is not None else Stopped()

    @property
    def fatal_error(self) -> Fatal | None:
        """The ``Fatal`` error (a ``StorageError``) that stopped this node, if one did."""
        return self._fatal

    async def _send(self, msg: Any) -> None:
        if self._stopped:
            raise self._stop_error()
        try:
            # Fast path: no scheduling round trip when the core's channel has room (the
            # caller blocks on its reply right after, which is the checkpoint).
            self._api_tx.send_nowait(msg)
        except trio.WouldBlock:
            try:
                await self._api_tx.send(msg)
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                raise self._stop_error() from None
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise self._stop_error() from None
        self._core.wake()

    async def _call(self, make: Callable[[m.Responder], Any]) -> Any:
        r = self._responder()
        try:
            await self._send(make(r))
            return await r.wait()
        finally:
            self._pending.discard(r)

    def _post(self, make: Callable[[m.Responder], Any], on_done: Callable[[Any], None]) -> bool:
        """Submit a call without waiting for it, so calls reach the core in the order they
        are posted (the TCP server feeds one connection's pipelined requests in arrival
        order). ``on_done(value_or_exception)`` is called once, from the core's task (it
        must not block or raise). Returns False, and never calls ``on_done``, when the
        core's channel is full: then use the awaiting method."""
        if self._stopped:
            raise self._stop_error()
        r = self._responder()

        def done(value: Any) -> None:
            self._pending.discard(r)
            on_done(value)

        r.on_done = done
        try:
            self._api_tx.send_nowait(make(r))
        except trio.WouldBlock:
            self._pending.discard(r)
            return False
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            self._pending.discard(r)
            raise self._stop_error() from None
        self._core.wake()
        return True

    def post_append_entries(
        self, req: AppendEntriesRequest, on_done: Callable[[Any], None]
    ) -> bool:
        """Inbound, for transports: :meth:`append_entries` without awaiting — submitted now,
        in arrival order; the response (or error) goes to ``on_done``. False when the core
        is busy (nothing submitted).

        Raises:
            InvalidRequest: ``req`` is malformed; nothing changed.
        """
        check_append_entries(req)
        return self._post(lambda r: m.InboundAppendEntries(req, r), on_done)

    def post_vote(self, req: VoteRequest, on_done: Callable[[Any], None]) -> bool:
        """Inbound, for transports: :meth:`vote` without awaiting, like
        :meth:`post_append_entries`."""
        check_vote_request(req)
        return self._post(lambda r: m.InboundVote(req, r), on_done)

    def _stop(self) -> None:
        """Fail every pending call with ``Stopped`` (or the fatal error that stopped us)."""
        self._stopped = True
        error = self._stop_error()
        for r in list(self._pending):
            r.send(error)
        self._pending.clear()
        self._core.publish_shutdown()

    # -- public API ----------------------------------------------------------------------------

    @property
    def metrics(self) -> RaftMetrics:
        """The latest metrics; never blocks."""
        return cast(RaftMetrics, self._metrics_watch.value)

    @property
    def metrics_watch(self) -> trio_util.AsyncValue[RaftMetrics]:
        return self._metrics_watch

    def wait(self, timeout: float) -> Wait:
        return Wait(self, timeout)

    async def initialize(self, members: Mapping[int, Node] | Membership) -> None:
        """Make this node the first of a cluster with ``members`` as voters.

        Raises:
            NotAllowed: the node was already initialized (has a log or a vote).
            NotInMembers: this node is not one of ``members``.
        """
        if isinstance(members, Membership):
            membership = members
        else:
            nodes = dict(members)
            if not all(isinstance(k, int) and isinstance(v, Node) for k, v in nodes.items()):
                raise InvalidRequest("initialize() takes {node_id: Node(addr)}")
            membership = Membership(configs=[set(nodes)], nodes=nodes)
        await self._call(lambda r: m.Initialize(membership, r))

    async def is_initialized(self) -> bool:
        return bool(await self._call(lambda r: m.Query(_is_initialized, r)))

    def _check_write(self, data: Any) -> None:
        """Refuse, before anything is logged, data over ``Config.max_entry_bytes`` (encoded)
        and, when the log store or network encodes entries, data that cannot be encoded.
        With in-memory storage and network such data is never encoded, so only its size
        is checked, when it has one."""
        if self._check_encodable:
            check_encodable(data, self._max_entry_bytes)
            return
        try:
            size = len(encoded_data(data))
        except ENCODE_ERRORS:
            return
        if size > self._max_entry_bytes:
            raise PayloadTooLarge(size, self._max_entry_bytes)

    async def client_write(self, data: Any) -> ClientWriteResponse:
        """Replicate ``data``; return once it is committed and applied.

        Raises:
            ForwardToLeader: this node does not lead. If leadership is lost after the write
                was appended, the write's outcome is unknown (it may still commit).
            PayloadTooLarge: ``data`` encodes to more than ``Config.max_entry_bytes``;
                nothing was written.
            InvalidRequest: the log store writes entries to disk and ``data`` cannot be
                encoded (see :mod:`openraft_trio.codec`); nothing was written.
        """
        self._check_write(data)
        return await self._call(lambda r: m.ClientWrite([data], [r]))  # type: ignore[no-any-return]

    async def client_write_many(
        self, items: list[Any], *, return_exceptions: bool = False
    ) -> list[Any]:
        """Replicate ``items`` as one batch (consecutive entries, in order); one
        ``ClientWriteResponse`` per item.

        With ``return_exceptions`` an item that failed has its ``RaftError`` in its place
        instead of the call raising the first one (a server batching many clients' writes
        answers each client with its own outcome); an item refused up front
        (``PayloadTooLarge``, ``InvalidRequest``) is then left out of the batch and the
        others are written. Without it, such an item refuses the whole batch.
        """
        items = list(items)
        refused: dict[int, RaftError] = {}
        for i, item in enumerate(items):
            try:
                self._check_write(item)
            except InvalidRequest as e:
                if not return_exceptions:
                    raise
                refused[i] = e
        batch = [item for i, item in enumerate(items) if i not in refused] if refused else items
        if not batch:
            return [refused[i] for i in range(len(items))]
        rs = [self._responder() for _ in batch]
        try:
            await self._send(m.ClientWrite(batch, rs))
            # In order, as before, but without a checkpoint per slot already filled: a
            # batch is mostly applied (or refused) at once.
            results: list[Any] = []
            for r in rs:
                await r.wait_done()
                try:
                    results.append(r.result())
                except RaftError as e:
                    if not return_exceptions:
                        raise
                    results.append(e)
        finally:
            for r in rs:
                self._pending.discard(r)
        if refused:
            outcomes = iter(results)
            results = [refused[i] if i in refused else next(outcomes) for i in range(len(items))]
        return results

    async def ensure_linearizable(self, policy: ReadPolicy = ReadPolicy.READ_INDEX) -> LogId | None:
        """Confirm this node leads and wait until every write acknowledged before this call
        is applied locally; a read of the state machine after this is linearizable.

        Returns:
            The read log id (applied on this node on return).

        Raises:
            ForwardToLeader: this node does not lead.
            QuorumNotEnough: leadership could not be confirmed (lease expired).
        """
        if not isinstance(policy, ReadPolicy):
            raise InvalidRequest(f"policy must be a ReadPolicy, got {short_repr(policy)}")
        read_log_id = cast(
            "LogId | None", await self._call(lambda r: m.EnsureLinearizable(policy, r))
        )
        if read_log_id is not None:
            applied = self.metrics.last_applied
            if applied is None or applied.index < read_log_id.index:
                await self._metrics_watch.wait_value(
                    lambda x: (
                        (x.last_applied is not None and x.last_applied.index >= read_log_id.index)
                        or x.state == ServerState.SHUTDOWN
                    )
                )
                if self._stopped:
                    raise self._stop_error()
        return read_log_id

    async def add_learner(
        self, node_id: int, node: Node, blocking: bool = True
    ) -> ClientWriteResponse:
        """Add ``node_id`` as a learner: it receives the log but never votes or campaigns.

        Returns once the membership entry is committed and applied here; with ``blocking``
        also waits until the learner's lag is within ``replication_lag_threshold`` (or
        until this node stops leading: the learner is added either way).
        Adding a node that is already a member changes nothing.

        Raises:
            ForwardToLeader: this node does not lead.
            InProgress: another membership change is not committed yet.
        """
        if not isinstance(node_id, int) or isinstance(node_id, bool) or not isinstance(node, Node):
            raise InvalidRequest("add_learner(node_id: int, node: Node)")
        resp: ClientWriteResponse = await self._call(lambda r: m.AddLearner(node_id, node, r))
        if blocking:
            threshold = self.config.replication_lag_threshold

            def caught_up(x: RaftMetrics) -> bool:
                if x.state != ServerState.LEADER or x.replication is None:
                    return True
                matching = x.replication.get(node_id)
                last = x.last_log_index or 0
                return matching is not None and last - matching.index <= threshold

            # If this node stops leading meanwhile the wait ends early: the learner is
            # added either way (its entry is committed), so that is still a success.
            await self._metrics_watch.wait_value(caught_up)
        return resp

    async def change_membership(
        self, voter_ids: Iterable[int], retain: bool = False
    ) -> ClientWriteResponse:
        """Make ``voter_ids`` the voters, through a joint configuration; returns once the
        final configuration is committed and applied. ``retain`` keeps removed voters as
        learners.

        Raises:
            ForwardToLeader: this node does not lead (or lost leadership during the change:
                then ``maybe_committed`` is True).
            InProgress: another change is in progress, or this leader has not committed an
                entry of its term yet (retry shortly).
            EmptyMembership: ``voter_ids`` is empty.
            LearnerNotFound: a new voter is not a learner (or voter) yet.
        """
        voters = frozenset(voter_ids)
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in voters):
            raise InvalidRequest("change_membership() takes node ids (ints)")
        return await self._call(  # type: ignore[no-any-return]
            lambda r: m.ChangeMembership(voters, bool(retain), r)
        )

    async def shutdown(self) -> None:
        """Stop the node: cancel every task; pending calls fail with ``Stopped``."""
        for scope in self._task_scopes:
            scope.cancel()
        await self._done.wait()

    async def _run_task(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run one of the node's tasks; when the last one ends the node is stopped."""
        self._running_tasks += 1
        try:
            with trio.CancelScope() as scope:
                self._task_scopes.append(scope)
                if self._stopped:
                    scope.cancel()
                try:
                    await fn(*args)
                except* (StorageError, OSError) as group:
                    self._fail_stop(_first_leaf(group))
        finally:
            self._running_tasks -= 1
            if self._running_tasks == 0:
                self._stop()
                self._done.set()

    def _fail_stop(self, exc: StorageError | OSError) -> None:
        """Storage failed: stop the whole node, never retry-and-continue (DESIGN §6)."""
        if isinstance(exc, StorageError):
            error = exc
        else:
            error = StorageError(f"storage I/O failed: {exc}")
            error.__cause__ = exc
        if self._fatal is None:
            self._fatal = error
            _log.error("raft node %s stopped: %s", self.node_id, error)
        self._stop()
        for scope in self._task_scopes:
            scope.cancel()

    # -- inbound RPCs (called by the network server) ------------------------------------------

    async def append_entries(self, req: AppendEntriesRequest) -> AppendEntriesResponse:
        """Handle an AppendEntries (or heartbeat) from the leader.

        Raises:
            InvalidRequest: ``req`` is malformed; nothing changed.
        """
        check_append_entries(req)
        return await self._call(lambda r: m.InboundAppendEntries(req, r))  # type: ignore[no-any-return]

    async def install_full_snapshot(
        self, vote: Vote, snapshot: Snapshot
    ) -> InstallSnapshotResponse:
        """Inbound: the leader's snapshot, because entries we need are purged there. Returns
        once it is installed (or found not newer than what we have)."""
        if not isinstance(vote, Vote) or not isinstance(snapshot, Snapshot):
            raise InvalidRequest("install_full_snapshot(vote: Vote, snapshot: Snapshot)")
        return await self._call(  # type: ignore[no-any-return]
            lambda r: m.InboundInstallSnapshot(vote, snapshot, r)
        )

    async def handle_transfer_leader(self, req: TransferLeaderRequest) -> None:
        """Inbound: our leader asks us to take over (called by the network server)."""
        if not isinstance(req, TransferLeaderRequest):
            raise InvalidRequest(f"expected TransferLeaderRequest, got {type(req).__name__}")
        await self._call(lambda r: m.InboundTransferLeader(req, r))

    async def vote(self, req: VoteRequest) -> VoteResponse:
        """Handle a (pre-)vote request.

        Raises:
            InvalidRequest: ``req`` is malformed; nothing changed.
        """
        check_vote_request(req)
        return await self._call(lambda r: m.InboundVote(req, r))  # type: ignore[no-any-return]

    # -- introspection for tests ---------------------------------------------------------------

    async def _query(self, fn: Callable[[RaftCore], Any]) -> Any:
        return await self._call(lambda r: m.Query(fn, r))


def _is_initialized(core: RaftCore) -> bool:
    eng = core.engine
    return eng.log_ids.last is not None or eng.vote.term > 0


async def _read_startup_state(
    engine: Engine, log_store: Any, state_machine: Any, now: float
) -> LogId | None:
    vote = await log_store.read_vote()
    state = await log_store.get_log_state()
    committed = await log_store.read_committed()
    applied_state: tuple[LogId | None, StoredMembership] = await state_machine.applied_state()
    last_applied, applied_membership = applied_state
    purged = state.last_purged_log_id
    log_ids: list[LogId] = []
    memberships: list[StoredMembership] = []
    start = 0 if purged is None else purged.index + 1
    stop = -1 if state.last_log_id is None else state.last_log_id.index
    applied_index = -1 if last_applied is None else last_applied.index
    while start <= stop:
        chunk = await log_store.try_get_log_entries(
            start, min(stop + 1, start + STARTUP_READ_CHUNK)
        )
        if not chunk:
            break
        for e in chunk:
            log_ids.append(e.log_id)
            if isinstance(e.payload, MembershipChange) and e.index > applied_index:
                memberships.append(StoredMembership(e.log_id, e.payload.membership))
        start = chunk[-1].index + 1
    current = await state_machine.get_current_snapshot()
    engine.startup(
        vote=vote,
        log_ids=log_ids,
        purged=purged,
        committed=committed,
        last_applied=last_applied,
        applied_membership=applied_membership,
        log_memberships=memberships,
        snapshot=None if current is None else current.meta.last_log_id,
        now=now,
    )
    return last_applied


async def _ticker(core: RaftCore) -> None:
    """Send a Tick when the engine's next deadline (election timeout, lease expiry) is due.

    Deadline-driven rather than periodic: a follower that hears heartbeats keeps pushing its
    election deadline back, so the ticker mostly sleeps. When a deadline moves *earlier*
    the core wakes the ticker to re-arm. Deadlines are in the node's clock; sleeping uses
    trio's, so under clock skew the ticker re-checks and sleeps again if it woke early.
    """
    notify = core.notify_tx
    min_sleep = core.config.heartbeat_interval / 50
    # A deadline still due after a tick (ticks or elections switched off at runtime) is
    # re-checked at this period, like a plain periodic ticker.
    idle_period = core.config.heartbeat_interval / 5
    while True:
        remaining = core.next_deadline - core.clock()
        if remaining > 0:
            with trio.move_on_after(max(remaining, min_sleep)):
                await core.deadline_moved_earlier.wait()
            continue
        await notify.send(m.Tick())
        core.wake()
        # Give the core a round to act on the tick and publish a new deadline.
        await trio.sleep(min_sleep)
        if core.next_deadline <= core.clock():
            await trio.sleep(idle_period)


@asynccontextmanager
async def open_raft(
    node_id: int,
    config: Config,
    *,
    network: Any,
    log_store: Any = None,
    state_machine: Any,
    data_dir: str | os.PathLike[str] | None = None,
    rng: random.Random | None = None,
    clock: Callable[[], float] | None = None,
    observer: Callable[[RaftCore], None] | None = None,
) -> AsyncIterator[Raft]:
    """Start a Raft node; leaving the block stops it.

    Args:
        node_id: this node's id (an int).
        config: validated with ``Config.validate()`` (``ConfigError`` names the bad field).
        network: a ``RaftNetworkFactory``.
        log_store: a ``RaftLogStorage``; omit it and give ``data_dir`` for the durable
            default, a :class:`~openraft_trio.storage.FileLogStore` in ``data_dir/log``.
        state_machine: a ``RaftStateMachine``.
        data_dir: the node's directory for the durable default log store (see
            ``log_store``). Give a durable state machine a directory of its own, e.g.
            ``KvStateMachine(snapshot_dir=data_dir / "snapshots")``.
        state_machine: a ``RaftStateMachine``.
        rng: randomness for election timeouts (seed it for reproducible runs).
        clock: the node's clock for protocol time (default ``trio.current_time``). Leases
            stay safe while clock *rates* differ by less than
            ``lease_clock_drift / election_timeout_max`` (offsets do not matter).
        observer: called with the RaftCore after every core round (testing hook: the
            simulator checks its invariants there; it must not block or mutate).
    """
    config.validate()
    if not isinstance(node_id, int) or isinstance(node_id, bool):
        raise InvalidRequest(f"node_id must be an int, got {short_repr(node_id)}")
    if (log_store is None) == (data_dir is None):
        raise InvalidRequest("give open_raft either log_store or data_dir (exactly one)")
    if log_store is None:
        assert data_dir is not None
        async with (
            open_file_log_store(os.path.join(os.fspath(data_dir), "log")) as store,
            _open_raft(
                node_id, config, network, store, state_machine, rng, clock, observer
            ) as raft,
        ):
            yield raft
        return
    async with _open_raft(
        node_id, config, network, log_store, state_machine, rng, clock, observer
    ) as raft:
        yield raft


@asynccontextmanager
async def _open_raft(
    node_id: int,
    config: Config,
    network: Any,
    log_store: Any,
    state_machine: Any,
    rng: random.Random | None,
    clock: Callable[[], float] | None,
    observer: Callable[[RaftCore], None] | None,
) -> AsyncIterator[Raft]:
    engine = Engine(node_id, config, rng if rng is not None else random.Random())
    clock = clock if clock is not None else trio.current_time
    last_applied = await _read_startup_state(engine, log_store, state_machine, clock())
    api_tx, api_rx = trio.open_memory_channel[Any](config.channel_capacity)
    notify_tx, notify_rx = trio.open_memory_channel[Any](config.channel_capacity)
    apply_handle = ApplyHandle()
    core = RaftCore(
        engine,
        config,
        network=network,
        log_store=log_store,
        runtime_config=RuntimeConfig(),
        metrics_watch=trio_util.AsyncValue(None),
        api_rx=api_rx,
        notify_tx=notify_tx,
        notify_rx=notify_rx,
        apply_handle=apply_handle,
        clock=clock,
        observer=observer,
        state_machine=state_machine,
    )
    core._publish_metrics()
    core._update_deadline()
    raft = Raft(node_id, config, core, api_tx)
    try:
        async with trio.open_nursery() as n0:
            run = raft._run_task
            n0.start_soon(run, core.run, name="openraft_trio.raft_core")
            n0.start_soon(
                run,
                sm_worker,
                apply_handle,
                state_machine,
                log_store,
                last_applied,
                core._notifier(),
                name="openraft_trio.sm_worker",
            )
            n0.start_soon(run, _ticker, core, name="openraft_trio.ticker")
            try:
                yield raft
            finally:
                n0.cancel_scope.cancel()
                raft._stop()
    finally:
        raft._stop()
        raft._done.set()


__all__ = ["ClientWriteResponse", "Raft", "RuntimeConfig", "Wait", "open_raft"]
