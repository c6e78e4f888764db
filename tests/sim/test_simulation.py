"""The simulator: seeded runs are safe, live, linearizable and bit-for-bit replayable."""

from __future__ import annotations

import subprocess
import sys

import attrs
import pytest

from openraft_trio.testing.sim import FaultPlan, run_simulation


@pytest.mark.parametrize("seed", range(4))
def test_short_runs_with_every_fault_are_clean(seed: int) -> None:
    result = run_simulation(seed, nodes=5, duration=8.0)
    assert result.ok, "\n".join(map(str, result.violations))
    assert result.linearizability is not None
    assert result.linearizability.outcome.name == "OK"
    s = result.stats
    assert s.writes_acked > 0
    assert s.reads_ok > 0
    assert s.faults_injected > 0
    assert s.commits > s.writes_acked  # every ack is a commit (plus blanks, membership)


def test_a_seed_always_gives_the_same_trace_hash() -> None:
    a = run_simulation(11, nodes=5, duration=5.0)
    b = run_simulation(11, nodes=5, duration=5.0)
    assert a.trace_hash == b.trace_hash
    assert a.history == b.history
    assert a.stats.messages == b.stats.messages
    c = run_simulation(12, nodes=5, duration=5.0)
    assert c.trace_hash != a.trace_hash


def test_a_seed_gives_the_same_trace_hash_in_a_fresh_process() -> None:
    code = (
        "from openraft_trio.testing.sim import run_simulation;"
        "print(run_simulation(11, nodes=5, duration=5.0).trace_hash)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    ).stdout.strip()
    assert out == run_simulation(11, nodes=5, duration=5.0).trace_hash


def test_healthy_cluster_without_faults() -> None:
    result = run_simulation(3, nodes=3, duration=5.0, faults=FaultPlan.none())
    assert result.ok, result.violations
    assert result.stats.writes_acked > 0
    assert result.stats.reads_ok > 0
    assert result.stats.faults_injected == 0
    assert result.stats.writes_unknown == 0
    assert result.stats.elections == 1


def test_fault_plan_is_validated() -> None:
    with pytest.raises(ValueError, match="drop_rate"):
        FaultPlan(drop_rate=2.0).validate()
    with pytest.raises(ValueError, match="latency"):
        run_simulation(0, duration=1.0, faults=FaultPlan(latency=(0.01, 0.001)))


# Seeds whose 15 s complete two membership changes each (most seeds of this plan complete
# none in 15 s: the test must not pick those); in 1001 a learner is also removed.
@pytest.mark.parametrize(
    ("seed", "also_seen"), [(1001, {"remove-learner"}), (1009, set[str]())]
)
def test_membership_churn_under_faults_is_clean(seed: int, also_seen: set[str]) -> None:
    result = run_simulation(
        seed,
        nodes=5,
        duration=15.0,
        # The membership nemesis only: the leadership faults would take half of its turns.
        faults=FaultPlan(membership_changes=True, leadership=False),
        keep_trace=True,
    )
    assert result.ok, "\n".join(map(str, result.violations))
    kinds = {e[2] for e in result.trace if e[1] == "fault"}
    assert "change-membership" in kinds
    assert also_seen <= kinds
    # Changes were not only attempted: some completed, and the cluster served clients
    # meanwhile (a run in which every change or every operation fails proves nothing).
    s = result.stats
    assert s.membership_changes_ok > 0
    assert s.writes_acked > 0
    assert s.reads_ok > 0


def test_durable_storage_survives_power_cuts_that_tear_writes() -> None:
    # storage="file": FileLogStore + durable KvStateMachine on a CrashFS per node, fsyncs
    # completing a random delay after they are issued; a crash keeps a random prefix of
    # each file's unsynced bytes and the restart runs recovery. Seed 229 (30 s) has a
    # power cut mid-fsync that tears a record; seed 202 runs with frequent snapshots. The
    # tearing seed moves when the schedules change: 201 tore until snapshots were built
    # beside apply, 212 until issue 14's write path, 238 until the KV workload wrote in
    # client sessions (issue 16; of seeds 201-260, 229, 234 and 246 tear now).
    # Both seeds run the crash/partition nemesis without the leadership faults, as when the
    # scenario was found: the seeds' power cuts are what the test is about.
    plain = FaultPlan(storage="file", leadership=False, snapshot_every=None)
    runs = [(229, plain), (202, attrs.evolve(plain, snapshot_every=50))]
    counts = []
    for seed, plan in runs:
        result = run_simulation(seed, nodes=5, duration=30.0, faults=plan)
        assert result.ok, "\n".join(map(str, result.violations))
        assert result.linearizability is not None
        assert result.linearizability.outcome.name == "OK"
        assert result.stats.fault_counts.get("restart", 0) > 0
        assert result.stats.writes_acked > 0
        assert result.stats.reads_ok > 0
        counts.append(result.stats.fault_counts.get("torn-tail-cut", 0))
    assert counts[0] > 0, "the power cut of seed 229 no longer tears a write"
    with pytest.raises(ValueError, match="storage"):
        FaultPlan(storage="disk").validate()


def test_clock_skew_beyond_the_documented_bound_is_reported() -> None:
    """Lease reads are safe only while clock rates differ by less than
    lease_clock_drift / election_timeout_max (3.3 % by default). Skew far past it is a fault
    the simulator must report as a stale read on some seed: a check that cannot see it
    could not see a broken lease either. (Within the bound, every CI seed passes.)

    30 % skew: since a follower extends its election deadline by the timeout it drew when
    it began following (issue 14) instead of re-drawing it on every append, 20 % skew no
    longer gave a stale read in seeds 0-63; 30 % gives one in seeds 5, 6 and 15."""
    for seed in range(16):
        result = run_simulation(seed, nodes=5, duration=10.0, faults=FaultPlan(clock_skew=0.3))
        if result.violations:
            # The stale read; with it, maybe the same skew seen as a leader that outlives
            # its lease by true time (check-quorum): a slow clock is what both are.
            kinds = {v.kind for v in result.violations}
            assert "linearizability" in kinds
            assert kinds <= {"linearizability", "check-quorum"}
            return
    raise AssertionError("30 % clock skew gave no violation in 16 seeds")
