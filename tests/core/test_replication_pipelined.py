"""replication[t] over a pipelined network: one task per target, no task per request.

A network that implements ``PipelinedAppend`` (the Router on a fault-free link, the TCP
transport) takes each AppendEntries without waiting and reports the reply through a
callback; a network with only ``async def append_entries`` goes through the adapter (a
child task per request). Both must replicate the same log.
"""

from __future__ import annotations

import collections
from typing import Any

import trio

from openraft_trio.kv import Set
from openraft_trio.network import PipelinedAppend
from openraft_trio.testing import RouterNetwork, open_cluster


class _Spawns(trio.abc.Instrument):
    """Counts the tasks spawned, by name."""

    def __init__(self) -> None:
        self.names: collections.Counter[str] = collections.Counter()

    def task_spawned(self, task: trio.lowlevel.Task) -> None:
        self.names[task.name.split("[")[0]] += 1


async def _write_and_count_spawns(latency: float) -> tuple[collections.Counter[str], int]:
    async with open_cluster(3, seed=5) as c:
        leader_id = await c.wait_for_leader(5)
        c.router.set_latency(latency, latency)
        spawns = _Spawns()
        trio.lowlevel.add_instrument(spawns)
        try:
            for i in range(30):
                resp = await c.nodes[leader_id].client_write(Set(f"k{i}", i))
            await c.wait_applied(resp.log_id.index)
        finally:
            trio.lowlevel.remove_instrument(spawns)
        datas = [c.state_machines[n].data for n in c.node_ids]
        assert all(d == datas[0] for d in datas)
        return spawns.names, len(datas[0])


def test_the_router_offers_the_pipelined_append() -> None:
    assert issubclass(RouterNetwork, PipelinedAppend)


async def test_a_clean_link_replicates_with_no_task_per_request(autojump_clock: Any) -> None:
    spawns, keys = await _write_and_count_spawns(latency=0.0)
    assert keys == 30
    assert spawns["openraft_trio.append_entries"] == 0


async def test_a_network_that_must_wait_goes_through_the_adapter(autojump_clock: Any) -> None:
    # With latency to simulate, the Router declines the pipelined send: every request
    # (two followers x 30 writes, at least) takes the adapter's child task.
    spawns, keys = await _write_and_count_spawns(latency=0.002)
    assert keys == 30
    assert spawns["openraft_trio.append_entries"] >= 60
