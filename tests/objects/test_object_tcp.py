"""A replicated object served over TCP (``serve --object``) and called with
``ObjectClient``, on loopback: three nodes in this process, then as real processes."""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path

import pytest
import trio

import openraft_trio as raft
from openraft_trio.kv import KvNode, KvNodeOptions, serve_kv_node
from openraft_trio.objects import (
    BadArgumentsError,
    ReplicatedMethodError,
    UnknownMethodError,
    open_object_client,
)
from openraft_trio.testing.processes import open_process_cluster

from ..network._tcp_nodes import free_port
from ._objects import Account, Counter

LIMIT = 60
CONFIG = raft.Config(cluster_name="objects-tcp")


async def test_an_object_served_by_three_nodes_over_loopback() -> None:
    addrs = {n: f"127.0.0.1:{free_port()}" for n in (1, 2, 3)}
    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            nodes: dict[int, KvNode] = {}
            for node_id, addr in addrs.items():
                options = KvNodeOptions(
                    node_id=node_id,
                    listen=addr,
                    data_dir=None,
                    peers=addrs,
                    config=CONFIG,
                    object_spec="tests.objects._objects:Counter",
                )
                nodes[node_id] = await nursery.start(partial(serve_kv_node, options))
            async with open_object_client(
                addrs.values(), Counter, cluster_name="objects-tcp"
            ) as counter:
                await counter.kv.init()
                before = time.time()
                assert await counter.add(5) == 5
                assert await counter.call("add", n=2) == 7
                assert await counter.get() == 7
                # The server stamped the call's time when it received it.
                stamped_time, stamped_index = await counter.stamp()
                assert before <= stamped_time <= time.time()
                assert stamped_index > 3
                with pytest.raises(ReplicatedMethodError, match="ValueError: no"):
                    await counter.fail("no")
                with pytest.raises(BadArgumentsError):
                    await counter.add(1, 2)
                with pytest.raises(UnknownMethodError):
                    await counter.call("nope")
                with pytest.raises(UnknownMethodError):
                    await counter.query("add")
                with pytest.raises(raft.RemoteError, match="no version 2"):
                    await counter.upgrade(2)
                assert await counter.upgrade(1) == 1
                status = await counter.kv.status()
                assert "keys" not in status
                # A key-value op is not served by an object node.
                with pytest.raises(raft.RemoteError, match="unknown operation 'put'"):
                    await counter.kv.call(addrs[1], "put", "k", "v")
            leader = next(
                n for n, node in nodes.items() if node.raft.metrics.state == raft.ServerState.LEADER
            )
            await nodes[leader].raft.wait(10).applied_index_at_least(stamped_index)
            for node in nodes.values():
                await node.raft.wait(10).applied_index_at_least(
                    nodes[leader].raft.metrics.last_applied.index
                )  # type: ignore[union-attr]
            states = [node.state_machine.state() for node in nodes.values()]
            assert states == [states[0]] * 3
            nursery.cancel_scope.cancel()


async def test_version_errors_come_back_over_tcp() -> None:
    addr = f"127.0.0.1:{free_port()}"
    options = KvNodeOptions(
        node_id=1,
        listen=addr,
        data_dir=None,
        config=CONFIG,
        object_spec="tests.objects._wallet_v2:Wallet",
    )
    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            await nursery.start(partial(serve_kv_node, options))
            async with open_object_client([addr], cluster_name="objects-tcp") as wallet:
                await wallet.kv.init({1: addr})
                assert await wallet.call("add", 3) == 3
                with pytest.raises(UnknownMethodError):
                    await wallet.call("reset")
                with pytest.raises(AttributeError, match="give object_class"):
                    wallet.add  # noqa: B018
                assert await wallet.upgrade(2) == 2
                assert await wallet.call("add", 3) == 7
                assert await wallet.query("get") == 7
            nursery.cancel_scope.cancel()


async def test_durable_object_nodes_as_processes_survive_restarts(tmp_path: Path) -> None:
    with trio.fail_after(2 * LIMIT):
        async with open_process_cluster(
            3,
            base_dir=str(tmp_path),
            cluster_name="objects-processes",
            object_spec="tests.objects._objects:Account",
            extra_args=["--snapshot-every", "4", "--keep-logs", "1"],
        ) as cluster:
            await cluster.initialize()
            async with cluster.object_client() as bank:
                assert await bank.call("deposit", "ann", 10) == 10
                assert await bank.call("transfer", "ann", "bob", 11) is False
                for _ in range(4):
                    assert await bank.call("transfer", "ann", "bob", 1) is True
            # Snapshots were built and the log purged behind them: a restart of every
            # node restores the object from its snapshot files, then replays the rest.
            await cluster.wait_converged()
            statuses = await cluster.statuses()
            assert all((s["purged"] or 0) > 0 for s in statuses.values()), statuses
            await cluster.stop_all()
            for node_id in cluster.nodes:
                await cluster.start(node_id, wait=False)
            for node_id in cluster.nodes:
                await cluster.wait_ready(node_id)
            await cluster.wait_converged()
            async with cluster.object_client(Account) as bank:
                assert [await bank.balance(p) for p in ("ann", "bob")] == [6, 4]
                assert await bank.deposit("cy", 1) == 1


async def test_serve_object_applies_the_session_timeout(tmp_path: Path) -> None:
    for data_dir in (None, str(tmp_path / "node")):
        options = KvNodeOptions(
            node_id=1,
            listen=f"127.0.0.1:{free_port()}",
            data_dir=data_dir,
            config=CONFIG,
            object_spec="tests.objects._objects:Counter",
            session_timeout=7.0,
        )
        with trio.fail_after(LIMIT):
            async with trio.open_nursery() as nursery:
                node: KvNode = await nursery.start(partial(serve_kv_node, options))
                assert node.state_machine.sessions.timeout == 7.0
                nursery.cancel_scope.cancel()
