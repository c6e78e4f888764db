"""The LockService battery: exact replies (expiry by log time, fencing tokens, renew and
release by the holder only), and generated call sequences against LockModel (with a
snapshot restored mid-way behaving the same)."""

from __future__ import annotations

import math
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openraft_trio.objects import ErrorReply
from openraft_trio.objects.batteries import Acquired, Held, LockService, _lock
from openraft_trio.testing.battery_models import LockModel

from ._battery_harness import BLANK_STEP, Step, check_against_model, final_object


def acquire(name: str, holder: str, lease: object, now: float) -> Step:
    return Step("acquire", (name, holder, lease), now)


def renew(name: str, holder: str, token: int, lease: object, now: float) -> Step:
    return Step("renew", (name, holder, token, lease), now)


def release(name: str, holder: str, token: int, now: float) -> Step:
    return Step("release", (name, holder, token), now)


def owner(name: str) -> Step:
    return Step("owner", (name,))


def run(steps: list[Step]) -> list[object]:
    return check_against_model(LockService, LockModel(), steps)


def test_lock_acquire_renew_release() -> None:
    steps = [
        acquire("L", "a", 10, now=100),  # index 1
        acquire("L", "b", 10, now=101),  # index 2
        owner("L"),
        renew("L", "a", 1, 10, now=105),  # index 3
        renew("L", "b", 1, 10, now=106),  # index 4
        release("L", "b", 1, now=107),  # index 5
        release("L", "a", 2, now=108),  # index 6
        release("L", "a", 1, now=109),  # index 7
        owner("L"),
        release("L", "a", 1, now=110),  # index 8
        acquire("L", "b", 10, now=111),  # index 9
    ]
    assert run(steps) == [
        Acquired(1, 110.0),
        Held("a", 110.0),
        Held("a", 110.0),
        Acquired(1, 115.0),
        None,
        False,
        False,
        True,
        None,
        False,
        Acquired(9, 121.0),
    ]


def test_a_holder_that_stops_renewing_loses_the_lock_after_its_lease_by_log_time() -> None:
    steps = [
        acquire("L", "a", 5, now=100),  # index 1, expires at 105
        acquire("L", "b", 5, now=105),  # index 2: log time 105 is not past 105
        acquire("L", "b", 5, now=105.5),  # index 3: free, a larger token
        renew("L", "a", 1, 5, now=106),  # index 4: a has lost it
        release("L", "a", 1, now=107),  # index 5
        owner("L"),
    ]
    assert run(steps) == [
        Acquired(1, 105.0),
        Held("a", 105.0),
        Acquired(3, 110.5),
        None,
        False,
        Held("b", 110.5),
    ]


def test_expiry_follows_the_log_time_not_the_call_time() -> None:
    # A call stamped late (now=50) is applied after one stamped 200: the log time stays
    # 200, so a's lease (expires 110) is over and the lease granted runs from 200.
    steps = [
        acquire("L", "a", 10, now=100),
        acquire("M", "x", 1, now=200),
        acquire("L", "b", 10, now=50),
        owner("L"),
    ]
    assert run(steps) == [
        Acquired(1, 110.0),
        Acquired(2, 201.0),
        Acquired(3, 210.0),
        Held("b", 210.0),
    ]


def test_fencing_tokens_are_log_indices_and_increase_across_locks() -> None:
    steps = [
        acquire("L", "a", 1, now=1),  # index 1
        BLANK_STEP,  # index 2: a new leader's blank entry
        acquire("M", "b", 1, now=2),  # index 3
        acquire("L", "c", 1, now=3),  # index 4 (L expired at 2)
        acquire("L", "c", 1, now=3.5),  # index 5: the holder again: a fresh token
        renew("L", "c", 4, 1, now=3.6),  # index 6: the old token no longer works
    ]
    assert run(steps) == [
        Acquired(1, 2.0),
        Acquired(3, 3.0),
        Acquired(4, 4.0),
        Acquired(5, 4.5),
        None,
    ]


@pytest.mark.parametrize(
    ("lease", "error"),
    [
        (
            0,
            (
                "ValueError",
                "lease_seconds must be a finite number of seconds greater than 0, got 0",
            ),
        ),
        (
            -1.5,
            (
                "ValueError",
                "lease_seconds must be a finite number of seconds greater than 0, got -1.5",
            ),
        ),
        (
            math.inf,
            (
                "ValueError",
                "lease_seconds must be a finite number of seconds greater than 0, got inf",
            ),
        ),
        (
            math.nan,
            (
                "ValueError",
                "lease_seconds must be a finite number of seconds greater than 0, got nan",
            ),
        ),
        (True, ("TypeError", "lease_seconds must be a number of seconds, got bool")),
        ("5", ("TypeError", "lease_seconds must be a number of seconds, got str")),
    ],
)
def test_a_bad_lease_is_refused_and_changes_nothing(lease: object, error: tuple[str, str]) -> None:
    replies = run([acquire("L", "a", lease, now=1), owner("L"), acquire("L", "b", 1, now=2)])
    assert replies == [ErrorReply("method_raised", *error), None, Acquired(2, 3.0)]
    replies = run([acquire("L", "a", 5, now=1), renew("L", "a", 1, lease, now=2), owner("L")])
    assert replies == [Acquired(1, 6.0), ErrorReply("method_raised", *error), Held("a", 6.0)]


@pytest.mark.parametrize(
    ("step", "message"),
    [
        (acquire(1, "a", 1, now=1), "name must be a str, got int"),  # type: ignore[arg-type]
        (acquire("L", None, 1, now=1), "holder must be a str, got NoneType"),  # type: ignore[arg-type]
        (release("L", "a", "1", now=1), "token must be an int, got str"),  # type: ignore[arg-type]
        (renew("L", "a", 1.0, 1, now=1), "token must be an int, got float"),  # type: ignore[arg-type]
        (owner(None), "name must be a str, got NoneType"),  # type: ignore[arg-type]
    ],
)
def test_bad_names_holders_and_tokens_are_refused(step: Step, message: str) -> None:
    assert run([step]) == [ErrorReply("method_raised", "TypeError", message)]


def test_expired_leases_are_swept_when_the_table_doubles() -> None:
    # 64 leases (63 short), then a grant after the short ones expired: the table is swept
    # before it, down to the live lease, and the next sweep is at 64 again.
    steps = [acquire(f"lock{n}", "a", 1, now=1) for n in range(63)]
    steps += [acquire("long", "a", 100, now=1), acquire("late", "b", 1, now=5)]
    service = final_object(LockService, steps)
    assert isinstance(service, LockService)
    assert sorted(service.leases) == ["late", "long"]
    assert service.sweep_at == 64
    assert run(steps)[-1] == Acquired(65, 6.0)


def test_a_sweep_keeps_a_lease_that_ends_at_the_current_log_time() -> None:
    steps = [
        acquire("L", "a", 1, now=1),  # expires at 2.0
        acquire("M", "b", 1, now=2),  # sweeps: L is still live at log time 2.0
        acquire("L", "c", 1, now=2),
        owner("L"),
    ]
    with mock.patch.object(_lock, "_FIRST_SWEEP", 1):
        replies = check_against_model(LockService(sweep_at=1), LockModel(), steps)
    assert replies[2:] == [Held("a", 2.0), Held("a", 2.0)]


names = st.sampled_from(["L", "M"])
holders = st.sampled_from(["a", "b", "c"])
leases = st.sampled_from([0.5, 1, 2.5, 4])
bad_leases = st.sampled_from([0, -1, math.inf, True])


@st.composite
def lock_steps(draw: st.DrawFn) -> list[Step]:
    """Calls with ``now`` drifting (sometimes back: clients stamp their own clocks); renew
    and release mostly name a recent acquisition (its name, holder and log index as the
    token), else anything."""
    steps: list[Step] = []
    now = 0.0
    index = 0  # the log index of the last command or blank
    acquisitions: list[tuple[str, str, int]] = []
    for _ in range(draw(st.integers(0, 40))):
        kind = draw(
            st.sampled_from(["acquire", "acquire", "renew", "release", "owner", "blank", "bad"])
        )
        if kind == "owner":
            steps.append(owner(draw(names)))
            continue
        index += 1
        now = max(0.0, now + draw(st.sampled_from([-1.0, 0.0, 0.25, 0.5, 1.0, 3.0])))
        if kind == "blank":
            steps.append(BLANK_STEP)
        elif kind == "acquire":
            name, holder = draw(names), draw(holders)
            acquisitions.append((name, holder, index))
            steps.append(acquire(name, holder, draw(leases), now))
        elif kind == "bad":
            steps.append(acquire(draw(names), draw(holders), draw(bad_leases), now))
        else:
            if acquisitions and draw(st.booleans()):
                name, holder, token = draw(st.sampled_from(acquisitions[-3:]))
            else:
                name, holder, token = draw(names), draw(holders), draw(st.integers(0, index))
            if kind == "renew":
                steps.append(renew(name, holder, token, draw(leases), now))
            else:
                steps.append(release(name, holder, token, now))
    return steps


@settings(max_examples=80)
@given(steps=lock_steps(), data=st.data())
def test_lock_follows_its_model(steps: list[Step], data: st.DataObject) -> None:
    snapshot_at = data.draw(st.none() | st.integers(0, len(steps)))
    check_against_model(LockService, LockModel(), steps, snapshot_at)


@settings(max_examples=40)
@given(steps=lock_steps(), data=st.data())
def test_lock_follows_its_model_when_it_sweeps_at_every_grant(
    steps: list[Step], data: st.DataObject
) -> None:
    # Sweeping expired leases must never drop a live one (or change a reply).
    snapshot_at = data.draw(st.none() | st.integers(0, len(steps)))
    with mock.patch.object(_lock, "_FIRST_SWEEP", 1):
        check_against_model(LockService(sweep_at=1), LockModel(), steps, snapshot_at)
