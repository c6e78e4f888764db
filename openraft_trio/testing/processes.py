"""A cluster of KV-service nodes as real OS processes on loopback, for tests.

Each node is ``python -m openraft_trio serve`` in a process of its own, with its data
directory under ``base_dir`` and its output in ``base_dir/node-N.log``::

    async with open_process_cluster(3, base_dir=tmp) as cluster:
        await cluster.initialize()
        async with cluster.client() as kv:
            await kv.put("k", "v")
        leader = await cluster.wait_leader()
        await cluster.kill(leader)                  # SIGKILL, like a crash
        await cluster.start(leader)                 # same data directory

Leaving the block kills every process it started (and waits for them), whatever happened.
The implementation lives with the KV service (the ``demo`` command uses it too).
"""

from ..kv._process_cluster import NodeProcess as NodeProcess
from ..kv._process_cluster import ProcessCluster as ProcessCluster
from ..kv._process_cluster import ProcessClusterError as ProcessClusterError
from ..kv._process_cluster import free_ports as free_ports
from ..kv._process_cluster import open_process_cluster as open_process_cluster
