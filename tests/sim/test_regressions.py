"""Scripted regression scenarios: the classic ways Raft implementations lose data, replayed
message by message on a hand-driven network of Engines (tests/sim/_engine_net.py)."""

from __future__ import annotations

import attrs

from openraft_trio import Config
from openraft_trio._engine.commands import TruncateLog
from openraft_trio._messages import VoteRequest
from openraft_trio._types import Normal

from ._engine_net import EngineNet

# No pre-vote and no leader lease in the way: these scenarios script elections directly.
CONFIG = attrs.evolve(
    Config(cluster_name="scripted", election_timeout_min=1.0, election_timeout_max=2.0,
           heartbeat_interval=0.1),
    enable_pre_vote=False,
    max_payload_entries=1,
)


def elect(net: EngineNet, leader: int, voters: set[int]) -> None:
    """Let the lease run out, then ``leader`` campaigns and only ``voters`` hear it (a
    second campaign if the first one only taught it a newer term)."""
    for _ in range(3):
        net.advance(10.0)
        if net.engines[leader].is_leader:
            # A leader cut off for a lease steps down (check-quorum); elect() on a node
            # that still leads does nothing.
            net.engines[leader].tick(net.now)
            net.run(leader)
        net.elect(leader)
        for v in sorted(voters - {leader}):
            net.exchange("vote", leader, v)
        net.drop("vote", src=leader)
        if net.engines[leader].is_leader:
            return
    raise AssertionError(f"node {leader} did not win")


def replicate(net: EngineNet, leader: int, to: int, times: int = 1) -> None:
    """Exactly ``times`` AppendEntries round trips from ``leader`` to ``to``."""
    for _ in range(times):
        net.exchange("append", leader, to)


def sync(net: EngineNet, leader: int, to: int) -> None:
    """Round trips until ``leader``'s stream to ``to`` has nothing more to send."""
    for _ in range(100):
        if not any(m.kind == "append" and (m.src, m.dst) == (leader, to) for m in net.outbox):
            return
        net.exchange("append", leader, to)
    raise AssertionError("replication did not settle")


def test_figure_8_a_previous_term_entry_is_not_committed_by_counting_replicas() -> None:
    net = EngineNet(5, CONFIG)
    net.initialize(1)
    net.drop()
    elect(net, 1, {1, 2, 3, 4, 5})
    for t in (2, 3, 4, 5):
        sync(net, 1, t)
    s1 = net.engines[1]
    assert s1.committed is not None
    base = s1.committed.index
    # S1 appends X and gets it only to S2; then S1 "crashes".
    [x] = s1.client_write([Normal("X")])
    net.run(1)
    net.drop(dst=3)
    net.drop(dst=4)
    net.drop(dst=5)
    sync(net, 1, 2)
    assert x in net.log_of(2)
    net.drop()
    # S5 wins the next term with S3 and S4 (their logs are no newer), appends its blank at
    # X's index, and crashes before replicating it.
    elect(net, 5, {3, 4, 5})
    net.drop()
    y = net.log_of(5)[-1]
    assert y.index == x.index
    assert y.term > x.term
    # S1 restarts and wins a later term with S2, S3, S4, then brings X to S3 (entries go
    # one per request here): X is now on a majority — S1, S2, S3 ...
    net.restart(1)
    elect(net, 1, {1, 2, 3, 4})
    s1 = net.engines[1]
    while x not in net.log_of(3):  # a conflict round, then X alone (one entry per request)
        replicate(net, 1, 3)
    assert net.log_of(3)[-1] == x
    replicate(net, 1, 2)  # S2 already has X: S1 learns it (S2 also takes S1's blank)
    assert s1.leader is not None
    assert s1.leader.progress[2].matching is not None
    assert s1.leader.progress[2].matching.index > x.index
    # ... but X is of an older term: counting replicas must not commit it (Figure 8).
    assert s1.committed is not None
    assert s1.committed.index == base
    # S1 crashes again; S5 comes back and wins with S2, S3, S4 (its last entry's term is
    # newer than X's) and overwrites X: allowed, precisely because X never committed.
    net.drop()
    net.restart(5)
    elect(net, 5, {3, 4, 5})  # S2 now holds S1's newer blank and refuses S5
    for t in (2, 3):
        sync(net, 5, t)
        assert x not in net.log_of(t)
        assert y in net.log_of(t)
    assert {n for n, _ in net.truncations} >= {2, 3}


def test_stale_append_response_from_an_older_term_does_not_move_matching() -> None:
    net = EngineNet(3, CONFIG)
    net.initialize(1)
    net.drop()
    elect(net, 1, {1, 2, 3})
    sync(net, 1, 2)
    sync(net, 1, 3)
    s1 = net.engines[1]
    s1.client_write([Normal("a")])
    net.run(1)
    net.drop(dst=3)
    # Node 2 answers, but the answer is held back...
    net.deliver(net.take("append", 1, 2))
    stale = net.take("append_resp", 2, 1)
    net.drop()
    # ...while node 1 loses leadership and wins again in a newer term.
    elect(net, 2, {2, 3})
    net.drop()
    elect(net, 1, {1, 2, 3})
    net.drop()
    s1 = net.engines[1]
    assert s1.leader is not None
    before = {t: p.matching for t, p in s1.leader.progress.items()}
    committed_before = s1.committed
    net.deliver(stale)  # a reply to the old term's stream
    assert {t: p.matching for t, p in s1.leader.progress.items()} == before
    assert s1.committed == committed_before


def test_duplicated_or_reordered_append_never_truncates_committed_entries() -> None:
    net = EngineNet(3, CONFIG)
    net.initialize(1)
    net.drop()
    elect(net, 1, {1, 2, 3})
    s1 = net.engines[1]
    # Capture the first AppendEntries to node 2, then replicate everything normally.
    first = net.take("append", 1, 2)
    net.deliver(first)
    net.deliver(net.take("append_resp", 2, 1))
    s1.client_write([Normal(f"v{i}") for i in range(3)])
    net.run(1)
    for t in (2, 3):
        sync(net, 1, t)
    s2 = net.engines[2]
    log_before = net.log_of(2)
    assert s2.committed is not None
    assert s2.committed.index >= 1
    truncations_before = list(net.truncations)
    # The old request arrives again (duplicated / reordered by the network).
    net.deliver(attrs.evolve(first))
    assert net.truncations == truncations_before
    assert not any(isinstance(c, TruncateLog) for c in s2.output)
    assert net.log_of(2) == log_before
    reply = net.take("append_resp", 2, 1)
    assert reply.body.success


def test_restarted_follower_never_grants_a_second_vote_in_a_term() -> None:
    net = EngineNet(3, CONFIG)
    net.initialize(1)
    net.drop()
    elect(net, 1, {1, 2, 3})
    sync(net, 1, 2)
    sync(net, 1, 3)
    net.drop()
    # Node 2 votes for node 3 in a new term, then restarts.
    net.advance(10.0)
    net.elect(3)
    net.deliver(net.take("vote", 3, 2))
    granted = net.take("vote_resp", 2, 3).body
    assert granted.vote_granted
    term = granted.vote.term
    net.drop()
    net.restart(2)
    assert net.engines[2].vote == granted.vote
    # Node 1 asks for node 2's vote in that same term: refused after the restart.
    other = VoteRequest(
        attrs.evolve(granted.vote, leader_id=attrs.evolve(granted.vote.leader_id, node_id=1)),
        net.engines[1].last_log_id,
    )
    assert other.vote.term == term
    resp = net.engines[2].handle_vote_req(other)
    assert not resp.vote_granted
    assert net.engines[2].vote == granted.vote
