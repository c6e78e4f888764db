"""The typed replies of the batteries (plain values, registered with the codec).

They are frozen attrs classes so replies compare by value, and registered with
:func:`openraft_trio.codec.register_data_type` so they travel over the TCP service and sit in
the durable log like any application value.
"""

from __future__ import annotations

from typing import final

import attrs

from ... import codec

__all__ = ["Acquired", "Full", "Held"]


@final
@attrs.frozen
class Acquired:
    """The caller holds the lock (a reply of ``LockService.acquire`` and ``renew``).

    Attributes:
        token: the fencing token: the log index of the entry that granted this holding.
            Strictly larger than the token of every earlier acquisition of any lock of the
            service, so a storage system that accepts a write only with a token at least the
            largest it has seen refuses a holder whose lease has passed to someone else.
            ``renew`` keeps the token.
        expires_at: the log time after which the lease has expired: once an entry with a
            log time greater than this is applied, the lock is free.
    """

    token: int
    expires_at: float


@final
@attrs.frozen
class Held:
    """Someone else holds the lock (a reply of ``LockService.acquire``; ``owner`` too).

    Attributes:
        holder: who holds it.
        expires_at: the log time after which their lease expires unless renewed.
    """

    holder: str
    expires_at: float


@final
@attrs.frozen
class Full:
    """Refused: the object is at its size limit (``FifoQueue.put``, ``ReplicatedDict.set``).

    Attributes:
        limit: the configured limit (``max_size`` of the queue, ``max_keys`` of the dict).
    """

    limit: int


for _cls in (Acquired, Held, Full):
    codec.register_data_type(_cls, f"objects.{_cls.__name__}")
