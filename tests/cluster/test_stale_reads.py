"""Leadership edges that used to serve stale linearizable reads or misreport outcomes.

Each test builds, with the public API and the Router, the situation in which a node other
than the leader that serves a read commits a newer value, and checks that no read started
after that write was acknowledged returns the older value (issue 11: leader transfer,
``trigger.elect()`` inside the lease, a restarted majority) — and that a write committed in
the round its leader steps down is answered with its success.
"""

from __future__ import annotations

import contextlib

import trio

import openraft_trio as raft
from openraft_trio.kv import Set
from openraft_trio.testing import open_cluster


async def lease_read_value(node: raft.Raft, sm, key: str, timeout: float = 1.0):
    """A LEASE_READ on ``node`` followed by a local read of ``key``; ``None`` if the node
    refused to serve it (which is always allowed)."""
    with trio.move_on_after(timeout):
        try:
            await node.ensure_linearizable(raft.ReadPolicy.LEASE_READ)
        except (raft.ForwardToLeader, raft.QuorumNotEnough):
            return None
        return ("served", sm.get(key))
    return None


async def leader_with_x_applied(c) -> int:
    """Wait for a leader, write ``x = 1`` and let every node apply it; the leader's id."""
    lead = await c.wait_for_leader(5)
    await c.nodes[lead].client_write(Set("x", 1))
    await c.wait_applied(c.nodes[lead].metrics.last_log_index)
    return lead


async def test_a_leader_that_starts_a_transfer_serves_no_stale_lease_read(autojump_clock):
    async with open_cluster(3, seed=111) as c:
        old = await leader_with_x_applied(c)
        to, third = (n for n in c.node_ids if n != old)
        # The old leader keeps talking to the target (so the transfer request gets there),
        # but hears nothing back from anyone: it never learns of the new term.
        c.router.block(old, third)
        c.router.block(third, old)
        c.router.block(to, old)
        await c.nodes[old].trigger.transfer_leader(to)
        await c.nodes[to].wait(1).state(raft.ServerState.LEADER)
        await c.wait_for_leader(1)
        await c.nodes[to].client_write(Set("x", 2))
        # Well within the old leader's lease (counted from acks sent before the transfer).
        assert c.nodes[old].metrics.state == raft.ServerState.LEADER
        assert await lease_read_value(c.nodes[old], c.state_machines[old], "x") in (
            None,
            ("served", 2),
        )


async def test_trigger_elect_inside_the_nodes_own_lease_does_not_depose_a_live_leader(
    autojump_clock,
):
    async with open_cluster(3, seed=113) as c:
        lead = await leader_with_x_applied(c)
        f, t = (n for n in c.node_ids if n != lead)
        # t stops hearing from the leader until its lease from it ran out.
        c.router.block(lead, t)
        c.router.block(t, lead)
        await trio.sleep(c.config.lease + 0.05)
        # f heard from the leader a moment ago; now f and the leader lose each other.
        c.router.block(lead, f)
        c.router.block(f, lead)
        term = c.nodes[f].metrics.current_term
        await c.nodes[f].trigger.elect()
        await trio.sleep(0.05)
        # Leader stickiness holds for f's own vote: it does not campaign inside its lease.
        assert c.nodes[f].metrics.current_term == term
        assert c.nodes[f].metrics.state == raft.ServerState.FOLLOWER
        with trio.move_on_after(0.05):
            with contextlib.suppress(raft.ForwardToLeader):
                await c.nodes[f].client_write(Set("x", 2))
        assert c.state_machines[f].get("x") == 1
        assert await lease_read_value(c.nodes[lead], c.state_machines[lead], "x", 0.05) in (
            None,
            ("served", 1),
        )


async def test_trigger_elect_on_the_leader_is_a_no_op(autojump_clock):
    for n in (1, 3):
        async with open_cluster(n, seed=114) as c:
            lead = await c.wait_for_leader(5)
            before = c.nodes[lead].metrics
            await c.nodes[lead].trigger.elect()
            await trio.sleep(0.01)
            after = c.nodes[lead].metrics
            assert (after.state, after.current_term) == (raft.ServerState.LEADER, before.current_term)
            assert after.last_log_index == before.last_log_index  # no second blank entry
            await c.nodes[lead].client_write(Set("x", 1))


async def test_a_majority_restarted_inside_the_lease_does_not_elect_while_the_leader_serves_leases(
    autojump_clock,
):
    async with open_cluster(3, seed=115) as c:
        lead = await leader_with_x_applied(c)
        others = [n for n in c.node_ids if n != lead]
        # The leader is cut off just after a quorum acknowledged it; the others restart.
        c.router.isolate(lead)
        t0 = trio.current_time()
        for n in others:
            await c.crash(n)
            await c.restart(n)
        new = None
        with trio.fail_after(5):
            while new is None:
                await trio.sleep(0.001)
                new = next(
                    (n for n in others if c.nodes[n].metrics.state == raft.ServerState.LEADER),
                    None,
                )
        elected_after = trio.current_time() - t0
        await c.nodes[new].client_write(Set("x", 2))
        assert await lease_read_value(c.nodes[lead], c.state_machines[lead], "x") in (
            None,
            ("served", 2),
        )
        # Restarted nodes assume the leader they may have heard from is alive for one
        # lease: they neither vote nor campaign before it ends.
        assert elected_after >= c.config.lease


async def test_change_membership_that_removes_the_leader_answers_success(autojump_clock):
    async with open_cluster(3, seed=116) as c:
        lead = await c.wait_for_leader(5)
        keep = {n for n in c.node_ids if n != lead}
        resp = await c.nodes[lead].change_membership(keep)
        assert resp.membership.voter_ids == keep
        assert not resp.membership.is_joint
        new = await c.wait_for_leader(5)
        assert new in keep


async def test_writes_committed_in_the_round_the_leader_steps_down_answer_success(autojump_clock):
    """Writes appended before the uniform configuration that removes the leader commit
    with it, in the round in which the leader steps down: each is answered with its
    success, and only writes not yet committed are ambiguous."""
    async with open_cluster(3, seed=117) as c:
        c.router.set_latency(0.001, 0.001)
        lead = await c.wait_for_leader(5)
        keep = {n for n in c.node_ids if n != lead}
        node = c.nodes[lead]
        outcomes: dict[int, object] = {}

        async def write(i: int) -> None:
            try:
                outcomes[i] = await node.client_write(Set(f"k{i}", i))
            except raft.ForwardToLeader as e:
                outcomes[i] = e

        async def change() -> None:
            outcomes[-1] = await node.change_membership(keep)

        async with trio.open_nursery() as n:
            n.start_soon(change)
            # The joint entry commits after one round trip; the uniform one is appended
            # then. Writes sent just before and after it commit with it.
            # Writes spread over the two round trips, 0.1 ms apart.
            for i in range(40):
                n.start_soon(write, i)
                await trio.sleep(0.0001)
        new = await c.wait_for_leader(5)
        last = c.nodes[new].metrics.last_log_index
        await c.wait_applied(last, nodes=keep)
        assert isinstance(outcomes.pop(-1), raft.ClientWriteResponse)
        # The removed leader hears nothing after it stepped down, so what it applied is
        # exactly what was committed when it stepped down.
        await trio.sleep(0.1)
        old_sm = c.state_machines[lead]
        committed_before_step_down = [i for i in outcomes if old_sm.get(f"k{i}") == i]
        for i, outcome in outcomes.items():
            if isinstance(outcome, raft.ForwardToLeader):
                assert outcome.maybe_committed
                assert i not in committed_before_step_down, f"committed write {i} reported as {outcome!r}"
            else:
                assert c.state_machines[new].get(f"k{i}") == i, f"write {i} answered {outcome} but not applied"
        # Both kinds happened: writes committed by the step-down round (answered with
        # their success) and writes still uncommitted then (of unknown outcome).
        assert committed_before_step_down
        assert any(isinstance(o, raft.ForwardToLeader) for o in outcomes.values())
