"""Batteries: ready-made replicated objects built on :class:`~openraft_trio.objects.ReplicatedObject`.

* :class:`Counter` — an integer: ``add``, ``set``; ``get``.
* :class:`ReplicatedDict` — ``str`` keys to values: ``set``, ``delete``,
  ``compare_and_set``; ``get``, ``keys``, ``items``, ``len``.
* :class:`FifoQueue` — first in, first out: ``put``, ``get``; ``peek``, ``size``.
* :class:`LockService` — named locks with leases that expire by log time and fencing
  tokens: ``acquire``, ``renew``, ``release``; ``owner``.

Their typed replies are :class:`Acquired`, :class:`Held` and :class:`Full`. Each has a
linearizability model in :mod:`openraft_trio.testing.battery_models` and a tutorial page.
"""

from ._counter import Counter as Counter
from ._dict import ReplicatedDict as ReplicatedDict
from ._lock import Lease as Lease
from ._lock import LockService as LockService
from ._queue import FifoQueue as FifoQueue
from ._replies import Acquired as Acquired
from ._replies import Full as Full
from ._replies import Held as Held
