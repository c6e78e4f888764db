"""LogIdList: the log's ids stored as the first id of each leader's run."""

from __future__ import annotations

import pytest

from openraft_trio._engine.log_ids import LogIdList

from ._engine_helpers import lid


def make(*runs: tuple[int, int, int, int]) -> LogIdList:
    """Runs of ``(term, node, first, last)`` appended in order."""
    lst = LogIdList()
    for term, node, first, last in runs:
        for i in range(first, last + 1):
            lst.append(lid(term, node, i))
    return lst


def test_empty_list() -> None:
    lst = LogIdList()
    assert lst.last is None
    assert lst.first_index == 0
    assert lst.get(0) is None
    assert lst.contains(None)
    assert not lst.contains(lid(1, 1, 0))


def test_append_keeps_one_key_per_run() -> None:
    lst = make((1, 1, 0, 3), (2, 2, 4, 5), (2, 3, 6, 6))
    assert lst.key_log_ids() == [lid(1, 1, 0), lid(2, 2, 4), lid(2, 3, 6)]
    assert lst.last == lid(2, 3, 6)


def test_append_must_be_contiguous() -> None:
    lst = make((1, 1, 0, 3))
    with pytest.raises(ValueError, match="contiguous"):
        lst.append(lid(1, 1, 5))
    with pytest.raises(ValueError, match="contiguous"):
        lst.append(lid(1, 1, 3))


def test_get_finds_the_run_of_an_index() -> None:
    lst = make((1, 1, 0, 3), (2, 2, 4, 5))
    assert [lst.get(i) for i in range(7)] == [
        lid(1, 1, 0),
        lid(1, 1, 1),
        lid(1, 1, 2),
        lid(1, 1, 3),
        lid(2, 2, 4),
        lid(2, 2, 5),
        None,
    ]
    assert lst.get(-1) is None
    assert lst.contains(lid(2, 2, 5))
    assert not lst.contains(lid(1, 1, 5))


def test_first_index_of_run() -> None:
    lst = make((1, 1, 0, 3), (2, 2, 4, 5), (3, 1, 6, 8))
    assert [lst.first_index_of_run(i) for i in range(9)] == [0, 0, 0, 0, 4, 4, 6, 6, 6]


def test_truncate_after_mid_run() -> None:
    lst = make((1, 1, 0, 3), (2, 2, 4, 5))
    lst.truncate_after(lid(1, 1, 2))
    assert lst.last == lid(1, 1, 2)
    assert lst.key_log_ids() == [lid(1, 1, 0)]
    assert lst.get(3) is None
    lst.append(lid(3, 3, 3))
    assert lst.get(3) == lid(3, 3, 3)


def test_truncate_after_end_of_a_run_drops_following_runs() -> None:
    lst = make((1, 1, 0, 3), (2, 2, 4, 5))
    lst.truncate_after(lid(1, 1, 3))
    assert lst.last == lid(1, 1, 3)
    assert lst.key_log_ids() == [lid(1, 1, 0)]


def test_truncate_after_none_drops_everything() -> None:
    lst = make((1, 1, 0, 3))
    lst.truncate_after(None)
    assert lst.last is None
    assert lst.key_log_ids() == []
    lst.append(lid(2, 2, 0))
    assert lst.last == lid(2, 2, 0)


def test_truncate_after_the_last_id_is_a_no_op() -> None:
    lst = make((1, 1, 0, 3), (2, 2, 4, 5))
    lst.truncate_after(lid(2, 2, 5))
    assert lst.last == lid(2, 2, 5)
    assert lst.key_log_ids() == [lid(1, 1, 0), lid(2, 2, 4)]


def test_truncate_after_beyond_the_end_is_a_no_op() -> None:
    lst = make((1, 1, 0, 3))
    lst.truncate_after(lid(1, 1, 7))
    assert lst.last == lid(1, 1, 3)
    assert lst.get(2) == lid(1, 1, 2)


def test_purge_mid_run_keeps_the_rest_of_the_run() -> None:
    lst = make((1, 1, 0, 3), (2, 2, 4, 5))
    lst.purge(lid(1, 1, 1))
    assert lst.purged == lid(1, 1, 1)
    assert lst.first_index == 2
    assert lst.get(0) is None
    assert lst.get(1) == lid(1, 1, 1)  # the purged id itself is still known
    assert lst.get(2) == lid(1, 1, 2)
    assert lst.first_index_of_run(3) == 2
    assert lst.key_log_ids() == [lid(1, 1, 2), lid(2, 2, 4)]
    assert lst.last == lid(2, 2, 5)


def test_purge_at_the_end_of_a_run() -> None:
    lst = make((1, 1, 0, 3), (2, 2, 4, 5))
    lst.purge(lid(1, 1, 3))
    assert lst.get(4) == lid(2, 2, 4)
    assert lst.first_index_of_run(5) == 4
    assert lst.key_log_ids() == [lid(2, 2, 4)]


def test_purge_everything() -> None:
    lst = make((1, 1, 0, 3))
    lst.purge(lid(1, 1, 3))
    assert lst.last == lid(1, 1, 3)
    assert lst.key_log_ids() == []
    assert lst.get(3) == lid(1, 1, 3)
    lst.append(lid(2, 2, 4))
    assert lst.get(4) == lid(2, 2, 4)


def test_purge_beyond_the_end_moves_last() -> None:
    """Installing a snapshot past our log purges everything; the log then continues."""
    lst = make((1, 1, 0, 3))
    lst.purge(lid(2, 2, 9))
    assert lst.last == lid(2, 2, 9)
    assert lst.first_index == 10
    lst.append(lid(2, 2, 10))
    assert lst.get(10) == lid(2, 2, 10)


def test_purge_is_never_backwards() -> None:
    lst = make((1, 1, 0, 5))
    lst.purge(lid(1, 1, 3))
    lst.purge(lid(1, 1, 1))
    assert lst.purged == lid(1, 1, 3)


def test_truncate_after_purged_keeps_purged() -> None:
    lst = make((1, 1, 0, 5))
    lst.purge(lid(1, 1, 2))
    lst.truncate_after(lid(1, 1, 2))
    assert lst.last == lid(1, 1, 2)
    assert lst.key_log_ids() == []
