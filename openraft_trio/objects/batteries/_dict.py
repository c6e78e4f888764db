"""``ReplicatedDict``: a replicated mapping of ``str`` keys to values."""

from __future__ import annotations

from typing import Any, final

import attrs

from .._declare import ReplicatedObject, query, replicated
from ._checks import check_limit, check_str
from ._replies import Full


def _check_max_keys(_instance: Any, _attribute: Any, value: int | None) -> None:
    check_limit(value, "max_keys")


@final
class ReplicatedDict(ReplicatedObject):
    """A replicated mapping from ``str`` keys to values, with an optional key limit.

    Commands: :meth:`set`, :meth:`delete`, :meth:`compare_and_set`; queries: :meth:`get`,
    :meth:`keys`, :meth:`items`, :meth:`len`. Values are application data (plain CBOR or
    registered types); arguments reach every replica through the codec, so a tuple is
    stored as a list. A key that is not a ``str`` is refused (``TypeError``, nothing
    changes). See ``docs/tutorial-dict.md``.

    Attributes:
        data: the mapping.
        max_keys: at most this many keys (``None``: no limit); a new key beyond it is
            refused with the reply :class:`Full`.
    """

    data: dict[str, Any] = attrs.field(factory=dict)
    max_keys: int | None = attrs.field(default=None, validator=_check_max_keys)

    @replicated
    def set(self, key: str, value: Any) -> Any:
        """Store ``value`` under ``key``; return the previous value (``None`` if absent),
        or ``Full(max_keys)`` (nothing stored) if ``key`` is new and the dict is full.

        Raises:
            TypeError: ``key`` is not a ``str``.
        """
        check_str(key, "key")
        if (full := self._full_for(key)) is not None:
            return full
        previous = self.data.get(key)
        self.data[key] = value
        return previous

    @replicated
    def delete(self, key: str) -> Any:
        """Remove ``key``; return its value, or ``None`` if it was absent.

        Raises:
            TypeError: ``key`` is not a ``str``.
        """
        return self.data.pop(check_str(key, "key"), None)

    @replicated
    def compare_and_set(self, key: str, expected: Any, new: Any) -> bool | Full:
        """Store ``new`` under ``key`` if its value equals ``expected`` (an absent key
        equals ``None``); return whether it did, or ``Full(max_keys)`` if ``key`` is new,
        matched and the dict is full.

        Raises:
            TypeError: ``key`` is not a ``str``.
        """
        if self.data.get(check_str(key, "key")) != expected:
            return False
        if (full := self._full_for(key)) is not None:
            return full
        self.data[key] = new
        return True

    @query
    def get(self, key: str) -> Any:
        """The value of ``key``, or ``None`` if absent.

        Raises:
            TypeError: ``key`` is not a ``str``.
        """
        return self.data.get(check_str(key, "key"))

    @query
    def keys(self) -> list[str]:
        """The keys, sorted."""
        return sorted(self.data)

    @query
    def items(self) -> list[list[Any]]:
        """The ``[key, value]`` pairs, sorted by key."""
        return [[key, self.data[key]] for key in sorted(self.data)]

    @query
    def len(self) -> int:
        """How many keys."""
        return len(self.data)

    def _full_for(self, key: str) -> Full | None:
        """``Full(max_keys)`` if storing ``key`` would add a key beyond the limit."""
        if self.max_keys is not None and key not in self.data and len(self.data) >= self.max_keys:
            return Full(self.max_keys)
        return None
