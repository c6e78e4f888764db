"""Watches: the change history a :class:`~openraft_trio.kv.KvStateMachine` keeps as it
applies, and the reads of it that the ``watch`` operation serves.

Theory of operation. Every applied log entry that changes a key is one change, keyed by
its log index: ``put`` (a ``Set``, a ``CompareAndSwap`` that swapped, an ``Increment`` of
an integer) or ``delete`` (a ``Delete`` of a key that was present), sent alone or in a
client session (a retry that the session answers changes nothing, so it is no change).
The state machine notes each one as it applies it (``KvStateMachine._apply_watched``).
An entry changes at most one key, so an index names
at most one change, and since applied entries are committed, index ``i`` names the same
change on every node. A watcher that has seen everything up to index ``i`` therefore
resumes at ``i + 1`` on any node, after any leader change, with no gap and no duplicate.

The history is a ring of the last ``size`` changes, complete from
:meth:`ChangeHistory.oldest_index` up to the last applied index::

    evicted or never seen        held                     not applied yet
    ────────────────────┤ oldest_index ... applied ├─────────────────────
                          (every change in between)

The oldest index moves forward when the ring evicts its oldest change, when a snapshot is
installed (the changes it covers were never applied here) and, at startup, to the index
after the snapshot the machine restored. A read that starts before it raises
:class:`WatchCompacted` naming it: the history cannot prove that nothing changed there,
and a silent gap is never an answer.
"""

from __future__ import annotations

import collections
import enum
from collections.abc import Iterator
from typing import Any, Final, final

import attrs
import cbor2

from .._errors import InvalidRequest, RaftError, short_repr
from ..codec import DecodeError

DEFAULT_HISTORY_SIZE: Final = 4096
"""Changes a state machine keeps for watches unless told otherwise."""

MAX_BATCH_BYTES: Final = 1024 * 1024
"""Encoded values a watch reply carries at most (it carries at least one change)."""


DEFAULT_WATCH_EVENTS: Final = 100
"""Changes a ``watch`` reply carries at most, unless asked otherwise."""
MAX_WATCH_EVENTS: Final = 1000
"""The most changes a ``watch`` call may ask for."""
MAX_WATCH_WAIT: Final = 60.0
"""The longest a ``watch`` call may wait for a change, in seconds."""
MAX_PREFIX_LENGTH: Final = 4096  # the longest key (the service's MAX_KEY_LENGTH)


def check_watch_arguments(
    prefix: Any, from_index: Any, max_events: Any, wait: Any
) -> tuple[str, int | None, int, float]:
    """The arguments of a ``watch`` call, checked.

    Raises:
        InvalidRequest: ``prefix`` is not a ``str`` of at most 4096 characters (``""``
            watches every key), ``from_index`` is neither ``None`` nor an ``int >= 0``,
            ``max_events`` is not an ``int`` in ``1..MAX_WATCH_EVENTS``, or ``wait`` is not
            a number of seconds in ``0..MAX_WATCH_WAIT``.
    """
    if type(prefix) is not str or len(prefix) > MAX_PREFIX_LENGTH:
        raise InvalidRequest(
            f"a watch prefix is a str of at most {MAX_PREFIX_LENGTH} chars, got "
            f"{short_repr(prefix)}"
        )
    if from_index is not None and (type(from_index) is not int or from_index < 0):
        raise InvalidRequest(
            f"from_index must be None or a log index (an int >= 0), got {short_repr(from_index)}"
        )
    if type(max_events) is not int or not 1 <= max_events <= MAX_WATCH_EVENTS:
        raise InvalidRequest(
            f"max_events must be an int in 1..{MAX_WATCH_EVENTS}, got {short_repr(max_events)}"
        )
    if type(wait) not in (int, float) or not 0 <= wait <= MAX_WATCH_WAIT:
        raise InvalidRequest(
            f"wait must be seconds in 0..{MAX_WATCH_WAIT:g}, got {short_repr(wait)}"
        )
    return prefix, from_index, max_events, float(wait)


class ChangeKind(enum.Enum):
    """What a change did to its key."""

    PUT = "put"
    """The key got a value: a ``put``, or a ``cas`` that swapped."""
    DELETE = "delete"
    """The key was removed (a ``delete`` of an absent key changes nothing)."""


@final
@attrs.frozen
class WatchEvent:
    """One change to a key, at the log index that made it.

    Attributes:
        index: the log index of the entry that made the change; unique per change and the
            same on every node.
        key: the key changed.
        kind: :attr:`ChangeKind.PUT` or :attr:`ChangeKind.DELETE`.
        value: the value after a put; ``None`` after a delete.
    """

    index: int
    key: str
    kind: ChangeKind
    value: Any = None

    def to_wire(self) -> list[Any]:
        """``[index, key, kind, value]``, as the ``watch`` op's reply carries it."""
        return [self.index, self.key, self.kind.value, self.value]

    @classmethod
    def from_wire(cls, raw: Any) -> WatchEvent:
        """The event of a ``watch`` reply's ``[index, key, kind, value]``.

        Raises:
            DecodeError: ``raw`` is not such a list.
        """
        if type(raw) is list and len(raw) == 4:
            index, key, kind, value = raw
            if type(index) is int and index > 0 and type(key) is str:
                for member in ChangeKind:
                    if member.value == kind:
                        return cls(index, key, member, value)
        raise DecodeError(f"not a watch event [index, key, kind, value]: {short_repr(raw)}")


class WatchCompacted(RaftError):
    """A watch asked for changes older than the node still holds.

    The node's change history starts at ``oldest_index`` (older changes were evicted, were
    covered by a snapshot it installed, or were applied before it restarted). Read the
    current state (``get`` the keys, or a ``snapshot``), then watch again from the index
    that state reflects, plus one.

    Attributes:
        from_index: the index the watch asked to start at.
        oldest_index: the oldest index the node can still stream from.
    """

    def __init__(self, from_index: int, oldest_index: int) -> None:
        super().__init__(
            f"changes before index {oldest_index} are no longer held (asked from "
            f"{from_index}): read the current state and watch from its index + 1"
        )
        self.from_index = from_index
        self.oldest_index = oldest_index
        # Sent in the error reply's detail (network/_server.py), so clients rebuild it.
        self.reply_detail = [from_index, oldest_index]

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.from_index, self.oldest_index))


@final
class ChangeHistory:
    """The last ``size`` changes, in log order (see the module docstring).

    Args:
        size: how many changes to keep (``0``: none, every watch of a past index is
            compacted).
        applied: the index already applied when the history starts (``-1``: none; changes
            up to it are not held).

    The state machine calls :attr:`record` for each change it applies and :meth:`reset`
    when it installs a snapshot.

    Raises:
        TypeError: ``size`` is not an ``int``.
        ValueError: ``size`` is negative.
    """

    def __init__(self, size: int = DEFAULT_HISTORY_SIZE, applied: int = -1) -> None:
        if isinstance(size, bool) or not isinstance(size, int):
            raise TypeError(f"the watch history size must be an int, got {size!r}")
        if size < 0:
            raise ValueError(f"the watch history size must be >= 0, got {size}")
        self.size = size
        changes: collections.deque[tuple[int, str, ChangeKind, Any]] = collections.deque(
            maxlen=size
        )
        self._changes = changes
        self._start = applied + 1
        self.record = changes.append
        """``record((index, key, kind, value))``: add the change the entry at ``index``
        (just applied: indexes only increase) made; the oldest one goes when the ring is
        full. The deque's own ``append``, as a tuple: it runs in the apply loop, where a
        Python-level call and a frozen attrs instance per change would cost more than the
        rest of the apply."""

    def oldest_index(self, applied: int) -> int:
        """The oldest index the history is complete from, ``applied`` being the last index
        applied.

        Once the ring is full it is the index of the oldest change held: the evicted
        changes were older, and nothing changed between the last of them and it (this may
        be later than necessary, never earlier)."""
        changes = self._changes
        if self.size == 0:
            return max(self._start, applied + 1)
        if len(changes) == self.size:
            return max(self._start, changes[0][0])
        return self._start

    def __len__(self) -> int:
        return len(self._changes)

    def reset(self, applied: int) -> None:
        """Forget everything: the state now reflects ``applied`` (a snapshot installed)."""
        self._changes.clear()
        self._start = applied + 1

    def read(
        self, prefix: str, from_index: int, max_events: int, applied: int
    ) -> tuple[list[WatchEvent], int]:
        """The changes to keys starting with ``prefix`` at ``from_index`` or later, at most
        ``max_events`` of them and about :data:`MAX_BATCH_BYTES` of values (at least one),
        and the index to read from next: after the last change returned if the batch is
        full, else after ``applied`` (the last applied index: nothing else matched).

        Raises:
            WatchCompacted: ``from_index`` is before :meth:`oldest_index`.
        """
        oldest = self.oldest_index(applied)
        if from_index < oldest:
            raise WatchCompacted(from_index, oldest)
        events: list[WatchEvent] = []
        budget = MAX_BATCH_BYTES
        for index, key, kind, value in self._from(from_index):
            if not key.startswith(prefix):
                continue
            budget -= _value_size(value)
            if events and budget < 0:
                return events, events[-1].index + 1
            events.append(WatchEvent(index, key, kind, value))
            if len(events) >= max_events:
                return events, index + 1
        return events, max(from_index, applied + 1)

    def _from(self, from_index: int) -> Iterator[tuple[int, str, ChangeKind, Any]]:
        """The held changes at ``from_index`` or later, oldest first."""
        changes = self._changes
        # Indexes increase along the ring: skip to the first one wanted by bisection.
        low, high = 0, len(changes)
        while low < high:
            middle = (low + high) // 2
            if changes[middle][0] < from_index:
                low = middle + 1
            else:
                high = middle
        for position in range(low, len(changes)):
            yield changes[position]


def _value_size(value: Any) -> int:
    """About how many bytes ``value`` takes in a reply."""
    if value is None or isinstance(value, bool | int | float):
        return 9
    if isinstance(value, str | bytes):
        return len(value) + 9
    return len(cbor2.dumps(value))
