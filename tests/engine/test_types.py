"""Value types the engine relies on: vote order, joint quorums and IOId flush coverage
(PROTOCOL-NOTES "I/O ordering": track completion by (vote, last log id), not by index)."""

from __future__ import annotations

from openraft_trio._engine.commands import IOId
from openraft_trio._types import LeaderId

from ._engine_helpers import lid, membership, vote

V1 = vote(1, 1, committed=True)
V2 = vote(2, 2, committed=True)


def test_membership_single_config_quorum_is_a_majority() -> None:
    m = membership({1, 2, 3})
    assert m.is_quorum({1, 2})
    assert m.is_quorum({1, 2, 3})
    assert not m.is_quorum({1})
    assert not m.is_quorum({1, 4, 5})  # non-voters do not count


def test_membership_even_config_quorum_needs_more_than_half() -> None:
    m = membership({1, 2, 3, 4})
    assert not m.is_quorum({1, 2})
    assert m.is_quorum({1, 2, 3})


def test_membership_joint_quorum_needs_majority_of_each_config() -> None:
    m = membership({1, 2, 3}, {3, 4, 5})
    assert m.is_joint
    assert not m.is_quorum({1, 2})  # old config only
    assert not m.is_quorum({4, 5})  # new config only
    assert not m.is_quorum({1, 2, 3})  # 3/3 old, 1/3 new
    assert m.is_quorum({1, 3, 4})
    assert m.is_quorum({1, 2, 4, 5})
    assert m.voter_ids == {1, 2, 3, 4, 5}


def test_membership_learners_are_nodes_that_are_not_voters() -> None:
    m = membership({1, 2, 3}, learners=[4])
    assert m.learner_ids == {4}
    assert not m.is_voter(4)


def test_vote_order_is_partial() -> None:
    a, b = vote(3, 1), vote(3, 2)
    assert a.partial_cmp(b) is None
    assert not a >= b
    assert not b >= a
    assert vote(3, 1, committed=True) > b  # an elected leader beats a candidate of its term
    assert vote(4, 1) > vote(3, 2, committed=True)  # higher term wins
    assert vote(3, 1) > vote(3, None)  # "no vote yet" is below any vote of the term


def test_log_id_order_is_term_then_index() -> None:
    assert lid(2, 1, 1) > lid(1, 1, 9)
    assert lid(2, 1, 2) > lid(2, 1, 1)
    assert LeaderId(2, None) < LeaderId(2, 1)


def test_io_id_flushed_by_same_vote_larger_log_id() -> None:
    io = IOId(V1, lid(1, 1, 5))
    assert io.is_flushed_by(IOId(V1, lid(1, 1, 5)))
    assert io.is_flushed_by(IOId(V1, lid(1, 1, 6)))
    assert not io.is_flushed_by(IOId(V1, lid(1, 1, 4)))
    assert not io.is_flushed_by(IOId(V1, None))
    assert not io.is_flushed_by(None)


def test_io_id_flushed_by_any_flush_under_a_greater_vote() -> None:
    """Writes are durable in submission order: a later vote's flush covers earlier writes."""
    io = IOId(V1, lid(1, 1, 5))
    assert io.is_flushed_by(IOId(V2, None))
    assert io.is_flushed_by(IOId(V2, lid(1, 1, 3)))


def test_io_id_not_flushed_by_a_flush_under_a_lower_vote() -> None:
    io = IOId(V2, lid(1, 1, 3))
    assert not io.is_flushed_by(IOId(V1, lid(1, 1, 9)))


def test_io_id_aba_same_index_later_term_not_covered_by_earlier_term_flush() -> None:
    """Index 5 of term 1 flushed does not cover index 5 of term 2 (truncated and rewritten)."""
    assert not IOId(V2, lid(2, 2, 5)).is_flushed_by(IOId(V2, lid(1, 1, 5)))
    assert not IOId(V2, lid(2, 2, 5)).is_flushed_by(IOId(V1, lid(1, 1, 5)))
    assert IOId(V2, lid(1, 1, 5)).is_flushed_by(IOId(V2, lid(2, 2, 5)))


def test_io_id_with_no_log_is_flushed_by_the_same_vote() -> None:
    assert IOId(V1, None).is_flushed_by(IOId(V1, None))
    assert not IOId(V1, None).is_flushed_by(IOId(vote(1, 2), None))  # incomparable votes
