"""The ReplicatedDict battery: exact replies, and generated call sequences against
DictModel (with a snapshot restored mid-way behaving the same)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openraft_trio.objects import ErrorReply
from openraft_trio.objects.batteries import Full, ReplicatedDict
from openraft_trio.testing.battery_models import DictModel

from ._battery_harness import BLANK_STEP, Step, check_against_model


def test_dict_replies() -> None:
    steps = [
        Step("set", ("b", 1)),
        Step("set", ("a", (1, 2))),
        Step("set", ("b", 2)),
        Step("compare_and_set", ("a", [1, 2], {"x": 1})),
        Step("compare_and_set", ("a", [1, 2], 0)),
        Step("compare_and_set", ("c", None, "new")),
        Step("keys"),
        Step("items"),
        Step("len"),
        Step("delete", ("b",)),
        Step("delete", ("b",)),
        Step("get", ("b",)),
        Step("get", ("a",)),
    ]
    assert check_against_model(ReplicatedDict, DictModel(), steps) == [
        None,
        None,
        1,
        True,
        False,
        True,
        ["a", "b", "c"],
        [["a", {"x": 1}], ["b", 2], ["c", "new"]],
        3,
        2,
        None,
        None,
        {"x": 1},
    ]


def test_dict_max_keys_refuses_new_keys_only() -> None:
    steps = [
        Step("set", ("a", 1)),
        Step("set", ("b", 1)),
        Step("compare_and_set", ("b", None, 1)),
        Step("compare_and_set", ("b", 5, 1)),
        Step("set", ("a", 2)),
        Step("delete", ("a",)),
        Step("set", ("b", 3)),
        Step("items"),
    ]
    assert check_against_model(ReplicatedDict(max_keys=1), DictModel(max_keys=1), steps) == [
        None,
        Full(1),
        Full(1),
        False,
        1,
        2,
        None,
        [["b", 3]],
    ]


def test_dict_refuses_a_key_that_is_not_a_string() -> None:
    steps = [Step("set", (1, "x")), Step("get", (1,)), Step("len")]
    refused = ErrorReply("method_raised", "TypeError", "key must be a str, got int")
    assert check_against_model(ReplicatedDict, DictModel(), steps) == [refused, refused, 0]


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_dict_refuses_a_bad_limit(bad: object) -> None:
    with pytest.raises((TypeError, ValueError), match="max_keys"):
        ReplicatedDict(max_keys=bad)  # type: ignore[arg-type]


keys = st.sampled_from(["a", "b", "c"])
values = st.one_of(
    st.none(),
    st.integers(0, 3),
    st.sampled_from(["x", "y"]),
    st.lists(st.integers(0, 2), max_size=2),
)
dict_steps = st.one_of(
    st.tuples(keys, values).map(lambda kv: Step("set", kv)),
    keys.map(lambda key: Step("delete", (key,))),
    st.tuples(keys, values, values).map(lambda kv: Step("compare_and_set", kv)),
    st.sampled_from([Step("set", (7, "x")), Step("get", (7,)), Step("delete", (None,))]),
    keys.map(lambda key: Step("get", (key,))),
    st.sampled_from([Step("keys"), Step("items"), Step("len"), BLANK_STEP]),
)


@settings(max_examples=60)
@given(
    steps=st.lists(dict_steps, max_size=40),
    max_keys=st.none() | st.integers(1, 3),
    data=st.data(),
)
def test_dict_follows_its_model(
    steps: list[Step], max_keys: int | None, data: st.DataObject
) -> None:
    snapshot_at = data.draw(st.none() | st.integers(0, len(steps)))
    check_against_model(ReplicatedDict(max_keys=max_keys), DictModel(max_keys), steps, snapshot_at)
