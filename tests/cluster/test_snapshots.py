"""Snapshots and log compaction: build by policy or trigger, purge, catch up by snapshot,
restart from snapshot + log."""

from __future__ import annotations

import attrs
import trio
import trio.lowlevel

import openraft_trio as raft
from openraft_trio.kv import Set
from openraft_trio.testing import open_cluster

CONFIG = attrs.evolve(
    raft.Config(cluster_name="snap"), snapshot_policy=200, max_in_snapshot_log_to_keep=50
)


async def write_many(node, start: int, count: int) -> int:
    last = 0
    for base in range(start, start + count, 100):
        resps = await node.client_write_many([Set(f"k{i}", i) for i in range(base, base + 100)])
        last = resps[-1].log_id.index
    return last


async def test_policy_builds_snapshots_and_purges_keeping_the_configured_tail(autojump_clock):
    async with open_cluster(3, seed=61, config=CONFIG) as c:
        lid = await c.wait_for_leader(5)
        last = await write_many(c.nodes[lid], 0, 1000)
        await c.wait_applied(last)
        for nid in c.node_ids:
            m = await c.nodes[nid].wait(5).snapshot_index_at_least(last - 200)
            assert m.purged is not None
            assert m.snapshot is not None
            assert m.purged.index <= m.snapshot.index  # purged <= snapshot
            assert m.snapshot.index - m.purged.index == CONFIG.max_in_snapshot_log_to_keep
            assert m.last_applied is not None
            assert m.snapshot.index <= m.last_applied.index


async def test_learner_joining_after_compaction_catches_up_through_a_snapshot(autojump_clock):
    async with open_cluster(3, seed=62, config=CONFIG) as c:
        lid = await c.wait_for_leader(5)
        leader = c.nodes[lid]
        last = await write_many(leader, 0, 20_000)
        await leader.wait(5).metrics(
            lambda m: m.purged is not None and m.purged.index > 19_000, "purged"
        )
        await c.start(4)
        await leader.add_learner(4, raft.Node("node-4"), blocking=True)
        learner = c.nodes[4]
        await learner.wait(5).applied_index_at_least(last)
        m = learner.metrics
        assert m.snapshot is not None  # it got the state by snapshot, not by replaying 0..
        assert c.state_machines[4].data == c.state_machines[lid].data
        # Replication continues after the snapshot.
        r = await leader.client_write(Set("after", 1))
        await learner.wait(5).applied_index_at_least(r.log_id.index)
        assert c.state_machines[4].get("after") == 1


async def test_snapshots_travel_in_chunks_of_at_most_the_configured_size(autojump_clock):
    config = attrs.evolve(CONFIG, snapshot_max_chunk_size=1024)
    async with open_cluster(3, seed=65, config=config) as c:
        lid = await c.wait_for_leader(5)
        leader = c.nodes[lid]
        last = await write_many(leader, 0, 3000)
        await leader.wait(5).metrics(lambda m: m.purged is not None and m.purged.index > 2000, "p")
        await c.start(4)
        await leader.add_learner(4, raft.Node("node-4"), blocking=True)
        await c.nodes[4].wait(5).applied_index_at_least(last)
        assert c.router.snapshot_chunks_sent > 10
        assert 0 < c.router.max_snapshot_chunk <= 1024
        assert c.state_machines[4].data == c.state_machines[lid].data


async def test_trigger_snapshot_and_purge_log(autojump_clock):
    config = attrs.evolve(CONFIG, snapshot_policy=100_000)
    async with open_cluster(1, seed=63, config=config) as c:
        await c.wait_for_leader(5)
        node = c.nodes[1]
        last = await write_many(node, 0, 300)
        assert node.metrics.snapshot is None
        await node.trigger.snapshot()
        m = await node.wait(5).snapshot_index_at_least(last)
        await node.trigger.purge_log(last + 1000)  # clipped to the snapshot
        m = await node.wait(5).metrics(lambda x: x.purged == x.snapshot, "purged to snapshot")
        assert m.purged is not None
        assert m.purged.index == m.snapshot.index


async def test_restart_after_compaction_is_snapshot_plus_log_replay(autojump_clock):
    async with open_cluster(3, seed=64, config=CONFIG) as c:
        lid = await c.wait_for_leader(5)
        last = await write_many(c.nodes[lid], 0, 1000)
        await c.wait_applied(last)
        victim = next(n for n in c.node_ids if n != lid)
        await c.nodes[victim].wait(5).snapshot_index_at_least(500)
        before = c.state_machines[victim].data
        await c.crash(victim)
        more = await write_many(c.nodes[lid], 1000, 500)
        await c.restart(victim)
        await c.nodes[victim].wait(5).applied_index_at_least(more)
        after = c.state_machines[victim].data
        assert after == c.state_machines[lid].data
        assert set(before) < set(after)
        await trio.lowlevel.checkpoint()
