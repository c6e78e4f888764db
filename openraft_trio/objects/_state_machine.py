"""``ObjectStateMachine``: a replicated object as a Raft state machine.

Entries apply in log order: a :class:`~openraft_trio.objects.Call` runs the object's
command (its reply is the method's return value or an
:class:`~openraft_trio.objects.ErrorReply`), an :class:`~openraft_trio.objects.Upgrade`
raises the active code version, a membership entry is recorded, anything else is answered
``None`` and counted in :attr:`ObjectStateMachine.rejected` (a bad client request must not
stop the apply loop).

A snapshot is one CBOR map: the format, the class name, the last applied log id and
membership, the log time and index, the active version, and the object's fields
unstructured by :data:`openraft_trio.codec.converter`. It is built between applies. In
memory by default (the log replays what came after it on restart, as with
``KvStateMachine()``); with a ``snapshot_dir`` every snapshot built or installed is durable
before the call returns, and construction restores the newest valid one, exactly as
``KvStateMachine(directory)`` does (the same files: :mod:`openraft_trio.kv._snapshot_dir`).

Client sessions (:mod:`openraft_trio.sessions`): the machine applies session entries itself
(:func:`~openraft_trio.sessions.decide`), keeping its
:class:`~openraft_trio.sessions.SessionTable` under the snapshot's ``"sessions"`` key, so a
``SessionCommand`` wrapping a ``Call`` runs once however often it is retried, also across a
restart from a durable snapshot. A snapshot without the key (from before sessions) holds
no sessions.
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Sequence
from typing import Any, Final, Generic, TypeVar, final

import attrs
import cbor2
import trio

from .. import codec
from .._errors import short_repr, short_text
from .._types import (
    Entry,
    LogId,
    MembershipChange,
    Normal,
    Snapshot,
    SnapshotMeta,
    StoredMembership,
    log_id_ge,
)
from ..kv._snapshot_dir import SnapshotDirectory, snapshot_directory
from ..kv._snapshot_files import IORunner
from ..sessions import SESSION_ENTRIES, SessionTable, table_to_plain
from ..sessions._apply import apply_session_entry, table_like
from ..storage._fs import FileSystem
from ._calls import Call, Upgrade, apply_call
from ._declare import ReplicatedObject, set_log_position
from ._errors import MalformedSnapshotError, UnknownVersionError

T = TypeVar("T", bound=ReplicatedObject)

SNAPSHOT_FORMAT: Final = 1

logger = logging.getLogger("openraft_trio.objects")


@attrs.frozen
class ObjectState:
    """What an object's snapshot holds besides Raft's own bookkeeping (and what the
    simulator's generic model steps through)."""

    fields: Any
    log_time: float
    log_index: int
    active_version: int


def capture(obj: ReplicatedObject, active_version: int) -> ObjectState:
    """The object's state as plain data (the fields unstructured by the codec converter)."""
    return ObjectState(
        codec.converter.unstructure(obj), obj.log_time, obj.log_index, active_version
    )


def restore(cls: type[T], state: ObjectState) -> T:
    """A new ``cls`` instance holding ``state``.

    Raises:
        MalformedSnapshotError: the fields do not structure as ``cls``.
    """
    try:
        obj = codec.converter.structure(state.fields, cls)
    except Exception as exc:
        raise MalformedSnapshotError(
            f"snapshot fields do not fit {cls.__qualname__}: {short_text(str(exc))}"
        ) from exc
    set_log_position(obj, state.log_time, state.log_index)
    return obj


def encode_state(cls: type[ReplicatedObject], state: ObjectState, extra: dict[str, Any]) -> bytes:
    """The CBOR snapshot document of ``state`` (plus ``extra`` keys), keys sorted."""
    document = {
        "format": SNAPSHOT_FORMAT,
        "object": cls.__qualname__,
        "log_time": state.log_time,
        "log_index": state.log_index,
        "active_version": state.active_version,
        "fields": state.fields,
        **extra,
    }
    return cbor2.dumps(document, canonical=True)


def decode_state(cls: type[ReplicatedObject], data: bytes) -> tuple[ObjectState, dict[str, Any]]:
    """The inverse of :func:`encode_state`: the state and the whole document.

    Raises:
        MalformedSnapshotError: not such a document for ``cls``.
    """
    try:
        raw = cbor2.loads(data, semantic_decoders=codec.SEMANTIC_DECODERS)
    except Exception as exc:
        raise MalformedSnapshotError(f"snapshot data is not valid CBOR: {exc!r}") from exc
    if not isinstance(raw, dict) or raw.get("format") != SNAPSHOT_FORMAT:
        raise MalformedSnapshotError(
            f"snapshot data is not an object snapshot of format {SNAPSHOT_FORMAT}"
        )
    if raw.get("object") != cls.__qualname__:
        raise MalformedSnapshotError(
            f"snapshot of {short_repr(raw.get('object'))}, not of {cls.__qualname__}"
        )
    log_time, log_index, active = (
        raw.get("log_time"),
        raw.get("log_index"),
        raw.get("active_version"),
    )
    if type(log_time) is not float or type(log_index) is not int or type(active) is not int:
        raise MalformedSnapshotError("snapshot: log_time, log_index or active_version malformed")
    return ObjectState(raw.get("fields"), log_time, log_index, active), raw


@attrs.frozen
class _Decoded:
    last_log_id: LogId | None
    last_membership: StoredMembership
    obj: Any
    active_version: int
    sessions: SessionTable


def _new_object(obj: type[T] | T) -> T:
    if isinstance(obj, type):
        if not issubclass(obj, ReplicatedObject):
            raise TypeError(f"expected a ReplicatedObject subclass, got {obj!r}")
        return obj()
    if not isinstance(obj, ReplicatedObject):
        raise TypeError(f"expected a ReplicatedObject or its class, got {short_repr(obj)}")
    return copy.deepcopy(obj)


@final
class ObjectStateMachine(Generic[T]):
    """A :class:`~openraft_trio.storage.RaftStateMachine` running a replicated object.

    Args:
        obj: the object's class (its initial state is ``cls()``) or an instance to start
            from (copied). Every node must start from the same state.
        initial_version: the active code version before any :class:`Upgrade` (the same on
            every node; default 1).
        snapshot_dir: where snapshots persist (``None``: in memory only). See the module
            docstring; the directory should belong to this state machine alone.
        fs: the file system of ``snapshot_dir`` (default the real one).
        keep_snapshots: how many snapshot files to keep (at least 1).
        run_io: how the blocking snapshot writes run (default
            ``trio.to_thread.run_sync``; the simulator passes ``run_inline``).
        session_timeout: log seconds an unused client session lives.
        session_window: the most unacknowledged replies cached per session.
        max_sessions: the most live client sessions.

    Raises:
        TypeError: ``obj`` is not a :class:`ReplicatedObject` subclass or instance.
        UnknownVersionError: ``initial_version`` (or the restored snapshot's active
            version) is above what the class has.
        StorageError: ``snapshot_dir`` cannot be created or read.

    Attributes:
        rejected: how many ``Normal`` payloads were neither a ``Call`` nor an ``Upgrade``
            (nor a session entry).
        sessions: the client session table (replaced when a snapshot is installed).
    """

    def __init__(
        self,
        obj: type[T] | T,
        *,
        initial_version: int = 1,
        snapshot_dir: str | os.PathLike[str] | None = None,
        fs: FileSystem | None = None,
        keep_snapshots: int = 2,
        run_io: IORunner = trio.to_thread.run_sync,
        session_timeout: float = 60.0,
        session_window: int = 64,
        max_sessions: int = 10_000,
    ) -> None:
        self._object: T = _new_object(obj)
        self._class: type[T] = type(self._object)
        if isinstance(initial_version, bool) or not isinstance(initial_version, int):
            raise TypeError(f"initial_version must be an int, got {initial_version!r}")
        self._check_version(initial_version)
        self._active_version = initial_version
        self._last_applied: LogId | None = None
        self._last_membership = StoredMembership()
        self._current_snapshot: Snapshot | None = None
        self._snapshot_counter = 0
        self.rejected = 0
        self.sessions = SessionTable(
            timeout=session_timeout, window=session_window, max_sessions=max_sessions
        )
        self._files = snapshot_directory(snapshot_dir, fs, keep_snapshots, run_io, logger)
        if self._files is not None:
            self._load(self._files)

    def _load(self, files: SnapshotDirectory) -> None:
        found = files.open(self._decode_snapshot)
        self._snapshot_counter = files.last_number
        if found is None:
            return
        decoded, snapshot_id, payload = found
        self._check_version(decoded.active_version)
        self._restore(
            decoded,
            Snapshot(
                SnapshotMeta(decoded.last_log_id, decoded.last_membership, snapshot_id), payload
            ),
        )

    def _decode_snapshot(self, data: bytes) -> _Decoded:
        """The state in ``data`` (a snapshot of this class), restored into a new object.

        Raises:
            MalformedSnapshotError: it is not one.
        """
        state, raw = decode_state(self._class, data)
        try:
            last_log_id = codec.structure_log_id(raw.get("last_log_id"))
            last_membership = codec.structure_stored_membership(raw.get("last_membership"))
        except codec.DecodeError as exc:
            raise MalformedSnapshotError(f"snapshot: {exc}") from exc
        try:
            sessions = table_like(self.sessions, raw.get("sessions"))
        except ValueError as exc:
            raise MalformedSnapshotError(f"snapshot: malformed sessions: {exc}") from exc
        return _Decoded(
            last_log_id,
            last_membership,
            restore(self._class, state),
            state.active_version,
            sessions,
        )

    def _restore(self, decoded: _Decoded, snapshot: Snapshot) -> None:
        self._object = decoded.obj
        self._active_version = decoded.active_version
        self.sessions = decoded.sessions
        self._last_applied = decoded.last_log_id
        self._last_membership = decoded.last_membership
        self._current_snapshot = snapshot

    def _check_version(self, version: int) -> None:
        if version > self._class.object_methods.max_version:
            raise UnknownVersionError(
                f"{self._class.__qualname__} has code up to version "
                f"{self._class.object_methods.max_version}, asked for version {version}"
            )

    @property
    def snapshot_dir(self) -> str | None:
        """The directory snapshots persist to, or ``None`` when in memory only."""
        return None if self._files is None else self._files.directory

    @property
    def object(self) -> T:
        """The live object on this replica (read it only after a linearizable read, and
        never change it outside a command)."""
        return self._object

    @property
    def object_class(self) -> type[T]:
        """The object's class."""
        return self._class

    @property
    def active_version(self) -> int:
        """The code version calls without a version run with."""
        return self._active_version

    @property
    def last_applied(self) -> LogId | None:
        """The log id of the last applied entry (``None`` before any)."""
        return self._last_applied

    def state(self) -> Any:
        """A comparable picture of the replica (fields, log time and index, active version):
        replicas that applied the same entries have equal ones."""
        return capture(self._object, self._active_version)

    # -- RaftStateMachine -----------------------------------------------------------------

    async def applied_state(self) -> tuple[LogId | None, StoredMembership]:
        """The last applied log id and the last applied membership."""
        return self._last_applied, self._last_membership

    async def apply(self, entries: Sequence[Entry[Call | Upgrade]]) -> list[Any]:
        """Apply committed entries in order; one reply per entry (``None`` unless Normal).

        Raises:
            UnknownVersionError: an entry needs code this node does not have (fail-stop).
        """
        replies: list[Any] = []
        obj = self._object
        for entry in entries:
            payload = entry.payload
            index = entry.log_id.index
            reply = None
            if isinstance(payload, Normal):
                data: Any = payload.data
                if isinstance(data, SESSION_ENTRIES):
                    run = self._apply_session_command
                    reply = apply_session_entry(self.sessions, data, index, run)
                    # An entry answered from the table still moves the log position.
                    set_log_position(obj, obj.log_time, index)
                elif isinstance(data, Call):
                    reply = apply_call(
                        obj, data, active_version=self._active_version, log_index=index
                    )
                elif isinstance(data, Upgrade) and type(data.version) is int:
                    if data.version > self._active_version:
                        self._check_version(data.version)
                        self._active_version = data.version
                    reply = self._active_version
                    set_log_position(obj, obj.log_time, index)
                else:
                    self.rejected += 1
                    set_log_position(obj, obj.log_time, index)
            else:
                if isinstance(payload, MembershipChange):
                    self._last_membership = StoredMembership(entry.log_id, payload.membership)
                set_log_position(obj, obj.log_time, index)
            replies.append(reply)
            self._last_applied = entry.log_id
        return replies

    def _apply_session_command(self, index: int, command: Any) -> Any:
        """Run the command of a new ``SessionCommand``: a ``Call``, else rejected."""
        if isinstance(command, Call):
            return apply_call(
                self._object, command, active_version=self._active_version, log_index=index
            )
        self.rejected += 1
        return None

    async def build_snapshot(self) -> Snapshot:
        """Snapshot everything applied so far; it becomes the current snapshot.

        With a snapshot directory the snapshot is durable when this returns.

        Raises:
            cbor2.CBOREncodeError: a field value is not CBOR-encodable.
            StorageError: it could not be written (chained to the ``OSError``); the
                current snapshot stays the previous one.
        """
        self._snapshot_counter += 1
        last = self._last_applied
        position = "0-none" if last is None else f"{last.term}-{last.index}"
        meta = SnapshotMeta(
            last_log_id=last,
            last_membership=self._last_membership,
            snapshot_id=f"{position}-{self._snapshot_counter}",
        )
        data = encode_state(
            self._class,
            capture(self._object, self._active_version),
            {
                "last_log_id": codec.unstructure_log_id(last),
                "last_membership": codec.unstructure_stored_membership(self._last_membership),
                "sessions": table_to_plain(self.sessions),
            },
        )
        snapshot = Snapshot(meta=meta, data=data)
        if self._files is not None:
            await self._files.persist(snapshot, self._snapshot_counter)
        self._current_snapshot = snapshot
        return snapshot

    async def install_snapshot(self, meta: SnapshotMeta, data: bytes) -> None:
        """Replace the state with the snapshot's, unless it is not newer than what is applied.

        Raises:
            MalformedSnapshotError: ``data`` is not an object snapshot of this class, or
                disagrees with ``meta``. Nothing changes.
            UnknownVersionError: its active version is above this code's. Nothing changes.
            StorageError: it could not be written (with a snapshot directory). Nothing
                changes in memory.
        """
        if log_id_ge(self._last_applied, meta.last_log_id):
            return
        decoded = self._decode_snapshot(data)
        if decoded.last_log_id != meta.last_log_id:
            raise MalformedSnapshotError(
                f"snapshot data is at {decoded.last_log_id}, but its meta says {meta.last_log_id}"
            )
        if decoded.last_membership != meta.last_membership:
            raise MalformedSnapshotError("snapshot data and meta disagree on the last membership")
        self._check_version(decoded.active_version)
        snapshot = Snapshot(meta=meta, data=bytes(data))
        if self._files is not None:
            self._snapshot_counter += 1
            await self._files.persist(snapshot, self._snapshot_counter)
        self._restore(decoded, snapshot)

    async def get_current_snapshot(self) -> Snapshot | None:
        """The latest snapshot built or installed, or None."""
        return self._current_snapshot
