"""Storage interfaces: the log store and the state machine.

Rules every implementation must honour (openraft ``io_ordering.md``):

* vote and log writes become durable in the order they were submitted;
* ``append`` makes entries readable before it returns and calls ``callback(None)`` exactly
  once when they are durable (possibly before ``append`` returns), or ``callback(error)``
  if they cannot be; never both, never twice;
* the log never has holes; ``purge`` drops only entries covered by a snapshot.

Index ranges are half-open: ``try_get_log_entries(start, stop)`` returns ``[start, stop)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

from typing_extensions import TypeVar

from .._types import Entry, LogId, LogState, Snapshot, SnapshotMeta, StoredMembership, Vote

IOCallback = Callable[[BaseException | None], None]

# A state machine's command type (the data of the Normal entries it applies: contravariant,
# as it is taken) and reply type (one per entry). Both default to ``Any``.
_Command = TypeVar("_Command", contravariant=True, default=Any)
_Reply = TypeVar("_Reply", default=Any)


def check_append(entries: Sequence[Entry], last_log_id: LogId | None) -> None:
    """Raise ``ValueError`` unless ``entries`` (non-empty) continue the log right after
    ``last_log_id`` and are contiguous themselves (both ends checked): no holes, no overlap.
    """
    expected = 0 if last_log_id is None else last_log_id.index + 1
    first = entries[0].log_id.index
    last = entries[-1].log_id.index
    if first != expected:
        raise ValueError(
            f"append must start at index {expected} (right after the last log id "
            f"{last_log_id}), got index {first}: the log never has holes"
        )
    if last != first + len(entries) - 1:
        raise ValueError(
            f"appended entries are not contiguous: {len(entries)} entries "
            f"span indexes {first}..{last}"
        )


@runtime_checkable
class EncodesEntries(Protocol):
    """Declared by a log store or network factory that encodes entries (onto disk or the
    wire, with :mod:`openraft_trio.codec`): with ``requires_encodable_data = True``,
    ``open_raft`` refuses client data that cannot be encoded before anything is logged,
    instead of letting the store or transport fail on it. A part that does not declare it
    carries entries as Python objects (``MemLogStore``, the testing ``Router``).
    """

    requires_encodable_data: bool


@runtime_checkable
class RaftLogStorage(Protocol):
    """The Raft log and vote store a node writes to; see ``docs/storage.md`` for the
    contract (durability, submission order, no holes) that
    :mod:`openraft_trio.testing.storage_suite` checks."""

    async def get_log_state(self) -> LogState:
        """The last purged log id and the last log id (the last purged one when the log is
        empty)."""

    async def save_vote(self, vote: Vote) -> None:
        """Persist ``vote``; durable (with every earlier append) before it returns."""

    async def read_vote(self) -> Vote | None:
        """The persisted vote, or None if none was saved."""

    async def append(self, entries: Sequence[Entry], callback: IOCallback) -> None:
        """Append ``entries`` (contiguous, right after the last entry)."""

    async def truncate_after(self, log_id: LogId | None) -> None:
        """Delete every entry after ``log_id`` (``None``: delete all)."""

    async def purge(self, upto: LogId) -> None:
        """Delete every entry up to and including ``upto``."""

    async def save_committed(self, log_id: LogId | None) -> None:
        """Save the committed log id; may be persisted lazily (a restart may read an older
        one, or None)."""

    async def read_committed(self) -> LogId | None:
        """The saved committed log id, or None."""

    async def try_get_log_entries(self, start: int, stop: int) -> list[Entry]:
        """Entries with ``start <= index < stop`` that exist, in order, without holes."""


@runtime_checkable
class RaftStateMachine(Protocol[_Command, _Reply]):
    """The replicated application: applies committed entries, builds and installs
    snapshots; see ``docs/storage.md`` for the contract.

    Generic in the command type (the data of the ``Normal`` entries it applies) and the
    reply type: a state machine whose ``apply`` takes ``Sequence[Entry[Deposit]]`` and
    returns ``list[Receipt | None]`` is a ``RaftStateMachine[Deposit, Receipt | None]``,
    and ``open_raft`` gives it a ``Raft[Deposit, Receipt | None]``. Unannotated, both are
    ``Any``."""

    async def applied_state(self) -> tuple[LogId | None, StoredMembership]:
        """The last applied log id and the last applied membership (read at startup)."""

    async def apply(self, entries: Sequence[Entry[_Command]]) -> list[_Reply]:
        """Apply committed entries in order; one reply per entry (None for non-Normal)."""

    async def build_snapshot(self) -> Snapshot:
        """Snapshot everything applied so far; it becomes the current snapshot."""

    async def install_snapshot(self, meta: SnapshotMeta, data: bytes) -> None:
        """Replace the state with the snapshot's, unless ``meta.last_log_id`` is at or
        before the last applied log id: then change nothing (applied never moves
        backwards). Afterwards the snapshot is the current one."""

    async def get_current_snapshot(self) -> Snapshot | None:
        """The latest snapshot built or installed, or None."""


@runtime_checkable
class RaftSnapshotBuilder(Protocol):
    """Builds one snapshot of the state it captured (openraft's ``RaftSnapshotBuilder``);
    see :class:`BuildsSnapshotsAside`."""

    async def build_snapshot(self) -> Snapshot:
        """Serialize (and persist, if the state machine persists snapshots) the captured
        state; make it the state machine's current snapshot unless a newer one already is;
        return it. Runs beside ``apply``: it must not read the live state."""


@runtime_checkable
class BuildsSnapshotsAside(Protocol):
    """Declared by a state machine whose snapshots are built beside apply, not between
    applies (openraft's ``RaftStateMachine::get_snapshot_builder``).

    The state machine worker calls :meth:`get_snapshot_builder` between two ``apply``
    calls; it must capture the state as applied so far, without awaiting (a cheap
    consistent view: a copy made in C, a copy-on-write handle), and return a builder. The
    builder's ``build_snapshot`` then runs in a task of its own while ``apply`` goes on;
    its snapshot is exactly the captured state, at the last log id applied at capture.
    At most one builder runs at a time, and ``install_snapshot`` is called only when none
    is running. A state machine without this method has ``build_snapshot`` called between
    applies, as before.
    """

    def get_snapshot_builder(self) -> RaftSnapshotBuilder:
        """Capture the state applied so far, without awaiting; return its builder."""
