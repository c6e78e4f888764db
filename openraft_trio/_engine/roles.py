"""Role changes: the one place where a node becomes follower, candidate or leader.

Theory of operation
-------------------
A node is in one of four roles. The Engine keeps the role's state in ``engine.leader`` or
``engine.candidate`` (never both); a follower or learner has neither::

               elect() / election timeout            quorum of pre-votes
    FOLLOWER ──────────────────────────► PRE-CANDIDATE ──────────────────► CANDIDATE
       ▲  ▲                                    │                              │
       │  └──── a greater vote, or a leader ───┴──────────────────────────────┤
       │        (its AppendEntries or snapshot)                quorum of votes│
       │                                                                      ▼
       └──────── a greater vote, check-quorum, removed from the cluster ── LEADER

* A LEARNER is a follower that is not a voter: it never campaigns, it follows.
* A pre-candidate asks whether it *could* win (Ongaro's thesis §9.6) and changes no vote;
  a candidate has saved a vote for itself in a new term.
* Leaving LEADER (:func:`step_down`) emits ``QuitLeader``, answers the leader's pending
  reads and membership change with ``ForwardToLeader``, and gives the lease up. RaftCore
  tears the leader nursery down when it runs ``QuitLeader``.
* Every change of role re-draws the election timeout; hearing again from the leader we
  follow pushes the deadline back by the timeout drawn last (it never moves earlier).

Handlers decide *when* to change role; these functions are *how*.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._errors import ForwardToLeader
from .._types import BLANK, Entry, LeaderId, LogId, Vote
from .commands import BecomeLeader, QuitLeader
from .state import CandidateState, LeaderState, ProgressEntry

if TYPE_CHECKING:
    from .engine import Engine


def become_candidate(engine: Engine, *, pre_vote: bool) -> CandidateState:
    """Campaign for the next term: a pre-vote round changes no vote; a real one saves a
    vote for ourselves (and forgets the leader we followed)."""
    vote = Vote(LeaderId(engine.vote.term + 1, engine.id))
    candidate = CandidateState(vote, pre_vote=pre_vote, granted={engine.id}, started_at=engine.now)
    engine.candidate = candidate
    engine.reset_election_timer()
    if not pre_vote:
        engine.current_leader = None
        engine.save_vote(vote)
    return candidate


def become_leader(engine: Engine, candidate: CandidateState) -> LeaderState:
    """Won the election of ``candidate``: commit the vote and set up the leader's state.

    The caller appends the blank entry and starts the replication streams.
    """
    started = candidate.started_at
    engine.candidate = None
    vote = Vote(engine.vote.leader_id, committed=True)
    engine.save_vote(vote)
    engine.current_leader = engine.id
    last = engine.log_ids.last
    noop = LogId(vote.leader_id, last.index + 1 if last else 0)
    targets = engine.replication_targets()
    voters = sorted(engine.membership.membership.voter_ids - {engine.id})
    leader = LeaderState(
        vote=vote,
        noop_log_id=noop,
        progress={t: ProgressEntry() for t in targets},
        # The voters that granted us did so no earlier than the election started, and
        # refuse other candidates for a lease after that: the lease starts there.
        ack_time={v: started for v in voters},
        ack_round={v: 0 for v in voters},
    )
    engine.leader = leader
    engine.leader_seen_time = engine.now
    engine.push(BecomeLeader(vote, targets))
    engine.append_to_log([Entry(noop, BLANK)])
    return leader


def step_down(engine: Engine, new_leader: int | None) -> None:
    """Stop leading or campaigning; become a follower (or learner) of ``new_leader``."""
    engine.candidate = None
    leader = engine.leader
    if leader is not None:
        engine.leader = None
        engine.push(QuitLeader(new_leader, engine.io.committed))
        node = engine.node_of(new_leader)
        for read in leader.pending_reads:
            engine.respond(read.responder, ForwardToLeader(new_leader, node))
        if leader.pending_change is not None:
            engine.respond(
                leader.pending_change.responder,
                ForwardToLeader(new_leader, node, maybe_committed=True),
            )
        engine.leader_seen_time = None
    engine.current_leader = new_leader
    engine.reset_election_timer()


def adopt_higher_vote(engine: Engine, vote: Vote) -> None:
    """Someone is ahead of us (§5.1): stop leading or campaigning and save ``vote``."""
    step_down(engine, vote.leader_id.node_id if vote.committed else None)
    engine.save_vote(vote)


def follow(engine: Engine, vote: Vote) -> None:
    """A committed vote >= ours reached us: follow its leader (saving the vote if newer)."""
    leader_id = vote.leader_id.node_id
    # Still following the same leader: push the election deadline back by the timeout
    # drawn when we started following it. Deadlines then only move later, and the ticker
    # is never woken to re-arm (a re-draw per append moved it earlier half the time).
    same_leader = engine.candidate is None and engine.current_leader == leader_id
    if vote.partial_cmp(engine.vote) != 0:
        same_leader = False
        if engine.leader is not None or engine.candidate is not None:
            step_down(engine, leader_id)
        engine.save_vote(vote)
    elif engine.candidate is not None:
        engine.candidate = None
    engine.current_leader = leader_id
    engine.leader_seen_time = engine.now
    if same_leader:
        engine.extend_election_timer()
    else:
        engine.reset_election_timer()


def grant_vote(engine: Engine, vote: Vote) -> None:
    """We grant ``vote``: save it (ending a candidacy or leadership of ours if it is new)."""
    if vote.partial_cmp(engine.vote) != 0:
        if engine.leader is not None or engine.candidate is not None:
            step_down(engine, None)
        engine.save_vote(vote)
    engine.current_leader = None
    engine.reset_election_timer()
