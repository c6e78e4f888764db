"""``run_simulation``: one seeded, replayable run of a whole cluster.

Everything happens inside one ``trio.run`` under ``MockClock(autojump_threshold=0)`` with
trio's deterministic scheduling switched on and seeded (DESIGN.md §5), and every random
choice (latency, loss, faults, clients, election timeouts, clock rates) is drawn from
generators seeded by ``seed``: one seed always produces the same run and the same
``trace_hash``.

A run has three phases:

1. **faults** (``duration`` virtual seconds): clients issue operations while the nemesis
   injects the faults of the :class:`FaultPlan`;
2. **liveness**: the network heals, crashed nodes restart, and the cluster must elect a
   leader and commit a write within 10 election timeouts;
3. **checks**: replicas converge, every acknowledged write is committed, and the client
   history must be linearizable (:mod:`openraft_trio.testing.linearizability`).

Safety invariants are checked after every core round of every node throughout.
"""

from __future__ import annotations

import contextlib
import random
import time
import traceback
from collections import Counter
from typing import Any, final

import attrs
import trio
import trio.testing

from ..._config import Config
from ..._errors import ForwardToLeader, RaftError
from ..._types import Node, ReadPolicy, ServerState
from ...kv import Get, KvStateMachine, Set
from .._cluster import Cluster, open_cluster
from ..crashfs import CrashFS
from ..deterministic import run_deterministic
from ..linearizability import CheckResult, Operation, Outcome, check
from ._faults import FaultPlan
from ._invariants import InvariantChecker, Violation
from ._trace import Trace
from ._workload import Clients, KvWorkload, SimWorkload

LINEARIZABILITY_BUDGET = 10_000_000
#: Reads a race probe keeps in flight at most.
PROBE_READS = 8
#: Writes a race probe keeps in flight at most.
PROBE_WRITES = 2


@final
@attrs.frozen
class SimStats:
    """What a simulation run did: commits, elections, faults injected (by kind), client
    operations and their outcomes, messages sent, dropped and duplicated, virtual and wall
    time, and the evidence that each kind of fault in the plan happened."""

    commits: int
    elections: int
    faults_injected: int
    fault_counts: dict[str, int]
    operations: int
    writes_acked: int
    writes_unknown: int
    reads_ok: int
    messages: int
    dropped: int
    duplicated: int
    virtual_time: float
    wall_time: float
    trace_events: int
    snapshots: int = 0
    max_purged: int = -1
    # Evidence that the fault plan happened (a sweep fails if an enabled kind never did).
    snapshot_installs: int = 0
    reads_lease_ok: int = 0
    reads_index_ok: int = 0
    transfers_ok: int = 0
    membership_changes_ok: int = 0
    probes: int = 0
    # Client sessions: writes sent again after an unknown outcome; sessions that expired
    # under a waiting write.
    writes_retried: int = 0
    sessions_expired: int = 0


@final
@attrs.frozen
class SimResult:
    """The outcome of one run. ``ok`` is True when nothing at all went wrong."""

    seed: int
    trace_hash: str
    violations: tuple[Violation, ...]
    history: tuple[Operation, ...]
    linearizability: CheckResult | None
    stats: SimStats
    trace: tuple[tuple[Any, ...], ...] = ()

    @property
    def ok(self) -> bool:
        """True if no invariant was violated."""
        return not self.violations

    def replay_command(self, nodes: int, duration: float) -> str:
        """The command line that replays this seed with a trace."""
        return (
            f"python -m openraft_trio.testing.sim --replay {self.seed} --nodes {nodes} "
            f"--duration {duration:g} --trace sim-{self.seed}.jsonl"
        )


def default_sim_config() -> Config:
    return Config(cluster_name="sim").validate()


def run_simulation(
    seed: int,
    *,
    nodes: int = 5,
    duration: float = 60.0,
    clients: int = 8,
    faults: FaultPlan | None = None,
    config: Config | None = None,
    workload: SimWorkload | None = None,
    keep_trace: bool = False,
) -> SimResult:
    """Run one seeded simulation; see the module docstring. Never raises for a protocol
    failure: everything that went wrong is in ``SimResult.violations``.

    Args:
        workload: the replicated application and its client operations
            (default :class:`KvWorkload`); pass your own to test your state machine.
        keep_trace: keep every trace event in ``SimResult.trace`` (for replays).
    """
    faults = (faults if faults is not None else FaultPlan()).validate()
    config = config or default_sim_config()
    if faults.snapshot_every is not None:
        config = attrs.evolve(
            config,
            snapshot_policy=faults.snapshot_every,
            max_in_snapshot_log_to_keep=faults.snapshot_every // 5,
        )
    config = config.validate()
    if nodes < 1 or clients < 0 or duration < 0:
        raise ValueError("need nodes >= 1, clients >= 0, duration >= 0")
    clock = trio.testing.MockClock(autojump_threshold=0)
    sim = _Simulation(
        seed, nodes, duration, clients, faults, config, keep_trace,
        workload if workload is not None else KvWorkload(),
    )
    wall = time.perf_counter()
    try:
        # Batches of runnable tasks are ordered by an RNG seeded with ``seed``.
        run_deterministic(sim.main, seed=seed, clock=clock)
    except Exception as e:  # a node died: a bug the run found; report it, do not hide it
        sim.checker.fail("node failure", _describe_exception(e))
    return sim.result(time.perf_counter() - wall)


def _describe_exception(e: BaseException) -> str:
    leaves: list[BaseException] = []
    stack = [e]
    while stack:
        x = stack.pop()
        if isinstance(x, BaseExceptionGroup):
            stack.extend(x.exceptions)
        else:
            leaves.append(x)
    parts = []
    for leaf in leaves[:3]:
        tb = traceback.extract_tb(leaf.__traceback__)
        where = f" at {tb[-1].filename.rsplit('/', 1)[-1]}:{tb[-1].lineno}" if tb else ""
        parts.append(f"{type(leaf).__name__}: {leaf}{where}")
    return "; ".join(parts)


class _Simulation:
    def __init__(
        self,
        seed: int,
        nodes: int,
        duration: float,
        clients: int,
        faults: FaultPlan,
        config: Config,
        keep_trace: bool,
        workload: SimWorkload,
    ) -> None:
        self.app = workload
        self.seed = seed
        self.n = nodes
        self.duration = duration
        self.clients = clients
        self.faults = faults
        self.config = config
        self.trace = Trace(keep_trace)
        self.rng = random.Random(f"sim-{seed}")
        self.t0 = 0.0
        self._last_now = 0.0
        self.checker = InvariantChecker(seed, self.now)
        self.checker.committed_survives_restart = self.faults.storage == "mem"
        self.checker.on_state = self._on_state
        self.fault_counts: Counter[str] = Counter()
        self.down: list[int] = []
        self.workload: Any = None
        self.cluster: Cluster | None = None
        self.lin: CheckResult | None = None
        self.virtual_time = 0.0
        self.probes = 0
        self._probe_writes = 0
        self.transfers_ok = 0
        self.membership_changes_ok = 0
        self.snapshot_installs = 0

    def now(self) -> float:
        """Virtual seconds since the run started (the last known time once it ended)."""
        # Outside trio.run (a failure reported after the run died) keep the last time.
        with contextlib.suppress(RuntimeError):
            self._last_now = trio.current_time() - self.t0
        return self._last_now

    def event(self, kind: str, *fields: Any) -> None:
        self.trace.add((round(self.now(), 9), kind, *fields))

    def _on_state(self, node: int, role: str, term: int, commit: int) -> None:
        self.event("state", node, role, term, commit)

    def _on_message(self, fate: str, src: int, dst: int, kind: str) -> None:
        if fate == "ok" and kind == "snapshot":
            self.snapshot_installs += 1
        self.event("msg", fate, src, dst, kind)

    def _clock_factory(self, node_id: int) -> Any:
        skew = self.faults.clock_skew
        if not skew:
            return None
        rng = random.Random(f"{self.seed}-clock-{node_id}")
        rate = 1.0 + rng.uniform(-skew, skew)
        offset = rng.uniform(-100.0, 100.0)
        t0 = self.t0

        def clock() -> float:
            return t0 + offset + (trio.current_time() - t0) * rate

        return clock

    async def main(self) -> None:
        self.t0 = trio.current_time()
        clock_factory = self._clock_factory if self.faults.clock_skew else None
        file_storage = self.faults.storage == "file"
        sm_factory: Any = self.app.new_state_machine
        if file_storage and type(self.app) is KvWorkload:
            sm_factory = KvStateMachine  # the cluster makes it durable, on the node's disk
        async with open_cluster(
            self.n,
            config=self.config,
            seed=self.seed,
            flush_delay=(
                self.faults.flush_delay if self.faults.crashes and not file_storage else None
            ),
            clock_factory=clock_factory,
            observer=self.checker.observe,
            state_machine_factory=sm_factory,
            data_dir="/sim" if file_storage else None,
            fs=(lambda _node_id: CrashFS()) if file_storage else None,
            disk_latency=self.faults.flush_delay if file_storage else None,
        ) as cluster:
            self.cluster = cluster
            cluster.router.on_event = self._on_message
            self.workload = Clients(
                cluster,
                self.seed,
                self.now,
                self.checker.acknowledged,
                workload=self.app,
                on_unknown=self.checker.reported_unknown,
            )
            await self._wait_first_leader(cluster)
            if self.faults.membership_changes:
                for nid in range(self.n + 1, self.n + 1 + self.faults.spare_nodes):
                    await cluster.start(nid)  # outside the cluster until added
            self._start_network_faults(cluster)
            stop_at = self.now() + self.duration
            async with trio.open_nursery() as nursery:
                for cid in range(self.clients):
                    nursery.start_soon(self.workload.client, cid, stop_at)
                nursery.start_soon(self._nemesis, cluster, stop_at, nursery)
            await self._heal(cluster)
            index = await self._liveness(cluster)
            if index is not None:
                await self._converge(cluster, index)
            self.virtual_time = self.now()
        self.checker.final_check()
        self.lin = check(self.workload.history, self.app.model(), budget=LINEARIZABILITY_BUDGET)
        if self.lin.outcome is Outcome.ILLEGAL:
            self.checker.fail("linearizability", self.lin.explanation)
        elif self.lin.outcome is Outcome.UNKNOWN:
            self.checker.fail("linearizability", "checker budget exhausted (UNKNOWN)")

    async def _wait_first_leader(self, cluster: Cluster) -> None:
        deadline = 10 * self.config.election_timeout_max
        with trio.move_on_after(deadline):
            await cluster.wait_for_leader(deadline)
            return
        self.checker.fail("liveness", f"no leader within {deadline}s of start")

    # -- faults ---------------------------------------------------------------------------

    def _start_network_faults(self, cluster: Cluster) -> None:
        f, r = self.faults, cluster.router
        r.set_latency(*f.latency, quantum=f.latency_quantum)
        r.set_drop_rate(f.drop_rate)
        r.set_duplicate_rate(f.duplicate_rate)
        r.set_latency_spikes(f.spike_rate, f.spike)

    def _fault(self, kind: str, *fields: Any) -> None:
        self.fault_counts[kind] += 1
        self.event("fault", kind, *fields)

    async def _nemesis(self, cluster: Cluster, stop_at: float, nursery: trio.Nursery) -> None:
        f, rng, r = self.faults, self.rng, cluster.router
        max_down = f.max_crashed if f.max_crashed is not None else (self.n - 1) // 2
        actions: list[str] = ["heal"]
        if f.partitions and self.n > 1:
            actions += ["partition", "one-way", "bridge", "isolate"]
        if f.crashes:
            actions += ["crash", "restart"]
        if f.membership_changes:
            actions += ["add-learner", "change-membership", "transfer-leader"]
        # Leadership faults are drawn half of the time (when enabled): they are where stale
        # reads and lost acknowledgements hide, and each one is short.
        leadership: list[str] = []
        if f.leadership and self.n > 1:
            leadership += ["transfer-leader", "elect", "isolate-leader", "cut-follower", "long-delay"]
            if f.crashes and self.n >= 3:
                leadership += ["majority-restart", "power-cut"]
        if len(actions) == 1 and not leadership:
            return
        spares = f.spare_nodes if f.membership_changes else 0
        ids = list(range(1, self.n + 1 + spares))
        while True:
            await trio.sleep(rng.uniform(*f.fault_interval))
            if self.now() >= stop_at:
                return
            if leadership and (len(actions) == 1 or rng.random() < 0.5):
                action = rng.choice(leadership)
            else:
                action = rng.choice(actions)
            if action == "heal":
                r.heal()
                self._fault("heal")
            elif action == "partition":
                shuffled = ids[:]
                rng.shuffle(shuffled)
                k = rng.randint(1, self.n - 1)
                r.partition(shuffled[:k], shuffled[k:])
                self._fault("partition", sorted(shuffled[:k]), sorted(shuffled[k:]))
            elif action == "one-way":
                src, dst = rng.sample(ids, 2)
                r.block(src, dst)
                self._fault("one-way", src, dst)
            elif action == "bridge" and self.n >= 3:
                shuffled = ids[:]
                rng.shuffle(shuffled)
                via, rest = shuffled[0], shuffled[1:]
                k = rng.randint(1, len(rest) - 1) if len(rest) > 1 else 1
                r.bridge(rest[:k], rest[k:], via)
                self._fault("bridge", sorted(rest[:k]), sorted(rest[k:]), via)
            elif action == "isolate":
                victim = rng.choice(ids)
                r.isolate(victim)
                self._fault("isolate", victim)
            elif action == "crash" and len(self.down) < max_down:
                victim = rng.choice(cluster.node_ids)
                await self._crash(cluster, victim)
            elif action == "restart" and self.down:
                await self._restart(cluster, self.down.pop(rng.randrange(len(self.down))))
            elif action in ("add-learner", "change-membership", "transfer-leader"):
                self._membership_fault(cluster, action, nursery)
            elif action == "elect":
                await self._elect_fault(cluster, nursery)
            elif action == "isolate-leader":
                await self._isolate_leader(cluster, nursery)
            elif action == "cut-follower":
                self._cut_follower(cluster, nursery)
            elif action == "majority-restart":
                await self._majority_restart(cluster, nursery)
            elif action == "power-cut":
                await self._power_cut(cluster)
            elif action == "long-delay":
                self._fault("long-delay", f.long_delay)
                nursery.start_soon(self._long_delays, r)

    # -- leadership faults and race probes ------------------------------------------------

    def _probe(self, cluster: Cluster, suspect: int, nursery: trio.Nursery) -> None:
        """Race reads on ``suspect`` (a leader that was just moved, cut off or asked to
        step aside) against writes on the newest leader, for two leases."""
        self.probes += 1
        base = 1000 + 2 * self.probes  # client ids of the probe's writer and reader
        until = self.now() + 2 * self.config.lease
        nursery.start_soon(self._probe_writer, cluster, suspect, base, until)
        nursery.start_soon(self._probe_reader, cluster, suspect, base + 1, until)

    async def _probe_writer(self, cluster: Cluster, suspect: int, cid: int, until: float) -> None:
        """A write every few milliseconds to the newest leader other than ``suspect`` (none
        while there is none), each in its own task, ``PROBE_WRITES`` at most at once."""
        rng = random.Random(f"{self.seed}-probe-{cid}")
        limiter = trio.CapacityLimiter(PROBE_WRITES)

        async def one(node: Any, target: int, request: Any) -> None:
            async with limiter:
                await self.workload.write(cid, node, target, request, None)

        async with trio.open_nursery() as nursery:
            while self.now() < until:
                await trio.sleep(rng.uniform(0.002, 0.006))
                lid = cluster.leader_id()
                if lid is None or lid == suspect or limiter.available_tokens == 0:
                    continue
                request = self._draw(rng, cid, read=False)
                nursery.start_soon(one, cluster.nodes[lid], lid, request)

    async def _probe_reader(self, cluster: Cluster, suspect: int, cid: int, until: float) -> None:
        """A read every few milliseconds, each in its own task (a READ_INDEX on a cut-off
        leader waits; the reads behind it must not): up to ``PROBE_READS`` at once."""
        rng = random.Random(f"{self.seed}-probe-{cid}")
        # One limit per policy: READ_INDEX reads waiting on a cut-off leader must not stop
        # the lease reads, which answer at once.
        limiters = {p: trio.CapacityLimiter(PROBE_READS) for p in ReadPolicy}

        async def one(node: Any, target: int, request: Any, policy: ReadPolicy) -> None:
            async with limiters[policy]:
                await self.workload.read(cid, node, target, request, policy, None)

        # Reads on the newest leader are worth making while it is new (its state machine
        # may still lag what its predecessor acknowledged): for a lease after it changed.
        newest, new_until = cluster.leader_id(), self.now() + self.config.lease
        async with trio.open_nursery() as nursery:
            while self.now() < until:
                await trio.sleep(rng.uniform(0.001, 0.004))
                if cluster.leader_id() != newest:
                    newest, new_until = cluster.leader_id(), self.now() + self.config.lease
                # Mostly the suspect, on the probe's key; sometimes the newest leader, on
                # the clients' keys (every shared-key read makes the history check harder).
                at_suspect = self.now() > new_until or rng.random() < 0.7
                target = suspect if at_suspect else newest
                node = cluster.nodes.get(target) if target is not None else None
                policy = ReadPolicy.LEASE_READ if rng.random() < 0.75 else ReadPolicy.READ_INDEX
                if node is None or target is None or limiters[policy].available_tokens == 0:
                    continue
                request = self._draw(rng, cid, read=True, own_key=at_suspect)
                nursery.start_soon(one, node, target, request, policy)

    def _draw(self, rng: random.Random, cid: int, *, read: bool, own_key: bool = True) -> Any:
        """The probe's next request of the wanted kind. With the KV workload, every probe
        works on a key of its own (``probe<n>``, n = the writer's client id), so each read
        after a probe write can expose a stale value; other workloads' requests are drawn
        from the workload, so a custom workload gets probed too."""
        if own_key and type(self.app) is KvWorkload:
            key = f"probe{cid - cid % 2}"
            self._probe_writes += 1
            return Get(key) if read else Set(key, f"{cid}.{self._probe_writes}")
        for _ in range(100):
            request, is_read = self.app.next_op(rng, cid)
            if is_read == read:
                return request
        raise RuntimeError(f"workload never drew a {'read' if read else 'write'} in 100 tries")

    async def _elect_fault(self, cluster: Cluster, nursery: trio.Nursery) -> None:
        """``trigger.elect()`` on a random voter (the leader included) one time in five;
        otherwise on a follower still inside its lease, after a two-stage partition left
        it with a majority whose leases ran out (stickiness must bind its own vote)."""
        rng, r = self.rng, cluster.router
        lid = cluster.leader_id()
        if lid is None:
            return
        m = cluster.nodes[lid].metrics.membership.membership
        voters = sorted(v for v in m.voter_ids if v in cluster.nodes)
        if rng.random() < 0.2 or len(voters) < 3:
            target = rng.choice(voters)
            self._fault("elect", target)
        else:
            # Cut the leader off from one node short of a majority, for a lease: their
            # leases end. Then from the target, which still heard from the leader a moment
            # ago: with them it is a majority, if it were allowed to campaign.
            # Two stages of one partition. First ``cut`` (one node short of a majority with
            # the target) hears only from the target, for a lease: their leases end. Then
            # the target, which heard from the leader a moment ago, joins them: with them
            # it is a majority, if it were allowed to campaign inside its lease. The
            # leader keeps the rest, which never hear of a new term.
            r.heal()  # a scenario of its own: earlier blocks would spoil it
            target = rng.choice([v for v in voters if v != lid])
            rest = [v for v in voters if v not in (lid, target)]
            cut = sorted(rng.sample(rest, len(voters) // 2))
            side = sorted(set(cluster.node_ids) - set(cut) - {target})
            r.bridge(side, cut, via=target)
            await trio.sleep(self.config.lease * 1.05)
            r.partition(side, [target, *cut])
            self._fault("elect", target, "in-lease", lid, cut)
        node = cluster.nodes.get(target)
        if node is not None:
            await node.trigger.elect()
            self._probe(cluster, lid, nursery)

    async def _isolate_leader(self, cluster: Cluster, nursery: trio.Nursery) -> None:
        """Cut the leader off; a follower then asks to campaign every 10 ms (as eager
        failover tooling might) until a new leader exists. It must not win before the old
        leader's lease is over: a follower lease that ends early, or a leader lease that
        counts from when acks arrive, would let it. Half of the time the network is slow
        (40-70 ms one way) for a while first, and the leader's outgoing links break
        before its incoming ones: the acks to its last heartbeats arrive long after the
        followers last heard from it; then the network is fast (1-2 ms) for the election
        that follows, so a new leader commits within a few milliseconds of being allowed
        to campaign."""
        rng, r, f = self.rng, cluster.router, self.faults
        lid = cluster.leader_id()
        if lid is None:
            return
        slow = rng.random() < 0.5
        if slow:
            r.set_latency(0.04, 0.07, quantum=f.latency_quantum)
            await trio.sleep(rng.uniform(0.2, 0.4))
            lid = cluster.leader_id()
            if lid is None:
                r.set_latency(*f.latency, quantum=f.latency_quantum)
                return
        r.heal()  # a scenario of its own: the others must be able to elect
        if slow:
            for other in cluster.node_ids:
                if other != lid:
                    r.block(lid, other)
            r.set_latency(0.001, 0.002, quantum=f.latency_quantum)
            await trio.sleep(0.08)  # the acks still on their way arrive
            nursery.start_soon(self._restore_latency_later, r)
        else:
            r.set_latency(*f.latency, quantum=f.latency_quantum)
        r.isolate(lid)
        self._fault("isolate-leader", lid, *(["after-slow-network"] if slow else []))
        self._probe(cluster, lid, nursery)
        # The follower with the longest log, as failover tooling would pick (one that is
        # behind could not win anyway).
        others = [n for n in cluster.node_ids if n != lid]
        if others:
            target = max(others, key=lambda n: (cluster.nodes[n].metrics.last_log_index or -1, n))
            nursery.start_soon(self._keep_electing, cluster, lid, target)

    def _cut_follower(self, cluster: Cluster, nursery: trio.Nursery) -> None:
        """A follower loses the leader but still reaches everyone else: when its own lease
        ends it campaigns, and every other follower, still hearing from the leader, must
        refuse it (or a second leader commits while the first serves lease reads)."""
        r = cluster.router
        lid = cluster.leader_id()
        if lid is None:
            return
        m = cluster.nodes[lid].metrics.membership.membership
        followers = sorted(v for v in m.voter_ids if v != lid and v in cluster.nodes)
        if not followers:
            return
        r.heal()
        cut = self.rng.choice(followers)
        r.block(lid, cut)
        r.block(cut, lid)
        self._fault("cut-follower", lid, cut)
        self._probe(cluster, lid, nursery)

    async def _restore_latency_later(self, r: Any) -> None:
        await trio.sleep(2 * self.config.lease)
        r.set_latency(*self.faults.latency, quantum=self.faults.latency_quantum)

    async def _keep_electing(self, cluster: Cluster, lid: int, target: int) -> None:
        term = cluster.nodes[lid].metrics.current_term if lid in cluster.nodes else 0
        with trio.move_on_after(2 * self.config.lease):
            while True:
                node = cluster.nodes.get(target)
                if node is None:
                    return
                new = cluster.leader_id()
                if new is not None and cluster.nodes[new].metrics.current_term > term:
                    return
                if node.metrics.state != ServerState.CANDIDATE:  # let a campaign finish
                    await node.trigger.elect()
                await trio.sleep(0.01)

    async def _majority_restart(self, cluster: Cluster, nursery: trio.Nursery) -> None:
        """Cut the leader off and restart a majority of the other nodes within one lease."""
        lid = cluster.leader_id()
        if lid is None or self.down:
            return
        others = [n for n in cluster.node_ids if n != lid]
        k = min(len(others), self.n // 2 + 1)
        victims = sorted(self.rng.sample(others, k))
        cluster.router.heal()
        cluster.router.isolate(lid)
        self._fault("majority-restart", lid, victims)
        self._probe(cluster, lid, nursery)
        for v in victims:
            self.checker.node_down(v)
            await cluster.crash(v)
        for v in victims:
            await self._restart(cluster, v, record=False)

    async def _power_cut(self, cluster: Cluster) -> None:
        """Several nodes (possibly all) lose power at one instant: appends not yet flushed
        are lost on each; they come back a moment later."""
        if self.down:
            return
        ids = cluster.node_ids
        victims = sorted(self.rng.sample(ids, self.rng.randint(2, len(ids))))
        self._fault("power-cut", victims)
        for v in victims:
            self.checker.node_down(v)
            await cluster.crash(v)
        await trio.sleep(self.rng.uniform(0.0, self.config.election_timeout_max))
        for v in victims:
            await self._restart(cluster, v, record=False)

    async def _long_delays(self, r: Any) -> None:
        """For one to two seconds, 5 % of messages take up to ``long_delay`` longer."""
        f = self.faults
        r.set_latency_spikes(0.05, f.long_delay)
        await trio.sleep(self.rng.uniform(1.0, 2.0))
        r.set_latency_spikes(f.spike_rate, f.spike)

    def _membership_fault(self, cluster: Cluster, action: str, nursery: trio.Nursery) -> None:
        """Ask the current leader for a membership change, in the background (it may fail:
        another change in progress, leadership lost — that is part of the test)."""
        rng = self.rng
        lid = cluster.leader_id()
        if lid is None:
            return
        leader = cluster.nodes[lid]
        m = leader.metrics.membership.membership
        if action == "transfer-leader":
            others = sorted(m.voter_ids - {lid})
            if others:
                to = rng.choice(others)
                deafen = self.faults.leadership and rng.random() < 0.5
                self._fault("transfer-leader", lid, to, *(["deafen"] if deafen else []))
                nursery.start_soon(self._admin, leader.trigger.transfer_leader(to))
                nursery.start_soon(self._count_transfer, cluster, to)
                if self.faults.leadership:
                    if deafen:
                        # The old leader keeps sending (the transfer request gets out) but
                        # hears nothing more: it learns of the new term only by its lease.
                        cluster.router.heal()
                        for other in cluster.node_ids:
                            if other != lid:
                                cluster.router.block(other, lid)
                    self._probe(cluster, lid, nursery)
            return
        if action == "add-learner":
            outside = [n for n in cluster.node_ids if n not in m.nodes and n not in m.voter_ids]
            if not outside:
                return
            nid = rng.choice(outside)
            self._fault("add-learner", nid)
            nursery.start_soon(self._admin, leader.add_learner(nid, Node(f"node-{nid}"), False))
            return
        voters = set(m.voter_ids)
        learners = sorted(m.learner_ids)
        if learners and rng.random() < 0.2:
            # A learner leaves in one entry, no joint step (Raft.remove_learner).
            gone = rng.choice(learners)
            self._fault("remove-learner", gone)
            nursery.start_soon(self._admin, leader.remove_learner(gone), "membership")
            return
        if learners and (len(voters) <= 3 or rng.random() < 0.5):
            new = voters | {rng.choice(learners)}
        elif len(voters) > 3:
            new = voters - {rng.choice(sorted(voters))}
        else:
            return
        if len(learners) >= 2 and len(voters) >= 3 and rng.random() < 0.4:
            # A multi-voter swap: two voters out, two learners in, in one joint change
            # (single-voter changes are safe even with a wrong joint quorum).
            new = (voters - set(rng.sample(sorted(voters), 2))) | set(rng.sample(learners, 2))
        retain = rng.random() < 0.5
        self._fault("change-membership", sorted(new), retain)
        nursery.start_soon(self._admin, leader.change_membership(new, retain), "membership")

    async def _admin(self, call: Any, counter: str | None = None) -> None:
        with trio.move_on_after(2 * self.config.election_timeout_max):
            with contextlib.suppress(RaftError):
                await call
                if counter == "membership":
                    self.membership_changes_ok += 1

    async def _count_transfer(self, cluster: Cluster, to: int) -> None:
        """Count the transfer as done if ``to`` leads within two leases."""
        with trio.move_on_after(2 * self.config.lease):
            while cluster.leader_id() != to:  # noqa: ASYNC110 - polls several nodes
                await trio.sleep(0.005)
            self.transfers_ok += 1

    async def _crash(self, cluster: Cluster, node_id: int) -> None:
        self.checker.node_down(node_id)
        await cluster.crash(node_id)
        self.down.append(node_id)
        self._fault("crash", node_id)

    async def _restart(self, cluster: Cluster, node_id: int, *, record: bool = True) -> None:
        await cluster.restart(node_id)
        if record:
            self._fault("restart", node_id)
        store = cluster.log_stores.get(node_id)
        if getattr(store, "recovered_cut_bytes", 0):
            self.fault_counts["torn-tail-cut"] += 1

    async def _heal(self, cluster: Cluster) -> None:
        r = cluster.router
        r.heal()
        r.set_drop_rate(0.0)
        r.set_duplicate_rate(0.0)
        r.set_latency_spikes(0.0, 0.0)
        while self.down:
            await self._restart(cluster, self.down.pop(0))
        self.event("phase", "healed")

    # -- liveness and convergence ---------------------------------------------------------

    def _liveness_command(self) -> Any:
        """The write the liveness check commits: the workload's ``liveness_command(seed)``
        if it has one (see :class:`SimWorkload`), else the KV ``Set("__liveness__", seed)``."""
        command = getattr(self.app, "liveness_command", None)
        return command(self.seed) if command is not None else Set("__liveness__", self.seed)

    async def _liveness(self, cluster: Cluster) -> int | None:
        """A leader must be elected and commit a write within 10 election timeouts."""
        budget = 10 * self.config.election_timeout_max
        with trio.move_on_after(budget):
            while True:
                lid = cluster.leader_id()
                if lid is not None:
                    try:
                        with trio.move_on_after(self.config.election_timeout_max):
                            resp = await cluster.nodes[lid].client_write(
                                self._liveness_command()
                            )
                            self.checker.acknowledged(resp.log_id)
                            self.event("phase", "live", lid, resp.log_id.index)
                            return resp.log_id.index
                    except (ForwardToLeader, RaftError):
                        pass
                await trio.sleep(0.01)
        self.checker.fail(
            "liveness",
            f"no leader committed a write within {budget:g}s after healing "
            f"(states: {self._states(cluster)})",
        )
        return None

    async def _converge(self, cluster: Cluster, index: int) -> None:
        """Every member (voter or learner) of the final membership reaches ``index`` and
        ends with the same state; nodes removed from the cluster are not expected to."""
        budget = 10 * self.config.election_timeout_max
        with trio.move_on_after(budget):
            lid = cluster.leader_id()
            members = (
                set(cluster.nodes[lid].metrics.membership.membership.nodes)
                if lid is not None
                else set(cluster.node_ids)
            )
            ids = [n for n in cluster.node_ids if n in members]
            await cluster.wait_applied(index, timeout=budget, nodes=ids)
            datas = {nid: self.app.state(cluster.state_machines[nid]) for nid in ids}
            first = datas[ids[0]]
            for nid, data in datas.items():
                if data != first:
                    self.checker.fail(
                        "replicas differ", f"node {nid} state differs from node {ids[0]}"
                    )
            return
        self.checker.fail("liveness", f"replicas did not all apply index {index} in {budget:g}s")

    @staticmethod
    def _states(cluster: Cluster) -> str:
        return ", ".join(
            f"{nid}:{m.state.value}/T{m.current_term}"
            for nid in cluster.node_ids
            for m in [cluster.nodes[nid].metrics]
        )

    # -- result ---------------------------------------------------------------------------

    def result(self, wall: float) -> SimResult:
        router = self.cluster.router if self.cluster is not None else None
        w = self.workload if self.workload is not None else Clients(None, self.seed, self.now, print)
        stats = SimStats(
            commits=self.checker.max_commit_index + 1,
            elections=len(self.checker.leader_of_term),
            faults_injected=sum(self.fault_counts.values()),
            fault_counts=dict(sorted(self.fault_counts.items())),
            operations=len(w.history),
            writes_acked=w.writes_acked,
            writes_unknown=w.writes_unknown,
            writes_retried=w.writes_retried,
            sessions_expired=w.sessions_expired,
            reads_ok=w.reads_ok,
            messages=router.rpc_count if router else 0,
            dropped=router.dropped if router else 0,
            duplicated=router.duplicated if router else 0,
            virtual_time=self.virtual_time,
            wall_time=wall,
            trace_events=self.trace.count,
            snapshots=len(self.checker.snapshots),
            max_purged=self.checker.max_purged,
            snapshot_installs=self.snapshot_installs,
            reads_lease_ok=w.reads_ok_by_policy[ReadPolicy.LEASE_READ],
            reads_index_ok=w.reads_ok_by_policy[ReadPolicy.READ_INDEX],
            transfers_ok=self.transfers_ok,
            membership_changes_ok=self.membership_changes_ok,
            probes=self.probes,
        )
        return SimResult(
            seed=self.seed,
            trace_hash=self.trace.hexdigest(),
            violations=tuple(self.checker.violations),
            history=tuple(w.history),
            linearizability=self.lin,
            stats=stats,
            trace=tuple(self.trace.events),
        )


__all__ = ["SimResult", "SimStats", "default_sim_config", "run_simulation"]
