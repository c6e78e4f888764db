"""``LockService``: named locks with leases that expire by log time, and fencing tokens.

Theory of operation
-------------------

A lease is measured in *log time* (``ReplicatedObject.log_time``): the largest ``now``
stamped into the entries applied so far. It is the same on every replica at the same log
index, and it never goes back, so "has this lease expired?" has one answer per entry,
everywhere. A lock granted at log time ``t`` for ``lease_seconds`` has
``expires_at = t + lease_seconds`` and is free once an entry with a log time greater than
``expires_at`` applies. Nothing needs to run when it expires: the next call that looks at
the lock sees it free. A holder that crashes therefore loses the lock after its lease,
as soon as any client writes anything later than that.

Each grant carries a *fencing token*: the log index of the granting entry. Log indices
strictly increase, so every grant (of any lock of the service) has a larger token than
every grant before it. A holder passes its token to the storage it writes to; the storage
remembers the largest token it has seen and refuses smaller ones. That is what makes the
lock safe when a holder is paused (GC, swap, a slow network) past its lease: it may still
believe it holds the lock, but its writes carry a token smaller than the new holder's.

Before a grant, expired leases are swept out of the table if it has doubled since the last
sweep, so the table stays proportional to the live leases at amortized constant cost per
call.
"""

from __future__ import annotations

from typing import Final, final

import attrs

from .._declare import ReplicatedObject, query, replicated
from ._checks import check_int, check_seconds, check_str
from ._replies import Acquired, Held

# The table is first swept of expired leases when it holds this many.
_FIRST_SWEEP: Final = 64


@final
@attrs.frozen
class Lease:
    """One held lock: who holds it, with which fencing token, until which log time."""

    holder: str
    token: int
    expires_at: float


@final
class LockService(ReplicatedObject):
    """Named locks with leases that expire by log time, and fencing tokens.

    Commands: :meth:`acquire`, :meth:`renew`, :meth:`release`; query: :meth:`owner`. A lock
    is *live* while the log time is at most its ``expires_at``; after that it is free, on
    every replica at the same log index. See the module docstring and
    ``docs/tutorial-lock.md``.

    Bad arguments are refused (the handle raises ``ReplicatedMethodError``; nothing
    changes): a name or holder that is not a ``str`` or a token that is not an ``int``
    (``TypeError``), a ``lease_seconds`` that is not a finite number greater than 0
    (``TypeError`` or ``ValueError``).

    Attributes:
        leases: lock name -> its :class:`Lease` (released locks have none; expired ones
            may linger until swept, free all the same).
        sweep_at: the table size at which expired leases are next swept out.
    """

    leases: dict[str, Lease] = attrs.field(factory=dict)
    sweep_at: int = _FIRST_SWEEP

    @replicated
    def acquire(self, name: str, holder: str, lease_seconds: float) -> Acquired | Held:
        """Take lock ``name`` for ``holder`` for ``lease_seconds`` of log time.

        Granted if the lock is free, or already held by ``holder`` (a retry whose first
        reply was lost): the grant gets a fresh fencing token (this entry's log index) and
        ``expires_at = log_time + lease_seconds``; a previous token of the holder stops
        working for :meth:`renew` and :meth:`release`.

        Returns:
            ``Acquired(token, expires_at)``, or ``Held(holder, expires_at)`` of the live
            holder.
        """
        check_str(name, "name")
        check_str(holder, "holder")
        lease_seconds = check_seconds(lease_seconds, "lease_seconds")
        current = self._live(name)
        if current is not None and current.holder != holder:
            return Held(current.holder, current.expires_at)
        self._maybe_sweep()
        granted = Lease(holder, self.log_index, self.log_time + lease_seconds)
        self.leases[name] = granted
        return Acquired(granted.token, granted.expires_at)

    @replicated
    def renew(self, name: str, holder: str, token: int, lease_seconds: float) -> Acquired | None:
        """Extend ``holder``'s live lease on ``name`` to ``log_time + lease_seconds``.

        Returns:
            ``Acquired(token, expires_at)`` with the same token, or ``None`` if ``holder``
            does not hold a live lease with ``token`` (released, expired, taken over, or a
            stale token).
        """
        check_str(name, "name")
        check_str(holder, "holder")
        check_int(token, "token")
        lease_seconds = check_seconds(lease_seconds, "lease_seconds")
        current = self._live(name)
        if current is None or current.holder != holder or current.token != token:
            return None
        renewed = Lease(holder, token, self.log_time + lease_seconds)
        self.leases[name] = renewed
        return Acquired(token, renewed.expires_at)

    @replicated
    def release(self, name: str, holder: str, token: int) -> bool:
        """Free lock ``name`` if ``holder`` holds a live lease on it with ``token``.

        Returns:
            ``True`` if it did; ``False`` otherwise (not the holder, a stale token, or the
            lease already expired: the lock was free anyway).
        """
        check_str(name, "name")
        check_str(holder, "holder")
        check_int(token, "token")
        current = self._live(name)
        if current is None or current.holder != holder or current.token != token:
            return False
        del self.leases[name]
        return True

    @query
    def owner(self, name: str) -> Held | None:
        """``Held(holder, expires_at)`` of the live lease on ``name`` (at the log time of the
        last applied entry), or ``None`` if the lock is free.

        Raises:
            TypeError: ``name`` is not a ``str``.
        """
        current = self._live(check_str(name, "name"))
        return None if current is None else Held(current.holder, current.expires_at)

    def _live(self, name: str) -> Lease | None:
        lease = self.leases.get(name)
        if lease is None or self.log_time > lease.expires_at:
            return None
        return lease

    def _maybe_sweep(self) -> None:
        if len(self.leases) < self.sweep_at:
            return
        log_time = self.log_time
        self.leases = {
            name: lease for name, lease in self.leases.items() if lease.expires_at >= log_time
        }
        self.sweep_at = max(_FIRST_SWEEP, 2 * len(self.leases))
