"""Membership changes: learners and joint consensus (Raft §6, Ongaro's thesis §4,
openraft ``extended-membership.md``).

* A membership takes effect when its entry is *appended* (on every node) and reverts if
  the entry is truncated (``MembershipState``).
* One change at a time: a new one is refused (``InProgress``) while the effective
  membership is not committed.
* Before its first change a leader must have committed an entry of its own term (its blank
  entry): otherwise two leaders of successive terms could each build a majority under a
  different configuration.
* ``change_membership(voters)`` appends the joint configuration ``[old, new]`` — from then
  on every quorum is a majority of *each* — and, once that commits, the uniform ``[new]``.
  The caller is answered when the uniform one is applied. ``retain=True`` keeps removed
  voters as learners, otherwise they leave ``nodes``.
* ``remove_learner(id)`` drops a learner from ``nodes`` in one uniform entry (openraft's
  ``ChangeMembers::RemoveNodes``): a learner has no vote, so no quorum changes and no
  joint step is needed. A voter is refused (``NotALearner``): it leaves only through
  ``change_membership``. An id that is no member is refused (``LearnerNotFound``).
* A leader not in the new configuration keeps leading until the uniform entry commits,
  then steps down.
* The leader replicates to every node of the effective membership: targets added or
  removed by a change get their replication tasks started or stopped, nothing else.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from .._errors import EmptyMembership, InProgress, LearnerNotFound, NotALearner
from .._messages import ClientWriteResponse
from .._types import Entry, LogId, Membership, MembershipChange, Node, log_id_ge
from . import roles
from .commands import AddReplicationTargets, RemoveReplicationTargets, RespondWhenApplied
from .state import LeaderState, PendingChange, ProgressEntry

if TYPE_CHECKING:
    from .engine import Engine


class MembershipHandler:
    """A leader's membership changes (built only on a leader: ``leader`` is never None)."""

    __slots__ = ("engine", "leader")

    def __init__(self, engine: Engine, leader: LeaderState) -> None:
        self.engine = engine
        self.leader = leader

    def _check_no_change_in_progress(self) -> None:
        """Raises ``InProgress`` unless this leader may start a membership change now."""
        engine, leader = self.engine, self.leader
        if (
            engine.membership.uncommitted
            or leader.pending_change is not None
            or engine.membership.membership.is_joint
        ):
            raise InProgress("a membership change is still in progress")
        if not log_id_ge(engine.io.committed, leader.noop_log_id):
            raise InProgress("the leader has not committed an entry of its term yet")

    def _refused_while_changing(self, responder: Any) -> bool:
        """Answer ``responder`` with ``InProgress`` and return True if a change is in
        progress (see :meth:`_check_no_change_in_progress`)."""
        try:
            self._check_no_change_in_progress()
        except InProgress as e:
            self.engine.respond(responder, e)
            return True
        return False

    def add_learner(self, node_id: int, node: Node, responder: Any) -> None:
        """Add ``node_id`` as a learner (replicated to, never voting)."""
        engine = self.engine
        if self._refused_while_changing(responder):
            return
        membership = engine.membership.membership
        if node_id in membership.nodes or node_id in membership.voter_ids:
            self._respond_unchanged(responder)
            return
        nodes = dict(membership.nodes)
        nodes[node_id] = node
        log_id = self._append_membership(Membership(configs=membership.configs, nodes=nodes))
        engine.push(RespondWhenApplied(log_id, responder))

    def remove_learner(self, node_id: int, responder: Any) -> None:
        """Remove learner ``node_id`` from ``nodes`` (see the module docstring)."""
        engine = self.engine
        if self._refused_while_changing(responder):
            return
        membership = engine.membership.membership
        if node_id in membership.voter_ids:
            engine.respond(responder, NotALearner(node_id))
            return
        if node_id not in membership.nodes:
            engine.respond(
                responder, LearnerNotFound(node_id, f"node {node_id} is not a learner")
            )
            return
        nodes = {k: v for k, v in membership.nodes.items() if k != node_id}
        log_id = self._append_membership(Membership(configs=membership.configs, nodes=nodes))
        engine.push(RespondWhenApplied(log_id, responder))

    def change_membership(self, voter_ids: frozenset[int], retain: bool, responder: Any) -> None:
        """Move to ``voter_ids`` through a joint configuration (see the module docstring)."""
        engine = self.engine
        if self._refused_while_changing(responder):
            return
        if not voter_ids:
            engine.respond(responder, EmptyMembership("the new voter set is empty"))
            return
        membership = engine.membership.membership
        for voter in sorted(voter_ids):
            if voter not in membership.nodes:
                engine.respond(responder, LearnerNotFound(voter))
                return
        if not membership.is_joint and membership.configs and membership.configs[0] == voter_ids:
            self._respond_unchanged(responder)
            return
        joint = Membership(configs=[*membership.configs[-1:], voter_ids], nodes=membership.nodes)
        joint_log_id = self._append_membership(joint)
        self.leader.pending_change = PendingChange(voter_ids, retain, joint_log_id, responder)

    def _respond_unchanged(self, responder: Any) -> None:
        effective = self.engine.membership.effective
        assert effective.log_id is not None
        self.engine.respond(
            responder, ClientWriteResponse(effective.log_id, None, effective.membership)
        )

    def _append_membership(self, membership: Membership) -> LogId:
        engine = self.engine
        last = engine.log_ids.last
        log_id = LogId(engine.vote.leader_id, 0 if last is None else last.index + 1)
        engine.append_to_log([Entry(log_id, MembershipChange(membership))])
        self.sync_replication_targets()
        engine.replication_handler().replicate_all()
        return log_id

    def sync_replication_targets(self) -> None:
        """Start/stop streams for targets the effective membership added/removed, and keep
        the lease bookkeeping to the current voters."""
        engine, leader = self.engine, self.leader
        targets = set(engine.replication_targets())
        added = tuple(sorted(targets - set(leader.progress)))
        removed = tuple(sorted(set(leader.progress) - targets))
        for target in removed:
            del leader.progress[target]
        if removed:
            engine.push(RemoveReplicationTargets(removed))
        for target in added:
            leader.progress[target] = ProgressEntry()
        if added:
            engine.push(AddReplicationTargets(leader.vote, added))
            replication = engine.replication_handler()
            for target in added:
                replication.start_stream(target, None)
        self._sync_lease_voters()

    def _sync_lease_voters(self) -> None:
        engine, leader = self.engine, self.leader
        voters = engine.membership.membership.voter_ids - {engine.id}
        new_voters = sorted(voters - set(leader.ack_time))
        for voter in new_voters:
            # No ack yet: they do not count for the lease (reads) until they answer...
            leader.ack_time[voter] = -math.inf
            leader.ack_round[voter] = -1
        if new_voters:
            # ...but check-quorum gives them one lease to do so before it deposes us.
            leader.check_quorum_grace_until = engine.now + engine.config.lease
        for voter in sorted(set(leader.ack_time) - voters):
            del leader.ack_time[voter]
            leader.ack_round.pop(voter, None)

    def after_commit(self) -> None:
        """The commit index moved: finish a joint change, step down if removed."""
        engine, leader = self.engine, self.leader
        change = leader.pending_change
        membership = engine.membership.membership
        if change is None and membership.is_joint and not engine.membership.uncommitted:
            # A joint configuration committed under an earlier leader: finish the change
            # (removed voters stay as learners: we do not know what the caller asked).
            self._append_membership(
                Membership(configs=membership.configs[-1:], nodes=membership.nodes)
            )
        if change is not None and log_id_ge(engine.io.committed, change.joint_log_id):
            leader.pending_change = None
            membership = engine.membership.membership
            nodes = dict(membership.nodes)
            if not change.retain:
                for node_id in sorted(set(nodes) - change.voter_ids):
                    if node_id in membership.voter_ids:
                        del nodes[node_id]
            uniform = self._append_membership(Membership(configs=[change.voter_ids], nodes=nodes))
            engine.push(RespondWhenApplied(uniform, change.responder))
        committed = engine.membership.committed.membership
        if (
            not engine.membership.uncommitted
            and committed.configs
            and not committed.is_voter(engine.id)
        ):
            # Removed from the cluster: the change is committed, hand over.
            roles.step_down(engine, None)
