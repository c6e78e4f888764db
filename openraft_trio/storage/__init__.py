"""Storage: the log store and state machine interfaces, and the shipped implementations.

* :class:`RaftLogStorage`, :class:`RaftStateMachine`: the interfaces (``typing.Protocol``).
* :class:`MemLogStore`: an in-memory log store with a crash/flush model for tests.
"""

from ._mem import MemLogStore as MemLogStore
from ._protocols import IOCallback as IOCallback
from ._protocols import RaftLogStorage as RaftLogStorage
from ._protocols import RaftStateMachine as RaftStateMachine

# Durable default, coming in ._file:
# from ._file import FileLogStore as FileLogStore
# from ._file import open_file_log_store as open_file_log_store
