"""The nemesis: one fault at a time on a :class:`ProcessCluster`, each healed before the next,
so at most one node is out and a majority stays up.

* ``kill``: SIGKILL a node (a crash: nothing flushed after the last fsync survives), keep
  it down a while, restart it on the same data directory.
* ``pause``: SIGSTOP a node, keep it stopped a while (its peers and clients see a silent
  node with open connections; its clock keeps running), SIGCONT it.
* ``transfer``: ask the leader to hand its leadership to another voter (the admin op);
  half the time, then SIGSTOP the former leader for less than one lease
  (``transfer_pause``), so that it learns of its successor late while its own lease has
  not run out: a lease it should have given up would let it serve reads that the new
  leader's writes have made stale.

Kills and pauses hit the leader with probability ``leader_bias``, else a node drawn at
random. The kinds come round in a shuffled cycle, so ``k`` faults cover ``k`` kinds. The
choices are drawn from a ``random.Random`` seeded from the run's seed, a fixed number of
draws per fault; which node leads comes from the cluster, so a replay repeats the choices
but not necessarily their targets.
"""

from __future__ import annotations

import random
import signal
from collections.abc import Callable, Sequence
from typing import final

import attrs
import trio

from ..._errors import RaftError
from ..processes import ProcessCluster
from ._history import FaultKind, FaultRecord, History


@final
@attrs.frozen
class NemesisOptions:
    """What the nemesis does and how often.

    Attributes:
        kinds: the faults it injects (none: it only waits).
        interval: seconds between the end of one fault and the start of the next.
        down_time: seconds a killed node stays down.
        pause_time: seconds a paused node stays stopped: half the pauses are drawn from
            the first range, around the leader lease (``election_timeout_max``, 0.3 s by
            default), where a lease that outlives its leadership would show; half from the
            second, long enough for an election.
        transfer_pause: seconds the former leader is stopped after half the transfers
            (shorter than the lease, 0.3 s by default).
        leader_bias: the probability that a kill or pause hits the leader.
    """

    kinds: tuple[FaultKind, ...] = tuple(FaultKind)
    interval: tuple[float, float] = (1.0, 3.0)
    down_time: tuple[float, float] = (0.2, 1.5)
    pause_time: tuple[tuple[float, float], tuple[float, float]] = ((0.05, 0.5), (0.5, 2.0))
    transfer_pause: tuple[float, float] = (0.02, 0.25)
    leader_bias: float = 0.7


class Nemesis:
    """Injects faults into ``cluster`` and records them in ``history``."""

    def __init__(
        self,
        cluster: ProcessCluster,
        history: History,
        options: NemesisOptions,
        *,
        seed: int,
        now: Callable[[], float],
    ) -> None:
        self.cluster = cluster
        self.history = history
        self.options = options
        self.now = now
        self.rng = random.Random(f"{seed}-nemesis")
        self._cycle: list[FaultKind] = []
        #: Nodes found exited that the nemesis did not kill (each one a failure of the run).
        self.crashes: list[str] = []

    async def run(self, stop_at: float) -> None:
        """Inject faults until ``stop_at``; every fault is healed when this returns. Between
        faults (with no fault kinds: every interval) it looks for nodes that died."""
        while True:
            gap = self.rng.uniform(*self.options.interval)
            if self.now() + gap >= stop_at:
                break
            await trio.sleep(gap)
            await self.restart_crashed()
            if self.options.kinds:
                await self.inject_one()
        await trio.sleep(max(0.0, stop_at - self.now()))
        await self.restart_crashed()

    def _next_kind(self) -> FaultKind:
        if not self._cycle:
            self._cycle = sorted(self.options.kinds, key=lambda kind: kind.value)
            self.rng.shuffle(self._cycle)
        return self._cycle.pop()

    async def inject_one(self) -> FaultRecord | None:
        """One fault, healed before returning; ``None`` if there was no leader to act on."""
        kind = self._next_kind()
        node_ids = sorted(self.cluster.nodes)
        # A fixed number of draws whatever happens, so the schedule replays.
        on_leader = self.rng.random() < self.options.leader_bias
        anyone = self.rng.choice(node_ids)
        pick = self.rng.random()
        short = self.rng.random() < 0.5
        if kind is FaultKind.KILL:
            hold = self.rng.uniform(*self.options.down_time)
        elif kind is FaultKind.TRANSFER:
            hold = self.rng.uniform(*self.options.transfer_pause)
        else:
            hold = self.rng.uniform(*self.options.pause_time[0 if short else 1])
        leader = await self._leader()
        if kind is FaultKind.TRANSFER:
            if leader is None:
                return None
            others = [n for n in node_ids if n != leader]
            return await self._transfer(
                leader, others[int(pick * len(others))], hold if short else None
            )
        target = leader if on_leader and leader is not None else anyone
        record = FaultRecord(kind, target, target == leader, self.now())
        self.history.faults.append(record)
        if kind is FaultKind.KILL:
            await self.cluster.kill(target, signal.SIGKILL)
            record.detail = f"down {hold:.2f} s"
            await trio.sleep(hold)
            await self.cluster.start(target)
        else:
            record.detail = f"stopped {hold:.2f} s"
            await self._pause(target, hold)
        record.end = self.now()
        return record

    async def _pause(self, node_id: int, seconds: float) -> None:
        process = self.cluster.nodes[node_id].process
        assert process is not None
        process.send_signal(signal.SIGSTOP)
        try:
            await trio.sleep(seconds)
        finally:
            process.send_signal(signal.SIGCONT)

    async def _transfer(self, leader: int, to: int, then_pause: float | None) -> FaultRecord:
        """Ask ``leader`` to hand over to ``to``; then, if ``then_pause``, SIGSTOP the
        former leader for that long."""
        record = FaultRecord(FaultKind.TRANSFER, leader, True, self.now(), detail=f"to node {to}")
        self.history.faults.append(record)
        addr = self.cluster.nodes[leader].addr
        async with self.cluster.client([addr], rpc_timeout=2.0) as kv:
            try:
                await kv.call(addr, "transfer_leader", to)
            except RaftError as e:
                record.detail += f", refused: {type(e).__name__}: {e}"
        if then_pause is not None:
            record.detail += f", then node {leader} stopped {then_pause:.2f} s"
            await self._pause(leader, then_pause)
        record.end = self.now()
        return record

    async def _leader(self) -> int | None:
        """The node that says it leads (the one with the highest term if several do)."""
        statuses = await self.cluster.statuses()
        leaders = [s for s in statuses.values() if s["state"] == "LEADER"]
        if not leaders:
            return None
        leader: int = max(leaders, key=lambda s: s["term"])["id"]
        return leader

    async def restart_crashed(self) -> None:
        """Record every node that exited on its own (between faults every node should be
        running) and start it again, so the run goes on."""
        for node_id, node in sorted(self.cluster.nodes.items()):
            if node.process is not None and not node.running:
                self.crashes.append(
                    f"node {node_id} exited on its own with status {node.process.returncode} "
                    f"(before {self.now():.3f} s); log:\n{self.cluster.log_tail(node_id)}"
                )
                await self.cluster.start(node_id)

    async def heal(self, node_ids: Sequence[int] | None = None) -> None:
        """Resume every paused node and start every stopped one."""
        for node_id in node_ids or sorted(self.cluster.nodes):
            node = self.cluster.nodes[node_id]
            if node.running:
                assert node.process is not None
                node.process.send_signal(signal.SIGCONT)
            else:
                await self.cluster.start(node_id)
