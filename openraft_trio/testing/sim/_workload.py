"""What simulated clients do, and the history they record.

A :class:`SimWorkload` describes the replicated application under test: how to make its
state machine, the sequential :class:`~openraft_trio.testing.linearizability.Model` its
history is checked against, which operation a client issues next, and how a read is served
from a node's state machine. :class:`KvWorkload` is the one for ``openraft_trio.kv``; write
your own to run your state machine through the simulator.

:class:`Clients` drives the clients. Each sends its operation to the node it believes
leads, follows ``ForwardToLeader`` hints, and records an
:class:`~openraft_trio.testing.linearizability.Operation` with virtual call/return times:

* a write that returned: its reply;
* a write whose outcome is unknown (timed out, node stopped, or leadership lost after it
  was appended — ``ForwardToLeader.maybe_committed``): ``ret=inf, output=None``; such a
  ``ForwardToLeader`` carries the write's log id, which ``on_unknown`` gets with the node
  (the runner checks that node had not committed it when it stepped down: a committed
  write must be answered as such);
* a write refused before it was appended, or a read that failed: nothing (no effect);
* a read: ``ensure_linearizable`` on the node, then ``workload.read`` on its state machine
  with no checkpoint in between.

With a workload whose ``sessions`` attribute is true (:class:`KvWorkload` by default),
every client writes in a client session (:mod:`openraft_trio.sessions`): it registers one
first, sends each write as a ``SessionCommand`` and, when the outcome is unknown, sends it
again with the same sequence number (to the hinted leader, else another node) until it is
answered or ``retry_for`` virtual seconds have passed. The history then holds one
operation per write, from its first sending to its answer; the ones still unanswered at
the end are the ambiguous ones (``ret=inf``).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any, Protocol, final, runtime_checkable

import cbor2
import trio

from ..._errors import ForwardToLeader, QuorumNotEnough, Stopped
from ..._types import ReadPolicy
from ...kv import CompareAndSwap, Delete, Get, Increment, KvStateMachine, Set
from ...sessions import ClientSession, Expired, OpenSession, refusal, table_to_plain
from ..linearizability import KvModel, Model, Operation


@runtime_checkable
class SimWorkload(Protocol):
    """The application a simulation replicates (see the module docstring).

    Optional: a method ``liveness_command(seed) -> command``, the write the liveness check
    commits after the network heals (it is not part of the client history, so it should
    leave what the model sees unchanged, e.g. adding 0). Without it the simulator writes the
    KV command ``openraft_trio.kv.Set("__liveness__", seed)``, which the state machine must
    then ignore.
    """

    def new_state_machine(self) -> Any:
        """A fresh ``RaftStateMachine`` (one per node start; restarts replay the log)."""

    def model(self) -> Model:
        """The sequential specification the client history must be linearizable against."""

    def next_op(self, rng: random.Random, client_id: int) -> tuple[Any, bool]:
        """The next request of ``client_id`` and whether it is a read (drawn from ``rng``)."""

    def read(self, state_machine: Any, request: Any) -> Any:
        """Serve read ``request`` from a node's state machine (after ensure_linearizable)."""

    def on_reply(self, client_id: int, request: Any, reply: Any) -> None:
        """A client saw ``reply`` (to pick plausible next requests, e.g. CAS values)."""

    def state(self, state_machine: Any) -> Any:
        """A comparable picture of a state machine: replicas must end equal."""


@final
class KvWorkload:
    """Set / Delete / CompareAndSwap / Increment / Get on a few contended keys of
    ``KvStateMachine``, written in client sessions unless ``sessions`` is false (then a
    write of unknown outcome is not retried). An ``Increment`` applied twice breaks the
    history's linearizability, so the check sees a session that fails to deduplicate."""

    def __init__(
        self,
        keys: tuple[str, ...] = ("a", "b", "c", "d"),
        read_share: float = 0.3,
        *,
        sessions: bool = True,
        session_timeout: float = 20.0,
    ):
        self.keys = keys
        self.read_share = read_share
        self.sessions = sessions
        self.session_timeout = session_timeout
        self._seen: dict[tuple[int, str], Any] = {}
        self._n: dict[int, int] = {}

    def new_state_machine(self) -> KvStateMachine:
        """A fresh ``KvStateMachine``."""
        return KvStateMachine(session_timeout=self.session_timeout)

    def model(self) -> Model:
        """The linearizability model of the key-value store (``KvModel``)."""
        return KvModel()

    def next_op(self, rng: random.Random, client_id: int) -> tuple[Any, bool]:
        """The next request of ``client_id`` and whether it is a read (drawn from ``rng``)."""
        key = rng.choice(self.keys)
        n = self._n[client_id] = self._n.get(client_id, 0) + 1
        roll = rng.random()
        if roll < self.read_share:
            return Get(key), True
        value = f"{client_id}.{n}"  # unique values make the history check sharp
        # The writes: 35 % Set, 15 % Delete, 20 % Increment, 30 % CompareAndSwap.
        write = (roll - self.read_share) / (1.0 - self.read_share)
        if write < 0.35:
            return Set(key, value), False
        if write < 0.5:
            return Delete(key), False
        if write < 0.7:
            return Increment(key, rng.randint(1, 3)), False
        return CompareAndSwap(key, self._seen.get((client_id, key)), value), False

    def read(self, state_machine: Any, request: Any) -> Any:
        """The value of the request's key in ``state_machine``."""
        return state_machine.get(request.key)

    def state(self, state_machine: Any) -> Any:
        """The state machine's data and session table (in CBOR, where a tuple and a list
        are alike): replicas must end equal, sessions expired at the same index."""
        return state_machine.data, cbor2.dumps(table_to_plain(state_machine.sessions))

    def on_reply(self, client_id: int, request: Any, reply: Any) -> None:
        """Remember the value ``client_id`` last saw for the request's key (the next CAS expects
        it)."""
        if isinstance(request, Set):
            self._seen[(client_id, request.key)] = request.value
        elif isinstance(request, Delete):
            self._seen[(client_id, request.key)] = None
        elif isinstance(request, CompareAndSwap):
            self._seen[(client_id, request.key)] = reply[1]
        elif isinstance(request, Increment | Get):
            self._seen[(client_id, request.key)] = reply


class Clients:
    def __init__(
        self,
        cluster: Any,
        seed: int,
        now: Callable[[], float],
        on_ack: Callable[[Any], None],
        *,
        workload: SimWorkload | None = None,
        think_time: tuple[float, float] = (0.05, 0.4),
        op_timeout: float = 1.0,
        retry_for: float = 5.0,
        on_unknown: Callable[[Any, int], None] | None = None,
    ) -> None:
        self.on_unknown = on_unknown
        self.cluster = cluster
        self.seed = seed
        self.now = now
        self.on_ack = on_ack
        self.workload: SimWorkload = workload if workload is not None else KvWorkload()
        self.think_time = think_time
        self.op_timeout = op_timeout
        self.retry_for = retry_for
        self.sessions: dict[int, ClientSession] = {}
        # Writes sent again after an unknown outcome, and sessions that expired meanwhile.
        self.writes_retried = 0
        self.sessions_expired = 0
        self.history: list[Operation] = []
        self.writes_acked = 0
        self.writes_unknown = 0
        self.reads_ok = 0
        # Reads served, per policy (a sweep checks that both policies were exercised).
        self.reads_ok_by_policy: dict[ReadPolicy, int] = dict.fromkeys(ReadPolicy, 0)
        self.failed = 0

    async def client(self, cid: int, stop_at: float) -> None:
        rng = random.Random(f"{self.seed}-client-{cid}")
        guess: int | None = None
        while self.now() < stop_at:
            await trio.sleep(rng.uniform(*self.think_time))
            if self.now() >= stop_at:
                return
            ids = self.cluster.node_ids
            if not ids:
                continue
            target: int = guess if guess is not None and guess in self.cluster.nodes else rng.choice(ids)
            node = self.cluster.nodes[target]
            request, is_read = self.workload.next_op(rng, cid)
            if is_read:
                policy = ReadPolicy.LEASE_READ if rng.random() < 0.5 else ReadPolicy.READ_INDEX
                guess = await self.read(cid, node, target, request, policy, guess)
            else:
                guess = await self.write(cid, node, target, request, guess)

    async def write(
        self, cid: int, node: Any, target: int, req: Any, guess: int | None
    ) -> int | None:
        if getattr(self.workload, "sessions", False):
            return await self.session_write(cid, target, req, guess)
        call = self.now()
        try:
            with trio.fail_after(self.op_timeout):
                resp = await node.client_write(req)
        except ForwardToLeader as e:
            if e.maybe_committed:
                self._unknown(cid, req, call)
                if e.log_id is not None and self.on_unknown is not None:
                    self.on_unknown(e.log_id, target)
            return e.leader_id
        except (Stopped, trio.TooSlowError):
            self._unknown(cid, req, call)
            return None
        self.history.append(Operation(cid, req, resp.data, call, self.now()))
        self.writes_acked += 1
        self.on_ack(resp.log_id)
        self.workload.on_reply(cid, req, resp.data)
        return target if guess is None else guess

    async def session_write(
        self, cid: int, target: int, req: Any, guess: int | None
    ) -> int | None:
        """Write ``req`` in ``cid``'s session, sending it again after unknown outcomes."""
        call = self.now()
        session = self.sessions.get(cid) or await self._open_session(cid, target)
        if session is None:
            return None
        call_ = session.call(req)
        maybe_applied = False
        while True:
            node = self.cluster.nodes.get(target)
            hinted: int | None = None
            if node is not None:
                entry = session.command(call_.seq, req, self.now())
                try:
                    with trio.fail_after(self.op_timeout):
                        resp = await node.client_write(entry)
                except ForwardToLeader as e:
                    if e.maybe_committed:
                        maybe_applied = True
                        if e.log_id is not None and self.on_unknown is not None:
                            self.on_unknown(e.log_id, target)
                    if e.leader_id is not None and e.leader_id != target:
                        hinted = e.leader_id
                except (Stopped, trio.TooSlowError):
                    maybe_applied = True
                else:
                    reply = resp.data
                    if isinstance(reply, Expired):
                        # The session expired while this write waited: its fate is lost
                        # if it had been sent before; else it was not applied.
                        self.sessions_expired += 1
                        self.sessions.pop(cid, None)
                        if maybe_applied:
                            self._unknown(cid, req, call)
                        return None
                    error = refusal(reply, sent_before=maybe_applied)
                    if error is not None:  # a bug in this client or in the table
                        raise AssertionError(f"client {cid}: {error}")
                    session.completed(call_.seq)
                    self.history.append(Operation(cid, req, reply, call, self.now()))
                    self.writes_acked += 1
                    self.on_ack(resp.log_id)
                    self.workload.on_reply(cid, req, reply)
                    return target
            if self.now() - call >= self.retry_for:
                session.completed(call_.seq)  # given up: its reply is not needed
                if maybe_applied:
                    self._unknown(cid, req, call)
                return None
            self.writes_retried += 1
            # Not at once even when hinted: two stale hints may point at each other.
            await trio.sleep(0.01 if hinted is not None else 0.05)
            target = hinted if hinted is not None else self._next_target(target)

    def _next_target(self, target: int) -> int:
        """Where to send a write again: the leader if there is one, else the next node."""
        leader: int | None = self.cluster.leader_id()
        if leader is not None:
            return leader
        ids: list[int] = self.cluster.node_ids
        if not ids:
            return target
        return ids[(ids.index(target) + 1) % len(ids)] if target in ids else ids[0]

    async def _open_session(self, cid: int, target: int) -> ClientSession | None:
        """Register ``cid``'s session through ``target``; None if that failed (an unknown
        outcome at worst leaves a session that expires unused)."""
        node = self.cluster.nodes.get(target)
        if node is None:
            return None
        try:
            with trio.fail_after(self.op_timeout):
                resp = await node.client_write(OpenSession(self.now()))
        except (ForwardToLeader, Stopped, trio.TooSlowError):
            return None
        if not isinstance(resp.data, int):
            return None  # the table is full
        session = self.sessions[cid] = ClientSession(resp.data, clock=self.now)
        return session

    def _unknown(self, cid: int, req: Any, call: float) -> None:
        self.history.append(Operation(cid, req, None, call, math.inf))
        self.writes_unknown += 1

    async def read(
        self, cid: int, node: Any, target: int, req: Any, policy: ReadPolicy, guess: int | None
    ) -> int | None:
        call = self.now()
        try:
            with trio.fail_after(self.op_timeout):
                await node.ensure_linearizable(policy)
        except ForwardToLeader as e:
            self.failed += 1
            return e.leader_id
        except (QuorumNotEnough, Stopped, trio.TooSlowError):
            self.failed += 1
            return None
        # No checkpoint between the confirmation and the read of this node's state machine.
        value = self.workload.read(self.cluster.state_machines[target], req)
        self.history.append(Operation(cid, req, value, call, self.now()))
        self.reads_ok += 1
        self.reads_ok_by_policy[policy] += 1
        self.workload.on_reply(cid, req, value)
        return target if guess is None else guess
