"""SessionTable: each rule with its exact outcome, and a property test over random histories
(a replica restored from a snapshot midway answers exactly as one that never was; a retried
command is applied exactly once and always gets its first reply)."""

from __future__ import annotations

import math
from typing import Any

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openraft_trio.sessions._table import (
    Alive,
    Apply,
    Closed,
    Duplicate,
    Expired,
    Registered,
    SessionTable,
    Stale,
    TooManySessions,
    WindowExceeded,
)


def table(**kwargs: Any) -> SessionTable:
    arguments: dict[str, Any] = {"timeout": 10.0, "window": 4, "max_sessions": 3}
    arguments.update(kwargs)
    return SessionTable(**arguments)


# --- registration -------------------------------------------------------------------------


def test_register_opens_a_session_named_by_its_log_index() -> None:
    sessions = table()
    assert sessions.register(7, now=1.0) == Registered(7)
    assert 7 in sessions
    assert len(sessions) == 1
    assert sessions.time == 1.0


def test_register_twice_is_a_caller_bug() -> None:
    sessions = table()
    sessions.register(7, now=1.0)
    with pytest.raises(ValueError, match="session 7 is already registered"):
        sessions.register(7, now=2.0)


def test_register_beyond_max_sessions_is_refused_not_evicting() -> None:
    sessions = table(max_sessions=2)
    sessions.register(1, now=0.0)
    sessions.register(2, now=1.0)
    assert sessions.register(3, now=2.0) == TooManySessions(2)
    assert 3 not in sessions
    assert 1 in sessions
    assert 2 in sessions


def test_register_succeeds_once_an_idle_session_expires() -> None:
    sessions = table(max_sessions=2)
    sessions.register(1, now=0.0)
    sessions.register(2, now=5.0)
    assert sessions.register(3, now=10.5) == Registered(3)
    assert 1 not in sessions


# --- begin / record -----------------------------------------------------------------------


def test_a_new_command_is_applied_then_its_retry_is_a_duplicate() -> None:
    sessions = table()
    sessions.register(1, now=0.0)
    assert sessions.begin(1, seq=1, acked_seq=0, now=1.0) == Apply()
    sessions.record(1, 1, "reply-1")
    assert sessions.begin(1, seq=1, acked_seq=0, now=2.0) == Duplicate("reply-1")
    assert sessions.begin(1, seq=1, acked_seq=0, now=3.0) == Duplicate("reply-1")


def test_a_command_begun_but_not_yet_recorded_is_applied_again() -> None:
    # begin() and record() happen within one entry's apply; only record() marks it applied.
    sessions = table()
    sessions.register(1, now=0.0)
    assert sessions.begin(1, seq=1, acked_seq=0, now=1.0) == Apply()
    assert sessions.begin(1, seq=1, acked_seq=0, now=1.0) == Apply()


def test_an_unknown_session_is_expired() -> None:
    assert table().begin(9, seq=1, acked_seq=0, now=0.0) == Expired(9)


def test_acknowledged_replies_are_dropped_and_their_commands_are_stale() -> None:
    sessions = table()
    sessions.register(1, now=0.0)
    for seq in (1, 2, 3):
        assert sessions.begin(1, seq=seq, acked_seq=0, now=1.0) == Apply()
        sessions.record(1, seq, f"reply-{seq}")
    assert sessions.begin(1, seq=4, acked_seq=2, now=2.0) == Apply()
    sessions.record(1, 4, "reply-4")
    assert sessions.begin(1, seq=2, acked_seq=0, now=2.0) == Stale(1, seq=2, acked_seq=2)
    assert sessions.begin(1, seq=1, acked_seq=2, now=2.0) == Stale(1, seq=1, acked_seq=2)
    assert sessions.begin(1, seq=3, acked_seq=0, now=2.0) == Duplicate("reply-3")
    assert sessions.snapshot()["sessions"] == [[1, 2.0, 2, [[3, "reply-3"], [4, "reply-4"]]]]


def test_an_acknowledgement_never_goes_back() -> None:
    sessions = table()
    sessions.register(1, now=0.0)
    sessions.begin(1, seq=1, acked_seq=0, now=0.0)
    sessions.record(1, 1, "a")
    sessions.begin(1, seq=2, acked_seq=1, now=0.0)
    assert sessions.begin(1, seq=1, acked_seq=0, now=0.0) == Stale(1, seq=1, acked_seq=1)


def test_out_of_order_commands_within_the_window_are_each_applied_once() -> None:
    sessions = table(window=4)
    sessions.register(1, now=0.0)
    for seq in (3, 1, 4, 2):
        assert sessions.begin(1, seq=seq, acked_seq=0, now=0.0) == Apply()
        sessions.record(1, seq, seq * 10)
    assert [sessions.begin(1, seq=seq, acked_seq=0, now=0.0) for seq in (4, 3, 2, 1)] == [
        Duplicate(40),
        Duplicate(30),
        Duplicate(20),
        Duplicate(10),
    ]


def test_a_command_beyond_the_window_is_refused_until_replies_are_acknowledged() -> None:
    sessions = table(window=2)
    sessions.register(1, now=0.0)
    assert sessions.begin(1, seq=3, acked_seq=0, now=0.0) == WindowExceeded(
        1, seq=3, acked_seq=0, window=2
    )
    for seq in (1, 2):
        sessions.begin(1, seq=seq, acked_seq=0, now=0.0)
        sessions.record(1, seq, seq)
    assert sessions.begin(1, seq=3, acked_seq=0, now=0.0) == WindowExceeded(
        1, seq=3, acked_seq=0, window=2
    )
    assert sessions.begin(1, seq=3, acked_seq=1, now=0.0) == Apply()


def test_record_without_apply_is_a_caller_bug() -> None:
    sessions = table(window=2)
    sessions.register(1, now=0.0)
    sessions.begin(1, seq=1, acked_seq=0, now=0.0)
    sessions.record(1, 1, "a")
    for session_id, seq in ((2, 1), (1, 1), (1, 3)):
        with pytest.raises(ValueError, match="without begin"):
            sessions.record(session_id, seq, "b")


@pytest.mark.parametrize(
    ("seq", "acked_seq", "now", "message"),
    [
        (0, 0, 0.0, "seq must be an integer >= 1, got 0"),
        (1, -1, 0.0, "acked_seq must be an integer >= 0, got -1"),
        (True, 0, 0.0, "seq must be an integer >= 1, got True"),
        (1, 0, math.nan, "now must be a finite number, got nan"),
        (1, 0, math.inf, "now must be a finite number, got inf"),
        (1, 0, "1", "now must be a finite number, got '1'"),
    ],
)
def test_malformed_command_fields_are_typed_errors(
    seq: Any, acked_seq: Any, now: Any, message: str
) -> None:
    sessions = table()
    sessions.register(1, now=0.0)
    with pytest.raises(ValueError, match=f"^{message}$"):
        sessions.begin(1, seq, acked_seq, now)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"timeout": 0.0}, "timeout must be > 0"),
        ({"timeout": math.inf}, "timeout must be a finite number, got inf"),
        ({"window": 0}, "window must be an integer >= 1"),
        ({"max_sessions": 0}, "max_sessions must be an integer >= 1"),
    ],
)
def test_bad_configuration_is_a_typed_error(arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        table(**arguments)


# --- log time and expiry ------------------------------------------------------------------


def test_log_time_is_the_largest_now_seen() -> None:
    sessions = table()
    sessions.register(1, now=5.0)
    sessions.begin(1, seq=1, acked_seq=0, now=3.0)  # a leader whose clock runs behind
    assert sessions.time == 5.0
    assert sessions.snapshot()["sessions"] == [[1, 5.0, 0, []]]


def test_a_session_expires_only_once_log_time_passes_last_use_plus_timeout() -> None:
    sessions = table(timeout=10.0)
    sessions.register(1, now=0.0)
    assert sessions.advance(10.0) == []
    assert 1 in sessions
    assert sessions.advance(10.5) == [1]
    assert sessions.begin(1, seq=1, acked_seq=0, now=10.5) == Expired(1)


def test_expiry_happens_on_the_entry_that_carries_the_later_time() -> None:
    sessions = table(timeout=10.0)
    sessions.register(1, now=0.0)
    sessions.begin(1, seq=1, acked_seq=0, now=0.0)
    sessions.record(1, 1, "a")
    assert sessions.begin(1, seq=1, acked_seq=0, now=11.0) == Expired(1)


def test_every_command_keeps_its_session_alive_even_a_refused_one() -> None:
    sessions = table(timeout=10.0, window=1)
    sessions.register(1, now=0.0)
    assert sessions.begin(1, seq=5, acked_seq=0, now=8.0) == WindowExceeded(1, 5, 0, 1)
    assert sessions.advance(17.0) == []
    assert sessions.advance(18.5) == [1]


def test_sessions_expire_in_order_of_last_use() -> None:
    sessions = table(timeout=10.0, max_sessions=5)
    for session_id in (1, 2, 3, 4):
        sessions.register(session_id, now=float(session_id))
    sessions.begin(2, seq=1, acked_seq=0, now=6.0)
    sessions.begin(1, seq=1, acked_seq=0, now=6.0)
    assert sessions.advance(14.5) == [3, 4]
    assert sessions.advance(100.0) == [2, 1]
    assert len(sessions) == 0


def test_keep_alive_keeps_an_idle_session_and_drops_acknowledged_replies() -> None:
    sessions = table(timeout=10.0)
    sessions.register(1, now=0.0)
    sessions.begin(1, seq=1, acked_seq=0, now=0.0)
    sessions.record(1, 1, "a")
    assert sessions.keep_alive(1, acked_seq=1, now=9.0) == Alive()
    assert sessions.advance(18.0) == []
    assert sessions.snapshot()["sessions"] == [[1, 9.0, 1, []]]
    assert sessions.keep_alive(2, acked_seq=0, now=18.0) == Expired(2)
    assert sessions.advance(19.5) == [1]
    assert sessions.keep_alive(1, acked_seq=1, now=19.5) == Expired(1)


def test_close_frees_the_place_of_a_session_at_once() -> None:
    sessions = table(max_sessions=1)
    sessions.register(1, now=0.0)
    assert sessions.close(1, now=1.0) == Closed(1)
    assert sessions.close(1, now=1.0) == Expired(1)
    assert sessions.begin(1, seq=1, acked_seq=0, now=1.0) == Expired(1)
    assert sessions.register(2, now=1.0) == Registered(2)


# --- snapshots ----------------------------------------------------------------------------


def test_snapshot_is_plain_data_and_restores_exactly() -> None:
    sessions = table()
    sessions.register(1, now=0.0)
    sessions.register(2, now=1.0)
    sessions.begin(1, seq=2, acked_seq=0, now=2.0)
    sessions.record(1, 2, {"value": b"x", "list": [1, 2]})
    data = sessions.snapshot()
    assert data == {
        "version": 1,
        "time": 2.0,
        "sessions": [[2, 1.0, 0, []], [1, 2.0, 0, [[2, {"value": b"x", "list": [1, 2]}]]]],
    }
    restored = table()
    restored.restore(cbor2.loads(cbor2.dumps(data)))
    assert restored == sessions
    assert restored.snapshot() == data


def test_restore_of_an_empty_snapshot() -> None:
    restored = table()
    restored.register(1, now=0.0)
    restored.restore(table().snapshot())
    assert restored == table()
    assert restored.time is None


@pytest.mark.parametrize(
    "data",
    [
        None,
        {},
        {"version": 2, "time": None, "sessions": []},
        {"version": 1, "time": "x", "sessions": []},
        {"version": 1, "time": None, "sessions": [[1, 0.0, 0]]},
        {"version": 1, "time": None, "sessions": [[0, 0.0, 0, []]]},
        {"version": 1, "time": 0.0, "sessions": [[1, 0.0, 0, []], [1, 0.0, 0, []]]},
        {"version": 1, "time": None, "sessions": [[1, 0.0, 0, []]]},
        {"version": 1, "time": 1.0, "sessions": [[1, 2.0, 0, []]]},
        {"version": 1, "time": 2.0, "sessions": [[1, 1.0, 0, []], [2, 0.5, 0, []]]},
        {"version": 1, "time": 2.0, "sessions": [[1, 1.0, 3, [[3, "acked"]]]]},
    ],
)
def test_restore_of_a_malformed_snapshot_is_a_typed_error_and_changes_nothing(data: Any) -> None:
    sessions = table()
    sessions.register(1, now=0.0)
    before = sessions.snapshot()
    with pytest.raises(ValueError):  # noqa: PT011 - the messages vary by defect
        sessions.restore(data)
    assert sessions.snapshot() == before


# --- property: replicas agree, retries are exactly-once ----------------------------------


# Registrations take the next log index, as real ones do. A command names one of the last
# four registrations or the next index, so it may name a live session, an expired or refused
# one, or one never registered; "retry" repeats an earlier command exactly, as a client does
# after a timeout.
def command() -> st.SearchStrategy[tuple[Any, ...]]:
    return st.tuples(
        st.just("command"),
        st.integers(min_value=0, max_value=20),
        st.integers(min_value=1, max_value=7),
        st.integers(min_value=0, max_value=5),
        st.floats(-2.0, 1.0),
    )


def retry() -> st.SearchStrategy[tuple[Any, ...]]:
    return st.tuples(st.just("retry"), st.integers(min_value=0), st.floats(-2.0, 1.0))


# Commands and retries weigh most: they are what exactly-once is about. (``one_of`` drops
# a strategy object repeated, hence fresh ones.)
operations = st.one_of(
    st.tuples(st.just("register"), st.floats(0.0, 2.0)),
    *[command() for _ in range(4)],
    *[retry() for _ in range(3)],
    st.tuples(st.just("keep_alive"), st.integers(min_value=0, max_value=20), st.floats(-2.0, 2.0)),
    st.tuples(st.just("close"), st.integers(min_value=0, max_value=20), st.floats(-2.0, 1.0)),
    st.tuples(st.just("advance"), st.floats(-2.0, 8.0)),
    st.tuples(st.just("snapshot")),
)


def new_table() -> SessionTable:
    return table(timeout=6.0, window=3, max_sessions=3)


@settings(max_examples=300, derandomize=True)
@given(st.lists(operations, min_size=10, max_size=80))
def test_replicas_agree_and_retries_apply_exactly_once(history: list[tuple[Any, ...]]) -> None:
    """Two replicas apply the same history; at every "snapshot" step the second is replaced
    by a new table restored from its snapshot (through cbor2). Each ``now`` is the clock of
    some leader, which may run behind log time. Each application records a reply naming it:
    no (session, seq) is applied twice, and every Duplicate repeats the reply of the one
    application."""
    replica, restored = new_table(), new_table()
    clock = 0.0
    next_session_id = 1
    applied: dict[tuple[int, int], str] = {}
    sent: list[tuple[int, int, int]] = []
    for step, operation in enumerate(history):
        kind = operation[0]
        if kind == "register":
            clock += operation[1]
            registered = replica.register(next_session_id, clock)
            assert restored.register(next_session_id, clock) == registered
            next_session_id += 1
        elif kind in ("command", "retry"):
            if kind == "command":
                _, choice, seq, acked_seq, offset = operation
                session_id = max(1, next_session_id - choice % 5)
                sent.append((session_id, seq, acked_seq))
            elif sent:
                _, choice, offset = operation
                session_id, seq, acked_seq = sent[choice % len(sent)]
            else:
                continue
            now = clock + offset
            clock = max(clock, now)
            outcome = replica.begin(session_id, seq, acked_seq, now)
            assert restored.begin(session_id, seq, acked_seq, now) == outcome
            if outcome == Apply():
                assert (session_id, seq) not in applied
                reply = f"applied {session_id}:{seq} at step {step}"
                applied[(session_id, seq)] = reply
                replica.record(session_id, seq, reply)
                restored.record(session_id, seq, reply)
            elif isinstance(outcome, Duplicate):
                assert outcome.reply == applied[(session_id, seq)]
            elif isinstance(outcome, Stale | WindowExceeded):
                assert session_id in replica
            else:
                assert outcome == Expired(session_id)
                assert session_id not in replica
        elif kind in ("keep_alive", "close"):
            _, choice, offset = operation
            session_id = max(1, next_session_id - choice % 5)
            now = clock + offset
            clock = max(clock, now)
            if kind == "keep_alive":
                acked_seq = choice % 4
                alive = replica.keep_alive(session_id, acked_seq, now)
                assert restored.keep_alive(session_id, acked_seq, now) == alive
            else:
                closed = replica.close(session_id, now)
                assert restored.close(session_id, now) == closed
        elif kind == "advance":
            now = clock + operation[1]
            clock = max(clock, now)
            assert replica.advance(now) == restored.advance(now)
        else:
            snapshot = restored.snapshot()
            restored = new_table()
            restored.restore(cbor2.loads(cbor2.dumps(snapshot)))
        assert replica == restored
        assert replica.snapshot() == restored.snapshot()
