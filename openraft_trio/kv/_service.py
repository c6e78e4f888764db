"""The replicated KV service: one node process = Raft + storage + the TCP server + the API.

:func:`serve_kv_node` runs a node until cancelled: ``open_raft`` with the durable
``FileLogStore`` (``data_dir/log``) and a durable :class:`KvStateMachine`
(``data_dir/snapshots``), the TCP transport to its peers, and :func:`serve_raft` on one
port for both the Raft RPCs of its peers and the client API (``client``-role connections;
the API shares the framing, the handshake, TLS and the hostile-input limits of the Raft
RPCs, so it needs no second port and no HTTP stack).

Client API (``op``, ``args`` -> reply; :class:`~openraft_trio.kv.KvClient` wraps it):

=================== ================================= ===========================================
op                  args                              reply
=================== ================================= ===========================================
put                 key, value                        {"prev": old value or None, "index": i}
get                 key, stale (bool), policy         {"value": value or None, "index": i}
delete              key                               {"prev": old value or None, "index": i}
cas                 key, expected, new                {"swapped": bool, "value": v, "index": i}
incr                key, delta                        {"value": new value or None, "index": i}
init                {id: addr} or null (the --peers)  null
add_learner         id, addr, blocking                {"index": i}
change_membership   [voter ids], retain               {"index": i}
remove_learner      id                                {"index": i}
transfer_leader     id                                null
status              (none)                            a dict, see :meth:`KvService.status`
snapshot            (none)                            see :meth:`KvService.snapshot`
open_session        (none)                            {"session_id": id, "timeout": s, "window": n}
session_write       session_id, seq, acked_seq,       the reply of ``op`` (put, delete, cas, incr),
                    op, [args]                        applied at most once per (session, seq)
keep_alive          session_id, acked_seq             null
close_session       session_id                        null
watch               prefix, from_index, max_events,   {"events": [[index, key, kind, value]...],
                    wait                              "next": i}; see :meth:`KvService.watch`
=================== ================================= ===========================================

Client sessions (:mod:`openraft_trio.sessions`): the leader stamps each session entry with
its wall clock (``time.time()``) as it accepts it. A refused session entry fails with
``SessionExpired``, ``StaleSequence``, ``SequenceOutOfWindow`` or ``SessionsFull``.

A write or linearizable read on a node that does not lead fails with ``ForwardToLeader``,
whose error reply carries ``[leader_id, leader_addr, maybe_committed]``. A ``get`` with
``stale`` true reads this node's state machine as it is, without asking the leader;
otherwise ``policy`` (``"ReadIndex"``, the default, or ``"LeaseRead"``: a
:class:`~openraft_trio.ReadPolicy` value) says how the leader confirms it still leads.
"""

from __future__ import annotations

import inspect
import os
import shutil
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar, final

import attrs
import trio

from .._config import Config
from .._core.handle import Raft
from .._errors import ForwardToLeader, InvalidRequest, RaftError, short_repr
from .._messages import ClientWriteResponse
from .._metrics import RaftMetrics
from .._nursery import background_nursery
from .._open import open_raft
from .._types import LogId, Node, ReadPolicy, index_of, next_index
from ..network.tcp import RaftServer, ServerLimits, open_tcp_network, parse_addr, serve_raft
from ..objects._service import ObjectService, load_object_class
from ..objects._state_machine import ObjectStateMachine
from ..sessions._service import SessionOps
from ..storage import MemLogStore
from ._load_op import run_write_load
from ._snapshot_files import encode_snapshot_file
from ._state_machine import CompareAndSwap, Delete, Increment, KvStateMachine, Set
from ._watch import DEFAULT_HISTORY_SIZE, DEFAULT_WATCH_EVENTS, check_watch_arguments

T = TypeVar("T")

MAX_KEY_LENGTH = 4096
SNAPSHOT_WAIT = 60.0  # seconds the ``snapshot`` op waits for a snapshot to be built


def _index(log_id: LogId | None) -> int:
    return 0 if log_id is None else log_id.index


class DataDirError(RaftError):
    """The data directory belongs to another node or cluster, or cannot be used."""


@final
@attrs.define
class KvNodeOptions:
    """How to run one node of the KV service (the ``serve`` command's options)."""

    node_id: int
    listen: str
    data_dir: str | None  # None: in-memory log and state machine (benchmarks, tests)
    peers: Mapping[int, str] = attrs.field(factory=dict)
    advertise: str | None = None  # the address peers and clients use (default: listen)
    config: Config = attrs.field(factory=Config)
    server_ssl: ssl.SSLContext | None = None
    client_ssl: ssl.SSLContext | None = None
    limits: ServerLimits = attrs.field(factory=ServerLimits)
    bench_op: bool = False  # enable the ``bench`` op, the built-in load generator
    # Serve Prometheus metrics (openraft_trio.prometheus) at http://HOST:PORT/metrics.
    metrics_listen: str | None = None
    # Client sessions unused this long (log seconds) expire; the same on every node.
    session_timeout: float = 60.0
    # Changes the state machine keeps for watches (KvStateMachine's watch_history).
    watch_history: int = DEFAULT_HISTORY_SIZE
    # "module:Class": serve this replicated object (openraft_trio.objects) instead of the
    # key-value store; its call/query/upgrade ops replace put/get/delete/cas.
    object_spec: str | None = None

    @property
    def addr(self) -> str:
        """The address peers and clients reach this node at: ``advertise``, else ``listen``."""
        return self.advertise or self.listen


@final
@attrs.define
class KvNode:
    """A running node: what :func:`serve_kv_node` hands to ``task_status.started``."""

    raft: Raft
    server: RaftServer
    state_machine: KvStateMachine | ObjectStateMachine[Any]
    service: KvService
    metrics_addr: str | None = None  # where /metrics is served ("host:port"), if it is


def _key(raw: Any) -> str:
    if type(raw) is not str or not raw or len(raw) > MAX_KEY_LENGTH:
        raise InvalidRequest(f"a key is a non-empty str of at most {MAX_KEY_LENGTH} chars")
    return raw


def _node_id(raw: Any, what: str = "node id") -> int:
    if type(raw) is not int or raw < 0:
        raise InvalidRequest(f"{what} must be a non-negative int, got {short_repr(raw)}")
    return raw


def _addr(raw: Any) -> str:
    try:
        parse_addr(raw)
    except ValueError as e:
        raise InvalidRequest(str(e)) from None
    return str(raw)


def _read_policy(raw: Any) -> ReadPolicy:
    if type(raw) is str:
        for policy in ReadPolicy:
            if policy.value == raw:
                return policy
    names = ", ".join(repr(p.value) for p in ReadPolicy)
    raise InvalidRequest(f"policy must be one of {names}, got {short_repr(raw)}")


def _bool(raw: Any, what: str) -> bool:
    if type(raw) is not bool:
        raise InvalidRequest(f"{what} must be a bool, got {short_repr(raw)}")
    return raw


_WRITE_OPS: dict[str, Callable[..., Any]] = {
    "put": lambda key, value: Set(_key(key), value),
    "delete": lambda key: Delete(_key(key)),
    "cas": lambda key, expected, new: CompareAndSwap(_key(key), expected, new),
    "incr": lambda key, delta=1: Increment(_key(key), _delta(delta)),
}


def _delta(raw: Any) -> int:
    if type(raw) is not int:
        raise InvalidRequest(f"incr takes an integer delta, got {short_repr(raw)}")
    return raw


def _arity(fn: Callable[..., Any]) -> tuple[int, int]:
    """(min, max) positional arguments of ``fn``."""
    params = inspect.signature(fn).parameters.values()
    required = sum(p.default is p.empty for p in params)
    return required, len(params)


def _reply(op: str, resp: ClientWriteResponse) -> dict[str, Any]:
    """The reply to a write ``op`` from its ``ClientWriteResponse`` (for ``session_write``,
    the session's ``op``: ``"session_write:put"`` and so on).

    Raises:
        SessionError: the session refused the entry.
    """
    if op.startswith("session_write:"):
        SessionOps.answer(resp.data)
        op = op.removeprefix("session_write:")
    if op == "incr":
        return {"value": resp.data, "index": resp.log_id.index}
    if op == "cas":
        swapped, value = resp.data
        return {"swapped": swapped, "value": value, "index": resp.log_id.index}
    return {"prev": resp.data, "index": resp.log_id.index}


@final
class KvService:
    """The client API of one node; :meth:`handle` is the server's ``client_handler``.

    ``data_ops`` (operation name -> handler) replace the key-value operations (``put``,
    ``get``, ``delete``, ``cas``, ``incr`` and the session operations) when the node serves
    something else, e.g. a replicated
    object (:class:`~openraft_trio.objects.ObjectService`); ``state_machine`` is then that
    one's.
    """

    def __init__(
        self,
        raft: Raft,
        state_machine: Any,
        *,
        addr: str,
        peers: Mapping[int, str],
        transport_stats: Callable[[], dict[str, int]],
        bench_op: bool = False,
        clock: Callable[[], float] = time.time,
        data_ops: Mapping[str, Callable[..., Awaitable[Any]]] | None = None,
    ) -> None:
        self.raft = raft
        self.clock = clock
        self.state_machine = state_machine
        self.addr = addr
        self.peers = dict(peers)
        self.transport_stats = transport_stats
        self._sessions = SessionOps(raft, state_machine, clock)
        # The data operations: the key-value ones, or those given (a replicated object's).
        self._kv = data_ops is None
        kv_ops: dict[str, Callable[..., Awaitable[Any]]] = {
            "put": self.put,
            "get": self.get,
            "delete": self.delete,
            "cas": self.cas,
            "incr": self.incr,
            # The sessions of the key-value store (its state machine keeps their table).
            **self._sessions.ops(),
            "session_write": self.session_write,
            "watch": self.watch,
        }
        self._ops: dict[str, Callable[..., Awaitable[Any]]] = {
            **(kv_ops if data_ops is None else data_ops),
            "init": self.init,
            "add_learner": self.add_learner,
            "change_membership": self.change_membership,
            "remove_learner": self.remove_learner,
            "transfer_leader": self.transfer_leader,
            "status": self.status,
            "snapshot": self.snapshot,
        }
        if bench_op:
            self._ops["bench"] = self.bench
        self._arity = {op: _arity(fn) for op, fn in self._ops.items()}

    async def bench(
        self, clients: Any, duration: Any, warmup: Any, value_size: Any
    ) -> dict[str, Any]:
        """Write load generated in this node: see :mod:`._load_op`."""
        return await run_write_load(self.raft, clients, duration, warmup, value_size)

    async def handle(self, op: str, args: list[Any]) -> Any:
        """Run client operation ``op`` with ``args``; raises ``InvalidRequest`` for an unknown
        operation or a wrong number of arguments."""
        fn = self._ops.get(op)
        if fn is None:
            raise InvalidRequest(
                f"unknown operation {short_repr(op)}; expected one of {sorted(self._ops)}"
            )
        self._check_arity(op, args)
        return await fn(*args)

    def _check_arity(self, op: str, args: list[Any]) -> None:
        low, high = self._arity[op]
        if not low <= len(args) <= high:
            expected = str(low) if low == high else f"{low} to {high}"
            raise InvalidRequest(f"{op} takes {expected} arguments, got {len(args)}")

    async def handle_batch(self, requests: list[tuple[str, list[Any]]]) -> list[Any]:
        """The requests that arrived together on one connection: their writes (``put``,
        ``delete``, ``cas``) go to Raft as one batch (``client_write_many``), the rest run
        concurrently. One value or exception per request, in order."""
        results: list[Any] = [None] * len(requests)
        writes: list[tuple[int, str, Any]] = []
        others: list[int] = []
        for i, (op, args) in enumerate(requests):
            if self._kv and (op in _WRITE_OPS or op == "session_write"):
                try:
                    self._check_arity(op, args)
                    writes.append((i, *self._command(op, args)))
                except RaftError as e:
                    results[i] = e
            else:
                others.append(i)

        async def one(i: int) -> None:
            try:
                results[i] = await self.handle(*requests[i])
            except RaftError as e:
                results[i] = e

        async def write_batch() -> None:
            try:
                outcomes = await self.raft.client_write_many(
                    [w[2] for w in writes], return_exceptions=True
                )
            except RaftError as e:  # nothing was submitted (e.g. not encodable, stopped)
                outcomes = [e] * len(writes)
            for (i, op, _), outcome in zip(writes, outcomes, strict=True):
                results[i] = outcome if isinstance(outcome, BaseException) else _reply(op, outcome)

        async with trio.open_nursery() as nursery:
            if writes:
                nursery.start_soon(write_batch)
            for i in others:
                nursery.start_soon(one, i)
        return results

    # -- data -----------------------------------------------------------------------------------

    def _command(self, op: str, args: list[Any]) -> tuple[str, Any]:
        """The log command of write ``op`` (``put``, ``delete``, ``cas`` or ``session_write``)
        and the op its reply is made for."""
        if op != "session_write":
            return op, _WRITE_OPS[op](*args)
        session_id, seq, acked_seq, inner_op, inner_args = args
        if inner_op not in _WRITE_OPS or not isinstance(inner_args, list):
            raise InvalidRequest(
                f"session_write takes a write op ({sorted(_WRITE_OPS)}) and a list of its "
                f"arguments, got {short_repr(inner_op)}, {short_repr(inner_args)}"
            )
        self._check_arity(inner_op, inner_args)
        request = _WRITE_OPS[inner_op](*inner_args)
        command = self._sessions.command(session_id, seq, acked_seq, request)
        return f"session_write:{inner_op}", command

    async def _write(self, op: str, *args: Any) -> dict[str, Any]:
        reply_op, command = self._command(op, list(args))
        return _reply(reply_op, await self.raft.client_write(command))

    async def put(self, key: Any, value: Any) -> dict[str, Any]:
        """Set ``key`` to ``value`` through the log; ``{"prev": old value, "index": log index}``."""
        return await self._write("put", key, value)

    async def get(
        self, key: Any, stale: Any = False, policy: Any = ReadPolicy.READ_INDEX.value
    ) -> dict[str, Any]:
        """The value of ``key`` and the index it reflects: ``{"value", "index"}``.

        Read by ``policy`` (a ``ReadPolicy`` value) after ``ensure_linearizable``; with
        ``stale``, from this node's state machine at once (``index`` is its last applied index)."""
        key = _key(key)
        read_policy = _read_policy(policy)
        if _bool(stale, "stale"):
            applied = self.state_machine.last_applied  # what the value below reflects
            index = applied.index if applied is not None else None
            return {"value": self.state_machine.get(key), "index": index}
        read = await self.raft.ensure_linearizable(read_policy)
        return {"value": self.state_machine.get(key), "index": read.index if read else None}

    async def delete(self, key: Any) -> dict[str, Any]:
        """Delete ``key`` through the log; ``{"prev": old value, "index": log index}``."""
        return await self._write("delete", key)

    async def cas(self, key: Any, expected: Any, new: Any) -> dict[str, Any]:
        """Set ``key`` to ``new`` if it holds ``expected``, through the log; ``{"swapped",
        "value", "index"}``."""
        return await self._write("cas", key, expected, new)

    async def incr(self, key: Any, delta: Any = 1) -> dict[str, Any]:
        """Add ``delta`` to the integer under ``key`` through the log; ``{"value": the new
        value, or None if the value is not an integer, "index"}``. Not idempotent: clients
        send it in a session."""
        return await self._write("incr", key, delta)

    # -- client sessions ------------------------------------------------------------------------

    async def session_write(
        self, session_id: Any, seq: Any, acked_seq: Any, op: Any, args: Any
    ) -> dict[str, Any]:
        """Write ``op`` (``put``, ``delete``, ``cas`` or ``incr``) with ``args`` as command ``seq`` of
        session ``session_id``: applied at most once however often it is sent; the same
        reply as ``op``, the first one's on a retry."""
        return await self._write("session_write", session_id, seq, acked_seq, op, args)

    async def watch(
        self,
        prefix: Any,
        from_index: Any = None,
        max_events: Any = DEFAULT_WATCH_EVENTS,
        wait: Any = 1.0,
    ) -> dict[str, Any]:
        """The changes to keys starting with ``prefix`` at log index ``from_index`` or later
        (``None``: after what this node has applied), in log order: ``{"events": [[index,
        key, kind, value], ...], "next": i}``. Call again with ``from_index=next``.

        Answers as soon as at least one such change is applied here (at most
        ``max_events`` of them, and about 1 MiB of values), or after ``wait`` seconds with
        no events (``next`` then is past the entries applied meanwhile). Served by the
        leader only (docs/kv-service.md, "Watches"); a node that does not lead, or stops
        leading while it waits, raises ``ForwardToLeader``.

        Raises:
            InvalidRequest: a bad argument (see :func:`._watch.check_watch_arguments`).
            WatchCompacted: the history no longer holds ``from_index``.
            ForwardToLeader: this node does not lead.
        """
        prefix, start, max_events, wait = check_watch_arguments(
            prefix, from_index, max_events, wait
        )
        self._check_leads(self.raft.metrics)
        machine = self.state_machine
        if start is None:
            start = next_index(machine.last_applied)
        with trio.move_on_after(wait):
            while True:
                events, start = machine.history.read(
                    prefix, start, max_events, index_of(machine.last_applied)
                )
                if events:
                    return {"events": [e.to_wire() for e in events], "next": start}
                metrics = await self.raft.metrics_watch.wait_value(
                    lambda m, wanted=start: (
                        index_of(machine.last_applied) >= wanted
                        or m.current_leader != self.raft.node_id
                    )
                )
                self._check_leads(metrics)
        return {"events": [], "next": start}

    def _check_leads(self, metrics: RaftMetrics) -> None:
        """Raise ``ForwardToLeader`` (naming the leader ``metrics`` knows) unless this node
        leads."""
        if metrics.current_leader != self.raft.node_id:
            leader = metrics.current_leader
            node = metrics.membership.membership.nodes.get(leader) if leader is not None else None
            raise ForwardToLeader(leader, node)

    # -- admin ----------------------------------------------------------------------------------

    async def init(self, members: Any = None) -> None:
        """Initialize the cluster with ``members`` (``{node_id: "host:port"}``; default: the
        peers, or this node alone); raises ``InvalidRequest`` for an empty or malformed map."""
        if members is None:
            members = self.peers or {self.raft.node_id: self.addr}
        if not isinstance(members, dict) or not members:
            raise InvalidRequest("init takes a non-empty {node_id: 'host:port'} map")
        nodes = {_node_id(k): Node(_addr(v)) for k, v in members.items()}
        await self.raft.initialize(nodes)

    async def add_learner(self, node_id: Any, addr: Any, blocking: Any = True) -> dict[str, Any]:
        """Add learner ``node_id`` at ``addr`` (``Raft.add_learner``); ``{"index": the membership
        entry's index}``."""
        resp = await self.raft.add_learner(
            _node_id(node_id), Node(_addr(addr)), blocking=_bool(blocking, "blocking")
        )
        return {"index": resp.log_id.index}

    async def change_membership(self, voters: Any, retain: Any = False) -> dict[str, Any]:
        """Change the voters to the list ``voters`` (``Raft.change_membership``); ``{"index":
        ...}``; raises ``InvalidRequest`` for an empty or non-list ``voters``."""
        if not isinstance(voters, list) or not voters:
            raise InvalidRequest("change_membership takes a non-empty list of node ids")
        resp = await self.raft.change_membership(
            {_node_id(v) for v in voters}, retain=_bool(retain, "retain")
        )
        return {"index": resp.log_id.index}

    async def remove_learner(self, node_id: Any) -> dict[str, Any]:
        """Remove learner ``node_id`` (``Raft.remove_learner``); ``{"index": the membership
        entry's index}``."""
        resp = await self.raft.remove_learner(_node_id(node_id))
        return {"index": resp.log_id.index}

    async def snapshot(self) -> dict[str, Any]:
        """The leader's snapshot of everything acknowledged before this call arrived.

        A ReadIndex round first (so a deposed leader cannot hand out an old state; a
        follower answers ``ForwardToLeader``), then a snapshot covering at least the read
        index: the current one if it does, else one built now. The reply: ``file`` (the
        bytes of a snapshot file, :mod:`._snapshot_files`: magic, CRC-32),
        ``cluster_name``, ``node_id``, ``term`` and ``index`` (its last log id).
        """
        read = await self.raft.ensure_linearizable(ReadPolicy.READ_INDEX)
        wanted = read.index if read is not None else 0
        current = await self.state_machine.get_current_snapshot()
        if current is None or _index(current.meta.last_log_id) < wanted:
            await self.raft.trigger.snapshot()
            await self.raft.wait(SNAPSHOT_WAIT).snapshot_index_at_least(wanted)
            current = await self.state_machine.get_current_snapshot()
        assert current is not None
        last = current.meta.last_log_id
        return {
            "file": encode_snapshot_file(current.meta.snapshot_id, current.data),
            "cluster_name": self.raft.config.cluster_name,
            "node_id": self.raft.node_id,
            "term": last.term if last is not None else 0,
            "index": _index(last),
        }

    async def transfer_leader(self, to: Any) -> None:
        """Hand leadership to voter ``to``; on a node that is not the leader, raises
        ``ForwardToLeader``; ``NotAVoter`` if ``to`` is not a voter."""
        self._check_leads(self.raft.metrics)
        await self.raft.trigger.transfer_leader(_node_id(to))

    async def status(self) -> dict[str, Any]:
        """This node's view: ids, role, term, log/commit/apply indexes, membership, the
        leader's per-follower matched index and the transport's counters."""
        m = self.raft.metrics
        membership = m.membership.membership
        voters = sorted({v for config in membership.configs for v in config})
        leader_node = (
            membership.nodes.get(m.current_leader) if m.current_leader is not None else None
        )
        return {
            "id": m.id,
            "addr": self.addr,
            "state": m.state.name,
            "term": m.current_term,
            "leader": m.current_leader,
            "leader_addr": leader_node.addr if leader_node is not None else None,
            "last_log_index": m.last_log_index,
            "committed": m.committed.index if m.committed is not None else None,
            "applied": m.last_applied.index if m.last_applied is not None else None,
            "snapshot": m.snapshot.index if m.snapshot is not None else None,
            "purged": m.purged.index if m.purged is not None else None,
            "voters": voters,
            "joint": len(membership.configs) > 1,
            "nodes": {k: v.addr for k, v in sorted(membership.nodes.items())},
            "replication": (
                {k: (v.index if v is not None else None) for k, v in sorted(m.replication.items())}
                if m.replication is not None
                else None
            ),
            "log_reversions": (
                {
                    k: {"count": v.log_reversions, "reverted_to": v.reverted_to, "halted": v.halted}
                    for k, v in sorted(m.replication_status.items())
                    if v.log_reversions
                }
                if m.replication_status is not None
                else None
            ),
            "millis_since_quorum_ack": m.millis_since_quorum_ack,
            **({"keys": len(self.state_machine.data)} if self._kv else {}),
            "transport": self.transport_stats(),
        }


# -- the node's data directory -------------------------------------------------------------------

_ID_FILE = "node-id"


def claim_data_dir(data_dir: str, node_id: int, cluster_name: str) -> None:
    """Create ``data_dir`` for node ``node_id`` or check that it is this node's.

    Raises:
        DataDirError: it holds another node's (or cluster's) data, or is not a directory.
    """
    identity = f"{cluster_name}\n{node_id}\n"
    path = os.path.join(data_dir, _ID_FILE)
    try:
        os.makedirs(data_dir, exist_ok=True)
        with open(path, encoding="utf-8") as f:
            found = f.read()
    except FileNotFoundError:
        if os.path.exists(os.path.join(data_dir, "log")):
            raise DataDirError(
                f"{data_dir} holds a Raft log but no {_ID_FILE} file: not a node directory"
            ) from None
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(identity)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return
    except OSError as e:
        raise DataDirError(f"cannot use data directory {data_dir}: {e}") from e
    if found != identity:
        parts = found.split("\n")
        other = parts[1] if len(parts) > 1 else "?"
        raise DataDirError(
            f"{data_dir} belongs to node {other} of cluster {parts[0]!r}; refusing to start "
            f"node {node_id} of cluster {cluster_name!r} on it"
        )


async def serve_kv_node(
    options: KvNodeOptions, *, task_status: trio.TaskStatus[KvNode] = trio.TASK_STATUS_IGNORED
) -> None:
    """Run one KV node until cancelled; ``task_status.started(KvNode)`` once it listens.

    Its errors come out as themselves, not wrapped in ``ExceptionGroup``s (docs/guide.md,
    "Errors out of ``async with``").

    Raises:
        DataDirError: ``data_dir`` is another node's.
        StorageError: the log cannot be opened (e.g. another process holds its lock).
        OSError: the listen address cannot be bound.
    """
    config = options.config
    config.validate()
    parse_addr(options.listen)
    fresh = options.data_dir is not None and _is_fresh(options.data_dir)
    started = False

    def on_started(node: KvNode) -> None:
        nonlocal started
        started = True
        task_status.started(node)

    try:
        await _run_kv_node(options, on_started)
    except BaseException:
        # A node that never started served no one: what this start created in a directory
        # that was empty (``node-id``, the log and its ``LOCK``) goes, so a later start,
        # with any id, finds the directory as it was.
        if fresh and not started:
            assert options.data_dir is not None
            _remove_fresh_data_dir(options.data_dir)
        raise


def _is_fresh(data_dir: str) -> bool:
    """True if ``data_dir`` does not exist or is an empty directory."""
    try:
        return not os.listdir(data_dir)
    except FileNotFoundError:
        return True
    except OSError:
        return False  # not a directory, no permission: claim_data_dir says why


def _remove_fresh_data_dir(data_dir: str) -> None:
    """Empty ``data_dir`` (it was empty or missing before this start): keep the directory
    itself, which may be a mount point or have been made by the operator."""
    for name in os.listdir(data_dir):
        path = os.path.join(data_dir, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)


async def _run_kv_node(options: KvNodeOptions, started: Callable[[KvNode], None]) -> None:
    config = options.config
    host, port = parse_addr(options.listen)
    object_class = (
        None if options.object_spec is None else load_object_class(options.object_spec)
    )
    state_machine: KvStateMachine | ObjectStateMachine[Any]
    if options.data_dir is not None:
        claim_data_dir(options.data_dir, options.node_id, config.cluster_name)
        snapshots: str | None = os.path.join(options.data_dir, "snapshots")
        store_args: dict[str, Any] = {"data_dir": options.data_dir}
    else:
        snapshots = None  # in memory
        store_args = {"log_store": MemLogStore()}
    state_machine = (
        KvStateMachine(
            snapshots,
            session_timeout=options.session_timeout,
            watch_history=options.watch_history,
        )
        if object_class is None
        else ObjectStateMachine(
            object_class, snapshot_dir=snapshots, session_timeout=options.session_timeout
        )
    )
    async with (
        open_tcp_network(options.node_id, config, ssl_context=options.client_ssl) as network,
        open_raft(
            options.node_id, config, network=network, state_machine=state_machine, **store_args
        ) as raft,
        background_nursery() as nursery,
    ):
        stats: dict[str, Any] = {}
        service = KvService(
            raft,
            state_machine,
            addr=options.addr,
            peers=options.peers,
            transport_stats=lambda: stats["server"].stats.as_dict(),
            bench_op=options.bench_op,
            data_ops=(
                ObjectService(raft, state_machine).ops()
                if isinstance(state_machine, ObjectStateMachine)
                else None
            ),
        )
        server: RaftServer = await nursery.start(
            _serve, raft, host, port, options, service.handle, service.handle_batch
        )
        stats["server"] = server
        metrics_addr = None
        if options.metrics_listen is not None:
            from .._prometheus import metrics_registry, serve_metrics

            metrics_host, metrics_port = parse_addr(options.metrics_listen)
            bound = await nursery.start(
                serve_metrics, metrics_registry(raft, server=server), metrics_host, metrics_port
            )
            shown = f"[{metrics_host}]" if ":" in metrics_host else metrics_host
            metrics_addr = f"{shown}:{bound}"
        started(KvNode(raft, server, state_machine, service, metrics_addr))
        await trio.sleep_forever()


async def _serve(
    raft: Raft,
    host: str,
    port: int,
    options: KvNodeOptions,
    handler: Callable[[str, list[Any]], Awaitable[Any]],
    batch_handler: Callable[[list[tuple[str, list[Any]]]], Awaitable[list[Any]]],
    *,
    task_status: trio.TaskStatus[RaftServer] = trio.TASK_STATUS_IGNORED,
) -> None:
    await serve_raft(
        raft,
        host,
        port,
        ssl_context=options.server_ssl,
        limits=options.limits,
        client_handler=handler,
        client_batch_handler=batch_handler,
        task_status=task_status,
    )
