"""Hypothesis explores the Engine's protocol rules on a hand-driven network of Engines.

:class:`EngineMachine` is a ``RuleBasedStateMachine`` over :class:`EngineNet`: three voters
start with node 1 elected, then hypothesis picks the steps. Each step is one event — time
passing (every leader's heartbeat tasks fire), a node's ticker, ``elect()``, a client write,
a read with either policy, a leader transfer, a membership change, a learner's removal,
a snapshot (which purges
the log, so lagging nodes get the snapshot), a restart keeping only what was durable — or a
fault: cutting the network between one node and the others, stalling a node's disk, or
acting on one queued message (delivering it out of order across the cut, losing it,
duplicating it, holding it back past restarts, delivering a held one). After each step the
world runs until it is quiet: every message that does not cross the cut is delivered, oldest
first, and every disk that is not stalled flushes. Nodes only tick when a step says so (a
node may be slow to notice the time), and clocks are equal on all nodes, so every lease
read must be safe.

After every step the invariants run: Raft's safety properties (the simulator's
:class:`InvariantChecker`, fed every engine after each command round), one granted vote
per term per node across restarts, ``committed <= flushed`` on every node, no two nodes
applying different entries at one index, and **read freshness**: a read answered with a log
id returns one at or after every entry committed anywhere before the read was issued —
checked for the reads the steps issue and for a probe read of each policy on every node
that believes it leads. A counterexample shrinks to a handful of steps that replay in
milliseconds.

The mutation harness (``python -m tests.mutants``, its ``props`` layer) breaks one rule at
a time in a copy of the engine and runs this file against it.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from openraft_trio._config import Config
from openraft_trio._engine import Engine
from openraft_trio._engine.commands import Respond
from openraft_trio._errors import ForwardToLeader
from openraft_trio._types import LogId, Node, Normal, ReadPolicy
from openraft_trio.testing.sim import InvariantChecker

from ._engine_net import EngineNet, Msg

NODES = (1, 2, 3)
CONFIG = Config(
    cluster_name="stateful",
    election_timeout_min=1.0,
    election_timeout_max=2.0,  # the lease
    heartbeat_interval=0.1,
    lease_clock_drift=0.1,
    max_payload_entries=2,
    max_in_snapshot_log_to_keep=0,
).validate()
# Steps of time besides a whole lease: an election timeout, a little (inside every lease).
TIME_STEPS = (1.0, 0.1)
# Disks to stall (none: every disk flushes as soon as the world settles).
STALLS: tuple[frozenset[int], ...] = (frozenset({1}), frozenset({2}), frozenset({3}), frozenset())
NETWORK_ACTIONS = ("deliver", "drop", "duplicate", "hold", "release")
MESSAGE = st.integers(0, 15)  # index into the queue, modulo its length (0: the oldest)
NODE = st.sampled_from(NODES)
# Which of the nodes that believe they lead (modulo how many there are).
WHICH_LEADER = st.integers(0, 2)
SETTLE_LIMIT = 200

# The profile CI runs: deterministic, no example database. ENGINE_STATEFUL_EXAMPLES scales
# it for a longer local search.
PROFILE = settings(
    max_examples=int(os.environ.get("ENGINE_STATEFUL_EXAMPLES", "800")),
    stateful_step_count=20,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

F = TypeVar("F", bound=Callable[..., None])


def step(f: F) -> F:
    """A rule: count it, run it, then let the world settle."""

    @functools.wraps(f)
    def run_step(self: EngineMachine, **kwargs: Any) -> None:
        self.steps += 1
        f(self, **kwargs)
        self._settle()

    return run_step  # type: ignore[return-value]


class EngineMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.net = EngineNet(len(NODES), CONFIG, delayed_flush=True, observer=self._observe)
        self.checker = InvariantChecker(0, lambda: self.net.now)
        # Ticks are rules here, not deadlines: check-quorum is the engine tests' to check.
        self.checker.ticks_on_deadline = False
        # The commit index is saved in order with the appends, like FileLogStore does: a
        # restart may bring back an older one (Raft's commit index is volatile, §5.3).
        self.checker.committed_survives_restart = False
        self.side: frozenset[int] = frozenset()  # the cut: these nodes vs the others
        self.stalled: frozenset[int] = frozenset()  # disks that flush only on ``flush``
        self.held: list[Msg] = []  # messages held back past anything, restarts included
        # Read token -> (node, policy, highest index committed anywhere when it was issued).
        self.reads: dict[int, tuple[int, ReadPolicy, int]] = {}
        self.reads_checked: set[int] = set()
        self.tokens = 0
        self.granted: dict[tuple[int, int], int | None] = {}  # (node, term) -> candidate
        self.grants_seen = 0
        self.applied_at: dict[int, LogId] = {}
        self.applied_seen = 0
        self.steps = 0
        # (leader, term, node) -> the leader's progress entry for a follower whose log was
        # lost under it (a membership change that drops and re-adds the node makes a new
        # entry: a fresh start, the documented way back).
        self.lost_logs: dict[tuple[int, int, int], Any] = {}

    def _observe(self, eng: Engine) -> None:
        self.checker.observe(_CoreView(eng))

    def _fail(self, message: str) -> None:
        raise AssertionError(message)

    def _leaders(self) -> list[int]:
        return [i for i in NODES if self.net.engines[i].is_leader]

    def _leader(self, which: int) -> int:
        leaders = self._leaders()
        return leaders[which % len(leaders)]

    def _has_leader(self) -> bool:
        return bool(self._leaders())

    def _token(self) -> int:
        self.tokens += 1
        return self.tokens

    def _connected(self, m: Msg) -> bool:
        return (m.src in self.side) == (m.dst in self.side)

    def _settle(self) -> None:
        """Run until quiet: deliver (oldest first) what does not cross the cut, flush the
        disks that are not stalled."""
        net = self.net
        for _ in range(SETTLE_LIMIT):
            m = next((m for m in net.outbox if self._connected(m)), None)
            if m is not None:
                net.outbox.remove(m)
                net.deliver(m)
                continue
            busy = [i for i in NODES if net.pending[i] and i not in self.stalled]
            if not busy:
                return
            for i in busy:
                net.flush(i)
        raise AssertionError("the network did not settle")

    # -- rules ----------------------------------------------------------------------------

    @initialize()
    def start_with_node_1_leading(self) -> None:
        self.net.initialize(1, set(NODES))
        self._settle()

    @rule(dt=st.sampled_from(TIME_STEPS))
    @step
    def advance(self, dt: float) -> None:
        """Time passes on every node alike and every leader's heartbeat tasks send a round.
        No tick: a node may be slow to notice the time."""
        self._advance(dt)

    @rule()
    @step
    def lease_passes(self) -> None:
        """A whole lease passes: heartbeats go out and are answered, then the timers of
        the nodes outside the cut fire (an isolated node is the slow one: it notices
        nothing until it ticks)."""
        self._advance(CONFIG.lease + 0.01)
        self._settle()
        for node in NODES:
            if node not in self.side:
                self.net.engines[node].tick(self.net.now)
                self.net.run(node)

    def _advance(self, dt: float) -> None:
        self.net.advance(dt)
        for node in self._leaders():
            self.net.heartbeat(node)

    @rule(node=NODE)
    @step
    def tick(self, node: int) -> None:
        """``node``'s ticker fires: check-quorum on a leader, the election timer elsewhere."""
        self.net.engines[node].tick(self.net.now)
        self.net.run(node)

    @rule(node=NODE)
    @step
    def elect(self, node: int) -> None:
        """``trigger.elect()`` on ``node``."""
        self.net.elect(node)

    @rule(node=NODE)
    @step
    def isolate(self, node: int) -> None:
        """Cut the network between ``node`` and the others; messages across the cut wait in
        the queue (``network`` acts on them)."""
        self.side = frozenset({node})

    @precondition(lambda self: self.side)
    @rule()
    @step
    def heal(self) -> None:
        self.side = frozenset()

    @precondition(lambda self: self.net.outbox or self.held)
    @rule(action=st.sampled_from(NETWORK_ACTIONS), k=MESSAGE)
    @step
    def network(self, action: str, k: int) -> None:
        """One queued message, whatever the cut: deliver it (out of order), lose it,
        duplicate it, hold it back (it stays in the network even if its ends restart), or
        deliver one held back."""
        net = self.net
        if action == "release" or not net.outbox:
            if self.held:
                net.deliver(self.held.pop(k % len(self.held)))
            return
        m = net.outbox[k % len(net.outbox)]
        if action == "duplicate":
            net.outbox.append(Msg(m.kind, m.src, m.dst, m.body, m.meta))
            return
        net.outbox.remove(m)
        if action == "deliver":
            net.deliver(m)
        elif action == "drop":
            net.lose(m)
        else:
            self.held.append(m)

    @rule(nodes=st.sampled_from(STALLS))
    @step
    def stall(self, nodes: frozenset[int]) -> None:
        """Stall these nodes' disks (empty: none): their appends wait for ``flush``."""
        self.stalled = nodes

    @precondition(lambda self: any(self.net.pending[i] for i in self.stalled))
    @rule(node=NODE)
    @step
    def flush(self, node: int) -> None:
        """``node``'s disk makes its pending appends durable (stalled or not)."""
        self.net.flush(node)

    @precondition(_has_leader)
    @rule(which=WHICH_LEADER)
    @step
    def client_write(self, which: int) -> None:
        node = self._leader(which)
        with contextlib.suppress(ForwardToLeader):  # transferring: writes are refused
            self.net.engines[node].client_write([Normal(self.steps)])
        self.net.run(node)

    @precondition(_has_leader)
    @rule(which=WHICH_LEADER, policy=st.sampled_from(list(ReadPolicy)))
    @step
    def read(self, which: int, policy: ReadPolicy) -> None:
        """``ensure_linearizable(policy)`` on a node that believes it leads."""
        node = self._leader(which)
        token = self._token()
        self.reads[token] = (node, policy, self._max_committed())
        self.net.engines[node].ensure_linearizable(policy, ("reply", token))
        self.net.run(node)

    @precondition(_has_leader)
    @rule(which=WHICH_LEADER, to=NODE)
    @step
    def transfer(self, which: int, to: int) -> None:
        """``trigger.transfer_leader(to)``; a target that is not a voter is refused at once
        and leaves any transfer in progress (and the lease) as they were."""
        node = self._leader(which)
        eng = self.net.engines[node]
        assert eng.leader is not None
        before = (eng.leader.transfer_to, eng.leader.lease_given_up)
        voter = eng.membership.membership.is_voter(to)
        eng.transfer_leader(to, ("reply", self._token()))
        if not voter and eng.leader is not None:
            after = (eng.leader.transfer_to, eng.leader.lease_given_up)
            if after != before:
                self._fail(f"leader {node} started a transfer to non-voter {to}")
        self.net.run(node)

    @precondition(_has_leader)
    @rule(which=WHICH_LEADER, learner=NODE)
    @step
    def remove_learner(self, which: int, learner: int) -> None:
        """``remove_learner(learner)``: whether it is a learner, a voter or gone."""
        node = self._leader(which)
        self.net.engines[node].remove_learner(learner, ("reply", self._token()))
        self.net.run(node)

    @precondition(_has_leader)
    @rule(which=WHICH_LEADER, voters=st.frozensets(NODE, min_size=1), retain=st.booleans())
    @step
    def change_membership(self, which: int, voters: frozenset[int], retain: bool) -> None:
        """``change_membership(voters, retain)``, or first ``add_learner`` for a voter-to-be
        that left the cluster."""
        node = self._leader(which)
        eng = self.net.engines[node]
        missing = sorted(voters - set(eng.membership.membership.nodes))
        if missing:
            eng.add_learner(missing[0], Node(f"n{missing[0]}"), ("reply", self._token()))
        else:
            eng.change_membership(voters, retain, ("reply", self._token()))
        self.net.run(node)

    @rule(node=NODE)
    @step
    def snapshot(self, node: int) -> None:
        """``trigger.snapshot()``: snapshot what is applied and purge the log up to it."""
        self.net.engines[node].maybe_build_snapshot(force=True)
        self.net.run(node)

    def _can_lose_log(self) -> bool:
        """Everything is committed and on every node, nothing is cut or stalled: a lost
        follower log then loses nothing a quorum does not still hold."""
        leaders = self._leaders()
        if len(leaders) != 1 or self.side or self.stalled or self.net.outbox or self.held:
            return False
        last = self.net.engines[leaders[0]].log_ids.last
        return all(
            e.log_ids.last == last and e.committed == last and not self.net.pending[i]
            for i, e in self.net.engines.items()
        )

    @precondition(_can_lose_log)
    @rule(node=NODE)
    @step
    def lose_log(self, node: int) -> None:
        """A follower's disk loses its log (a wiped disk, a restored empty backup) but keeps
        its vote. Its leader must notice the reversion when it next replicates, report it
        and not silently fill the follower again (``allow_log_reversion`` is off)."""
        leader = self._leaders()[0]
        lead = self.net.engines[leader]
        if node == leader or lead.leader is None or node not in lead.leader.progress:
            return
        if lead.leader.progress[node].matching is None:
            return
        disk = self.net.disks[node]
        disk.entries, disk.committed, disk.purged, disk.snapshot = {}, None, None, None
        key = (leader, lead.vote.term, node)
        self.lost_logs[key] = lead.leader.progress[node]
        self.checker.reversions_seen.add(key)  # reported on purpose: not a violation
        self.checker.node_down(node)
        self.net.restart(node)

    @rule(node=NODE)
    @step
    def restart(self, node: int) -> None:
        """Crash and restart ``node``: only its disk survives."""
        self.checker.node_down(node)
        self.net.restart(node)

    # -- invariants -----------------------------------------------------------------------

    def _max_committed(self) -> int:
        """The highest index committed anywhere, ever (commits never move back)."""
        current = (e.committed for e in self.net.engines.values() if e.committed is not None)
        return max([self.checker.max_commit_index, *(c.index for c in current)])

    @invariant()
    def raft_safety(self) -> None:
        """Election safety, leader append-only, log matching, leader completeness, state
        machine safety, committed never moving back, no log reversion (InvariantChecker)."""
        if self.checker.violations:
            self._fail("\n".join(str(v) for v in self.checker.violations))

    @invariant()
    def one_vote_per_term(self) -> None:
        """A node grants its vote in a term to one candidate only, across restarts."""
        grants = self.net.grants
        for node, vote in grants[self.grants_seen :]:
            key = (node, vote.term)
            first = self.granted.setdefault(key, vote.leader_id.node_id)
            if first != vote.leader_id.node_id:
                self._fail(
                    f"node {node} granted term {vote.term} to {first} and to "
                    f"{vote.leader_id.node_id}"
                )
        self.grants_seen = len(grants)

    @invariant()
    def lost_logs_are_reported_not_refilled(self) -> None:
        """A leader whose follower lost its log never fills it again silently in that term:
        it reports the reversion (and, with ``allow_log_reversion`` off, halts)."""
        for (leader, term, node), progress in self.lost_logs.items():
            lead, follower = self.net.engines[leader], self.net.engines[node]
            if lead.leader is None or lead.vote.term != term or follower.vote != lead.vote:
                continue
            if lead.leader.progress.get(node) is not progress:
                continue
            if follower.log_ids.last is not None and progress.log_reversions == 0:
                self._fail(
                    f"leader {leader} filled node {node}'s lost log again in term {term} "
                    "without reporting a log reversion"
                )

    @invariant()
    def voters_have_nodes(self) -> None:
        """Every voter of every node's effective membership has a ``nodes`` entry (an
        address): a voter leaves only through a joint change, which drops both at once."""
        for i, eng in self.net.engines.items():
            membership = eng.membership.membership
            missing = sorted(membership.voter_ids - set(membership.nodes))
            if missing:
                self._fail(f"node {i}: voters {missing} have no node entry in {membership}")

    @invariant()
    def committed_is_flushed(self) -> None:
        """``committed <= flushed`` on every node, the leader included: it never commits
        past its own flushed log, even when a quorum of others flushed an entry first."""
        for i, eng in self.net.engines.items():
            if eng.committed is None:
                continue
            flushed = eng.flushed.log_id if eng.flushed is not None else None
            if flushed is None or flushed.index < eng.committed.index:
                self._fail(f"node {i}: committed {eng.committed} > flushed {flushed}")

    @invariant()
    def applied_entries_agree(self) -> None:
        """No two nodes apply different entries at one index."""
        applied = self.net.applied
        for node, log_id in applied[self.applied_seen :]:
            first = self.applied_at.setdefault(log_id.index, log_id)
            if first != log_id:
                self._fail(f"node {node} applied {log_id}, another node applied {first}")
        self.applied_seen = len(applied)

    @invariant()
    def reads_are_fresh(self) -> None:
        """A read answered with a log id covers everything committed before it was issued."""
        for token, (node, policy, committed_before) in self.reads.items():
            if token in self.reads_checked or token not in self.net.replies:
                continue
            self.reads_checked.add(token)
            answer = self.net.replies[token]
            if isinstance(answer, LogId) and answer.index < committed_before:
                self._fail(
                    f"stale read: node {node} answered a {policy.name} read with {answer}, "
                    f"but index {committed_before} was committed before the read was issued"
                )


    @invariant()
    def reads_now_would_be_fresh(self) -> None:
        """Probe every node that believes it leads with a read of each policy, then undo
        it: one the engine would answer at once must be fresh too."""
        committed = self._max_committed()
        for node in self._leaders():
            for policy in ReadPolicy:
                answer = probe_read(self.net.engines[node], policy)
                if isinstance(answer, LogId) and answer.index < committed:
                    self._fail(
                        f"stale read: node {node} would answer a {policy.name} read now "
                        f"with {answer}, but index {committed} is committed"
                    )


class _CoreView:
    """What :class:`InvariantChecker` reads from a RaftCore: its engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine


def probe_read(eng: Engine, policy: ReadPolicy) -> Any:
    """What ``eng`` answers at once to a read with ``policy`` (None if it would wait); the
    engine is left as it was (its pending reads, read round and output)."""
    leader = eng.leader
    assert leader is not None
    pending, read_round, emitted = list(leader.pending_reads), leader.read_round, len(eng.output)
    probe = object()
    eng.ensure_linearizable(policy, probe)
    new = list(eng.output)[emitted:]
    while len(eng.output) > emitted:
        eng.output.pop()
    leader.pending_reads, leader.read_round = pending, read_round
    return next((c.value for c in new if isinstance(c, Respond) and c.responder is probe), None)


TestEngineStateful = EngineMachine.TestCase
TestEngineStateful.settings = PROFILE

# The rules' names (a schedule below may use only these).
RULE_NAMES = frozenset(
    name for name, f in vars(EngineMachine).items() if hasattr(f, "hypothesis_stateful_rule")
)


# -- known schedules ----------------------------------------------------------------------

# Short schedules that once broke a rule (each found by the search above or written against
# a mutant of tests/mutants/catalogue.py, named by the key). Replayed on every run:
# deterministic, a few milliseconds each.
SCHEDULES: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "stickiness_off": [
        ("isolate", {"node": 2}), ("lease_passes", {}), ("elect", {"node": 2}),
        ("isolate", {"node": 1}),
    ],
    "lease_always_valid": [
        ("isolate", {"node": 1}), ("lease_passes", {}), ("elect", {"node": 2}),
    ],
    "read_index_without_round": [
        ("isolate", {"node": 1}), ("lease_passes", {}), ("elect", {"node": 2}),
    ],
    "second_vote_in_term": [
        ("restart", {"node": 1}), ("lease_passes", {}), ("lease_passes", {}),
    ],
    "joint_quorum_last_config_only": [
        ("isolate", {"node": 1}),
        ("change_membership", {"which": 0, "voters": frozenset({1}), "retain": True}),
        ("lease_passes", {}), ("elect", {"node": 2}),
    ],
    "transfer_keeps_lease": [
        ("isolate", {"node": 1}), ("transfer", {"which": 0, "to": 2}),
        ("network", {"action": "deliver", "k": 0}),
    ],
    "elect_ignores_lease": [
        ("isolate", {"node": 3}), ("lease_passes", {}), ("elect", {"node": 2}),
        ("isolate", {"node": 1}),
    ],
    "no_startup_lease": [
        ("restart", {"node": 2}), ("isolate", {"node": 1}), ("restart", {"node": 3}),
        ("elect", {"node": 2}),
    ],
    "follower_lease_halved": [
        ("isolate", {"node": 1}), ("advance", {"dt": 1.0}), ("elect", {"node": 2}),
    ],
    "lease_from_receipt": [
        ("isolate", {"node": 1}), ("advance", {"dt": 1.0}),
        ("network", {"action": "deliver", "k": 0}), ("advance", {"dt": 1.0}),
        ("network", {"action": "deliver", "k": 1}), ("advance", {"dt": 1.0}),
        ("elect", {"node": 2}),
    ],
    "follower_acks_before_flush": [
        ("stall", {"nodes": frozenset({2})}), ("client_write", {"which": 0}),
    ],
}


def replay(schedule: list[tuple[str, dict[str, Any]]]) -> None:
    """Run ``schedule`` on a fresh :class:`EngineMachine`, checking every invariant after
    every step (as hypothesis does)."""
    machine = EngineMachine()
    machine.start_with_node_1_leading()
    checks = [name for name, f in vars(EngineMachine).items() if hasattr(f, "hypothesis_stateful_invariant")]
    for name, kwargs in [("", {}), *schedule]:
        if name:
            getattr(machine, name)(**kwargs)
        for check in checks:
            getattr(machine, check)()


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_known_schedule(name: str) -> None:
    assert {step for step, _ in SCHEDULES[name]} <= RULE_NAMES, "a schedule step is no rule"
    replay(SCHEDULES[name])
