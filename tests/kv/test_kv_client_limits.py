"""KvClient and the KV service with values over the limits (issue 11, defect 6), against
a live node on loopback (real clock, bounded by ``trio.fail_after``).

* a value over the node's ``Config.max_entry_bytes`` is refused by the node, before
  anything is logged, and the client raises ``PayloadTooLarge`` (not ``AmbiguousOutcome``);
* a request whose frame would exceed the transport's ``max_frame_size`` is refused by the
  client before anything is sent (it used to kill the connection and report
  ``AmbiguousOutcome``).
"""

from __future__ import annotations

from functools import partial

import pytest
import trio

import openraft_trio as raft
from openraft_trio.kv import KvNode, KvNodeOptions, open_kv_client, serve_kv_node
from openraft_trio.network._frames import DEFAULT_MAX_FRAME_SIZE

from ..network._tcp_nodes import free_port

LIMIT = 60


async def test_kv_client_gets_payload_too_large_not_ambiguous_outcome() -> None:
    config = raft.Config(cluster_name="kv-limits")
    addr = f"127.0.0.1:{free_port()}"
    options = KvNodeOptions(node_id=1, listen=addr, data_dir=None, config=config)
    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            node: KvNode = await nursery.start(partial(serve_kv_node, options))
            async with open_kv_client([addr], cluster_name="kv-limits") as kv:
                await kv.init({1: addr})
                await kv.put("k", "small")
                before = node.raft.metrics.last_log_index
                # Over the node's max_entry_bytes (1 MiB by default): refused by the node.
                with pytest.raises(raft.PayloadTooLarge) as info:
                    await kv.put("k", b"x" * (2 * 1024 * 1024))
                assert info.value.limit == config.max_entry_bytes
                assert str(config.max_entry_bytes) in str(info.value)
                assert len(str(info.value)) < 1024
                # Over the transport's frame limit: refused by the client, nothing sent.
                with pytest.raises(raft.PayloadTooLarge) as info:
                    await kv.put("k", b"y" * (70 * 1000 * 1000))
                assert info.value.limit == DEFAULT_MAX_FRAME_SIZE
                assert str(DEFAULT_MAX_FRAME_SIZE) in str(info.value)
                assert len(str(info.value)) < 1024
                assert node.raft.metrics.last_log_index == before
                # The node and the connection keep working.
                await kv.put("k", "after")
                assert await kv.get("k") == "after"
                assert node.server.stats.broken_connections == 0
            nursery.cancel_scope.cancel()
