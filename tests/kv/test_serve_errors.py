"""``serve_kv_node`` raises its start-up errors as themselves (its docstring's
``OSError``, ``DataDirError``), not wrapped in the ``ExceptionGroup``s of the nurseries
inside it (docs/guide.md, "Errors out of ``async with``")."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import trio

import openraft_trio as raft
from openraft_trio.kv import DataDirError, KvNodeOptions, serve_kv_node

CONFIG = raft.Config(cluster_name="serve-errors")


async def test_an_address_in_use_raises_os_error_itself() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        options = KvNodeOptions(
            node_id=1, listen=f"127.0.0.1:{port}", data_dir=None, config=CONFIG
        )
        async with trio.open_nursery() as nursery:
            with pytest.raises(OSError, match="in use"):
                await nursery.start(serve_kv_node, options)


async def test_another_nodes_data_dir_raises_data_dir_error_itself(tmp_path: Path) -> None:
    (tmp_path / "node-id").write_text("serve-errors\n2\n")
    options = KvNodeOptions(
        node_id=1, listen="127.0.0.1:1", data_dir=str(tmp_path), config=CONFIG
    )
    async with trio.open_nursery() as nursery:
        with pytest.raises(DataDirError):
            await nursery.start(serve_kv_node, options)
