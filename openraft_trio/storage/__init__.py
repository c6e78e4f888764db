"""Storage: the log store and state machine interfaces, and the shipped implementations.

* :class:`RaftLogStorage`, :class:`RaftStateMachine`: the interfaces (``typing.Protocol``);
  :class:`EncodesEntries`: what a store (or network) that encodes entries declares;
  :class:`BuildsSnapshotsAside` and :class:`RaftSnapshotBuilder`: a state machine whose
  snapshots are built beside apply.
* :class:`FileLogStore` (open with :func:`open_file_log_store`): the durable default.
* :class:`MemLogStore`: an in-memory log store with a crash/flush model for tests.
* :class:`FileSystem`, :class:`OsFileSystem`: the file layer under the durable stores.
"""

from ._file import FileLogStore as FileLogStore
from ._file import open_file_log_store as open_file_log_store
from ._file import run_in_thread as run_in_thread
from ._file import run_inline as run_inline
from ._fs import FileHandle as FileHandle
from ._fs import FileSystem as FileSystem
from ._fs import OsFileSystem as OsFileSystem
from ._mem import MemLogStore as MemLogStore
from ._protocols import BuildsSnapshotsAside as BuildsSnapshotsAside
from ._protocols import EncodesEntries as EncodesEntries
from ._protocols import IOCallback as IOCallback
from ._protocols import RaftLogStorage as RaftLogStorage
from ._protocols import RaftSnapshotBuilder as RaftSnapshotBuilder
from ._protocols import RaftStateMachine as RaftStateMachine
