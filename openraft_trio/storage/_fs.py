"""The file-system layer under the durable stores, small enough to fake.

:class:`FileLogStore` and the durable :class:`~openraft_trio.kv.KvStateMachine` do every
disk operation through a :class:`FileSystem`, so tests can swap in
:class:`openraft_trio.testing.crashfs.CrashFS`, an in-memory file system that models what
survives power loss (and tears, drops and flips bits) without touching a disk.

Durability model (what a correct store may rely on, POSIX semantics):

* bytes written to a file are durable only after :meth:`FileHandle.fsync` of that file;
* a file's *name* (creation, :meth:`FileSystem.rename`, :meth:`FileSystem.unlink`) is
  durable only after :meth:`FileSystem.fsync_dir` of its directory;
* ``rename`` replaces the target atomically: after a crash either name points at the old or
  the new file, never at a mix.

Paths are ``str``; every method is synchronous and may block (the stores run them off the
Trio thread, or inline for the in-memory file system). Errors are ``OSError``\\s.
"""

from __future__ import annotations

import errno
import fcntl
import os
from typing import Protocol


class FileHandle(Protocol):
    """An open file: reads anywhere, writes at the end."""

    def write(self, data: bytes) -> None:
        """Append ``data`` at the end of the file (all of it)."""

    def fsync(self) -> None:
        """Make every byte written so far durable."""

    def truncate(self, size: int) -> None:
        """Cut the file to ``size`` bytes (durable after the next ``fsync``)."""

    def pread(self, offset: int, size: int) -> bytes:
        """Up to ``size`` bytes at ``offset`` (fewer at the end of the file)."""

    def size(self) -> int:
        """The file's size in bytes."""

    def close(self) -> None:
        """Close the file."""


class FileLock(Protocol):
    def release(self) -> None:
        """Release the lock."""


class FileSystem(Protocol):
    """The file layer under the durable stores: the operations they need and nothing more,
    so that a simulated disk (``openraft_trio.testing.crashfs.CrashFS``) can stand in for
    the real one (:class:`OsFileSystem`)."""

    def makedirs(self, path: str) -> None:
        """Create ``path`` and its parents if missing (durably)."""

    def listdir(self, path: str) -> list[str]:
        """The names in directory ``path``, sorted."""

    def exists(self, path: str) -> bool:
        """True if ``path`` exists (a file or a directory)."""

    def read_file(self, path: str) -> bytes:
        """The whole content of ``path``."""

    def open(self, path: str, *, create: bool = False, truncate: bool = False) -> FileHandle:
        """Open ``path`` for reading and appending; ``create`` makes it if missing."""

    def rename(self, src: str, dst: str) -> None:
        """Atomically replace ``dst`` with ``src`` (same directory)."""

    def unlink(self, path: str) -> None:
        """Remove file ``path`` (durable after ``fsync_dir``)."""

    def fsync_dir(self, path: str) -> None:
        """Make the names in directory ``path`` durable."""

    def lock(self, path: str) -> FileLock:
        """Take an exclusive lock on ``path`` (created if missing).

        Raises:
            BlockingIOError: another holder has it (another process, or another open).
        """


def join(directory: str, name: str) -> str:
    return os.path.join(directory, name)


def write_file_atomic(fs: FileSystem, directory: str, name: str, data: bytes) -> None:
    """Durably replace ``directory/name`` with ``data``: temp file, fsync, rename, fsync dir.

    After a crash at any point the file holds either its old content or ``data``.
    """
    tmp = join(directory, name + ".tmp")
    handle = fs.open(tmp, create=True, truncate=True)
    try:
        handle.write(data)
        handle.fsync()
    finally:
        handle.close()
    fs.rename(tmp, join(directory, name))
    fs.fsync_dir(directory)


class _OsFile:
    __slots__ = ("_fd", "_size")

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._size = os.fstat(fd).st_size

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.pwrite(self._fd, view, self._size)
            if written <= 0:  # pragma: no cover - the kernel reports ENOSPC as an error
                raise OSError(errno.EIO, "short write")
            self._size += written
            view = view[written:]

    def fsync(self) -> None:
        os.fsync(self._fd)

    def truncate(self, size: int) -> None:
        os.ftruncate(self._fd, size)
        self._size = size

    def pread(self, offset: int, size: int) -> bytes:
        return os.pread(self._fd, size, offset)

    def size(self) -> int:
        return self._size

    def close(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)


class _OsLock:
    __slots__ = ("_fd",)

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def release(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


class OsFileSystem:
    """The real disk (POSIX)."""

    def makedirs(self, path: str) -> None:
        """Create ``path`` and its missing parents, fsyncing the directory above each one
        created."""
        missing: list[str] = []
        current = os.path.abspath(path)
        while not os.path.isdir(current):
            missing.append(current)
            current = os.path.dirname(current)
        os.makedirs(path, exist_ok=True)
        for created in reversed(missing):
            self.fsync_dir(os.path.dirname(created))

    def listdir(self, path: str) -> list[str]:
        """The names in directory ``path``, sorted."""
        return sorted(os.listdir(path))

    def exists(self, path: str) -> bool:
        """True if ``path`` exists (a file or a directory)."""
        return os.path.exists(path)

    def read_file(self, path: str) -> bytes:
        """The whole content of ``path``."""
        with open(path, "rb") as f:
            return f.read()

    def open(self, path: str, *, create: bool = False, truncate: bool = False) -> FileHandle:
        """Open ``path`` read-write (``create`` makes it if missing, ``truncate`` empties it)."""
        flags = os.O_RDWR | getattr(os, "O_CLOEXEC", 0)
        if create:
            flags |= os.O_CREAT
        if truncate:
            flags |= os.O_TRUNC
        return _OsFile(os.open(path, flags, 0o644))

    def rename(self, src: str, dst: str) -> None:
        """Atomically replace ``dst`` with ``src`` (``os.replace``); durable after ``fsync_dir``."""
        os.replace(src, dst)

    def unlink(self, path: str) -> None:
        """Remove file ``path``; durable after ``fsync_dir``."""
        os.unlink(path)

    def fsync_dir(self, path: str) -> None:
        """Make the names in directory ``path`` durable."""
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def lock(self, path: str) -> FileLock:
        """Take an exclusive ``flock`` on ``path`` (created if missing); raises
        ``BlockingIOError`` if it is held."""
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BaseException:
            os.close(fd)
            raise
        return _OsLock(fd)
