"""The simulator catches real protocol bugs: each test breaks one Raft rule in the Engine
and checks that a seeded run reports the violation it causes (a checker that cannot fail
would pass these runs)."""

from __future__ import annotations

import pytest

from openraft_trio._engine import following_handler, leader_handler, vote_handler
from openraft_trio.testing.sim import run_simulation


def violation_kinds(seeds: int = 12) -> set[str]:
    """Kinds of violation found by the first of ``seeds`` seeded runs that finds any."""
    for seed in range(seeds):
        result = run_simulation(seed, nodes=5, duration=10.0)
        if result.violations:
            return {v.kind for v in result.violations}
    return set()


def test_granting_votes_without_the_log_check_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    # §5.4.1 broken: every candidate's log counts as up to date.
    monkeypatch.setattr(vote_handler, "log_id_ge", lambda a, b: True)
    assert "leader completeness" in violation_kinds()


def test_committing_without_a_quorum_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    def own_flush_only(self: leader_handler.LeaderHandler) -> int:
        own = self.flushed.log_id if self.flushed is not None else None
        return -1 if own is None else own.index

    monkeypatch.setattr(leader_handler.LeaderHandler, "_quorum_index", own_flush_only)
    kinds = violation_kinds()
    assert {"state machine safety", "acknowledged write lost"} <= kinds


def test_skipping_the_consistency_check_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(following_handler.FollowingHandler, "_prev_matches", lambda s, r: True)
    assert violation_kinds()


def test_log_reversion_judged_on_a_stream_older_than_the_ack_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Judge every conflict against the latest ``matching``, as if each request had left
    # after it: a reordered pipelined request then looks like a reverted log, and the leader
    # halts replication to a healthy follower.
    judge = leader_handler.LeaderHandler.handle_replication_conflict

    def naive(self: leader_handler.LeaderHandler, target: int, vote, epoch: int, *rest) -> None:
        p = self.leader.progress.get(target) if self.leader is not None else None
        if p is not None and p.epoch == epoch:
            p.stream_start_matching = p.matching
        judge(self, target, vote, epoch, *rest)

    monkeypatch.setattr(leader_handler.LeaderHandler, "handle_replication_conflict", naive)
    assert "log reversion" in violation_kinds()


def test_clock_skew_beyond_the_documented_bound_is_reported() -> None:
    """Lease reads are safe only while clock rates differ by less than
    lease_clock_drift / election_timeout_max (3.3 % by default). Skew far past it is a fault
    the simulator must report as a stale read on some seed: a check that cannot see it
    could not see a broken lease either. (Within the bound, every CI seed passes.)"""
    from openraft_trio.testing.sim import FaultPlan

    for seed in range(16):
        result = run_simulation(seed, nodes=5, duration=10.0, faults=FaultPlan(clock_skew=0.2))
        if result.violations:
            assert {v.kind for v in result.violations} == {"linearizability"}
            return
    raise AssertionError("20 % clock skew gave no violation in 16 seeds")


def test_a_leader_that_keeps_its_lease_through_a_transfer_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Issue 11, defect 1 re-introduced: the transfer no longer gives the lease up.
    start = leader_handler.LeaderHandler.transfer_leader

    def keep_lease(self: leader_handler.LeaderHandler, to: int) -> None:
        start(self, to)
        if self.leader is not None:
            self.leader.lease_given_up = False

    monkeypatch.setattr(leader_handler.LeaderHandler, "transfer_leader", keep_lease)
    assert "linearizability" in violation_kinds(seeds=16)


def test_elect_inside_the_nodes_own_lease_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    # Issue 11, defect 2 re-introduced: elect() ignores the node's own lease.
    def elect(self: vote_handler.VoteHandler) -> None:
        if self.is_voter and self.leader is None:
            self._start_pre_vote()

    monkeypatch.setattr(vote_handler.VoteHandler, "elect", elect)
    assert "linearizability" in violation_kinds()


def test_a_restarted_majority_without_the_startup_lease_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Issue 11, defect 3 re-introduced: a restarted node grants votes at once.
    from openraft_trio._engine import engine

    startup = engine.Engine.startup

    def no_lease(self: engine.Engine, **kw: object) -> None:
        startup(self, **kw)  # type: ignore[arg-type]
        self.leader_seen_time = None
        self.reset_election_timer()

    monkeypatch.setattr(engine.Engine, "startup", no_lease)
    assert "linearizability" in violation_kinds()
