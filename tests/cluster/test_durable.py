"""Durable nodes: FileLogStore + durable KvStateMachine survive power cuts of every node.

Every node runs on its own ``CrashFS`` with ``run_inline`` (deterministic, no threads), so
``Cluster.crash`` is a power cut: only fsynced bytes and durably named files survive.
"""

from __future__ import annotations

import attrs
import pytest

import openraft_trio as raft
from openraft_trio.kv import Set
from openraft_trio.storage import FileLogStore, run_inline
from openraft_trio.testing import open_cluster
from openraft_trio.testing.crashfs import CrashFS

CONFIG = attrs.evolve(
    raft.Config(cluster_name="durable"), snapshot_policy=100, max_in_snapshot_log_to_keep=20
)


def durable_cluster(n: int, seed: int):  # type: ignore[no-untyped-def]
    return open_cluster(
        n,
        seed=seed,
        config=CONFIG,
        data_dir="/data",
        fs=lambda _node_id: CrashFS(),
        run_io=run_inline,
    )


async def test_acknowledged_writes_survive_a_power_cut_of_every_node(autojump_clock):
    async with durable_cluster(3, seed=71) as c:
        lid = await c.wait_for_leader(5)
        acked: dict[str, int] = {}
        for i in range(250):
            await c.nodes[lid].client_write(Set(f"k{i}", i))
            acked[f"k{i}"] = i
        assert isinstance(c.log_stores[lid], FileLogStore)
        # Snapshots were built and the log purged behind them (restart = snapshot + log).
        await c.nodes[lid].wait(5).metrics(lambda m: m.purged is not None, "purged")
        for nid in c.node_ids:
            await c.crash(nid)
        assert not c.nodes
        for nid in (1, 2, 3):
            await c.restart(nid)
        lid = await c.wait_for_leader(10)
        last = (await c.nodes[lid].client_write(Set("after", 1))).log_id.index
        await c.wait_applied(last)
        for nid in c.node_ids:
            data = c.state_machines[nid].data
            assert {k: data[k] for k in acked} == acked
            assert data["after"] == 1
            m = c.nodes[nid].metrics
            assert m.snapshot is not None


async def test_a_restarted_node_keeps_its_vote_and_term(autojump_clock):
    async with durable_cluster(3, seed=72) as c:
        lid = await c.wait_for_leader(5)
        await c.nodes[lid].client_write(Set("a", 1))
        follower = next(n for n in c.node_ids if n != lid)
        before = c.nodes[follower].metrics
        await c.crash(follower)
        node = await c.restart(follower)
        m = node.metrics
        # Exactly what it had: the same term and the same vote (leader and committed flag),
        # read back from its FileLogStore after the power cut.
        assert before.vote.leader_id.node_id == lid
        assert (m.current_term, m.vote) == (before.current_term, before.vote)
        # It catches up and serves the same data.
        r = await c.nodes[lid].client_write(Set("b", 2))
        await node.wait(5).applied_index_at_least(r.log_id.index)
        assert c.state_machines[follower].data == {"a": 1, "b": 2}


async def test_a_storage_failure_stops_only_that_node(autojump_clock):
    import errno

    async with durable_cluster(3, seed=73) as c:
        lid = await c.wait_for_leader(5)
        await c.nodes[lid].client_write(Set("a", 1))
        victim = next(n for n in c.node_ids if n != lid)
        fs = c.node_fs[victim]
        assert isinstance(fs, CrashFS)
        fs.fail_next("fsync", errno.EIO)
        # The victim's next log write fails: it stops for good (fail-stop), the others go on.
        node = c.nodes[victim]
        await c.nodes[lid].client_write(Set("b", 1))  # a quorum without the victim is enough
        await node.wait(5).state(raft.ServerState.SHUTDOWN)
        assert isinstance(node.fatal_error, raft.StorageError)
        with pytest.raises(raft.StorageError) as info:
            await node.client_write(Set("x", 1))
        # Its own copy, chained from the one that stopped the node.
        assert info.value is not node.fatal_error
        assert info.value.__cause__ is node.fatal_error
        assert type(info.value) is type(node.fatal_error)
        r = await c.nodes[lid].client_write(Set("b", 2))
        assert r.log_id.index > 0
