"""The ``Raft`` handle: what applications hold to use a running node.

Users get one from :func:`~openraft_trio.open_raft` (calling ``Raft(...)`` raises
``TypeError``). Every call becomes an :data:`~.api_calls.ApiCall` on the core's bounded
channel, answered through a :class:`~.api_calls.Responder`.

A storage failure (``StorageError`` or ``OSError`` from a storage call) stops the node,
fail-stop: every call, pending then or made later, raises its own copy of that
``StorageError``, chained from the one in ``Raft.fatal_error``; nothing is retried. Leaving
``open_raft()`` (or ``await raft.shutdown()``) makes them raise ``Stopped``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Generic, Literal, NoReturn, cast, final, overload

import trio
import trio_util
from typing_extensions import TypeVar

from .._config import Config
from .._errors import (
    Fatal,
    InvalidRequest,
    RaftError,
    Stopped,
    StorageError,
    copy_for_caller,
    short_repr,
)
from .._messages import (
    AppendEntriesRequest,
    AppendEntriesResponse,
    ClientWriteResponse,
    InstallSnapshotResponse,
    TransferLeaderRequest,
    VoteRequest,
    VoteResponse,
)
from .._metrics import RaftMetrics
from .._statistics import RaftStatistics
from .._types import LogId, Membership, Node, Normal, ReadPolicy, ServerState, Snapshot, Vote
from .._validate import check_append_entries, check_vote_request
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
)
from .raft_core import RaftCore
from .runtime_config import RuntimeConfig
from .trigger import Trigger
from .wait import Wait

_T = TypeVar("_T")
# The state machine's command type (what ``client_write`` takes) and reply type (the
# ``data`` of a ``ClientWriteResponse``): ``open_raft`` infers both from the state machine.
_Command = TypeVar("_Command", default=Any)
_Reply = TypeVar("_Reply", default=Any)

_log = logging.getLogger("openraft_trio")


def _first_leaf(group: BaseExceptionGroup[StorageError | OSError]) -> StorageError | OSError:
    first: BaseException = group
    while isinstance(first, BaseExceptionGroup):
        first = first.exceptions[0]
    return cast("StorageError | OSError", first)


class NoPublicConstructor(type):
    """Metaclass of classes users get from a factory, never by calling the class (as
    trio's ``NoPublicConstructor``): calling the class raises ``TypeError``; the library
    makes instances with ``cls._create(...)``."""

    def __call__(cls, *args: object, **kwargs: object) -> NoReturn:
        raise TypeError(
            f"{cls.__module__}.{cls.__qualname__} has no public constructor: "
            f"get one from openraft_trio.open_raft()"
        )

    def _create(cls: type[_T], *args: object, **kwargs: object) -> _T:
        instance: _T = type.__call__(cls, *args, **kwargs)
        return instance


@final
class Raft(Generic[_Command, _Reply], metaclass=NoPublicConstructor):
    """Handle to a running node. Obtain one from :func:`open_raft`.

    Generic in the state machine's command and reply types: with a state machine typed
    ``RaftStateMachine[Deposit, Receipt]``, ``open_raft`` yields a ``Raft[Deposit,
    Receipt]``, whose ``client_write`` takes a ``Deposit`` and returns a
    ``ClientWriteResponse[Receipt]`` (type checkers only: nothing is checked at run time).
    """

    def __init__(
        self,
        *,
        node_id: int,
        config: Config,
        core: RaftCore,
        api_tx: trio.MemorySendChannel[ApiCall],
        check_write: Callable[[Normal], None],
    ) -> None:
        self.node_id = node_id
        self.config = config
        self.runtime_config: RuntimeConfig = core.runtime_config
        self.trigger = Trigger(self)
        self._core = core
        self._api_tx = api_tx
        self._metrics_watch: trio_util.AsyncValue[RaftMetrics] = core.metrics_watch
        self._pending: set[Responder] = set()
        self._stopped = False
        self._fatal: Fatal | None = None
        # Refuses, before anything is logged, data over ``Config.max_entry_bytes`` and, when
        # the log store or network encodes entries, data that cannot be encoded (raises
        # ``InvalidRequest``): ``open_raft`` picks it for the store and network. It encodes
        # the payload (kept in ``Normal.encoded``): the one encoding of a write.
        self._check_write = check_write
        # The node's own tasks, each in a cancel scope of its own, so that shutdown() stops
        # them without cancelling the caller's ``async with open_raft()`` body.
        self._task_scopes: list[trio.CancelScope] = []
        self._running_tasks = 0
        self._done = trio.Event()

    # -- plumbing ------------------------------------------------------------------------------

    def _responder(self) -> Responder:
        responder = Responder(trio.Event())
        self._pending.add(responder)
        return responder

    def _stop_error(self) -> Fatal:
        """What a call on a stopped node raises: its own copy of the storage failure that
        stopped it (chained ``from`` the one in ``fatal_error``: one exception object
        raised in many tasks would collect all their tracebacks), or ``Stopped``."""
        return copy_for_caller(self._fatal) if self._fatal is not None else Stopped()

    @property
    def fatal_error(self) -> Fatal | None:
        """The ``Fatal`` error (a ``StorageError``) that stopped this node, if one did."""
        return self._fatal

    async def _send(self, msg: ApiCall) -> None:
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

    async def _call(self, make: Callable[[Responder], ApiCall]) -> Any:
        responder = self._responder()
        try:
            await self._send(make(responder))
            return await responder.wait()
        finally:
            self._pending.discard(responder)

    def _post(
        self, make: Callable[[Responder], ApiCall], on_done: Callable[[Any], None]
    ) -> bool:
        """Submit a call without waiting for it, so calls reach the core in the order they
        are posted (the TCP server feeds one connection's pipelined requests in arrival
        order). ``on_done(value_or_exception)`` is called once, from the core's task (it
        must not block or raise). Returns False, and never calls ``on_done``, when the
        core's channel is full: then use the awaiting method."""
        if self._stopped:
            raise self._stop_error()
        responder = self._responder()

        def done(value: Any) -> None:
            self._pending.discard(responder)
            on_done(value)

        responder.on_done = done
        try:
            self._api_tx.send_nowait(make(responder))
        except trio.WouldBlock:
            self._pending.discard(responder)
            return False
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            self._pending.discard(responder)
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
        return self._post(lambda responder: InboundAppendEntries(req, responder), on_done)

    def post_vote(self, req: VoteRequest, on_done: Callable[[Any], None]) -> bool:
        """Inbound, for transports: :meth:`vote` without awaiting, like
        :meth:`post_append_entries`."""
        check_vote_request(req)
        return self._post(lambda responder: InboundVote(req, responder), on_done)

    def _stop(self) -> None:
        """Fail every pending call with ``Stopped`` (or the fatal error that stopped us)."""
        self._stopped = True
        for responder in list(self._pending):
            responder.send(self._stop_error())
        self._pending.clear()
        self._core.publish_shutdown()

    # -- public API ----------------------------------------------------------------------------

    @property
    def metrics(self) -> RaftMetrics:
        """The latest metrics; never blocks."""
        return cast(RaftMetrics, self._metrics_watch.value)

    @property
    def metrics_watch(self) -> trio_util.AsyncValue[RaftMetrics]:
        """The metrics as a ``trio_util.AsyncValue``: ``wait_value(pred)``,
        ``eventual_values()``, ``transitions()``."""
        return self._metrics_watch

    def statistics(self) -> RaftStatistics:
        """The node's numbers for monitoring, now; never blocks: the latest metrics, each
        target's replication lag (leader only), the commit, apply and log flush latency
        histograms and the transport's counters. See ``docs/observability.md``;
        :class:`openraft_trio.prometheus.RaftCollector` exports them."""
        return self._core.statistics()

    def wait(self, timeout: float) -> Wait:
        """Waiters on the metrics (:class:`Wait`), each giving up after ``timeout`` seconds."""
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
        await self._call(lambda responder: Initialize(membership, responder))

    async def is_initialized(self) -> bool:
        """True if the node has a log entry or a vote of a term > 0."""
        return bool(await self._call(lambda responder: Query(_is_initialized, responder)))

    async def client_write(self, data: _Command) -> ClientWriteResponse[_Reply]:
        """Replicate ``data``; return once it is committed and applied.

        Raises:
            ForwardToLeader: this node does not lead. If leadership is lost after the write
                was appended, the write's outcome is unknown (it may still commit).
            PayloadTooLarge: ``data`` encodes to more than ``Config.max_entry_bytes``;
                nothing was written.
            InvalidRequest: the log store writes entries to disk and ``data`` cannot be
                encoded (see :mod:`openraft_trio.codec`); nothing was written.
        """
        payload = Normal(data)
        self._check_write(payload)  # encodes it, once: the log, wire and disk carry those bytes
        response: ClientWriteResponse[_Reply] = await self._call(
            lambda responder: ClientWrite([payload], [responder])
        )
        return response

    @overload
    async def client_write_many(
        self, items: list[_Command], *, return_exceptions: Literal[False] = False
    ) -> list[ClientWriteResponse[_Reply]]: ...

    @overload
    async def client_write_many(
        self, items: list[_Command], *, return_exceptions: bool
    ) -> list[ClientWriteResponse[_Reply] | RaftError]: ...

    async def client_write_many(
        self, items: list[_Command], *, return_exceptions: bool = False
    ) -> list[ClientWriteResponse[_Reply]] | list[ClientWriteResponse[_Reply] | RaftError]:
        """Replicate ``items`` as one batch (consecutive entries, in order); one
        ``ClientWriteResponse`` per item.

        With ``return_exceptions`` an item that failed has its ``RaftError`` in its place
        instead of the call raising the first one (a server batching many clients' writes
        answers each client with its own outcome); an item refused up front
        (``PayloadTooLarge``, ``InvalidRequest``) is then left out of the batch and the
        others are written. Without it, such an item refuses the whole batch.
        """
        payloads = [Normal(item) for item in items]
        refused: dict[int, RaftError] = {}
        for i, item in enumerate(payloads):
            try:
                self._check_write(item)
            except InvalidRequest as e:
                if not return_exceptions:
                    raise
                refused[i] = e
        batch = [item for i, item in enumerate(payloads) if i not in refused] if refused else payloads
        if not batch:
            everything_refused: list[ClientWriteResponse[_Reply] | RaftError] = [
                refused[i] for i in range(len(payloads))
            ]
            return everything_refused
        responders = [self._responder() for _ in batch]
        try:
            await self._send(ClientWrite(batch, responders))
            # In order, as before, but without a checkpoint per slot already filled: a
            # batch is mostly applied (or refused) at once.
            results: list[Any] = []
            for responder in responders:
                await responder.wait_done()
                try:
                    results.append(responder.result())
                except RaftError as e:
                    if not return_exceptions:
                        raise
                    results.append(e)
        finally:
            for responder in responders:
                self._pending.discard(responder)
        if refused:
            outcomes = iter(results)
            results = [refused[i] if i in refused else next(outcomes) for i in range(len(payloads))]
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
            "LogId | None", await self._call(lambda responder: EnsureLinearizable(policy, responder))
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
    ) -> ClientWriteResponse[_Reply]:
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
        resp: ClientWriteResponse[_Reply] = await self._call(
            lambda responder: AddLearner(node_id, node, responder)
        )
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
    ) -> ClientWriteResponse[_Reply]:
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
        response: ClientWriteResponse[_Reply] = await self._call(
            lambda responder: ChangeMembership(voters, bool(retain), responder)
        )
        return response

    async def remove_learner(self, node_id: int) -> ClientWriteResponse:
        """Remove learner ``node_id`` from the membership; returns once that membership
        entry is committed and applied here. The leader stops replicating to it; its
        process keeps running until you stop it. One entry, no joint step: a learner has
        no vote (openraft's ``ChangeMembers::RemoveNodes``).

        Raises:
            ForwardToLeader: this node does not lead.
            InProgress: another membership change is not committed yet.
            NotALearner: ``node_id`` is a voter (remove it with ``change_membership``).
            LearnerNotFound: ``node_id`` is not a member.
        """
        if not isinstance(node_id, int) or isinstance(node_id, bool):
            raise InvalidRequest(f"remove_learner(node_id) takes a node id, got {short_repr(node_id)}")
        response: ClientWriteResponse = await self._call(
            lambda responder: RemoveLearner(node_id, responder)
        )
        return response

    async def shutdown(self) -> None:
        """Stop the node: cancel every task; pending calls fail with ``Stopped``."""
        for scope in self._task_scopes:
            scope.cancel()
        await self._done.wait()

    async def _run_task(self, fn: Callable[[], Awaitable[None]]) -> None:
        """Run one of the node's tasks; when the last one ends the node is stopped."""
        self._running_tasks += 1
        try:
            with trio.CancelScope() as scope:
                self._task_scopes.append(scope)
                if self._stopped:
                    scope.cancel()
                try:
                    await fn()
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
        response: AppendEntriesResponse = await self._call(
            lambda responder: InboundAppendEntries(req, responder)
        )
        return response

    async def install_full_snapshot(
        self, vote: Vote, snapshot: Snapshot
    ) -> InstallSnapshotResponse:
        """Inbound: the leader's snapshot, because entries we need are purged there. Returns
        once it is installed (or found not newer than what we have)."""
        if not isinstance(vote, Vote) or not isinstance(snapshot, Snapshot):
            raise InvalidRequest("install_full_snapshot(vote: Vote, snapshot: Snapshot)")
        response: InstallSnapshotResponse = await self._call(
            lambda responder: InboundInstallSnapshot(vote, snapshot, responder)
        )
        return response

    async def handle_transfer_leader(self, req: TransferLeaderRequest) -> None:
        """Inbound: our leader asks us to take over (called by the network server)."""
        if not isinstance(req, TransferLeaderRequest):
            raise InvalidRequest(f"expected TransferLeaderRequest, got {type(req).__name__}")
        await self._call(lambda responder: InboundTransferLeader(req, responder))

    async def vote(self, req: VoteRequest) -> VoteResponse:
        """Handle a (pre-)vote request.

        Raises:
            InvalidRequest: ``req`` is malformed; nothing changed.
        """
        check_vote_request(req)
        response: VoteResponse = await self._call(lambda responder: InboundVote(req, responder))
        return response

    # -- introspection for tests ---------------------------------------------------------------

    async def _query(self, fn: Callable[[RaftCore], Any]) -> Any:
        return await self._call(lambda responder: Query(fn, responder))


def _is_initialized(core: RaftCore) -> bool:
    engine = core.engine
    return engine.log_ids.last is not None or engine.vote.term > 0
