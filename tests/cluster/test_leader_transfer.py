"""Leader transfer (Ongaro's thesis §3.10) and the trigger / runtime switches."""

from __future__ import annotations

import contextlib

import pytest
import trio
import trio.lowlevel

import openraft_trio as raft
from openraft_trio.kv import Set
from openraft_trio.testing import open_cluster


async def test_transfer_leader_hands_over_under_load_without_losing_acked_writes(autojump_clock):
    async with open_cluster(3, seed=51) as c:
        c.router.set_latency(0.001, 0.003)
        old = await c.wait_for_leader(5)
        to = next(n for n in c.node_ids if n != old)
        acked: dict[str, int] = {}
        stop = trio.Event()

        async def writer() -> None:
            i = 0
            while not stop.is_set():
                i += 1
                lid = c.leader_id()
                if lid is not None:
                    with contextlib.suppress(raft.ForwardToLeader):
                        await c.nodes[lid].client_write(Set(f"k{i}", i))
                        acked[f"k{i}"] = i
                await trio.sleep(0.003)

        async with trio.open_nursery() as n:
            n.start_soon(writer)
            await trio.sleep(0.5)
            t0 = trio.current_time()
            await c.nodes[old].trigger.transfer_leader(to)
            await c.nodes[to].wait(2).state(raft.ServerState.LEADER)
            handover = trio.current_time() - t0
            await trio.sleep(0.5)
            stop.set()
        # Well within one election timeout: no waiting out the lease.
        assert handover < c.config.election_timeout_min
        assert c.leader_id() == to
        last = c.nodes[to].metrics.last_log_index
        assert last is not None
        await c.wait_applied(last)
        for nid in c.node_ids:
            for k, v in acked.items():
                assert c.state_machines[nid].get(k) == v
        assert len(acked) > 100


async def test_a_transferring_leader_refuses_writes_and_resumes_if_the_target_never_takes_over(
    autojump_clock,
):
    async with open_cluster(3, seed=52) as c:
        lid = await c.wait_for_leader(5)
        to = next(n for n in c.node_ids if n != lid)
        c.router.isolate(to)  # the target cannot take over
        await c.nodes[lid].trigger.transfer_leader(to)
        await trio.lowlevel.checkpoint()
        with pytest.raises(raft.ForwardToLeader) as info:
            await c.nodes[lid].client_write(Set("during", 1))
        assert info.value.leader_id == to
        assert not info.value.maybe_committed
        await trio.sleep(c.config.election_timeout_max + 0.05)
        assert c.leader_id() == lid
        await c.nodes[lid].client_write(Set("after", 1))


async def test_trigger_elect_and_runtime_switches(autojump_clock):
    async with open_cluster(3, seed=53) as c:
        lid = await c.wait_for_leader(5)
        other = next(n for n in c.node_ids if n != lid)
        # elect=False: a node that stops hearing from the leader never campaigns.
        for node in c.nodes.values():
            node.runtime_config.elect = False
        c.router.isolate(lid)
        await trio.sleep(3)
        assert all(
            c.nodes[n].metrics.state != raft.ServerState.CANDIDATE for n in c.node_ids
        )
        assert c.nodes[other].metrics.current_term == c.nodes[lid].metrics.current_term
        # trigger.elect() campaigns at once regardless.
        c.router.heal()
        c.router.isolate(lid)
        await c.nodes[other].trigger.elect()
        await c.nodes[other].wait(2).state(raft.ServerState.LEADER)


async def test_heartbeat_switch_and_trigger(autojump_clock):
    async with open_cluster(3, seed=54) as c:
        lid = await c.wait_for_leader(5)
        sent: list[str] = []
        c.router.on_event = lambda fate, src, dst, kind: (
            sent.append(kind) if src == lid and kind == "heartbeat" else None
        )
        await trio.sleep(0.5)
        assert sent.count("heartbeat") >= 2 * int(0.5 / c.config.heartbeat_interval) - 2
        leader = c.nodes[lid]
        leader.runtime_config.heartbeat = False
        await trio.sleep(0.1)
        sent.clear()
        await trio.sleep(0.12)
        assert sent == []  # no periodic heartbeats
        await leader.trigger.heartbeat()
        await trio.sleep(0.01)
        assert sent.count("heartbeat") == 2  # one to each follower, on demand
