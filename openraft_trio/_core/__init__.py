"""The Trio runtime: RaftCore, its workers and the ``Raft`` handle.

One module per task of the task tree (DESIGN.md §3), started by ``node.open_node``:

* ``raft_core``: ``openraft_trio.raft_core``, the event loop over the Engine, with its rpc
  nursery (``vote[t]``, ``transfer[t]``) and its leader nursery (``leader_nursery``), which
  holds ``replication[t]`` (``replication``) and ``heartbeat[t]`` (``heartbeat``);
* ``sm_worker``: ``openraft_trio.sm_worker``, applies entries, builds and installs snapshots;
* ``ticker``: ``openraft_trio.ticker``, drives the Engine's deadlines.

What goes between them: ``api_calls`` (handle to core), ``notifications`` (workers to
core), ``signals`` (core to workers). The handle: ``handle`` (``Raft``), ``trigger``,
``wait``, ``runtime_config``; ``startup`` restores the Engine from storage.
"""
