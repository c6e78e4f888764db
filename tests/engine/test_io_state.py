"""IOState: the log pointers' order, and the engine-test helper that checks it."""

from __future__ import annotations

import pytest

from openraft_trio._engine.commands import IOId
from openraft_trio._engine.io_state import IOState, IOStateError
from openraft_trio._engine.log_ids import LogIdList

from ._engine_helpers import INIT_LOG_ID, follower, lid, vote

V = vote(1, 2, committed=True)
LOG = [INIT_LOG_ID] + [lid(1, 2, i) for i in range(1, 6)]


def log_ids(upto: int, purged: int | None = None) -> LogIdList:
    ids = LogIdList()
    for log_id in LOG[: upto + 1]:
        ids.append(log_id)
    if purged is not None:
        ids.purge(LOG[purged])
    return ids


def state(*, flushed: int, committed: int, requested: int, applied: int, snapshot: int | None):
    return IOState(
        flushed=IOId(V, LOG[flushed]),
        committed=LOG[committed],
        apply_requested=LOG[requested],
        applied=LOG[applied],
        snapshot=None if snapshot is None else LOG[snapshot],
    )


def test_pointers_in_order_pass() -> None:
    io = state(flushed=5, committed=4, requested=4, applied=3, snapshot=2)
    assert io.violations(log_ids(5, purged=1)) == []
    io.validate(log_ids(5, purged=1))


@pytest.mark.parametrize(
    ("pointers", "purged", "kind"),
    [
        (dict(flushed=5, committed=4, requested=4, applied=3, snapshot=1), 2, "purged beyond snapshot"),
        (dict(flushed=5, committed=4, requested=4, applied=2, snapshot=3), None, "snapshot > applied"),
        (dict(flushed=5, committed=3, requested=4, applied=4, snapshot=None), None, "applied > committed"),
        (dict(flushed=5, committed=4, requested=2, applied=3, snapshot=None), None, "apply_requested out of range"),
        (dict(flushed=3, committed=4, requested=4, applied=4, snapshot=None), None, "committed > flushed"),
    ],
)
def test_each_order_out_of_place_is_named(pointers: dict, purged: int | None, kind: str) -> None:
    io = state(**pointers)
    assert [k for k, _ in io.violations(log_ids(5, purged=purged))] == [kind]
    with pytest.raises(IOStateError):
        io.validate(log_ids(5, purged=purged))


def test_flushed_beyond_accepted_is_named() -> None:
    io = state(flushed=5, committed=4, requested=4, applied=4, snapshot=None)
    assert [k for k, _ in io.violations(log_ids(4))] == ["flushed > accepted"]


def test_a_snapshot_covers_a_commit_index_never_flushed_into_the_log() -> None:
    io = state(flushed=1, committed=4, requested=4, applied=4, snapshot=4)
    assert io.violations(log_ids(5, purged=4)) == []


def test_the_engine_test_helper_checks_the_pointers_after_every_input() -> None:
    eng = follower(vote=V, log=LOG, committed=LOG[2])
    with pytest.raises(IOStateError, match="applied 4 > committed 2"):
        eng.on_applied(LOG[4])  # the state machine cannot apply past the commit index
