"""Misuse of the API gets the typed errors of DESIGN.md §4, and the node keeps running."""

from __future__ import annotations

import math

import pytest

import openraft_trio as raft
from openraft_trio.kv import KvStateMachine, Set
from openraft_trio.storage import MemLogStore
from openraft_trio.testing import Router, open_cluster


async def test_write_on_follower_raises_forward_to_leader_with_leader_id_and_node(autojump_clock):
    async with open_cluster(3, seed=1) as c:
        lid = await c.wait_for_leader(5)
        follower = c.nodes[next(n for n in c.node_ids if n != lid)]
        await follower.wait(2).current_leader(lid)
        with pytest.raises(raft.ForwardToLeader) as info:
            await follower.client_write(Set("a", 1))
        assert info.value.leader_id == lid
        assert info.value.leader_node == raft.Node(f"node-{lid}")
        with pytest.raises(raft.ForwardToLeader):
            await follower.client_write_many([Set("a", 1), Set("b", 2)])
        with pytest.raises(raft.ForwardToLeader):
            await follower.ensure_linearizable()
        # The follower keeps working.
        await c.nodes[lid].client_write(Set("a", 1))
        await follower.wait(2).applied_index_at_least(c.nodes[lid].metrics.last_log_index or 0)


async def test_initialize_twice_is_not_allowed(autojump_clock):
    async with open_cluster(3, seed=2) as c:
        await c.wait_for_leader(5)
        members = {n: raft.Node(f"node-{n}") for n in c.node_ids}
        for node in c.nodes.values():
            with pytest.raises(raft.InitializeError) as info:
                await node.initialize(members)
            assert isinstance(info.value, raft.NotAllowed)
            assert isinstance(info.value, raft.InitializeError.NotAllowed)
            assert await node.is_initialized()


async def test_initialize_without_self_is_not_in_members(autojump_clock):
    async with open_cluster(2, seed=3, initialize=False) as c:
        with pytest.raises(raft.NotInMembers):
            await c.nodes[1].initialize({2: raft.Node("b")})
        assert not await c.nodes[1].is_initialized()
        # Nothing was lost: it can still be initialized properly.
        await c.nodes[1].initialize({1: raft.Node("a"), 2: raft.Node("b")})
        assert await c.wait_for_leader(5) in (1, 2)


async def test_initialize_rejects_a_malformed_member_map(autojump_clock):
    async with open_cluster(1, seed=4, initialize=False) as c:
        with pytest.raises(raft.InvalidRequest):
            await c.nodes[1].initialize({1: "not-a-node"})  # type: ignore[dict-item]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"election_timeout_min": 0.3, "election_timeout_max": 0.3}, "election_timeout_min"),
        ({"election_timeout_min": 0.5, "election_timeout_max": 0.3}, "election_timeout_min"),
        ({"heartbeat_interval": 0.15}, "heartbeat_interval"),
        ({"heartbeat_interval": -1.0}, "heartbeat_interval"),
        ({"election_timeout_max": math.inf}, "election_timeout_max"),
        ({"max_payload_entries": 0}, "max_payload_entries"),
        ({"cluster_name": ""}, "cluster_name"),
        ({"max_in_snapshot_log_to_keep": -1}, "max_in_snapshot_log_to_keep"),
        ({"snapshot_policy": 0}, "snapshot_policy"),
        ({"lease_clock_drift": 1.0}, "lease_clock_drift"),
        ({"allow_log_reversion": "yes"}, "allow_log_reversion"),
    ],
)
def test_config_validate_names_the_bad_field(kwargs, field):
    with pytest.raises(raft.ConfigError) as info:
        raft.Config(**kwargs).validate()
    assert info.value.field == field
    assert field in str(info.value)


def test_default_config_is_valid():
    config = raft.Config()
    assert config.validate() is config
    assert config.lease == config.election_timeout_max


async def test_open_raft_refuses_a_bad_config(autojump_clock):
    with pytest.raises(raft.ConfigError):
        async with raft.open_raft(
            1,
            raft.Config(heartbeat_interval=1.0),
            network=Router().factory(1),
            log_store=MemLogStore(),
            state_machine=KvStateMachine(),
        ):
            raise AssertionError("unreachable")


async def test_malformed_inbound_rpc_is_rejected_and_node_keeps_running(autojump_clock):
    async with open_cluster(3, seed=5) as c:
        lid = await c.wait_for_leader(5)
        follower = c.nodes[next(n for n in c.node_ids if n != lid)]
        with pytest.raises(raft.InvalidRequest):
            await follower.append_entries("garbage")  # type: ignore[arg-type]
        with pytest.raises(raft.InvalidRequest):
            await follower.vote(b"\x00")  # type: ignore[arg-type]
        with pytest.raises(raft.InvalidRequest):
            await follower.ensure_linearizable("lease")  # type: ignore[arg-type]
        resp = await c.nodes[lid].client_write(Set("k", 1))
        await follower.wait(2).applied_index_at_least(resp.log_id.index)


async def test_error_families_are_reachable_both_ways():
    assert raft.ChangeMembershipError.InProgress is raft.InProgress
    assert raft.Fatal.Stopped is raft.Stopped
    assert raft.Fatal.StorageError is raft.StorageError
    assert raft.RPCError.Unreachable is raft.Unreachable
    for cls in (raft.ForwardToLeader, raft.QuorumNotEnough, raft.ConfigError, raft.WaitTimeout,
                raft.RPCTimeout, raft.RemoteError, raft.NetworkError, raft.LearnerNotFound,
                raft.EmptyMembership):
        assert issubclass(cls, raft.RaftError)


async def test_wait_timeout_is_typed(autojump_clock):
    async with open_cluster(1, seed=6) as c:
        await c.wait_for_leader(5)
        with pytest.raises(raft.WaitTimeout):
            await c.nodes[1].wait(0.5).applied_index_at_least(1000)


async def test_semantically_bad_append_entries_are_refused_and_nothing_changes(autojump_clock):
    async with open_cluster(3, seed=7) as c:
        lid = await c.wait_for_leader(5)
        resp = await c.nodes[lid].client_write(Set("k", 1))
        fid = next(n for n in c.node_ids if n != lid)
        follower = c.nodes[fid]
        await follower.wait(2).applied_index_at_least(resp.log_id.index)
        before = follower.metrics
        lv = c.nodes[lid].metrics.vote
        term = lv.term
        lid_obj = raft.LeaderId(term, lid)

        def entry(index: int, t: int = term) -> raft.Entry:
            return raft.Entry(raft.LogId(raft.LeaderId(t, lid), index), raft.Normal(Set("x", 9)))

        last = resp.log_id
        bad = [
            # entries not consecutive after prev
            raft.AppendEntriesRequest(lv, last, (entry(last.index + 2),), None),
            # an entry from a term newer than the sender's
            raft.AppendEntriesRequest(lv, last, (entry(last.index + 1, term + 5),), None),
            # a vote that did not win an election cannot send entries
            raft.AppendEntriesRequest(raft.Vote(lid_obj), last, (), None),
            # rewrites a committed entry with a different one
            raft.AppendEntriesRequest(
                raft.Vote(raft.LeaderId(term + 1, lid), committed=True),
                None,
                (raft.Entry(raft.LogId(raft.LeaderId(term + 1, lid), 0), raft.Blank()),),
                None,
            ),
            raft.AppendEntriesRequest(lv, last, ("not an entry",), None),  # type: ignore[arg-type]
        ]
        for req in bad:
            with pytest.raises(raft.InvalidRequest):
                await follower.append_entries(req)
        after = follower.metrics
        assert after.last_log_id == before.last_log_id
        assert after.committed == before.committed
        # Still replicating and applying.
        resp2 = await c.nodes[lid].client_write(Set("k", 2))
        await follower.wait(2).applied_index_at_least(resp2.log_id.index)
        assert c.state_machines[fid].get("k") == 2


async def test_malformed_vote_requests_are_refused(autojump_clock):
    async with open_cluster(3, seed=8) as c:
        lid = await c.wait_for_leader(5)
        follower = c.nodes[next(n for n in c.node_ids if n != lid)]
        for req in [
            raft.VoteRequest(raft.Vote(raft.LeaderId(-1, 2)), None),
            raft.VoteRequest(raft.Vote(raft.LeaderId(5, None)), None),
            raft.VoteRequest(
                raft.Vote(raft.LeaderId(2, 3)), raft.LogId(raft.LeaderId(9, 3), 1)
            ),
        ]:
            with pytest.raises(raft.InvalidRequest):
                await follower.vote(req)
        assert c.leader_id() == lid
