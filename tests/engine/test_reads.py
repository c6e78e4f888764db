"""Linearizable reads (Ongaro §6.4; PROTOCOL-NOTES "Reads"): ReadIndex waits for the blank
entry of the term to commit and for a quorum of acks to heartbeats sent after the read
arrived — each READ_INDEX opens a new round, ``SendHeartbeat(round)`` stamps it on the next
heartbeats, and only acks carrying that round (or a later one) count; LeaseRead answers at
once only while the lease (minus clock drift) holds."""

from __future__ import annotations

from openraft_trio._engine.commands import (
    Apply,
    IOId,
    QuitLeader,
    Replicate,
    SaveCommitted,
    SaveVote,
    SendHeartbeat,
)
from openraft_trio._errors import ForwardToLeader, QuorumNotEnough
from openraft_trio._messages import AppendEntriesRequest
from openraft_trio._types import Node, Normal, ReadPolicy

from ._engine_helpers import (
    INIT_LOG_ID,
    LEASE,
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
NOOP = lid(2, 1, 1)
READ_INDEX, LEASE_READ = ReadPolicy.READ_INDEX, ReadPolicy.LEASE_READ


def test_read_index_waits_for_the_blank_entry_to_commit() -> None:
    eng = leader(now=10.0)
    eng.now = 10.5
    r = object()
    eng.ensure_linearizable(READ_INDEX, r)
    assert out(eng) == [SendHeartbeat(1)]
    eng.handle_heartbeat_ack(2, V, 10.6, V, 1)  # leadership confirmed, blank not committed
    assert out(eng) == []
    flush_own_log(eng)
    assert out(eng) == []
    eng.handle_replication_progress(2, V, 1, NOOP, 10.7)
    assert out(eng) == [
        SaveCommitted(NOOP),
        Apply(NOOP),
        Replicate(2, 1, INIT_LOG_ID, NOOP, NOOP),
        Replicate(3, 1, INIT_LOG_ID, NOOP, NOOP),
        Responded(r, NOOP),
    ]


def test_read_index_replication_acks_alone_do_not_confirm_leadership() -> None:
    """Commit of the blank entry is not a heartbeat round started after the read."""
    eng = leader(now=10.0)
    eng.now = 10.5
    r = object()
    eng.ensure_linearizable(READ_INDEX, r)
    out(eng)
    flush_own_log(eng)
    eng.handle_replication_progress(2, V, 1, NOOP, 10.7)
    assert [c for c in out(eng) if isinstance(c, Responded)] == []
    eng.handle_heartbeat_ack(3, V, 10.8, V, 1)
    assert out(eng) == [Responded(r, NOOP)]


def test_read_index_responds_after_quorum_acks_the_round_of_the_read() -> None:
    eng = leader(now=10.0)
    commit_blank(eng, send_time=10.5)
    eng.now = 12.0
    r = object()
    eng.ensure_linearizable(READ_INDEX, r)
    assert out(eng) == [SendHeartbeat(1)]
    eng.handle_heartbeat_ack(2, V, 12.0, V, 1)
    assert out(eng) == [Responded(r, NOOP)]


def test_read_index_acks_of_heartbeats_sent_before_the_read_do_not_count() -> None:
    """A heartbeat already on its way carries an older round, even if the clock did not
    move between its sending and the read."""
    eng = leader(now=10.0)
    commit_blank(eng, send_time=10.5)
    eng.now = 12.0
    r = object()
    eng.ensure_linearizable(READ_INDEX, r)
    out(eng)
    eng.handle_heartbeat_ack(2, V, 12.0, V, 0)
    eng.handle_heartbeat_ack(3, V, 12.0, V, 0)
    assert out(eng) == []
    eng.handle_heartbeat_ack(3, V, 12.1, V, 1)
    assert out(eng) == [Responded(r, NOOP)]


def test_read_index_one_round_ack_serves_every_earlier_round() -> None:
    eng = leader(now=10.0)
    commit_blank(eng, send_time=10.5)
    eng.now = 12.0
    r1, r2 = object(), object()
    eng.ensure_linearizable(READ_INDEX, r1)
    eng.ensure_linearizable(READ_INDEX, r2)
    assert out(eng) == [SendHeartbeat(1), SendHeartbeat(2)]
    eng.handle_heartbeat_ack(2, V, 12.1, V, 1)
    assert out(eng) == [Responded(r1, NOOP)]
    eng.handle_heartbeat_ack(3, V, 12.2, V, 2)
    assert out(eng) == [Responded(r2, NOOP)]


def test_read_index_ack_under_another_vote_does_not_count() -> None:
    eng = leader(now=10.0)
    commit_blank(eng, send_time=10.5)
    eng.now = 12.0
    r = object()
    eng.ensure_linearizable(READ_INDEX, r)
    out(eng)
    old = vote(1, 1, committed=True)
    eng.handle_heartbeat_ack(2, old, 12.1, old, 1)
    eng.handle_heartbeat_ack(3, V, 12.1, vote(2, 3), 1)  # answered under another vote
    assert out(eng) == []


def test_read_index_on_single_voter_leader_responds_at_once() -> None:
    eng = leader(membership=membership({1}), grants=[])
    flush_own_log(eng)
    out(eng)
    r = object()
    eng.ensure_linearizable(READ_INDEX, r)
    assert out(eng) == [Responded(r, NOOP)]


def test_read_log_id_is_max_of_committed_and_blank_entry() -> None:
    eng = leader(now=10.0)
    commit_blank(eng, send_time=10.5)
    [w] = eng.client_write([Normal("x")])
    eng.on_io_flushed(IOId(V, w))
    eng.handle_replication_progress(2, V, 1, w, 10.8)
    assert eng.committed == w
    out(eng)
    eng.now = 11.0
    r = object()
    eng.ensure_linearizable(READ_INDEX, r)
    eng.handle_heartbeat_ack(3, V, 11.0, V, 1)
    assert out(eng) == [SendHeartbeat(1), Responded(r, w)]


def test_lease_read_with_valid_lease_responds_at_once() -> None:
    eng = leader(now=10.0)
    commit_blank(eng, send_time=10.5)
    eng.now = 10.5 + LEASE - 0.2
    r = object()
    eng.ensure_linearizable(LEASE_READ, r)
    assert out(eng) == [Responded(r, NOOP)]


def test_lease_read_refused_within_clock_drift_of_lease_end() -> None:
    eng = leader(now=10.0)
    commit_blank(eng, send_time=10.5)
    eng.now = 10.5 + LEASE - 0.05  # lease - drift has passed; still leader
    r = object()
    eng.ensure_linearizable(LEASE_READ, r)
    assert out(eng) == [Responded(r, Raises(QuorumNotEnough))]
    assert eng.is_leader


def test_lease_read_with_expired_lease_responds_quorum_not_enough() -> None:
    eng = leader(now=10.0)
    commit_blank(eng, send_time=10.5)
    eng.now = 10.5 + LEASE + 1.0
    r = object()
    eng.ensure_linearizable(LEASE_READ, r)
    assert out(eng) == [Responded(r, Raises(QuorumNotEnough))]


def test_lease_read_waits_for_the_blank_entry() -> None:
    eng = leader(now=10.0)
    eng.now = 10.2
    r = object()
    eng.ensure_linearizable(LEASE_READ, r)
    assert out(eng) == []
    flush_own_log(eng)
    eng.handle_replication_progress(2, V, 1, NOOP, 10.3)
    assert out(eng)[-1] == Responded(r, NOOP)


def test_read_on_follower_responds_forward_to_leader() -> None:
    eng = follower(vote=vote(2, 2, committed=True))
    eng.handle_append_entries(AppendEntriesRequest(eng.vote, None, (), None), object())
    eng.take_output()
    for policy in (READ_INDEX, LEASE_READ):
        r = object()
        eng.ensure_linearizable(policy, r)
        assert out(eng) == [
            Responded(r, Raises(ForwardToLeader, {"leader_id": 2, "leader_node": Node("n2")}))
        ]


def test_pending_reads_fail_when_leader_steps_down_for_higher_vote() -> None:
    eng = leader(now=10.0)
    commit_blank(eng, send_time=10.5)
    eng.now = 12.0
    r = object()
    eng.ensure_linearizable(READ_INDEX, r)
    out(eng)
    higher = vote(3, 3, committed=True)
    eng.handle_heartbeat_ack(2, V, 12.1, higher)
    assert out(eng) == [
        QuitLeader(3, lid(2, 1, 1)),
        Responded(r, Raises(ForwardToLeader, {"leader_id": 3, "leader_node": Node("n3")})),
        SaveVote(higher),
    ]


def test_pending_reads_fail_when_check_quorum_steps_down() -> None:
    eng = leader(now=10.0)
    eng.now = 10.5
    r = object()
    eng.ensure_linearizable(READ_INDEX, r)
    out(eng)
    eng.tick(10.0 + LEASE)
    assert out(eng) == [
        QuitLeader(None, INIT_LOG_ID),
        Responded(r, Raises(ForwardToLeader, {"leader_id": None})),
    ]


# -- the lease and leader transfer (PROTOCOL-NOTES "Reads") ----------------------------------


def test_a_leader_that_starts_a_transfer_gives_up_its_lease_and_reads_by_read_index() -> None:
    eng = leader(now=10.0)
    commit_blank(eng, send_time=10.0)
    eng.now = 10.1
    r1 = object()
    eng.ensure_linearizable(LEASE_READ, r1)
    assert out(eng) == [Responded(r1, NOOP)]  # the lease holds
    eng.transfer_leader(2)
    out(eng)
    r2 = object()
    eng.ensure_linearizable(LEASE_READ, r2)
    # Not served from the lease: a quorum round confirms leadership, as for READ_INDEX.
    assert out(eng) == [SendHeartbeat(1)]
    eng.handle_heartbeat_ack(3, V, 10.1, V, 1)
    assert out(eng) == [Responded(r2, NOOP)]


def test_after_a_timed_out_transfer_later_acks_do_not_bring_the_lease_back() -> None:
    eng = leader(now=10.0)
    commit_blank(eng, send_time=10.0)
    eng.transfer_leader(3)
    out(eng)
    deadline = 10.0 + eng.config.election_timeout_max
    eng.now = deadline - 0.01  # acks to heartbeats sent during the transfer
    eng.handle_heartbeat_ack(2, V, eng.now, V)
    eng.handle_heartbeat_ack(3, V, eng.now, V)
    eng.tick(deadline)  # the target never took over: lead on
    assert eng.leader is not None
    assert eng.leader.transfer_to is None
    eng.handle_heartbeat_ack(2, V, deadline, V)  # and acks after it resumed
    out(eng)
    r = object()
    eng.ensure_linearizable(LEASE_READ, r)
    assert out(eng) == [SendHeartbeat(1)]
    assert not eng.lease_valid()
