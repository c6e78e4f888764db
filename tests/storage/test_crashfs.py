"""CrashFS: the in-memory file system's power-loss model, fault injection and locks."""

from __future__ import annotations

import errno
import random
import threading
from collections.abc import Callable, Iterator

import pytest

from openraft_trio.storage._fs import FileSystem, write_file_atomic
from openraft_trio.testing.crashfs import CrashFS, Op, SimulatedCrash, WriteInfo


def new_fs() -> CrashFS:
    fs = CrashFS()
    fs.makedirs("/d")
    return fs


def put(fs: CrashFS, path: str, data: bytes, *, sync: bool = True, sync_dir: bool = True) -> None:
    """Create (or append to) ``path``; by default data and name both durable."""
    handle = fs.open(path, create=True)
    handle.write(data)
    if sync:
        handle.fsync()
    handle.close()
    if sync_dir:
        fs.fsync_dir(path.rsplit("/", 1)[0] or "/")


def test_satisfies_the_protocol() -> None:
    fs: FileSystem = CrashFS()
    fs.makedirs("/a/b")
    assert fs.exists("/a")
    assert fs.exists("/a/b")
    assert fs.listdir("/a") == ["b"]


# --- data durability --------------------------------------------------------------------


def test_unsynced_writes_vanish_on_crash() -> None:
    fs = new_fs()
    put(fs, "/d/f", b"", sync_dir=True)  # the name is durable, the content empty
    handle = fs.open("/d/f")
    handle.write(b"hello")
    assert fs.read_file("/d/f") == b"hello"
    assert handle.pread(0, 100) == b"hello"
    after = fs.crash()
    assert after.read_file("/d/f") == b""


def test_fsynced_writes_survive_and_later_unsynced_ones_do_not() -> None:
    fs = new_fs()
    handle = fs.open("/d/f", create=True)
    handle.write(b"abc")
    handle.fsync()
    handle.write(b"def")
    fs.fsync_dir("/d")
    assert fs.read_file("/d/f") == b"abcdef"
    assert fs.durable_files() == {"/d/f": b"abc"}
    assert fs.crash().read_file("/d/f") == b"abc"
    assert fs.crash(keep_unsynced=True).read_file("/d/f") == b"abcdef"


def test_fsync_is_per_file() -> None:
    fs = new_fs()
    put(fs, "/d/a", b"")
    put(fs, "/d/b", b"")
    a, b = fs.open("/d/a"), fs.open("/d/b")
    a.write(b"A")
    b.write(b"B")
    a.fsync()
    after = fs.crash()
    assert after.files() == {"/d/a": b"A", "/d/b": b""}


def test_truncate_is_durable_only_after_fsync() -> None:
    fs = new_fs()
    put(fs, "/d/f", b"0123456789")
    handle = fs.open("/d/f")
    handle.truncate(4)
    assert handle.size() == 4
    assert fs.read_file("/d/f") == b"0123"
    assert fs.crash().read_file("/d/f") == b"0123456789"
    handle.fsync()
    assert fs.crash().read_file("/d/f") == b"0123"


def test_truncate_beyond_the_end_zero_fills() -> None:
    fs = new_fs()
    handle = fs.open("/d/f", create=True)
    handle.write(b"ab")
    handle.truncate(5)
    assert fs.read_file("/d/f") == b"ab\0\0\0"
    handle.write(b"c")
    assert handle.pread(4, 10) == b"\0c"


def test_open_truncate_empties_the_file_volatilely() -> None:
    fs = new_fs()
    put(fs, "/d/f", b"old")
    handle = fs.open("/d/f", create=True, truncate=True)
    assert handle.size() == 0
    assert fs.op_log[-1] == Op(fs.op_count - 1, "truncate", "/d/f", 0)
    assert fs.crash().read_file("/d/f") == b"old"


# --- names --------------------------------------------------------------------------------


def test_created_file_without_fsync_dir_vanishes() -> None:
    fs = new_fs()
    put(fs, "/d/f", b"data", sync=True, sync_dir=False)
    assert fs.exists("/d/f")
    after = fs.crash()
    assert not after.exists("/d/f")
    assert after.listdir("/d") == []


def test_created_file_with_fsync_dir_but_no_data_fsync_is_empty() -> None:
    fs = new_fs()
    put(fs, "/d/f", b"data", sync=False, sync_dir=True)
    assert fs.crash().read_file("/d/f") == b""


def test_rename_without_fsync_dir_reverts_to_old_content() -> None:
    fs = new_fs()
    put(fs, "/d/f", b"old")
    put(fs, "/d/f.tmp", b"new")  # both names durable
    fs.rename("/d/f.tmp", "/d/f")
    assert fs.read_file("/d/f") == b"new"
    assert not fs.exists("/d/f.tmp")
    after = fs.crash()
    assert after.files() == {"/d/f": b"old", "/d/f.tmp": b"new"}


def test_rename_with_fsync_dir_is_atomic_and_durable() -> None:
    fs = new_fs()
    put(fs, "/d/f", b"old")
    put(fs, "/d/f.tmp", b"new", sync_dir=False)
    fs.rename("/d/f.tmp", "/d/f")
    fs.fsync_dir("/d")
    assert fs.crash().files() == {"/d/f": b"new"}


def test_rename_across_directories_needs_both_fsync_dirs() -> None:
    fs = new_fs()
    fs.makedirs("/e")
    put(fs, "/d/f", b"x")
    fs.rename("/d/f", "/e/g")
    fs.fsync_dir("/e")
    # Only the destination is durable: the file is reachable under both names (hard link).
    assert fs.crash().files() == {"/d/f": b"x", "/e/g": b"x"}
    fs2 = new_fs()
    fs2.makedirs("/e")
    put(fs2, "/d/f", b"x")
    fs2.rename("/d/f", "/e/g")
    fs2.fsync_dir("/d")
    fs2.fsync_dir("/e")
    assert fs2.crash().files() == {"/e/g": b"x"}


def test_unlink_without_fsync_dir_comes_back() -> None:
    fs = new_fs()
    put(fs, "/d/f", b"data")
    fs.unlink("/d/f")
    assert not fs.exists("/d/f")
    assert fs.crash().read_file("/d/f") == b"data"
    fs.fsync_dir("/d")
    assert not fs.crash().exists("/d/f")


def test_unlinked_open_file_still_works_but_is_gone_after_crash() -> None:
    fs = new_fs()
    put(fs, "/d/f", b"a")
    handle = fs.open("/d/f")
    fs.unlink("/d/f")
    fs.fsync_dir("/d")
    handle.write(b"b")
    handle.fsync()
    assert handle.pread(0, 10) == b"ab"
    assert fs.crash().files() == {}


def test_makedirs_is_durable_and_listdir_shows_subdirectories() -> None:
    fs = CrashFS()
    fs.makedirs("/a/b/c")
    fs.makedirs("/a/b/c")  # idempotent
    put(fs, "/a/z", b"", sync_dir=False)
    assert fs.listdir("/a") == ["b", "z"]
    after = fs.crash()
    assert after.listdir("/a") == ["b"]
    assert after.listdir("/a/b") == ["c"]
    assert after.exists("/a/b/c")


def test_relative_paths() -> None:
    fs = CrashFS()
    fs.makedirs("data")
    put(fs, "data/f", b"x")
    assert fs.listdir(".") == ["data"]
    assert fs.crash().read_file("./data//f") == b"x"


def test_errors_are_oserrors_like_the_os() -> None:
    fs = new_fs()
    put(fs, "/d/f", b"x")
    with pytest.raises(FileNotFoundError):
        fs.open("/d/missing")
    with pytest.raises(FileNotFoundError):
        fs.open("/nodir/f", create=True)
    with pytest.raises(FileNotFoundError):
        fs.read_file("/d/missing")
    with pytest.raises(FileNotFoundError):
        fs.rename("/d/missing", "/d/g")
    with pytest.raises(FileNotFoundError):
        fs.unlink("/d/missing")
    with pytest.raises(FileNotFoundError):
        fs.listdir("/nodir")
    with pytest.raises(FileNotFoundError):
        fs.fsync_dir("/nodir")
    with pytest.raises(NotADirectoryError):
        fs.listdir("/d/f")
    with pytest.raises(FileExistsError):
        fs.makedirs("/d/f/sub")
    with pytest.raises(IsADirectoryError):
        fs.open("/d", create=True)
    with pytest.raises(IsADirectoryError):
        fs.read_file("/d")
    with pytest.raises(IsADirectoryError):
        fs.unlink("/d")
    assert fs.exists("/d")
    assert fs.exists("/d/f")
    assert not fs.exists("/d/g")


# --- handles --------------------------------------------------------------------------------


def test_closed_handle_raises_value_error() -> None:
    fs = new_fs()
    handle = fs.open("/d/f", create=True)
    handle.write(b"x")
    handle.close()
    handle.close()  # idempotent
    with pytest.raises(ValueError, match="closed"):
        handle.pread(0, 1)
    with pytest.raises(ValueError, match="closed"):
        handle.write(b"y")
    with pytest.raises(ValueError, match="closed"):
        handle.fsync()
    with pytest.raises(ValueError, match="closed"):
        handle.size()
    assert fs.read_file("/d/f") == b"x"


def test_pread_sees_volatile_data_and_short_reads_at_the_end() -> None:
    fs = new_fs()
    writer = fs.open("/d/f", create=True)
    reader = fs.open("/d/f")
    writer.write(b"0123456789")
    assert reader.pread(2, 3) == b"234"
    assert reader.pread(8, 10) == b"89"
    assert reader.pread(20, 10) == b""
    assert reader.size() == 10
    with pytest.raises(OSError, match="Invalid"):
        reader.pread(-1, 1)


# --- tears and crash modes -----------------------------------------------------------------


def test_tear_keeps_exact_prefix_of_the_last_write() -> None:
    fs = new_fs()
    put(fs, "/d/log", b"durable|")
    handle = fs.open("/d/log")
    handle.write(b"abc")
    handle.write(b"defg")
    info = fs.last_write_info()
    assert info == WriteInfo("/d/log", size=15, durable_size=8, unsynced=7)
    assert fs.unsynced_bytes("/d/log") == 7
    for k in range(info.unsynced + 1):
        assert fs.crash(tear=k).read_file("/d/log") == b"durable|abcdefg"[: 8 + k]
    assert fs.crash(tear=100).read_file("/d/log") == b"durable|abcdefg"


def test_tear_only_touches_the_most_recently_written_file() -> None:
    fs = new_fs()
    put(fs, "/d/a", b"")
    put(fs, "/d/b", b"")
    a, b = fs.open("/d/a"), fs.open("/d/b")
    a.write(b"AAAA")
    b.write(b"BBBB")
    info = fs.last_write_info()
    assert info is not None
    assert info.path == "/d/b"
    assert fs.crash(tear=2).files() == {"/d/a": b"", "/d/b": b"BB"}


def test_tear_keeps_durable_when_data_does_not_extend_it() -> None:
    fs = new_fs()
    put(fs, "/d/f", b"abcdef")
    handle = fs.open("/d/f")
    handle.truncate(3)
    handle.write(b"XYZW")
    info = fs.last_write_info()
    assert info is not None
    assert info.unsynced == 0
    assert fs.crash(tear=2).read_file("/d/f") == b"abcdef"
    assert fs.crash(keep_unsynced=True).read_file("/d/f") == b"abcXYZW"


def test_last_write_info_before_any_write_and_after_fsync() -> None:
    fs = new_fs()
    assert fs.last_write_info() is None
    put(fs, "/d/f", b"abc")
    assert fs.last_write_info() == WriteInfo("/d/f", 3, 3, 0)


def test_rng_tears_every_file_to_some_prefix_deterministically() -> None:
    fs = new_fs()
    for name in "abcd":
        put(fs, f"/d/{name}", b"#")
        fs.open(f"/d/{name}").write(name.encode() * 20)
    outcomes = [fs.crash(rng=random.Random(seed)).files() for seed in range(20)]
    assert outcomes == [fs.crash(rng=random.Random(seed)).files() for seed in range(20)]
    for files in outcomes:
        for name in "abcd":
            content = files[f"/d/{name}"]
            assert (b"#" + name.encode() * 20).startswith(content)
            assert len(content) >= 1
    lengths = {len(files["/d/a"]) for files in outcomes}
    assert len(lengths) > 1  # not always the same tear


def test_keep_unsynced_names_keeps_metadata_with_only_durable_data() -> None:
    fs = new_fs()
    put(fs, "/d/new", b"unsynced", sync=False, sync_dir=False)
    put(fs, "/d/f", b"old")
    put(fs, "/d/f.tmp", b"new", sync_dir=False)
    fs.rename("/d/f.tmp", "/d/f")
    assert fs.crash(keep_unsynced_names=True).files() == {"/d/f": b"new", "/d/new": b""}
    assert fs.crash(keep_unsynced_names=True, keep_unsynced=True).files() == {
        "/d/f": b"new",
        "/d/new": b"unsynced",
    }


def test_crash_mode_arguments_are_exclusive() -> None:
    fs = new_fs()
    with pytest.raises(ValueError, match="exclusive"):
        fs.crash(tear=1, keep_unsynced=True)
    with pytest.raises(ValueError, match="exclusive"):
        fs.crash(tear=1, rng=random.Random(0))
    with pytest.raises(ValueError, match=">= 0"):
        fs.crash(tear=-1)


def test_crashed_copy_is_independent_and_fully_durable() -> None:
    fs = new_fs()
    put(fs, "/d/f", b"abc")
    after = fs.crash()
    assert not after.crashed
    assert after.op_count == 0
    handle = after.open("/d/f")
    handle.write(b"d")
    assert fs.read_file("/d/f") == b"abc"
    assert after.crash().read_file("/d/f") == b"abc"


# --- crash points ---------------------------------------------------------------------------


def test_crash_at_raises_at_the_given_op_and_after() -> None:
    fs = CrashFS(crash_at=3)
    fs.makedirs("/d")  # not an operation
    handle = fs.open("/d/f", create=True)  # op 0
    handle.write(b"a")  # op 1
    handle.fsync()  # op 2
    assert fs.op_count == 3
    assert [op.name for op in fs.op_log] == ["create", "write", "fsync"]
    with pytest.raises(SimulatedCrash):
        fs.fsync_dir("/d")  # op 3: crashes, does nothing
    assert fs.crashed
    assert fs.op_count == 3
    for later in (
        lambda: handle.write(b"b"),
        handle.fsync,
        lambda: handle.truncate(0),
        lambda: fs.rename("/d/f", "/d/g"),
        lambda: fs.unlink("/d/f"),
        lambda: fs.fsync_dir("/d"),
        lambda: fs.open("/d/new", create=True),
        lambda: fs.lock("/d/LOCK"),
    ):
        with pytest.raises(SimulatedCrash):
            later()
    # Reads still show the volatile state; the durable one lacks the name (no fsync_dir).
    assert fs.read_file("/d/f") == b"a"
    assert handle.pread(0, 5) == b"a"
    assert fs.op_count == 3
    assert not fs.crash().exists("/d/f")


def test_crash_at_zero_crashes_on_the_first_op() -> None:
    fs = CrashFS(crash_at=0)
    fs.makedirs("/d")
    with pytest.raises(SimulatedCrash):
        fs.open("/d/f", create=True)
    assert not fs.exists("/d/f")


def test_crash_is_a_pure_snapshot() -> None:
    fs = new_fs()
    handle = fs.open("/d/f", create=True)
    fs.crash()
    assert not fs.crashed
    handle.write(b"x")
    fs.fsync_dir("/d")
    assert fs.crash(keep_unsynced=True).read_file("/d/f") == b"x"
    fs.crash_at = fs.op_count  # pull the plug on the code still running too
    with pytest.raises(SimulatedCrash):
        handle.fsync()
    assert fs.crashed


def test_simulated_crash_is_not_an_oserror() -> None:
    assert not issubclass(SimulatedCrash, OSError)
    assert issubclass(SimulatedCrash, Exception)


# --- corruption and error injection ---------------------------------------------------------


def test_flip_bit_corrupts_data_and_durable() -> None:
    fs = new_fs()
    put(fs, "/d/f", b"\x00\x00\x00")
    fs.flip_bit("/d/f", 1, 3)
    assert fs.read_file("/d/f") == b"\x00\x08\x00"
    assert fs.crash().read_file("/d/f") == b"\x00\x08\x00"
    fs2 = new_fs()
    put(fs2, "/d/f", b"\xff")
    fs2.open("/d/f").write(b"\xff")  # unsynced byte 1
    fs2.flip_bit("/d/f", 1, 0)
    fs2.flip_bit("/d/f", 0, 7)
    assert fs2.read_file("/d/f") == b"\x7f\xfe"
    assert fs2.crash().read_file("/d/f") == b"\x7f"
    assert fs2.op_count == put_ops() + 1  # flip_bit is not an operation
    with pytest.raises(IndexError):
        fs2.flip_bit("/d/f", 2, 0)
    with pytest.raises(ValueError, match="bit"):
        fs2.flip_bit("/d/f", 0, 8)


def put_ops() -> int:
    fs = new_fs()
    put(fs, "/d/f", b"x")
    return fs.op_count


def test_fail_next_fsync_eio_changes_nothing_and_is_one_shot() -> None:
    fs = new_fs()
    put(fs, "/d/f", b"")
    handle = fs.open("/d/f")
    handle.write(b"abc")
    count = fs.op_count
    fs.fail_next("fsync", errno.EIO)
    with pytest.raises(OSError, match="injected") as exc_info:
        handle.fsync()
    assert exc_info.value.errno == errno.EIO
    assert fs.op_count == count  # not counted
    assert fs.crash(keep_unsynced=False).read_file("/d/f") == b""
    fs2 = new_fs()
    h2 = fs2.open("/d/f", create=True)
    h2.write(b"abc")
    fs2.fail_next("fsync", errno.EIO)
    with pytest.raises(OSError, match="injected"):
        h2.fsync()
    h2.fsync()  # the failure was one-shot
    fs2.fsync_dir("/d")
    assert fs2.crash().read_file("/d/f") == b"abc"


def test_fail_next_write_enospc_writes_nothing() -> None:
    fs = new_fs()
    handle = fs.open("/d/f", create=True)
    fs.fail_next("write", errno.ENOSPC)
    with pytest.raises(OSError, match="injected") as exc_info:
        handle.write(b"abc")
    assert exc_info.value.errno == errno.ENOSPC
    assert handle.size() == 0
    handle.write(b"abc")
    assert handle.size() == 3


def test_fail_next_with_a_path_and_on_other_ops() -> None:
    fs = new_fs()
    put(fs, "/d/a", b"a")
    put(fs, "/d/b", b"b")
    fs.fail_next("read", errno.EIO, path="/d/b")
    assert fs.read_file("/d/a") == b"a"
    with pytest.raises(OSError, match="injected") as exc_info:
        fs.open("/d/b").pread(0, 1)
    assert exc_info.value.errno == errno.EIO
    assert fs.read_file("/d/b") == b"b"
    calls: list[tuple[str, Callable[[], object]]] = [
        ("rename", lambda: fs.rename("/d/a", "/d/c")),
        ("unlink", lambda: fs.unlink("/d/a")),
        ("fsync_dir", lambda: fs.fsync_dir("/d")),
        ("create", lambda: fs.open("/d/new", create=True)),
        ("open", lambda: fs.open("/d/a")),
        ("truncate", lambda: fs.open("/d/a").truncate(0)),
        ("makedirs", lambda: fs.makedirs("/x")),
        ("listdir", lambda: fs.listdir("/d")),
        ("lock", lambda: fs.lock("/d/LOCK")),
    ]
    for op, call in calls:
        fs.fail_next(op, errno.EIO)
        with pytest.raises(OSError, match="injected") as exc_info:
            call()
        assert exc_info.value.errno == errno.EIO, op
    assert fs.listdir("/d") == ["a", "b"]
    assert fs.read_file("/d/a") == b"a"
    with pytest.raises(ValueError, match="unknown"):
        fs.fail_next("chmod", errno.EIO)


# --- locks ----------------------------------------------------------------------------------


def test_lock_conflict_release_and_crash() -> None:
    fs = new_fs()
    lock = fs.lock("/d/LOCK")
    assert fs.exists("/d/LOCK")  # created, like flock on an O_CREAT fd
    with pytest.raises(BlockingIOError):
        fs.lock("/d/LOCK")
    other = fs.lock("/d/OTHER")
    lock.release()
    lock.release()  # idempotent
    again = fs.lock("/d/LOCK")
    fs.fsync_dir("/d")
    after = fs.crash()
    after.lock("/d/LOCK").release()  # no locks survive a crash
    after.lock("/d/OTHER")
    again.release()
    other.release()


# --- threads --------------------------------------------------------------------------------


def test_concurrent_appends_from_threads_are_not_lost() -> None:
    fs = new_fs()
    handle = fs.open("/d/f", create=True)

    def worker(tag: bytes) -> None:
        for _ in range(500):
            handle.write(tag)

    threads = [threading.Thread(target=worker, args=(bytes([65 + i]),)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    data = fs.read_file("/d/f")
    assert sorted(data) == sorted(b"ABCD" * 500)
    assert fs.op_count == 1 + 2000


# --- write_file_atomic at every crash point -------------------------------------------------


def crash_modes(fs: CrashFS) -> Iterator[tuple[str, CrashFS]]:
    """Every post-crash state this model can produce for ``fs`` (tears, kept data, names)."""
    info = fs.last_write_info()
    for names in (False, True):
        yield f"default names={names}", fs.crash(keep_unsynced_names=names)
        yield f"keep names={names}", fs.crash(keep_unsynced=True, keep_unsynced_names=names)
        for k in range(info.unsynced + 1 if info is not None else 0):
            yield f"tear={k} names={names}", fs.crash(tear=k, keep_unsynced_names=names)


def run_crash_points(
    old: bytes | None, new: bytes, writer: Callable[[CrashFS, bytes], None]
) -> list[tuple[int, str, bytes | None]]:
    """Run ``writer`` over ``old`` (if any), crashing at each op; collect bad outcomes."""

    def prepared() -> CrashFS:
        fs = new_fs()
        if old is not None:
            write_file_atomic(fs, "/d", "f", old)
        return fs

    probe = prepared()
    base = probe.op_count
    writer(probe, new)
    total = probe.op_count - base
    assert total > 0
    bad: list[tuple[int, str, bytes | None]] = []
    for n in range(total + 1):
        fs = prepared()
        fs.crash_at = base + n
        if n < total:
            with pytest.raises(SimulatedCrash):
                writer(fs, new)
        else:
            writer(fs, new)
        for mode, after in crash_modes(fs):
            got = after.read_file("/d/f") if after.exists("/d/f") else None
            allowed = {old, new}
            if got not in allowed:
                bad.append((n, mode, got))
    return bad


def atomic(fs: CrashFS, data: bytes) -> None:
    write_file_atomic(fs, "/d", "f", data)


def test_write_file_atomic_is_crash_safe_at_every_op() -> None:
    assert run_crash_points(b"old content", b"the new content", atomic) == []


def test_write_file_atomic_without_old_file_is_missing_or_whole() -> None:
    assert run_crash_points(None, b"fresh", atomic) == []


def test_write_file_atomic_completed_is_durable() -> None:
    fs = new_fs()
    write_file_atomic(fs, "/d", "f", b"v1")
    write_file_atomic(fs, "/d", "f", b"v2")
    assert fs.crash().files() == {"/d/f": b"v2"}
    assert [op.name for op in fs.op_log[-5:]] == ["create", "write", "fsync", "rename", "fsync_dir"]


def test_the_model_catches_a_rename_without_data_fsync() -> None:
    def unsafe(fs: CrashFS, data: bytes) -> None:
        handle = fs.open("/d/f.tmp", create=True, truncate=True)
        handle.write(data)
        handle.close()
        fs.rename("/d/f.tmp", "/d/f")
        fs.fsync_dir("/d")

    bad = run_crash_points(b"old", b"new", unsafe)
    assert bad
    assert {got for _, _, got in bad} <= {b"", b"n", b"ne"}


def test_deferred_fsyncs_take_effect_only_when_completed() -> None:
    fs = CrashFS()
    fs.makedirs("/d")
    fs.defer_syncs = True
    handle = fs.open("/d/f", create=True)
    handle.write(b"abc")
    handle.fsync()
    fs.fsync_dir("/d")
    # Issued, not completed: a power cut now loses the file and its bytes.
    assert fs.crash().listdir("/d") == []
    fs.complete_syncs()
    after = fs.crash()
    assert after.read_file("/d/f") == b"abc"
    handle.write(b"def")
    handle.fsync()  # in flight: a crash keeps the old durable bytes (or a torn prefix)
    assert fs.crash().read_file("/d/f") == b"abc"
    assert fs.crash(keep_unsynced=True).read_file("/d/f") == b"abcdef"
