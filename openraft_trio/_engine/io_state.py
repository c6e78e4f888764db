"""The log pointers of one node, in one object, with the invariants between them.

From the oldest to the newest (openraft ``log_pointers.md``)::

    purged <= snapshot <= applied <= apply_requested <= committed <= flushed <= accepted

* ``accepted``: the last log id appended in memory and handed to storage (accepted and
  submitted coincide here). It is ``log_ids.last``: the Engine's :class:`LogIdList` owns it.
* ``flushed``: the last :class:`IOId` storage reported durable (a vote and a log id).
* ``committed``: known to be durable on a quorum; persisted by ``SaveCommitted``.
* ``apply_requested``: handed to the state machine worker by ``Apply``.
* ``applied``: the state machine reported it applied.
* ``snapshot``: the last log id of the newest snapshot, built here or installed.
* ``purged``: removed from the log, covered by the snapshot. It is ``log_ids.purged``.

Where an order does not apply: an installed snapshot commits entries that this node never
flushed into its log, so ``committed <= flushed`` holds only where the snapshot does not
cover ``committed``; a node that has flushed nothing yet has no ``flushed`` pointer.

:meth:`IOState.validate` checks every order; the Engine tests call it after every step and
the simulator after every core round.
"""

from __future__ import annotations

import attrs

from .._types import LogId, index_of
from .commands import IOId
from .log_ids import LogIdList


class IOStateError(AssertionError):
    """Two log pointers are out of order: a bug in the Engine (never bad input)."""



@attrs.define
class IOState:
    """The log pointers the Engine moves (``accepted`` and ``purged`` live in ``log_ids``)."""

    flushed: IOId | None = None
    committed: LogId | None = None
    apply_requested: LogId | None = None
    applied: LogId | None = None
    snapshot: LogId | None = None
    # A snapshot build is in progress (one at a time).
    snapshot_building: bool = False
    # The size of the newest snapshot's data (0: none yet, or restored at startup), for
    # the snapshot policy.
    snapshot_bytes: int = 0

    def restore(
        self,
        *,
        flushed: IOId | None,
        committed: LogId | None,
        applied: LogId | None,
        snapshot: LogId | None,
    ) -> None:
        """Set every pointer at startup, from what storage holds."""
        self.flushed = flushed
        self.committed = committed
        self.applied = applied
        self.apply_requested = applied
        self.snapshot = snapshot

    @property
    def flushed_log_id(self) -> LogId | None:
        return None if self.flushed is None else self.flushed.log_id

    def violations(self, log_ids: LogIdList) -> list[tuple[str, str]]:
        """Every order of the module docstring that does not hold, as ``(kind, details)``;
        the kind names the order, e.g. ``"committed > flushed"``."""
        purged = index_of(log_ids.purged)
        snapshot = index_of(self.snapshot)
        applied = index_of(self.applied)
        requested = index_of(self.apply_requested)
        committed = index_of(self.committed)
        flushed = index_of(self.flushed_log_id)
        accepted = index_of(log_ids.last)
        # (lower pointer, its index, higher pointer, its index); the kind of a violation is
        # "lower > higher" (the simulator's historic name for the first one is kept).
        pairs = [
            ("purged", purged, "snapshot", snapshot),
            ("snapshot", snapshot, "applied", applied),
            ("applied", applied, "committed", committed),
            # An installed snapshot commits what was never flushed into this node's log.
            ("committed", committed, "flushed", max(flushed, snapshot)),
            ("flushed", flushed, "accepted", accepted),
        ]
        found = [
            (
                "purged beyond snapshot" if low == "purged" else f"{low} > {high}",
                f"{low} {low_index} > {high} {high_index}",
            )
            for low, low_index, high, high_index in pairs
            if low_index > high_index
        ]
        if applied <= committed and not applied <= requested <= committed:
            found.append(
                (
                    "apply_requested out of range",
                    f"apply_requested {requested} not in [applied {applied}, "
                    f"committed {committed}]",
                )
            )
        return found

    def validate(self, log_ids: LogIdList) -> None:
        """Raise :class:`IOStateError` if a pointer is out of order (see the module docs)."""
        found = self.violations(log_ids)
        if found:
            raise IOStateError("log pointers out of order: " + "; ".join(d for _, d in found))
