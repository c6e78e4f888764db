"""The clients: concurrent :class:`~openraft_trio.kv.KvClient` s doing put, delete, cas and
linearizable gets (``READ_INDEX`` and ``LEASE_READ``) on a few keys, recording each
operation in the :class:`History`.

An operation goes either the usual way, to the leader the client knows, following
``ForwardToLeader`` hints and retrying where that is safe; or *direct*: once to a node
drawn at random, with a short timeout, as a client bound to one node would. Direct
operations keep reaching every node while the clients that follow the leader wait on one
that stopped answering: a paused former leader still gets reads, and a new leader gets
writes, which is how a lease that outlived its leadership shows.

The requests come from the simulator's :class:`~openraft_trio.testing.sim.KvWorkload`
(unique values per write, so a read names the write it saw; a cas expects the value its
client saw last). Every choice is drawn from the client's own ``random.Random`` seeded
from the run's seed, a fixed number of draws per operation, so the sequence of requests
replays; their timing and replies depend on the OS.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any, final

import attrs
import trio

from ..._errors import RaftError, RemoteError, Unreachable
from ..._types import ReadPolicy
from ...kv import AmbiguousOutcome, CompareAndSwap, Delete, Get, Increment, KvClient, Set
from ...kv._client import _forward_detail as forward_detail
from ...network import _wire as wire
from ...network._client import NodeStopped
from ..sim._workload import KvWorkload
from ._history import History, OpKind, OpOutcome, OpRecord


@final
@attrs.frozen
class ClientOptions:
    """How the clients behave.

    Attributes:
        count: how many clients run concurrently (each its own connections).
        keys: the keys they share.
        read_share: the share of operations that are gets.
        lease_share: the share of gets that use ``LEASE_READ`` (the rest ``READ_INDEX``).
        think_time: seconds a client waits before each operation (uniform in this range).
        op_timeout: seconds an operation may take, retries included; a write still
            pending then has an unknown outcome, a read failed.
        rpc_timeout: seconds each single call may take.
        direct_share: the share of operations sent direct (see the module docstring).
        direct_timeout: seconds a direct operation may take.
    """

    count: int = 5
    keys: tuple[str, ...] = ("k0", "k1", "k2", "k3")
    read_share: float = 0.5
    lease_share: float = 0.5
    think_time: tuple[float, float] = (0.0, 0.02)
    op_timeout: float = 5.0
    rpc_timeout: float = 1.0
    direct_share: float = 0.3
    direct_timeout: float = 1.0


_OP_KINDS: Mapping[type, OpKind] = {
    Set: OpKind.PUT,
    Delete: OpKind.DELETE,
    CompareAndSwap: OpKind.CAS,
    Increment: OpKind.INCR,
}


class Clients:
    """Runs the clients against a cluster and records what they saw.

    Args:
        history: where operations are recorded.
        seed: the run's seed (each client's ``random.Random`` is derived from it).
        now: the driver's clock, in seconds since the run started.
        node_ids: ``{address: node id}``, to name the node that served an operation.
    """

    def __init__(
        self,
        history: History,
        options: ClientOptions,
        *,
        seed: int,
        now: Callable[[], float],
        node_ids: Mapping[str, int],
    ) -> None:
        self.history = history
        self.options = options
        self.seed = seed
        self.now = now
        self.node_ids = dict(node_ids)
        self.workload = KvWorkload(keys=options.keys, read_share=options.read_share)

    async def worker(
        self, client_id: int, kv: KvClient, direct: KvClient, stop_at: float
    ) -> None:
        """Issue operations until ``stop_at`` (on :attr:`now`'s clock); ``direct`` is the
        client for direct operations (its ``rpc_timeout`` is their timeout)."""
        rng = random.Random(f"{self.seed}-client-{client_id}")
        addrs = sorted(self.node_ids, key=self.node_ids.__getitem__)
        while True:
            think = rng.uniform(*self.options.think_time)
            request, _ = self.workload.next_op(rng, client_id)
            lease = rng.random() < self.options.lease_share
            to = rng.choice(addrs) if rng.random() < self.options.direct_share else None
            await trio.sleep(think)
            if self.now() >= stop_at:
                return
            if isinstance(request, Get):
                kind = OpKind.GET_LEASE if lease else OpKind.GET_READ_INDEX
            else:
                kind = _OP_KINDS[type(request)]
            if to is None:
                reply = await self.run_one(client_id, kv, kind, request)
            else:
                reply = await self.run_one(client_id, direct, kind, request, to)
            if reply is not _NO_REPLY:
                self.workload.on_reply(client_id, request, reply)

    async def run_one(
        self, client_id: int, kv: KvClient, kind: OpKind, request: Any, to: str | None = None
    ) -> Any:
        """Run one operation and record it (direct to the node at ``to``, if given); its
        reply, or ``_NO_REPLY`` if it did not succeed."""
        record = OpRecord(client_id, kind, request, call=self.now())
        if to is not None:
            record.direct_to = self.node_ids[to]
        self.history.ops.append(record)
        try:
            with trio.fail_after(self.options.op_timeout + 2 * self.options.rpc_timeout):
                if to is None:
                    reply = await _send(kv, kind, request)
                else:
                    reply = await _send_direct(kv, to, kind, request)
        except AmbiguousOutcome as e:
            self._end(record, OpOutcome.FAIL if kind.is_read else OpOutcome.UNKNOWN, e)
            return _NO_REPLY
        except (_Refused, Unreachable) as e:
            # A non-leader refused it before appending it, or it was never sent (no
            # connection; ``NoLeader``: every attempt was one of those), unless the node
            # stopped while handling it: no effect.
            outcome = OpOutcome.UNKNOWN
            if kind.is_read or not isinstance(e, NodeStopped):
                outcome = OpOutcome.FAIL
            self._end(record, outcome, e)
            return _NO_REPLY
        except (RaftError, trio.TooSlowError) as e:
            # A read that failed had no effect; a write that may have been sent has an
            # unknown outcome.
            self._end(record, OpOutcome.FAIL if kind.is_read else OpOutcome.UNKNOWN, e)
            return _NO_REPLY
        record.ret = self.now()
        record.outcome = OpOutcome.OK
        record.reply = reply
        record.served_by = self.node_ids.get(to or kv.leader_addr or "")
        return reply

    def _end(self, record: OpRecord, outcome: OpOutcome, error: BaseException) -> None:
        record.ret = self.now()
        record.outcome = outcome
        record.error = f"{_error_name(error)}: {error}"

    async def final_reads(self, kv: KvClient, client_id: int, keys: Sequence[str]) -> None:
        """A ``READ_INDEX`` and a ``LEASE_READ`` get of every key, recorded like the others:
        once the faults are healed, these pin each key's final value into the history."""
        for key in keys:
            for kind in (OpKind.GET_READ_INDEX, OpKind.GET_LEASE):
                await self.run_one(client_id, kv, kind, Get(key))


class _NoReply:
    pass


_NO_REPLY: Any = _NoReply()


def _error_name(error: BaseException) -> str:
    """The error's type; for an error the node answered with, the node's error type."""
    if isinstance(error, _Refused):
        return "ForwardToLeader"
    if isinstance(error, RemoteError) and isinstance(error.remote, wire.ErrorReply):
        return f"{error.remote.error_type}"
    return type(error).__name__


class _Refused(RaftError):
    """A non-leader refused a direct write before appending it."""


_OPS = {OpKind.PUT: "put", OpKind.DELETE: "delete", OpKind.CAS: "cas", OpKind.INCR: "incr"}


async def _send_direct(kv: KvClient, addr: str, kind: OpKind, request: Any) -> Any:
    """One call to the node at ``addr``, no retries; the reply as :func:`_send` gives it."""
    if kind.is_read:
        policy = ReadPolicy.LEASE_READ if kind is OpKind.GET_LEASE else ReadPolicy.READ_INDEX
        return (await kv.call(addr, "get", request.key, False, policy.value))["value"]
    args = attrs.astuple(request, recurse=False)
    try:
        reply = await kv.call(addr, _OPS[kind], *args)
    except RemoteError as e:
        error = e.remote
        if (
            isinstance(error, wire.ErrorReply)
            and error.error_type == "ForwardToLeader"
            and not forward_detail(error.detail)[2]
        ):
            raise _Refused(str(e)) from e
        raise
    if kind is OpKind.CAS:
        return bool(reply["swapped"]), reply["value"]
    if kind is OpKind.INCR:
        return reply["value"]
    return reply["prev"]


async def _send(kv: KvClient, kind: OpKind, request: Any) -> Any:
    if kind is OpKind.PUT:
        return await kv.put(request.key, request.value)
    if kind is OpKind.DELETE:
        return await kv.delete(request.key)
    if kind is OpKind.CAS:
        return await kv.cas(request.key, request.expected, request.new)
    if kind is OpKind.INCR:
        return await kv.incr(request.key, request.delta)
    policy = ReadPolicy.LEASE_READ if kind is OpKind.GET_LEASE else ReadPolicy.READ_INDEX
    return await kv.get(request.key, policy=policy)
