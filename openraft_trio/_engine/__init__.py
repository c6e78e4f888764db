"""The pure protocol Engine (no trio, no I/O). See :mod:`.engine`."""

from .commands import IOId as IOId
from .engine import INIT_LOG_ID as INIT_LOG_ID
from .engine import Engine as Engine
