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
* A leader not in the new configuration keeps leading until the uniform entry commits,
  then steps down.
* The leader replicates to every node of the effective membership: targets added or
  removed by a change get their replication tasks started or stopped, nothing else.
"""

from __future__ import annotations

import math
from typing import Any

from .._errors import EmptyMembership, ForwardToLeader, InProgress, LearnerNotFound
from .._messages import ClientWriteResponse
from .._types import Entry, LogId, Membership, MembershipChange, Node, log_id_ge
from .base import EngineBase
from .commands import AddReplicationTargets, RemoveReplicationTargets, RespondWhenApplied
from .state import LeaderState, PendingChange, ProgressEntry


class MembershipHandler(EngineBase):
    def _membership_leader(self) -> LeaderState:
        """The leader state, if this node may start a membership change now."""
        leader = self.leader
        if leader is None:
            raise ForwardToLeader(self.current_leader, self.node_of(self.current_leader))
        if (
            self.membership.uncommitted
            or leader.pending_change is not None
            or self.membership.membership.is_joint
        ):
            raise InProgress("a membership change is still in progress")
        if not log_id_ge(self.committed, leader.noop_log_id):
            raise InProgress("the leader has not committed an entry of its term yet")
        return leader

    def add_learner(self, node_id: int, node: Node, responder: Any) -> None:
        """Add ``node_id`` as a learner (replicated to, never voting)."""
        try:
            self._membership_leader()
        except (ForwardToLeader, InProgress) as e:
            self.respond(responder, e)
            return
        m = self.membership.membership
        if node_id in m.nodes or node_id in m.voter_ids:
            self._respond_unchanged(responder)
            return
        nodes = dict(m.nodes)
        nodes[node_id] = node
        log_id = self._append_membership(Membership(configs=m.configs, nodes=nodes))
        self.push(RespondWhenApplied(log_id, responder))

    def change_membership(self, voter_ids: frozenset[int], retain: bool, responder: Any) -> None:
        """Move to ``voter_ids`` through a joint configuration (see the module docstring)."""
        try:
            leader = self._membership_leader()
        except (ForwardToLeader, InProgress) as e:
            self.respond(responder, e)
            return
        if not voter_ids:
            self.respond(responder, EmptyMembership("the new voter set is empty"))
            return
        m = self.membership.membership
        for v in sorted(voter_ids):
            if v not in m.nodes:
                self.respond(responder, LearnerNotFound(v))
                return
        if not m.is_joint and m.configs and m.configs[0] == voter_ids:
            self._respond_unchanged(responder)
            return
        joint = Membership(configs=[*m.configs[-1:], voter_ids], nodes=m.nodes)
        joint_log_id = self._append_membership(joint)
        leader.pending_change = PendingChange(voter_ids, retain, joint_log_id, responder)

    def _respond_unchanged(self, responder: Any) -> None:
        eff = self.membership.effective
        assert eff.log_id is not None
        self.respond(responder, ClientWriteResponse(eff.log_id, None, eff.membership))

    def _append_membership(self, membership: Membership) -> LogId:
        last = self.log_ids.last
        log_id = LogId(self.vote.leader_id, 0 if last is None else last.index + 1)
        self.leader_append_entries([Entry(log_id, MembershipChange(membership))])
        self.sync_replication_targets()
        self.replicate_all()
        return log_id

    def sync_replication_targets(self) -> None:
        """Start/stop streams for targets the effective membership added/removed, and keep
        the lease bookkeeping to the current voters."""
        leader = self.leader
        if leader is None:
            return
        targets = set(self.replication_targets())
        added = tuple(sorted(targets - set(leader.progress)))
        removed = tuple(sorted(set(leader.progress) - targets))
        for t in removed:
            del leader.progress[t]
        if removed:
            self.push(RemoveReplicationTargets(removed))
        for t in added:
            leader.progress[t] = ProgressEntry()
        if added:
            self.push(AddReplicationTargets(leader.vote, added))
            for t in added:
                self.start_stream(t, None)
        voters = self.membership.membership.voter_ids - {self.id}
        new_voters = sorted(voters - set(leader.ack_time))
        for v in new_voters:
            # No ack yet: they do not count for the lease (reads) until they answer...
            leader.ack_time[v] = -math.inf
            leader.ack_round[v] = -1
        if new_voters:
            # ...but check-quorum gives them one lease to do so before it deposes us.
            leader.check_quorum_grace_until = self.now + self.config.lease
        for v in sorted(set(leader.ack_time) - voters):
            del leader.ack_time[v]
            leader.ack_round.pop(v, None)

    def after_commit(self) -> None:
        """The commit index moved: finish a joint change, step down if removed."""
        leader = self.leader
        if leader is None:
            return
        change = leader.pending_change
        m = self.membership.membership
        if change is None and m.is_joint and not self.membership.uncommitted:
            # A joint configuration committed under an earlier leader: finish the change
            # (removed voters stay as learners: we do not know what the caller asked).
            self._append_membership(Membership(configs=m.configs[-1:], nodes=m.nodes))
        if change is not None and log_id_ge(self.committed, change.joint_log_id):
            leader.pending_change = None
            m = self.membership.membership
            nodes = dict(m.nodes)
            if not change.retain:
                for nid in sorted(set(nodes) - change.voter_ids):
                    if nid in m.voter_ids:
                        del nodes[nid]
            uniform = self._append_membership(Membership(configs=[change.voter_ids], nodes=nodes))
            self.push(RespondWhenApplied(uniform, change.responder))
        committed = self.membership.committed.membership
        if (
            self.leader is not None
            and not self.membership.uncommitted
            and committed.configs
            and not committed.is_voter(self.id)
        ):
            # Removed from the cluster: the change is committed, hand over.
            self.step_down(None)
