"""ReplicationSession: each decision of replication[t], step by step, exactly."""

from __future__ import annotations

import math
from typing import Any

import attrs

from openraft_trio import Config
from openraft_trio._core.notifications import HigherVote, ReplicationConflict, ReplicationProgress
from openraft_trio._core.replication_session import (
    Action,
    ReadEntries,
    ReplicationSession,
    SendSnapshot,
    Wait,
)
from openraft_trio._errors import NetworkError, RPCTimeout, Unreachable
from openraft_trio._messages import (
    AppendEntriesRequest,
    AppendEntriesResponse,
    InstallSnapshotResponse,
)
from openraft_trio._types import Entry, LeaderId, LogId, Normal, Vote

VOTE = Vote(LeaderId(2, 1), committed=True)
HB = 0.05


def config(**changes: Any) -> Config:
    base = Config(
        cluster_name="t",
        heartbeat_interval=HB,
        election_timeout_min=0.3,
        election_timeout_max=0.6,
        max_payload_entries=4,
        max_inflight_append_entries=2,
    )
    return attrs.evolve(base, **changes)


def lid(index: int) -> LogId:
    return LogId(LeaderId(2, 1), index)


def entries(start: int, stop: int) -> list[Entry]:
    return [Entry(lid(i), Normal(i)) for i in range(start, stop)]


def session(**changes: Any) -> ReplicationSession:
    return ReplicationSession(target=2, vote=VOTE, config=config(**changes), entry_size=lambda e: 10)


def ok(matching: LogId | None) -> AppendEntriesResponse:
    return AppendEntriesResponse(VOTE, success=True, matching=matching)


def act(s: ReplicationSession, now: float, instruction: dict[str, Any]) -> Action:
    """The session's next action for the core's ``instruction`` (epoch, prev, upto,
    committed)."""
    return s.next_action(now, **instruction)


def send(s: ReplicationSession, now: float, **instruction: Any) -> AppendEntriesRequest:
    action = act(s, now, instruction)
    assert isinstance(action, ReadEntries), action
    req = s.request_for(action, entries(action.start, action.stop), instruction["committed"], now)
    assert isinstance(req, AppendEntriesRequest)
    return req


def test_a_new_epoch_sends_from_prev_in_batches_up_to_the_window() -> None:
    s = session()
    instr: dict[str, Any] = dict(epoch=1, prev=lid(2), upto=lid(12), committed=lid(2))
    assert act(s, 0.0, instr) == ReadEntries(3, 7)
    first = send(s, 0.0, **instr)
    assert (first.prev_log_id, [e.index for e in first.entries], first.leader_commit) == (
        lid(2),
        [3, 4, 5, 6],
        lid(2),
    )
    second = send(s, 0.0, **instr)
    assert (second.prev_log_id, [e.index for e in second.entries]) == (lid(6), [7, 8, 9, 10])
    # Two requests out: the window (2) is full, wait for a reply to wake us.
    assert act(s, 0.0, instr) == Wait(math.inf)
    note, wake = s.on_reply(first, 1, ok(lid(6)), 0.01, send_time=0.0)
    assert note == ReplicationProgress(2, VOTE, 1, lid(6), 0.0)
    assert wake  # the reply freed a slot of a full window
    assert act(s, 0.01, instr) == ReadEntries(11, 13)


def test_a_reply_that_frees_no_slot_of_a_full_window_does_not_wake_the_stream() -> None:
    s = session(max_inflight_append_entries=3)
    instr: dict[str, Any] = dict(epoch=1, prev=None, upto=lid(1), committed=None)
    req = send(s, 0.0, **instr)
    note, wake = s.on_reply(req, 1, ok(lid(1)), 0.01, send_time=0.0)
    assert note == ReplicationProgress(2, VOTE, 1, lid(1), 0.0)
    assert not wake


def test_commit_news_alone_waits_a_heartbeat_after_the_entries_it_commits_were_sent() -> None:
    s = session()
    req = send(s, 1.0, epoch=1, prev=None, upto=lid(3), committed=None)
    s.on_reply(req, 1, ok(lid(3)), 1.01, send_time=1.0)
    # The core commits 3: no entries to ride on, so the news waits until 1.0 + HB.
    instr: dict[str, Any] = dict(epoch=1, prev=None, upto=lid(3), committed=lid(3))
    assert act(s, 1.02, instr) == Wait(1.0 + HB)
    assert act(s, 1.0 + HB, instr) == ReadEntries(4, 4)
    commit = s.request_for(ReadEntries(4, 4), [], lid(3), 1.0 + HB)
    assert commit == AppendEntriesRequest(VOTE, lid(3), (), lid(3))
    # The target now knows the commit of everything it was sent: idle until the refresh.
    s.on_reply(commit, 1, ok(lid(3)), 1.06, send_time=1.0 + HB)
    assert act(s, 1.07, instr) == Wait(1.0 + HB + 0.6)


def test_commit_news_rides_on_the_next_entries() -> None:
    s = session()
    first = send(s, 1.0, epoch=1, prev=None, upto=lid(0), committed=None)
    s.on_reply(first, 1, ok(lid(0)), 1.001, send_time=1.0)
    second = send(s, 1.002, epoch=1, prev=None, upto=lid(1), committed=lid(0))
    assert (second.prev_log_id, [e.index for e in second.entries], second.leader_commit) == (
        lid(0),
        [1],
        lid(0),
    )


def test_an_idle_stream_looks_again_a_heartbeat_later_while_its_entries_are_uncommitted() -> None:
    # A new leader may know no commit index at all: its first entries go out with None.
    # The commit of them must still reach the target without a wakeup (found by the
    # property test: a follower never learned the commit of a new leader's first write).
    s = session()
    req = send(s, 1.0, epoch=1, prev=None, upto=lid(0), committed=None)
    s.on_reply(req, 1, ok(lid(0)), 1.01, send_time=1.0)
    instr: dict[str, Any] = dict(epoch=1, prev=None, upto=lid(0), committed=None)
    assert act(s, 1.01, instr) == Wait(1.0 + HB)
    assert act(s, 1.0 + HB, instr) == Wait(1.0 + 2 * HB)  # not committed yet: look again
    instr["committed"] = lid(0)  # the core commits it; the stream is not woken for that
    assert act(s, 1.0 + 2 * HB, instr) == ReadEntries(1, 1)


def test_a_conflict_stalls_the_stream_until_a_new_epoch() -> None:
    s = session()
    instr: dict[str, Any] = dict(epoch=1, prev=lid(5), upto=lid(6), committed=None)
    req = send(s, 0.0, **instr)
    note, _ = s.on_reply(
        req,
        1,
        AppendEntriesResponse(VOTE, success=False, conflict=True, conflict_hint=3),
        0.01,
        send_time=0.0,
    )
    assert note == ReplicationConflict(2, VOTE, 1, lid(5), 3, 0.0)
    assert act(s, 0.02, instr) == Wait(math.inf)
    assert act(s, 0.02, {**instr, "epoch": 2, "prev": lid(2)}) == ReadEntries(3, 7)


def test_a_higher_vote_stalls_the_stream() -> None:
    s = session()
    req = send(s, 0.0, epoch=1, prev=None, upto=lid(0), committed=None)
    higher = Vote(LeaderId(3, 3), committed=False)
    note, _ = s.on_reply(req, 1, AppendEntriesResponse(higher, success=False), 0.01, send_time=0.0)
    assert note == HigherVote(2, higher)
    assert s.stalled


def test_unreachable_backs_off_exponentially_and_resends_from_the_last_ack() -> None:
    s = session(max_inflight_append_entries=4)
    instr: dict[str, Any] = dict(epoch=1, prev=None, upto=lid(9), committed=None)
    first = send(s, 0.0, **instr)
    second = send(s, 0.0, **instr)
    s.on_reply(first, 1, ok(lid(3)), 0.01, send_time=0.0)
    note, wake = s.on_reply(second, 1, Unreachable("down"), 0.02, send_time=0.0)
    assert note is None
    assert wake
    assert act(s, 0.03, instr) == Wait(0.02 + HB)
    assert act(s, 0.02 + HB, instr) == ReadEntries(4, 8)  # from the ack
    third = send(s, 0.02 + HB, **instr)
    s.on_reply(third, 1, Unreachable("down"), 0.1, send_time=0.07)
    assert s.retry_at == 0.1 + 2 * HB  # doubled


def test_other_rpc_failures_retry_after_half_a_heartbeat() -> None:
    for error in (RPCTimeout("slow"), NetworkError("reset")):
        s = session()
        req = send(s, 0.0, epoch=1, prev=None, upto=lid(0), committed=None)
        s.on_reply(req, 1, error, 0.5, send_time=0.0)
        assert s.retry_at == 0.5 + HB / 2


def test_replies_of_an_old_epoch_are_dropped() -> None:
    s = session()
    req = send(s, 0.0, epoch=1, prev=None, upto=lid(0), committed=None)
    # A new epoch starts over from its prev (the old request still counts as in flight).
    assert s.next_action(0.0, epoch=2, prev=None, upto=lid(0), committed=None) == ReadEntries(0, 1)
    note, _ = s.on_reply(req, 1, ok(lid(0)), 0.01, send_time=0.0)
    assert note is None  # the core never hears of it
    assert s.inflight == 0  # but it counted against the window until it came back


def test_purged_entries_fall_back_to_the_snapshot() -> None:
    s = session()
    read = s.next_action(0.0, epoch=1, prev=lid(2), upto=lid(9), committed=None)
    assert read == ReadEntries(3, 7)
    assert isinstance(read, ReadEntries)
    assert s.request_for(read, entries(5, 7), None, 0.0) == SendSnapshot()
    assert s.request_for(read, [], None, 0.0) == SendSnapshot()
    note = s.on_snapshot_reply(1, InstallSnapshotResponse(VOTE), lid(6), 0.0, send_time=0.0)
    assert note == ReplicationProgress(2, VOTE, 1, lid(6), 0.0)
    assert s.next_action(0.0, epoch=1, prev=lid(2), upto=lid(9), committed=None) == ReadEntries(7, 10)


def test_a_failed_snapshot_is_retried_after_the_backoff() -> None:
    s = session()
    s.next_action(0.0, epoch=1, prev=lid(2), upto=lid(9), committed=None)
    assert s.on_snapshot_reply(1, Unreachable("down"), lid(6), 1.0, send_time=0.9) is None
    assert s.retry_at == 1.0 + HB
    assert s.backoff == 2 * HB


def test_a_higher_vote_in_a_snapshot_reply_stalls_the_stream() -> None:
    s = session()
    s.next_action(0.0, epoch=1, prev=lid(2), upto=lid(9), committed=None)
    higher = Vote(LeaderId(3, 3), committed=True)
    note = s.on_snapshot_reply(1, InstallSnapshotResponse(higher), lid(6), 1.0, send_time=0.9)
    assert note == HigherVote(2, higher)
    assert s.stalled
    assert s.next_action(1.0, epoch=1, prev=lid(2), upto=lid(9), committed=None) == Wait(math.inf)


def test_a_batch_is_cut_at_the_byte_budget_and_the_next_read_adapts() -> None:
    s = session(max_payload_bytes=25, max_inflight_append_entries=8)
    instr: dict[str, Any] = dict(epoch=1, prev=None, upto=lid(20), committed=None)
    req = send(s, 0.0, **instr)  # 10 bytes each: two fit in 25
    assert [e.index for e in req.entries] == [0, 1]
    assert act(s, 0.0, instr) == ReadEntries(2, 4)


def test_an_idle_stream_refreshes_the_commit_index() -> None:
    s = session()
    req = send(s, 1.0, epoch=1, prev=None, upto=lid(0), committed=lid(0))
    s.on_reply(req, 1, ok(lid(0)), 1.01, send_time=1.0)
    instr: dict[str, Any] = dict(epoch=1, prev=None, upto=lid(0), committed=lid(0))
    assert act(s, 1.01, instr) == Wait(1.6)
    # At the refresh the commit index is news again, sent a heartbeat later.
    assert act(s, 1.6, instr) == Wait(1.6 + HB)
    assert act(s, 1.6 + HB, instr) == ReadEntries(1, 1)
