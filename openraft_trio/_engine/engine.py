"""The Engine: Raft's protocol decisions as a pure state machine (sans-I/O).

Theory of operation
-------------------
RaftCore feeds the Engine inputs as method calls — time passing (``tick``), inbound RPCs
(``handle_vote_req``, ``handle_append_entries``), replies to our RPCs
(``handle_vote_resp``, ``handle_replication_progress``...), client requests
(``client_write``, ``ensure_linearizable``) and I/O completions (``on_io_flushed``,
``on_applied``) — after setting ``engine.now``. :data:`INPUTS` names them all. Each call
appends :mod:`~openraft_trio._engine.commands` to ``engine.output``; RaftCore runs them in
order. Commands that must wait for a log flush (replies that acknowledge entries) are held
back and released once the flush is reported. The Engine imports no trio, does no I/O and
draws all randomness from the ``random.Random`` it was given, so it is deterministic and
tested by asserting the exact commands it emits.

The Engine holds the node's state explicitly: its vote, the ids of its log
(:class:`LogIdList`), the membership (:class:`MembershipState`), the log pointers
(:class:`IOState`), the leader or candidate state of its role, and the output. The
protocol rules live in *handlers*, short-lived views built over that state for one input:

* :mod:`vote_handler` — elections and pre-vote;
* :mod:`following_handler` — AppendEntries on a follower;
* :mod:`leader_handler` — a leader's writes, transfer, lease and reads;
* :mod:`replication_handler` — a leader's replication streams, progress and commit;
* :mod:`membership_handler` — learners and joint consensus;
* :mod:`snapshot_handler` — building, installing and purging.

A leader's handlers are built by :meth:`Engine.leader_handler` (and friends), whose
``leader`` is never None: it raises :class:`ForwardToLeader` on a node that does not lead.
Role changes go through :mod:`roles` only.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any

from .._config import Config
from .._errors import ForwardToLeader, NotAllowed, NotInMembers, StorageError
from .._messages import (
    AppendEntriesRequest,
    TransferLeaderRequest,
    VoteRequest,
    VoteResponse,
)
from .._types import (
    Entry,
    LeaderId,
    LogId,
    Membership,
    MembershipChange,
    Node,
    Payload,
    ReadPolicy,
    ServerState,
    Snapshot,
    SnapshotMeta,
    StoredMembership,
    Vote,
    log_id_ge,
)
from . import roles
from .commands import (
    AdvanceCommitted,
    AppendEntries,
    Apply,
    Command,
    IOId,
    Respond,
    SaveCommitted,
    SaveVote,
    TruncateLog,
)
from .following_handler import FollowingHandler
from .io_state import IOState
from .leader_handler import LeaderHandler
from .log_ids import LogIdList
from .membership_handler import MembershipHandler
from .replication_handler import ReplicationHandler
from .snapshot_handler import SnapshotHandler
from .state import CandidateState, LeaderState, MembershipState
from .vote_handler import VoteHandler

# The log id of the membership entry ``initialize`` writes. It is the same on every node,
# so initializing several nodes with one membership is harmless.
INIT_LOG_ID = LogId(LeaderId(0, 0), 0)

# The Engine's inputs: every method RaftCore calls to tell it something happened.
INPUTS = (
    "startup",
    "initialize",
    "tick",
    "on_io_flushed",
    "on_applied",
    "elect",
    "handle_vote_req",
    "handle_vote_resp",
    "handle_transfer_leader",
    "handle_append_entries",
    "handle_higher_vote",
    "client_write",
    "handle_replication_progress",
    "handle_replication_conflict",
    "handle_heartbeat_ack",
    "transfer_leader",
    "ensure_linearizable",
    "add_learner",
    "change_membership",
    "maybe_build_snapshot",
    "on_snapshot_built",
    "purge_log",
    "handle_install_snapshot",
    "on_snapshot_installed",
)


class Engine:
    """One node's Raft protocol state and the inputs that move it. See the module docs."""

    def __init__(self, node_id: int, config: Config, rng: random.Random) -> None:
        self.id = node_id
        self.config = config
        self.rng = rng
        # The node's clock at the current input (set by the caller before each one).
        self.now = 0.0
        self.vote = Vote(LeaderId(0, None))
        self.log_ids = LogIdList()
        self.membership = MembershipState()
        self.io = IOState()
        # The role's state: at most one is set (see roles.py).
        self.leader: LeaderState | None = None
        self.candidate: CandidateState | None = None
        self.current_leader: int | None = None
        # Last time this node heard from (or, as leader, was) a live leader: the follower
        # side of the leader lease. None: never, or the lease was given up.
        self.leader_seen_time: float | None = None
        self.election_deadline = 0.0
        # The timeout drawn with the deadline: following the same leader extends by it.
        self.election_timeout = 0.0
        self.elect_enabled = True
        # Snapshots being installed for a leader, and who waits for each.
        self.pending_installs: list[tuple[SnapshotMeta, Any]] = []
        self.output: deque[Command] = deque()
        # Commands waiting for a log flush, in the order they were produced.
        self.gated: deque[tuple[IOId, Command]] = deque()

    # -- handler views ---------------------------------------------------------------------

    def forward_to_leader(self) -> ForwardToLeader:
        """The error for a request only the leader can serve."""
        return ForwardToLeader(self.current_leader, self.node_of(self.current_leader))

    def leading(self) -> LeaderState:
        """The leader's state.

        Raises:
            ForwardToLeader: this node does not lead.
        """
        if self.leader is None:
            raise self.forward_to_leader()
        return self.leader

    # A leader's handlers: each raises ForwardToLeader on a node that does not lead.

    def leader_handler(self) -> LeaderHandler:
        return LeaderHandler(self, self.leading())

    def replication_handler(self) -> ReplicationHandler:
        return ReplicationHandler(self, self.leading())

    def membership_handler(self) -> MembershipHandler:
        return MembershipHandler(self, self.leading())

    # Any node's handlers.

    def vote_handler(self) -> VoteHandler:
        return VoteHandler(self)

    def following_handler(self) -> FollowingHandler:
        return FollowingHandler(self)

    def snapshot_handler(self) -> SnapshotHandler:
        return SnapshotHandler(self)

    # -- inputs: startup and time ----------------------------------------------------------

    def startup(
        self,
        *,
        vote: Vote | None,
        log_ids: Iterable[LogId],
        purged: LogId | None,
        committed: LogId | None,
        last_applied: LogId | None,
        applied_membership: StoredMembership,
        log_memberships: Iterable[StoredMembership],
        snapshot: LogId | None = None,
        now: float | None = None,
    ) -> None:
        """Restore state read from storage after a (re)start.

        ``log_ids`` are the ids of the entries present in the log, in order;
        ``log_memberships`` are membership entries found in the log after ``last_applied``;
        ``snapshot`` is the last log id of the state machine's current snapshot, ``now``
        the node's clock (default: ``self.now`` as set by the caller).
        A restarted leader comes back as a follower; its vote is kept, so it never votes
        twice in one term.

        Raises:
            StorageError: the log ends before the persisted committed log id.
        """
        if now is not None:
            self.now = now
        if vote is not None:
            self.vote = vote
        self.log_ids = LogIdList(purged)
        for log_id in log_ids:
            self.log_ids.append(log_id)
        last = self.log_ids.last
        committed = committed if log_id_ge(committed, last_applied) else last_applied
        if committed is not None and not log_id_ge(last, committed):
            raise StorageError(f"log ends at {last} but {committed} was committed")
        self.io.restore(
            flushed=IOId(self.vote, last),
            committed=committed,
            applied=last_applied,
            snapshot=snapshot,
        )
        self.membership.committed = applied_membership
        for stored in log_memberships:
            self.membership.append(stored)
        if committed is not None:
            self.membership.commit_upto(committed.index)
        if committed is not None and not log_id_ge(last_applied, committed):
            self.push(Apply(committed))
            self.io.apply_requested = committed
        if self.vote.term > 0 or last is not None:
            # We cannot know when we last heard from a leader: assume one is alive and
            # refuse (pre-)votes, ours included, for one lease (PROTOCOL-NOTES "Reads").
            # Otherwise a majority restarting inside a leader's lease could elect a new
            # leader while the old one still serves lease reads. The price: the first
            # election after a whole-cluster restart waits one lease.
            self.leader_seen_time = self.now
        self.reset_election_timer()

    def initialize(self, membership: Membership) -> None:
        """Write the first membership entry; then campaign at once.

        Raises:
            NotAllowed: this node already has a vote or a log.
            NotInMembers: this node is not a voter of ``membership``.
        """
        if self.vote.term != 0 or self.vote.leader_id.node_id is not None or self.log_ids.last:
            raise NotAllowed(f"node {self.id} is already initialized (vote {self.vote})")
        if not membership.is_voter(self.id):
            raise NotInMembers(f"node {self.id} is not a voter of {sorted(membership.voter_ids)}")
        self.append_to_log([Entry(INIT_LOG_ID, MembershipChange(membership))])
        self.elect()

    def tick(self, now: float) -> None:
        """Time passed: check the leader lease, or the election deadline."""
        self.now = now
        leader = self.leader
        if leader is not None:
            handler = LeaderHandler(self, leader)
            handler.check_quorum()
            if self.leader is leader:
                handler.check_transfer_timeout()
                self.leader_seen_time = now
            return
        if not self.elect_enabled or not self.is_voter:
            return
        if now >= self.election_deadline:
            self.elect()

    def next_deadline(self) -> float:
        """When ``tick`` next has something to check: the lease expiry for a leader (check-
        quorum), the election deadline for a voter, never for a learner."""
        leader = self.leader
        if leader is not None:
            deadline = max(
                LeaderHandler(self, leader).quorum_ack_time() + self.config.lease,
                leader.check_quorum_grace_until,
            )
            if leader.transfer_to is not None:
                deadline = min(deadline, leader.transfer_deadline)
            return deadline
        if not self.is_voter:
            return math.inf
        return self.election_deadline

    # -- inputs: I/O completions -----------------------------------------------------------

    def on_io_flushed(self, io: IOId) -> None:
        """Storage made ``io`` durable: release the commands that waited for it, and (on a
        leader) commit what a quorum now holds."""
        if self.io.flushed is None or not io.is_flushed_by(self.io.flushed):
            self.io.flushed = io
        while self.gated and self.gated[0][0].is_flushed_by(self.io.flushed):
            self._release(self.gated.popleft()[1])
        if self.leader is not None:
            ReplicationHandler(self, self.leader).update_commit()

    def on_applied(self, upto: LogId) -> None:
        """The state machine applied every entry up to ``upto``."""
        if log_id_ge(upto, self.io.applied):
            self.io.applied = upto
        self.maybe_build_snapshot()

    # -- inputs: elections -----------------------------------------------------------------

    def elect(self) -> None:
        self.vote_handler().elect()

    def handle_vote_req(self, req: VoteRequest) -> VoteResponse:
        return self.vote_handler().handle_vote_req(req)

    def handle_vote_resp(self, target: int, req: VoteRequest, resp: VoteResponse) -> None:
        self.vote_handler().handle_vote_resp(target, req, resp)

    def handle_transfer_leader(self, req: TransferLeaderRequest) -> None:
        self.vote_handler().handle_transfer_leader(req)

    def handle_higher_vote(self, vote: Vote) -> None:
        """Someone answered with ``vote``: if it is greater than ours, adopt it."""
        if vote > self.vote:
            roles.adopt_higher_vote(self, vote)

    # -- inputs: following -----------------------------------------------------------------

    def handle_append_entries(self, req: AppendEntriesRequest, responder: object) -> None:
        self.following_handler().handle_append_entries(req, responder)

    # -- inputs: leading -------------------------------------------------------------------

    def client_write(self, payloads: Sequence[Payload]) -> list[LogId]:
        """Append client payloads as entries of our term; returns their log ids.

        Raises:
            ForwardToLeader: this node does not lead.
        """
        return self.leader_handler().client_write(payloads)

    def handle_replication_progress(
        self, target: int, vote: Vote, epoch: int, matching: LogId | None, send_time: float
    ) -> None:
        if self.leader is not None:
            ReplicationHandler(self, self.leader).handle_progress(
                target, vote=vote, epoch=epoch, matching=matching, send_time=send_time
            )

    def handle_replication_conflict(
        self, target: int, vote: Vote, epoch: int, prev: LogId | None, hint: int, send_time: float
    ) -> None:
        if self.leader is not None:
            ReplicationHandler(self, self.leader).handle_conflict(
                target, vote=vote, epoch=epoch, prev=prev, hint=hint, send_time=send_time
            )

    def handle_heartbeat_ack(
        self, target: int, vote: Vote, send_time: float, resp_vote: Vote, read_round: int = 0
    ) -> None:
        """A heartbeat sent at ``send_time`` (carrying ReadIndex round ``read_round``) under
        ``vote`` was answered with ``resp_vote``."""
        if resp_vote > self.vote:
            self.handle_higher_vote(resp_vote)
            return
        if self.leader is not None:
            LeaderHandler(self, self.leader).handle_heartbeat_ack(
                target, vote=vote, send_time=send_time, resp_vote=resp_vote, read_round=read_round
            )

    def transfer_leader(self, to: int, responder: Any = None) -> None:
        """Hand leadership to voter ``to`` (on the leader; elsewhere nothing happens).

        ``Respond(responder, None)`` once the transfer started (or there is nothing to
        do), ``Respond(responder, NotAVoter)`` at once when ``to`` is not a voter.
        """
        if self.leader is not None:
            LeaderHandler(self, self.leader).transfer_leader(to, responder)
        elif responder is not None:
            self.respond(responder, None)

    def ensure_linearizable(self, policy: ReadPolicy, responder: Any) -> None:
        """Start a linearizable read; ``Respond(responder, read_log_id)`` when it is safe.

        The caller must then wait until ``applied >= read_log_id`` before reading.
        """
        try:
            handler = self.leader_handler()
        except ForwardToLeader as e:
            self.respond(responder, e)
            return
        handler.ensure_linearizable(policy, responder)

    # -- inputs: membership ----------------------------------------------------------------

    def add_learner(self, node_id: int, node: Node, responder: Any) -> None:
        """Add ``node_id`` as a learner (replicated to, never voting)."""
        try:
            handler = self.membership_handler()
        except ForwardToLeader as e:
            self.respond(responder, e)
            return
        handler.add_learner(node_id, node, responder)

    def remove_learner(self, node_id: int, responder: Any) -> None:
        """Remove learner ``node_id`` from the membership (no joint step: it has no vote)."""
        try:
            handler = self.membership_handler()
        except ForwardToLeader as e:
            self.respond(responder, e)
            return
        handler.remove_learner(node_id, responder)

    def change_membership(self, voter_ids: frozenset[int], retain: bool, responder: Any) -> None:
        """Move to ``voter_ids`` through a joint configuration."""
        try:
            handler = self.membership_handler()
        except ForwardToLeader as e:
            self.respond(responder, e)
            return
        handler.change_membership(voter_ids, retain, responder)

    # -- inputs: snapshots -----------------------------------------------------------------

    def maybe_build_snapshot(self, force: bool = False) -> None:
        self.snapshot_handler().maybe_build_snapshot(force=force)

    def on_snapshot_built(self, meta: SnapshotMeta, size: int = 0) -> None:
        """The state machine worker built a snapshot of ``meta``, ``size`` bytes of data."""
        self.snapshot_handler().on_snapshot_built(meta, size)

    def purge_log(self, upto_index: int) -> None:
        self.snapshot_handler().purge_log(upto_index)

    def handle_install_snapshot(self, vote: Vote, snapshot: Snapshot, responder: Any) -> None:
        self.snapshot_handler().handle_install_snapshot(vote, snapshot, responder)

    def on_snapshot_installed(self, meta: SnapshotMeta, size: int = 0) -> None:
        """The state machine installed a snapshot of ``meta``, ``size`` bytes of data."""
        self.snapshot_handler().on_snapshot_installed(meta, size)

    # -- output ----------------------------------------------------------------------------

    def push(self, command: Command) -> None:
        self.output.append(command)

    def push_after_flush(self, io: IOId, command: Command) -> None:
        """Emit ``command`` once ``io`` is durable (at once if it already is)."""
        if not self.gated and io.is_flushed_by(self.io.flushed):
            self._release(command)
        else:
            self.gated.append((io, command))

    def _release(self, command: Command) -> None:
        if isinstance(command, AdvanceCommitted):
            self.advance_committed(command.committed)
        else:
            self.output.append(command)

    def respond(self, responder: Any, value: Any) -> None:
        self.output.append(Respond(responder, value))

    def take_output(self) -> list[Command]:
        out = list(self.output)
        self.output.clear()
        return out

    # -- state changes every handler uses ----------------------------------------------------

    def append_to_log(self, entries: list[Entry]) -> None:
        """Append ``entries`` (a leader's new ones or a follower's from its leader): their
        memberships take effect at once; storage is asked to write them."""
        for entry in entries:
            self.log_ids.append(entry.log_id)
            if isinstance(entry.payload, MembershipChange):
                self.membership.append(StoredMembership(entry.log_id, entry.payload.membership))
        self.push(AppendEntries(self.vote, tuple(entries)))

    def truncate_log_after(self, after: LogId | None) -> None:
        """Delete our log after ``after`` (a real conflict): memberships appended in the
        deleted part revert, and ``flushed`` cannot point past the new end."""
        self.push(TruncateLog(after))
        self.log_ids.truncate_after(after)
        self.membership.truncate_after(-1 if after is None else after.index)
        flushed = self.io.flushed
        if flushed is not None and not log_id_ge(after, flushed.log_id):
            self.io.flushed = IOId(flushed.vote, after)

    def advance_committed(self, committed: LogId) -> None:
        """Move the commit index forward (never back): persist it, then apply."""
        if log_id_ge(self.io.committed, committed):
            return
        self.io.committed = committed
        self.membership.commit_upto(committed.index)
        self.output.append(SaveCommitted(committed))
        self.output.append(Apply(committed))
        self.io.apply_requested = committed

    def save_vote(self, vote: Vote) -> None:
        """Adopt ``vote`` and persist it; commands after this run once it is durable."""
        self.vote = vote
        self.push(SaveVote(vote))
        # save_vote is durable on return and flushes every earlier append first (I/O
        # ordering), so once it returns everything submitted so far is flushed under it.
        self.io.flushed = IOId(vote, self.log_ids.last)

    def reset_election_timer(self) -> None:
        """Draw the next election deadline: ``now + uniform(min, max)``.

        After hearing from a leader, no voter grants a (pre-)vote until its lease from that
        leader ends (leader stickiness), so campaigning earlier is wasted and costs a whole
        extra timeout. Then the randomized range starts where our own lease ends:
        ``leader_seen + lease + uniform(0, max - min)`` — the spread that avoids split
        votes is kept, the doomed first attempt is not made.
        """
        config = self.config
        deadline = self.now + self.rng.uniform(
            config.election_timeout_min, config.election_timeout_max
        )
        if self.leader is None and self.leader_seen_time is not None:
            spread = config.election_timeout_max - config.election_timeout_min
            lease_end = self.leader_seen_time + config.lease + self.rng.uniform(0, spread)
            deadline = max(deadline, lease_end)
        self.election_deadline = deadline
        self.election_timeout = deadline - self.now

    def extend_election_timer(self) -> None:
        """Heard again from the leader we follow: the deadline moves to ``now`` plus the
        timeout drawn at the last :meth:`reset_election_timer` (never earlier)."""
        self.election_deadline = max(self.election_deadline, self.now + self.election_timeout)

    # -- derived state ---------------------------------------------------------------------

    @property
    def committed(self) -> LogId | None:
        return self.io.committed

    @property
    def flushed(self) -> IOId | None:
        return self.io.flushed

    @property
    def apply_requested(self) -> LogId | None:
        return self.io.apply_requested

    @property
    def last_applied(self) -> LogId | None:
        return self.io.applied

    @property
    def snapshot_last_log_id(self) -> LogId | None:
        return self.io.snapshot

    @property
    def last_log_id(self) -> LogId | None:
        return self.log_ids.last

    @property
    def is_leader(self) -> bool:
        return self.leader is not None

    @property
    def is_voter(self) -> bool:
        return self.membership.membership.is_voter(self.id)

    @property
    def server_state(self) -> ServerState:
        if self.leader is not None:
            return ServerState.LEADER
        if self.candidate is not None and not self.candidate.pre_vote:
            return ServerState.CANDIDATE
        if self.is_voter:
            return ServerState.FOLLOWER
        return ServerState.LEARNER

    def other_voters(self) -> tuple[int, ...]:
        return tuple(sorted(self.membership.membership.voter_ids - {self.id}))

    def replication_targets(self) -> tuple[int, ...]:
        membership = self.membership.membership
        return tuple(sorted((set(membership.nodes) | membership.voter_ids) - {self.id}))

    def node_of(self, node_id: int | None) -> Any:
        if node_id is None:
            return None
        return self.membership.membership.nodes.get(node_id)

    def lease_valid_for_followers(self) -> bool:
        """Follower side of the lease: a live leader was heard from within ``lease``."""
        if self.leader is not None:
            return True
        seen = self.leader_seen_time
        return seen is not None and self.now < seen + self.config.lease

    def lease_valid(self) -> bool:
        """This node leads and may serve a LEASE_READ locally (see ``leader_handler``)."""
        return self.leader is not None and LeaderHandler(self, self.leader).lease_valid()

    def quorum_ack_time(self) -> float:
        """The latest send time a quorum acknowledged; ``-inf`` if this node does not lead."""
        if self.leader is None:
            return -math.inf
        return LeaderHandler(self, self.leader).quorum_ack_time()

    def validate(self) -> None:
        """Check the log pointers' order (:meth:`IOState.validate`)."""
        self.io.validate(self.log_ids)
