"""``Counter``: a replicated integer."""

from __future__ import annotations

from typing import final

from .._declare import ReplicatedObject, query, replicated
from ._checks import check_int


@final
class Counter(ReplicatedObject):
    """A replicated integer counter, starting at 0 (or at ``value``).

    Commands: :meth:`add` and :meth:`set`; query: :meth:`get`. A non-``int`` argument
    (``bool`` included) is refused: the handle raises ``ReplicatedMethodError`` naming
    ``TypeError`` and the value is unchanged. See ``docs/tutorial-counter.md``.

    Attributes:
        value: the counter.
    """

    value: int = 0

    @replicated
    def add(self, n: int = 1) -> int:
        """Add ``n`` (may be negative); return the new value.

        Raises:
            TypeError: ``n`` is not an ``int``.
        """
        self.value += check_int(n, "n")
        return self.value

    @replicated
    def set(self, value: int) -> int:
        """Set the counter to ``value``; return the previous value.

        Raises:
            TypeError: ``value`` is not an ``int``.
        """
        previous = self.value
        self.value = check_int(value, "value")
        return previous

    @query
    def get(self) -> int:
        """The value."""
        return self.value
