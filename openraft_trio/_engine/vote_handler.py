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

from typing import TYPE_CHECKING

from .._messages import TransferLeaderRequest, VoteRequest, VoteResponse
from .._types import log_id_ge
from . import roles
from .commands import SendVote
from .state import CandidateState

if TYPE_CHECKING:
    from .engine import Engine


class VoteHandler:
    """Elections, on any node (a view over the Engine for one input)."""

    __slots__ = ("engine",)

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def elect(self) -> None:
        """Start an election: a pre-vote round first if enabled, else a real one.

        Nothing happens on a learner, on the leader, or on a follower that heard from a
        live leader within the lease (leader stickiness binds our own vote as it binds our
        vote for others: a self-vote inside the lease could elect a new leader while the
        old one still serves lease reads). ``handle_transfer_leader`` is the one way
        through the lease.
        """
        engine = self.engine
        if not engine.is_voter or engine.leader is not None or engine.lease_valid_for_followers():
            return
        if engine.config.enable_pre_vote:
            self._start_pre_vote()
        else:
            self._start_real_election()

    def _start_pre_vote(self) -> None:
        engine = self.engine
        candidate = roles.become_candidate(engine, pre_vote=True)
        req = VoteRequest(candidate.vote, engine.last_log_id, pre_vote=True)
        if self._has_quorum(candidate):
            self._start_real_election()
            return
        engine.push(SendVote(req, engine.other_voters()))

    def _start_real_election(self, leader_transfer: bool = False) -> None:
        engine = self.engine
        candidate = roles.become_candidate(engine, pre_vote=False)
        if self._has_quorum(candidate):
            self._become_leader(candidate)
            return
        req = VoteRequest(candidate.vote, engine.last_log_id, leader_transfer=leader_transfer)
        engine.push(SendVote(req, engine.other_voters()))

    def _has_quorum(self, candidate: CandidateState) -> bool:
        return self.engine.membership.membership.is_quorum(candidate.granted)

    def handle_transfer_leader(self, req: TransferLeaderRequest) -> None:
        """Our leader hands over to us: campaign now, flagged as a transfer, if the request
        is from the leader we follow, for us, and we hold its whole log."""
        engine = self.engine
        if (
            req.to_node_id != engine.id
            or req.from_vote != engine.vote
            or not engine.is_voter
            or not log_id_ge(engine.last_log_id, req.last_log_id)
        ):
            return
        self._start_real_election(leader_transfer=True)

    def handle_vote_req(self, req: VoteRequest) -> VoteResponse:
        """Answer a vote or pre-vote request. The caller sends the response with
        ``Respond`` *after* the commands emitted here (a granted vote is saved first)."""
        engine = self.engine
        # A repeat of the request we granted (a retry or a duplicated message) is granted
        # again: the lease set by that grant must not turn it into a refusal.
        regrant = not req.pre_vote and req.vote.partial_cmp(engine.vote) == 0
        if engine.lease_valid_for_followers() and not req.leader_transfer and not regrant:
            # A live leader exists (or we are it): refuse, keeping the cluster stable.
            return VoteResponse(engine.vote, False, engine.last_log_id)
        if not log_id_ge(req.last_log_id, engine.last_log_id):
            # §5.4.1: the candidate's log is behind ours. Our vote is unchanged.
            return VoteResponse(engine.vote, False, engine.last_log_id)
        if req.pre_vote:
            granted = req.vote >= engine.vote or req.vote.term > engine.vote.term
            return VoteResponse(engine.vote, granted, engine.last_log_id)
        if not req.vote >= engine.vote:
            return VoteResponse(engine.vote, False, engine.last_log_id)
        # Granting does not start the follower-side lease: only contact with an elected
        # leader does (openraft: only a committed vote is protected). Lease reads stay safe
        # because they wait for the blank entry to commit, and the acks that commit it are
        # what the lease counts from. So a split vote recovers at the next timeout.
        roles.grant_vote(engine, req.vote)
        return VoteResponse(engine.vote, True, engine.last_log_id)

    def handle_vote_resp(self, target: int, req: VoteRequest, resp: VoteResponse) -> None:
        """A reply to our (pre-)vote request ``req`` from ``target``."""
        engine = self.engine
        if resp.vote > engine.vote and not resp.vote_granted:
            # Someone is ahead of us: adopt their vote and stop campaigning (§5.1).
            roles.adopt_higher_vote(engine, resp.vote)
            return
        candidate = engine.candidate
        if candidate is None or candidate.vote != req.vote or candidate.pre_vote != req.pre_vote:
            return  # a reply to an election we are no longer running
        if not resp.vote_granted:
            return
        if not engine.membership.membership.is_voter(target):
            return
        candidate.granted.add(target)
        if not self._has_quorum(candidate):
            return
        if candidate.pre_vote:
            self._start_real_election()
        else:
            self._become_leader(candidate)

    def _become_leader(self, candidate: CandidateState) -> None:
        """Won: commit the vote, open the leader nursery, append a blank entry (§5.4.2),
        and start a replication stream to every target right after our previous log."""
        engine = self.engine
        leader = roles.become_leader(engine, candidate)
        replication = engine.replication_handler()
        prev = engine.log_ids.get(leader.noop_log_id.index - 1)
        for target in leader.progress:
            replication.start_stream(target, prev)
