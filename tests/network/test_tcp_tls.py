"""Mutual TLS on the TCP transport, with certificates from ``trustme``: a cluster on TLS
works; a peer with a certificate from another CA, without a certificate, or speaking
plaintext cannot connect (``Unreachable``) and the server counts a broken connection."""

from __future__ import annotations

import ssl
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import attrs
import pytest
import trio
import trustme

import openraft_trio as raft
from openraft_trio import LeaderId, Node, RPCOption, Vote, VoteRequest
from openraft_trio.kv import Set
from openraft_trio.network.tcp import client_ssl_context, open_tcp_network, server_ssl_context

from ._tcp_nodes import FAILURES, TcpCluster, open_tcp_cluster, wait_until

LIMIT = 20
TTL = RPCOption(hard_ttl=5.0)


@attrs.frozen
class Pki:
    ca: str
    cert: str
    key: str


def issue(ca: trustme.CA, directory: Path, name: str) -> Pki:
    cert = ca.issue_cert("127.0.0.1")
    paths = Pki(
        str(directory / f"{name}-ca.pem"),
        str(directory / f"{name}.pem"),
        str(directory / f"{name}.key"),
    )
    ca.cert_pem.write_to_path(paths.ca)
    cert.cert_chain_pems[0].write_to_path(paths.cert)
    cert.private_key_pem.write_to_path(paths.key)
    return paths


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[Pki, Pki]:
    """The cluster's CA and node certificate, and those of an unrelated CA."""
    directory = tmp_path_factory.mktemp("pki")
    return issue(trustme.CA(), directory, "cluster"), issue(trustme.CA(), directory, "other")


def tls_cluster(p: Pki) -> AbstractAsyncContextManager[TcpCluster]:
    return open_tcp_cluster(
        3,
        server_ssl=server_ssl_context(p.ca, p.cert, p.key),
        client_ssl=client_ssl_context(p.ca, p.cert, p.key),
    )


def vote_req() -> VoteRequest:
    return VoteRequest(Vote(LeaderId(0, 99)), None, pre_vote=True)


async def test_cluster_on_mutual_tls_elects_and_commits(pki: tuple[Pki, Pki]) -> None:
    with trio.fail_after(LIMIT):
        async with tls_cluster(pki[0]) as c:
            leader = await c.leader()
            resps = await leader.raft.client_write_many([Set(f"k{i}", i) for i in range(30)])
            await c.wait_applied(resps[-1].log_id.index)
            for node in c.nodes.values():
                assert isinstance(node.server.listeners[0], trio.SSLListener)
                assert node.state_machine.data == {f"k{i}": i for i in range(30)}
                assert node.stats.broken_connections == 0
                assert node.network.stats.connect_failures == 0


async def _refused(c: TcpCluster, context: ssl.SSLContext | None) -> None:
    """A peer with ``context`` (None: plaintext) cannot reach node 2; node 2 counts one
    broken connection and nothing else; the cluster keeps committing."""
    target = c.nodes[2]
    before = attrs.asdict(target.stats)
    async with open_tcp_network(1, c.config, ssl_context=context) as factory:
        client = await factory.new_client(2, Node(target.addr))
        with pytest.raises(raft.Unreachable):
            await client.vote(vote_req(), TTL)
        assert factory.stats.connects == 0
        assert factory.stats.connect_failures == 1
    await wait_until(
        lambda: target.stats.connections_open == before["connections_open"], "connection gone"
    )
    after = attrs.asdict(target.stats)
    assert after["connections_accepted"] == before["connections_accepted"] + 1
    for name in FAILURES:
        assert after[name] == before[name] + (name == "broken_connections"), (name, after)
    await c.assert_commits()


async def test_peer_with_a_certificate_from_another_ca_cannot_connect(
    pki: tuple[Pki, Pki],
) -> None:
    cluster, other = pki
    with trio.fail_after(LIMIT):
        async with tls_cluster(cluster) as c:
            # Trusts the cluster CA (so it accepts the server) but presents a foreign cert.
            await _refused(c, client_ssl_context(cluster.ca, other.cert, other.key))
            # Entirely from the other CA: it does not accept the server either.
            await _refused(c, client_ssl_context(other.ca, other.cert, other.key))


async def test_peer_without_a_client_certificate_cannot_connect(pki: tuple[Pki, Pki]) -> None:
    cluster = pki[0]
    with trio.fail_after(LIMIT):
        async with tls_cluster(cluster) as c:
            await _refused(c, ssl.create_default_context(cafile=cluster.ca))


async def test_plaintext_peer_cannot_connect_to_a_tls_server(pki: tuple[Pki, Pki]) -> None:
    with trio.fail_after(LIMIT):
        async with tls_cluster(pki[0]) as c:
            await _refused(c, None)


async def test_tls_peer_cannot_connect_to_a_plaintext_server(pki: tuple[Pki, Pki]) -> None:
    cluster = pki[0]
    with trio.fail_after(LIMIT):
        async with open_tcp_cluster(3) as c:
            target = c.nodes[2]
            before = target.stats.bad_frames
            context = client_ssl_context(cluster.ca, cluster.cert, cluster.key)
            async with open_tcp_network(1, c.config, ssl_context=context) as factory:
                client = await factory.new_client(2, Node(target.addr))
                with pytest.raises(raft.Unreachable):
                    await client.vote(vote_req(), TTL)
            # A TLS ClientHello's first bytes read as a length far over the limit.
            await wait_until(lambda: target.stats.bad_frames == before + 1, "bad frame counted")
            await c.assert_commits()
