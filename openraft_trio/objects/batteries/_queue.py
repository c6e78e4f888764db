"""``FifoQueue``: a replicated first-in first-out queue."""

from __future__ import annotations

from collections import deque
from typing import Any, final

import attrs

from .._declare import ReplicatedObject, query, replicated
from ._checks import check_limit
from ._replies import Full


def _check_max_size(_instance: Any, _attribute: Any, value: int | None) -> None:
    check_limit(value, "max_size")


@final
class FifoQueue(ReplicatedObject):
    """A replicated FIFO queue with an optional size limit.

    Commands: :meth:`put` and :meth:`get` (it removes, so it goes through the log);
    queries: :meth:`peek` and :meth:`size`. Items are application data (plain CBOR or
    registered types); ``None`` cannot be put, since :meth:`get` replies ``None`` for an
    empty queue. Each item is delivered to exactly one successful ``get`` (a ``get`` whose
    reply is lost took its item all the same). See ``docs/tutorial-queue.md``.

    Attributes:
        items: the items, oldest first.
        max_size: at most this many items (``None``: no limit); a ``put`` beyond it is
            refused with the reply :class:`Full`.
    """

    items: deque[Any] = attrs.field(factory=deque)
    max_size: int | None = attrs.field(default=None, validator=_check_max_size)

    @replicated
    def put(self, item: Any) -> int | Full:
        """Add ``item`` at the back; return the size afterwards, or ``Full(max_size)``
        (nothing added) if the queue is full.

        Raises:
            ValueError: ``item`` is ``None``.
        """
        if item is None:
            raise ValueError("cannot put None: get replies None for an empty queue")
        if self.max_size is not None and len(self.items) >= self.max_size:
            return Full(self.max_size)
        self.items.append(item)
        return len(self.items)

    @replicated
    def get(self) -> Any:
        """Remove and return the front item, or ``None`` if the queue is empty."""
        return self.items.popleft() if self.items else None

    @query
    def peek(self) -> Any:
        """The front item (left in place), or ``None`` if the queue is empty."""
        return self.items[0] if self.items else None

    @query
    def size(self) -> int:
        """How many items."""
        return len(self.items)
