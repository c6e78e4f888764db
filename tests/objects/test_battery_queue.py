"""The FifoQueue battery: exact replies, and generated call sequences against QueueModel
(with a snapshot restored mid-way behaving the same)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openraft_trio.objects import ErrorReply
from openraft_trio.objects.batteries import FifoQueue, Full
from openraft_trio.testing.battery_models import QueueModel

from ._battery_harness import BLANK_STEP, Step, check_against_model


def test_queue_replies() -> None:
    steps = [
        Step("get"),
        Step("peek"),
        Step("put", ("x",)),
        Step("put", ((1, 2),)),
        Step("size"),
        Step("peek"),
        Step("get"),
        Step("get"),
        Step("get"),
        Step("size"),
    ]
    assert check_against_model(FifoQueue, QueueModel(), steps) == [
        None,
        None,
        1,
        2,
        2,
        "x",
        "x",
        [1, 2],
        None,
        0,
    ]


def test_queue_max_size_and_none() -> None:
    steps = [
        Step("put", ("x",)),
        Step("put", ("y",)),
        Step("put", (None,)),
        Step("get"),
        Step("put", ("y",)),
        Step("get"),
    ]
    replies = check_against_model(FifoQueue(max_size=1), QueueModel(max_size=1), steps)
    assert replies == [
        1,
        Full(1),
        ErrorReply(
            "method_raised", "ValueError", "cannot put None: get replies None for an empty queue"
        ),
        "x",
        1,
        "y",
    ]


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_queue_refuses_a_bad_limit(bad: object) -> None:
    with pytest.raises((TypeError, ValueError), match="max_size"):
        FifoQueue(max_size=bad)  # type: ignore[arg-type]


items = st.one_of(
    st.integers(0, 5), st.sampled_from(["x", "y"]), st.lists(st.integers(0, 2), max_size=2)
)
queue_steps = st.one_of(
    items.map(lambda item: Step("put", (item,))),
    st.sampled_from([Step("get"), Step("get"), Step("peek"), Step("size"), Step("put", (None,))]),
    st.just(BLANK_STEP),
)


@settings(max_examples=60)
@given(
    steps=st.lists(queue_steps, max_size=40),
    max_size=st.none() | st.integers(1, 3),
    data=st.data(),
)
def test_queue_follows_its_model(
    steps: list[Step], max_size: int | None, data: st.DataObject
) -> None:
    snapshot_at = data.draw(st.none() | st.integers(0, len(steps)))
    check_against_model(FifoQueue(max_size=max_size), QueueModel(max_size), steps, snapshot_at)
