"""The batteries served over TCP (``serve --object``): their typed replies travel through
the codec, and the server stamps the lease times."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import pytest
import trio

import openraft_trio as raft
from openraft_trio.kv import KvNodeOptions, serve_kv_node
from openraft_trio.objects import ReplicatedMethodError, open_object_client
from openraft_trio.objects.batteries import Acquired, FifoQueue, Held, LockService

from ..network._tcp_nodes import free_port

CLUSTER = "batteries-tcp"


@asynccontextmanager
async def served(cls: type[Any]) -> AsyncIterator[Any]:
    """A one-node cluster serving battery ``cls`` on loopback, and a client of it."""
    addr = f"127.0.0.1:{free_port()}"
    options = KvNodeOptions(
        node_id=1,
        listen=addr,
        data_dir=None,
        config=raft.Config(cluster_name=CLUSTER),
        object_spec=f"openraft_trio.objects.batteries:{cls.__name__}",
    )
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await nursery.start(partial(serve_kv_node, options))
            async with open_object_client([addr], cls, cluster_name=CLUSTER) as client:
                await client.kv.init({1: addr})
                yield client
            nursery.cancel_scope.cancel()


async def test_a_lock_service_over_tcp() -> None:
    async with served(LockService) as locks:
        before = time.time()
        granted = await locks.acquire("L", "a", 30.0)
        assert isinstance(granted, Acquired)
        assert before + 30.0 <= granted.expires_at <= time.time() + 30.0
        assert await locks.acquire("L", "b", 30.0) == Held("a", granted.expires_at)
        assert await locks.owner("L") == Held("a", granted.expires_at)
        with pytest.raises(ReplicatedMethodError, match="ValueError: lease_seconds"):
            await locks.acquire("M", "a", -1)
        assert await locks.release("L", "a", granted.token) is True
        again = await locks.acquire("L", "b", 30.0)
        assert isinstance(again, Acquired)
        assert again.token > granted.token


async def test_a_queue_over_tcp() -> None:
    async with served(FifoQueue) as jobs:
        assert await jobs.put([1, "x"]) == 1
        assert await jobs.peek() == [1, "x"]
        assert await jobs.get() == [1, "x"]
        assert await jobs.get() is None
