"""Elections: pre-vote, vote requests and responses, becoming leader.

Raft §5.2 (leader election), §5.4.1 (election restriction: grant only to a candidate whose
last log id is >= ours), Ongaro's thesis §9.6 (pre-vote) and openraft ``vote.md``:

* a vote is granted only once it is durable: ``SaveVote`` precedes the ``Respond``;
* a node that heard from a live leader within the lease refuses (pre-)votes that are not
  leader transfers (leader stickiness; this is what makes lease reads safe);
* a pre-vote changes no state on either side;
* a candidate counts a grant only if the response is for its current vote;
* stickiness binds this node's own vote too: it does not campaign while it heard from a
  live leader within the lease, whatever asked it to (the election timer, ``elect()``),
  and a leader does not campaign at all. Only a leader transfer crosses the lease.
"""

from __future__ import annotations

from .._messages import TransferLeaderRequest, VoteRequest, VoteResponse
from .._types import BLANK, Entry, LeaderId, LogId, Vote, log_id_ge
from .base import EngineBase
from .commands import BecomeLeader, SendVote
from .state import CandidateState, LeaderState, ProgressEntry


class VoteHandler(EngineBase):
    def elect(self) -> None:
        """Start an election: a pre-vote round first if enabled, else a real one.

        Nothing happens on a learner, on the leader, or on a follower that heard from a
        live leader within the lease (leader stickiness binds our own vote as it binds our
        vote for others: a self-vote inside the lease could elect a new leader while the
        old one still serves lease reads). ``handle_transfer_leader`` is the one way
        through the lease.
        """
        if not self.is_voter or self.leader is not None or self.lease_valid_for_followers():
            return
        if self.config.enable_pre_vote:
            self._start_pre_vote()
        else:
            self._start_real_election()

    def _start_pre_vote(self) -> None:
        vote = Vote(LeaderId(self.vote.term + 1, self.id))
        self.candidate = CandidateState(vote, pre_vote=True, granted={self.id}, started_at=self.now)
        self.reset_election_timer()
        req = VoteRequest(vote, self.last_log_id, pre_vote=True)
        if self._candidate_has_quorum():
            self._start_real_election()
            return
        self.push(SendVote(req, self.other_voters()))

    def _start_real_election(self, leader_transfer: bool = False) -> None:
        vote = Vote(LeaderId(self.vote.term + 1, self.id))
        self.candidate = CandidateState(vote, pre_vote=False, granted={self.id}, started_at=self.now)
        self.current_leader = None
        self.reset_election_timer()
        self.save_vote(vote)
        if self._candidate_has_quorum():
            self._become_leader()
            return
        req = VoteRequest(vote, self.last_log_id, leader_transfer=leader_transfer)
        self.push(SendVote(req, self.other_voters()))

    def _candidate_has_quorum(self) -> bool:
        assert self.candidate is not None
        return self.membership.membership.is_quorum(self.candidate.granted)

    def handle_transfer_leader(self, req: TransferLeaderRequest) -> None:
        """Our leader hands over to us: campaign now, flagged as a transfer, if the request
        is from the leader we follow, for us, and we hold its whole log."""
        if (
            req.to_node_id != self.id
            or req.from_vote != self.vote
            or not self.is_voter
            or not log_id_ge(self.last_log_id, req.last_log_id)
        ):
            return
        self._start_real_election(leader_transfer=True)

    def handle_vote_req(self, req: VoteRequest) -> VoteResponse:
        """Answer a vote or pre-vote request. The caller sends the response with
        ``Respond`` *after* the commands emitted here (a granted vote is saved first)."""
        # A repeat of the request we granted (a retry or a duplicated message) is granted
        # again: the lease set by that grant must not turn it into a refusal.
        regrant = not req.pre_vote and req.vote.partial_cmp(self.vote) == 0
        if self.lease_valid_for_followers() and not req.leader_transfer and not regrant:
            # A live leader exists (or we are it): refuse, keeping the cluster stable.
            return VoteResponse(self.vote, False, self.last_log_id)
        if not log_id_ge(req.last_log_id, self.last_log_id):
            # §5.4.1: the candidate's log is behind ours. Our vote is unchanged.
            return VoteResponse(self.vote, False, self.last_log_id)
        if req.pre_vote:
            granted = req.vote >= self.vote or req.vote.term > self.vote.term
            return VoteResponse(self.vote, granted, self.last_log_id)
        if not req.vote >= self.vote:
            return VoteResponse(self.vote, False, self.last_log_id)
        if req.vote.partial_cmp(self.vote) != 0:
            if self.leader is not None or self.candidate is not None:
                self.step_down(None)
            self.save_vote(req.vote)
        self.current_leader = None
        # Granting does not start the follower-side lease: only contact with an elected
        # leader does (openraft: only a committed vote is protected). Lease reads stay safe
        # because they wait for the blank entry to commit, and the acks that commit it are
        # what the lease counts from. So a split vote recovers at the next timeout.
        self.reset_election_timer()
        return VoteResponse(self.vote, True, self.last_log_id)

    def handle_vote_resp(self, target: int, req: VoteRequest, resp: VoteResponse) -> None:
        """A reply to our (pre-)vote request ``req`` from ``target``."""
        if resp.vote > self.vote and not resp.vote_granted:
            # Someone is ahead of us: adopt their vote and stop campaigning (§5.1).
            self.step_down(resp.vote.leader_id.node_id if resp.vote.committed else None)
            self.save_vote(resp.vote)
            return
        cand = self.candidate
        if cand is None or cand.vote != req.vote or cand.pre_vote != req.pre_vote:
            return  # a reply to an election we are no longer running
        if not resp.vote_granted:
            return
        if not self.membership.membership.is_voter(target):
            return
        cand.granted.add(target)
        if not self._candidate_has_quorum():
            return
        if cand.pre_vote:
            self._start_real_election()
        else:
            self._become_leader()

    def _become_leader(self) -> None:
        """Won: commit the vote, open the leader nursery, append a blank entry (§5.4.2)."""
        assert self.candidate is not None
        started = self.candidate.started_at
        self.candidate = None
        vote = Vote(self.vote.leader_id, committed=True)
        self.save_vote(vote)
        self.current_leader = self.id
        noop = LogId(vote.leader_id, self.log_ids.last.index + 1 if self.log_ids.last else 0)
        targets = self.replication_targets()
        voters = self.membership.membership.voter_ids
        self.leader = LeaderState(
            vote=vote,
            noop_log_id=noop,
            progress={t: ProgressEntry() for t in targets},
            # The voters that granted us did so no earlier than the election started, and
            # refuse other candidates for a lease after that: the lease starts there.
            ack_time={v: started for v in sorted(voters) if v != self.id},
            ack_round={v: 0 for v in sorted(voters) if v != self.id},
        )
        self.leader_seen_time = self.now
        self.push(BecomeLeader(vote, targets))
        self.leader_append_entries([Entry(noop, BLANK)])
        for t in targets:
            self.start_stream(t, self.log_ids.get(noop.index - 1))
