"""The batteries' linearizability models: known-good and known-bad histories of each."""

from __future__ import annotations

import math
from typing import Any

import pytest

from openraft_trio.objects.batteries import Acquired, Full, Held
from openraft_trio.testing.battery_models import CounterModel, DictModel, LockModel, QueueModel
from openraft_trio.testing.linearizability import CheckResult, Model, Operation, Outcome, check

from ._recorded_calls import call, error

INF = math.inf


def op(client_id: int, request: Any, output: Any, start: float, end: float) -> Operation:
    return Operation(client_id=client_id, input=request, output=output, call=start, ret=end)


def verdict(model: Model, history: list[Operation]) -> CheckResult:
    return check(history, model)


def assert_ok(model: Model, history: list[Operation]) -> None:
    result = verdict(model, history)
    assert result.outcome is Outcome.OK, result.explanation


def assert_illegal(model: Model, history: list[Operation]) -> None:
    assert verdict(model, history).outcome is Outcome.ILLEGAL


# -- counter ----------------------------------------------------------------------------------


def test_counter_sequential_history() -> None:
    assert_ok(
        CounterModel(),
        [
            op(1, call("add"), 1, 0, 1),
            op(1, call("add", 5), 6, 2, 3),
            op(2, call("get"), 6, 4, 5),
            op(2, call("set", 10), 6, 6, 7),
            op(1, call("add", n=-3), 7, 8, 9),
            op(2, call("get"), 7, 10, 11),
        ],
    )


def test_counter_concurrent_adds_may_apply_in_either_order() -> None:
    assert_ok(CounterModel(), [op(1, call("add", 1), 3, 0, 5), op(2, call("add", 2), 2, 0, 5)])


def test_counter_lost_update_is_illegal() -> None:
    assert_illegal(CounterModel(), [op(1, call("add", 1), 1, 0, 5), op(2, call("add", 2), 2, 0, 5)])


def test_counter_stale_read_is_illegal() -> None:
    assert_illegal(CounterModel(), [op(1, call("add", 4), 4, 0, 1), op(2, call("get"), 0, 2, 3)])


def test_counter_unknown_add_may_or_may_not_have_happened() -> None:
    for seen in (0, 4):
        assert_ok(
            CounterModel(), [op(1, call("add", 4), None, 0, INF), op(2, call("get"), seen, 2, 3)]
        )
    assert_illegal(
        CounterModel(), [op(1, call("add", 4), None, 0, INF), op(2, call("get"), 3, 2, 3)]
    )


def test_counter_refuses_a_non_integer_and_changes_nothing() -> None:
    model = CounterModel()
    assert_ok(
        model,
        [
            op(1, call("add", 1.5), error("TypeError"), 0, 1),
            op(1, call("set", "x"), error("TypeError"), 2, 3),
            op(1, call("add", True), error("TypeError"), 4, 5),
            op(1, call("get"), 0, 6, 7),
        ],
    )
    assert_illegal(model, [op(1, call("add", 1.5), 1.5, 0, 1)])
    assert_illegal(model, [op(1, call("add", 2), error("TypeError"), 0, 1)])


# -- dict -------------------------------------------------------------------------------------


def test_dict_sequential_history() -> None:
    assert_ok(
        DictModel(),
        [
            op(1, call("set", "a", 1), None, 0, 1),
            op(1, call("set", "a", [2, 3]), 1, 2, 3),
            op(1, call("compare_and_set", "a", (2, 3), 4), True, 4, 5),
            op(1, call("compare_and_set", "a", 9, 5), False, 6, 7),
            op(1, call("compare_and_set", "b", None, "x"), True, 8, 9),
            op(2, call("keys"), ["a", "b"], 10, 11),
            op(2, call("items"), [["a", 4], ["b", "x"]], 12, 13),
            op(2, call("len"), 2, 14, 15),
            op(1, call("delete", "a"), 4, 16, 17),
            op(1, call("delete", "a"), None, 18, 19),
            op(2, call("get", "a"), None, 20, 21),
            op(2, call("get", key="b"), "x", 22, 23),
        ],
    )


def test_dict_is_checked_per_key_when_every_operation_names_one() -> None:
    history = [
        op(1, call("set", "a", 1), None, 0, 1),
        op(2, call("set", "b", 1), None, 0, 1),
        op(1, call("get", "a"), 1, 2, 3),
    ]
    assert verdict(DictModel(), history).partitions_total == 2
    whole = [*history, op(2, call("len"), 2, 4, 5)]
    result = verdict(DictModel(), whole)
    assert result.outcome is Outcome.OK, result.explanation
    assert result.partitions_total == 1


@pytest.mark.parametrize(
    "history",
    [
        # A stale read after a write returned.
        [op(1, call("set", "a", 1), None, 0, 1), op(2, call("get", "a"), None, 2, 3)],
        # Two sets that both saw the key absent, one strictly after the other.
        [op(1, call("set", "a", 1), None, 0, 1), op(2, call("set", "a", 2), None, 2, 3)],
        # Both compare-and-sets from absent succeeded.
        [
            op(1, call("compare_and_set", "a", None, 1), True, 0, 5),
            op(2, call("compare_and_set", "a", None, 2), True, 0, 5),
        ],
        # keys() missing a key written before it.
        [op(1, call("set", "a", 1), None, 0, 1), op(2, call("keys"), [], 2, 3)],
        # len() counting a deleted key.
        [
            op(1, call("set", "a", 1), None, 0, 1),
            op(1, call("delete", "a"), 1, 2, 3),
            op(2, call("len"), 1, 4, 5),
        ],
    ],
)
def test_dict_rejects(history: list[Operation]) -> None:
    assert_illegal(DictModel(), history)


def test_dict_max_keys_refuses_a_new_key_only() -> None:
    model = DictModel(max_keys=1)
    assert_ok(
        model,
        [
            op(1, call("set", "a", 1), None, 0, 1),
            op(1, call("set", "b", 1), Full(1), 2, 3),
            op(1, call("compare_and_set", "b", None, 1), Full(1), 4, 5),
            op(1, call("set", "a", 2), 1, 6, 7),
            op(1, call("delete", "a"), 2, 8, 9),
            op(1, call("set", "b", 1), None, 10, 11),
        ],
    )
    assert_illegal(
        model, [op(1, call("set", "a", 1), None, 0, 1), op(1, call("set", "b", 1), None, 2, 3)]
    )


def test_dict_refuses_a_key_that_is_not_a_string() -> None:
    assert_ok(
        DictModel(),
        [op(1, call("set", 1, "x"), error("TypeError"), 0, 1), op(1, call("len"), 0, 2, 3)],
    )


# -- queue ------------------------------------------------------------------------------------


def test_queue_sequential_history() -> None:
    assert_ok(
        QueueModel(),
        [
            op(1, call("get"), None, 0, 1),
            op(1, call("put", "x"), 1, 2, 3),
            op(1, call("put", [1, 2]), 2, 4, 5),
            op(2, call("peek"), "x", 6, 7),
            op(2, call("size"), 2, 8, 9),
            op(2, call("get"), "x", 10, 11),
            op(2, call("get"), (1, 2), 12, 13),
            op(2, call("get"), None, 14, 15),
        ],
    )


@pytest.mark.parametrize(
    "history",
    [
        # Out of order: y was put strictly after x but came out first.
        [
            op(1, call("put", "x"), 1, 0, 1),
            op(1, call("put", "y"), 2, 2, 3),
            op(2, call("get"), "y", 4, 5),
        ],
        # One item taken twice.
        [
            op(1, call("put", "x"), 1, 0, 1),
            op(2, call("get"), "x", 2, 5),
            op(3, call("get"), "x", 2, 5),
        ],
        # An item lost: the queue was not empty.
        [op(1, call("put", "x"), 1, 0, 1), op(2, call("get"), None, 2, 3)],
        # peek removed the item.
        [
            op(1, call("put", "x"), 1, 0, 1),
            op(2, call("peek"), "x", 2, 3),
            op(2, call("get"), None, 4, 5),
        ],
        # A put replied a size that is not the size after it.
        [op(1, call("put", "x"), 2, 0, 1)],
    ],
)
def test_queue_rejects(history: list[Operation]) -> None:
    assert_illegal(QueueModel(), history)


def test_queue_concurrent_puts_may_come_out_in_either_order() -> None:
    history = [
        op(1, call("put", "x"), 2, 0, 5),
        op(2, call("put", "y"), 1, 0, 5),
        op(3, call("get"), "y", 6, 7),
        op(3, call("get"), "x", 8, 9),
    ]
    assert_ok(QueueModel(), history)


def test_queue_max_size_and_none() -> None:
    model = QueueModel(max_size=1)
    assert_ok(
        model,
        [
            op(1, call("put", "x"), 1, 0, 1),
            op(1, call("put", "y"), Full(1), 2, 3),
            op(1, call("put", None), error("ValueError"), 4, 5),
            op(1, call("get"), "x", 6, 7),
            op(1, call("put", "y"), 1, 8, 9),
        ],
    )
    assert_illegal(model, [op(1, call("put", "x"), 1, 0, 1), op(1, call("put", "y"), 2, 2, 3)])


# -- lock service -----------------------------------------------------------------------------


def acquire(name: str, holder: str, lease: Any, now: float) -> Any:
    return call("acquire", name, holder, lease, now=now)


def renew(name: str, holder: str, token: int, lease: Any, now: float) -> Any:
    return call("renew", name, holder, token, lease, now=now)


def release(name: str, holder: str, token: int, now: float) -> Any:
    return call("release", name, holder, token, now=now)


def owner(name: str) -> Any:
    return call("owner", name)


def test_lock_sequential_history() -> None:
    assert_ok(
        LockModel(),
        [
            op(1, acquire("L", "a", 10, now=0), Acquired(3, 10.0), 0, 1),
            op(2, acquire("L", "b", 10, now=2), Held("a", 10.0), 2, 3),
            op(2, owner("L"), Held("a", 10.0), 4, 5),
            op(1, renew("L", "a", 3, 10, now=6), Acquired(3, 16.0), 6, 7),
            op(2, release("L", "b", 3, now=8), False, 8, 9),
            op(1, release("L", "a", 4, now=10), False, 10, 11),
            op(1, release("L", "a", 3, now=12), True, 12, 13),
            op(2, owner("L"), None, 14, 15),
            op(2, acquire("L", "b", 5, now=16), Acquired(9, 21.0), 16, 17),
            op(1, acquire("M", "a", 5, now=18), Acquired(10, 23.0), 18, 19),
        ],
    )


def test_lock_a_crashed_holder_loses_the_lock_after_its_lease_by_log_time() -> None:
    history = [
        op(1, acquire("L", "a", 5, now=0), Acquired(1, 5.0), 0, 1),
        # At log time 5 the lease is still live (free means log time > expires_at).
        op(2, acquire("L", "b", 5, now=5), Held("a", 5.0), 5, 6),
        op(2, acquire("L", "b", 5, now=7), Acquired(3, 12.0), 7, 8),
        op(1, renew("L", "a", 1, 5, now=9), None, 9, 10),
        op(1, release("L", "a", 1, now=11), False, 11, 12),
    ]
    assert_ok(LockModel(), history)


@pytest.mark.parametrize(
    "history",
    [
        # Mutual exclusion: both acquired, the lease still live.
        [
            op(1, acquire("L", "a", 10, now=0), Acquired(1, 10.0), 0, 1),
            op(2, acquire("L", "b", 10, now=2), Acquired(2, 12.0), 2, 3),
        ],
        # Concurrent acquisitions both granted.
        [
            op(1, acquire("L", "a", 10, now=0), Acquired(1, 10.0), 0, 3),
            op(2, acquire("L", "b", 10, now=0), Acquired(2, 10.0), 0, 3),
        ],
        # Fencing: a later acquisition got a smaller token.
        [
            op(1, acquire("L", "a", 1, now=0), Acquired(5, 1.0), 0, 1),
            op(2, acquire("M", "b", 1, now=2), Acquired(4, 3.0), 2, 3),
        ],
        # Fencing: a token reused.
        [
            op(1, acquire("L", "a", 1, now=0), Acquired(5, 1.0), 0, 1),
            op(2, acquire("L", "b", 1, now=2), Acquired(5, 3.0), 2, 3),
        ],
        # Granted before the lease expired by log time (now 10 is not past expires_at 10).
        [
            op(1, acquire("L", "a", 10, now=0), Acquired(1, 10.0), 0, 1),
            op(2, acquire("L", "b", 10, now=10), Acquired(2, 20.0), 10, 11),
        ],
        # Refused although the lease had expired.
        [
            op(1, acquire("L", "a", 1, now=0), Acquired(1, 1.0), 0, 1),
            op(2, acquire("L", "b", 1, now=2), Held("a", 1.0), 2, 3),
        ],
        # The lease was measured from a stale time: the log time was already 8.
        [
            op(1, acquire("M", "x", 1, now=8), Acquired(1, 9.0), 8, 9),
            op(2, acquire("L", "a", 10, now=2), Acquired(2, 12.0), 2, 11),
        ],
        # Released by someone who does not hold it.
        [
            op(1, acquire("L", "a", 10, now=0), Acquired(1, 10.0), 0, 1),
            op(2, release("L", "b", 1, now=2), True, 2, 3),
        ],
        # Released with a stale token (a's second acquisition replaced token 1).
        [
            op(1, acquire("L", "a", 10, now=0), Acquired(1, 10.0), 0, 1),
            op(1, acquire("L", "a", 10, now=2), Acquired(2, 12.0), 2, 3),
            op(1, release("L", "a", 1, now=4), True, 4, 5),
        ],
        # Renewed after the lease expired.
        [
            op(1, acquire("L", "a", 1, now=0), Acquired(1, 1.0), 0, 1),
            op(1, renew("L", "a", 1, 5, now=2), Acquired(1, 7.0), 2, 3),
        ],
        # A renewal that did not move the expiry to log time + lease.
        [
            op(1, acquire("L", "a", 5, now=0), Acquired(1, 5.0), 0, 1),
            op(1, renew("L", "a", 1, 5, now=2), Acquired(1, 5.0), 2, 3),
        ],
        # owner() still reporting a released lock.
        [
            op(1, acquire("L", "a", 10, now=0), Acquired(1, 10.0), 0, 1),
            op(1, release("L", "a", 1, now=2), True, 2, 3),
            op(2, owner("L"), Held("a", 10.0), 4, 5),
        ],
    ],
)
def test_lock_rejects(history: list[Operation]) -> None:
    assert_illegal(LockModel(), history)


def test_lock_log_time_is_the_largest_now_in_linearization_order() -> None:
    # b's call stamped now=2 but applied after a call stamped 8: its lease runs from 8.
    history = [
        op(1, acquire("M", "x", 1, now=8), Acquired(1, 9.0), 8, 9),
        op(2, acquire("L", "a", 10, now=2), Acquired(2, 18.0), 2, 11),
    ]
    assert_ok(LockModel(), history)


def test_lock_the_same_holder_acquiring_again_gets_a_fresh_token() -> None:
    history = [
        op(1, acquire("L", "a", 10, now=0), Acquired(1, 10.0), 0, 1),
        op(1, acquire("L", "a", 10, now=2), Acquired(2, 12.0), 2, 3),
        op(1, renew("L", "a", 1, 10, now=4), None, 4, 5),
        op(1, release("L", "a", 2, now=6), True, 6, 7),
    ]
    assert_ok(LockModel(), history)


def test_lock_an_unknown_acquisition_may_hold_the_lock() -> None:
    unknown = op(1, acquire("L", "a", 10, now=0), None, 0, INF)
    # It may have happened (b is refused), or not (b acquires).
    assert_ok(LockModel(), [unknown, op(2, acquire("L", "b", 10, now=2), Held("a", 10.0), 2, 3)])
    assert_ok(LockModel(), [unknown, op(2, acquire("L", "b", 10, now=2), Acquired(1, 12.0), 2, 3)])
    # Its token is at least the next one, so a later token must be larger still.
    assert_illegal(
        LockModel(),
        [
            op(3, acquire("K", "c", 1, now=0), Acquired(5, 1.0), 0, 1),
            op(1, acquire("L", "a", 1, now=2), None, 2, INF),
            op(3, owner("L"), Held("a", 3.0), 4, 5),
            op(2, acquire("M", "b", 1, now=6), Acquired(6, 7.0), 6, 7),
        ],
    )


def test_lock_an_unknown_token_is_learnt_only_if_it_could_be_it() -> None:
    before = op(3, acquire("K", "c", 1, now=0), Acquired(5, 1.0), 0, 1)
    unknown = op(1, acquire("L", "a", 10, now=2), None, 2, INF)
    # A release with a token the unknown grant could have had: its reply decides.
    assert_ok(LockModel(), [before, unknown, op(1, release("L", "a", 6, now=4), True, 4, 5)])
    assert_ok(LockModel(), [before, unknown, op(1, release("L", "a", 6, now=4), False, 4, 5)])
    # Token 3 is older than token 5: the grant after it cannot have had it.
    assert_illegal(LockModel(), [before, unknown, op(1, release("L", "a", 3, now=4), True, 4, 5)])
    assert_illegal(
        LockModel(),
        [before, unknown, op(1, renew("L", "a", 3, 10, now=4), Acquired(3, 14.0), 4, 5)],
    )


def test_lock_refuses_bad_leases() -> None:
    model = LockModel()
    for bad, refusal in [
        (0, "ValueError"),
        (-1, "ValueError"),
        (math.inf, "ValueError"),
        (math.nan, "ValueError"),
        ("5", "TypeError"),
        (True, "TypeError"),
    ]:
        assert_ok(
            model,
            [
                op(1, acquire("L", "a", bad, now=0), error(refusal), 0, 1),
                op(1, owner("L"), None, 2, 3),
            ],
        )
        wrong = "TypeError" if refusal == "ValueError" else "ValueError"
        assert_illegal(model, [op(1, acquire("L", "a", bad, now=0), error(wrong), 0, 1)])
        assert_illegal(model, [op(1, acquire("L", "a", bad, now=0), Acquired(1, 5.0), 0, 1)])


def test_models_refuse_calls_of_other_objects() -> None:
    for model in (CounterModel(), DictModel(), QueueModel(), LockModel()):
        with pytest.raises(TypeError, match="not a call of this object"):
            verdict(model, [op(1, call("frobnicate"), None, 0, 1)])
