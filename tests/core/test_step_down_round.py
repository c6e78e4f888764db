"""A leader that steps down runs the rest of that round's commands to completion.

Stepping down (``QuitLeader``) tears the leader nursery down. The commands the Engine
emitted after it in the same round — typically the ``SaveVote`` of the vote that deposed
this leader, then the ``Respond`` that grants it — must still run, in order and in full:
a vote granted before it is durable could be granted twice in one term after a crash,
and a command dropped leaves a caller waiting forever.
"""

from __future__ import annotations

import trio

import openraft_trio as raft
from openraft_trio.kv import KvStateMachine
from openraft_trio.storage import MemLogStore
from openraft_trio.testing import Router


class SlowVoteStore(MemLogStore):
    """A store whose vote write takes a while (an fsync): the vote is durable only once
    ``save_vote`` returns, and a cancelled write is recorded."""

    def __init__(self) -> None:
        super().__init__()
        self.durable_votes: list[raft.Vote] = []
        self.cancelled_votes: list[raft.Vote] = []

    async def save_vote(self, vote: raft.Vote) -> None:
        try:
            await trio.sleep(0.005)
        except trio.Cancelled:
            self.cancelled_votes.append(vote)
            raise
        await super().save_vote(vote)
        self.durable_votes.append(vote)


async def test_a_vote_granted_by_a_stepping_down_leader_is_durable_before_it_is_sent(
    autojump_clock,
):
    router = Router()
    store = SlowVoteStore()
    async with raft.open_raft(
        1,
        raft.Config(),
        network=router.factory(1),
        log_store=store,
        state_machine=KvStateMachine(),
    ) as node:
        router.add(1, node)
        await node.initialize({1: raft.Node("n1")})
        metrics = await node.wait(5).state(raft.ServerState.LEADER)
        # A leader-transfer vote request for the next term, from a candidate whose log is
        # ahead: the leader grants it, which deposes it.
        higher = raft.Vote(raft.LeaderId(metrics.current_term + 1, 2))
        last = raft.LogId(raft.LeaderId(metrics.current_term + 1, 2), 100)
        request = raft.VoteRequest(higher, last, leader_transfer=True)
        with trio.fail_after(5):
            response = await node.vote(request)
        assert response.vote_granted
        assert store.cancelled_votes == []
        assert store.durable_votes[-1] == higher
