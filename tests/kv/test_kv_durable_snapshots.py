"""KvStateMachine with a snapshot directory: snapshots are durable, checksummed, restored."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from openraft_trio._errors import InvalidRequest, StorageError
from openraft_trio._types import (
    Membership,
    MembershipChange,
    Node,
    SnapshotMeta,
    StoredMembership,
)
from openraft_trio.kv import Delete, KvStateMachine, Set
from openraft_trio.kv._snapshot_files import (
    HEADER_SIZE,
    SnapshotFileError,
    decode_snapshot_file,
    encode_snapshot_file,
    parse_snapshot_file_name,
    snapshot_file_name,
)
from openraft_trio.storage import RaftStateMachine, run_inline
from openraft_trio.storage._fs import FileHandle, OsFileSystem

from ._kv_log import Log, apply, log_id

T = TypeVar("T")

MEMBERSHIP = Membership(
    configs=[{1, 2, 3}],
    nodes={
        1: Node("127.0.0.1:7001"),
        2: Node("127.0.0.1:7002", {"zone": "b"}),
        3: Node("127.0.0.1:7003"),
    },
)




def snapshot_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".snap"))


def all_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def kv_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "openraft_trio.kv" and r.levelno == logging.WARNING
    ]


async def durable_with_two_snapshots(directory: Path) -> KvStateMachine:
    """A machine whose directory holds a snapshot at 1-3, then one at 1-5 (newest)."""
    sm = KvStateMachine(directory)
    log = Log()
    await apply(sm, log, MembershipChange(MEMBERSHIP), Set("a", 1), Set("b", 2))
    await sm.build_snapshot()
    await apply(sm, log, Set("a", 10), Delete("b"))
    await sm.build_snapshot()
    assert len(snapshot_files(directory)) == 2
    return sm


# -- round trips --------------------------------------------------------------------------


async def test_built_snapshot_is_restored_by_a_new_state_machine(tmp_path: Path) -> None:
    sm = KvStateMachine(tmp_path)
    assert sm.snapshot_dir == str(tmp_path)
    log = Log(term=2)
    await apply(sm, log, MembershipChange(MEMBERSHIP), Set("a", [1, "x"]), Set("b", b"\x00"))
    snapshot = await sm.build_snapshot()
    assert snapshot_files(tmp_path) == [snapshot_file_name(log_id(2, 3), 1)]
    # Entries applied after the snapshot are not durable: the log replays them.
    await apply(sm, log, Set("c", 3))

    reopened = KvStateMachine(tmp_path)
    assert isinstance(reopened, RaftStateMachine)
    assert reopened.data == {"a": [1, "x"], "b": b"\x00"}
    assert reopened.last_applied == log_id(2, 3)
    assert reopened.last_membership == StoredMembership(log_id(2, 1), MEMBERSHIP)
    assert await reopened.applied_state() == (
        log_id(2, 3),
        StoredMembership(log_id(2, 1), MEMBERSHIP),
    )
    assert await reopened.get_current_snapshot() == snapshot

    # The counter resumes above the files on disk: ids and names stay unique.
    again = await reopened.build_snapshot()
    assert again.meta.snapshot_id == "2-3-2"
    assert snapshot_files(tmp_path)[-1] == snapshot_file_name(log_id(2, 3), 2)


async def test_snapshot_of_nothing_round_trips(tmp_path: Path) -> None:
    snapshot = await KvStateMachine(tmp_path).build_snapshot()
    assert snapshot.meta.last_log_id is None
    reopened = KvStateMachine(tmp_path)
    assert await reopened.get_current_snapshot() == snapshot
    assert reopened.last_applied is None
    assert reopened.data == {}


async def test_installed_snapshot_is_persisted_and_restored(tmp_path: Path) -> None:
    source = KvStateMachine()
    log = Log(term=3)
    await apply(source, log, MembershipChange(MEMBERSHIP), Set("k", "v"), Set("n", 7))
    snapshot = await source.build_snapshot()

    target = KvStateMachine(tmp_path / "follower")
    await target.install_snapshot(snapshot.meta, snapshot.data)
    assert snapshot_files(tmp_path / "follower") == [snapshot_file_name(log_id(3, 3), 1)]

    reopened = KvStateMachine(tmp_path / "follower")
    assert reopened.data == {"k": "v", "n": 7}
    assert reopened.last_applied == log_id(3, 3)
    assert reopened.last_membership == StoredMembership(log_id(3, 1), MEMBERSHIP)
    assert await reopened.get_current_snapshot() == snapshot  # the leader's id is kept

    # An install that is not newer than what is applied writes nothing.
    await reopened.install_snapshot(snapshot.meta, snapshot.data)
    assert len(snapshot_files(tmp_path / "follower")) == 1


async def test_invalid_install_writes_nothing(tmp_path: Path) -> None:
    sm = KvStateMachine(tmp_path)
    meta = SnapshotMeta(log_id(1, 4), StoredMembership(), "x")
    with pytest.raises(InvalidRequest):
        await sm.install_snapshot(meta, b"not cbor")
    assert snapshot_files(tmp_path) == []
    assert sm.last_applied is None


async def test_in_memory_mode_touches_no_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    sm = KvStateMachine()
    assert sm.snapshot_dir is None
    await apply(sm, Log(), Set("a", 1))
    first = await sm.build_snapshot()
    assert first.meta.snapshot_id == "1-1-1"
    assert all_files(tmp_path) == []


# -- startup: empty, missing, leftovers -----------------------------------------------------


async def test_empty_or_missing_directory_gives_the_empty_state(tmp_path: Path) -> None:
    missing = tmp_path / "a" / "b"
    for directory in (tmp_path, missing):
        sm = KvStateMachine(directory)
        assert directory.is_dir()
        assert sm.data == {}
        assert sm.last_applied is None
        assert sm.last_membership == StoredMembership()
        assert await sm.get_current_snapshot() is None


async def test_leftover_tmp_files_are_removed(tmp_path: Path) -> None:
    await durable_with_two_snapshots(tmp_path)
    torn = tmp_path / (snapshot_file_name(log_id(1, 9), 7) + ".tmp")
    torn.write_bytes(b"half a snapsh")
    unrelated = tmp_path / "notes.txt"
    unrelated.write_text("mine")

    sm = KvStateMachine(tmp_path)
    assert not torn.exists()
    assert unrelated.read_text() == "mine"
    assert sm.last_applied == log_id(1, 5)
    # The torn file's sequence number was never durable under a final name; the next
    # file still gets a fresh one.
    await sm.build_snapshot()
    assert snapshot_files(tmp_path)[-1] == snapshot_file_name(log_id(1, 5), 3)


# -- damaged files ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda raw: raw[:-1] + bytes([raw[-1] ^ 0x01]), id="payload-bit-flip"),
        pytest.param(lambda raw: raw[:14] + bytes([raw[14] ^ 0x80]) + raw[15:], id="header-flip"),
        pytest.param(lambda raw: raw[: len(raw) // 2], id="truncated"),
        pytest.param(lambda raw: raw[: HEADER_SIZE - 1], id="truncated-header"),
        pytest.param(lambda raw: b"", id="empty"),
        pytest.param(lambda raw: raw + b"\x00", id="trailing-byte"),
    ],
)
async def test_newest_valid_snapshot_wins_over_a_damaged_newer_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: Callable[[bytes], bytes]
) -> None:
    await durable_with_two_snapshots(tmp_path)
    newest = tmp_path / snapshot_files(tmp_path)[-1]
    newest.write_bytes(damage(newest.read_bytes()))

    with caplog.at_level(logging.WARNING, logger="openraft_trio.kv"):
        sm = KvStateMachine(tmp_path)
    assert sm.last_applied == log_id(1, 3)
    assert sm.data == {"a": 1, "b": 2}
    assert sm.last_membership == StoredMembership(log_id(1, 1), MEMBERSHIP)
    current = await sm.get_current_snapshot()
    assert current is not None
    assert current.meta.last_log_id == log_id(1, 3)
    warnings = kv_warnings(caplog)
    assert len(warnings) == 1
    assert newest.name in warnings[0]


async def test_damaged_files_go_once_a_newer_snapshot_is_durable(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await durable_with_two_snapshots(tmp_path)
    older, newest = snapshot_files(tmp_path)
    (tmp_path / newest).write_bytes(b"garbage")

    with caplog.at_level(logging.WARNING, logger="openraft_trio.kv"):
        sm = KvStateMachine(tmp_path, keep_snapshots=2)
        assert len(kv_warnings(caplog)) == 1
        await apply_more(sm, from_index=4, count=3)  # 1-4 .. 1-6: sorts after the damaged
        await sm.build_snapshot()
    new = snapshot_file_name(log_id(1, 6), 3)
    assert snapshot_files(tmp_path) == [older, new]

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="openraft_trio.kv"):
        assert KvStateMachine(tmp_path).last_applied == log_id(1, 6)
    assert kv_warnings(caplog) == []


async def apply_more(sm: KvStateMachine, *, from_index: int, count: int) -> None:
    log = Log()
    log.next_index = from_index
    await apply(sm, log, *(Set(f"k{i}", i) for i in range(count)))


async def test_file_whose_data_disagrees_with_its_name_is_rejected(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await durable_with_two_snapshots(tmp_path)
    newest = snapshot_files(tmp_path)[-1]
    # A well-formed file (valid checksum) whose name claims a later position than its data.
    liar = snapshot_file_name(log_id(1, 9), 5)
    (tmp_path / liar).write_bytes((tmp_path / newest).read_bytes())
    # And one that sorts newer still, whose payload is CBOR but not a kv snapshot.
    alien = snapshot_file_name(log_id(2, 1), 6)
    (tmp_path / alien).write_bytes(encode_snapshot_file("x", b"\xa0"))

    with caplog.at_level(logging.WARNING, logger="openraft_trio.kv"):
        sm = KvStateMachine(tmp_path)
    assert sm.last_applied == log_id(1, 5)
    assert sm.data == {"a": 10}
    warnings = kv_warnings(caplog)
    assert len(warnings) == 2
    assert alien in warnings[0]
    assert liar in warnings[1]


# -- retention ----------------------------------------------------------------------------


@pytest.mark.parametrize("keep", [1, 2, 3])
async def test_only_the_newest_keep_snapshots_remain(tmp_path: Path, keep: int) -> None:
    sm = KvStateMachine(tmp_path, keep_snapshots=keep)
    log = Log()
    expected = []
    for i in range(5):
        await apply(sm, log, Set("i", i))
        await sm.build_snapshot()
        expected.append(snapshot_file_name(log_id(1, i + 1), i + 1))
        assert snapshot_files(tmp_path) == expected[-keep:]
    assert KvStateMachine(tmp_path).data == {"i": 4}


@pytest.mark.parametrize("keep", [0, -1])
def test_keep_snapshots_must_be_positive(tmp_path: Path, keep: int) -> None:
    with pytest.raises(ValueError, match="keep_snapshots"):
        KvStateMachine(tmp_path, keep_snapshots=keep)


# -- I/O: ordering, errors ----------------------------------------------------------------


class RecordingFS(OsFileSystem):
    """The real disk, logging every mutating call and failing the ones it is told to."""

    def __init__(self, fail: str | None = None) -> None:
        self.ops: list[tuple[str, str]] = []
        self.fail = fail

    def _op(self, op: str, path: str) -> None:
        self.ops.append((op, os.path.basename(path)))
        if op == self.fail:
            raise OSError(28, "No space left on device")

    def open(self, path: str, *, create: bool = False, truncate: bool = False) -> FileHandle:
        self._op("open", path)
        return _RecordingHandle(self, path, super().open(path, create=create, truncate=truncate))

    def rename(self, src: str, dst: str) -> None:
        self._op("rename", dst)
        super().rename(src, dst)

    def unlink(self, path: str) -> None:
        self._op("unlink", path)
        super().unlink(path)

    def fsync_dir(self, path: str) -> None:
        self._op("fsync_dir", path)
        super().fsync_dir(path)


class _RecordingHandle:
    def __init__(self, fs: RecordingFS, path: str, inner: FileHandle) -> None:
        self._fs, self._path, self._inner = fs, path, inner

    def write(self, data: bytes) -> None:
        self._fs._op("write", self._path)
        self._inner.write(data)

    def fsync(self) -> None:
        self._fs._op("fsync", self._path)
        self._inner.fsync()

    def truncate(self, size: int) -> None:
        self._inner.truncate(size)

    def pread(self, offset: int, size: int) -> bytes:
        return self._inner.pread(offset, size)

    def size(self) -> int:
        return self._inner.size()

    def close(self) -> None:
        self._inner.close()


async def test_snapshot_is_durable_before_build_returns(tmp_path: Path) -> None:
    fs = RecordingFS()
    calls: list[str] = []

    async def runner(fn: Callable[[], T]) -> T:
        calls.append("run_io")
        return await run_inline(fn)

    sm = KvStateMachine(tmp_path, fs=fs, keep_snapshots=1, run_io=runner)
    await apply(sm, Log(), Set("a", 1))
    fs.ops.clear()
    await sm.build_snapshot()
    first = snapshot_file_name(log_id(1, 1), 1)
    assert fs.ops == [
        ("open", first + ".tmp"),
        ("write", first + ".tmp"),
        ("fsync", first + ".tmp"),
        ("rename", first),
        ("fsync_dir", tmp_path.name),
    ]
    fs.ops.clear()
    await sm.build_snapshot()
    second = snapshot_file_name(log_id(1, 1), 2)
    # The old file goes only after the new one is durable, and its removal is made durable.
    assert fs.ops[-4:] == [
        ("rename", second),
        ("fsync_dir", tmp_path.name),
        ("unlink", first),
        ("fsync_dir", tmp_path.name),
    ]
    assert calls == ["run_io", "run_io"]


@pytest.mark.parametrize("fail", ["open", "write", "fsync", "rename", "fsync_dir"])
async def test_io_error_while_building_is_a_storage_error(tmp_path: Path, fail: str) -> None:
    sm = KvStateMachine(tmp_path)
    log = Log()
    await apply(sm, log, Set("a", 1))
    kept = await sm.build_snapshot()

    broken = KvStateMachine(tmp_path, fs=RecordingFS(fail=fail), run_io=run_inline)
    await apply(broken, log, Set("a", 2))
    with pytest.raises(StorageError) as info:
        await broken.build_snapshot()
    assert isinstance(info.value.__cause__, OSError)
    assert snapshot_file_name(log_id(1, 2), 2) in str(info.value)
    assert await broken.get_current_snapshot() == kept


async def test_io_error_while_installing_is_a_storage_error(tmp_path: Path) -> None:
    source = KvStateMachine()
    await apply(source, Log(), Set("a", 1))
    snapshot = await source.build_snapshot()

    sm = KvStateMachine(tmp_path, fs=RecordingFS(fail="rename"), run_io=run_inline)
    with pytest.raises(StorageError, match="snapshot-") as info:
        await sm.install_snapshot(snapshot.meta, snapshot.data)
    assert isinstance(info.value.__cause__, OSError)
    # Nothing changed: not in memory, not on disk under a final name.
    assert sm.data == {}
    assert sm.last_applied is None
    assert await sm.get_current_snapshot() is None
    assert snapshot_files(tmp_path) == []


async def test_io_error_while_pruning_is_a_storage_error(tmp_path: Path) -> None:
    sm = KvStateMachine(tmp_path, fs=RecordingFS(fail="unlink"), keep_snapshots=1)
    await sm.build_snapshot()
    with pytest.raises(StorageError, match="cannot delete") as info:
        await sm.build_snapshot()
    assert isinstance(info.value.__cause__, OSError)


def test_io_error_at_startup_is_a_storage_error(tmp_path: Path) -> None:
    (tmp_path / "snapshot-x.snap.tmp").write_bytes(b"")
    with pytest.raises(StorageError, match=r"snapshot-x\.snap\.tmp") as info:
        KvStateMachine(tmp_path, fs=RecordingFS(fail="unlink"))
    assert isinstance(info.value.__cause__, OSError)
    file_in_the_way = tmp_path / "file"
    file_in_the_way.write_text("")
    with pytest.raises(StorageError):
        KvStateMachine(file_in_the_way)


# -- file format --------------------------------------------------------------------------


def test_file_format_round_trip_and_rejections() -> None:
    raw = encode_snapshot_file("1-5-3", b"payload")
    assert raw[:8] == b"ORTKVSNP"
    assert len(raw) == HEADER_SIZE + len("1-5-3") + len(b"payload")
    assert decode_snapshot_file(raw) == ("1-5-3", b"payload")
    assert decode_snapshot_file(encode_snapshot_file("", b"")) == ("", b"")

    with pytest.raises(SnapshotFileError, match="magic"):
        decode_snapshot_file(b"X" + raw[1:])
    with pytest.raises(SnapshotFileError, match="version"):
        decode_snapshot_file(raw[:8] + b"\x00\x02" + raw[10:])
    with pytest.raises(SnapshotFileError, match="checksum"):
        decode_snapshot_file(raw[:-1] + b"X")
    with pytest.raises(SnapshotFileError, match="truncated"):
        decode_snapshot_file(raw[:-1])
    with pytest.raises(SnapshotFileError, match="trailing"):
        decode_snapshot_file(raw + b"\x00")


def test_file_names_sort_by_position_then_sequence() -> None:
    names = [
        snapshot_file_name(None, 1),
        snapshot_file_name(log_id(1, 0), 2),
        snapshot_file_name(log_id(1, 9), 3),
        snapshot_file_name(log_id(1, 10), 4),
        snapshot_file_name(log_id(2, 10), 5),
        snapshot_file_name(log_id(2, 10), 6),
    ]
    assert sorted(names) == names
    assert parse_snapshot_file_name(names[3]) == (1, 10, 4)
    assert parse_snapshot_file_name(names[3] + ".tmp") is None
    assert parse_snapshot_file_name("snapshot-1-2-3.snap") is None
