"""Membership changes in the Engine: learners and joint consensus (PROTOCOL-NOTES
"Membership"; Raft §6, Ongaro's thesis §4)."""

from __future__ import annotations

import pytest

from openraft_trio._engine.commands import (
    AddReplicationTargets,
    AppendEntries,
    Apply,
    QuitLeader,
    RemoveReplicationTargets,
    Replicate,
    RespondWhenApplied,
    SaveCommitted,
)
from openraft_trio._errors import (
    EmptyMembership,
    ForwardToLeader,
    InProgress,
    LearnerNotFound,
    NotALearner,
    NotAVoter,
)
from openraft_trio._messages import ClientWriteResponse
from openraft_trio._types import Entry, Membership, MembershipChange, Node

from ._engine_helpers import (
    INIT_LOG_ID,
    M123,
    Raises,
    Responded,
    commit_blank,
    flush_own_log,
    follower,
    leader,
    lid,
    membership,
    out,
    vote,
)

V = vote(2, 1, committed=True)


def ready_leader():
    """Leader 1 of term 2 over {1,2,3} whose blank entry (index 1) is committed."""
    eng = leader(1)
    commit_blank(eng, acks=(2, 3))
    return eng


def ack(eng, target: int, log_id) -> None:
    p = eng.leader.progress[target]
    eng.handle_replication_progress(target, eng.vote, p.epoch, log_id, eng.now)


def test_add_learner_exact_commands() -> None:
    eng = ready_leader()
    r = object()
    eng.add_learner(4, Node("n4"), r)
    cmds = eng.take_output()
    m = Membership([{1, 2, 3}], {**M123.nodes, 4: Node("n4")})
    entry = Entry(lid(2, 1, 2), MembershipChange(m))
    noop = lid(2, 1, 1)
    assert cmds[:5] == [
        AppendEntries(V, (entry,)),
        AddReplicationTargets(V, (4,)),
        Replicate(4, 1, None, entry.log_id, noop),
        Replicate(2, 1, INIT_LOG_ID, entry.log_id, noop),
        Replicate(3, 1, INIT_LOG_ID, entry.log_id, noop),
    ]
    [respond] = cmds[5:]
    assert isinstance(respond, RespondWhenApplied)
    assert (respond.log_id, respond.responder) == (entry.log_id, r)
    # A learner is replicated to but never counted toward quorums or the lease.
    assert eng.membership.membership.learner_ids == {4}
    assert sorted(eng.leader.progress) == [2, 3, 4]
    assert 4 not in eng.leader.ack_time


def test_a_change_before_the_blank_entry_commits_is_refused() -> None:
    """The known bug shape: a config change right after a leader change could build two
    disjoint majorities. Commit an entry of the current term first."""
    eng = leader(1)
    flush_own_log(eng)
    r = object()
    eng.change_membership(frozenset({1, 2}), False, r)
    assert out(eng) == [Responded(r, Raises(InProgress))]
    eng.add_learner(4, Node("n4"), r)
    assert out(eng) == [Responded(r, Raises(InProgress))]


def test_change_membership_validates() -> None:
    eng = ready_leader()
    r = object()
    eng.change_membership(frozenset(), False, r)
    assert out(eng) == [Responded(r, Raises(EmptyMembership))]
    eng.change_membership(frozenset({1, 2, 9}), False, r)
    assert out(eng) == [Responded(r, Raises(LearnerNotFound, {"node_id": 9}))]
    f = follower(2, vote=vote(2, 1, committed=True))
    f.change_membership(frozenset({1, 2}), False, r)
    [resp] = f.take_output()
    assert isinstance(resp.value, ForwardToLeader)


def test_unchanged_voters_answer_at_once() -> None:
    eng = ready_leader()
    r = object()
    eng.change_membership(frozenset({1, 2, 3}), False, r)
    init = lid(0, 0, 0)
    assert out(eng) == [Responded(r, ClientWriteResponse(init, None, M123))]


def test_joint_then_uniform_and_one_change_at_a_time() -> None:
    eng = ready_leader()
    r = object()
    eng.change_membership(frozenset({1, 2}), False, r)
    joint = Membership([{1, 2, 3}, {1, 2}], M123.nodes)
    joint_entry = Entry(lid(2, 1, 2), MembershipChange(joint))
    noop = lid(2, 1, 1)
    assert out(eng) == [
        AppendEntries(V, (joint_entry,)),
        Replicate(2, 1, INIT_LOG_ID, joint_entry.log_id, noop),
        Replicate(3, 1, INIT_LOG_ID, joint_entry.log_id, noop),
    ]
    # The joint configuration is in effect at once (appended, not yet committed).
    assert eng.membership.membership.is_joint
    r2 = object()
    eng.change_membership(frozenset({1, 3}), False, r2)
    assert out(eng) == [Responded(r2, Raises(InProgress))]
    # Committing the joint entry needs a majority of both {1,2,3} and {1,2}: 3 alone (a
    # majority of the old set only) won't. The other side is the next test.
    flush_own_log(eng)
    ack(eng, 3, joint_entry.log_id)
    assert out(eng) == []
    ack(eng, 2, joint_entry.log_id)
    uniform = Membership([{1, 2}], {1: M123.nodes[1], 2: M123.nodes[2]})
    uniform_entry = Entry(lid(2, 1, 3), MembershipChange(uniform))
    cmds = eng.take_output()
    assert cmds[:5] == [
        SaveCommitted(joint_entry.log_id),
        Apply(joint_entry.log_id),
        AppendEntries(V, (uniform_entry,)),
        RemoveReplicationTargets((3,)),
        Replicate(2, 1, INIT_LOG_ID, uniform_entry.log_id, joint_entry.log_id),
    ]
    [respond] = cmds[5:]
    assert isinstance(respond, RespondWhenApplied)
    assert (respond.log_id, respond.responder) == (uniform_entry.log_id, r)
    assert sorted(eng.leader.progress) == [2]


@pytest.mark.parametrize(
    ("first", "then"),
    [((4, 5), 2), ((2, 3), 4)],
    ids=["new-majority-first", "old-majority-first"],
)
def test_a_joint_entry_commits_only_with_a_majority_of_each_voter_set(
    first: tuple[int, int], then: int
) -> None:
    """{1,2,3} -> {1,4,5}: acks from a majority of one set alone — the new one or the old
    one — commit nothing; the ack that completes a majority of the other set commits."""
    eng = leader(1, membership=membership({1, 2, 3}, learners=(4, 5)))
    commit_blank(eng, acks=(2, 3))
    eng.change_membership(frozenset({1, 4, 5}), False, object())
    joint_id = lid(2, 1, 2)
    eng.take_output()
    flush_own_log(eng)
    for target in first:
        ack(eng, target, joint_id)
    assert out(eng) == []
    assert eng.committed == lid(2, 1, 1)
    ack(eng, then, joint_id)
    assert eng.take_output()[:2] == [SaveCommitted(joint_id), Apply(joint_id)]


def test_a_removed_leader_steps_down_once_the_uniform_config_commits() -> None:
    eng = ready_leader()
    eng.change_membership(frozenset({2, 3}), False, object())
    flush_own_log(eng)
    joint_id = lid(2, 1, 2)
    ack(eng, 2, joint_id)
    ack(eng, 3, joint_id)
    eng.take_output()
    assert eng.is_leader  # still leads during the change, though not in C(new)
    flush_own_log(eng)
    uniform_id = lid(2, 1, 3)
    ack(eng, 2, uniform_id)
    assert eng.is_leader  # C(new) = {2, 3}: our own copy no longer counts
    ack(eng, 3, uniform_id)
    cmds = eng.take_output()
    assert cmds[:3] == [SaveCommitted(uniform_id), Apply(uniform_id), QuitLeader(None, uniform_id)]
    assert not eng.is_leader
    assert not eng.is_voter


def test_new_voters_get_one_lease_before_check_quorum_counts_them() -> None:
    eng = ready_leader()
    eng.add_learner(4, Node("n4"), object())
    flush_own_log(eng)
    learner_entry = lid(2, 1, 2)
    ack(eng, 2, learner_entry)
    eng.take_output()
    eng.change_membership(frozenset({1, 2, 3, 4}), False, object())
    eng.take_output()
    # Node 4 has never acknowledged as a voter; the leader is not deposed at once...
    eng.tick(eng.now + 0.001)
    assert eng.is_leader
    assert eng.next_deadline() >= eng.now + eng.config.lease - 0.01


# -- leader transfer (Ongaro's thesis §3.10) --------------------------------------------------


def test_transfer_waits_for_the_target_to_catch_up_then_sends_and_blocks_writes() -> None:
    from openraft_trio._engine.commands import SendTransferLeader
    from openraft_trio._messages import TransferLeaderRequest
    from openraft_trio._types import Normal

    eng = ready_leader()
    [entry] = eng.client_write([Normal("x")])
    eng.take_output()
    flush_own_log(eng)
    eng.transfer_leader(2)
    assert eng.take_output() == []  # node 2 does not have ``entry`` yet
    with pytest.raises(ForwardToLeader) as info:
        eng.client_write([Normal("y")])
    assert info.value.leader_id == 2
    ack(eng, 2, entry)
    cmds = eng.take_output()
    assert cmds[-1] == SendTransferLeader(TransferLeaderRequest(V, 2, entry))


def test_transfer_gives_up_at_its_deadline() -> None:
    from openraft_trio._types import Normal

    eng = ready_leader()
    eng.transfer_leader(3)
    eng.take_output()
    deadline = eng.now + eng.config.election_timeout_max
    eng.now = deadline - 0.01  # followers keep acking: the lease is fine
    eng.handle_heartbeat_ack(2, V, eng.now, V)
    eng.handle_heartbeat_ack(3, V, eng.now, V)
    eng.tick(deadline)
    assert eng.leader is not None
    assert eng.leader.transfer_to is None
    assert eng.client_write([Normal("z")])


def test_transfer_target_campaigns_at_once_with_the_transfer_flag() -> None:
    from openraft_trio._engine.commands import SaveVote, SendVote
    from openraft_trio._messages import TransferLeaderRequest, VoteRequest

    leader_vote = vote(2, 1, committed=True)
    eng = follower(2, vote=leader_vote, log=[INIT_LOG_ID])
    eng.handle_transfer_leader(TransferLeaderRequest(leader_vote, 2, INIT_LOG_ID))
    new = vote(3, 2)
    assert eng.take_output() == [
        SaveVote(new),
        SendVote(VoteRequest(new, INIT_LOG_ID, leader_transfer=True), (1, 3)),
    ]
    # A request from a leader we do not follow, or for someone else, is ignored.
    other = follower(2, vote=leader_vote, log=[INIT_LOG_ID])
    other.handle_transfer_leader(TransferLeaderRequest(vote(1, 3, committed=True), 2, INIT_LOG_ID))
    other.handle_transfer_leader(TransferLeaderRequest(leader_vote, 3, INIT_LOG_ID))
    assert other.take_output() == []


# -- removing a learner (openraft's ChangeMembers::RemoveNodes) ------------------------------


def leader_with_learner_4():
    """``ready_leader()`` whose membership entry adding learner 4 (index 2) is committed."""
    eng = ready_leader()
    eng.add_learner(4, Node("n4"), object())
    eng.take_output()
    flush_own_log(eng)
    added = eng.log_ids.last
    for target in (2, 3):
        ack(eng, target, added)
    assert eng.committed == added == lid(2, 1, 2)
    eng.take_output()
    return eng


def test_remove_learner_exact_commands() -> None:
    eng = leader_with_learner_4()
    added = eng.log_ids.last
    r = object()
    eng.remove_learner(4, r)
    m = Membership([{1, 2, 3}], dict(M123.nodes))
    entry = Entry(lid(2, 1, 3), MembershipChange(m))
    cmds = eng.take_output()
    assert cmds[:4] == [
        AppendEntries(V, (entry,)),
        RemoveReplicationTargets((4,)),
        Replicate(2, 1, INIT_LOG_ID, entry.log_id, added),
        Replicate(3, 1, INIT_LOG_ID, entry.log_id, added),
    ]
    [respond] = cmds[4:]
    assert isinstance(respond, RespondWhenApplied)
    assert (respond.log_id, respond.responder) == (entry.log_id, r)
    # One uniform entry, no joint step: a learner has no vote.
    assert eng.membership.membership == m
    assert sorted(eng.leader.progress) == [2, 3]


def test_remove_learner_refuses_a_voter_an_unknown_id_and_a_change_in_progress() -> None:
    eng = leader_with_learner_4()
    r = object()
    eng.remove_learner(2, r)
    assert out(eng) == [Responded(r, Raises(NotALearner, {"node_id": 2}))]
    eng.remove_learner(9, r)
    assert out(eng) == [Responded(r, Raises(LearnerNotFound, {"node_id": 9}))]
    eng.remove_learner(4, object())
    eng.take_output()
    eng.remove_learner(4, r)  # the first removal is not committed yet
    assert out(eng) == [Responded(r, Raises(InProgress))]
    f = follower(2, vote=vote(2, 1, committed=True))
    f.remove_learner(4, r)
    [resp] = f.take_output()
    assert isinstance(resp.value, ForwardToLeader)


# -- leader transfer to a node that cannot be elected ------------------------------------------


def test_transfer_to_a_non_voter_is_refused_at_once_and_changes_nothing() -> None:
    from openraft_trio._types import Normal

    eng = leader_with_learner_4()
    for target in (4, 9):  # a learner, an unknown id
        r = object()
        eng.transfer_leader(target, r)
        assert out(eng) == [Responded(r, Raises(NotAVoter, {"node_id": target}))]
        assert eng.leader.transfer_to is None
        assert not eng.leader.lease_given_up
    assert eng.client_write([Normal("still accepted")])


def test_transfer_to_a_voter_answers_once_started() -> None:
    eng = ready_leader()
    r = object()
    eng.transfer_leader(2, r)
    assert out(eng)[0] == Responded(r, None)
    assert eng.leader.transfer_to == 2
    eng.transfer_leader(1, r)  # to itself: nothing to do
    assert out(eng) == [Responded(r, None)]
