"""Replication streams: batched up to max_payload_entries and pipelined."""

from __future__ import annotations

import attrs
import pytest

import openraft_trio as raft
from openraft_trio.kv import Set
from openraft_trio.storage import run_inline
from openraft_trio.testing import RouterNetwork, open_cluster
from openraft_trio.testing.crashfs import CrashFS


class AppendRecorder:
    """Records, per link, the AppendEntries carrying entries: their sizes and how many were
    in flight at once (heartbeats are not counted)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.inflight: dict[tuple[int, int], int] = {}
        self.max_inflight: dict[tuple[int, int], int] = {}
        self.sizes: list[int] = []
        inner = RouterNetwork.append_entries

        async def append_entries(net, req, option):
            if not req.entries:
                return await inner(net, req, option)
            link = (net.src, net.target)
            self.sizes.append(len(req.entries))
            self.inflight[link] = self.inflight.get(link, 0) + 1
            self.max_inflight[link] = max(self.max_inflight.get(link, 0), self.inflight[link])
            try:
                return await inner(net, req, option)
            finally:
                self.inflight[link] -= 1

        monkeypatch.setattr(RouterNetwork, "append_entries", append_entries)


def config(window: int) -> raft.Config:
    return attrs.evolve(
        raft.Config(cluster_name="t"), max_payload_entries=10, max_inflight_append_entries=window
    )


async def test_replication_is_pipelined_and_batched(autojump_clock, monkeypatch):
    async with open_cluster(3, seed=31, config=config(4)) as c:
        lid = await c.wait_for_leader(5)
        rec = AppendRecorder(monkeypatch)
        # Latency makes requests overlap: a pipelined stream keeps several in flight.
        c.router.set_latency(0.005, 0.005)
        resps = await c.nodes[lid].client_write_many([Set(f"k{i}", i) for i in range(200)])
        await c.wait_applied(resps[-1].log_id.index)
        followers = [n for n in c.node_ids if n != lid]
        assert min(rec.max_inflight[(lid, f)] for f in followers) >= 2
        assert max(rec.max_inflight[(lid, f)] for f in followers) <= 4  # the window
        assert max(rec.sizes) == 10  # full batches, never above max_payload_entries
        datas = [c.state_machines[n].data for n in c.node_ids]
        assert all(d == datas[0] for d in datas)
        assert len(datas[0]) == 200


async def test_with_a_window_of_one_a_single_request_is_in_flight(autojump_clock, monkeypatch):
    async with open_cluster(3, seed=32, config=config(1)) as c:
        lid = await c.wait_for_leader(5)
        rec = AppendRecorder(monkeypatch)
        c.router.set_latency(0.005, 0.005)
        resps = await c.nodes[lid].client_write_many([Set(f"k{i}", i) for i in range(100)])
        await c.wait_applied(resps[-1].log_id.index)
        followers = [n for n in c.node_ids if n != lid]
        assert max(rec.max_inflight[(lid, f)] for f in followers) == 1
        assert max(rec.sizes) == 10


async def test_reordering_network_still_converges(autojump_clock):
    # Random latency reorders pipelined requests: followers answer with conflicts and the
    # leader restarts the stream; everything still commits and replicas agree.
    async with open_cluster(3, seed=33, config=config(8)) as c:
        lid = await c.wait_for_leader(5)
        c.router.set_latency(0.0, 0.02)
        last = 0
        for chunk in range(10):
            resps = await c.nodes[lid].client_write_many(
                [Set(f"k{chunk}-{i}", i) for i in range(30)]
            )
            last = resps[-1].log_id.index
        await c.wait_applied(last)
        datas = [c.state_machines[n].data for n in c.node_ids]
        assert all(d == datas[0] for d in datas)
        assert len(datas[0]) == 300


async def test_a_restarted_follower_learns_the_commit_index_without_new_writes(autojump_clock):
    """A follower's commit index is volatile: after a restart it is behind, and an idle
    leader must still tell it (the replication stream repeats the commit index now and
    then), or its state machine stays stale until the next write."""
    # Durable nodes on simulated disks: the file log persists the commit index lazily, so
    # the restarted follower comes back with an older one.
    async with open_cluster(
        3, seed=7, data_dir="/data", fs=lambda _node_id: CrashFS(), run_io=run_inline
    ) as c:
        leader = await c.wait_for_leader(5)
        for i in range(5):
            await c.nodes[leader].client_write(Set(f"k{i}", i))
        committed = c.nodes[leader].metrics.committed
        follower = next(n for n in c.node_ids if n != leader)
        # The follower learned the commit index (in memory) before it crashes.
        await c.nodes[follower].wait(5).metrics(lambda m: m.committed == committed, "commit")
        await c.crash(follower)
        await c.restart(follower)
        node = c.nodes[follower]
        await node.wait(5).metrics(lambda m: m.committed == committed, "commit index learned")
        await node.wait(5).applied_index_at_least(committed.index)
        assert c.state_machines[follower].get("k4") == 4
