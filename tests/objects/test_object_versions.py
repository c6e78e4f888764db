"""Versioned methods and the upgrade entry: old entries replay with old code, and replicas
running different code versions stay identical (or stop) at every index."""

from __future__ import annotations

from typing import Any

import pytest

from openraft_trio.objects import ErrorReply, ObjectStateMachine, UnknownVersionError, Upgrade

from . import _wallet_v1, _wallet_v2
from ._objects import Log, call

V1, V2 = _wallet_v1.Wallet, _wallet_v2.Wallet


def test_the_method_table_resolves_by_version() -> None:
    methods = V2.object_methods
    assert methods.max_version == 2
    assert methods.resolve("add", 1) is V2.add_v1
    assert methods.resolve("add", 2) is V2.add
    assert methods.resolve("add", 7) is V2.add
    assert methods.resolve("reset", 1) is None
    assert V1.object_methods.max_version == 1


def entries(*payloads: Any) -> list[Any]:
    log = Log()
    return [log.entry(p) for p in payloads]


HISTORY = entries(
    call("add", 5),
    call("reset"),  # not there yet at version 1: the same error on old and new code
    Upgrade(1),  # not above the active version: a no-op
    call("add", 1, version=2),  # pinned above the active version
    Upgrade(2),
    call("add", 5),
    call("add", 5, version=1),  # pinned to the old code
    call("reset"),
    call("add", 2),
)


async def test_entries_apply_with_the_code_of_their_version() -> None:
    sm = ObjectStateMachine(V2)
    replies = await sm.apply(HISTORY)
    assert replies == [
        5,
        ErrorReply("unknown_method", "", "Wallet has no command 'reset' at version 1"),
        1,
        ErrorReply(
            "version_not_active",
            "",
            "add: version 2 is not active (the active version is 1; run upgrade first)",
        ),
        2,
        11,  # version 2: a bonus coin
        16,  # pinned to version 1: no bonus
        0,
        3,
    ]
    assert sm.active_version == 2


async def test_old_and_new_code_agree_until_the_upgrade_where_old_code_stops() -> None:
    old, new = ObjectStateMachine(V1), ObjectStateMachine(V2)
    upgrade_at = 4  # HISTORY[4] is Upgrade(2)
    assert await old.apply(HISTORY[:upgrade_at]) == await new.apply(HISTORY[:upgrade_at])
    assert old.state() == new.state()
    with pytest.raises(UnknownVersionError, match="code up to version 1, asked for version 2"):
        await old.apply(HISTORY[upgrade_at:])
    assert old.state() == new.state()  # it stopped before changing anything


async def test_a_replay_of_a_mixed_version_log_is_identical_on_every_replica() -> None:
    # One replica applies everything in one batch, one entry by entry, and one restores a
    # snapshot taken before the upgrade, then applies the rest: all end identical.
    whole = ObjectStateMachine(V2)
    await whole.apply(HISTORY)
    one_by_one = ObjectStateMachine(V2)
    for entry in HISTORY:
        await one_by_one.apply([entry])
    before = ObjectStateMachine(V1)
    await before.apply(HISTORY[:4])
    snapshot = await before.build_snapshot()
    restored = ObjectStateMachine(V2)
    await restored.install_snapshot(snapshot.meta, snapshot.data)
    await restored.apply(HISTORY[4:])
    assert whole.state() == one_by_one.state() == restored.state()
    assert whole.object.coins == 3
    assert (whole.object.log_index, whole.active_version) == (9, 2)


async def test_the_active_version_survives_a_snapshot() -> None:
    sm = ObjectStateMachine(V2)
    await sm.apply(HISTORY[:6])
    snapshot = await sm.build_snapshot()
    copy = ObjectStateMachine(V2)
    await copy.install_snapshot(snapshot.meta, snapshot.data)
    assert copy.active_version == 2
    log = Log()
    log.next_index = 7
    assert await copy.apply([log.entry(call("noop")), log.entry(call("add", 1))]) == [
        ErrorReply("unknown_method", "", "Wallet has no command 'noop' at version 2"),
        13,
    ]


async def test_an_initial_version_starts_new_clusters_on_new_code() -> None:
    sm = ObjectStateMachine(V2, initial_version=2)
    assert await sm.apply(entries(call("add", 1))) == [2]
