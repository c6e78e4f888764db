"""A ``KvClient`` whose calls reach the ``KvService`` of nodes of an in-process test
cluster (``openraft_trio.testing.open_cluster``) instead of TCP, so the client's routing,
retries and watches run under MockClock.

The stand-in for the transport keeps what the client sees of it: a stopped node is
unreachable (``Unreachable``: not connected, nothing sent), an error comes back as ``RemoteError`` carrying the error
reply the TCP server would send (``network._server.error_reply``), a call not answered
within ``rpc_timeout`` raises ``RPCTimeout``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio

from openraft_trio import RaftError, RemoteError, RPCTimeout, Unreachable
from openraft_trio.kv import KvClient, KvService
from openraft_trio.network._server import error_reply
from openraft_trio.objects import ObjectService, ObjectStateMachine
from openraft_trio.testing import Cluster


def address(node_id: int) -> str:
    """The client address of node ``node_id`` (the cluster's membership says ``node-N``)."""
    return f"127.0.0.1:{7000 + node_id}"


def node_of(addr: str) -> int:
    if addr.startswith("node-"):
        return int(addr.removeprefix("node-"))
    return int(addr.rsplit(":", 1)[1]) - 7000


def service(cluster: Cluster, node_id: int) -> KvService:
    """The client API of ``node_id`` as it runs now (a restart makes a new one); a
    replicated object's operations when the node runs an ``ObjectStateMachine``."""
    raft, state_machine = cluster.nodes[node_id], cluster.state_machines[node_id]
    objects = isinstance(state_machine, ObjectStateMachine)
    return KvService(
        raft,
        state_machine,
        addr=address(node_id),
        peers={},
        transport_stats=dict,
        clock=trio.current_time,  # session entries stamped with the (mock) clock
        data_ops=(
            ObjectService(raft, state_machine, clock=trio.current_time).ops() if objects else None
        ),
    )


@asynccontextmanager
async def open_in_process_client(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch, **kwargs: Any
) -> AsyncIterator[KvClient]:
    """A ``KvClient`` of every node of ``cluster``, its calls made in-process."""
    async with trio.open_nursery() as nursery:
        client = KvClient(nursery, [address(n) for n in cluster.node_ids], **kwargs)

        async def call(addr: str, op: str, *args: Any) -> Any:
            node_id = node_of(addr)
            if node_id not in cluster.nodes:
                raise Unreachable(f"{addr}: node {node_id} is not running")
            with trio.move_on_after(client.rpc_timeout):
                try:
                    return await service(cluster, node_id).handle(op, list(args))
                except RaftError as e:
                    reply = error_reply(e)
                    raise RemoteError(f"{addr}: {reply.error_type}: {reply.message}", reply) from e
            raise RPCTimeout(f"{op} to {addr}: no reply within {client.rpc_timeout}s")

        monkeypatch.setattr(client, "call", call)
        yield client
        nursery.cancel_scope.cancel()
