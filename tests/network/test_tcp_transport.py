"""The TCP transport over real loopback sockets: a cluster on it, connection reuse, the
RpcChannel's error mapping, reconnects, snapshot streaming and handshake refusals.

Real clock (no MockClock): every test is bounded by ``trio.fail_after`` and waits on
conditions, never on fixed sleeps; nothing asserts on timings.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import attrs
import pytest
import trio

import openraft_trio as raft
from openraft_trio import (
    AppendEntriesRequest,
    Entry,
    LeaderId,
    LogId,
    Membership,
    MembershipChange,
    Node,
    Normal,
    RPCOption,
    Vote,
    VoteRequest,
)
from openraft_trio.kv import KvStateMachine, Set
from openraft_trio.network import _wire as wire
from openraft_trio.network._client import RpcChannel
from openraft_trio.network.tcp import CONTROL, TcpNetworkFactory, open_tcp_network

from ._tcp_nodes import (
    CONFIG,
    TcpNode,
    frame,
    free_port,
    open_tcp_cluster,
    read_frame,
    run_node,
    wait_until,
)

LIMIT = 20  # seconds: a hang fails the test instead of blocking CI
TTL = RPCOption(hard_ttl=5.0)


def vote_req(term: int = 1, candidate: int = 1) -> VoteRequest:
    return VoteRequest(Vote(LeaderId(term, candidate)), None)


@asynccontextmanager
async def standalone(node_id: int = 2, **kwargs: Any) -> AsyncIterator[TcpNode]:
    """One uninitialized node serving on loopback (a target for direct RPCs)."""
    async with trio.open_nursery() as nursery:
        node: TcpNode = await nursery.start(partial(run_node, node_id, CONFIG, **kwargs))
        try:
            yield node
        finally:
            nursery.cancel_scope.cancel()


@asynccontextmanager
async def fake_server(
    handler: Callable[[trio.SocketStream], Awaitable[None]],
) -> AsyncIterator[str]:
    """A hand-written server on loopback; yields its ``host:port``."""
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
        host, port = listeners[0].socket.getsockname()[:2]
        try:
            yield f"{host}:{port}"
        finally:
            nursery.cancel_scope.cancel()


async def answer_hello(stream: trio.SocketStream, node_id: int = 2) -> None:
    """Play the server side of the handshake."""
    kind, rid, hello = await read_frame(stream)
    assert kind == "hello"
    ok = wire.HelloOk(hello.cluster_name, node_id)
    await stream.send_all(frame(wire.encode_message("hello_ok", rid, ok)))


# -- a cluster on TCP --------------------------------------------------------------------------


async def test_cluster_elects_commits_and_applies_over_tcp() -> None:
    with trio.fail_after(LIMIT):
        async with open_tcp_cluster(3) as c:
            leader = await c.leader()
            last = 0
            for i in range(20):
                r = await leader.raft.client_write(Set(f"k{i}", i))
                last = r.log_id.index
            resps = await leader.raft.client_write_many([Set(f"m{i}", [i, "x"]) for i in range(50)])
            assert [r.data for r in resps] == [None] * 50
            last = resps[-1].log_id.index
            await c.wait_applied(last)
            expected = {f"k{i}": i for i in range(20)} | {f"m{i}": [i, "x"] for i in range(50)}
            for node in c.nodes.values():
                assert node.state_machine.data == expected
                assert node.stats.handler_errors == 0


async def test_one_reused_connection_per_peer() -> None:
    with trio.fail_after(LIMIT):
        async with open_tcp_cluster(3) as c:
            await c.assert_commits()  # every node has talked to the leader by now
            nodes = list(c.nodes.values())

            def counts() -> list[tuple[int, int, int]]:
                return [
                    (
                        n.network.stats.connects,
                        n.network.stats.connections_lost,
                        n.stats.connections_accepted,
                    )
                    for n in nodes
                ]

            before = counts()
            leader = await c.leader()
            calls_before = leader.network.stats.calls
            for i in range(100):
                await leader.raft.client_write(Set(f"k{i}", i))
            async with trio.open_nursery() as writers:  # concurrent callers share them too
                for w in range(8):
                    writers.start_soon(
                        partial(
                            leader.raft.client_write_many, [Set(f"w{w}-{j}", j) for j in range(20)]
                        )
                    )
            await c.assert_commits()
            assert counts() == before
            assert leader.network.stats.calls > calls_before + 100
            # Each node dialled each peer at most twice (a control and a data connection),
            # and only our nodes connected.
            for n in nodes:
                assert n.network.stats.connects <= 4
                assert n.network.stats.connections_lost == 0
                assert n.network.stats.connect_failures == 0
                assert n.stats.connections_open == n.stats.connections_accepted <= 4
            assert leader.network.stats.connects == 4
            assert sum(n.network.stats.connects for n in nodes) == sum(
                n.stats.connections_accepted for n in nodes
            )


# -- RpcChannel error mapping ------------------------------------------------------------------


async def test_closed_port_is_unreachable_and_calls_fail_fast_during_backoff() -> None:
    with trio.fail_after(LIMIT):
        addr = f"127.0.0.1:{free_port()}"
        async with trio.open_nursery() as nursery:
            hello = wire.Hello(CONFIG.cluster_name, "raft", 1, 2)
            # A backoff far longer than the test: the second call is surely inside it.
            ch = RpcChannel(nursery, addr, hello, expect_node_id=2, backoff_min=3600)
            with pytest.raises(raft.Unreachable):
                await ch.call("vote", vote_req(), "vote_resp", 5)
            assert ch.stats.connect_failures == 1
            for _ in range(3):
                with pytest.raises(raft.Unreachable, match="next attempt"):
                    await ch.call("vote", vote_req(), "vote_resp", 5)
            assert ch.stats.connect_failures == 1  # no new attempt while backing off
            assert not ch.connected
            await ch.aclose()
            with pytest.raises(raft.Unreachable, match="closed"):
                await ch.call("vote", vote_req(), "vote_resp", 5)
        # Through the public RaftNetwork too, and a malformed address is Unreachable.
        async with open_tcp_network(1, CONFIG) as factory:
            client = await factory.new_client(2, Node(addr))
            with pytest.raises(raft.Unreachable):
                await client.vote(vote_req(), TTL)
            bad = await factory.new_client(3, Node("no-port-here"))
            with pytest.raises(raft.Unreachable):
                await bad.vote(vote_req(), TTL)


async def test_server_that_never_answers_gives_rpc_timeout() -> None:
    async def silent(stream: trio.SocketStream) -> None:  # accepts, reads, never answers
        while await stream.receive_some(65536):
            pass

    async def deaf_after_hello(stream: trio.SocketStream) -> None:
        await answer_hello(stream)
        while await stream.receive_some(65536):
            pass

    with trio.fail_after(LIMIT):
        async with fake_server(silent) as addr, open_tcp_network(1, CONFIG) as factory:
            client = await factory.new_client(2, Node(addr))
            with pytest.raises(raft.RPCTimeout):  # stuck in the handshake
                await client.vote(vote_req(), RPCOption(hard_ttl=0.2))
            assert factory.stats.connects == 0
        async with fake_server(deaf_after_hello) as addr, open_tcp_network(1, CONFIG) as factory:
            client = await factory.new_client(2, Node(addr))
            for _ in range(2):
                with pytest.raises(raft.RPCTimeout):
                    await client.vote(vote_req(), RPCOption(hard_ttl=0.2))
            # A timeout is the call's, not the connection's: it stays up and is reused.
            assert factory.stats.connects == 1
            assert factory.stats.timeouts == 2
            assert factory.channel(2, addr, CONTROL).connected


async def test_connection_killed_during_a_call_is_network_error() -> None:
    async def kill_after_request(stream: trio.SocketStream) -> None:
        await answer_hello(stream)
        await read_frame(stream)  # the request arrives ...
        await trio.aclose_forcefully(stream)  # ... and the connection dies

    with trio.fail_after(LIMIT):
        async with fake_server(kill_after_request) as addr, open_tcp_network(1, CONFIG) as factory:
            client = await factory.new_client(2, Node(addr))
            with pytest.raises(raft.NetworkError):
                await client.vote(vote_req(), TTL)
            # A lost connection is not a failed connect: the next call dials again at once.
            await wait_until(
                lambda: not factory.channel(2, addr, CONTROL).connected, "loss noticed"
            )
            with pytest.raises(raft.NetworkError):
                await client.vote(vote_req(), TTL)
            assert factory.stats.connects == 2
            assert factory.stats.connect_failures == 0


async def test_remote_handler_error_is_remote_error_and_the_connection_survives() -> None:
    with trio.fail_after(LIMIT):
        async with standalone(2) as node, open_tcp_network(1, CONFIG) as factory:
            client = await factory.new_client(2, Node(node.addr))
            # A leader's append must carry a committed vote: the node refuses it.
            bad = AppendEntriesRequest(Vote(LeaderId(1, 1), committed=False), None, (), None)
            with pytest.raises(raft.RemoteError) as info:
                await client.append_entries(bad, TTL)
            assert info.value.remote.error_type == "InvalidRequest"
            assert "committed" in info.value.remote.message
            assert node.stats.error_replies == 1
            resp = await client.vote(vote_req(), TTL)  # same connection, still serving
            assert resp.vote_granted
            assert factory.stats.connects == 1
            assert node.stats.connections_accepted == 1


async def test_stopped_node_is_unreachable() -> None:
    with trio.fail_after(LIMIT):
        async with standalone(2) as node, open_tcp_network(1, CONFIG) as factory:
            client = await factory.new_client(2, Node(node.addr))
            assert (await client.vote(vote_req(), TTL)).vote_granted
            await node.raft.shutdown()  # the Raft node stops, its server still answers
            with pytest.raises(raft.Unreachable, match="stopped"):
                await client.vote(vote_req(), TTL)
            await node.stop()  # now the server is gone too
            await wait_until(
                lambda: not factory.channel(2, node.addr, CONTROL).connected, "loss noticed"
            )
            with pytest.raises(raft.Unreachable):
                await client.vote(vote_req(), TTL)


async def test_reconnects_after_the_server_restarts_on_the_same_port() -> None:
    with trio.fail_after(LIMIT):
        async with (
            trio.open_nursery() as nursery,
            open_tcp_network(1, CONFIG, backoff_max=0.1) as factory,
        ):
            node: TcpNode = await nursery.start(run_node, 2, CONFIG)
            addr = node.addr
            port = node.server.port
            client = await factory.new_client(2, Node(addr))
            assert (await client.vote(vote_req(), TTL)).vote_granted
            await node.stop()
            await wait_until(
                lambda: not factory.channel(2, addr, CONTROL).connected, "loss noticed"
            )
            with pytest.raises(raft.Unreachable):
                await client.vote(vote_req(), TTL)
            node = await nursery.start(partial(run_node, 2, CONFIG, port=port))
            assert node.addr == addr

            resp = None
            while resp is None:  # Unreachable until the backoff lets it dial again
                try:
                    resp = await client.vote(vote_req(term=2), TTL)
                except raft.Unreachable:
                    await trio.sleep(0.01)
            assert resp.vote_granted
            assert factory.stats.connects == 2
            assert node.stats.connections_accepted == 1
            nursery.cancel_scope.cancel()


# -- snapshots ---------------------------------------------------------------------------------


async def test_full_snapshot_streams_in_chunks_and_the_target_installs_it() -> None:
    source = KvStateMachine()
    leader = LeaderId(1, 1)
    membership = Membership(configs=[{1}], nodes={1: Node("127.0.0.1:1")})
    entries = [Entry(LogId(leader, 1), MembershipChange(membership))]
    entries += [Entry(LogId(leader, i), Normal(Set(f"k{i}", "v" * 40))) for i in range(2, 102)]
    await source.apply(entries)
    snapshot = await source.build_snapshot()
    chunk = 512
    assert len(snapshot.data) > 4 * chunk
    config = attrs.evolve(CONFIG, snapshot_max_chunk_size=chunk)
    with trio.fail_after(LIMIT):
        async with standalone(2) as node, open_tcp_network(1, config) as factory:
            client = await factory.new_client(2, Node(node.addr))
            resp = await client.full_snapshot(Vote(leader, committed=True), snapshot, TTL)
            assert resp.vote == Vote(leader, committed=True)
            assert factory.stats.calls == math.ceil(len(snapshot.data) / chunk)
            m = await node.raft.wait(5).snapshot_index_at_least(101)
            assert m.snapshot == LogId(leader, 101)
            assert node.state_machine.data == source.data
            assert node.stats.error_replies == 0


async def test_learner_catches_up_through_a_chunked_snapshot_over_tcp() -> None:
    config = attrs.evolve(
        CONFIG, snapshot_policy=50, max_in_snapshot_log_to_keep=0, snapshot_max_chunk_size=1024
    )
    with trio.fail_after(LIMIT):
        async with open_tcp_cluster(3, config=config) as c:
            leader = await c.leader()
            last = 0
            for base in range(0, 300, 100):
                resps = await leader.raft.client_write_many(
                    [Set(f"k{i}", "v" * 40) for i in range(base, base + 100)]
                )
                last = resps[-1].log_id.index
            m = await leader.raft.wait(10).metrics(
                lambda m: m.purged is not None and m.purged.index > 200, "logs purged"
            )
            learner = await c.start(4)
            await leader.raft.add_learner(4, Node(learner.addr), blocking=True)
            await learner.raft.wait(10).applied_index_at_least(last)
            m = learner.raft.metrics
            assert m.snapshot is not None  # the state came by snapshot, not by replay from 0
            snap = await leader.state_machine.get_current_snapshot()
            assert snap is not None
            assert len(snap.data) > 10 * 1024  # so it travelled as many chunks
            assert learner.stats.requests > len(snap.data) // 1024
            assert learner.stats.error_replies == 0
            assert learner.state_machine.data == leader.state_machine.data
            r = await leader.raft.client_write(Set("after", 1))  # replication goes on
            await learner.raft.wait(10).applied_index_at_least(r.log_id.index)
            assert learner.state_machine.get("after") == 1


# -- handshake refusal ---------------------------------------------------------------------------


async def test_handshake_refused_for_another_cluster_or_the_wrong_node() -> None:
    with trio.fail_after(LIMIT):
        async with standalone(2) as node:
            other = attrs.evolve(CONFIG, cluster_name="another-cluster")
            async with open_tcp_network(1, other) as factory:
                client = await factory.new_client(2, Node(node.addr))
                with pytest.raises(raft.Unreachable, match="cluster"):
                    await client.vote(vote_req(), TTL)
            assert node.stats.handshakes_refused == 1
            async with open_tcp_network(1, CONFIG) as factory:
                # Dial node 2's address believing it is node 3.
                client = await factory.new_client(3, Node(node.addr))
                with pytest.raises(raft.Unreachable, match="node 3"):
                    await client.vote(vote_req(), TTL)
                assert node.stats.handshakes_refused == 2
                # The same factory reaches node 2 under its right id.
                right = await factory.new_client(2, Node(node.addr))
                assert (await right.vote(vote_req(), TTL)).vote_granted
            # A node cannot be its own peer.
            async with open_tcp_network(2, CONFIG) as factory:
                client = await factory.new_client(2, Node(node.addr))
                with pytest.raises(raft.Unreachable):
                    await client.vote(vote_req(), TTL)
            assert node.stats.handshakes_refused == 3
            await wait_until(lambda: node.stats.connections_open == 0, "connections closed")
            assert node.stats.connections_accepted == 4


async def test_client_refuses_a_server_that_is_not_the_node_it_dialled() -> None:
    async def impostor(stream: trio.SocketStream) -> None:
        await answer_hello(stream, node_id=7)  # accepts, but says it is node 7
        while await stream.receive_some(65536):
            pass

    with trio.fail_after(LIMIT):
        async with fake_server(impostor) as addr, open_tcp_network(1, CONFIG) as factory:
            assert isinstance(factory, TcpNetworkFactory)
            client = await factory.new_client(2, Node(addr))
            with pytest.raises(raft.Unreachable, match="expected node 2, found node 7"):
                await client.vote(vote_req(), TTL)
            assert factory.stats.connect_failures == 1


@pytest.mark.parametrize("field", ["snapshot_max_chunk_size", "max_entry_bytes", "max_payload_bytes"])
async def test_the_factory_refuses_limits_that_do_not_fit_in_a_frame(field: str) -> None:
    small = 64 * 1024
    fits = {"snapshot_max_chunk_size": small, "max_entry_bytes": small, "max_payload_bytes": small}
    config = attrs.evolve(CONFIG, **(fits | {field: 2 * 1024 * 1024}))
    with pytest.raises(ValueError, match=field):
        async with open_tcp_network(1, config, max_frame_size=1024 * 1024):
            pass
