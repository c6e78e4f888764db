"""A replicated key-value state machine and the requests it applies.

Requests travel in ``Normal`` log entries; each gets one reply:

* :class:`Set` ``(key, value)`` -> the previous value, or ``None``;
* :class:`Delete` ``(key)`` -> the previous value, or ``None``;
* :class:`CompareAndSwap` ``(key, expected, new)`` -> ``(swapped, value_after)``; an absent
  key compares equal to ``None``;
* :class:`Increment` ``(key, delta)`` -> the new value: an integer value (absent counts as
  ``0``) plus ``delta``; a value that is not an integer is left alone and the reply is
  ``None``. Not idempotent: exactly-once needs a client session
  (:mod:`openraft_trio.sessions`), as :class:`~openraft_trio.kv.KvClient` uses;
* :class:`Get` ``(key)`` -> the current value. Reads are served locally after
  ``ensure_linearizable``; a ``Get`` that reaches the log anyway is answered and changes
  nothing.

Keys are ``str``; values must be CBOR-encodable (``None``, bool, int, float, str, bytes,
lists and str-keyed dicts of those), because snapshots are CBOR. Tuples come back from a
snapshot as lists.

A malformed payload (not one of the requests above, or a non-``str`` key) gets the reply
``None`` and is counted in :attr:`KvStateMachine.rejected`: a bad client request must never
crash the node's apply loop.

Durability: ``KvStateMachine()`` keeps everything in memory. ``KvStateMachine(directory)``
also writes every snapshot it builds or installs to a checksummed file in ``directory``
before the call returns (the log store purges the entries a snapshot covers, so the
snapshot must be durable first), and on construction restores the newest valid one. The
entries applied after that snapshot are re-applied from the log on restart, as Raft
expects of a state machine whose applied index is only as durable as its last snapshot.
File names and format: :mod:`openraft_trio.kv._snapshot_files`.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, final

import attrs
import cbor2
import trio

from .. import codec
from .._errors import InvalidRequest
from .._types import (
    Entry,
    LogId,
    MembershipChange,
    Normal,
    Snapshot,
    SnapshotMeta,
    StoredMembership,
    index_of,
    log_id_ge,
)
from ..sessions import SESSION_ENTRIES, SessionTable, table_to_plain
from ..sessions._apply import apply_session_entry, table_like
from ..storage._fs import FileSystem
from ._snapshot_dir import SnapshotDirectory, snapshot_directory
from ._snapshot_files import IORunner
from ._watch import DEFAULT_HISTORY_SIZE, ChangeHistory, ChangeKind

T = TypeVar("T")

# Looked up once: on Python 3.11 an enum member lookup costs about 0.2 us, a third of an
# apply of a small Set.
_PUT, _DELETE = ChangeKind.PUT, ChangeKind.DELETE

# 2: log ids and membership in openraft_trio.codec's encodings; 3: with client sessions.
_SNAPSHOT_FORMAT = 3
_READABLE_FORMATS = (2, 3)

logger = logging.getLogger("openraft_trio.kv")


@final
@attrs.frozen
class Set:
    """Store ``value`` under ``key``; reply the previous value or ``None``."""

    key: str
    value: Any


@final
@attrs.frozen
class Delete:
    """Remove ``key``; reply the previous value or ``None``."""

    key: str


@final
@attrs.frozen
class CompareAndSwap:
    """Store ``new`` if the current value equals ``expected`` (absent == ``None``).

    Reply ``(swapped, value_after)``.
    """

    key: str
    expected: Any
    new: Any


@final
@attrs.frozen
class Increment:
    """Add ``delta`` to the integer under ``key`` (absent counts as ``0``); reply the new
    value, or ``None`` (nothing changes) when the value is not an integer."""

    key: str
    delta: int = 1


@final
@attrs.frozen
class Get:
    """Read ``key``; reply its value or ``None``. Never modifies anything."""

    key: str


_Request = Set | Delete | CompareAndSwap | Increment | Get

# Requests travel in log entries on disk and over the network: give them stable tags.
for _cls in (Set, Delete, CompareAndSwap, Increment, Get):
    codec.register_data_type(_cls, f"kv.{_cls.__name__}")


class KvStateMachine:
    """A key-value :class:`~openraft_trio.storage.RaftStateMachine`, in memory or durable.

    With ``snapshot_dir=None`` everything lives in memory and is lost with the process.
    With a directory, every snapshot that :meth:`build_snapshot` builds or
    :meth:`install_snapshot` installs is durable before the call returns: it is written to a
    ``.tmp`` file, fsynced, renamed into place, and the directory fsynced. Construction
    (synchronous: it runs once, at startup) creates the directory if needed, removes the
    ``snapshot-*.tmp`` files an interrupted write left behind, and restores the data, last
    applied log id, last membership and current snapshot from the newest valid snapshot
    file. A file that fails its checksum or does not decode, or whose content disagrees
    with its name, is skipped with a warning on the ``openraft_trio.kv`` logger; it is left
    in place until a newer snapshot is durable, then deleted if it sorts before that one.
    After each new snapshot only the ``keep_snapshots`` newest snapshot files are kept.

    The directory should belong to this state machine alone.

    Client sessions (:mod:`openraft_trio.sessions`): the machine applies session entries
    itself, keeping a :class:`~openraft_trio.sessions.SessionTable` in its snapshots, so a
    request wrapped in a ``SessionCommand`` is applied once however often it is retried.

    Args:
        snapshot_dir: where snapshots are kept; ``None`` for a purely in-memory machine.
        fs: the file system every file operation goes through (default
            :class:`~openraft_trio.storage._fs.OsFileSystem`); tests pass an in-memory one
            that models crashes. Ignored without ``snapshot_dir``.
        keep_snapshots: how many snapshot files to keep (at least 1).
        session_timeout: log seconds an unused client session lives.
        session_window: the most unacknowledged replies cached per session.
        max_sessions: the most live client sessions.
        watch_history: how many changes to keep for watches (:attr:`history`,
            :mod:`openraft_trio.kv._watch`); ``0`` keeps none.
        run_io: how the blocking writes of :meth:`build_snapshot` and
            :meth:`install_snapshot` run: an async callable taking a no-argument function
            and returning its result. The default, ``trio.to_thread.run_sync``, keeps the
            Trio thread free; the deterministic simulator and in-memory file systems pass
            :func:`openraft_trio.storage.run_inline`, which calls the function
            on the spot.

    Raises:
        StorageError: the directory cannot be created or read, or a leftover temp file
            cannot be removed (chained to the ``OSError``).
        TypeError: ``keep_snapshots`` or ``watch_history`` is not an ``int``.
        ValueError: ``keep_snapshots`` is less than 1, or ``watch_history`` negative.

    Attributes:
        rejected: how many malformed ``Normal`` payloads were answered with ``None``.
    """

    def __init__(
        self,
        snapshot_dir: str | os.PathLike[str] | None = None,
        *,
        fs: FileSystem | None = None,
        keep_snapshots: int = 2,
        run_io: IORunner = trio.to_thread.run_sync,
        session_timeout: float = 60.0,
        session_window: int = 64,
        max_sessions: int = 10_000,
        watch_history: int = DEFAULT_HISTORY_SIZE,
    ) -> None:
        self._files = snapshot_directory(snapshot_dir, fs, keep_snapshots, run_io, logger)
        self._data: dict[str, Any] = {}
        self._last_applied: LogId | None = None
        self._last_membership = StoredMembership()
        self._current_snapshot: Snapshot | None = None
        self._snapshot_counter = 0
        self.rejected = 0
        self.sessions = SessionTable(
            timeout=session_timeout, window=session_window, max_sessions=max_sessions
        )
        self._history = ChangeHistory(watch_history)
        if self._files is not None:
            self._load(self._files)
            self._history.reset(index_of(self._last_applied))

    @property
    def snapshot_dir(self) -> str | None:
        """The directory snapshots persist to, or ``None`` when in memory only."""
        return None if self._files is None else self._files.directory

    # -- local reads ----------------------------------------------------------------------

    def get(self, key: str) -> Any:
        """The value under ``key`` on this replica, or ``None`` (not linearizable alone)."""
        return self._data.get(key)

    @property
    def data(self) -> dict[str, Any]:
        """A copy of every key and value (for tests comparing replicas)."""
        return dict(self._data)

    @property
    def last_applied(self) -> LogId | None:
        """The log id of the last applied entry (``None`` before any)."""
        return self._last_applied

    @property
    def history(self) -> ChangeHistory:
        """The last changes applied, for watches (:mod:`openraft_trio.kv._watch`)."""
        return self._history

    @property
    def last_membership(self) -> StoredMembership:
        """The membership of the last applied membership entry."""
        return self._last_membership

    # -- RaftStateMachine -----------------------------------------------------------------

    async def applied_state(self) -> tuple[LogId | None, StoredMembership]:
        """The last applied log id and the last applied membership."""
        return self._last_applied, self._last_membership

    async def apply(self, entries: Sequence[Entry[_Request]]) -> list[Any]:
        """Apply committed entries in order; one reply per entry (``None`` unless Normal).

        Its commands are ``Set | Delete | CompareAndSwap | Increment | Get`` (``open_raft`` makes a
        ``Raft[Set | Delete | CompareAndSwap | Increment | Get, Any]`` of it); a reply is a stored
        value (``Any``) or, for ``CompareAndSwap``, ``(swapped, value_after)``."""
        replies: list[Any] = []
        for entry in entries:
            payload = entry.payload
            if isinstance(payload, Normal):
                data: Any = payload.data
                if isinstance(data, SESSION_ENTRIES):
                    index = entry.log_id.index
                    run = self._apply_watched
                    replies.append(apply_session_entry(self.sessions, data, index, run))
                else:
                    replies.append(self._apply_watched(entry.log_id.index, data))
            else:
                if isinstance(payload, MembershipChange):
                    self._last_membership = StoredMembership(entry.log_id, payload.membership)
                replies.append(None)
            self._last_applied = entry.log_id
        return replies

    def _apply_watched(self, index: int, request: Any) -> Any:
        """:meth:`_apply_request`, recording the change it makes in :attr:`history`."""
        kind = type(request)  # the request classes are final
        if kind is Delete:
            key = request.key
            present = isinstance(key, str) and key in self._data
            reply = self._apply_request(request)
            if present:
                self._history.record((index, key, _DELETE, None))
            return reply
        reply = self._apply_request(request)
        if kind is Set:
            if isinstance(request.key, str):
                self._history.record((index, request.key, _PUT, request.value))
        elif kind is CompareAndSwap and type(reply) is tuple and reply[0]:
            self._history.record((index, request.key, _PUT, request.new))
        elif kind is Increment and reply is not None:
            self._history.record((index, request.key, _PUT, reply))
        return reply

    def _apply_request(self, request: Any) -> Any:
        if not isinstance(request, _Request) or not isinstance(request.key, str):
            self.rejected += 1
            return None
        data = self._data
        key = request.key
        if isinstance(request, Set):
            previous = data.get(key)
            data[key] = request.value
            return previous
        if isinstance(request, Delete):
            return data.pop(key, None)
        if isinstance(request, CompareAndSwap):
            current = data.get(key)
            if current == request.expected:
                data[key] = request.new
                return (True, request.new)
            return (False, current)
        if isinstance(request, Increment):
            current = data.get(key, 0)
            if not _is_int(current) or not _is_int(request.delta):
                return None
            data[key] = current + request.delta
            return data[key]
        return data.get(key)  # Get

    async def build_snapshot(self) -> Snapshot:
        """Snapshot every applied entry (data, last applied log id, last membership).

        With a snapshot directory the snapshot is durable when this returns.

        Raises:
            cbor2.CBOREncodeError: if a stored value is not CBOR-encodable.
            StorageError: the snapshot could not be written (chained to the ``OSError``);
                the current snapshot stays the previous one.
        """
        return await self._snapshot_builder().build_snapshot()

    def get_snapshot_builder(self) -> KvSnapshotBuilder:
        """A builder of a snapshot of everything applied so far, to run beside apply.

        It captures the state now (a shallow copy of the key-value dict, made in C: apply
        replaces values, never changes one in place), so applies made while it builds are
        not in its snapshot. See :class:`~openraft_trio.storage.BuildsSnapshotsAside`; a
        subclass that sets ``get_snapshot_builder = None`` has its snapshots built between
        applies by :meth:`build_snapshot`.
        """
        return self._snapshot_builder()

    def _snapshot_builder(self) -> KvSnapshotBuilder:
        self._snapshot_counter += 1
        last = self._last_applied
        position = "0-none" if last is None else f"{last.term}-{last.index}"
        meta = SnapshotMeta(
            last_log_id=last,
            last_membership=self._last_membership,
            snapshot_id=f"{position}-{self._snapshot_counter}",
        )
        return KvSnapshotBuilder(
            self, meta, self._snapshot_counter, dict(self._data), table_to_plain(self.sessions)
        )

    async def install_snapshot(self, meta: SnapshotMeta, data: bytes) -> None:
        """Replace the state with the snapshot's, unless it is not newer than what is applied.

        A snapshot whose last log id is ``<=`` the last applied one is ignored: applied
        never moves backwards. With a snapshot directory an installed snapshot is durable
        when this returns.

        Raises:
            InvalidRequest: if ``data`` is not a snapshot built by :meth:`build_snapshot`,
                or disagrees with ``meta``. Nothing changes.
            StorageError: the snapshot could not be written (chained to the ``OSError``).
                Nothing changes in memory.
        """
        if log_id_ge(self._last_applied, meta.last_log_id):
            return
        decoded = _decode_snapshot(data)
        sessions = self._decode_sessions(decoded.sessions)
        if decoded.last_log_id != meta.last_log_id:
            raise InvalidRequest(
                f"snapshot data is at {decoded.last_log_id}, but its meta says {meta.last_log_id}"
            )
        if decoded.last_membership != meta.last_membership:
            raise InvalidRequest("snapshot data and meta disagree on the last membership")
        snapshot = Snapshot(meta=meta, data=bytes(data))
        if self._files is not None:
            self._snapshot_counter += 1
            await self._persist(snapshot, self._snapshot_counter)
        self._data = decoded.data
        self.sessions = sessions
        self._last_applied = meta.last_log_id
        self._last_membership = meta.last_membership
        self._current_snapshot = snapshot
        # The changes the snapshot covers were never applied here: watches start after it.
        self._history.reset(index_of(meta.last_log_id))

    def _decode_sessions(self, plain: Any) -> SessionTable:
        """A table like this machine's, holding the sessions of a snapshot."""
        try:
            return table_like(self.sessions, plain)
        except ValueError as exc:
            raise InvalidRequest(f"snapshot: malformed sessions: {exc}") from exc

    async def get_current_snapshot(self) -> Snapshot | None:
        """The latest snapshot, if any."""
        return self._current_snapshot

    # -- snapshot files -------------------------------------------------------------------

    async def _persist(self, snapshot: Snapshot, number: int) -> None:
        """Make ``snapshot`` durable as file number ``number``, then prune."""
        if self._files is not None:
            await self._files.persist(snapshot, number)

    def _load(self, files: SnapshotDirectory) -> None:
        """Create the directory if missing, drop temp files, restore the newest snapshot."""

        def decode(payload: bytes) -> _DecodedSnapshot:
            decoded = _decode_snapshot(payload)
            # Its sessions as a table (a malformed table makes the file damaged, too).
            return attrs.evolve(decoded, sessions=self._decode_sessions(decoded.sessions))

        found = files.open(decode)
        self._snapshot_counter = files.last_number
        if found is None:
            return
        decoded, snapshot_id, payload = found
        meta = SnapshotMeta(
            last_log_id=decoded.last_log_id,
            last_membership=decoded.last_membership,
            snapshot_id=snapshot_id,
        )
        self._data = decoded.data
        self.sessions = decoded.sessions
        self._last_applied = decoded.last_log_id
        self._last_membership = decoded.last_membership
        self._current_snapshot = Snapshot(meta=meta, data=payload)


@final
class KvSnapshotBuilder:
    """A snapshot of a :class:`KvStateMachine` as it was when the builder was made; its
    :meth:`build_snapshot` serializes in chunks, letting other tasks run between them.

    Made by :meth:`KvStateMachine.get_snapshot_builder`; build it once.
    """

    def __init__(
        self,
        machine: KvStateMachine,
        meta: SnapshotMeta,
        number: int,
        data: dict[str, Any],
        sessions: Any = None,
    ) -> None:
        self._machine = machine
        self._meta = meta
        self._number = number
        self._data = data
        self._sessions = sessions

    async def build_snapshot(self) -> Snapshot:
        """Serialize the captured state, persist it (with a snapshot directory), and make it
        the machine's current snapshot unless a newer one already is.

        Raises:
            cbor2.CBOREncodeError: if a stored value is not CBOR-encodable.
            StorageError: the snapshot could not be written (chained to the ``OSError``);
                the current snapshot stays the previous one.
        """
        meta = self._meta
        data = await _encode_snapshot(meta, self._data, self._sessions)
        snapshot = Snapshot(meta=meta, data=data)
        machine = self._machine
        await machine._persist(snapshot, self._number)
        current = machine._current_snapshot
        if current is None or log_id_ge(meta.last_log_id, current.meta.last_log_id):
            machine._current_snapshot = snapshot
        return snapshot


# Keys serialized between two checkpoints: about a millisecond of cbor2 (in C) per chunk
# of small values. The count adapts so that a chunk stays near _ENCODE_CHUNK_BYTES: large
# values (64 KiB each) would otherwise make one chunk of 4096 keys 256 MB long.
_ENCODE_CHUNK = 4096
_ENCODE_CHUNK_FIRST = 16
_ENCODE_CHUNK_BYTES = 1 << 20


def _map_header(length: int) -> bytes:
    """The CBOR head of a map of ``length`` pairs (major type 5, RFC 8949 section 3)."""
    if length < 24:
        return bytes([0xA0 + length])
    for marker, size in ((0xB8, 1), (0xB9, 2), (0xBA, 4), (0xBB, 8)):
        if length < 1 << (8 * size):
            return bytes([marker]) + length.to_bytes(size, "big")
    raise ValueError(f"a CBOR map cannot hold {length} pairs")


async def _encode_snapshot(
    meta: SnapshotMeta, data: dict[str, Any], sessions: Any = None
) -> bytes:
    """The snapshot's CBOR bytes, the same as ``cbor2.dumps`` of the whole document, made
    in chunks of about ``_ENCODE_CHUNK_BYTES`` (at most ``_ENCODE_CHUNK`` keys) with a Trio
    checkpoint between chunks."""
    # The document's map with "data" last: its encoding up to that value (the last byte of
    # the stand-in None is dropped), then the data map's head and its pairs, chunk by chunk.
    head = cbor2.dumps(
        {
            "format": _SNAPSHOT_FORMAT,
            "last_log_id": codec.unstructure_log_id(meta.last_log_id),
            "last_membership": codec.unstructure_stored_membership(meta.last_membership),
            "sessions": sessions,
            "data": None,
        }
    )[:-1]
    parts = [head, _map_header(len(data))]
    items = iter(data.items())
    count = _ENCODE_CHUNK_FIRST
    while chunk := dict(itertools.islice(items, count)):
        encoded = cbor2.dumps(chunk)
        parts.append(encoded[len(_map_header(len(chunk))) :])
        # Aim the next chunk at _ENCODE_CHUNK_BYTES: fewer keys after a large chunk, up to
        # twice as many after a small one.
        fitting = count * _ENCODE_CHUNK_BYTES // max(len(encoded), 1)
        count = max(1, min(fitting, 2 * count, _ENCODE_CHUNK))
        await trio.lowlevel.checkpoint()
    return b"".join(parts)


# -- snapshot codec -------------------------------------------------------------------------


@attrs.frozen
class _DecodedSnapshot:
    last_log_id: LogId | None
    last_membership: StoredMembership
    data: dict[str, Any]
    sessions: Any = None  # table_to_plain's data; None in format 2


def _decode_field(what: str, decode: Callable[[Any], T], raw: Any) -> T:
    try:
        return decode(raw)
    except codec.DecodeError as exc:
        raise InvalidRequest(f"snapshot: malformed {what}: {exc}") from exc


def _decode_snapshot(data: bytes) -> _DecodedSnapshot:
    try:
        raw = cbor2.loads(data)
    except cbor2.CBORDecodeError as exc:
        raise InvalidRequest(f"snapshot data is not valid CBOR: {exc}") from exc
    if not isinstance(raw, dict) or raw.get("format") not in _READABLE_FORMATS:
        raise InvalidRequest(f"snapshot data is not a kv snapshot of format {_READABLE_FORMATS}")
    kv = raw.get("data")
    if not (isinstance(kv, dict) and all(isinstance(k, str) for k in kv)):
        raise InvalidRequest("snapshot: data must be a map with str keys")
    return _DecodedSnapshot(
        last_log_id=_decode_field("last log id", codec.structure_log_id, raw.get("last_log_id")),
        last_membership=_decode_field(
            "last membership", codec.structure_stored_membership, raw.get("last_membership")
        ),
        data=kv,
        sessions=raw.get("sessions"),
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
