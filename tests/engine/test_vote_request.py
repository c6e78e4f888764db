"""Answering (pre-)vote requests: §5.4.1 election restriction, one vote per term, vote
durable before the reply, pre-votes change nothing, and leader stickiness (PROTOCOL-NOTES
"Votes and terms": followers refuse for ``lease`` after hearing from a live leader)."""

from __future__ import annotations

from openraft_trio._engine import Engine
from openraft_trio._engine.commands import QuitLeader, SaveVote
from openraft_trio._messages import AppendEntriesRequest, VoteRequest, VoteResponse

from ._engine_helpers import INIT_LOG_ID, LEASE, follower, leader, lid, out, vote

LAST = lid(2, 2, 4)
LOG = [INIT_LOG_ID, lid(1, 2, 1), lid(1, 2, 2), lid(2, 2, 3), LAST]


def fresh_follower() -> Engine:
    """Node 1, term-2 follower of node 2 that has not heard from it since restart."""
    return follower(vote=vote(2, 2, committed=True), log=LOG)


def hear_from_leader(eng: Engine, now: float) -> None:
    eng.now = now
    eng.handle_append_entries(AppendEntriesRequest(eng.vote, None, (), None), object())
    eng.take_output()


def test_vote_granted_is_saved_before_the_reply() -> None:
    """The caller sends the returned response after running the output: SaveVote first."""
    eng = fresh_follower()
    resp = eng.handle_vote_req(VoteRequest(vote(3, 3), LAST))
    assert resp == VoteResponse(vote(3, 3), True, LAST)
    assert out(eng) == [SaveVote(vote(3, 3))]
    assert eng.vote == vote(3, 3)
    assert eng.current_leader is None


def test_vote_refused_when_candidate_log_is_behind_by_index() -> None:
    """§5.4.1: same last term, shorter log: refuse, vote unchanged, nothing saved."""
    eng = fresh_follower()
    resp = eng.handle_vote_req(VoteRequest(vote(3, 3), lid(2, 2, 3)))
    assert resp == VoteResponse(vote(2, 2, committed=True), False, LAST)
    assert out(eng) == []
    assert eng.vote == vote(2, 2, committed=True)


def test_vote_refused_when_candidate_last_term_is_older() -> None:
    eng = fresh_follower()
    resp = eng.handle_vote_req(VoteRequest(vote(3, 3), lid(1, 2, 9)))
    assert not resp.vote_granted
    assert out(eng) == []


def test_vote_refused_for_empty_candidate_log() -> None:
    eng = fresh_follower()
    assert not eng.handle_vote_req(VoteRequest(vote(3, 3), None)).vote_granted
    assert out(eng) == []


def test_vote_granted_to_candidate_with_higher_last_term_but_shorter_log() -> None:
    eng = fresh_follower()
    assert eng.handle_vote_req(VoteRequest(vote(3, 3), lid(3, 3, 3))).vote_granted
    assert out(eng) == [SaveVote(vote(3, 3))]


def test_no_second_vote_in_a_term_after_restart() -> None:
    """A restarted node reads its vote back and never grants a second one in that term."""
    eng = follower(vote=vote(3, 2), log=LOG)
    resp = eng.handle_vote_req(VoteRequest(vote(3, 3), LAST))
    assert resp == VoteResponse(vote(3, 2), False, LAST)
    assert out(eng) == []


def test_no_second_vote_in_a_term_even_after_the_lease() -> None:
    eng = fresh_follower()
    assert eng.handle_vote_req(VoteRequest(vote(3, 2), LAST)).vote_granted
    eng.take_output()
    eng.now += LEASE * 2  # the lease no longer protects: only the vote order does
    resp = eng.handle_vote_req(VoteRequest(vote(3, 3), LAST))
    assert resp == VoteResponse(vote(3, 2), False, LAST)
    assert out(eng) == []


def test_regranting_the_same_candidate_is_idempotent() -> None:
    """A duplicated request from the candidate we voted for is granted again, and nothing is
    saved twice (Raft Figure 2: grant if votedFor is null or candidateId)."""
    eng = fresh_follower()
    req = VoteRequest(vote(3, 3), LAST)
    assert eng.handle_vote_req(req).vote_granted
    eng.take_output()
    eng.now += 0.01
    assert eng.handle_vote_req(req) == VoteResponse(vote(3, 3), True, LAST)
    assert out(eng) == []


def test_vote_for_lower_term_refused() -> None:
    eng = fresh_follower()
    resp = eng.handle_vote_req(VoteRequest(vote(1, 3), lid(9, 3, 9)))
    assert resp == VoteResponse(vote(2, 2, committed=True), False, LAST)
    assert out(eng) == []


def test_pre_vote_grant_changes_no_state() -> None:
    eng = fresh_follower()
    deadline = eng.election_deadline
    resp = eng.handle_vote_req(VoteRequest(vote(3, 3), LAST, pre_vote=True))
    assert resp == VoteResponse(vote(2, 2, committed=True), True, LAST)
    assert out(eng) == []
    assert eng.vote == vote(2, 2, committed=True)
    assert eng.leader_seen_time is None
    assert eng.election_deadline == deadline


def test_pre_vote_refused_when_candidate_log_is_behind() -> None:
    eng = fresh_follower()
    resp = eng.handle_vote_req(VoteRequest(vote(3, 3), lid(2, 2, 3), pre_vote=True))
    assert not resp.vote_granted
    assert out(eng) == []


def test_pre_vote_refused_for_a_term_not_above_ours() -> None:
    eng = fresh_follower()
    resp = eng.handle_vote_req(VoteRequest(vote(2, 3), LAST, pre_vote=True))
    assert not resp.vote_granted
    assert out(eng) == []


def test_follower_within_leader_lease_refuses_vote_and_pre_vote() -> None:
    """Leader stickiness: a live leader was heard from less than ``lease`` ago."""
    eng = fresh_follower()
    hear_from_leader(eng, 10.0)
    eng.now = 10.0 + LEASE - 0.01
    for pre_vote in (True, False):
        resp = eng.handle_vote_req(VoteRequest(vote(3, 3), LAST, pre_vote=pre_vote))
        assert resp == VoteResponse(vote(2, 2, committed=True), False, LAST)
    assert out(eng) == []
    assert eng.vote == vote(2, 2, committed=True)


def test_follower_within_leader_lease_grants_leader_transfer() -> None:
    eng = fresh_follower()
    hear_from_leader(eng, 10.0)
    eng.now = 10.5
    resp = eng.handle_vote_req(VoteRequest(vote(3, 3), LAST, pre_vote=True, leader_transfer=True))
    assert resp.vote_granted
    assert out(eng) == []
    resp = eng.handle_vote_req(VoteRequest(vote(3, 3), LAST, leader_transfer=True))
    assert resp == VoteResponse(vote(3, 3), True, LAST)
    assert out(eng) == [SaveVote(vote(3, 3))]


def test_follower_grants_once_leader_lease_expired() -> None:
    eng = fresh_follower()
    hear_from_leader(eng, 10.0)
    eng.now = 10.0 + LEASE
    assert eng.handle_vote_req(VoteRequest(vote(3, 3), LAST, pre_vote=True)).vote_granted
    assert out(eng) == []
    assert eng.handle_vote_req(VoteRequest(vote(3, 3), LAST)).vote_granted
    assert out(eng) == [SaveVote(vote(3, 3))]


def test_leader_refuses_non_transfer_votes() -> None:
    eng = leader(term=2)
    eng.now += 100  # even with an expired lease: a leader leads until it steps down
    for pre_vote in (True, False):
        resp = eng.handle_vote_req(VoteRequest(vote(5, 3), lid(5, 3, 100), pre_vote=pre_vote))
        assert resp == VoteResponse(vote(2, 1, committed=True), False, eng.last_log_id)
    assert out(eng) == []
    assert eng.is_leader


def test_leader_grants_transfer_vote_and_steps_down_quitting_before_saving() -> None:
    eng = leader(term=2)
    resp = eng.handle_vote_req(VoteRequest(vote(3, 3), lid(2, 1, 1), leader_transfer=True))
    assert resp == VoteResponse(vote(3, 3), True, lid(2, 1, 1))
    assert out(eng) == [QuitLeader(None, INIT_LOG_ID), SaveVote(vote(3, 3))]
    assert not eng.is_leader


def test_candidate_grants_higher_term_and_stops_campaigning() -> None:
    eng = fresh_follower()
    eng.tick(eng.election_deadline)
    eng.handle_vote_resp(2, out(eng)[0].req, VoteResponse(eng.vote, True, LAST))
    eng.take_output()
    assert eng.vote == vote(3, 1)
    eng.now += 0.01
    resp = eng.handle_vote_req(VoteRequest(vote(4, 3), LAST))
    assert resp.vote_granted
    assert out(eng) == [SaveVote(vote(4, 3))]
    assert eng.candidate is None


def test_candidate_refuses_other_candidate_of_its_term() -> None:
    """Two uncommitted votes of one term are incomparable: neither replaces the other."""
    eng = fresh_follower()
    eng.tick(eng.election_deadline)
    eng.handle_vote_resp(2, out(eng)[0].req, VoteResponse(eng.vote, True, LAST))
    eng.take_output()
    resp = eng.handle_vote_req(VoteRequest(vote(3, 3), LAST))
    assert resp == VoteResponse(vote(3, 1), False, LAST)
    assert out(eng) == []


def test_vote_grant_resets_election_timer() -> None:
    eng = fresh_follower()
    eng.now = 5.0
    eng.handle_vote_req(VoteRequest(vote(3, 3), LAST))
    assert 5.0 + 1.0 <= eng.election_deadline <= 5.0 + 2.0


def test_granting_a_vote_does_not_start_a_lease_so_a_split_vote_recovers() -> None:
    """Only contact with an elected leader makes a follower sticky: after granting a
    candidate that never won, a higher-term candidate is granted at once (and its pre-vote
    too) — no waiting out a whole lease after a split vote."""
    eng = fresh_follower()
    eng.now = 10.0 + LEASE  # the old leader's lease is long over
    assert eng.handle_vote_req(VoteRequest(vote(3, 3), LAST)).vote_granted
    eng.take_output()
    eng.now += 0.01
    assert eng.handle_vote_req(VoteRequest(vote(4, 4), LAST, pre_vote=True)).vote_granted
    assert out(eng) == []
    assert eng.handle_vote_req(VoteRequest(vote(4, 4), LAST)) == VoteResponse(
        vote(4, 4), True, LAST
    )
    assert out(eng) == [SaveVote(vote(4, 4))]
