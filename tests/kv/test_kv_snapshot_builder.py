"""KvStateMachine.get_snapshot_builder: a snapshot of the state at capture, built in chunks
while apply goes on, byte-identical to one cbor2.dumps of the whole document."""

from __future__ import annotations

import cbor2
import pytest
import trio

from openraft_trio import codec
from openraft_trio.kv import Delete, KvStateMachine, Set
from openraft_trio.kv._state_machine import _ENCODE_CHUNK, _map_header
from openraft_trio.sessions import table_to_plain
from openraft_trio.storage import BuildsSnapshotsAside

from ._kv_log import Log, apply


def whole_document(sm: KvStateMachine, data: dict[str, object]) -> bytes:
    last = sm.last_applied
    return cbor2.dumps(
        {
            "format": 3,
            "last_log_id": codec.unstructure_log_id(last),
            "last_membership": codec.unstructure_stored_membership(sm.last_membership),
            "sessions": table_to_plain(sm.sessions),
            "data": data,
        }
    )


@pytest.mark.parametrize(
    ("length", "head"),
    [
        (0, b"\xa0"),
        (23, b"\xb7"),
        (24, b"\xb8\x18"),
        (255, b"\xb8\xff"),
        (256, b"\xb9\x01\x00"),
        (65535, b"\xb9\xff\xff"),
        (65536, b"\xba\x00\x01\x00\x00"),
        (2**32, b"\xbb\x00\x00\x00\x01\x00\x00\x00\x00"),
    ],
)
def test_map_header_is_the_cbor_head_of_a_map(length: int, head: bytes) -> None:
    assert _map_header(length) == head  # RFC 8949 section 3
    if length <= 65536:
        assert cbor2.dumps({str(i): 0 for i in range(length)}).startswith(head)


@pytest.mark.trio
async def test_builder_snapshots_the_state_at_capture_while_writes_continue() -> None:
    sm = KvStateMachine()
    assert isinstance(sm, BuildsSnapshotsAside)
    log = Log()
    keys = 3 * _ENCODE_CHUNK + 7  # several chunks, the last one short
    await sm.apply([log.entry(Set(f"k{i}", i)) for i in range(keys)])
    captured_at = sm.last_applied
    expected = sm.data
    expected_bytes = whole_document(sm, expected)
    builder = sm.get_snapshot_builder()

    async def write_more() -> None:
        # Overwrite, delete and add while the builder runs; one write per checkpoint.
        for i in range(50):
            await apply(sm, log, Set(f"k{i}", "new"), Delete(f"k{keys - 1 - i}"), Set(f"x{i}", i))
            await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(write_more)
        snapshot = await builder.build_snapshot()
    assert sm.last_applied is not None
    assert captured_at is not None
    assert sm.last_applied.index == captured_at.index + 150  # the writes went on meanwhile
    assert snapshot.meta.last_log_id == captured_at
    assert snapshot.data == expected_bytes  # byte for byte the state at capture
    assert cbor2.loads(snapshot.data)["data"] == expected
    assert await sm.get_current_snapshot() == snapshot
    # Installed elsewhere, it is the state at capture, not the later one.
    other = KvStateMachine()
    await other.install_snapshot(snapshot.meta, snapshot.data)
    assert other.data == expected
    assert other.last_applied == captured_at


@pytest.mark.trio
async def test_an_older_build_finishing_late_does_not_replace_a_newer_snapshot() -> None:
    sm = KvStateMachine()
    log = Log()
    await apply(sm, log, Set("a", 1))
    older = sm.get_snapshot_builder()
    await apply(sm, log, Set("b", 2))
    newer = await sm.build_snapshot()
    await older.build_snapshot()
    assert await sm.get_current_snapshot() == newer


@pytest.mark.trio
async def test_build_snapshot_is_the_same_document_as_before() -> None:
    sm = KvStateMachine()
    log = Log()
    await apply(sm, log, *(Set(f"k{i}", [i, {"v": i}]) for i in range(100)))
    snapshot = await sm.build_snapshot()
    assert snapshot.data == whole_document(sm, sm.data)


@pytest.mark.trio
async def test_large_values_are_encoded_in_chunks_of_about_a_megabyte(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 64 values of 64 KiB (4 MiB): a chunk of a fixed key count would encode them all at
    # once, holding the event loop for the whole 4 MiB (found with bench_scaling: 64 KiB
    # values lost the leader to one snapshot).
    from openraft_trio.kv import _state_machine

    checkpoints = 0
    real = trio.lowlevel.checkpoint

    async def counting() -> None:
        nonlocal checkpoints
        checkpoints += 1
        await real()

    monkeypatch.setattr(_state_machine.trio.lowlevel, "checkpoint", counting)
    sm = KvStateMachine()
    log = Log()
    await sm.apply([log.entry(Set(f"k{i}", b"v" * 65536)) for i in range(64)])
    expected = whole_document(sm, sm.data)
    snapshot = await sm.get_snapshot_builder().build_snapshot()
    assert snapshot.data == expected
    assert checkpoints >= 4  # at most about 1 MiB between two checkpoints
