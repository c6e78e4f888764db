"""Each safety invariant of the simulator's checker fires on a state that breaks it."""

from __future__ import annotations

import math
from types import SimpleNamespace

from openraft_trio import Config
from openraft_trio._engine.commands import IOId
from openraft_trio._engine.io_state import IOState
from openraft_trio._engine.log_ids import LogIdList
from openraft_trio._engine.state import ProgressEntry
from openraft_trio._types import LeaderId, LogId, Membership, ServerState, StoredMembership, Vote
from openraft_trio.testing.sim import InvariantChecker


def lid(term: int, node: int, index: int) -> LogId:
    return LogId(LeaderId(term, node), index)


def log(*ids: LogId) -> LogIdList:
    out = LogIdList()
    for i in ids:
        out.append(i)
    return out


def core(
    node: int,
    ids: LogIdList,
    *,
    term: int,
    leader: bool = False,
    committed: LogId | None = None,
    applied: LogId | None = None,
    progress: dict[int, ProgressEntry] | None = None,
    vote: Vote | None = None,
    flushed: LogId | str | None = "last",
    snapshot: LogId | None = None,
    membership: StoredMembership | None = None,
    now: float = 0.0,
    quorum_ack_time: float = 0.0,
) -> SimpleNamespace:
    """A fake RaftCore with just what the checker reads. By default the whole log is
    flushed and the committed membership is the empty initial one."""
    vote = vote or Vote(LeaderId(term, node if leader else None), committed=leader)
    flushed_id = ids.last if flushed == "last" else flushed
    assert not isinstance(flushed_id, str)
    engine = SimpleNamespace(
        id=node,
        log_ids=ids,
        committed=committed,
        last_applied=applied,
        server_state=ServerState.LEADER if leader else ServerState.FOLLOWER,
        vote=vote,
        leader=(
            SimpleNamespace(progress=progress or {}, check_quorum_grace_until=-math.inf)
            if leader
            else None
        ),
        config=Config(),
        now=now,
        quorum_ack_time=lambda: quorum_ack_time,
        snapshot_last_log_id=snapshot,
        io=IOState(
            flushed=IOId(vote, flushed_id),
            committed=committed,
            apply_requested=committed,
            applied=applied,
            snapshot=snapshot,
        ),
        membership=SimpleNamespace(committed=membership or StoredMembership()),
    )
    return SimpleNamespace(engine=engine)


def kinds(checker: InvariantChecker) -> list[str]:
    return [v.kind for v in checker.violations]


A, B = lid(1, 1, 0), lid(1, 1, 1)


def test_clean_states_raise_nothing() -> None:
    c = InvariantChecker(0, lambda: 0.0)
    c.observe(core(1, log(A, B), term=1, leader=True, committed=B, applied=A))
    c.observe(core(2, log(A, B), term=1, committed=B, applied=B))
    c.final_check()
    assert c.violations == []


def test_a_leader_finding_a_reverted_log_is_reported_once() -> None:
    c = InvariantChecker(0, lambda: 0.0)
    reverted = {2: ProgressEntry(log_reversions=1, reverted_to=0, halted=True)}
    for _ in range(3):
        c.observe(core(1, log(A), term=1, leader=True, progress=reverted))
    assert kinds(c) == ["log reversion"]
    assert "node 2's log reverted" in str(c.violations[0])


def test_two_leaders_in_one_term_break_election_safety() -> None:
    c = InvariantChecker(7, lambda: 1.5)
    c.observe(core(1, log(A), term=1, leader=True))
    c.observe(core(2, log(A), term=1, leader=True))
    assert kinds(c) == ["election safety"]
    v = c.violations[0]
    assert (v.seed, v.time) == (7, 1.5)
    assert "two leaders" in str(v)


def test_applied_beyond_committed() -> None:
    c = InvariantChecker(0, lambda: 0.0)
    c.observe(core(1, log(A, B), term=1, committed=A, applied=B))
    assert kinds(c) == ["applied > committed"]


def test_committed_index_moving_backwards() -> None:
    c = InvariantChecker(0, lambda: 0.0)
    c.observe(core(1, log(A, B), term=1, committed=B))
    c.observe(core(1, log(A, B), term=1, committed=A))
    assert kinds(c) == ["committed regressed"]


def test_different_entries_committed_at_one_index() -> None:
    c = InvariantChecker(0, lambda: 0.0)
    c.observe(core(1, log(A, B), term=1, committed=B))
    c.observe(core(2, log(A, lid(2, 2, 1)), term=2, committed=lid(2, 2, 1)))
    assert "state machine safety" in kinds(c)


def test_leader_rewriting_its_log_breaks_append_only() -> None:
    c = InvariantChecker(0, lambda: 0.0)
    ids = log(A, B)
    c.observe(core(1, ids, term=1, leader=True))
    ids.truncate_after(A)
    ids.append(LogId(LeaderId(1, 9), 1))
    c.observe(core(1, ids, term=1, leader=True))
    assert "leader append-only" in kinds(c)


def test_new_leader_without_a_committed_entry_breaks_completeness() -> None:
    c = InvariantChecker(0, lambda: 0.0)
    c.observe(core(1, log(A, B), term=1, committed=B))
    c.observe(core(2, log(A), term=2, leader=True))
    assert "leader completeness" in kinds(c)


def test_logs_sharing_an_entry_but_differing_before_break_log_matching() -> None:
    c = InvariantChecker(0, lambda: 0.0)
    c.observe(core(1, log(A, lid(1, 1, 1), lid(3, 3, 2)), term=3))
    c.observe(core(2, log(A, lid(2, 2, 1), lid(3, 3, 2)), term=3))
    assert "log matching" in kinds(c)


def test_an_acknowledged_write_that_is_not_committed_is_lost() -> None:
    c = InvariantChecker(0, lambda: 0.0)
    c.acknowledged(B)
    c.observe(core(1, log(A, lid(2, 2, 1)), term=2, committed=lid(2, 2, 1)))
    assert kinds(c) == ["acknowledged write lost"]
    c2 = InvariantChecker(0, lambda: 0.0)
    c2.acknowledged(B)
    c2.final_check()
    assert kinds(c2) == ["acknowledged write lost"]


def test_purging_beyond_the_snapshot_is_caught() -> None:
    c = InvariantChecker(0, lambda: 0.0)
    ids = log(A, B, lid(1, 1, 2))
    ids.purge(B)
    c.observe(core(1, ids, term=1))  # purged B with no snapshot at all
    assert kinds(c) == ["purged beyond snapshot"]


def test_a_second_granted_vote_in_one_term_is_caught_across_restarts() -> None:
    c = InvariantChecker(0, lambda: 0.0)
    c.observe(core(1, log(A), term=3, vote=Vote(LeaderId(3, 2))))
    c.node_down(1)  # a restart does not forget what was voted
    c.observe(core(1, log(A), term=3, vote=Vote(LeaderId(3, 3))))
    assert kinds(c) == ["two votes in a term"]


def test_following_the_elected_leader_of_a_term_is_not_a_second_vote() -> None:
    c = InvariantChecker(0, lambda: 0.0)
    c.observe(core(1, log(A), term=3, vote=Vote(LeaderId(3, 2))))
    c.observe(core(1, log(A), term=3, vote=Vote(LeaderId(3, 3), committed=True)))
    assert c.violations == []


def test_committed_beyond_flushed_is_caught_unless_a_snapshot_covers_it() -> None:
    c = InvariantChecker(0, lambda: 0.0)
    c.observe(core(1, log(A, B), term=1, committed=B, flushed=A))
    assert kinds(c) == ["committed > flushed"]
    c2 = InvariantChecker(0, lambda: 0.0)
    c2.observe(core(1, log(A, B), term=1, committed=B, applied=B, flushed=A, snapshot=B))
    assert c2.violations == []


def test_snapshot_beyond_applied_is_caught() -> None:
    c = InvariantChecker(0, lambda: 0.0)
    c.observe(core(1, log(A, B), term=1, committed=B, applied=A, snapshot=B))
    assert kinds(c) == ["snapshot > applied"]


M1 = Membership(configs=[{1, 2, 3}])
M2 = Membership(configs=[{1, 2, 4}])


def test_two_memberships_committed_at_one_log_id_break_agreement() -> None:
    c = InvariantChecker(0, lambda: 0.0)
    c.observe(core(1, log(A, B), term=1, committed=B, membership=StoredMembership(B, M1)))
    c.observe(core(2, log(A, B), term=1, committed=B, membership=StoredMembership(B, M2)))
    assert kinds(c) == ["membership agreement"]


def test_a_node_past_a_committed_membership_that_kept_an_older_one_is_caught() -> None:
    """What a node that installed a snapshot without adopting its membership looks like."""
    c = InvariantChecker(0, lambda: 0.0)
    c.observe(core(1, log(A, B), term=1, committed=B, membership=StoredMembership(B, M2)))
    for _ in range(2):
        c.observe(core(2, log(A, B), term=1, committed=B, membership=StoredMembership(A, M1)))
    assert kinds(c) == ["membership not adopted"]


def test_a_leader_past_its_lease_that_still_leads_breaks_check_quorum() -> None:
    lease = Config().lease
    slack = Config().heartbeat_interval
    c = InvariantChecker(0, lambda: 0.0)
    c.observe(core(1, log(A), term=1, leader=True, now=10.0 + lease + 0.001, quorum_ack_time=10.0))
    c.observe(core(1, log(A), term=1, leader=True, now=10.0 + lease + slack, quorum_ack_time=10.0))
    assert c.violations == []  # the tick that deposes it may still be on its way
    for _ in range(2):
        c.observe(core(1, log(A), term=1, leader=True, now=10.0 + lease + 2 * slack, quorum_ack_time=10.0))
    assert kinds(c) == ["check-quorum"]


def test_a_committed_write_reported_of_unknown_outcome_is_caught() -> None:
    c = InvariantChecker(0, lambda: 0.0)
    c.observe(core(1, log(A, B), term=1, leader=True, committed=A))
    c.observe(core(1, log(A, B), term=1, committed=B))  # committed B and stepped down
    c.reported_unknown(lid(1, 1, 2), 1)  # not committed: unknown is right
    assert c.violations == []
    c.reported_unknown(B, 1)
    assert kinds(c) == ["committed write reported unknown"]


def test_a_write_committed_elsewhere_after_its_leader_was_cut_off_may_be_unknown() -> None:
    c = InvariantChecker(0, lambda: 0.0)
    c.observe(core(1, log(A, B), term=1, leader=True, committed=A))
    c.observe(core(2, log(A, B), term=2, leader=True, committed=B))  # a new leader commits B
    c.observe(core(1, log(A, B), term=2, committed=A))  # 1 learns of term 2, B not known
    c.reported_unknown(B, 1)
    assert c.violations == []
