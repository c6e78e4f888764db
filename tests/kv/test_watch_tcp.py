"""KvClient.watch against a live node on loopback (real clock, bounded by
``trio.fail_after``): the ``watch`` op on the wire, the long poll within the client's
``rpc_timeout``, and ``WatchCompacted`` rebuilt from the error reply's detail."""

from __future__ import annotations

from functools import partial

import pytest
import trio

import openraft_trio as raft
from openraft_trio.kv import (
    ChangeKind,
    KvNode,
    KvNodeOptions,
    WatchCompacted,
    WatchEvent,
    open_kv_client,
    serve_kv_node,
)

from ..network._tcp_nodes import free_port

LIMIT = 60


async def test_a_watch_over_tcp_streams_changes_and_reports_compaction() -> None:
    config = raft.Config(cluster_name="kv-watch")
    addr = f"127.0.0.1:{free_port()}"
    options = KvNodeOptions(node_id=1, listen=addr, data_dir=None, config=config, watch_history=3)
    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            node: KvNode = await nursery.start(partial(serve_kv_node, options))
            async with open_kv_client([addr], cluster_name="kv-watch", rpc_timeout=0.4) as kv:
                await kv.init({1: addr})
                await kv.put("a", {"x": [1, b"\x00"]})
                start = node.state_machine.last_applied
                assert start is not None
                watch = kv.watch("a", from_index=start.index)
                first = await watch.__anext__()
                assert first == WatchEvent(start.index, "a", ChangeKind.PUT, {"x": [1, b"\x00"]})
                # Several empty long polls (0.2 s each, inside the 0.4 s rpc_timeout), then a
                # change that arrives while one waits.
                async with trio.open_nursery() as writers:

                    async def later() -> None:
                        await trio.sleep(0.7)
                        await kv.delete("a")

                    writers.start_soon(later)
                    second = await watch.__anext__()
                assert (second.index, second.kind) == (start.index + 1, ChangeKind.DELETE)
                assert watch.next_index == start.index + 2
                # Three more changes evict the first two from the node's history of 3.
                for value in range(3):
                    await kv.put("b", value)
                with pytest.raises(WatchCompacted) as info:
                    await kv.watch("", from_index=start.index).__anext__()
                assert info.value.from_index == start.index
                assert info.value.oldest_index == start.index + 2
                assert node.server.stats.broken_connections == 0
            nursery.cancel_scope.cancel()
