"""The Trio runtime: RaftCore, its workers and the ``Raft`` handle."""
