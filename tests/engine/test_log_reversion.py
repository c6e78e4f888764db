"""Log reversion (PROTOCOL-NOTES "Replication"; openraft ``allow_log_reversion``): a target
that lacks an entry at or below what it acknowledged lost its log. The leader reports it
once, stops counting the target toward the commit quorum, and halts its stream — or, with
``Config.allow_log_reversion``, replicates it again from the target's hint.

A conflict proves a reversion only on a stream started after ``matching`` was known: a
pipelined request of the same stream may have reached the target before the request whose
acknowledgement raised ``matching`` (a reordering network)."""

from __future__ import annotations

import attrs

from openraft_trio._engine.commands import AppendEntries, Replicate, ReportLogReversion
from openraft_trio._types import Entry, Normal

from ._engine_helpers import (
    CONFIG,
    INIT_LOG_ID,
    commit_blank,
    flush_own_log,
    leader,
    lid,
    out,
    progress_of,
    vote,
)

V = vote(2, 1, committed=True)  # the leader's vote in these tests
NOOP = lid(2, 1, 1)
ALLOW = attrs.evolve(CONFIG, allow_log_reversion=True)


def restart_at_matching(eng, target: int = 2) -> None:
    """``target`` acknowledged NOOP on stream 1, then a conflict on a pipelined request of
    that stream (it proves nothing) restarted its stream at NOOP: stream 2."""
    eng.handle_replication_progress(target, V, 1, NOOP, 0.5)
    eng.take_output()
    eng.handle_replication_conflict(target, V, 1, NOOP, 0, 0.6)
    assert out(eng) == [Replicate(target, 2, NOOP, NOOP, eng.committed)]


def test_conflict_on_a_stream_started_before_the_ack_is_not_a_reversion() -> None:
    # A reordered pipelined request: the target may have seen it before the one it acked.
    eng = leader()
    commit_blank(eng)
    eng.handle_replication_conflict(2, V, 1, NOOP, 0, 0.6)
    assert out(eng) == [Replicate(2, 2, NOOP, NOOP, NOOP)]
    assert progress_of(eng, 2).matching == NOOP
    assert progress_of(eng, 2).log_reversions == 0


def test_conflict_at_matching_on_a_later_stream_halts_replication_to_the_target() -> None:
    eng = leader()
    commit_blank(eng)
    restart_at_matching(eng)
    eng.handle_replication_conflict(2, V, 2, NOOP, 0, 0.7)
    assert out(eng) == [ReportLogReversion(2, NOOP, 0, allowed=False)]
    p = progress_of(eng, 2)
    assert (p.matching, p.log_reversions, p.reverted_to, p.halted) == (None, 1, 0, True)


def test_conflict_above_start_matching_backs_up_to_matching_and_the_next_one_proves_it() -> None:
    log = [INIT_LOG_ID, *(lid(1, 2, i) for i in range(1, 10))]
    eng = leader(log=log, committed=INIT_LOG_ID)
    eng.handle_replication_progress(2, V, 1, lid(1, 2, 6), 0.5)
    eng.handle_replication_conflict(2, V, 1, lid(2, 1, 10), 2, 0.6)
    eng.take_output()
    eng.handle_replication_conflict(2, V, 2, lid(2, 1, 10), 2, 0.7)  # above 6: back up
    assert out(eng) == [Replicate(2, 3, lid(1, 2, 6), lid(2, 1, 10), INIT_LOG_ID)]
    eng.handle_replication_conflict(2, V, 3, lid(1, 2, 6), 2, 0.8)
    assert out(eng) == [ReportLogReversion(2, lid(1, 2, 6), 2, allowed=False)]


def test_halted_target_gets_no_more_replication_and_its_replies_are_ignored() -> None:
    eng = leader()
    commit_blank(eng)
    restart_at_matching(eng)
    eng.handle_replication_conflict(2, V, 2, NOOP, 0, 0.7)
    eng.take_output()
    [a] = eng.client_write([Normal("x")])
    assert out(eng) == [
        AppendEntries(V, (Entry(a, Normal("x")),)),
        Replicate(3, 1, INIT_LOG_ID, a, NOOP),
    ]
    eng.handle_replication_progress(2, V, 2, NOOP, 0.8)  # a late reply of the old stream
    eng.handle_replication_conflict(2, V, 2, NOOP, 0, 0.8)  # reported once only
    assert out(eng) == []
    assert progress_of(eng, 2).matching is None
    assert progress_of(eng, 2).log_reversions == 1


def test_reverted_target_no_longer_counts_toward_commit() -> None:
    # 2 acknowledged the blank entry, then lost it before the leader's own flush: only the
    # leader holds it, so it must not commit.
    eng = leader()
    restart_at_matching(eng)
    eng.handle_replication_conflict(2, V, 2, NOOP, 0, 0.7)
    eng.take_output()
    flush_own_log(eng)
    assert out(eng) == []
    assert eng.committed == INIT_LOG_ID


def test_with_allow_log_reversion_a_wiped_target_is_replicated_from_scratch() -> None:
    eng = leader(config=ALLOW)
    commit_blank(eng)
    restart_at_matching(eng)
    eng.handle_replication_conflict(2, V, 2, NOOP, 0, 0.7)
    assert out(eng) == [
        ReportLogReversion(2, NOOP, 0, allowed=True),
        Replicate(2, 3, None, NOOP, NOOP),
    ]
    p = progress_of(eng, 2)
    assert (p.matching, p.log_reversions, p.reverted_to, p.halted) == (None, 1, 0, False)
    eng.handle_replication_progress(2, V, 3, NOOP, 0.8)
    assert p.matching == NOOP


def test_with_allow_log_reversion_a_target_restored_from_a_backup_resumes_at_its_hint() -> None:
    log = [INIT_LOG_ID, *(lid(1, 2, i) for i in range(1, 10))]
    eng = leader(log=log, committed=INIT_LOG_ID, config=ALLOW)
    eng.handle_replication_progress(2, V, 1, lid(2, 1, 10), 0.5)
    eng.handle_replication_conflict(2, V, 1, lid(2, 1, 10), 4, 0.6)
    eng.take_output()
    eng.handle_replication_conflict(2, V, 2, lid(2, 1, 10), 4, 0.7)
    assert out(eng) == [
        ReportLogReversion(2, lid(2, 1, 10), 4, allowed=True),
        Replicate(2, 3, lid(1, 2, 3), lid(2, 1, 10), INIT_LOG_ID),
    ]
