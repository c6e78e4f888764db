"""``CrashFS``: an in-memory :class:`~openraft_trio.storage._fs.FileSystem` that models power loss.

Durable stores do all their disk I/O through the ``FileSystem`` protocol; swapping in a
``CrashFS`` lets a test run a workload, stop it at any operation, "pull the plug" and reopen
the store on exactly what a disk would still hold, without touching a real disk.

The model
=========

*Files.* Every file (inode) has two byte strings:

* ``data``: what reads see now (the page cache). ``write`` appends to it, ``truncate`` cuts
  or zero-extends it, ``open(..., truncate=True)`` empties it;
* ``durable``: what survives a crash. :meth:`FileHandle.fsync` sets ``durable = data`` for
  that inode (and only that inode).

*Names.* Every directory has a *volatile* namespace (name -> inode, what ``open``,
``listdir``, ``exists`` see) and a *durable* namespace (what survives a crash). Creating a
file (``open(create=True)`` of a missing name, or ``lock`` of a missing name), ``rename``
and ``unlink`` change only the volatile namespace; :meth:`CrashFS.fsync_dir` copies the
volatile namespace of that one directory into its durable one. ``rename`` is atomic: at a
crash the name points at the old inode or at the new one, never at a mix. Renames across
directories are allowed and touch both directories (each needs its own ``fsync_dir``).

*Directories themselves* are not crash-modelled: :meth:`CrashFS.makedirs` is durable at
once and directories are never removed.

*Crash.* :meth:`CrashFS.crash` returns a NEW ``CrashFS`` holding the post-crash state: the
durable namespace of every directory, each reachable inode's durable bytes, no open handles
and no locks. What happens to bytes written but not fsynced is chosen by the caller:

* default: they are lost;
* ``tear=k``: the file written most recently (see :meth:`CrashFS.last_write_info`) keeps the
  first ``k`` bytes of its unsynced suffix (a torn append: the sector holding the start of
  the write reached the platter, the rest did not). Only when its ``data`` extends its
  ``durable`` bytes (``data[:len(durable)] == durable``); after a truncate or a rewrite the
  file keeps its durable bytes. Other files lose their unsynced bytes;
* ``rng=random.Random(seed)``: every file whose ``data`` extends its ``durable`` bytes keeps
  a uniformly random prefix (possibly empty, possibly all) of its unsynced suffix;
* ``keep_unsynced=True``: every file keeps all of ``data`` (the disk happened to write the
  whole page cache back before the power went). A correct store must survive this too;
* ``keep_unsynced_names=True`` (combinable with the above): the volatile namespace survives
  instead of the durable one (the file system happened to commit its metadata, e.g. ext4's
  journal), so a file created or renamed without ``fsync_dir`` can be there with only its
  durable (often empty) content.

``crash()`` is a pure snapshot: it does not change this instance, so a test may take
several from one state (e.g. one per tear offset) or peek mid-workload. To also stop the
code still running on this instance, set ``crash_at = op_count`` first.

*Operation counter and crash points.* Every mutating call is an operation: ``write``,
``fsync``, ``truncate`` (also ``open(truncate=True)`` of an existing file), ``rename``,
``unlink``, ``fsync_dir``, ``create``. :attr:`CrashFS.op_count` is the number performed so
far and :attr:`CrashFS.op_log` lists them. With ``crash_at=n`` the operation that would be
number ``n`` (counting from 0, so exactly ``n`` operations happen) raises
:class:`SimulatedCrash` before doing anything, and so does every later mutating operation.
Reads keep working (they show the volatile state); a test takes :meth:`CrashFS.crash` to
see what a restart would see. The usual loop: run the workload once to learn its
``op_count`` ``N``, then for every ``n`` in ``0..N`` run it on a fresh ``CrashFS`` with
``crash_at=n``, call ``crash()`` (with every tear mode of interest) and reopen the store.

*Fault injection.* :meth:`CrashFS.fail_next` makes the next matching call raise
``OSError(errno)`` without doing anything (``EIO`` on ``fsync``, ``ENOSPC`` on ``write``, ...),
to test fail-stop handling. A failed call is not counted as an operation.
:meth:`CrashFS.flip_bit` corrupts a byte at rest (in both ``data`` and ``durable``).

*Locks.* :meth:`CrashFS.lock` is an exclusive lock per path within one instance (a second
``lock`` raises ``BlockingIOError`` until ``release``); like ``flock`` it creates the file if
missing. A crashed copy holds no locks.

*Threads.* All state is behind one ``threading.Lock``; stores may call in from worker
threads (``trio.to_thread``).

What is NOT modelled
====================

* reordered or partial persistence of writes *within* a file other than the single torn
  append of ``tear``/``rng`` (e.g. a later page durable while an earlier one is lost, or a
  torn overwrite after ``truncate``);
* partial persistence of a directory's namespace: at a crash a directory shows either its
  whole durable namespace or (``keep_unsynced_names``) its whole volatile one, never a
  subset of the changes since its last ``fsync_dir``;
* directory metadata (creation and removal of directories, directory fsync ordering),
  permissions, timestamps, hard links (though a half-synced cross-directory rename can
  leave one file under two names after a crash), sparse files, ``O_DIRECT``;
* the Linux "fsyncgate" behaviour where a failed ``fsync`` drops the dirty pages and a
  later ``fsync`` succeeds: here an injected failure simply leaves the state unchanged. A
  store must treat a failed ``fsync`` as fatal either way;
* short writes: an injected ``write`` failure writes nothing;
* locks are by path, not by inode (unlinking a locked file and locking the name again
  conflicts), and they are advisory only;
* paths are normalised with :func:`os.path.normpath`; ``"/"`` and ``"."`` are roots that
  always exist; absolute and relative spellings of one place are different files.
"""

from __future__ import annotations

import errno
import itertools
import os
import random
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, NoReturn, final

from ..storage._fs import FileHandle, FileLock, FileSystem

__all__ = ["CrashFS", "Op", "SimulatedCrash", "WriteInfo"]

#: The operations counted by the operation counter (and subject to ``crash_at``).
MUTATING_OPS = frozenset({"write", "fsync", "truncate", "rename", "unlink", "fsync_dir", "create"})
#: Every name :meth:`CrashFS.fail_next` accepts.
FAILABLE_OPS = MUTATING_OPS | {"open", "read", "makedirs", "listdir", "lock"}

_ROOTS = ("/", ".")


class SimulatedCrash(Exception):
    """The power went out at this operation (``crash_at``) or before it.

    Deliberately not an ``OSError``: a store must not mistake it for an I/O error it could
    handle; it should unwind like any unexpected exception.
    """


@final
@dataclass(frozen=True)
class Op:
    """One performed mutating operation, as recorded in :attr:`CrashFS.op_log`."""

    index: int
    name: str
    path: str
    #: ``write``: the byte count; ``truncate``: the new size; ``rename``: the destination.
    arg: int | str | None = None


@final
@dataclass(frozen=True)
class WriteInfo:
    """The file written most recently, as ``crash(tear=...)`` would see it."""

    #: The path the writing handle was opened with (the file may have been renamed since).
    path: str
    #: ``len(data)``: the size reads see.
    size: int
    #: ``len(durable)``: the size that survives a crash.
    durable_size: int
    #: How many bytes ``tear`` can keep: ``size - durable_size`` when ``data`` extends the
    #: durable bytes, else 0. ``crash(tear=k)`` for ``k`` in ``range(unsynced + 1)`` covers
    #: every torn outcome.
    unsynced: int


class _Inode:
    __slots__ = ("data", "durable", "ino")

    def __init__(self, ino: int, data: bytes = b"") -> None:
        self.ino = ino
        self.data = bytearray(data)
        self.durable = bytes(data)

    def unsynced_suffix(self) -> int:
        """Bytes past ``durable`` when ``data`` extends it, else 0."""
        n = len(self.durable)
        if len(self.data) >= n and self.data[:n] == self.durable:
            return len(self.data) - n
        return 0


def _norm(path: str) -> str:
    if not isinstance(path, str):
        raise TypeError(f"CrashFS paths are str, got {type(path).__name__}")
    return os.path.normpath(path) if path else "."


def _split(path: str) -> tuple[str, str]:
    """``(parent, name)`` of a normalised path."""
    parent, name = os.path.split(path)
    return (parent or "."), name


def _join(directory: str, name: str) -> str:
    return name if directory == "." else os.path.join(directory, name)


def _enoent(path: str) -> FileNotFoundError:
    return FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)


@final
class CrashFS:
    """An in-memory file system that models what survives power loss. See the module doc."""

    def __init__(self, *, crash_at: int | None = None) -> None:
        self._mutex = threading.Lock()
        self._inos = itertools.count(1)
        # directory -> name -> inode. Directories are the keys (both dicts have the same keys).
        self._names: dict[str, dict[str, _Inode]] = {root: {} for root in _ROOTS}
        self._durable_names: dict[str, dict[str, _Inode]] = {root: {} for root in _ROOTS}
        self._locks: set[str] = set()
        self._ops: list[Op] = []
        self._failures: list[tuple[str, int, str | None]] = []
        self._last_write: tuple[_Inode, str] | None = None
        self._crashed = False
        #: The index of the operation that raises :class:`SimulatedCrash` (``None``: never).
        self.crash_at = crash_at
        #: When True, ``fsync`` and ``fsync_dir`` are *issued* but take effect only at
        #: :meth:`complete_syncs` (an fsync in flight): a crash in between loses them. An
        #: I/O runner that sleeps to model disk latency calls ``complete_syncs`` after the
        #: sleep, so a power cut can land in the middle of a batch's fsync.
        self.defer_syncs = False
        self._pending_syncs: list[Callable[[], None]] = []

    # --- test controls --------------------------------------------------------------------

    @property
    def op_count(self) -> int:
        """How many mutating operations have been performed."""
        with self._mutex:
            return len(self._ops)

    @property
    def op_log(self) -> list[Op]:
        """Every performed mutating operation, in order (a copy)."""
        with self._mutex:
            return list(self._ops)

    @property
    def crashed(self) -> bool:
        """Whether ``crash_at`` was reached (every later mutating operation raises)."""
        with self._mutex:
            return self._crashed

    def fail_next(self, op_name: str, errno_value: int, path: str | None = None) -> None:
        """Make the next ``op_name`` call (on ``path``, if given) raise ``OSError(errno_value)``.

        ``op_name`` is a mutating operation (``write``, ``fsync``, ``truncate``, ``rename``,
        ``unlink``, ``fsync_dir``, ``create``) or ``open``, ``read`` (``pread`` and
        ``read_file``), ``makedirs``, ``listdir``, ``lock``. For ``rename`` the path is the
        source. The failing call changes nothing and is not counted. Queued failures are
        consumed first come, first served.
        """
        if op_name not in FAILABLE_OPS:
            raise ValueError(f"unknown operation {op_name!r}; one of {sorted(FAILABLE_OPS)}")
        with self._mutex:
            self._failures.append((op_name, errno_value, None if path is None else _norm(path)))

    def last_write_info(self) -> WriteInfo | None:
        """The file written most recently (the one ``crash(tear=...)`` tears), or ``None``."""
        with self._mutex:
            if self._last_write is None:
                return None
            inode, path = self._last_write
            return WriteInfo(path, len(inode.data), len(inode.durable), inode.unsynced_suffix())

    def unsynced_bytes(self, path: str) -> int:
        """How many bytes of ``path`` extend its durable bytes without being fsynced."""
        with self._mutex:
            return self._file(_norm(path)).unsynced_suffix()

    def flip_bit(self, path: str, byte_offset: int, bit: int) -> None:
        """Corrupt ``path`` at rest: flip ``bit`` (0-7) of byte ``byte_offset`` in both its
        current and its durable content (where the offset exists). Not an operation."""
        if not 0 <= bit < 8:
            raise ValueError(f"bit must be in 0..7, got {bit}")
        with self._mutex:
            inode = self._file(_norm(path))
            if not 0 <= byte_offset < max(len(inode.data), len(inode.durable)):
                raise IndexError(f"offset {byte_offset} outside {path!r}")
            mask = 1 << bit
            if byte_offset < len(inode.data):
                inode.data[byte_offset] ^= mask
            if byte_offset < len(inode.durable):
                durable = bytearray(inode.durable)
                durable[byte_offset] ^= mask
                inode.durable = bytes(durable)

    def files(self) -> dict[str, bytes]:
        """Every file's current content by path (volatile namespace, what reads see)."""
        with self._mutex:
            return {path: bytes(inode.data) for path, inode in self._walk(self._names)}

    def durable_files(self) -> dict[str, bytes]:
        """Every file's durable content by path: what a default ``crash()`` would keep."""
        with self._mutex:
            return {path: inode.durable for path, inode in self._walk(self._durable_names)}

    def crash(
        self,
        tear: int | None = None,
        rng: random.Random | None = None,
        *,
        keep_unsynced: bool = False,
        keep_unsynced_names: bool = False,
    ) -> CrashFS:
        """Pull the plug: a NEW ``CrashFS`` with what survives (see the module doc).

        ``tear``, ``rng`` and ``keep_unsynced`` choose what happens to unsynced bytes and are
        mutually exclusive; ``keep_unsynced_names`` keeps the volatile namespace instead of
        the durable one. This instance is left unchanged.
        """
        if sum((tear is not None, rng is not None, keep_unsynced)) > 1:
            raise ValueError("tear, rng and keep_unsynced are mutually exclusive")
        if tear is not None and tear < 0:
            raise ValueError(f"tear must be >= 0, got {tear}")
        with self._mutex:
            torn = self._last_write[0] if self._last_write is not None else None
            namespaces = self._names if keep_unsynced_names else self._durable_names
            after = CrashFS()
            copies: dict[int, _Inode] = {}
            # Sorted by inode number, so an ``rng`` draws in a deterministic order.
            reachable = sorted(
                {id(i): i for names in namespaces.values() for i in names.values()}.values(),
                key=lambda i: i.ino,
            )
            for inode in reachable:
                content = inode.durable
                if keep_unsynced:
                    content = bytes(inode.data)
                elif (suffix := inode.unsynced_suffix()) > 0:
                    keep = 0
                    if rng is not None:
                        keep = rng.randint(0, suffix)
                    elif tear is not None and inode is torn:
                        keep = min(tear, suffix)
                    content = bytes(inode.data[: len(inode.durable) + keep])
                copies[id(inode)] = _Inode(next(after._inos), content)
            for directory, names in namespaces.items():
                copy = {name: copies[id(inode)] for name, inode in names.items()}
                after._names[directory] = copy
                after._durable_names[directory] = dict(copy)
            return after

    # --- FileSystem -------------------------------------------------------------------------

    def makedirs(self, path: str) -> None:
        """Create ``path`` and its parents if missing, durably at once."""
        path = _norm(path)
        with self._mutex:
            self._inject("makedirs", path)
            missing: list[str] = []
            current = path
            while current not in self._names:
                parent, name = _split(current)
                if name in self._names.get(parent, {}):
                    raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), current)
                missing.append(current)
                current = parent
            for directory in missing:
                self._names[directory] = {}
                self._durable_names[directory] = {}

    def listdir(self, path: str) -> list[str]:
        """The names in directory ``path`` (files and subdirectories), sorted."""
        path = _norm(path)
        with self._mutex:
            self._inject("listdir", path)
            names = self._names.get(path)
            if names is None:
                self._dir_error(path)
            subdirs = [
                _split(d)[1] for d in self._names if d not in _ROOTS and _split(d)[0] == path
            ]
            return sorted({*names, *subdirs})

    def exists(self, path: str) -> bool:
        """True if ``path`` exists (a file or a directory)."""
        path = _norm(path)
        with self._mutex:
            if path in self._names:
                return True
            parent, name = _split(path)
            return name in self._names.get(parent, {})

    def read_file(self, path: str) -> bytes:
        """The whole content of ``path`` as written so far (synced or not); an injected ``read`` failure raises ``OSError``."""
        path = _norm(path)
        with self._mutex:
            self._inject("read", path)
            return bytes(self._file(path).data)

    def open(self, path: str, *, create: bool = False, truncate: bool = False) -> FileHandle:
        """Open ``path``; creating a missing name and ``truncate`` of an existing file are
        operations (``create``, ``truncate``)."""
        path = _norm(path)
        with self._mutex:
            self._inject("open", path)
            parent, name = _split(path)
            if path in self._names:
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
            names = self._names.get(parent)
            if names is None:
                self._dir_error(parent)
            inode = names.get(name)
            if inode is None:
                if not create:
                    raise _enoent(path)
                self._begin("create", path)
                inode = _Inode(next(self._inos))
                names[name] = inode
                self._record("create", path)
            elif truncate:
                self._begin("truncate", path)
                inode.data.clear()
                self._record("truncate", path, 0)
            return _CrashFile(self, inode, path)

    def rename(self, src: str, dst: str) -> None:
        """Atomically point ``dst`` at ``src``'s file (volatile until ``fsync_dir``)."""
        src, dst = _norm(src), _norm(dst)
        with self._mutex:
            self._begin("rename", src)
            src_parent, src_name = _split(src)
            dst_parent, dst_name = _split(dst)
            if src in self._names or dst in self._names:
                raise IsADirectoryError(errno.EISDIR, "CrashFS renames files only", src)
            src_names = self._names.get(src_parent)
            if src_names is None or src_name not in src_names:
                raise _enoent(src)
            dst_names = self._names.get(dst_parent)
            if dst_names is None:
                self._dir_error(dst_parent)
            inode = src_names.pop(src_name)
            dst_names[dst_name] = inode
            self._record("rename", src, dst)

    def unlink(self, path: str) -> None:
        """Remove file ``path`` (durable after ``fsync_dir``); raises ``FileNotFoundError`` or
        ``IsADirectoryError``."""
        path = _norm(path)
        with self._mutex:
            self._begin("unlink", path)
            if path in self._names:
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
            parent, name = _split(path)
            names = self._names.get(parent)
            if names is None or name not in names:
                raise _enoent(path)
            del names[name]
            self._record("unlink", path)

    def fsync_dir(self, path: str) -> None:
        """Make the names in directory ``path`` durable (its volatile namespace)."""
        path = _norm(path)
        with self._mutex:
            self._begin("fsync_dir", path)
            names = self._names.get(path)
            if names is None:
                self._dir_error(path)
            snapshot = dict(names)
            if self.defer_syncs:
                self._pending_syncs.append(
                    lambda: self._durable_names.__setitem__(path, snapshot)
                )
            else:
                self._durable_names[path] = snapshot
            self._record("fsync_dir", path)

    def complete_syncs(self) -> None:
        """Make the fsyncs issued since the last call durable, in order (``defer_syncs``)."""
        with self._mutex:
            pending, self._pending_syncs = self._pending_syncs, []
            for apply in pending:
                apply()

    def lock(self, path: str) -> FileLock:
        """Exclusive lock on ``path`` within this instance; creates the file if missing."""
        path = _norm(path)
        with self._mutex:
            self._inject("lock", path)
            if path in self._locks:
                raise BlockingIOError(errno.EWOULDBLOCK, "CrashFS lock already held", path)
            if path in self._names:
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
            parent, name = _split(path)
            names = self._names.get(parent)
            if names is None:
                self._dir_error(parent)
            if name not in names:
                self._begin("create", path)
                names[name] = _Inode(next(self._inos))
                self._record("create", path)
            self._locks.add(path)
            return _CrashLock(self, path)

    # --- internals (called with self._mutex held) -------------------------------------------

    def _inject(self, op_name: str, path: str) -> None:
        for i, (name, errno_value, only) in enumerate(self._failures):
            if name == op_name and (only is None or only == path):
                del self._failures[i]
                raise OSError(errno_value, f"CrashFS injected {op_name} failure", path)

    def _begin(self, op_name: str, path: str) -> None:
        """Gate a mutating operation: the crash point, then injected failures."""
        if self._crashed:
            raise SimulatedCrash(f"{op_name} {path!r} after the crash")
        if self.crash_at is not None and len(self._ops) >= self.crash_at:
            self._crashed = True
            raise SimulatedCrash(f"crash at operation {len(self._ops)}: {op_name} {path!r}")
        self._inject(op_name, path)

    def _record(self, op_name: str, path: str, arg: int | str | None = None) -> None:
        self._ops.append(Op(len(self._ops), op_name, path, arg))

    def _file(self, path: str) -> _Inode:
        if path in self._names:
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
        parent, name = _split(path)
        inode = self._names.get(parent, {}).get(name)
        if inode is None:
            raise _enoent(path)
        return inode

    def _dir_error(self, path: str) -> NoReturn:
        parent, name = _split(path)
        if name in self._names.get(parent, {}):
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
        raise _enoent(path)

    @staticmethod
    def _walk(namespaces: dict[str, dict[str, _Inode]]) -> Iterator[tuple[str, _Inode]]:
        for directory in sorted(namespaces):
            for name in sorted(namespaces[directory]):
                yield _join(directory, name), namespaces[directory][name]

    # handle operations

    def _write(self, inode: _Inode, path: str, data: bytes) -> None:
        with self._mutex:
            self._begin("write", path)
            inode.data += data
            self._last_write = (inode, path)
            self._record("write", path, len(data))

    def _fsync(self, inode: _Inode, path: str) -> None:
        with self._mutex:
            self._begin("fsync", path)
            data = bytes(inode.data)
            if self.defer_syncs:
                self._pending_syncs.append(lambda: setattr(inode, "durable", data))
            else:
                inode.durable = data
            self._record("fsync", path)

    def _truncate(self, inode: _Inode, path: str, size: int) -> None:
        if size < 0:
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL), path)
        with self._mutex:
            self._begin("truncate", path)
            if size <= len(inode.data):
                del inode.data[size:]
            else:
                inode.data.extend(bytes(size - len(inode.data)))
            self._record("truncate", path, size)

    def _pread(self, inode: _Inode, path: str, offset: int, size: int) -> bytes:
        if offset < 0 or size < 0:
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL), path)
        with self._mutex:
            self._inject("read", path)
            return bytes(inode.data[offset : offset + size])

    def _size(self, inode: _Inode) -> int:
        with self._mutex:
            return len(inode.data)

    def _release(self, path: str) -> None:
        with self._mutex:
            self._locks.discard(path)


class _CrashFile:
    """A handle on one inode; it keeps working on the inode after an unlink or a rename."""

    __slots__ = ("_closed", "_fs", "_inode", "_path")

    def __init__(self, fs: CrashFS, inode: _Inode, path: str) -> None:
        self._fs = fs
        self._inode = inode
        self._path = path
        self._closed = False

    def _check(self) -> None:
        if self._closed:
            raise ValueError(f"I/O operation on closed CrashFS file {self._path!r}")

    def write(self, data: bytes) -> None:
        self._check()
        self._fs._write(self._inode, self._path, bytes(data))

    def fsync(self) -> None:
        self._check()
        self._fs._fsync(self._inode, self._path)

    def truncate(self, size: int) -> None:
        self._check()
        self._fs._truncate(self._inode, self._path, size)

    def pread(self, offset: int, size: int) -> bytes:
        self._check()
        return self._fs._pread(self._inode, self._path, offset, size)

    def size(self) -> int:
        self._check()
        return self._fs._size(self._inode)

    def close(self) -> None:
        self._closed = True


class _CrashLock:
    __slots__ = ("_fs", "_path", "_released")

    def __init__(self, fs: CrashFS, path: str) -> None:
        self._fs = fs
        self._path = path
        self._released = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._fs._release(self._path)


if TYPE_CHECKING:
    _fs_check: FileSystem = CrashFS()
    _handle_check: FileHandle = _CrashFile(CrashFS(), _Inode(0), "")
    _lock_check: FileLock = _CrashLock(CrashFS(), "")
