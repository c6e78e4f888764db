"""The Counter battery: exact replies, and generated call sequences against CounterModel
(with a snapshot restored mid-way behaving the same)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from openraft_trio.objects import ErrorReply
from openraft_trio.objects.batteries import Counter
from openraft_trio.testing.battery_models import CounterModel

from ._battery_harness import BLANK_STEP, Step, check_against_model


def test_counter_replies() -> None:
    steps = [
        Step("add", ()),
        Step("add", (5,)),
        Step("set", (-3,)),
        Step("get"),
        Step("add", (-4,)),
        Step("get"),
    ]
    assert check_against_model(Counter, CounterModel(), steps) == [1, 6, 6, -3, -7, -7]


def test_counter_refuses_what_is_not_an_int_and_keeps_its_value() -> None:
    steps = [Step("add", (2,)), Step("add", (True,)), Step("set", (1.5,))]
    steps.append(Step("get"))
    replies = check_against_model(Counter, CounterModel(), steps)
    assert replies[1] == ErrorReply("method_raised", "TypeError", "n must be an int, got bool")
    assert replies[2] == ErrorReply("method_raised", "TypeError", "value must be an int, got float")
    assert replies[3] == 2


def test_counter_starts_from_a_given_value() -> None:
    assert check_against_model(Counter(value=10), CounterModel(10), [Step("add", (1,))]) == [11]


numbers = st.integers(-1000, 1000)
bad_numbers = st.sampled_from([True, 1.5, "1", None])
counter_steps = st.one_of(
    numbers.map(lambda n: Step("add", (n,))),
    st.just(Step("add", ())),
    numbers.map(lambda n: Step("set", (n,))),
    bad_numbers.map(lambda n: Step("add", (n,))),
    bad_numbers.map(lambda n: Step("set", (n,))),
    st.just(Step("get")),
    st.just(BLANK_STEP),
)


@settings(max_examples=60)
@given(steps=st.lists(counter_steps, max_size=40), data=st.data())
def test_counter_follows_its_model(steps: list[Step], data: st.DataObject) -> None:
    snapshot_at = data.draw(st.none() | st.integers(0, len(steps)))
    check_against_model(Counter, CounterModel(), steps, snapshot_at)
