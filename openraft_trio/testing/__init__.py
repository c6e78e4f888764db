"""Testing tools: the in-process ``Router`` with fault injection and ``open_cluster``.

Also here, imported on their own:

* :mod:`openraft_trio.testing.storage_suite`: the storage conformance suite every
  ``RaftLogStorage`` and ``RaftStateMachine`` implementation must pass, run from your own
  pytest suite (subclass ``LogStoreSuite`` / ``StateMachineSuite``, or call
  ``run_log_store_suite`` / ``run_state_machine_suite``).
"""

from ._cluster import Cluster as Cluster
from ._cluster import open_cluster as open_cluster
from ._router import Router as Router
from ._router import RouterNetwork as RouterNetwork
from ._router import RouterNetworkFactory as RouterNetworkFactory
