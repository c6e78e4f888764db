"""An in-memory :class:`~openraft_trio.storage.RaftLogStorage`.

Theory of operation
-------------------

The log is a Python list plus the index of its first element, so reads, appends and
purges stay cheap at 100k+ entries::

    purged ──┐   first_index              next_index
             v   v                         v
    ... ─────┤   [ e, e, e, e, e, e, e, e ]
             │   ^ durable ... ^ unflushed ^
                               durable_next

``last_log_id`` is the last entry's id, or ``last_purged_log_id`` when the list is empty.

Durability model (``flush_mode``), for tests and the deterministic simulator:

* ``"immediate"`` (default): every write is durable when it returns; ``append`` calls its
  callback with ``None`` before returning.
* ``"manual"``: ``append`` only makes entries readable; they are durable after
  :meth:`MemLogStore.flush`, which then calls the pending callbacks in submission order.
  :meth:`MemLogStore.crash` models power loss: unflushed entries vanish and their callbacks
  are dropped without being called. Every other write (vote, committed, truncate, purge) is
  durable when it returns; because writes become durable in submission order (openraft
  ``io_ordering.md``), each of them first flushes the appends submitted before it.

No method calls into trio: the store never blocks, and these methods run on the RaftCore
hot path.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Final, Literal

from .._types import Entry, LogId, LogState, Vote, next_index
from ._protocols import IOCallback, check_append

FlushMode = Literal["immediate", "manual"]

_FLUSH_MODES: Final = ("immediate", "manual")


class MemLogStore:
    """A log store that keeps everything in memory.

    Args:
        flush_mode: ``"immediate"`` (every write durable on return) or ``"manual"``
            (appends durable only after :meth:`flush`; :meth:`crash` loses the rest).

    Raises:
        ValueError: if ``flush_mode`` is neither of those.
    """

    __slots__ = (
        "_committed",
        "_durable_next",
        "_entries",
        "_first_index",
        "_flush_mode",
        "_last_purged_log_id",
        "_pending_callbacks",
        "_vote",
        "on_unflushed",
        "vote_write_latency",
    )

    def __init__(self, flush_mode: FlushMode = "immediate") -> None:
        if flush_mode not in _FLUSH_MODES:
            raise ValueError(f"flush_mode must be 'immediate' or 'manual', not {flush_mode!r}")
        self._flush_mode: FlushMode = flush_mode
        self._vote: Vote | None = None
        self._committed: LogId | None = None
        self._last_purged_log_id: LogId | None = None
        # _entries[i] has index _first_index + i.
        self._entries: list[Entry] = []
        self._first_index = 0
        # Entries with index < _durable_next survive crash(); the rest are unflushed.
        self._durable_next = 0
        self._pending_callbacks: list[IOCallback] = []
        # "manual" mode: called (sync) when an append starts waiting for flush(); the
        # simulated disk uses it to schedule a flush instead of polling.
        self.on_unflushed: Callable[[], None] | None = None
        # Awaited by ``save_vote`` before the vote becomes durable: a simulated disk's write
        # latency (a ``save_vote`` cancelled meanwhile leaves the previous vote).
        self.vote_write_latency: Callable[[], Awaitable[None]] | None = None

    # -- RaftLogStorage -------------------------------------------------------------------

    async def get_log_state(self) -> LogState:
        """The last purged and the last log id."""
        return self.log_state()

    async def save_vote(self, vote: Vote) -> None:
        """Persist ``vote``; earlier appends become durable first (I/O ordering)."""
        if self.vote_write_latency is not None:
            await self.vote_write_latency()
        self._flush_before_durable_write()
        self._vote = vote

    @property
    def vote(self) -> Vote | None:
        """The durable vote (what :meth:`read_vote` returns), for checks."""
        return self._vote

    async def read_vote(self) -> Vote | None:
        """The saved vote, or ``None``."""
        return self._vote

    async def append(self, entries: Sequence[Entry], callback: IOCallback) -> None:
        """Append ``entries``, which must start right after the last log id.

        The entries are readable when this returns. In ``"immediate"`` mode ``callback(None)``
        is called before it returns; in ``"manual"`` mode by the next :meth:`flush` (or by a
        vote/committed/truncate/purge write), and never if :meth:`crash` comes first.

        Raises:
            ValueError: if the entries would leave a hole in the log or overlap it, or are
                not contiguous themselves (checked at both ends). Nothing is appended and the
                callback is not called.
        """
        if entries:
            check_append(entries, self._last_log_id())
            self._entries.extend(entries)
        if self._flush_mode == "immediate":
            self._durable_next = self._first_index + len(self._entries)
            callback(None)
        else:
            self._pending_callbacks.append(callback)
            if self.on_unflushed is not None:
                self.on_unflushed()

    async def truncate_after(self, log_id: LogId | None) -> None:
        """Delete every entry after ``log_id`` (``None``: every entry).

        Raises:
            ValueError: if ``log_id`` is before the last purged log id: purged entries are
                committed and cannot be truncated.
        """
        keep_next = next_index(log_id)
        purged_next = next_index(self._last_purged_log_id)
        if keep_next < purged_next:
            raise ValueError(
                f"cannot truncate after {log_id}: entries up to "
                f"{self._last_purged_log_id} are purged (committed)"
            )
        self._flush_before_durable_write()
        del self._entries[max(0, keep_next - self._first_index) :]
        self._durable_next = self._first_index + len(self._entries)

    async def purge(self, upto: LogId) -> None:
        """Delete every entry up to and including ``upto`` and remember ``upto`` as purged.

        Purging past the last entry leaves an empty log whose last log id is ``upto``; the
        next append must then start at ``upto.index + 1``. Purging at or before the last
        purged log id does nothing.
        """
        # Compare indexes, not log ids: ``drop`` below must never go negative.
        if upto.index < next_index(self._last_purged_log_id):
            return
        self._flush_before_durable_write()
        new_first = upto.index + 1
        drop = new_first - self._first_index
        if drop >= len(self._entries):
            self._entries.clear()
        else:
            del self._entries[:drop]
        self._first_index = new_first
        self._durable_next = new_first + len(self._entries)
        self._last_purged_log_id = upto

    async def save_committed(self, log_id: LogId | None) -> None:
        """Save the committed log id (flushing pending appends first)."""
        self._flush_before_durable_write()
        self._committed = log_id

    async def read_committed(self) -> LogId | None:
        """The saved committed log id, or ``None``."""
        return self._committed

    async def try_get_log_entries(self, start: int, stop: int) -> list[Entry]:
        """Entries with ``start <= index < stop``, clipped to the ones that exist."""
        return self.entries_snapshot(start, stop)

    # -- sync helpers for tests and the simulator -----------------------------------------

    @property
    def flush_mode(self) -> FlushMode:
        """The flush mode the store was made with."""
        return self._flush_mode

    def log_state(self) -> LogState:
        """Sync twin of :meth:`get_log_state`."""
        return LogState(
            last_purged_log_id=self._last_purged_log_id, last_log_id=self._last_log_id()
        )

    def entries_snapshot(self, start: int = 0, stop: int | None = None) -> list[Entry]:
        """A copy of the entries with ``start <= index < stop`` (``None``: to the end)."""
        first = self._first_index
        lo = max(start - first, 0)
        hi = len(self._entries) if stop is None else min(stop - first, len(self._entries))
        if hi <= lo:
            return []
        return self._entries[lo:hi]

    @property
    def flushed_log_id(self) -> LogId | None:
        """The last durable log id: what survives :meth:`crash`."""
        durable_len = self._durable_next - self._first_index
        if durable_len > 0:
            return self._entries[durable_len - 1].log_id
        return self._last_purged_log_id

    @property
    def pending_flush_count(self) -> int:
        """How many ``append`` callbacks wait for :meth:`flush` (``"manual"`` mode)."""
        return len(self._pending_callbacks)

    def flush(self) -> None:
        """Make every appended entry durable and call the pending callbacks in order."""
        self._durable_next = self._first_index + len(self._entries)
        callbacks, self._pending_callbacks = self._pending_callbacks, []
        for callback in callbacks:
            callback(None)

    def crash(self) -> None:
        """Model power loss: drop unflushed entries and their callbacks (never called).

        The vote, the committed log id, purges and truncations were durable already and
        are kept.
        """
        del self._entries[max(0, self._durable_next - self._first_index) :]
        self._pending_callbacks = []

    # -- internals ------------------------------------------------------------------------

    def _last_log_id(self) -> LogId | None:
        if self._entries:
            return self._entries[-1].log_id
        return self._last_purged_log_id

    def _flush_before_durable_write(self) -> None:
        if self._pending_callbacks or self._durable_next != self._first_index + len(self._entries):
            self.flush()
