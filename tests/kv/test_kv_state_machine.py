"""KvStateMachine: request replies, membership tracking, malformed payloads, snapshots."""

from __future__ import annotations

from typing import Any

import cbor2
import pytest

from openraft_trio._errors import InvalidRequest
from openraft_trio._types import (
    Blank,
    Entry,
    Membership,
    MembershipChange,
    Node,
    Normal,
    SnapshotMeta,
    StoredMembership,
)
from openraft_trio.kv import CompareAndSwap, Delete, Get, KvStateMachine, Set
from openraft_trio.storage import RaftStateMachine

from ._kv_log import Log, apply, log_id

pytestmark = pytest.mark.trio

MEMBERSHIP = Membership(
    configs=[{1, 2, 3}],
    nodes={
        1: Node("127.0.0.1:7001"),
        2: Node("127.0.0.1:7002", {"zone": "b"}),
        3: Node("127.0.0.1:7003"),
        4: Node("127.0.0.1:7004"),
    },
)




async def test_is_a_raft_state_machine() -> None:
    assert isinstance(KvStateMachine(), RaftStateMachine)


async def test_fresh_state() -> None:
    sm = KvStateMachine()
    assert await sm.applied_state() == (None, StoredMembership())
    assert await sm.get_current_snapshot() is None
    assert sm.data == {}
    assert sm.get("a") is None


async def test_set_delete_replies_previous_value() -> None:
    sm, log = KvStateMachine(), Log()
    replies = await apply(
        sm, log, Set("a", 1), Set("a", 2), Set("b", [1, "x"]), Delete("a"), Delete("a")
    )
    assert replies == [None, 1, None, 2, None]
    assert sm.data == {"b": [1, "x"]}
    assert sm.get("b") == [1, "x"]
    assert await sm.applied_state() == (log_id(1, 5), StoredMembership())


async def test_compare_and_swap() -> None:
    sm, log = KvStateMachine(), Log()
    replies = await apply(
        sm,
        log,
        CompareAndSwap("k", None, "v1"),  # absent == None: swaps
        CompareAndSwap("k", None, "v2"),  # no longer absent
        CompareAndSwap("k", "v1", "v3"),
        CompareAndSwap("k", "wrong", "v4"),
    )
    assert replies == [(True, "v1"), (False, "v1"), (True, "v3"), (False, "v3")]
    assert sm.get("k") == "v3"


async def test_get_in_a_log_entry_replies_and_changes_nothing() -> None:
    sm, log = KvStateMachine(), Log()
    await apply(sm, log, Set("a", 1))
    assert await apply(sm, log, Get("a"), Get("missing")) == [1, None]
    assert sm.data == {"a": 1}
    assert sm.last_applied == log_id(1, 3)


async def test_blank_and_membership_entries() -> None:
    sm, log = KvStateMachine(), Log()
    change = log.entry(MembershipChange(MEMBERSHIP))
    replies = await sm.apply([log.entry(Blank()), change, log.entry(Set("a", 1))])
    assert replies == [None, None, None]
    assert await sm.applied_state() == (log_id(1, 3), StoredMembership(change.log_id, MEMBERSHIP))
    assert sm.last_membership == StoredMembership(change.log_id, MEMBERSHIP)


@pytest.mark.parametrize(
    "payload",
    [None, "set a 1", {"key": "a"}, 42, Set(7, 1), Delete(None), Blank()],  # type: ignore[arg-type]
)
async def test_malformed_payload_is_rejected_without_raising(payload: Any) -> None:
    sm, log = KvStateMachine(), Log()
    await apply(sm, log, Set("a", 1))
    entry = Entry(log_id(1, 2), Normal(payload))
    assert await sm.apply([entry, log_id_entry(3, Set("b", 2))]) == [None, None]
    assert sm.rejected == 1
    assert sm.data == {"a": 1, "b": 2}
    assert sm.last_applied == log_id(1, 3)


def log_id_entry(index: int, request: Any) -> Entry:
    return Entry(log_id(1, index), Normal(request))


async def filled_state_machine() -> KvStateMachine:
    sm, log = KvStateMachine(), Log(term=2)
    await apply(sm, log, Set("a", 1), Set("b", {"nested": [1, 2.5, None, True]}))
    await sm.apply([log.entry(MembershipChange(MEMBERSHIP))])
    await apply(sm, log, Set("c", b"\x00bytes"), Delete("a"))
    return sm


async def test_snapshot_round_trip_into_fresh_state_machine() -> None:
    source = await filled_state_machine()
    snapshot = await source.build_snapshot()
    assert snapshot.meta.last_log_id == log_id(2, 5)
    assert snapshot.meta.last_membership == StoredMembership(log_id(2, 3), MEMBERSHIP)
    assert snapshot.meta.snapshot_id == "2-5-1"
    assert await source.get_current_snapshot() == snapshot

    target = KvStateMachine()
    await target.install_snapshot(snapshot.meta, snapshot.data)
    assert target.data == source.data
    assert await target.applied_state() == await source.applied_state()
    assert await target.get_current_snapshot() == snapshot

    # The replica keeps applying after the snapshot.
    log = Log(term=2)
    log.next_index = 6
    assert await apply(target, log, Set("b", 0)) == [{"nested": [1, 2.5, None, True]}]


async def test_snapshot_ids_are_unique_per_build() -> None:
    sm = KvStateMachine()
    first = await sm.build_snapshot()
    second = await sm.build_snapshot()
    assert first.meta.snapshot_id == "0-none-1"
    assert second.meta.snapshot_id == "0-none-2"
    assert first.meta.last_log_id is None


async def test_install_of_older_or_equal_snapshot_is_ignored() -> None:
    old = KvStateMachine()
    await apply(old, Log(), Set("x", "old"))
    old_snapshot = await old.build_snapshot()

    sm = await filled_state_machine()
    before = (sm.data, await sm.applied_state())
    await sm.install_snapshot(old_snapshot.meta, old_snapshot.data)
    assert (sm.data, await sm.applied_state()) == before
    own = await sm.build_snapshot()
    await sm.install_snapshot(own.meta, b"not even cbor")  # equal: ignored before decoding
    assert (sm.data, await sm.applied_state()) == before
    assert await sm.get_current_snapshot() == own


def corrupt_variants(data: bytes) -> list[bytes]:
    decoded = cbor2.loads(data)
    variants = [b"", b"\xff\x00garbage", data[: len(data) // 2], cbor2.dumps([1, 2, 3])]
    for key, bad in [
        ("format", 99),
        ("data", [1, 2]),
        ("data", {1: "int key"}),
        ("last_log_id", [1, 2]),
        ("last_log_id", [9, 1, 9]),  # disagrees with meta
        ("last_membership", [None, ["x", {}]]),
        ("last_membership", [None, [[], {"a": 1}]]),
        ("last_membership", {"log_id": None}),
    ]:
        variants.append(cbor2.dumps({**decoded, key: bad}))
    return variants


async def test_corrupt_snapshot_raises_invalid_request_and_changes_nothing() -> None:
    good = await (await filled_state_machine()).build_snapshot()
    sm, log = KvStateMachine(), Log()
    await apply(sm, log, Set("mine", 1))
    for data in corrupt_variants(good.data):
        with pytest.raises(InvalidRequest):
            await sm.install_snapshot(good.meta, data)
        assert sm.data == {"mine": 1}
        assert await sm.applied_state() == (log_id(1, 1), StoredMembership())
        assert await sm.get_current_snapshot() is None


async def test_snapshot_whose_meta_disagrees_on_membership_is_refused() -> None:
    good = await (await filled_state_machine()).build_snapshot()
    meta = SnapshotMeta(good.meta.last_log_id, StoredMembership(), good.meta.snapshot_id)
    sm = KvStateMachine()
    with pytest.raises(InvalidRequest, match="membership"):
        await sm.install_snapshot(meta, good.data)
    assert await sm.applied_state() == (None, StoredMembership())
