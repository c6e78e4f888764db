"""Heartbeats and votes never queue behind bulk data on the wire (issue 11, defect 6):
the TCP factory keeps a *control* connection per peer (heartbeats, votes, leader
transfers) beside the *data* connection (entry-carrying appends, snapshots).

Real clock on loopback; every wait is on a condition, bounded by ``trio.fail_after``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from functools import partial
from types import SimpleNamespace
from typing import Any

import trio

from openraft_trio import (
    AppendEntriesRequest,
    AppendEntriesResponse,
    Entry,
    LeaderId,
    LogId,
    Membership,
    Node,
    Normal,
    RPCError,
    RPCOption,
    Vote,
    VoteRequest,
    VoteResponse,
)
from openraft_trio.network.tcp import RaftServer, ServerLimits, open_tcp_network, serve_raft

from ._tcp_nodes import CONFIG

LIMIT = 20
LEADER_VOTE = Vote(LeaderId(1, 1), committed=True)


class StuckFollower:
    """A follower that never finishes storing an entry-carrying append (a big batch being
    written), but answers heartbeats and votes at once."""

    def __init__(self) -> None:
        self.config = CONFIG
        self.node_id = 2
        self.append_arrived = trio.Event()
        self.held: list[Callable[[Any], None]] = []
        # What the server reads to tell peers from strangers: no membership known yet.
        self.metrics = SimpleNamespace(membership=SimpleNamespace(membership=Membership(configs=())))

    def post_append_entries(
        self, req: AppendEntriesRequest, on_done: Callable[[Any], None]
    ) -> bool:
        if req.entries:
            self.held.append(on_done)  # never answered
            self.append_arrived.set()
        else:
            on_done(AppendEntriesResponse(req.vote, success=True))
        return True

    async def append_entries(self, req: AppendEntriesRequest) -> AppendEntriesResponse:
        raise AssertionError("the server posts appends (post_append_entries)")

    async def vote(self, req: VoteRequest) -> VoteResponse:
        raise AssertionError("the server posts votes (post_vote)")

    def post_vote(self, req: VoteRequest, on_done: Callable[[Any], None]) -> bool:
        on_done(VoteResponse(req.vote, False, None))
        return True


async def test_heartbeats_and_votes_are_answered_while_an_append_is_stuck() -> None:
    follower = StuckFollower()
    bulk = AppendEntriesRequest(
        LEADER_VOTE,
        None,
        tuple(Entry(LogId(LeaderId(1, 1), i), Normal(b"x" * 100_000)) for i in range(1, 6)),
        None,
    )
    heartbeat = AppendEntriesRequest(LEADER_VOTE, None, (), None)
    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            # One request at a time per connection: while the append is being stored, the
            # server reads nothing more from the connection it came on.
            server: RaftServer = await nursery.start(
                partial(serve_raft, follower, "127.0.0.1", 0, limits=ServerLimits(max_inflight=1))
            )
            async with open_tcp_network(1, CONFIG) as factory:
                client = await factory.new_client(2, Node(server.addr))

                async def send_bulk() -> None:
                    with contextlib.suppress(RPCError):  # closed under it at the end
                        await client.append_entries(bulk, RPCOption(hard_ttl=LIMIT))

                nursery.start_soon(send_bulk)
                await follower.append_arrived.wait()
                ttl = RPCOption(hard_ttl=3.0)
                resp = await client.append_entries(heartbeat, ttl)
                assert resp.success
                assert resp.vote == LEADER_VOTE
                vote = await client.vote(VoteRequest(Vote(LeaderId(2, 1)), None), ttl)
                assert not vote.vote_granted
                # Two connections to the one peer: control and data.
                assert server.stats.connections_accepted == 2
                assert factory.stats.connects == 2
                assert len(follower.held) == 1
            nursery.cancel_scope.cancel()

