"""Cluster scenarios on the in-process Router, under MockClock(autojump_threshold=0)."""

from __future__ import annotations

import contextlib

import pytest
import trio

import openraft_trio as raft
from openraft_trio.kv import Set
from openraft_trio.testing import open_cluster

from .._tasks import node_task_names, our_tasks


def leaders(cluster) -> list[int]:
    return [n for n, r in cluster.nodes.items() if r.metrics.state == raft.ServerState.LEADER]


async def test_three_node_cluster_elects_exactly_one_leader(autojump_clock):
    async with open_cluster(3, seed=1) as c:
        lid = await c.wait_for_leader(5)
        await trio.sleep(2)  # many heartbeat intervals: leadership is stable
        assert leaders(c) == [lid]
        term = c.nodes[lid].metrics.current_term
        for nid, node in c.nodes.items():
            await node.wait(1).current_leader(lid)
            assert node.metrics.current_term == term, nid


async def test_five_node_cluster_elects_exactly_one_leader(autojump_clock):
    async with open_cluster(5, seed=2) as c:
        lid = await c.wait_for_leader(5)
        await trio.sleep(2)
        assert leaders(c) == [lid]
        for node in c.nodes.values():
            await node.wait(1).current_leader(lid)


async def test_thousand_writes_from_16_clients_commit_and_replicas_are_identical(autojump_clock):
    async with open_cluster(3, seed=3) as c:
        lid = await c.wait_for_leader(5)
        leader = c.nodes[lid]
        acked: dict[str, int] = {}
        last_index = 0

        async def client(cid: int) -> None:
            nonlocal last_index
            for i in range(1000 // 16 + (1 if cid < 1000 % 16 else 0)):
                key = f"c{cid}-{i}"
                resp = await leader.client_write(Set(key, i))
                assert resp.data is None  # no previous value
                acked[key] = i
                last_index = max(last_index, resp.log_id.index)

        async with trio.open_nursery() as n:
            for cid in range(16):
                n.start_soon(client, cid)
        assert len(acked) == 1000
        await c.wait_applied(last_index)
        datas = [c.state_machines[nid].data for nid in c.node_ids]
        assert datas[0] == acked
        assert all(d == datas[0] for d in datas)


async def test_crashed_leader_is_replaced_and_no_acknowledged_write_is_lost(autojump_clock):
    async with open_cluster(3, seed=4) as c:
        lid = await c.wait_for_leader(5)
        acked = {}
        for i in range(50):
            await c.nodes[lid].client_write(Set(f"k{i}", i))
            acked[f"k{i}"] = i
        await c.crash(lid)
        new = await c.wait_for_leader(5)
        assert new != lid
        for i in range(50, 100):
            await c.nodes[new].client_write(Set(f"k{i}", i))
            acked[f"k{i}"] = i
        await c.restart(lid)
        last = c.nodes[new].metrics.last_log_index
        assert last is not None
        await c.wait_applied(last)
        for nid in c.node_ids:
            assert c.state_machines[nid].data == acked, nid


async def test_leader_steps_down_when_partitioned_from_quorum(autojump_clock):
    config = raft.Config(cluster_name="t")
    async with open_cluster(5, seed=5, config=config) as c:
        lid = await c.wait_for_leader(5)
        old = c.nodes[lid]
        await old.client_write(Set("before", 1))
        majority = [n for n in c.node_ids if n != lid][:3]
        minority = [lid, next(n for n in c.node_ids if n != lid and n not in majority)]
        c.router.partition(minority, majority)
        t0 = trio.current_time()
        failed: list[BaseException] = []

        async def pending_write() -> None:
            try:
                await old.client_write(Set("lost?", 1))
            except raft.ForwardToLeader as e:
                failed.append(e)

        async with trio.open_nursery() as n:
            n.start_soon(pending_write)
            await old.wait(config.lease * 2).metrics(
                lambda m: m.state != raft.ServerState.LEADER, "step down"
            )
            stepped_down_after = trio.current_time() - t0
        # check-quorum: it stops leading once the lease runs out (a tick of slack).
        assert stepped_down_after <= config.lease + config.heartbeat_interval
        assert len(failed) == 1
        # The minority side can neither commit nor serve a linearizable read.
        for nid in minority:
            node = c.nodes[nid]
            try:
                await node.client_write(Set("minority", 1))
                raise AssertionError("minority committed a write")
            except raft.ForwardToLeader:
                pass
            for policy in raft.ReadPolicy:
                try:
                    await node.ensure_linearizable(policy)
                    raise AssertionError("minority served a linearizable read")
                except (raft.ForwardToLeader, raft.QuorumNotEnough):
                    pass
        # The majority elects a new leader that commits.
        with trio.fail_after(5):
            while True:
                new = c.leader_id()
                if new in majority:
                    break
                await trio.sleep(0.01)
        await c.nodes[new].wait(5).metrics(
            lambda m: m.committed is not None and m.committed.term == m.current_term, "commit"
        )
        # Heal: the old leader rejoins as a follower of the new leader.
        c.router.heal()
        await old.wait(5).current_leader(new)


async def test_minority_side_write_outcome_is_never_committed_after_heal(autojump_clock):
    async with open_cluster(3, seed=6) as c:
        lid = await c.wait_for_leader(5)
        old = c.nodes[lid]
        c.router.isolate(lid)

        async def write() -> None:
            with contextlib.suppress(raft.ForwardToLeader):
                await old.client_write(Set("isolated", 1))

        async with trio.open_nursery() as n:
            n.start_soon(write)
            new = None
            with trio.fail_after(5):
                while new is None or new == lid:
                    await trio.sleep(0.01)
                    new = c.leader_id() if c.leader_id() != lid else None
            await c.nodes[new].client_write(Set("majority", 2))
            c.router.heal()
        last = c.nodes[new].metrics.last_log_index
        assert last is not None
        await c.wait_applied(last)
        for nid in c.node_ids:
            assert c.state_machines[nid].get("isolated") is None
            assert c.state_machines[nid].get("majority") == 2


async def test_rejoining_node_does_not_disrupt_leader_with_pre_vote(autojump_clock):
    async with open_cluster(3, seed=7) as c:
        lid = await c.wait_for_leader(5)
        term = c.nodes[lid].metrics.current_term
        other = next(n for n in c.node_ids if n != lid)
        c.router.isolate(other)
        # Many election timeouts pass: with pre-vote, the isolated node never bumps its term.
        await trio.sleep(5)
        assert c.nodes[other].metrics.current_term == term
        c.router.heal()
        await c.nodes[other].wait(2).current_leader(lid)
        await trio.sleep(2)
        assert c.leader_id() == lid
        assert c.nodes[lid].metrics.current_term == term


async def test_without_pre_vote_a_rejoining_node_forces_an_election_it_cannot_win(autojump_clock):
    """Without pre-vote an isolated node raises its term at every timeout. Rejoining, its
    higher term reaches the leader in a heartbeat reply and deposes it — the cost of
    disabling pre-vote — but leader stickiness and the log check keep the rejoined node,
    which missed a committed write, from winning: the cluster converges on a leader that
    has the write."""
    config = raft.Config(cluster_name="t", enable_pre_vote=False)
    async with open_cluster(3, seed=8, config=config) as c:
        lid = await c.wait_for_leader(5)
        other = next(n for n in c.node_ids if n != lid)
        c.router.isolate(other)
        write = await c.nodes[lid].client_write(Set("while-isolated", 1))
        term = c.nodes[lid].metrics.current_term
        await trio.sleep(3)
        assert c.nodes[other].metrics.current_term > term
        assert c.leader_id() == lid  # the isolated node's campaigns reach nobody
        c.router.heal()
        await c.nodes[lid].wait(2).metrics(lambda m: m.current_term > term, "deposed")
        new = await c.wait_for_leader(5)
        assert new != other
        await trio.sleep(1)
        assert c.leader_id() == new
        assert c.nodes[new].metrics.current_term > term
        await c.wait_applied(write.log_id.index)
        assert all(c.state_machines[n].get("while-isolated") == 1 for n in c.node_ids)


async def test_stepping_down_tears_down_replication_and_heartbeat_tasks(autojump_clock):
    async with open_cluster(3, seed=9) as c:
        lid = await c.wait_for_leader(5)
        names = our_tasks()
        others = [n for n in c.node_ids if n != lid]
        for t in others:
            assert f"openraft_trio.replication[{t}]" in names
            assert f"openraft_trio.heartbeat[{t}]" in names
        c.router.isolate(lid)
        await c.nodes[lid].wait(2).metrics(lambda m: m.state != raft.ServerState.LEADER, "down")
        # The next core round has run; nothing of the old leadership survives anywhere
        # except tasks of the new leader (which is not in the isolated node's tree).
        await trio.sleep(0.05)
        new = c.leader_id()
        names = our_tasks()
        expected_repl = 0 if new is None else len(c.node_ids) - 1
        assert sum(n.startswith("openraft_trio.replication[") for n in names) == expected_repl
        assert sum(n.startswith("openraft_trio.heartbeat[") for n in names) == expected_repl
        if new is not None:
            assert f"openraft_trio.replication[{lid}]" in names  # the new leader's task


async def test_leader_step_down_leaves_no_leader_tasks_in_its_subtree(autojump_clock):
    async with open_cluster(3, seed=10) as c:
        lid = await c.wait_for_leader(5)
        others = [n for n in c.node_ids if n != lid]
        before = node_task_names(lid)
        for t in others:
            assert f"openraft_trio.replication[{t}]" in before
            assert f"openraft_trio.heartbeat[{t}]" in before
        c.router.isolate(lid)
        await c.nodes[lid].wait(2).metrics(lambda m: m.state != raft.ServerState.LEADER, "down")
        await trio.sleep(0.05)  # a core round after the step-down
        after = node_task_names(lid)
        assert "openraft_trio.raft_core" in after  # the node runs on, as a follower
        assert not [n for n in after if "replication[" in n or "heartbeat[" in n], after


async def test_no_task_remains_after_open_raft_exits(autojump_clock):
    async with open_cluster(3, seed=11) as c:
        lid = await c.wait_for_leader(5)
        await c.nodes[lid].client_write(Set("a", 1))
        assert our_tasks()
    assert our_tasks() == []


async def test_pending_calls_fail_with_stopped_when_the_node_stops(autojump_clock):
    async with open_cluster(3, seed=12) as c:
        lid = await c.wait_for_leader(5)
        leader = c.nodes[lid]
        for other in c.node_ids:
            if other != lid:
                c.router.isolate(other)
        errors: list[BaseException] = []

        async def write() -> None:
            try:
                await leader.client_write(Set("x", 1))
            except raft.RaftError as e:
                errors.append(e)

        async with trio.open_nursery() as n:
            n.start_soon(write)
            await trio.sleep(0.01)
            await c.crash(lid)
        assert len(errors) == 1
        assert isinstance(errors[0], raft.Stopped)
        with pytest.raises(raft.Stopped):
            await leader.client_write(Set("y", 1))


async def test_shutdown_stops_the_node_but_not_the_callers_block(autojump_clock):
    async with open_cluster(3, seed=13) as c:
        lid = await c.wait_for_leader(5)
        victim = next(n for n in c.node_ids if n != lid)
        node = c.nodes[victim]
        await node.shutdown()
        # We are still running here: shutdown cancelled only the node's own tasks.
        assert node.metrics.state == raft.ServerState.SHUTDOWN
        with pytest.raises(raft.Stopped):
            await node.client_write(Set("x", 1))
        with pytest.raises(raft.Stopped):
            await node.ensure_linearizable()
        await node.shutdown()  # idempotent
        # The rest of the cluster carries on.
        await c.nodes[lid].client_write(Set("y", 1))
        ours = [n for n in our_tasks() if n == "openraft_trio.raft_core"]
        assert len(ours) == 2
