"""Elections (Raft §5.2, pre-vote: Ongaro's thesis §9.6): timers, who campaigns, the order
of the vote save and the vote requests, winning, and stale or higher vote responses."""

from __future__ import annotations

import random

import attrs

from openraft_trio._engine.commands import (
    AppendEntries,
    BecomeLeader,
    Replicate,
    SaveVote,
    SendVote,
)
from openraft_trio._messages import AppendEntriesRequest, VoteRequest, VoteResponse
from openraft_trio._types import BLANK, Entry, MembershipChange, ServerState, StoredMembership

from ._engine_helpers import (
    CONFIG,
    INIT_LOG_ID,
    follower,
    leader,
    lid,
    membership,
    new_engine,
    out,
    vote,
)

LAST = lid(1, 2, 5)
LOG = [INIT_LOG_ID, lid(1, 2, 1), lid(1, 2, 2), lid(1, 2, 3), lid(1, 2, 4), LAST]


def test_election_timeout_is_drawn_from_the_injected_rng_within_min_max() -> None:
    for seed in range(20):
        eng = follower(now=10.0, seed=seed)
        expected = random.Random(seed).uniform(
            CONFIG.election_timeout_min, CONFIG.election_timeout_max
        )
        assert eng.election_deadline == 10.0 + expected
        assert (
            CONFIG.election_timeout_min
            <= eng.election_deadline - 10.0
            <= CONFIG.election_timeout_max
        )


def test_same_seed_same_election_deadline() -> None:
    assert follower(seed=7).election_deadline == follower(seed=7).election_deadline
    assert follower(seed=7).election_deadline != follower(seed=8).election_deadline


def test_tick_before_election_deadline_does_nothing() -> None:
    eng = follower(vote=vote(1, 2, committed=True), log=LOG)
    deadline = eng.election_deadline
    eng.tick(deadline - 0.001)
    assert out(eng) == []
    assert eng.election_deadline == deadline
    assert eng.candidate is None


def test_tick_after_election_deadline_starts_pre_vote_without_changing_term() -> None:
    """Pre-vote (§9.6): ask "would you vote for me at term+1?" and change no state."""
    v = vote(1, 2, committed=True)
    eng = follower(vote=v, log=LOG)
    eng.tick(eng.election_deadline)
    assert out(eng) == [SendVote(VoteRequest(vote(2, 1), LAST, pre_vote=True), (2, 3))]
    assert eng.vote == v  # no SaveVote, term unchanged
    assert eng.server_state is ServerState.FOLLOWER
    assert eng.candidate is not None
    assert eng.candidate.pre_vote


def test_pre_vote_restarts_the_election_timer() -> None:
    eng = follower(log=LOG, seed=3)
    t = eng.election_deadline
    eng.tick(t)
    assert eng.election_deadline > t


def test_learner_never_campaigns() -> None:
    eng = follower(4, membership=membership({1, 2, 3}, learners=[4]), log=LOG)
    assert eng.server_state is ServerState.LEARNER
    eng.tick(eng.election_deadline + 100)
    assert out(eng) == []
    assert eng.candidate is None


def test_uninitialized_node_never_campaigns() -> None:
    eng = new_engine(1)
    eng.tick(1000.0)
    assert out(eng) == []
    assert eng.candidate is None


def test_node_with_elect_disabled_never_campaigns() -> None:
    eng = follower(log=LOG)
    eng.elect_enabled = False
    eng.tick(eng.election_deadline + 100)
    assert out(eng) == []


def test_pre_vote_quorum_starts_real_election_saving_vote_before_requests() -> None:
    """The vote is durable before any request for it goes out (I/O ordering)."""
    eng = follower(vote=vote(1, 2, committed=True), log=LOG)
    eng.tick(eng.election_deadline)
    [pre] = out(eng)
    eng.handle_vote_resp(3, pre.req, VoteResponse(vote(1, 2, committed=True), True, LAST))
    assert out(eng) == [
        SaveVote(vote(2, 1)),
        SendVote(VoteRequest(vote(2, 1), LAST), (2, 3)),
    ]
    assert eng.server_state is ServerState.CANDIDATE


def test_pre_vote_grants_below_quorum_do_nothing() -> None:
    eng = follower(membership=membership({1, 2, 3, 4, 5}), log=LOG)
    eng.tick(eng.election_deadline)
    [pre] = out(eng)
    eng.handle_vote_resp(2, pre.req, VoteResponse(eng.vote, True, LAST))
    assert out(eng) == []


def test_without_pre_vote_the_real_vote_goes_out_directly() -> None:
    eng = follower(
        vote=vote(1, 2, committed=True), log=LOG, config=attrs.evolve(CONFIG, enable_pre_vote=False)
    )
    eng.tick(eng.election_deadline)
    assert out(eng) == [
        SaveVote(vote(2, 1)),
        SendVote(VoteRequest(vote(2, 1), LAST), (2, 3)),
    ]


def test_vote_quorum_commits_vote_becomes_leader_and_appends_blank_entry() -> None:
    """§5.4.2: a new leader appends a blank entry of its term, then replicates it."""
    eng = follower(
        vote=vote(1, 2, committed=True), log=LOG, config=attrs.evolve(CONFIG, enable_pre_vote=False)
    )
    eng.tick(eng.election_deadline)
    [_, send] = out(eng)
    eng.handle_vote_resp(2, send.req, VoteResponse(vote(2, 1), True, LAST))
    leader_vote = vote(2, 1, committed=True)
    noop = lid(2, 1, 6)
    assert out(eng) == [
        SaveVote(leader_vote),
        BecomeLeader(leader_vote, (2, 3)),
        AppendEntries(leader_vote, (Entry(noop, BLANK),)),
        Replicate(2, 1, LAST, noop, INIT_LOG_ID),
        Replicate(3, 1, LAST, noop, INIT_LOG_ID),
    ]
    assert eng.server_state is ServerState.LEADER
    assert eng.current_leader == 1


def test_leader_replicates_to_learners_too() -> None:
    eng = leader(membership=membership({1, 2, 3}, learners=[4]))
    assert eng.leader is not None
    assert sorted(eng.leader.progress) == [2, 3, 4]


def test_single_voter_initialize_becomes_leader_immediately() -> None:
    m = membership({1})
    eng = new_engine(1)
    eng.initialize(m)
    leader_vote = vote(1, 1, committed=True)
    assert out(eng) == [
        AppendEntries(vote(0, None), (Entry(INIT_LOG_ID, MembershipChange(m)),)),
        SaveVote(vote(1, 1)),
        SaveVote(leader_vote),
        BecomeLeader(leader_vote, ()),
        AppendEntries(leader_vote, (Entry(lid(1, 1, 1), BLANK),)),
    ]
    assert eng.is_leader


def test_stale_vote_response_for_an_older_candidacy_is_ignored() -> None:
    eng = follower(log=LOG, config=attrs.evolve(CONFIG, enable_pre_vote=False))
    eng.tick(eng.election_deadline)
    [_, old] = out(eng)  # campaign for term 1
    eng.tick(eng.election_deadline)
    [_, new] = out(eng)  # timed out: campaign for term 2
    assert new.req.vote == vote(2, 1)
    eng.handle_vote_resp(2, old.req, VoteResponse(old.req.vote, True, LAST))
    assert out(eng) == []
    assert eng.candidate is not None
    assert eng.candidate.granted == {1}


def test_pre_vote_grant_is_not_counted_for_the_real_vote() -> None:
    eng = follower(log=LOG)
    eng.tick(eng.election_deadline)
    [pre] = out(eng)
    eng.handle_vote_resp(2, pre.req, VoteResponse(eng.vote, True, LAST))
    [_, real] = out(eng)
    # A duplicate pre-vote grant from 3 is not a vote for the real election.
    eng.handle_vote_resp(3, pre.req, VoteResponse(real.req.vote, True, LAST))
    assert out(eng) == []
    assert not eng.is_leader


def test_vote_grant_from_a_non_voter_is_not_counted() -> None:
    eng = follower(
        log=LOG,
        membership=membership({1, 2, 3}, learners=[4]),
        config=attrs.evolve(CONFIG, enable_pre_vote=False),
    )
    eng.tick(eng.election_deadline)
    [_, send] = out(eng)
    eng.handle_vote_resp(4, send.req, VoteResponse(send.req.vote, True, LAST))
    assert out(eng) == []
    assert not eng.is_leader


def test_candidate_steps_down_and_saves_higher_vote_from_a_response() -> None:
    """§5.1: a node that sees a higher term adopts it and stops campaigning."""
    eng = follower(log=LOG, config=attrs.evolve(CONFIG, enable_pre_vote=False))
    eng.tick(eng.election_deadline)
    [_, send] = out(eng)
    higher = vote(3, 3, committed=True)
    eng.handle_vote_resp(2, send.req, VoteResponse(higher, False, LAST))
    assert out(eng) == [SaveVote(higher)]
    assert eng.vote == higher
    assert eng.candidate is None
    assert eng.current_leader == 3
    assert eng.server_state is ServerState.FOLLOWER


def test_pre_vote_candidate_adopts_higher_uncommitted_vote_without_a_leader() -> None:
    eng = follower(log=LOG)
    eng.tick(eng.election_deadline)
    [pre] = out(eng)
    higher = vote(5, 3)
    eng.handle_vote_resp(2, pre.req, VoteResponse(higher, False, LAST))
    assert out(eng) == [SaveVote(higher)]
    assert eng.candidate is None
    assert eng.current_leader is None


def test_refusal_with_equal_or_lower_vote_changes_nothing() -> None:
    eng = follower(log=LOG, config=attrs.evolve(CONFIG, enable_pre_vote=False))
    eng.tick(eng.election_deadline)
    [_, send] = out(eng)
    eng.handle_vote_resp(2, send.req, VoteResponse(vote(0, None), False, LAST))
    eng.handle_vote_resp(3, send.req, VoteResponse(send.req.vote, False, LAST))
    assert out(eng) == []
    assert eng.candidate is not None
    assert eng.candidate.granted == {1}


def test_late_vote_grant_to_a_leader_is_ignored() -> None:
    eng = leader(grants=[2])
    req = VoteRequest(vote(2, 1), INIT_LOG_ID)
    eng.handle_vote_resp(3, req, VoteResponse(vote(2, 1), True, INIT_LOG_ID))
    assert out(eng) == []
    assert eng.is_leader


def test_after_hearing_from_a_leader_the_election_range_starts_at_lease_end() -> None:
    """Campaigning while every voter's lease from the leader runs is refused anyway, so the
    randomized range [min, max] is shifted to start where our own lease ends."""
    leader_vote = vote(2, 2, committed=True)
    eng = follower(vote=leader_vote)
    eng.now = 5.0
    eng.handle_append_entries(AppendEntriesRequest(leader_vote, None, (), None), object())
    eng.take_output()
    c = eng.config
    assert 5.0 + c.lease <= eng.election_deadline <= 5.0 + c.lease + (
        c.election_timeout_max - c.election_timeout_min
    )
    # Just before the lease ends: nothing. After the deadline: a pre-vote starts.
    eng.tick(5.0 + c.lease - 0.01)
    assert eng.take_output() == []
    eng.tick(eng.election_deadline)
    assert [type(cmd).__name__ for cmd in eng.take_output()] == ["SendVote"]


# -- leader stickiness binds the node's own vote (PROTOCOL-NOTES "Reads") --------------------


def test_elect_on_the_leader_is_a_no_op() -> None:
    for voters in ({1}, {1, 2, 3}):
        eng = leader(membership=membership(voters), grants=sorted(voters - {1})[:1])
        state = eng.leader
        eng.elect()
        assert out(eng) == []
        assert eng.leader is state
        assert eng.vote == vote(2, 1, committed=True)


def test_elect_inside_the_nodes_own_lease_does_nothing_until_it_ends() -> None:
    eng = follower(vote=vote(1, 2, committed=True), log=LOG)
    eng.now = 5.0
    eng.handle_append_entries(AppendEntriesRequest(eng.vote, None, (), None), object())
    out(eng)
    eng.now = 5.0 + CONFIG.lease - 0.01
    eng.elect()
    assert out(eng) == []
    assert eng.candidate is None
    eng.now = 5.0 + CONFIG.lease
    eng.elect()
    assert out(eng) == [SendVote(VoteRequest(vote(2, 1), LAST, pre_vote=True), (2, 3))]


def test_a_restarted_node_assumes_a_live_leader_for_one_lease() -> None:
    """It cannot know when it last heard from a leader: for one lease after startup it
    neither campaigns nor grants (pre-)votes that are not leader transfers."""
    eng = follower(vote=vote(1, 2, committed=True), log=LOG, now=5.0, just_restarted=True)
    assert eng.election_deadline >= 5.0 + CONFIG.lease
    eng.now = 5.0 + CONFIG.lease - 0.01
    eng.elect()
    assert out(eng) == []
    for pre_vote in (True, False):
        resp = eng.handle_vote_req(VoteRequest(vote(2, 3), LAST, pre_vote=pre_vote))
        assert resp == VoteResponse(vote(1, 2, committed=True), False, LAST)
    assert out(eng) == []
    resp = eng.handle_vote_req(VoteRequest(vote(2, 3), LAST, leader_transfer=True))
    assert resp.vote_granted
    assert out(eng) == [SaveVote(vote(2, 3))]


def test_the_startup_lease_ends_after_one_lease() -> None:
    eng = follower(vote=vote(1, 2, committed=True), log=LOG, now=5.0, just_restarted=True)
    eng.now = 5.0 + CONFIG.lease
    resp = eng.handle_vote_req(VoteRequest(vote(2, 3), LAST))
    assert resp == VoteResponse(vote(2, 3), True, LAST)
    other = follower(vote=vote(1, 2, committed=True), log=LOG, now=5.0, just_restarted=True)
    other.tick(other.election_deadline)
    assert out(other) == [SendVote(VoteRequest(vote(2, 1), LAST, pre_vote=True), (2, 3))]


def test_a_pristine_node_has_no_startup_lease() -> None:
    eng = new_engine()
    eng.now = 5.0
    eng.startup(
        vote=None, log_ids=[], purged=None, committed=None, last_applied=None,
        applied_membership=StoredMembership(), log_memberships=[],
    )
    assert eng.leader_seen_time is None
