"""``KvClient``: the Trio client of the KV service (:mod:`openraft_trio.kv._service`).

::

    async with open_kv_client(["127.0.0.1:7001", "127.0.0.1:7002"]) as kv:
        await kv.put("greeting", "hello")
        assert await kv.get("greeting") == "hello"

It keeps one pipelined connection per node address and sends writes and linearizable reads
to the leader: it starts at the last leader it knew (or the first address), follows the
``ForwardToLeader`` hint a non-leader answers with, and tries the next address when a node
is unreachable or knows no leader, until ``timeout`` runs out.

Retries are only made where they are safe:

* ``get``, ``status`` and admin reads are retried after any failure;
* ``put``, ``delete`` and ``cas`` go through a client session (:mod:`openraft_trio.sessions`,
  opened on the first write): each carries the session id and a sequence number, and the
  cluster applies it at most once, so after a timeout, a lost connection or a leader
  change the client sends it again, with the same number, until it gets the reply or
  ``timeout`` runs out. :class:`AmbiguousOutcome` remains for two cases only: the session
  expired while a write's outcome was unknown (the cluster forgot whether it applied it),
  or ``timeout`` ran out after an attempt that may have reached a leader. A session is
  kept alive while the client is idle and closed by :meth:`KvClient.aclose`.
* the admin changes, and writes with ``sessions=False``, are retried only when the
  failure proves they were not applied: the connection could not be made, or a
  non-leader refused them (``ForwardToLeader`` with ``maybe_committed`` false). When the
  request may have reached a leader and its fate is unknown — the connection broke or
  timed out after sending, or the leader lost leadership after appending it — the client
  raises :class:`AmbiguousOutcome` instead of guessing.

:meth:`KvClient.watch` streams changes (:class:`KvWatch`): long polls of the leader's
``watch`` operation, retried like reads, each resuming at the index after the last change
delivered.
"""

from __future__ import annotations

import collections
import contextlib
import ssl
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any, TypeVar, final

import trio

from .._config import Config
from .._errors import (
    NetworkError,
    RaftError,
    RemoteError,
    RPCTimeout,
    Unreachable,
    short_repr,
    short_text,
)
from .._nursery import background_nursery
from .._types import ReadPolicy
from ..codec import DecodeError
from ..network import _wire as wire
from ..network._client import ConnectTimeout, NodeStopped, RpcChannel, parse_addr
from ..sessions._client import ClientSession
from ._watch import (
    DEFAULT_WATCH_EVENTS,
    MAX_WATCH_WAIT,
    WatchCompacted,
    WatchEvent,
    check_watch_arguments,
)

T = TypeVar("T")

DEFAULT_CLUSTER_NAME = Config().cluster_name


class AmbiguousOutcome(RaftError):
    """A write may or may not have been applied (see the module docstring).

    With sessions (the default) only when the session expired while the write's outcome
    was unknown, or the client's ``timeout`` ran out after such an attempt.

    ``op`` and ``args`` name the request; ``__cause__`` is the failure that made it
    ambiguous."""

    def __init__(self, op: str, args: list[Any], reason: str) -> None:
        super().__init__(f"{op} {short_repr(args)}: outcome unknown ({short_text(reason)})")
        self.op = op
        self.args_ = args


class NoLeader(Unreachable):
    """No node answered as (or pointed to) a reachable leader within the timeout."""


@final
class KvClient:
    """See the module docstring; make one with :func:`open_kv_client`."""

    def __init__(
        self,
        nursery: trio.Nursery,
        addrs: Iterable[str],
        *,
        cluster_name: str = DEFAULT_CLUSTER_NAME,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = 10.0,
        rpc_timeout: float = 3.0,
        sessions: bool = True,
    ) -> None:
        self.addrs = list(dict.fromkeys(addrs))
        if not self.addrs:
            raise ValueError("KvClient needs at least one node address")
        for addr in self.addrs:
            parse_addr(addr)
        self.nursery = nursery
        self.cluster_name = cluster_name
        self.ssl_context = ssl_context
        self.timeout = timeout
        self.rpc_timeout = rpc_timeout
        self.leader_addr: str | None = None
        self.retries = 0
        self._channels: dict[str, RpcChannel] = {}
        self._next = 0
        self.sessions = sessions
        self._session: _Session | None = None
        self._opening: trio.Lock = trio.Lock()
        self._opened: list[_Session] = []  # every session opened, to stop its keep-alive

    def _channel(self, addr: str) -> RpcChannel:
        ch = self._channels.get(addr)
        if ch is None:
            hello = wire.Hello(self.cluster_name, "client", None, None)
            ch = RpcChannel(
                self.nursery, addr, hello, ssl_context=self.ssl_context, backoff_max=0.5
            )
            self._channels[addr] = ch
        return ch

    async def call(self, addr: str, op: str, *args: Any) -> Any:
        """One API call to the node at ``addr``, no retries (errors as ``RpcChannel``)."""
        reply: wire.ClientReply = await self._channel(addr).call(
            "client", wire.ClientRequest(op, list(args)), "client_resp", self.rpc_timeout
        )
        return reply.value

    def _rotate(self) -> str:
        addr = self.addrs[self._next % len(self.addrs)]
        self._next += 1
        return addr

    async def leader_call(
        self,
        op: str,
        *args: Any,
        idempotent: bool,
        attempts: _Attempts | None = None,
        deadline: float | None = None,
    ) -> Any:
        """Call ``op`` on the leader, following hints and retrying where safe, until
        ``deadline`` (default: ``timeout`` from now).

        With ``attempts``, an ``idempotent`` call notes there whether some attempt may
        have reached a leader with its outcome unknown."""
        if deadline is None:
            deadline = trio.current_time() + self.timeout
        addr = self.leader_addr or self._rotate()
        last = "no attempt"
        pause = 0.02
        while True:
            try:
                value = await self.call(addr, op, *args)
            except RemoteError as e:
                reply = e.remote
                if not isinstance(reply, wire.ErrorReply) or reply.error_type != "ForwardToLeader":
                    if idempotent and reply is not None and reply.error_type == "QuorumNotEnough":
                        last = str(e)
                    else:
                        raise
                else:
                    leader_id, leader_addr, maybe_committed = _forward_detail(reply.detail)
                    if maybe_committed and not idempotent:
                        raise AmbiguousOutcome(op, list(args), "leadership changed") from e
                    if maybe_committed and attempts is not None:
                        attempts.unknown(f"leadership changed at {addr}")
                    if leader_addr is not None and leader_addr != addr:
                        self.leader_addr = addr = leader_addr
                        self.retries += 1
                        continue
                    last = f"node at {addr} knows no leader" if leader_id is None else str(e)
            except (NetworkError, RPCTimeout) as e:
                # A call that timed out before it was connected never sent its request.
                if not isinstance(e, ConnectTimeout):
                    if not idempotent:
                        raise AmbiguousOutcome(op, list(args), str(e)) from e
                    if attempts is not None:
                        attempts.unknown(str(e))
                last = str(e)
            except Unreachable as e:
                if isinstance(e, NodeStopped):
                    if not idempotent:
                        raise AmbiguousOutcome(op, list(args), str(e)) from e
                    if attempts is not None:
                        attempts.unknown(str(e))
                last = str(e)
            else:
                self.leader_addr = addr
                return value
            self.leader_addr = None
            self.retries += 1
            if trio.current_time() + pause >= deadline:
                raise NoLeader(f"{op}: no leader reachable within {self.timeout}s; last: {last}")
            await trio.sleep(pause)
            pause = min(pause * 2, 0.5)
            addr = self._rotate()

    # -- data -----------------------------------------------------------------------------------

    async def write(self, op: str, *args: Any) -> dict[str, Any]:
        """Write ``op`` with ``args`` on the leader: in the client's session (the
        ``session_write`` op carrying ``op`` and ``args``; retried until answered, applied
        once) unless ``sessions=False``; the op's reply dict (see :mod:`._service`).

        ``op`` is a write op of the served state machine: ``put``, ``delete``, ``cas`` or
        ``incr`` of the key-value store, ``call`` of a replicated object
        (:class:`~openraft_trio.objects.ObjectClient` writes through here).

        Raises:
            AmbiguousOutcome: the write may or may not have been applied (module docstring).
            NoLeader: no leader answered within ``timeout`` and nothing was applied.
            SessionsFull: the cluster holds its most sessions (nothing was applied).
        """
        if not self.sessions:
            result: dict[str, Any] = await self.leader_call(op, *args, idempotent=False)
            return result
        deadline = trio.current_time() + self.timeout
        while True:
            session = await self._open_session(deadline)
            seq = await session.take_seq()
            attempts = _Attempts()
            try:
                result = await self.leader_call(
                    "session_write",
                    session.session_id,
                    seq,
                    session.numbers.acked_for(seq),
                    op,
                    list(args),
                    idempotent=True,
                    attempts=attempts,
                    deadline=deadline,
                )
            except RemoteError as e:
                if e.remote is None or e.remote.error_type != "SessionExpired":
                    raise
                session.completed(seq)
                if self._session is session:
                    self._session = None
                if attempts.maybe_applied:
                    raise AmbiguousOutcome(op, list(args), "session expired") from e
                continue  # refused unapplied: send it in a new session
            except NoLeader as e:
                session.completed(seq)
                if attempts.maybe_applied:
                    raise AmbiguousOutcome(op, list(args), attempts.reason) from e
                raise
            except BaseException:
                session.completed(seq)
                raise
            session.completed(seq)
            return result

    async def _open_session(self, deadline: float) -> _Session:
        """The client's session, registered first if there is none."""
        if self._session is not None:
            # No lock, no checkpoint: a yield here splits the writes that would have left
            # together on the connection into smaller batches (measured: 2.7x the CPU per
            # write at 64 in flight, in the client, the leader and the followers).
            return self._session
        async with self._opening:
            if self._session is None:
                # A registration whose outcome is unknown is sent again: the one lost
                # expires unused.
                reply = await self.leader_call("open_session", idempotent=True, deadline=deadline)
                session = _Session(int(reply["session_id"]), int(reply["window"]))
                self._session = session
                self._opened.append(session)
                self.nursery.start_soon(self._keep_alive, session, float(reply["timeout"]))
            return self._session

    async def _keep_alive(self, session: _Session, timeout: float) -> None:
        """While ``session`` is the client's, keep it alive when idle (a third of its
        timeout without a write)."""
        period = timeout / 3
        with session.keep_alive_scope:
            await self._keep_alive_loop(session, period)

    async def _keep_alive_loop(self, session: _Session, period: float) -> None:
        while self._session is session:
            await trio.sleep(period)
            if self._session is not session:
                return
            if trio.current_time() - session.last_used < period:
                continue
            try:
                with trio.move_on_after(period):
                    await self.leader_call(
                        "keep_alive", session.session_id, session.acked_seq, idempotent=True
                    )
                    session.last_used = trio.current_time()
            except RemoteError as e:
                expired = e.remote is not None and e.remote.error_type == "SessionExpired"
                if expired and self._session is session:
                    self._session = None
            except RaftError:
                pass  # tried again next period

    async def put(self, key: str, value: Any) -> Any:
        """Set ``key``; returns the previous value (or None)."""
        return (await self.write("put", key, value))["prev"]

    async def get(
        self,
        key: str,
        *,
        stale: bool = False,
        addr: str | None = None,
        policy: ReadPolicy = ReadPolicy.READ_INDEX,
    ) -> Any:
        """The value of ``key`` (None if absent), linearizable unless ``stale``: then read
        from ``addr`` (default: the first reachable node) as it is.

        ``policy`` says how the leader confirms a linearizable read: ``READ_INDEX`` (a
        quorum round) or ``LEASE_READ`` (no round trip while its lease holds)."""
        if stale:
            return (await self._any_call(addr, "get", key, True))["value"]
        # The default policy is not sent, so older nodes (two arguments) still answer.
        args = [key, False] if policy is ReadPolicy.READ_INDEX else [key, False, policy.value]
        return (await self.leader_call("get", *args, idempotent=True))["value"]

    async def delete(self, key: str) -> Any:
        """Remove ``key``; returns the previous value (or None)."""
        return (await self.write("delete", key))["prev"]

    async def cas(self, key: str, expected: Any, new: Any) -> tuple[bool, Any]:
        """Set ``key`` to ``new`` if it equals ``expected`` (absent == None); returns
        ``(swapped, value_after)``."""
        reply = await self.write("cas", key, expected, new)
        return bool(reply["swapped"]), reply["value"]

    async def incr(self, key: str, delta: int = 1) -> int | None:
        """Add ``delta`` to the integer under ``key`` (absent counts as 0); the new value, or
        None when the value is not an integer. Applied exactly once with sessions."""
        value: int | None = (await self.write("incr", key, delta))["value"]
        return value

    def watch(
        self, prefix: str, *, from_index: int | None = None, max_events: int = DEFAULT_WATCH_EVENTS
    ) -> KvWatch:
        """The changes to keys starting with ``prefix`` (``""``: every key), from log index
        ``from_index`` on (``None``: the changes after those the leader has applied now),
        in log order, as an async iterator of :class:`~openraft_trio.kv.WatchEvent` objects::

            async for event in kv.watch("user:", from_index=last_seen + 1):
                print(event.index, event.kind.value, event.key, event.value)

        It follows the leader across elections and reconnects, and never skips or repeats
        a change (see :class:`KvWatch`). ``max_events`` bounds each long poll's batch.

        Raises:
            InvalidRequest: ``prefix`` is not a ``str``, ``from_index`` is negative, or
                ``max_events`` is not in ``1..1000`` (at once, nothing is sent).
        """
        prefix, from_index, max_events, _ = check_watch_arguments(
            prefix, from_index, max_events, 0.0
        )
        return KvWatch(self, prefix, from_index, max_events)

    # -- admin ----------------------------------------------------------------------------------

    async def init(
        self, members: Mapping[int, str] | None = None, *, addr: str | None = None
    ) -> None:
        """Initialize the cluster through ``addr`` (default: the first address) with
        ``members`` as voters (default: the ``--peers`` the node was started with)."""
        target = addr or self.addrs[0]
        deadline = trio.current_time() + self.timeout
        while True:
            try:
                await self.call(target, "init", dict(members) if members else None)
                return
            except Unreachable as e:  # not connected, so not sent: safe to retry
                if isinstance(e, NodeStopped) or trio.current_time() + 0.05 >= deadline:
                    raise
            await trio.sleep(0.05)

    async def add_learner(self, node_id: int, addr: str, *, blocking: bool = True) -> int:
        """Add learner ``node_id`` at ``addr`` (with ``blocking``, until it nearly caught up); the
        membership entry's index."""
        reply = await self.leader_call("add_learner", node_id, addr, blocking, idempotent=False)
        return int(reply["index"])

    async def change_membership(self, voters: Iterable[int], *, retain: bool = False) -> int:
        """Change the voters to ``voters`` (``retain`` keeps removed voters as learners); the
        index of the new membership's entry."""
        reply = await self.leader_call(
            "change_membership", sorted(voters), retain, idempotent=False
        )
        return int(reply["index"])

    async def remove_learner(self, node_id: int) -> int:
        """Remove learner ``node_id`` from the membership; the membership entry's index."""
        reply = await self.leader_call("remove_learner", node_id, idempotent=False)
        return int(reply["index"])

    async def transfer_leader(self, to: int) -> None:
        """Ask the leader to hand leadership to voter ``to`` (returns once it started;
        a non-voter is refused at once with a ``RemoteError`` of type ``NotAVoter``)."""
        await self.leader_call("transfer_leader", to, idempotent=True)

    async def snapshot(self) -> dict[str, Any]:
        """The leader's snapshot of every write acknowledged before the call (the
        ``snapshot`` op of :mod:`._service`: ``file`` bytes, ``cluster_name``,
        ``node_id``, ``term``, ``index``). Retried like a read: it changes nothing."""
        result: dict[str, Any] = await self.leader_call("snapshot", idempotent=True)
        return result

    async def status(self, addr: str | None = None) -> dict[str, Any]:
        """One node's status (default: the first reachable node)."""
        result: dict[str, Any] = await self._any_call(addr, "status")
        return result

    async def cluster_status(self) -> list[dict[str, Any]]:
        """The status of every node: the given addresses and every member they report.
        An unreachable node is ``{"addr": ..., "error": "..."}``, with its ``id`` when a
        node that answered lists it as a member."""
        addrs = list(self.addrs)
        results: dict[str, dict[str, Any]] = {}
        i = 0
        while i < len(addrs):
            addr = addrs[i]
            i += 1
            try:
                status = await self.call(addr, "status")
            except RaftError as e:
                results[addr] = {"addr": addr, "error": str(e)}
                continue
            results[addr] = status
            for node_addr in status.get("nodes", {}).values():
                if node_addr not in addrs:
                    addrs.append(node_addr)
        # An unreachable node's id, from the membership the others report.
        ids = {
            addr: int(node_id)
            for status in results.values()
            for node_id, addr in status.get("nodes", {}).items()
        }
        for addr, status in results.items():
            if "error" in status and addr in ids:
                status["id"] = ids[addr]
        return [results[a] for a in addrs]

    async def _any_call(self, addr: str | None, op: str, *args: Any) -> Any:
        if addr is not None:
            return await self.call(addr, op, *args)
        last: RaftError | None = None
        for candidate in self.addrs:
            try:
                return await self.call(candidate, op, *args)
            except (Unreachable, NetworkError, RPCTimeout) as e:
                last = e
        assert last is not None
        raise last

    async def aclose(self) -> None:
        """Close the client's session (best effort, briefly) and the connections."""
        session, self._session = self._session, None
        for opened in self._opened:
            opened.keep_alive_scope.cancel()
        if session is not None:
            with trio.move_on_after(min(1.0, self.rpc_timeout)):
                with contextlib.suppress(RaftError):  # else it expires on its own
                    await self.leader_call("close_session", session.session_id, idempotent=True)
        for ch in self._channels.values():
            await ch.aclose()


@final
class KvWatch:
    """An async iterator of the changes of one watch, as
    :class:`~openraft_trio.kv.WatchEvent` objects (made by :meth:`KvClient.watch`).

    Each step long-polls the leader's ``watch`` operation (waiting up to half the client's
    ``rpc_timeout`` for a change) through :meth:`KvClient.leader_call`, so it follows
    leader hints and retries on other nodes as reads do. Every call asks for the changes
    from :attr:`next_index`, the index after the last change it delivered, so a new leader
    or a reconnect neither skips nor repeats one. It never ends by itself.

    A step (``__anext__``) raises:

    * :class:`~openraft_trio.kv.WatchCompacted` when the leader no longer holds the changes
      from :attr:`next_index` (evicted from its history, or before its snapshot or
      restart): read the state again and watch from there;
    * :class:`~openraft_trio.kv.NoLeader` when no leader answered within the client's
      ``timeout``: watch again from :attr:`next_index` to resume;
    * ``RemoteError`` when the node refused the call for another reason.
    """

    def __init__(
        self, client: KvClient, prefix: str, from_index: int | None, max_events: int
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.max_events = max_events
        self.next_index = from_index
        """Where the watch resumes: the index after the last change delivered (after a
        batch with no matching change, after the entries the leader had applied); ``None``
        until the first reply when it started at ``from_index=None``."""
        self._events: collections.deque[WatchEvent] = collections.deque()
        self._after_events: int | None = from_index

    def __aiter__(self) -> KvWatch:
        return self

    async def __anext__(self) -> WatchEvent:
        """The next change (waits for one)."""
        while not self._events:
            await self._poll()
        event = self._events.popleft()
        self.next_index = event.index + 1 if self._events else self._after_events
        return event

    async def _poll(self) -> None:
        client = self.client
        wait = min(client.rpc_timeout / 2, MAX_WATCH_WAIT)
        try:
            reply = await client.leader_call(
                "watch", self.prefix, self.next_index, self.max_events, wait, idempotent=True
            )
        except RemoteError as e:
            compacted = _watch_compacted(e.remote)
            if compacted is not None:
                raise compacted from e
            raise
        try:
            events = [WatchEvent.from_wire(raw) for raw in reply["events"]]
            after = reply["next"]
            if type(after) is not int:
                raise DecodeError(f"next is not an int: {short_repr(after)}")
        except (DecodeError, KeyError, TypeError) as e:
            raise NetworkError(f"malformed watch reply: {short_text(str(e))}") from e
        start = self.next_index
        if start is not None and any(event.index < start for event in events):
            raise NetworkError(f"a watch reply went back before index {start}")
        self._events.extend(events)
        self._after_events = after
        if not events:
            self.next_index = after


def _watch_compacted(reply: Any) -> WatchCompacted | None:
    """The ``WatchCompacted`` an error reply stands for, rebuilt from its ``detail``
    (``[from_index, oldest_index]``), if it is one."""
    if not isinstance(reply, wire.ErrorReply) or reply.error_type != "WatchCompacted":
        return None
    detail = reply.detail
    if type(detail) is list and len(detail) == 2 and all(type(x) is int for x in detail):
        return WatchCompacted(detail[0], detail[1])
    return None


@final
class _Attempts:
    """What the attempts of one call may have done."""

    def __init__(self) -> None:
        self.maybe_applied = False
        self.reason = ""

    def unknown(self, reason: str) -> None:
        self.maybe_applied = True
        self.reason = reason


@final
class _Session:
    """The client's session: the numbering of a :class:`ClientSession`, with flow control
    (at most ``window`` writes beyond the acknowledged ones) and its keep-alive's state."""

    def __init__(self, session_id: int, window: int) -> None:
        self.numbers = ClientSession(session_id)
        self.session_id = session_id
        self.window = window
        self.last_used = trio.current_time()
        self._acked = trio.Event()
        self.keep_alive_scope = trio.CancelScope()

    @property
    def acked_seq(self) -> int:
        return self.numbers.acked_seq

    async def take_seq(self) -> int:
        seq = self.numbers.next_seq()
        while seq > self.acked_seq + self.window:
            await self._acked.wait()
        self.last_used = trio.current_time()
        return seq

    def completed(self, seq: int) -> None:
        before = self.acked_seq
        self.numbers.completed(seq)
        if self.acked_seq > before:
            self._acked.set()
            self._acked = trio.Event()


def _forward_detail(detail: Any) -> tuple[int | None, str | None, bool]:
    if type(detail) is list and len(detail) == 3:
        leader_id, addr, maybe = detail
        return (
            leader_id if type(leader_id) is int else None,
            addr if type(addr) is str else None,
            maybe is True,
        )
    return None, None, True


@asynccontextmanager
async def open_kv_client(
    addrs: Iterable[str],
    *,
    cluster_name: str = DEFAULT_CLUSTER_NAME,
    ssl_context: ssl.SSLContext | None = None,
    timeout: float = 10.0,
    rpc_timeout: float = 3.0,
    sessions: bool = True,
) -> AsyncIterator[KvClient]:
    """A :class:`KvClient` for the cluster at ``addrs``; its session and connections close
    on exit. ``sessions=False`` writes without a session (see the module docstring)."""
    async with background_nursery() as nursery:
        client = KvClient(
            nursery,
            addrs,
            cluster_name=cluster_name,
            ssl_context=ssl_context,
            timeout=timeout,
            rpc_timeout=rpc_timeout,
            sessions=sessions,
        )
        try:
            yield client
        finally:
            await client.aclose()
