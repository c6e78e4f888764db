"""A directory of durable snapshot files, shared by the state machines that persist their
snapshots (``KvStateMachine``, ``ObjectStateMachine``).

Every snapshot is written to a ``.tmp`` file, fsynced, renamed into place and the
directory fsynced before :meth:`SnapshotDirectory.persist` returns; only the ``keep``
newest files are kept. :meth:`SnapshotDirectory.open` (synchronous: it runs once, at
startup) creates the directory if needed, removes the temp files an interrupted write left
behind, and returns the newest snapshot file that decodes and agrees with its name. A file
that does not is skipped with a warning and deleted once a newer snapshot is durable.
File names and format: :mod:`openraft_trio.kv._snapshot_files`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Protocol, TypeVar, final

from .._errors import InvalidRequest, StorageError
from .._types import LogId, Snapshot
from ..storage._fs import FileSystem, OsFileSystem, join, write_file_atomic
from ._snapshot_files import (
    IORunner,
    SnapshotFileError,
    decode_snapshot_file,
    encode_snapshot_file,
    is_snapshot_tmp_name,
    log_id_position,
    parse_snapshot_file_name,
    snapshot_file_name,
)


class _Positioned(Protocol):
    @property
    def last_log_id(self) -> LogId | None: ...


D = TypeVar("D", bound=_Positioned)


def snapshot_directory(
    snapshot_dir: str | os.PathLike[str] | None,
    fs: FileSystem | None,
    keep: int,
    run_io: IORunner,
    logger: logging.Logger,
) -> SnapshotDirectory | None:
    """The :class:`SnapshotDirectory` of a state machine's ``snapshot_dir`` (None without
    one) on ``fs`` (default the real file system), keeping ``keep`` files.

    Raises:
        TypeError: ``keep`` is not an ``int``.
        ValueError: ``keep`` is less than 1.
    """
    if isinstance(keep, bool) or not isinstance(keep, int):
        raise TypeError(f"keep_snapshots must be an int, got {keep!r}")
    if keep < 1:
        raise ValueError(f"keep_snapshots must be at least 1, got {keep}")
    if snapshot_dir is None:
        return None
    return SnapshotDirectory(
        os.fspath(snapshot_dir), OsFileSystem() if fs is None else fs, keep, run_io, logger
    )


@final
class SnapshotDirectory:
    """The snapshot files of one state machine in ``directory`` (see the module docstring).

    Attributes:
        last_number: the highest file number found by :meth:`open` (0 if none): number
            new snapshots after it.
    """

    def __init__(
        self, directory: str, fs: FileSystem, keep: int, run_io: IORunner, logger: logging.Logger
    ) -> None:
        self.directory = directory
        self._fs = fs
        self._keep = keep
        self._run_io = run_io
        self._logger = logger
        self.last_number = 0
        # Files found damaged at startup: deleted once a newer snapshot is durable.
        self._invalid_files: set[str] = set()

    def open(self, decode: Callable[[bytes], D]) -> tuple[D, str, bytes] | None:
        """Create the directory, drop temp files; the newest valid snapshot as
        ``(decode(payload), snapshot_id, payload)``, or None.

        ``decode`` raises ``InvalidRequest`` for a payload it does not accept.

        Raises:
            StorageError: the directory cannot be created or read, or a leftover temp file
                cannot be removed (chained to the ``OSError``).
        """
        fs, directory = self._fs, self.directory
        try:
            fs.makedirs(directory)
            names = fs.listdir(directory)
        except OSError as exc:
            raise StorageError(f"cannot open snapshot directory {directory!r}: {exc}") from exc
        leftovers = [name for name in names if is_snapshot_tmp_name(name)]
        for name in leftovers:
            path = join(directory, name)
            try:
                fs.unlink(path)
            except OSError as exc:
                raise StorageError(f"cannot remove temp file {path!r}: {exc}") from exc
        if leftovers:
            _fsync_dir(fs, directory)
        found: list[tuple[tuple[int, int, int], str]] = []
        for name in names:
            parsed = parse_snapshot_file_name(name)
            if parsed is not None:
                found.append((parsed, name))
        found.sort()
        if found:
            self.last_number = max(seq for (_, _, seq), _ in found)
        for (term, index, _), name in reversed(found):
            path = join(directory, name)
            try:
                raw = fs.read_file(path)
            except OSError as exc:
                raise StorageError(f"cannot read snapshot file {path!r}: {exc}") from exc
            try:
                snapshot_id, payload = decode_snapshot_file(raw)
                decoded = decode(payload)
            except (SnapshotFileError, InvalidRequest) as exc:
                self._logger.warning("skipping damaged snapshot file %s: %s", path, exc)
                self._invalid_files.add(name)
                continue
            if log_id_position(decoded.last_log_id) != (term, index):
                self._logger.warning(
                    "skipping snapshot file %s: its name says term %d index %d, its data %s",
                    path,
                    term,
                    index,
                    decoded.last_log_id,
                )
                self._invalid_files.add(name)
                continue
            return decoded, snapshot_id, payload
        return None

    async def persist(self, snapshot: Snapshot, number: int) -> None:
        """Make ``snapshot`` durable as file number ``number``, then prune.

        Raises:
            StorageError: it could not be written (chained to the ``OSError``).
        """
        directory = self.directory
        name = snapshot_file_name(snapshot.meta.last_log_id, number)
        blob = encode_snapshot_file(snapshot.meta.snapshot_id, snapshot.data)
        fs, keep, invalid = self._fs, self._keep, frozenset(self._invalid_files)

        def write() -> list[str]:
            _write_snapshot_file(fs, directory, name, blob)
            return _prune_snapshot_files(fs, directory, name, keep, invalid)

        deleted = await self._run_io(write)
        self._invalid_files.difference_update(deleted)
def _fsync_dir(fs: FileSystem, directory: str) -> None:
    try:
        fs.fsync_dir(directory)
    except OSError as exc:
        raise StorageError(f"cannot fsync snapshot directory {directory!r}: {exc}") from exc


def _write_snapshot_file(fs: FileSystem, directory: str, name: str, blob: bytes) -> None:
    path = join(directory, name)
    try:
        write_file_atomic(fs, directory, name, blob)
    except OSError as exc:
        raise StorageError(f"cannot write snapshot file {path!r}: {exc}") from exc


def _prune_snapshot_files(
    fs: FileSystem, directory: str, newest: str, keep: int, invalid: frozenset[str]
) -> list[str]:
    """Delete snapshot files older than ``newest`` beyond the ``keep`` newest; return them.

    Files that were found damaged (``invalid``) do not count towards ``keep`` and go too.
    Files sorting after ``newest`` (damaged ones only, as applied never moves backwards)
    are left alone.
    """
    try:
        names = fs.listdir(directory)
    except OSError as exc:
        raise StorageError(f"cannot list snapshot directory {directory!r}: {exc}") from exc
    older = sorted(
        name for name in names if parse_snapshot_file_name(name) is not None and name < newest
    )
    damaged = [name for name in older if name in invalid]
    good = [name for name in older if name not in invalid]
    doomed = damaged + good[: max(0, len(good) - (keep - 1))]
    for name in doomed:
        path = join(directory, name)
        try:
            fs.unlink(path)
        except OSError as exc:
            raise StorageError(f"cannot delete old snapshot file {path!r}: {exc}") from exc
    if doomed:
        _fsync_dir(fs, directory)
    return doomed


