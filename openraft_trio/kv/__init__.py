"""The replicated key-value store: state machine, node service, Trio client.

* :class:`KvStateMachine` and its requests (:class:`Set`, :class:`Delete`,
  :class:`CompareAndSwap`, :class:`Increment`, :class:`Get`) — usable with any transport.
* :func:`serve_kv_node` / :class:`KvNodeOptions` — one node process: Raft, durable storage,
  the TCP server and the client API (``python -m openraft_trio serve``).
* :class:`KvClient` / :func:`open_kv_client` — the Trio client that follows the leader.
"""

from ._client import AmbiguousOutcome as AmbiguousOutcome
from ._client import KvClient as KvClient
from ._client import NoLeader as NoLeader
from ._client import open_kv_client as open_kv_client
from ._service import DataDirError as DataDirError
from ._service import KvNode as KvNode
from ._service import KvNodeOptions as KvNodeOptions
from ._service import KvService as KvService
from ._service import serve_kv_node as serve_kv_node
from ._state_machine import CompareAndSwap as CompareAndSwap
from ._state_machine import Delete as Delete
from ._state_machine import Get as Get
from ._state_machine import Increment as Increment
from ._state_machine import KvSnapshotBuilder as KvSnapshotBuilder
from ._state_machine import KvStateMachine as KvStateMachine
from ._state_machine import Set as Set
