"""Replicated objects: declare a replicated state machine as a plain class.

Typed fields hold the state; methods marked :func:`replicated` are commands (their calls go
through the log as :class:`Call` entries); methods marked :func:`query` run on one replica
after a linearizable read; snapshots are the fields, by cattrs and CBOR. See
``docs/replicated-objects.md``::

    class Counter(ReplicatedObject):
        value: int = 0

        @replicated
        def add(self, n: int = 1) -> int:
            self.value += n
            return self.value

        @query
        def get(self) -> int:
            return self.value

    machine = ObjectStateMachine(Counter)        # give it to open_raft / open_cluster
    handle = ObjectHandle(raft, machine)
    await handle.add(5)                          # -> 5, through the log
    await handle.get()                           # -> 5, linearizable
"""

from ._calls import Call as Call
from ._calls import ErrorReply as ErrorReply
from ._calls import Upgrade as Upgrade
from ._calls import make_call as make_call
from ._calls import unwrap_reply as unwrap_reply
from ._client import ObjectClient as ObjectClient
from ._client import open_object_client as open_object_client
from ._declare import MethodSpec as MethodSpec
from ._declare import MethodTable as MethodTable
from ._declare import ReplicatedObject as ReplicatedObject
from ._declare import query as query
from ._declare import replicated as replicated
from ._errors import BadArgumentsError as BadArgumentsError
from ._errors import MalformedSnapshotError as MalformedSnapshotError
from ._errors import ObjectError as ObjectError
from ._errors import ReplicatedMethodError as ReplicatedMethodError
from ._errors import UnknownMethodError as UnknownMethodError
from ._errors import UnknownVersionError as UnknownVersionError
from ._errors import VersionNotActiveError as VersionNotActiveError
from ._handle import ObjectHandle as ObjectHandle
from ._service import ObjectService as ObjectService
from ._service import load_object_class as load_object_class
from ._state_machine import ObjectStateMachine as ObjectStateMachine
from .batteries import Acquired as Acquired
from .batteries import Counter as Counter
from .batteries import FifoQueue as FifoQueue
from .batteries import Full as Full
from .batteries import Held as Held
from .batteries import LockService as LockService
from .batteries import ReplicatedDict as ReplicatedDict
