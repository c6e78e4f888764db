"""Batteries: ready-made replicated objects (a counter, a dict, a FIFO queue, a lock service)."""

from ._replies import Acquired as Acquired
from ._replies import Full as Full
from ._replies import Held as Held
