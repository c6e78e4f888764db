"""Log reversion (PROTOCOL-NOTES "Replication"): a follower loses log entries it had
acknowledged — its disk was wiped, or restored from an old backup — while the leader still
counts them as matched. The leader notices, reports it once (a log line and the
``replication_status`` metric) and, unless ``Config.allow_log_reversion`` is set, stops
replicating to that follower and stops counting it toward the commit quorum."""

from __future__ import annotations

import logging

import attrs
import pytest
import trio

import openraft_trio as raft
from openraft_trio.kv import Set
from openraft_trio.testing import open_cluster


def reversion_records(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if getattr(r, "event", None) == "replication.log_reversion"
        and r.levelno == level
        and "log reversion" in r.getMessage()
    ]


async def wait_for_reversion(c, lid: int, target: int) -> raft.ReplicationStatus:
    """Wait until the leader's metrics show a log reversion of ``target``."""

    def noticed(m: raft.RaftMetrics) -> bool:
        return m.replication_status is not None and m.replication_status[target].log_reversions > 0

    metrics = await c.nodes[lid].wait(10).metrics(noticed, f"log reversion of {target} noticed")
    assert metrics.replication_status is not None
    return metrics.replication_status[target]


async def wipe_and_restart(c, nid: int) -> None:
    """Crash ``nid``, lose its whole storage (log, vote, state machine), start it again."""
    await c.crash(nid)
    c.wipe(nid)
    await c.restart(nid)


async def start_matched_cluster(c) -> tuple[int, int, int]:
    """Elect, write 20 entries everyone applies; return (leader, wiped follower, last)."""
    lid = await c.wait_for_leader(5)
    resps = await c.nodes[lid].client_write_many([Set(f"k{i}", i) for i in range(20)])
    last = resps[-1].log_id.index
    await c.wait_applied(last)
    follower = min(n for n in c.node_ids if n != lid)
    await c.nodes[lid].wait(5).metrics(
        lambda m: m.replication is not None
        and all(v is not None and v.index == last for v in m.replication.values()),
        "every follower matched",
    )
    # Latency: every round trip takes time (a retry loop cannot spin at one instant).
    c.router.set_latency(0.001, 0.002)
    return lid, follower, last


async def test_wiped_follower_is_reported_once_and_no_longer_replicated_to(
    autojump_clock, caplog
):
    caplog.set_level(logging.WARNING, logger="openraft_trio")
    async with open_cluster(3, seed=71) as c:
        lid, wiped, last = await start_matched_cluster(c)
        await wipe_and_restart(c, wiped)
        status = await wait_for_reversion(c, lid, wiped)
        assert status == raft.ReplicationStatus(
            matching=None, log_reversions=1, reverted_to=0, halted=True
        )
        assert len(reversion_records(caplog, logging.ERROR)) == 1
        # The other majority keeps the cluster going; the wiped node gets nothing.
        resp = await c.nodes[lid].client_write(Set("after", 1))
        other = next(n for n in c.node_ids if n not in (lid, wiped))
        await c.wait_applied(resp.log_id.index, nodes=[lid, other])
        await trio.sleep(2)
        assert c.nodes[wiped].metrics.last_log_index is None
        assert c.nodes[lid].metrics.state == raft.ServerState.LEADER
        assert c.nodes[lid].metrics.replication_status[wiped].log_reversions == 1
        assert len(reversion_records(caplog, logging.ERROR)) == 1
        assert last < resp.log_id.index


async def test_wiped_follower_is_replicated_again_with_allow_log_reversion(
    autojump_clock, caplog
):
    caplog.set_level(logging.WARNING, logger="openraft_trio")
    config = attrs.evolve(raft.Config(cluster_name="t"), allow_log_reversion=True)
    async with open_cluster(3, seed=72, config=config) as c:
        lid, wiped, _ = await start_matched_cluster(c)
        await wipe_and_restart(c, wiped)
        await wait_for_reversion(c, lid, wiped)

        resp = await c.nodes[lid].client_write(Set("after", 1))
        await c.wait_applied(resp.log_id.index)
        assert c.state_machines[wiped].data == c.state_machines[lid].data
        status = c.nodes[lid].metrics.replication_status
        assert status is not None
        assert status[wiped].log_reversions == 1
        assert not status[wiped].halted
        assert status[wiped].matching == resp.log_id
        assert reversion_records(caplog, logging.ERROR) == []
        assert len(reversion_records(caplog, logging.WARNING)) == 1


async def test_a_halted_follower_is_replicated_again_by_the_next_leader(autojump_clock):
    async with open_cluster(3, seed=73) as c:
        lid, wiped, _ = await start_matched_cluster(c)
        await wipe_and_restart(c, wiped)
        assert (await wait_for_reversion(c, lid, wiped)).halted
        other = next(n for n in c.node_ids if n not in (lid, wiped))
        await c.nodes[lid].trigger.transfer_leader(other)
        await c.nodes[other].wait(5).state(raft.ServerState.LEADER)
        resp = await c.nodes[other].client_write(Set("after", 1))
        await c.wait_applied(resp.log_id.index)
        assert c.state_machines[wiped].data == c.state_machines[other].data
        status = c.nodes[other].metrics.replication_status
        assert status is not None
        assert status[wiped] == raft.ReplicationStatus(matching=resp.log_id)
