"""Simulated clients: the operations they issue and the history they record.

Each client picks an operation on a small key set (so operations contend), sends it to the
node it believes leads, follows ``ForwardToLeader`` hints, and records an
:class:`~openraft_trio.testing.linearizability.Operation` with virtual call/return times:

* a write that returned: its reply;
* a write whose outcome is unknown (timed out, node stopped, or leadership lost after it
  was appended — ``ForwardToLeader.maybe_committed``): ``ret=inf, output=None``;
* a write refused before it was appended, or a read that failed: nothing (no effect);
* a linearizable read: ``ensure_linearizable`` on the node, then its state machine's value.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any

import trio

from ..._errors import ForwardToLeader, QuorumNotEnough, Stopped
from ..._types import ReadPolicy
from ...kv import CompareAndSwap, Delete, Get, Set
from ..linearizability import Operation

KEYS = ("a", "b", "c", "d")


class Workload:
    def __init__(
        self,
        cluster: Any,
        seed: int,
        now: Callable[[], float],
        on_ack: Callable[[Any], None],
        *,
        think_time: tuple[float, float] = (0.05, 0.4),
        op_timeout: float = 1.0,
    ) -> None:
        self.cluster = cluster
        self.seed = seed
        self.now = now
        self.on_ack = on_ack
        self.think_time = think_time
        self.op_timeout = op_timeout
        self.history: list[Operation] = []
        self.writes_acked = 0
        self.writes_unknown = 0
        self.reads_ok = 0
        self.failed = 0

    async def client(self, cid: int, stop_at: float) -> None:
        rng = random.Random(f"{self.seed}-client-{cid}")
        guess: int | None = None
        seen: dict[str, Any] = {}
        n = 0
        while self.now() < stop_at:
            await trio.sleep(rng.uniform(*self.think_time))
            if self.now() >= stop_at:
                return
            ids = self.cluster.node_ids
            if not ids:
                continue
            target: int = guess if guess is not None and guess in self.cluster.nodes else rng.choice(ids)
            node = self.cluster.nodes[target]
            key = rng.choice(KEYS)
            n += 1
            roll = rng.random()
            if roll < 0.3:
                guess = await self._read(cid, node, target, key, rng, guess)
                continue
            value = f"{cid}.{n}"
            req: Any
            if roll < 0.65:
                req = Set(key, value)
            elif roll < 0.75:
                req = Delete(key)
            else:
                req = CompareAndSwap(key, seen.get(key), value)
            guess = await self._write(cid, node, target, req, seen, guess)

    async def _write(
        self, cid: int, node: Any, target: int, req: Any, seen: dict[str, Any], guess: int | None
    ) -> int | None:
        call = self.now()
        try:
            with trio.fail_after(self.op_timeout):
                resp = await node.client_write(req)
        except ForwardToLeader as e:
            if e.maybe_committed:
                self._unknown(cid, req, call)
            return e.leader_id
        except (Stopped, trio.TooSlowError):
            self._unknown(cid, req, call)
            return None
        self.history.append(Operation(cid, req, resp.data, call, self.now()))
        self.writes_acked += 1
        self.on_ack(resp.log_id)
        if isinstance(req, Set):
            seen[req.key] = req.value
        elif isinstance(req, Delete):
            seen[req.key] = None
        else:
            seen[req.key] = resp.data[1]
        return target if guess is None else guess

    def _unknown(self, cid: int, req: Any, call: float) -> None:
        self.history.append(Operation(cid, req, None, call, math.inf))
        self.writes_unknown += 1

    async def _read(
        self, cid: int, node: Any, target: int, key: str, rng: random.Random, guess: int | None
    ) -> int | None:
        policy = ReadPolicy.LEASE_READ if rng.random() < 0.5 else ReadPolicy.READ_INDEX
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
        sm = self.cluster.state_machines[target]
        value = sm.get(key)
        self.history.append(Operation(cid, Get(key), value, call, self.now()))
        self.reads_ok += 1
        return target if guess is None else guess
