"""AppendEntries on the receiving side (Raft §5.3; PROTOCOL-NOTES "Replication", "I/O
ordering"): vote check, consistency check and conflict hints, truncating only at a real
conflict, replies and commits gated on the flush, and a commit index that never regresses."""

from __future__ import annotations

from collections.abc import Sequence

from openraft_trio._engine import Engine
from openraft_trio._engine.commands import (
    AppendEntries,
    Apply,
    IOId,
    QuitLeader,
    SaveCommitted,
    SaveVote,
    TruncateLog,
)
from openraft_trio._errors import InvalidRequest
from openraft_trio._messages import AppendEntriesRequest, AppendEntriesResponse
from openraft_trio._types import Entry, LogId, MembershipChange, Normal, StoredMembership, Vote

from ._engine_helpers import (
    INIT_LOG_ID,
    Raises,
    Responded,
    follower,
    leader,
    lid,
    membership,
    out,
    vote,
)

V2 = vote(2, 2, committed=True)
V3 = vote(3, 3, committed=True)
# Node 1's log: index 0 (init), 1-2 of term 1, 3-4 of term 2.
LOG = [INIT_LOG_ID, lid(1, 2, 1), lid(1, 2, 2), lid(2, 2, 3), lid(2, 2, 4)]
COMMITTED = lid(1, 2, 1)


def ent(term: int, node_id: int, index: int) -> Entry:
    return Entry(lid(term, node_id, index), Normal(index))


def f(
    *,
    vote: Vote = V2,
    committed: LogId | None = COMMITTED,
    log: Sequence[LogId] = LOG,
    log_memberships: Sequence[StoredMembership] = (),
) -> Engine:
    """Node 1, follower of node 2 at term 2, with LOG, committed up to index 1."""
    return follower(vote=vote, log=log, committed=committed, log_memberships=log_memberships)


def ae(
    v: Vote, prev: LogId | None, entries: Sequence[Entry] = (), commit: LogId | None = None
) -> AppendEntriesRequest:
    return AppendEntriesRequest(v, prev, tuple(entries), commit)


def test_lower_vote_is_rejected_with_our_vote_and_no_commands() -> None:
    eng = f()
    r = object()
    eng.handle_append_entries(ae(vote(1, 3, committed=True), lid(1, 2, 2), [ent(1, 3, 3)]), r)
    assert out(eng) == [Responded(r, AppendEntriesResponse(V2, success=False))]
    assert eng.last_log_id == lid(2, 2, 4)


def test_uncommitted_vote_is_not_a_leader() -> None:
    eng = f()
    r = object()
    eng.handle_append_entries(ae(vote(3, 3), None), r)
    assert out(eng) == [Responded(r, AppendEntriesResponse(V2, success=False))]


def test_heartbeat_succeeds_without_log_commands() -> None:
    eng = f()
    eng.now = 7.0
    r = object()
    eng.handle_append_entries(ae(V2, None), r)
    assert out(eng) == [Responded(r, AppendEntriesResponse(V2, success=True))]
    assert eng.leader_seen_time == 7.0
    assert eng.current_leader == 2
    # No one grants a vote while their lease from this leader runs: the randomized
    # election range starts where the lease ends (7 + lease 2, spread max - min = 1).
    assert 9.0 <= eng.election_deadline <= 10.0


def test_hearing_again_from_the_same_leader_extends_the_deadline_by_the_same_timeout() -> None:
    eng = f()
    eng.now = 7.0
    eng.handle_append_entries(ae(V2, None), object())
    first = eng.election_deadline
    rng_state = eng.rng.getstate()
    for now in (7.01, 7.5, 8.25):
        eng.now = now
        eng.handle_append_entries(ae(V2, None), object())
        # No new draw: the deadline moves exactly as far as the clock did, never earlier,
        # so the ticker sleeping until the old deadline need not be woken.
        assert eng.election_deadline == first + (now - 7.0)
    assert eng.rng.getstate() == rng_state
    eng.take_output()


def test_a_new_leader_redraws_the_election_timeout() -> None:
    eng = f()
    eng.now = 7.0
    eng.handle_append_entries(ae(V2, None), object())
    rng_state = eng.rng.getstate()
    eng.handle_append_entries(ae(V3, None), object())
    assert eng.rng.getstate() != rng_state
    assert 9.0 <= eng.election_deadline <= 10.0
    eng.take_output()


def test_heartbeat_with_higher_vote_saves_it_before_replying() -> None:
    eng = f()
    r = object()
    eng.handle_append_entries(ae(V3, None), r)
    assert out(eng) == [SaveVote(V3), Responded(r, AppendEntriesResponse(V3, success=True))]
    assert eng.current_leader == 3


def test_higher_vote_is_saved_first_then_entries_appended() -> None:
    eng = f()
    r = object()
    eng.handle_append_entries(ae(V3, lid(2, 2, 4), [ent(3, 3, 5)]), r)
    assert out(eng) == [SaveVote(V3), AppendEntries(V3, (ent(3, 3, 5),))]


def test_candidate_steps_down_on_append_from_leader_of_same_term() -> None:
    eng = f(vote=vote(2, 2))  # voted for 2 in term 2, 2 has not won yet (as far as we know)
    eng.tick(eng.election_deadline)
    eng.take_output()
    assert eng.candidate is not None
    assert eng.candidate.pre_vote
    r = object()
    eng.handle_append_entries(ae(V2, None), r)
    assert out(eng) == [SaveVote(V2), Responded(r, AppendEntriesResponse(V2, success=True))]
    assert eng.candidate is None


def test_leader_steps_down_on_append_from_higher_leader() -> None:
    eng = leader(term=2)
    r = object()
    eng.handle_append_entries(ae(V3, None), r)
    assert out(eng) == [
        QuitLeader(3, INIT_LOG_ID),
        SaveVote(V3),
        Responded(r, AppendEntriesResponse(V3, success=True)),
    ]
    assert not eng.is_leader


def test_conflict_hint_is_last_index_plus_one_when_our_log_is_shorter() -> None:
    eng = f()
    r = object()
    eng.handle_append_entries(ae(V2, lid(2, 2, 8), [ent(2, 2, 9)]), r)
    assert out(eng) == [
        Responded(r, AppendEntriesResponse(V2, success=False, conflict=True, conflict_hint=5))
    ]
    assert eng.last_log_id == lid(2, 2, 4)


def test_conflict_hint_is_first_index_of_the_conflicting_run_when_our_log_is_longer() -> None:
    """Fast backup: the leader skips our whole term-2 run (indexes 3-4) in one step."""
    eng = f()
    r = object()
    eng.handle_append_entries(ae(V3, lid(3, 3, 4), [ent(3, 3, 5)]), r)
    assert out(eng) == [
        SaveVote(V3),
        Responded(r, AppendEntriesResponse(V3, success=False, conflict=True, conflict_hint=3)),
    ]
    assert eng.last_log_id == lid(2, 2, 4)  # nothing truncated on a mismatch


def test_conflict_hint_never_below_committed() -> None:
    eng = f(committed=lid(2, 2, 3))
    r = object()
    eng.handle_append_entries(ae(V3, lid(3, 3, 4), [ent(3, 3, 5)]), r)
    [_, resp] = out(eng)
    assert resp.value.conflict_hint == 4


def test_duplicate_request_for_entries_already_present_truncates_nothing() -> None:
    """A duplicated or reordered AppendEntries whose entries we already hold must not
    truncate what follows them."""
    eng = f()
    r = object()
    eng.handle_append_entries(ae(V2, lid(1, 2, 1), [ent(1, 2, 2), ent(2, 2, 3)]), r)
    assert out(eng) == [
        Responded(r, AppendEntriesResponse(V2, success=True, matching=lid(2, 2, 3)))
    ]
    assert eng.last_log_id == lid(2, 2, 4)


def test_stale_request_at_a_committed_prev_skips_present_entries() -> None:
    eng = f(committed=lid(2, 2, 4))
    r = object()
    eng.handle_append_entries(ae(V2, INIT_LOG_ID, [ent(1, 2, 1), ent(1, 2, 2)]), r)
    assert out(eng) == [
        Responded(r, AppendEntriesResponse(V2, success=True, matching=lid(1, 2, 2)))
    ]


def test_real_conflict_truncates_after_last_matching_then_appends() -> None:
    eng = f()
    r = object()
    new = [ent(2, 2, 3), ent(3, 3, 4), ent(3, 3, 5)]
    eng.handle_append_entries(ae(V3, lid(1, 2, 2), new), r)
    assert out(eng) == [
        SaveVote(V3),
        TruncateLog(lid(2, 2, 3)),
        AppendEntries(V3, (ent(3, 3, 4), ent(3, 3, 5))),
    ]
    assert eng.last_log_id == lid(3, 3, 5)


def test_real_conflict_at_first_entry_truncates_after_prev() -> None:
    eng = f()
    eng.handle_append_entries(ae(V3, lid(1, 2, 2), [ent(3, 3, 3)]), object())
    assert out(eng) == [SaveVote(V3), TruncateLog(lid(1, 2, 2)), AppendEntries(V3, (ent(3, 3, 3),))]
    assert eng.last_log_id == lid(3, 3, 3)


def test_truncating_a_membership_entry_reverts_the_membership() -> None:
    """A membership takes effect when appended and reverts if its entry is truncated."""
    m4 = membership({1, 2, 3, 4})
    eng = f(log=[*LOG, lid(2, 2, 5)], log_memberships=[StoredMembership(lid(2, 2, 5), m4)])
    assert eng.membership.membership == m4
    eng.handle_append_entries(ae(V3, lid(2, 2, 4), [ent(3, 3, 5)]), object())
    assert out(eng) == [SaveVote(V3), TruncateLog(lid(2, 2, 4)), AppendEntries(V3, (ent(3, 3, 5),))]
    assert eng.membership.membership.voter_ids == {1, 2, 3}


def test_appended_membership_takes_effect_at_once() -> None:
    m4 = membership({1, 2, 3, 4})
    eng = f()
    e = Entry(lid(2, 2, 5), MembershipChange(m4))
    eng.handle_append_entries(ae(V2, lid(2, 2, 4), [e]), object())
    assert out(eng) == [AppendEntries(V2, (e,))]
    assert eng.membership.membership == m4
    assert eng.membership.committed.membership.voter_ids == {1, 2, 3}


def test_conflict_with_a_committed_entry_is_refused_before_touching_state() -> None:
    """A leader with a diverging committed log cannot exist (§5.4): answer InvalidRequest
    and change nothing — not even the vote."""
    eng = f(committed=lid(2, 2, 4))
    r = object()
    eng.handle_append_entries(ae(V3, lid(1, 2, 2), [ent(3, 3, 3)]), r)
    assert out(eng) == [Responded(r, Raises(InvalidRequest))]
    assert eng.vote == V2
    assert eng.last_log_id == lid(2, 2, 4)


def test_success_reply_is_gated_until_the_appended_entries_are_flushed() -> None:
    eng = f()
    r = object()
    eng.handle_append_entries(ae(V2, lid(2, 2, 4), [ent(2, 2, 5), ent(2, 2, 6)]), r)
    assert out(eng) == [AppendEntries(V2, (ent(2, 2, 5), ent(2, 2, 6)))]
    eng.on_io_flushed(IOId(V2, lid(2, 2, 5)))  # a partial flush is not enough
    assert out(eng) == []
    eng.on_io_flushed(IOId(V2, lid(2, 2, 6)))
    assert out(eng) == [
        Responded(r, AppendEntriesResponse(V2, success=True, matching=lid(2, 2, 6)))
    ]


def test_replies_are_released_in_order() -> None:
    eng = f()
    r1, r2 = object(), object()
    eng.handle_append_entries(ae(V2, lid(2, 2, 4), [ent(2, 2, 5)]), r1)
    # A duplicate of an older request is already durable, but waits behind r1.
    eng.handle_append_entries(ae(V2, lid(2, 2, 3), [ent(2, 2, 4)]), r2)
    assert out(eng) == [AppendEntries(V2, (ent(2, 2, 5),))]
    eng.on_io_flushed(IOId(V2, lid(2, 2, 5)))
    assert out(eng) == [
        Responded(r1, AppendEntriesResponse(V2, success=True, matching=lid(2, 2, 5))),
        Responded(r2, AppendEntriesResponse(V2, success=True, matching=lid(2, 2, 4))),
    ]


def test_stale_flush_of_a_truncated_entry_acknowledges_nothing() -> None:
    """ABA: index 5 written under V2 (term 2) is truncated and rewritten under V3 (term 3);
    the late completion of the old write must not release the reply for the new one."""
    eng = f()
    eng.handle_append_entries(ae(V2, lid(2, 2, 4), [ent(2, 2, 5)]), object())
    eng.take_output()
    r = object()
    eng.handle_append_entries(ae(V3, lid(2, 2, 4), [ent(3, 3, 5)]), r)
    assert out(eng)[-1] == AppendEntries(V3, (ent(3, 3, 5),))
    eng.on_io_flushed(IOId(V2, lid(2, 2, 5)))
    assert [c for c in out(eng) if isinstance(c, Responded) and c.responder is r] == []
    eng.on_io_flushed(IOId(V3, lid(3, 3, 5)))
    assert out(eng) == [
        Responded(r, AppendEntriesResponse(V3, success=True, matching=lid(3, 3, 5)))
    ]


def test_follower_commits_min_of_leader_commit_and_matching_after_flush() -> None:
    eng = f()
    r = object()
    before = eng.committed
    eng.handle_append_entries(ae(V2, lid(2, 2, 4), [ent(2, 2, 5)], commit=lid(2, 2, 9)), r)
    assert out(eng) == [AppendEntries(V2, (ent(2, 2, 5),))]
    # committed <= flushed: the commit index itself waits for the flush (a crash before
    # it would otherwise take a restarted node's commit index backwards; simulator seed 18).
    assert eng.committed == before
    eng.on_io_flushed(IOId(V2, lid(2, 2, 5)))
    assert out(eng) == [
        Responded(r, AppendEntriesResponse(V2, success=True, matching=lid(2, 2, 5))),
        SaveCommitted(lid(2, 2, 5)),
        Apply(lid(2, 2, 5)),
    ]
    assert eng.committed == lid(2, 2, 5)


def test_follower_commit_limited_by_leader_commit() -> None:
    eng = f()
    r = object()
    eng.handle_append_entries(ae(V2, lid(2, 2, 4), [], commit=lid(2, 2, 3)), r)
    assert out(eng) == [
        Responded(r, AppendEntriesResponse(V2, success=True, matching=lid(2, 2, 4))),
        SaveCommitted(lid(2, 2, 3)),
        Apply(lid(2, 2, 3)),
    ]


def test_follower_commit_never_regresses() -> None:
    eng = f(committed=lid(2, 2, 3))
    r = object()
    eng.handle_append_entries(ae(V2, lid(2, 2, 4), [ent(2, 2, 5)], commit=lid(1, 2, 2)), r)
    eng.on_io_flushed(IOId(V2, lid(2, 2, 5)))
    assert out(eng) == [
        AppendEntries(V2, (ent(2, 2, 5),)),
        Responded(r, AppendEntriesResponse(V2, success=True, matching=lid(2, 2, 5))),
    ]
    assert eng.committed == lid(2, 2, 3)


def test_follower_commit_only_up_to_what_matches_this_request() -> None:
    """Entries after ``matching`` may be stale leftovers; never commit them."""
    eng = f()
    r = object()
    eng.handle_append_entries(ae(V2, lid(1, 2, 1), [ent(1, 2, 2)], commit=lid(2, 2, 4)), r)
    assert out(eng) == [
        Responded(r, AppendEntriesResponse(V2, success=True, matching=lid(1, 2, 2))),
        SaveCommitted(lid(1, 2, 2)),
        Apply(lid(1, 2, 2)),
    ]
