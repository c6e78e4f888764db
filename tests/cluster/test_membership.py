"""Membership changes on a running cluster: learners, joint consensus, removing the leader."""

from __future__ import annotations

import pytest
import trio

import openraft_trio as raft
from openraft_trio.kv import Set
from openraft_trio.testing import open_cluster

from .._tasks import our_tasks


async def writer(cluster, stop: trio.Event, acked: dict[str, int]) -> None:
    """Keep writing to whoever leads; remember what was acknowledged."""
    i = 0
    while not stop.is_set():
        lid = cluster.leader_id()
        if lid is None:
            await trio.sleep(0.01)
            continue
        i += 1
        try:
            await cluster.nodes[lid].client_write(Set(f"w{i}", i))
            acked[f"w{i}"] = i
        except (raft.ForwardToLeader, raft.Stopped):
            await trio.sleep(0.01)
        await trio.sleep(0.002)  # let virtual time pass between writes


async def leader_call(cluster, fn):
    """Run ``fn(leader)`` on the current leader, retrying while leadership or an earlier
    change settles."""
    with trio.fail_after(10):
        while True:
            lid = cluster.leader_id()
            if lid is not None:
                try:
                    return await fn(cluster.nodes[lid])
                except (raft.ForwardToLeader, raft.InProgress):
                    pass
            await trio.sleep(0.02)


async def test_grow_1_to_3_to_5_and_shrink_to_3_removing_the_leader_under_load(autojump_clock):
    async with open_cluster(1, seed=41) as c:
        await c.wait_for_leader(5)
        c.router.set_latency(0.001, 0.003)
        for nid in (2, 3, 4, 5):
            await c.start(nid)  # uninitialized: learners once added
        acked: dict[str, int] = {}
        stop = trio.Event()
        async with trio.open_nursery() as n:
            n.start_soon(writer, c, stop, acked)
            for nid in (2, 3):
                await leader_call(c, lambda lead, nid=nid: lead.add_learner(nid, raft.Node(f"node-{nid}")))
            resp = await leader_call(c, lambda lead: lead.change_membership({1, 2, 3}))
            assert resp.membership.voter_ids == {1, 2, 3}
            assert not resp.membership.is_joint
            for nid in (4, 5):
                await leader_call(c, lambda lead, nid=nid: lead.add_learner(nid, raft.Node(f"node-{nid}")))
            await leader_call(c, lambda lead: lead.change_membership({1, 2, 3, 4, 5}))
            for node in c.nodes.values():
                await node.wait(5).voter_ids({1, 2, 3, 4, 5})
            old_leader = c.leader_id()
            assert old_leader is not None
            keep = sorted(n for n in (1, 2, 3, 4, 5) if n != old_leader)[:3]
            await leader_call(c, lambda lead: lead.change_membership(set(keep)))
            # The removed leader steps down once the change commits; a kept node leads.
            with trio.fail_after(10):
                while c.leader_id() not in keep:  # noqa: ASYNC110 - polls several nodes
                    await trio.sleep(0.01)
            await trio.sleep(1)
            stop.set()
        lid = await c.wait_for_leader(10)
        assert lid in keep
        last = c.nodes[lid].metrics.last_log_index
        assert last is not None
        await c.wait_applied(last, nodes=keep)
        for nid in keep:
            assert c.state_machines[nid].data == {**c.state_machines[lid].data}
            for k, v in acked.items():
                assert c.state_machines[nid].get(k) == v
        assert len(acked) > 50
        m = c.nodes[lid].metrics.membership.membership
        assert m.voter_ids == set(keep)
        assert old_leader not in m.nodes  # retain=False: removed entirely


async def test_learner_never_votes_or_campaigns_and_catches_up(autojump_clock):
    async with open_cluster(3, seed=42) as c:
        lid = await c.wait_for_leader(5)
        for i in range(100):
            await c.nodes[lid].client_write(Set(f"k{i}", i))
        await c.start(4)
        await c.nodes[lid].add_learner(4, raft.Node("node-4"), blocking=True)
        learner = c.nodes[4]
        assert learner.metrics.state == raft.ServerState.LEARNER
        await learner.wait(5).applied_index_at_least(c.nodes[lid].metrics.last_log_index or 0)
        assert c.state_machines[4].get("k99") == 99
        # A learner cut off from the leader for many election timeouts never campaigns.
        term = learner.metrics.current_term
        c.router.isolate(4)
        await trio.sleep(5)
        assert learner.metrics.current_term == term
        assert learner.metrics.state == raft.ServerState.LEARNER
        c.router.heal()
        # Replication and heartbeat tasks exist for the learner too.
        assert "openraft_trio.replication[4]" in our_tasks()
        # A leader's quorum never counts the learner: with two voters gone it cannot commit.
        others = [n for n in (1, 2, 3) if n != lid]
        for n in others:
            c.router.isolate(n)
        with pytest.raises((raft.ForwardToLeader, trio.TooSlowError)):
            with trio.fail_after(2):
                await c.nodes[lid].client_write(Set("no-quorum", 1))


async def test_membership_errors_are_typed(autojump_clock):
    async with open_cluster(3, seed=43) as c:
        lid = await c.wait_for_leader(5)
        leader = c.nodes[lid]
        follower = c.nodes[next(n for n in c.node_ids if n != lid)]
        with pytest.raises(raft.EmptyMembership):
            await leader.change_membership(set())
        with pytest.raises(raft.LearnerNotFound) as info:
            await leader.change_membership({1, 2, 3, 9})
        assert info.value.node_id == 9
        assert isinstance(info.value, raft.ChangeMembershipError)
        with pytest.raises(raft.ForwardToLeader):
            await follower.change_membership({1, 2})
        with pytest.raises(raft.ForwardToLeader):
            await follower.add_learner(7, raft.Node("x"))
        # One change at a time.
        await c.start(4)
        errors: list[BaseException] = []

        async def change(voters):
            try:
                await leader.change_membership(voters)
            except raft.ChangeMembershipError as e:
                errors.append(e)

        await leader.add_learner(4, raft.Node("node-4"))
        async with trio.open_nursery() as n:
            n.start_soon(change, {1, 2, 3, 4})
            n.start_soon(change, {1, 2, 4})
        assert len(errors) == 1
        assert isinstance(errors[0], raft.InProgress)
        # Unchanged membership: answered at once, nothing appended.
        before = leader.metrics.last_log_index
        resp = await leader.change_membership(leader.metrics.membership.membership.voter_ids)
        assert leader.metrics.last_log_index == before
        assert resp.membership == leader.metrics.membership.membership


async def test_retain_keeps_removed_voters_as_learners(autojump_clock):
    async with open_cluster(3, seed=44) as c:
        lid = await c.wait_for_leader(5)
        victim = next(n for n in c.node_ids if n != lid)
        keep = {n for n in c.node_ids if n != victim}
        resp = await c.nodes[lid].change_membership(keep, retain=True)
        assert resp.membership.voter_ids == keep
        assert victim in resp.membership.nodes
        await c.nodes[victim].wait(5).metrics(
            lambda m: m.state == raft.ServerState.LEARNER, "learner"
        )
        r = await c.nodes[lid].client_write(Set("after", 1))
        await c.nodes[victim].wait(5).applied_index_at_least(r.log_id.index)


async def test_a_membership_change_rebuilds_only_the_changed_targets(autojump_clock):
    from .._tasks import live_tasks_by_name

    async with open_cluster(3, seed=45) as c:
        lid = await c.wait_for_leader(5)
        others = [n for n in c.node_ids if n != lid]
        before = live_tasks_by_name()
        await c.start(4)
        await c.nodes[lid].add_learner(4, raft.Node("node-4"))
        after = live_tasks_by_name()
        for t in others:  # the very same task objects: untouched
            for kind in ("replication", "heartbeat"):
                name = f"openraft_trio.{kind}[{t}]"
                assert after[name] == before[name]
        assert "openraft_trio.replication[4]" in after
        assert "openraft_trio.replication[4]" not in before
        # Promote node 4, then remove it again: that stops exactly its tasks.
        voters = {1, 2, 3}
        await c.nodes[lid].change_membership(voters | {4})
        await c.nodes[lid].change_membership(voters, retain=False)
        await trio.sleep(0.1)
        final = live_tasks_by_name()
        assert "openraft_trio.replication[4]" not in final
        for t in others:
            assert final[f"openraft_trio.replication[{t}]"] == before[f"openraft_trio.replication[{t}]"]


async def test_remove_learner_stops_replicating_to_it_and_refuses_voters(autojump_clock):
    from .._tasks import live_tasks_by_name

    async with open_cluster(3, seed=46) as c:
        lid = await c.wait_for_leader(5)
        leader = c.nodes[lid]
        await c.start(4)
        await leader.add_learner(4, raft.Node("node-4"))
        assert "openraft_trio.replication[4]" in live_tasks_by_name()
        resp = await leader.remove_learner(4)
        assert 4 not in resp.membership.nodes
        assert resp.membership.voter_ids == {1, 2, 3}
        assert "openraft_trio.replication[4]" not in live_tasks_by_name()
        with pytest.raises(raft.LearnerNotFound) as missing:
            await leader.remove_learner(4)
        assert missing.value.node_id == 4
        with pytest.raises(raft.NotALearner) as voter:
            await leader.remove_learner(lid)
        assert isinstance(voter.value, raft.ChangeMembershipError)
        follower = c.nodes[next(n for n in c.node_ids if n != lid)]
        with pytest.raises(raft.ForwardToLeader):
            await follower.remove_learner(4)


async def test_transfer_to_a_learner_or_an_unknown_id_raises_at_once(autojump_clock):
    async with open_cluster(3, seed=47) as c:
        lid = await c.wait_for_leader(5)
        leader = c.nodes[lid]
        await c.start(4)
        await leader.add_learner(4, raft.Node("node-4"))
        for target in (4, 99):
            with pytest.raises(raft.NotAVoter) as info:
                await leader.trigger.transfer_leader(target)
            assert info.value.node_id == target
        await leader.client_write(Set("still-leading", 1))
        assert c.leader_id() == lid
