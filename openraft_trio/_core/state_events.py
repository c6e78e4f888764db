"""Log events of the Engine's state changes: elections, term, leader, role, membership.

RaftCore calls :meth:`StateEvents.update` after every round whose metrics changed. It
compares the Engine's state with what it saw last time — by identity first (the Engine
replaces its vote, role states and memberships, it never mutates them in place), so a round
that changed none of them costs five ``is`` checks — and emits the events of
:mod:`openraft_trio._events` for what changed. The Engine is not touched: it stays pure.

A round may pass through states this never sees (a single voter campaigns and wins inside
one call): the events are inferred from the states before and after (a leader of a term
whose candidacy was not seen is reported as started and won).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, final

from .. import _events as events
from .._types import ServerState, StoredMembership

if TYPE_CHECKING:
    from .._engine import Engine
    from .._engine.state import CandidateState, LeaderState


def _membership_fields(stored: StoredMembership) -> dict[str, Any]:
    membership = stored.membership
    voters = [sorted(config) for config in membership.configs]
    learners = sorted(set(membership.nodes) - membership.voter_ids)
    return {
        "log_index": None if stored.log_id is None else stored.log_id.index,
        "voters": voters,
        "learners": learners,
        "joint": len(voters) > 1,
    }


@final
class StateEvents:
    """What the Engine's state was after the last round (see the module docstring)."""

    __slots__ = ("candidate", "current_leader", "leader", "membership", "role", "vote")

    def __init__(self, engine: Engine) -> None:
        self.vote = engine.vote
        self.candidate: CandidateState | None = engine.candidate
        self.leader: LeaderState | None = engine.leader
        self.current_leader = engine.current_leader
        self.membership: StoredMembership = engine.membership.effective
        self.role: ServerState = engine.server_state

    def update(self, engine: Engine) -> None:
        """Emit the events of what changed since the last call."""
        vote, candidate, leader = engine.vote, engine.candidate, engine.leader
        membership = engine.membership.effective
        if (
            vote is self.vote
            and candidate is self.candidate
            and leader is self.leader
            and engine.current_leader == self.current_leader
            and membership is self.membership
        ):
            return
        node_id, term = engine.id, vote.term
        if candidate is not self.candidate or leader is not self.leader:
            self._elections(engine, candidate, leader)
        self.candidate, self.leader = candidate, leader
        if term != self.vote.term:
            events.emit(
                events.TERM_CHANGED,
                "node {node_id}: term {previous_term} -> {term}",
                node_id=node_id,
                term=term,
                previous_term=self.vote.term,
            )
        self.vote = vote
        role = engine.server_state
        if role is not self.role:
            events.emit(
                events.ROLE_CHANGED,
                "node {node_id}: {previous_role} -> {role} (term {term})",
                node_id=node_id,
                term=term,
                role=role.name,
                previous_role=self.role.name,
            )
            self.role = role
        current_leader = engine.current_leader
        if current_leader != self.current_leader:
            events.emit(
                events.LEADER_CHANGED,
                "node {node_id}: leader {previous_leader} -> {leader} (term {term})",
                node_id=node_id,
                term=term,
                leader=current_leader,
                previous_leader=self.current_leader,
            )
            self.current_leader = current_leader
        if membership is not self.membership:
            if membership != self.membership:
                events.emit(
                    events.MEMBERSHIP_CHANGED,
                    "node {node_id}: membership at log index {log_index}: voters {voters}, "
                    "learners {learners}",
                    node_id=node_id,
                    term=term,
                    **_membership_fields(membership),
                )
            self.membership = membership

    def _elections(
        self, engine: Engine, candidate: CandidateState | None, leader: LeaderState | None
    ) -> None:
        node_id = engine.id
        previous = self.candidate
        won = leader is not None and leader is not self.leader
        if previous is not None and not previous.pre_vote and candidate is not previous:
            term = previous.vote.term
            votes = sorted(previous.granted)
            if won and leader is not None and leader.vote.term == term:
                events.emit(
                    events.ELECTION_WON,
                    "node {node_id} won the election for term {term} with votes {votes}",
                    node_id=node_id,
                    term=term,
                    votes=votes,
                    duration=max(0.0, engine.now - previous.started_at),
                )
                won = False
            else:
                if candidate is not None:
                    reason = "timeout"
                elif engine.current_leader is not None:
                    reason = "leader"
                else:
                    reason = "higher_vote"
                events.emit(
                    events.ELECTION_LOST,
                    "node {node_id} lost the election for term {term} ({reason}; votes "
                    "{votes}, leader {leader})",
                    node_id=node_id,
                    term=term,
                    reason=reason,
                    leader=engine.current_leader,
                    votes=votes,
                )
        if candidate is not None and candidate is not previous:
            if candidate.pre_vote:
                events.emit(
                    events.ELECTION_PRE_VOTE,
                    "node {node_id}: pre-vote for term {term}",
                    node_id=node_id,
                    term=candidate.vote.term,
                )
            else:
                events.emit(
                    events.ELECTION_STARTED,
                    "node {node_id} started an election for term {term}",
                    node_id=node_id,
                    term=candidate.vote.term,
                )
        if won and leader is not None:
            # Campaigned and won inside one round (a single voter): both, as they happened.
            term = leader.vote.term
            events.emit(
                events.ELECTION_STARTED,
                "node {node_id} started an election for term {term}",
                node_id=node_id,
                term=term,
            )
            events.emit(
                events.ELECTION_WON,
                "node {node_id} won the election for term {term} with votes {votes}",
                node_id=node_id,
                term=term,
                votes=[node_id],
                duration=0.0,
            )
