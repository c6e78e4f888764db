"""Snapshots and compaction in the Engine (PROTOCOL-NOTES "Snapshots"; Raft §7)."""

from __future__ import annotations

import attrs
import pytest

import openraft_trio as raft
from openraft_trio._engine.commands import BuildSnapshot, InstallSnapshot, PurgeLog, TruncateLog
from openraft_trio._messages import InstallSnapshotResponse
from openraft_trio._types import Snapshot, SnapshotMeta, StoredMembership

from ._engine_helpers import (
    CONFIG,
    INIT_LOG_ID,
    M123,
    Responded,
    follower,
    lid,
    membership,
    out,
    vote,
)

POLICY = attrs.evolve(CONFIG, snapshot_policy=10, max_in_snapshot_log_to_keep=3)
LOG = [INIT_LOG_ID] + [lid(1, 2, i) for i in range(1, 21)]
V = vote(1, 2, committed=True)


def f(**kw):
    kw.setdefault("vote", V)
    kw.setdefault("log", LOG)
    kw.setdefault("committed", LOG[-1])
    return follower(config=POLICY, **kw)


def meta(last) -> SnapshotMeta:
    return SnapshotMeta(last, StoredMembership(INIT_LOG_ID, M123), "s")


def test_policy_asks_for_a_snapshot_every_n_applied_entries_one_at_a_time() -> None:
    # Committed up to 15, nothing applied yet: the state machine catches up in steps.
    eng = follower(config=POLICY, vote=V, log=LOG, committed=LOG[15], applied=None)
    eng.on_applied(LOG[5])
    assert eng.take_output() == []  # 6 entries since none: not yet
    eng.on_applied(LOG[10])
    assert eng.take_output() == [BuildSnapshot()]
    eng.on_applied(LOG[15])
    assert eng.take_output() == []  # one build in flight


def test_built_snapshot_purges_keeping_the_configured_tail() -> None:
    eng = f()
    eng.maybe_build_snapshot(force=True)
    eng.take_output()
    eng.on_snapshot_built(meta(LOG[20]))
    assert eng.take_output() == [PurgeLog(LOG[17])]  # keep 3 snapshotted entries
    assert eng.log_ids.purged == LOG[17]
    assert eng.snapshot_last_log_id == LOG[20]


def test_purge_never_goes_beyond_the_snapshot() -> None:
    eng = f()
    eng.purge_log(15)
    assert eng.take_output() == []  # no snapshot yet: nothing may be purged
    eng.maybe_build_snapshot(force=True)
    eng.take_output()
    eng.on_snapshot_built(meta(LOG[12]))
    eng.take_output()
    eng.purge_log(100)
    assert eng.take_output() == [PurgeLog(LOG[12])]


def test_install_of_an_older_snapshot_is_acknowledged_and_ignored() -> None:
    eng = f()
    r = object()
    eng.handle_install_snapshot(V, Snapshot(meta(LOG[10]), b""), r)
    assert out(eng) == [Responded(r, InstallSnapshotResponse(V))]


def test_install_newer_snapshot_then_align_log_and_answer_after_installed() -> None:
    eng = f(log=LOG[:6], committed=LOG[3])  # has 0..5, committed 3
    r = object()
    snap = Snapshot(meta(LOG[15]), b"data")
    eng.handle_install_snapshot(V, snap, r)
    [install] = eng.take_output()
    assert isinstance(install, InstallSnapshot)
    assert install.snapshot is snap
    eng.on_snapshot_installed(snap.meta)
    # Our log ends before the snapshot: discard it, the snapshot's last id is the new base.
    assert out(eng) == [
        TruncateLog(None),
        PurgeLog(LOG[15]),
        Responded(r, InstallSnapshotResponse(V)),
    ]
    assert eng.committed == LOG[15]
    assert eng.last_applied == LOG[15]
    assert eng.log_ids.last == LOG[15]


def test_install_keeps_a_matching_log_suffix() -> None:
    eng = f(committed=LOG[3])  # has 0..20, committed 3
    snap = Snapshot(meta(LOG[10]), b"data")
    eng.handle_install_snapshot(V, snap, object())
    eng.take_output()
    eng.on_snapshot_installed(snap.meta)
    cmds = eng.take_output()
    assert cmds[0] == PurgeLog(LOG[10])
    assert eng.log_ids.last == LOG[20]  # entries after the snapshot stay
    assert eng.committed == LOG[10]


def test_a_stale_leader_cannot_install() -> None:
    eng = f(vote=vote(3, 3, committed=True))
    r = object()
    eng.handle_install_snapshot(V, Snapshot(meta(LOG[20]), b""), r)
    assert out(eng) == [Responded(r, InstallSnapshotResponse(vote(3, 3, committed=True)))]


def test_an_installed_snapshot_brings_its_membership() -> None:
    """The snapshot covers the last membership: a node that missed that change (its log
    ends before it) takes it from the snapshot, as its committed and effective one."""
    eng = f(log=LOG[:6], committed=LOG[3])  # membership {1,2,3} from INIT_LOG_ID
    changed = StoredMembership(LOG[12], membership({1, 2, 4}, learners=(3,)))
    snap = Snapshot(SnapshotMeta(LOG[15], changed, "s"), b"data")
    eng.handle_install_snapshot(V, snap, object())
    eng.take_output()
    eng.on_snapshot_installed(snap.meta)
    eng.take_output()
    assert eng.membership.committed == changed
    assert eng.membership.effective == changed
    assert eng.membership.membership.voter_ids == {1, 2, 4}


def test_policy_waits_longer_after_a_larger_snapshot() -> None:
    # One entry per 10 bytes of the last snapshot, at least 10 entries.
    policy = raft.SnapshotPolicy(logs_since_last=10, snapshot_bytes_per_log=10)
    eng = follower(
        config=attrs.evolve(CONFIG, snapshot_policy=policy, max_in_snapshot_log_to_keep=3),
        vote=V,
        log=LOG,
        committed=LOG[20],
        applied=None,
    )
    eng.on_applied(LOG[1])
    eng.maybe_build_snapshot(force=True)
    assert eng.take_output() == [BuildSnapshot()]
    eng.on_snapshot_built(meta(LOG[1]), 150)  # 150 bytes: the next one waits 15 entries
    eng.take_output()
    eng.on_applied(LOG[11])
    assert eng.take_output() == []  # 10 entries since: enough for logs_since_last alone
    eng.on_applied(LOG[15])
    assert eng.take_output() == []  # 14 since
    eng.on_applied(LOG[16])
    assert eng.take_output() == [BuildSnapshot()]  # 15 since


def test_an_installed_snapshot_sets_the_size_the_policy_scales_with() -> None:
    policy = raft.SnapshotPolicy(logs_since_last=2, snapshot_bytes_per_log=1)
    config = attrs.evolve(CONFIG, snapshot_policy=policy)
    eng = follower(config=config, vote=V, log=LOG[:6], committed=LOG[3], applied=None)
    snap = Snapshot(meta(LOG[10]), b"x" * 8)
    eng.handle_install_snapshot(V, snap, object())
    eng.take_output()
    eng.on_snapshot_installed(snap.meta, len(snap.data))
    eng.take_output()
    assert eng.io.snapshot == LOG[10]
    assert eng.io.snapshot_bytes == 8  # the next build waits 8 entries, not 2
    assert policy.logs_between(eng.io.snapshot_bytes) == 8


def test_an_int_policy_keeps_a_fixed_interval_whatever_the_size() -> None:
    policy = raft.Config(snapshot_policy=10).snapshot_policy
    assert policy == raft.SnapshotPolicy(10, snapshot_bytes_per_log=None)
    assert policy.logs_between(10**9) == 10
    default = raft.Config().snapshot_policy
    assert default == raft.SnapshotPolicy(5000, snapshot_bytes_per_log=64)
    assert default.logs_between(64 * 5000) == 5000
    assert default.logs_between(64 * 100_000) == 100_000


@pytest.mark.parametrize(
    "policy",
    [
        raft.SnapshotPolicy(0),
        raft.SnapshotPolicy(10, snapshot_bytes_per_log=0),
        raft.SnapshotPolicy(10, snapshot_bytes_per_log=True),  # type: ignore[arg-type]
        raft.SnapshotPolicy(10, snapshot_bytes_per_log=1.5),  # type: ignore[arg-type]
    ],
)
def test_a_bad_policy_is_refused_naming_the_field(policy: raft.SnapshotPolicy) -> None:
    with pytest.raises(raft.ConfigError, match="snapshot_policy"):
        raft.Config(snapshot_policy=policy).validate()
