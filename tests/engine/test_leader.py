"""Leading (Raft §5.3, §5.4.2, Figure 8; PROTOCOL-NOTES "Replication", "Commit"): client
writes, replication sessions, commit by a quorum of *flushed* logs of the leader's term,
joint quorums, stepping down on a higher vote and check-quorum."""

from __future__ import annotations

import pytest

from openraft_trio._engine.commands import (
    AppendEntries,
    Apply,
    IOId,
    QuitLeader,
    Replicate,
    SaveCommitted,
    SaveVote,
)
from openraft_trio._errors import ForwardToLeader
from openraft_trio._messages import AppendEntriesRequest, AppendEntriesResponse, VoteResponse
from openraft_trio._types import Entry, Membership, MembershipChange, Node, Normal, ServerState

from ._engine_helpers import (
    INIT_LOG_ID,
    LEASE,
    Raises,
    commit_blank,
    flush_own_log,
    follower,
    leader,
    lid,
    membership,
    out,
    progress_of,
    vote,
)

V = vote(2, 1, committed=True)  # the leader's vote in these tests
NOOP = lid(2, 1, 1)


def test_client_write_on_follower_raises_forward_to_leader_with_known_leader() -> None:
    eng = follower(vote=vote(2, 2, committed=True))
    eng.handle_append_entries(AppendEntriesRequest(eng.vote, None, (), None), object())
    eng.take_output()
    with pytest.raises(ForwardToLeader) as ei:
        eng.client_write([Normal("x")])
    assert ei.value.leader_id == 2
    assert ei.value.leader_node == Node("n2")
    assert out(eng) == []


def test_client_write_on_node_without_known_leader_forwards_to_nobody() -> None:
    eng = follower()
    with pytest.raises(ForwardToLeader) as ei:
        eng.client_write([Normal("x")])
    assert ei.value == Raises(ForwardToLeader, {"leader_id": None, "leader_node": None})


def test_client_write_appends_and_replicates_to_every_target() -> None:
    eng = leader()
    ids = eng.client_write([Normal("a"), Normal("b")])
    assert ids == [lid(2, 1, 2), lid(2, 1, 3)]
    assert out(eng) == [
        AppendEntries(V, (Entry(lid(2, 1, 2), Normal("a")), Entry(lid(2, 1, 3), Normal("b")))),
        Replicate(2, 1, INIT_LOG_ID, lid(2, 1, 3), INIT_LOG_ID),
        Replicate(3, 1, INIT_LOG_ID, lid(2, 1, 3), INIT_LOG_ID),
    ]


def test_leader_does_not_commit_before_its_own_flush() -> None:
    """Only flushed entries count toward a quorum, including the leader's own."""
    eng = leader()
    eng.handle_replication_progress(2, V, 1, NOOP, 0.5)
    assert out(eng) == []  # 2 has it, but our own copy is not durable yet
    assert eng.committed == INIT_LOG_ID
    flush_own_log(eng)
    assert out(eng) == [
        SaveCommitted(NOOP),
        Apply(NOOP),
        Replicate(2, 1, INIT_LOG_ID, NOOP, NOOP),
        Replicate(3, 1, INIT_LOG_ID, NOOP, NOOP),
    ]
    assert eng.committed == NOOP


def test_leader_own_flush_alone_is_not_a_quorum() -> None:
    eng = leader()
    flush_own_log(eng)
    assert out(eng) == []
    assert eng.committed == INIT_LOG_ID


def test_commit_after_own_flush_and_quorum_ack() -> None:
    eng = leader()
    flush_own_log(eng)
    eng.handle_replication_progress(3, V, 1, NOOP, 0.5)
    assert out(eng) == [
        SaveCommitted(NOOP),
        Apply(NOOP),
        Replicate(2, 1, INIT_LOG_ID, NOOP, NOOP),
        Replicate(3, 1, INIT_LOG_ID, NOOP, NOOP),
    ]


def test_single_voter_leader_commits_on_own_flush() -> None:
    eng = leader(membership=membership({1}), grants=[])
    assert eng.committed == INIT_LOG_ID
    flush_own_log(eng)
    assert out(eng) == [SaveCommitted(NOOP), Apply(NOOP)]


def test_figure8_older_term_entry_at_quorum_index_is_not_committed() -> None:
    """Figure 8: a quorum holding an entry of an older term does not commit it; it commits
    only together with an entry of the leader's own term."""
    old = lid(1, 2, 1)
    eng = leader(term=3, log=[INIT_LOG_ID, old])
    noop = lid(3, 1, 2)
    v3 = vote(3, 1, committed=True)
    flush_own_log(eng)
    eng.handle_replication_progress(2, v3, 1, old, 0.5)
    assert out(eng) == []
    assert eng.committed == INIT_LOG_ID
    eng.handle_replication_progress(2, v3, 1, noop, 0.6)
    assert out(eng) == [
        SaveCommitted(noop),
        Apply(noop),
        Replicate(2, 1, old, noop, noop),
        Replicate(3, 1, old, noop, noop),
    ]


def test_progress_from_an_older_epoch_is_ignored() -> None:
    eng = leader()
    flush_own_log(eng)
    eng.handle_replication_conflict(2, V, 1, INIT_LOG_ID, 0, 0.5)  # restarts stream: epoch 2
    out(eng)
    eng.handle_replication_progress(2, V, 1, NOOP, 0.6)
    assert out(eng) == []
    assert progress_of(eng, 2).matching is None
    assert eng.committed == INIT_LOG_ID


def test_progress_under_a_different_vote_is_ignored() -> None:
    eng = leader()
    flush_own_log(eng)
    eng.handle_replication_progress(2, vote(1, 1, committed=True), 1, NOOP, 0.5)
    eng.handle_replication_progress(2, vote(2, 1), 1, NOOP, 0.5)
    assert out(eng) == []
    assert progress_of(eng, 2).matching is None


def test_progress_for_an_unknown_target_is_ignored() -> None:
    eng = leader()
    eng.handle_replication_progress(7, V, 1, NOOP, 0.5)
    assert out(eng) == []


def test_matching_never_moves_backward_on_a_reordered_reply() -> None:
    eng = leader()
    flush_own_log(eng)
    eng.client_write([Normal("a")])
    out(eng)
    eng.handle_replication_progress(2, V, 1, lid(2, 1, 2), 0.6)
    out(eng)
    eng.handle_replication_progress(2, V, 1, NOOP, 0.5)  # an older reply arrives late
    assert out(eng) == []
    assert progress_of(eng, 2).matching == lid(2, 1, 2)


def test_conflict_restarts_stream_in_new_epoch_at_hint() -> None:
    """Back up in one step to the follower's hint (PROTOCOL-NOTES "Replication")."""
    eng = leader(log=[INIT_LOG_ID, *(lid(1, 2, i) for i in range(1, 10))], committed=INIT_LOG_ID)
    noop = lid(2, 1, 10)
    eng.handle_replication_conflict(2, V, 1, lid(1, 2, 9), 4, 0.5)
    assert out(eng) == [Replicate(2, 2, lid(1, 2, 3), noop, INIT_LOG_ID)]


def test_conflict_backs_up_to_prev_minus_one_when_hint_is_higher() -> None:
    eng = leader(log=[INIT_LOG_ID, *(lid(1, 2, i) for i in range(1, 10))], committed=INIT_LOG_ID)
    eng.handle_replication_conflict(2, V, 1, lid(1, 2, 5), 8, 0.5)
    assert out(eng) == [Replicate(2, 2, lid(1, 2, 4), lid(2, 1, 10), INIT_LOG_ID)]


def test_conflict_never_backs_up_below_matching() -> None:
    eng = leader(log=[INIT_LOG_ID, *(lid(1, 2, i) for i in range(1, 10))], committed=INIT_LOG_ID)
    eng.handle_replication_progress(2, V, 1, lid(1, 2, 6), 0.5)
    out(eng)
    eng.handle_replication_conflict(2, V, 1, lid(2, 1, 10), 2, 0.6)
    assert out(eng) == [Replicate(2, 2, lid(1, 2, 6), lid(2, 1, 10), INIT_LOG_ID)]


def test_conflict_from_an_older_epoch_is_ignored() -> None:
    eng = leader()
    eng.handle_replication_conflict(2, V, 1, INIT_LOG_ID, 0, 0.5)
    out(eng)
    eng.handle_replication_conflict(2, V, 1, INIT_LOG_ID, 0, 0.5)
    assert out(eng) == []
    assert progress_of(eng, 2).epoch == 2


def test_higher_vote_in_append_response_makes_leader_step_down() -> None:
    eng = leader()
    higher = vote(3, 3)
    eng.handle_higher_vote(AppendEntriesResponse(higher, success=False).vote)
    assert out(eng) == [QuitLeader(None, INIT_LOG_ID), SaveVote(higher)]
    assert eng.server_state is ServerState.FOLLOWER
    assert eng.vote == higher


def test_higher_committed_vote_in_heartbeat_ack_makes_leader_step_down_to_it() -> None:
    eng = leader()
    higher = vote(3, 3, committed=True)
    eng.handle_heartbeat_ack(2, V, 0.5, higher)
    assert out(eng) == [QuitLeader(3, INIT_LOG_ID), SaveVote(higher)]
    assert eng.current_leader == 3


def test_equal_or_lower_vote_in_response_changes_nothing() -> None:
    eng = leader()
    eng.handle_higher_vote(AppendEntriesResponse(V, success=False).vote)
    eng.handle_heartbeat_ack(2, V, 0.5, vote(1, 2, committed=True))
    assert out(eng) == []
    assert eng.is_leader


def test_check_quorum_leader_without_acks_steps_down_after_lease() -> None:
    eng = leader(now=10.0)
    eng.tick(10.0 + LEASE - 0.01)
    assert out(eng) == []
    eng.tick(10.0 + LEASE)
    assert out(eng) == [QuitLeader(None, INIT_LOG_ID)]
    assert not eng.is_leader
    assert eng.vote == V  # stepping down changes no vote


def test_check_quorum_leader_with_acks_stays() -> None:
    eng = leader(now=10.0)
    eng.handle_heartbeat_ack(2, V, 11.5, V)
    eng.tick(10.0 + LEASE + 1.0)
    assert out(eng) == []
    assert eng.is_leader
    eng.tick(11.5 + LEASE)
    assert out(eng) == [QuitLeader(None, INIT_LOG_ID)]


def test_check_quorum_single_voter_leader_never_steps_down() -> None:
    eng = leader(membership=membership({1}), grants=[])
    eng.tick(1e9)
    assert out(eng) == []
    assert eng.is_leader


def test_check_quorum_needs_a_quorum_not_one_ack() -> None:
    eng = leader(now=10.0, membership=membership({1, 2, 3, 4, 5}), grants=[2, 3])
    eng.handle_heartbeat_ack(2, V, 11.5, V)
    eng.tick(10.0 + LEASE)
    assert out(eng) == [QuitLeader(None, INIT_LOG_ID)]


def test_replication_ack_extends_the_lease() -> None:
    eng = leader(now=10.0)
    eng.handle_replication_progress(3, V, 1, NOOP, 11.0)
    out(eng)
    eng.tick(10.0 + LEASE)
    assert out(eng) == []


def test_joint_membership_commit_needs_a_majority_of_each_config() -> None:
    """§6 joint consensus: C(old,new) = {1,2,3} and {3,4,5}; leader 3 is in both."""
    joint = membership({1, 2, 3}, {3, 4, 5})
    eng = leader(3, membership=joint, grants=[2, 4])
    v = vote(2, 3, committed=True)
    noop = lid(2, 3, 1)
    flush_own_log(eng)
    eng.handle_replication_progress(1, v, 1, noop, 0.5)
    eng.handle_replication_progress(2, v, 1, noop, 0.5)
    assert out(eng) == []  # 3/3 of the old config, only 1/3 of the new one
    eng.handle_replication_progress(5, v, 1, noop, 0.5)
    # Committed with a joint configuration left by an earlier leader, it finishes the
    # change: the uniform new configuration is appended and replicated with the commit.
    uniform = Entry(lid(2, 3, 2), MembershipChange(Membership([{3, 4, 5}], joint.nodes)))
    assert out(eng) == [
        SaveCommitted(noop),
        Apply(noop),
        AppendEntries(v, (uniform,)),
        *(Replicate(t, 1, INIT_LOG_ID, uniform.log_id, noop) for t in (1, 2, 4, 5)),
    ]


def test_joint_membership_election_needs_a_majority_of_each_config() -> None:
    joint = membership({1, 2, 3}, {3, 4, 5})
    eng = follower(3, membership=joint)
    eng.tick(eng.election_deadline)
    [pre] = out(eng)
    assert pre.targets == (1, 2, 4, 5)
    eng.handle_vote_resp(1, pre.req, VoteResponse(eng.vote, True, None))
    eng.handle_vote_resp(2, pre.req, VoteResponse(eng.vote, True, None))
    assert out(eng) == []  # the old config agrees, the new one does not
    eng.handle_vote_resp(4, pre.req, VoteResponse(eng.vote, True, None))
    assert [type(c).__name__ for c in out(eng)] == ["SaveVote", "SendVote"]


def test_committed_blank_then_write_commits_on_quorum() -> None:
    eng = leader()
    commit_blank(eng, send_time=0.5)
    [w] = eng.client_write([Normal("x")])
    out(eng)
    eng.on_io_flushed(IOId(V, w))
    assert out(eng) == []
    eng.handle_replication_progress(2, V, 1, w, 0.7)
    assert out(eng) == [
        SaveCommitted(w),
        Apply(w),
        Replicate(2, 1, INIT_LOG_ID, w, w),
        Replicate(3, 1, INIT_LOG_ID, w, w),
    ]


def test_leader_does_not_commit_past_its_own_flush_even_with_a_quorum_of_followers() -> None:
    """``committed <= flushed`` holds on the leader too: a quorum of followers alone does not
    commit an entry the leader has not flushed (a persisted commit index beyond the durable
    log would stop the node from restarting after a crash)."""
    eng = leader(membership=membership({1, 2, 3, 4, 5}), grants=[2, 3])
    noop = eng.leader.noop_log_id
    for t in (2, 3, 4):
        eng.handle_replication_progress(t, V, progress_of(eng, t).epoch, noop, 0.5)
    assert out(eng) == []
    assert eng.committed == INIT_LOG_ID
    flush_own_log(eng)
    assert out(eng)[:2] == [SaveCommitted(noop), Apply(noop)]
