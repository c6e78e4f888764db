"""``initialize`` and ``startup``: first membership entry, refusing a second initialization,
and restoring persisted state (PROTOCOL-NOTES "Log pointers")."""

from __future__ import annotations

import pytest

from openraft_trio._engine.commands import AppendEntries, Apply, SendVote
from openraft_trio._errors import NotAllowed, NotInMembers, StorageError
from openraft_trio._messages import VoteRequest
from openraft_trio._types import Entry, MembershipChange, StoredMembership

from ._engine_helpers import INIT_LOG_ID, M123, follower, lid, membership, new_engine, out, vote


def test_initialize_appends_membership_entry_then_starts_pre_vote() -> None:
    eng = new_engine(1)
    eng.initialize(M123)
    assert out(eng) == [
        AppendEntries(vote(0, None), (Entry(INIT_LOG_ID, MembershipChange(M123)),)),
        SendVote(VoteRequest(vote(1, 1), INIT_LOG_ID, pre_vote=True), (2, 3)),
    ]
    assert eng.membership.membership == M123


def test_initialize_twice_is_not_allowed() -> None:
    eng = new_engine(1)
    eng.initialize(M123)
    eng.take_output()
    with pytest.raises(NotAllowed):
        eng.initialize(M123)
    assert out(eng) == []


def test_initialize_node_with_a_vote_is_not_allowed() -> None:
    eng = follower(vote=vote(3, 2), log=[], committed=None)
    with pytest.raises(NotAllowed):
        eng.initialize(M123)


def test_initialize_node_with_a_log_is_not_allowed() -> None:
    eng = follower(log=[INIT_LOG_ID])
    with pytest.raises(NotAllowed):
        eng.initialize(M123)


def test_initialize_with_membership_not_containing_self_is_refused() -> None:
    eng = new_engine(4)
    with pytest.raises(NotInMembers):
        eng.initialize(M123)
    assert out(eng) == []
    assert eng.last_log_id is None


def test_initialize_as_learner_only_is_refused() -> None:
    eng = new_engine(4)
    with pytest.raises(NotInMembers):
        eng.initialize(membership({1, 2, 3}, learners=[4]))


def test_startup_applies_committed_but_unapplied_entries() -> None:
    eng = new_engine(1)
    eng.startup(
        vote=vote(1, 2, committed=True),
        log_ids=[INIT_LOG_ID, lid(1, 2, 1), lid(1, 2, 2)],
        purged=None,
        committed=lid(1, 2, 2),
        last_applied=INIT_LOG_ID,
        applied_membership=StoredMembership(INIT_LOG_ID, M123),
        log_memberships=[],
    )
    assert out(eng) == [Apply(lid(1, 2, 2))]
    assert eng.committed == lid(1, 2, 2)


def test_startup_refuses_a_log_that_ends_before_committed() -> None:
    eng = new_engine(1)
    with pytest.raises(StorageError):
        eng.startup(
            vote=vote(1, 2, committed=True),
            log_ids=[INIT_LOG_ID, lid(1, 2, 1)],
            purged=None,
            committed=lid(1, 2, 2),
            last_applied=INIT_LOG_ID,
            applied_membership=StoredMembership(INIT_LOG_ID, M123),
            log_memberships=[],
        )


def test_restarted_leader_comes_back_as_follower_keeping_its_vote() -> None:
    eng = follower(vote=vote(4, 1, committed=True))
    assert not eng.is_leader
    assert eng.vote == vote(4, 1, committed=True)
