"""Linearizable reads: ReadIndex and LeaseRead (Ongaro §6.4, openraft read.md)."""

from __future__ import annotations

import pytest
import trio

import openraft_trio as raft
from openraft_trio.kv import KvStateMachine, Set
from openraft_trio.testing import open_cluster


@pytest.mark.parametrize("policy", list(raft.ReadPolicy))
async def test_read_after_acknowledged_write_sees_it(policy, autojump_clock):
    async with open_cluster(3, seed=21) as c:
        lid = await c.wait_for_leader(5)
        leader = c.nodes[lid]
        for i in range(20):
            resp = await leader.client_write(Set("k", i))
            read_log_id = await leader.ensure_linearizable(policy)
            assert read_log_id is not None
            assert read_log_id.index >= resp.log_id.index
            assert c.state_machines[lid].get("k") == i


async def test_read_index_waits_for_a_quorum_round(autojump_clock):
    async with open_cluster(3, seed=22) as c:
        lid = await c.wait_for_leader(5)
        leader = c.nodes[lid]
        await leader.client_write(Set("k", 1))
        # Cut both followers off: the next ReadIndex cannot be confirmed; check-quorum then
        # deposes the leader and the read fails instead of answering from a stale leader.
        for n in c.node_ids:
            if n != lid:
                c.router.isolate(n)
        t0 = trio.current_time()
        with pytest.raises((raft.ForwardToLeader, raft.QuorumNotEnough)):
            await leader.ensure_linearizable(raft.ReadPolicy.READ_INDEX)
        assert trio.current_time() - t0 >= c.config.heartbeat_interval


async def test_lease_read_is_refused_once_the_lease_expires(autojump_clock):
    config = raft.Config(cluster_name="t")
    async with open_cluster(3, seed=23, config=config) as c:
        lid = await c.wait_for_leader(5)
        leader = c.nodes[lid]
        await leader.client_write(Set("k", 1))
        assert await leader.ensure_linearizable(raft.ReadPolicy.LEASE_READ) is not None
        # Stop ticking so check-quorum does not depose it first: the lease alone must refuse.
        leader.runtime_config.tick = False
        for n in c.node_ids:
            if n != lid:
                c.router.isolate(n)
        await trio.sleep(config.lease)
        with pytest.raises(raft.QuorumNotEnough):
            await leader.ensure_linearizable(raft.ReadPolicy.LEASE_READ)


async def test_single_node_cluster_writes_and_reads(autojump_clock):
    async with open_cluster(1, seed=24) as c:
        await c.wait_for_leader(5)
        node = c.nodes[1]
        resps = await node.client_write_many([Set(f"k{i}", i) for i in range(64)])
        assert [r.log_id.index for r in resps] == list(range(resps[0].log_id.index, resps[0].log_id.index + 64))
        assert await node.ensure_linearizable() is not None
        assert c.state_machines[1].get("k63") == 63


async def test_restarted_node_keeps_its_vote_and_never_votes_twice_in_a_term(autojump_clock):
    """Each follower, restarted, reads back the vote it gave the leader and refuses a vote
    for another candidate in that term: inside its startup lease (asked as a leader
    transfer, which crosses the lease) and after it (cut off from the leader, so no lease
    holds). A request for the next term is then granted: the refusals came from the vote."""
    async with open_cluster(3, seed=25) as c:
        lid = await c.wait_for_leader(5)
        await c.nodes[lid].client_write(Set("x", 1))
        term = c.nodes[lid].metrics.current_term
        for nid in [n for n in c.node_ids if n != lid]:
            vote_before = c.nodes[nid].metrics.vote
            assert vote_before.leader_id == raft.LeaderId(term, lid)
            await c.crash(nid)
            node = await c.restart(nid)
            assert node.metrics.vote == vote_before
            assert c.log_stores[nid]._vote == vote_before  # the durable copy
            other = next(n for n in c.node_ids if n not in (lid, nid))

            def ask(t: int, transfer: bool = False, other: int = other) -> raft.VoteRequest:
                # A candidate whose log is ahead of everyone's: only the vote can refuse it.
                ahead = raft.LogId(raft.LeaderId(term, lid), 10_000)
                return raft.VoteRequest(
                    raft.Vote(raft.LeaderId(t, other)), ahead, leader_transfer=transfer
                )

            resp = await node.vote(ask(term, transfer=True))
            assert not resp.vote_granted, "granted a second vote in the term (startup lease)"
            c.router.isolate(nid)
            await trio.sleep(2 * c.config.lease)
            for transfer in (False, True):
                resp = await node.vote(ask(term, transfer))
                assert not resp.vote_granted, "granted a second vote in the term"
                assert node.metrics.vote == vote_before
            resp = await node.vote(ask(term + 1))
            assert resp.vote_granted
            assert node.metrics.vote == raft.Vote(raft.LeaderId(term + 1, other))
            c.router.heal()
        # The cluster converges again (the grants for term + 1 may cost an election).
        new = await c.wait_for_leader(10)
        await c.nodes[new].client_write(Set("after", 1))


class SlowKv(KvStateMachine):
    """Applies after ``apply_delay`` seconds (settable per replica while running)."""

    apply_delay = 0.0

    async def apply(self, entries):  # type: ignore[no-untyped-def]
        await trio.sleep(self.apply_delay)
        return await super().apply(entries)


@pytest.mark.parametrize("policy", list(raft.ReadPolicy))
async def test_a_new_leader_serves_a_read_only_once_it_applied_what_was_acknowledged(
    policy, autojump_clock
):
    """A write is acknowledged once its leader applied it; a follower may still be applying
    it when it becomes leader. A linearizable read there must wait until its state machine
    has caught up (committed is not applied)."""
    async with open_cluster(3, seed=26, state_machine_factory=SlowKv) as c:
        old = await c.wait_for_leader(5)
        new = next(n for n in c.node_ids if n != old)
        c.state_machines[new].apply_delay = 2.0
        await c.nodes[old].client_write(Set("x", 1))  # acknowledged: applied on `old`
        await c.nodes[old].trigger.transfer_leader(new)
        await c.nodes[new].wait(1).state(raft.ServerState.LEADER)
        assert c.state_machines[new].get("x") is None  # still applying
        await c.nodes[new].ensure_linearizable(policy)
        assert c.state_machines[new].get("x") == 1
