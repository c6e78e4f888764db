"""The linearizability checker: known-good and known-bad kv histories, and generated ones."""

from __future__ import annotations

import math
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openraft_trio._types import Entry, LeaderId, LogId, Normal
from openraft_trio.kv import CompareAndSwap, Delete, Get, KvStateMachine, Set
from openraft_trio.testing.linearizability import (
    ANY_OUTPUT,
    CheckResult,
    KvModel,
    Model,
    Operation,
    Outcome,
    check,
)

INF = math.inf


def op(client_id: int, request: Any, output: Any, call: float, ret: float) -> Operation:
    return Operation(client_id=client_id, input=request, output=output, call=call, ret=ret)


def check_kv(history: list[Operation], **kwargs: Any) -> CheckResult:
    return check(history, KvModel(), **kwargs)


# -- linearizable histories -----------------------------------------------------------------


def test_empty_history_is_ok() -> None:
    assert check_kv([]).outcome is Outcome.OK


def test_sequential_legal_history_is_ok() -> None:
    history = [
        op(1, Set("k", 1), None, 0, 1),
        op(1, Get("k"), 1, 2, 3),
        op(2, CompareAndSwap("k", 1, 2), (True, 2), 4, 5),
        op(2, CompareAndSwap("k", 1, 3), (False, 2), 6, 7),
        op(1, Set("k", 4), 2, 8, 9),
        op(1, Delete("k"), 4, 10, 11),
        op(2, Get("k"), None, 12, 13),
    ]
    result = check_kv(history)
    assert result.outcome is Outcome.OK, result.explanation
    assert result.partitions_checked == 1


@pytest.mark.parametrize("seen", [1, 2])
def test_read_concurrent_with_two_writes_may_see_either(seen: int) -> None:
    history = [
        op(1, Set("k", 1), None, 0, 10),
        op(2, Set("k", 2), 1, 1, 10),
        op(3, Get("k"), seen, 2, 5),
    ]
    assert check_kv(history).outcome is Outcome.OK


def test_operations_touching_in_time_are_concurrent() -> None:
    # The write returns at 1 and the read is called at 1: neither strictly precedes the
    # other, so the read may take effect first.
    history = [op(1, Set("k", 1), None, 0, 1), op(2, Get("k"), None, 1, 2)]
    assert check_kv(history).outcome is Outcome.OK


def test_replies_may_arrive_as_lists() -> None:
    # A CBOR round trip turns the CompareAndSwap reply tuple (and stored tuples) into lists.
    history = [
        op(1, Set("k", (1, 2)), None, 0, 1),
        op(1, CompareAndSwap("k", [1, 2], {"a": [3]}), [True, {"a": (3,)}], 2, 3),
        op(1, Get("k"), {"a": [3]}, 4, 5),
    ]
    assert check_kv(history).outcome is Outcome.OK


# -- non-linearizable histories -------------------------------------------------------------


def test_stale_read_is_illegal() -> None:
    write = op(1, Set("k", 1), None, 0, 1)
    read = op(2, Get("k"), None, 2, 3)
    result = check_kv([op(3, Get("k"), None, 0, 0.5), write, read])
    assert result.outcome is Outcome.ILLEGAL
    assert result.counterexample == (write, read)
    assert "Get(key='k') -> None" in result.explanation
    assert "no remaining operation can take effect next" in result.explanation


def test_lost_update_is_illegal() -> None:
    first = op(1, CompareAndSwap("k", None, 1), (True, 1), 0, 2)
    second = op(2, CompareAndSwap("k", None, 2), (True, 2), 1, 3)
    result = check_kv([first, second])
    assert result.outcome is Outcome.ILLEGAL
    assert result.counterexample == (first, second)


def test_read_of_a_value_never_written_is_illegal() -> None:
    read = op(2, Get("k"), 99, 1, 4)
    result = check_kv([op(1, Set("k", 1), None, 0, 5), read])
    assert result.outcome is Outcome.ILLEGAL
    assert result.counterexample == (read,)
    assert "[1] cannot be explained" in result.explanation
    assert "no operation can take effect first from the initial state None" in result.explanation


def test_reads_must_not_go_back_in_time() -> None:
    history = [
        op(1, Set("k", 1), None, 0, 10),
        op(2, Get("k"), 1, 1, 2),
        op(3, Get("k"), None, 3, 4),
    ]
    result = check_kv(history)
    assert result.outcome is Outcome.ILLEGAL
    # Not shrunk to the lone "Get -> 1": without the write, that read would fail for a
    # different reason (a value never written).
    assert result.counterexample == tuple(history)


# -- unknown outcomes -----------------------------------------------------------------------


def unknown_write() -> Operation:
    return op(1, Set("k", 2), None, 2, INF)


def test_unknown_write_may_have_happened() -> None:
    history = [op(1, Set("k", 1), None, 0, 1), unknown_write(), op(2, Get("k"), 2, 5, 6)]
    assert check_kv(history).outcome is Outcome.OK


def test_unknown_write_may_never_have_happened() -> None:
    history = [op(1, Set("k", 1), None, 0, 1), unknown_write(), op(2, Get("k"), 1, 5, 6)]
    assert check_kv(history).outcome is Outcome.OK


def test_unknown_write_cannot_be_undone() -> None:
    history = [
        op(1, Set("k", 1), None, 0, 1),
        unknown_write(),
        op(2, Get("k"), 2, 5, 6),
        op(2, Get("k"), 1, 7, 8),
    ]
    result = check_kv(history)
    assert result.outcome is Outcome.ILLEGAL
    assert result.counterexample == tuple(history)


def test_unknown_write_cannot_take_effect_before_its_call() -> None:
    history = [op(2, Get("k"), 2, 0, 1), unknown_write()]
    assert check_kv(history).outcome is Outcome.ILLEGAL


def test_unknown_outcome_ignores_the_recorded_output() -> None:
    # An unknown-outcome CompareAndSwap is stepped with ANY_OUTPUT, whatever was recorded.
    history = [
        op(1, CompareAndSwap("k", None, 7), "garbage", 0, INF),
        op(2, Get("k"), 7, 1, 2),
    ]
    assert check_kv(history).outcome is Outcome.OK


# -- Delete ---------------------------------------------------------------------------------


def test_delete_replies_the_previous_value_and_leaves_the_key_absent() -> None:
    history = [
        op(1, Delete("k"), None, 0, 1),
        op(1, Set("k", 1), None, 2, 3),
        op(1, Delete("k"), 1, 4, 5),
        op(1, Get("k"), None, 6, 7),
        op(1, CompareAndSwap("k", None, 3), (True, 3), 8, 9),
    ]
    assert check_kv(history).outcome is Outcome.OK


def test_delete_must_reply_the_previous_value() -> None:
    history = [op(1, Set("k", 1), None, 0, 1), op(1, Delete("k"), None, 2, 3)]
    assert check_kv(history).outcome is Outcome.ILLEGAL


def test_read_after_delete_must_see_absent() -> None:
    history = [
        op(1, Set("k", 1), None, 0, 1),
        op(1, Delete("k"), 1, 2, 3),
        op(2, Get("k"), 1, 4, 5),
    ]
    assert check_kv(history).outcome is Outcome.ILLEGAL


# -- partitions -----------------------------------------------------------------------------


def test_violation_on_one_key_is_reported_alone() -> None:
    good = [
        op(1, Set("b", 1), None, 0, 1),
        op(2, Get("b"), 1, 2, 3),
        op(3, Set("b", 2), 1, 2, 6),
    ]
    bad = [op(1, Set("a", 1), None, 0, 1), op(2, Get("a"), None, 2, 3)]
    result = check_kv(good + bad)
    assert result.outcome is Outcome.ILLEGAL
    assert {o.input.key for o in result.counterexample} == {"a"}
    assert result.partitions_total == 2


def test_keys_do_not_interfere() -> None:
    history = [
        op(1, Set("a", 1), None, 0, 1),
        op(1, Set("b", 2), None, 0, 1),
        op(2, Get("a"), 1, 2, 3),
        op(2, Get("b"), 2, 2, 3),
    ]
    result = check_kv(history)
    assert result.outcome is Outcome.OK
    assert result.partitions_checked == 2


# -- limits ---------------------------------------------------------------------------------


def fully_concurrent_history(size: int) -> list[Operation]:
    # Every Set claims the key was absent: only one can be right, but the search has to
    # try many orders to find that out.
    return [op(i, Set("k", i), None, 0, 100) for i in range(size)] + [
        op(size, Get("k"), -1, 0, 100)
    ]


def test_budget_exhaustion_is_unknown() -> None:
    result = check_kv(fully_concurrent_history(12), budget=10)
    assert result.outcome is Outcome.UNKNOWN
    assert "budget" in result.explanation
    assert result.steps == 10


def test_timeout_is_unknown() -> None:
    result = check_kv(fully_concurrent_history(12), timeout=0.0)
    assert result.outcome is Outcome.UNKNOWN
    assert "timeout" in result.explanation


def test_invalid_intervals_are_rejected() -> None:
    with pytest.raises(ValueError, match="before its call"):
        check_kv([op(1, Get("k"), None, 2, 1)])
    with pytest.raises(ValueError, match="finite"):
        check_kv([op(1, Get("k"), None, INF, INF)])


def test_non_kv_request_is_rejected() -> None:
    with pytest.raises(TypeError, match="not a kv request"):
        check_kv([op(1, "GET k", None, 0, 1)])


# -- a model of one's own -------------------------------------------------------------------


class RegisterModel(Model):
    """A write-only register plus reads, to show the Model contract on something tiny."""

    def init(self) -> int:
        return 0

    def step(self, state: Any, input: Any, output: Any) -> tuple[bool, Any]:
        kind, value = input
        if kind == "write":
            return True, value
        return output is ANY_OUTPUT or output == state, state


def test_custom_model() -> None:
    ok = [op(1, ("write", 1), None, 0, 1), op(2, ("read", None), 1, 2, 3)]
    stale = [op(1, ("write", 1), None, 0, 1), op(2, ("read", None), 0, 2, 3)]
    assert check(ok, RegisterModel()).outcome is Outcome.OK
    result = check(stale, RegisterModel())
    assert result.outcome is Outcome.ILLEGAL
    assert "client 2: ('read', None) -> 0" in result.explanation


# -- the model mirrors KvStateMachine -------------------------------------------------------


REQUESTS = [
    Get("k"),
    Delete("k"),
    CompareAndSwap("k", None, 1),
    CompareAndSwap("k", None, 2),
    Set("k", 2),
    CompareAndSwap("k", 2, [3]),
    CompareAndSwap("k", 2, 4),
    Get("k"),
    Set("k", None),
    CompareAndSwap("k", None, 5),
    Delete("k"),
    Delete("k"),
]


async def test_model_agrees_with_the_state_machine() -> None:
    sm = KvStateMachine()
    entries = [
        Entry(LogId(LeaderId(1, 1), index), Normal(request))
        for index, request in enumerate(REQUESTS, start=1)
    ]
    replies = await sm.apply(entries)
    history = [
        op(1, request, reply, 2 * index, 2 * index + 1)
        for index, (request, reply) in enumerate(zip(REQUESTS, replies, strict=True))
    ]
    assert check_kv(history).outcome is Outcome.OK
    corrupted = list(history)
    corrupted[5] = op(1, REQUESTS[5], (False, 2), 10, 11)  # the swap did happen
    assert check_kv(corrupted).outcome is Outcome.ILLEGAL


# -- generated histories --------------------------------------------------------------------

KEYS = ["a", "b"]
VALUES = st.integers(0, 3)
REQUEST = st.one_of(
    st.builds(Set, st.sampled_from(KEYS), VALUES),
    st.builds(Delete, st.sampled_from(KEYS)),
    st.builds(CompareAndSwap, st.sampled_from(KEYS), st.none() | VALUES, VALUES),
    st.builds(Get, st.sampled_from(KEYS)),
)
STEP = st.tuples(
    REQUEST,
    st.integers(0, 3),  # client
    st.floats(0, 3),  # how long before its linearization point the op was called
    st.floats(0, 3),  # how long after it, it returned
    st.sampled_from(["known", "known", "known", "unknown-happened", "unknown-never"]),
)


def apply(data: dict[str, Any], request: Any) -> Any:
    """The reference semantics, on a plain dict."""
    if isinstance(request, Set):
        previous = data.get(request.key)
        data[request.key] = request.value
        return previous
    if isinstance(request, Delete):
        return data.pop(request.key, None)
    if isinstance(request, CompareAndSwap):
        current = data.get(request.key)
        if current == request.expected:
            data[request.key] = request.new
            return (True, request.new)
        return (False, current)
    return data.get(request.key)


def linearizable_history(steps: list[tuple[Any, int, float, float, str]]) -> list[Operation]:
    """Run ``steps`` sequentially (op i takes effect at time i) and widen each interval."""
    data: dict[str, Any] = {}
    history = []
    for point, (request, client, before, after, fate) in enumerate(steps):
        if fate == "unknown-never":
            history.append(op(client, request, None, point - before, INF))
            continue
        reply = apply(data, request)
        if fate == "unknown-happened":
            history.append(op(client, request, None, point - before, INF))
        else:
            history.append(op(client, request, reply, point - before, point + after))
    return history


@settings(max_examples=150, deadline=None)
@given(st.lists(STEP, max_size=14))
def test_generated_linearizable_histories_are_ok(
    steps: list[tuple[Any, int, float, float, str]],
) -> None:
    result = check_kv(linearizable_history(steps))
    assert result.outcome is Outcome.OK, result.explanation


@settings(max_examples=150, deadline=None)
@given(st.lists(STEP, max_size=14), st.integers(0, 100))
def test_generated_history_with_a_corrupted_read_is_illegal(
    steps: list[tuple[Any, int, float, float, str]], which: int
) -> None:
    history = linearizable_history(steps)
    reads = [i for i, o in enumerate(history) if isinstance(o.input, Get) and o.outcome_known]
    if not reads:
        history.append(op(9, Get("a"), None, len(history), len(history) + 1))
        reads = [len(history) - 1]
    index = reads[which % len(reads)]
    corrupted = history[index] = attrs.evolve(history[index], output="never written")
    result = check_kv(history)
    assert result.outcome is Outcome.ILLEGAL
    assert corrupted in result.counterexample
    assert set(result.counterexample) <= set(history)
    assert check_kv(list(result.counterexample)).outcome is Outcome.ILLEGAL
    assert "cannot be explained" in result.explanation


# -- non-linearizable histories of every shape ---------------------------------------------
#
# Each strategy builds a history whose violation involves only values that were really
# written and acknowledged, so a checker that ignores real-time order accepts it (see
# test_the_violations_depend_on_real_time_order): the checker must use call/ret to reject
# it. Unrelated linearizable traffic on other keys is mixed in.

GAP = st.floats(0.01, 2.0)  # time between two events that must be ordered


def times(data: st.DataObject, count: int, start: float = 0.0) -> list[float]:
    """``count`` strictly increasing times after ``start``."""
    out, now = [], start
    for _ in range(count):
        now += data.draw(GAP)
        out.append(now)
    return out


def noise(data: st.DataObject) -> list[Operation]:
    """Linearizable operations on keys other than ``k``."""
    return linearizable_history(data.draw(st.lists(STEP, max_size=4), label="noise"))


def stale_read_of_a_real_value(data: st.DataObject) -> list[Operation]:
    """v1 is written, then v2 overwrites it (both acknowledged); a read called after v2's
    write returned still sees v1."""
    w1c, w1r, w2c, w2r, rc, rr = times(data, 6)
    return [
        op(1, Set("k", 1), None, w1c, w1r),
        op(2, Set("k", 2), 1, w2c, w2r),
        op(3, Get("k"), 1, rc, rr),
    ]


def lost_write(data: st.DataObject) -> list[Operation]:
    """An acknowledged write is never seen: every read called after it returned (one or
    more, possibly overlapping each other) sees the key absent."""
    wc, wr = times(data, 2)
    reads = [
        op(3 + n, Get("k"), None, rc, rc + data.draw(GAP))
        for n, rc in enumerate(times(data, data.draw(st.integers(1, 3)), wr))
    ]
    return [op(1, Set("k", 1), None, wc, wr), *reads]


def new_old_inversion(data: st.DataObject) -> list[Operation]:
    """While v2 is being written (outcome known or not), one read sees v2 and a later read
    (called after the first returned) sees v1 again."""
    w1c, w1r, w2c, r1c, r1r, r2c, r2r = times(data, 7)
    w2r = data.draw(st.sampled_from([INF, r2r + 1.0]), label="w2 ret")
    return [
        op(1, Set("k", 1), None, w1c, w1r),
        op(2, Set("k", 2), 1, w2c, w2r),
        op(3, Get("k"), 2, r1c, r1r),
        op(4, Get("k"), 1, r2c, r2r),
    ]


def read_from_the_future(data: st.DataObject) -> list[Operation]:
    """A read returns a value whose write began only after the read returned."""
    rc, rr, wc, wr = times(data, 4)
    wr = data.draw(st.sampled_from([wr, INF]), label="w ret")
    return [op(2, Get("k"), 1, rc, rr), op(1, Set("k", 1), None, wc, wr)]


SHAPES = [stale_read_of_a_real_value, lost_write, new_old_inversion, read_from_the_future]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda f: f.__name__)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_every_violation_shape_is_illegal(shape: Any, data: st.DataObject) -> None:
    violation = shape(data)
    history = violation + noise(data)
    order = data.draw(st.permutations(range(len(history))), label="order")
    result = check_kv([history[i] for i in order])
    assert result.outcome is Outcome.ILLEGAL, (shape.__name__, history)
    assert {o.input.key for o in result.counterexample} == {"k"}
    assert set(result.counterexample) <= set(violation)


# -- a brute-force reference ---------------------------------------------------------------


def brute_force_linearizable(history: list[Operation], *, real_time: bool = True) -> bool:
    """Try every order of every subset that keeps all known-outcome operations: is one of
    them a legal sequential run (``apply`` semantics) respecting real-time order?

    With ``real_time=False`` the call/ret times are ignored: a deliberately weakened
    checker, to show which histories need them.
    """
    import itertools

    known = [o for o in history if o.outcome_known]
    unknown = [o for o in history if not o.outcome_known]
    for count in range(len(unknown) + 1):
        for extra in itertools.combinations(unknown, count):
            for order in itertools.permutations([*known, *extra]):
                if real_time and any(
                    later.ret < earlier.call
                    for i, earlier in enumerate(order)
                    for later in order[i + 1 :]
                ):
                    continue
                data: dict[str, Any] = {}
                if all(
                    apply(data, o.input) == o.output or not o.outcome_known for o in order
                ):
                    return True
    return False


SMALL_VALUES = st.integers(1, 2)
SMALL_REQUEST = st.one_of(
    st.builds(Set, st.sampled_from(["k", "j"]), SMALL_VALUES),
    st.builds(Delete, st.sampled_from(["k", "j"])),
    st.builds(CompareAndSwap, st.sampled_from(["k", "j"]), st.none() | SMALL_VALUES, SMALL_VALUES),
    st.builds(Get, st.sampled_from(["k", "j"])),
)
SMALL_REPLY = st.none() | SMALL_VALUES | st.tuples(st.booleans(), st.none() | SMALL_VALUES)


@st.composite
def small_histories(draw: st.DrawFn) -> list[Operation]:
    """Up to 6 operations: a linearizable run whose replies or intervals may then be
    disturbed, so both verdicts occur."""
    steps = draw(st.lists(st.tuples(
        SMALL_REQUEST, st.integers(0, 3), st.sampled_from([0.0, 0.5, 1.5, 3.0]),
        st.sampled_from([0.0, 0.5, 1.5, 3.0]),
        st.sampled_from(["known", "known", "known", "unknown-happened", "unknown-never"]),
    ), max_size=6))
    history = linearizable_history(steps)
    for _ in range(draw(st.sampled_from([0, 1, 1, 2, 3]))):
        if not history:
            break
        k = draw(st.integers(0, len(history) - 1))
        target = history[k]
        if draw(st.booleans()):
            history[k] = attrs.evolve(target, output=draw(SMALL_REPLY))
        elif target.outcome_known:
            shift = draw(st.sampled_from([-3.0, -1.0, 1.0, 3.0]))
            history[k] = attrs.evolve(target, call=target.call + shift, ret=target.ret + shift)
    return history


@settings(max_examples=400, deadline=None)
@given(small_histories())
def test_check_agrees_with_brute_force(history: list[Operation]) -> None:
    expected = brute_force_linearizable(history)
    result = check_kv(history)
    assert result.outcome is (Outcome.OK if expected else Outcome.ILLEGAL), (
        history, result.explanation,
    )


def test_brute_force_itself_sees_both_verdicts() -> None:
    ok = [op(1, Set("k", 1), None, 0, 1), op(2, Get("k"), 1, 2, 3)]
    stale = [op(1, Set("k", 1), None, 0, 1), op(2, Get("k"), None, 2, 3)]
    assert brute_force_linearizable(ok)
    assert not brute_force_linearizable(stale)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda f: f.__name__)
@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_the_violations_depend_on_real_time_order(shape: Any, data: st.DataObject) -> None:
    """A checker that ignores call/ret accepts every generated violation; the real one and
    the brute-force reference reject it."""
    history = shape(data)
    assert brute_force_linearizable(history, real_time=False)
    assert not brute_force_linearizable(history)
    assert check_kv(history).outcome is Outcome.ILLEGAL
