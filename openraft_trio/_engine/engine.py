"""The Engine: Raft's protocol decisions as a pure state machine (sans-I/O).

Theory of operation
-------------------
RaftCore feeds the Engine inputs as method calls — time passing (``tick``), inbound RPCs
(``handle_vote_req``, ``handle_append_entries``), replies to our RPCs
(``handle_vote_resp``, ``handle_replication_progress``...), client requests
(``client_write``, ``ensure_linearizable``) and I/O completions (``on_flushed``,
``on_applied``) — after setting ``engine.now``. Each call appends
:mod:`~openraft_trio._engine.commands` to ``engine.output``; RaftCore runs them in order.
Commands that must wait for a log flush (replies that acknowledge entries) are held back
and released by ``on_flushed``. The Engine imports no trio, does no I/O and draws all
randomness from the ``random.Random`` it was given, so it is deterministic and tested by
asserting the exact commands it emits.

The handlers, one module each: :mod:`vote_handler` (elections, pre-vote),
:mod:`following_handler` (AppendEntries on followers), :mod:`leader_handler` (writes,
replication progress, commit, lease, reads).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from .._errors import NotAllowed, NotInMembers
from .._types import (
    Entry,
    LeaderId,
    LogId,
    Membership,
    MembershipChange,
    StoredMembership,
    Vote,
    log_id_ge,
)
from .commands import Apply, IOId
from .following_handler import FollowingHandler
from .leader_handler import LeaderHandler
from .log_ids import LogIdList
from .membership_handler import MembershipHandler
from .snapshot_handler import SnapshotHandler
from .vote_handler import VoteHandler

# The log id of the membership entry ``initialize`` writes. It is the same on every node,
# so initializing several nodes with one membership is harmless.
INIT_LOG_ID = LogId(LeaderId(0, 0), 0)


class Engine(VoteHandler, FollowingHandler, LeaderHandler, MembershipHandler, SnapshotHandler):
    """One node's Raft protocol state. See the module docstring."""

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
        from .._errors import StorageError

        if now is not None:
            self.now = now
        self.snapshot_last_log_id = snapshot
        if vote is not None:
            self.vote = vote
        self.log_ids = LogIdList(purged)
        for log_id in log_ids:
            self.log_ids.append(log_id)
        last = self.log_ids.last
        self.flushed = IOId(self.vote, last)
        committed = committed if log_id_ge(committed, last_applied) else last_applied
        if committed is not None and not log_id_ge(last, committed):
            raise StorageError(f"log ends at {last} but {committed} was committed")
        self.committed = committed
        self.last_applied = last_applied
        self.apply_requested = last_applied
        self.membership.committed = applied_membership
        for m in log_memberships:
            self.membership.append(m)
        if committed is not None:
            self.membership.commit_upto(committed.index)
        if committed is not None and not log_id_ge(last_applied, committed):
            self.push(Apply(committed))
            self.apply_requested = committed
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
        entry = Entry(INIT_LOG_ID, MembershipChange(membership))
        self.log_ids.append(entry.log_id)
        self.membership.append(StoredMembership(entry.log_id, membership))
        from .commands import AppendEntries

        self.push(AppendEntries(self.vote, (entry,)))
        self.elect()

    def tick(self, now: float) -> None:
        """Time passed: check the leader lease, or the election deadline."""
        self.now = now
        if self.leader is not None:
            self.check_quorum()
            self.check_transfer_timeout()
            if self.leader is not None:
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
                self.quorum_ack_time() + self.config.lease, leader.check_quorum_grace_until
            )
            if leader.transfer_to is not None:
                deadline = min(deadline, leader.transfer_deadline)
            return deadline
        if not self.is_voter:
            return math.inf
        return self.election_deadline

    def on_io_flushed(self, io: IOId) -> None:
        """Storage made ``io`` durable."""
        self.on_flushed(io)
        if self.leader is not None:
            self.update_commit()

    def on_applied(self, upto: LogId) -> None:
        if log_id_ge(upto, self.last_applied):
            self.last_applied = upto
        self.maybe_build_snapshot()
