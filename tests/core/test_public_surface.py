"""The runtime's public classes: users get a ``Raft`` from ``open_raft`` only, and the
classes they must not subclass are final."""

from __future__ import annotations

import pytest

import openraft_trio as raft
from openraft_trio._core.trigger import Trigger
from openraft_trio._core.wait import Wait
from openraft_trio.kv import KvStateMachine
from openraft_trio.storage import MemLogStore
from openraft_trio.testing import Router


def test_raft_has_no_public_constructor() -> None:
    with pytest.raises(TypeError, match="open_raft"):
        raft.Raft()
    with pytest.raises(TypeError, match="no public constructor"):
        raft.Raft(node_id=1, config=raft.Config())


@pytest.mark.parametrize("cls", [raft.Raft, raft.RuntimeConfig, Trigger, Wait])
def test_runtime_classes_are_final(cls: type) -> None:
    assert getattr(cls, "__final__", False) is True


async def test_open_raft_hands_out_the_handle(autojump_clock) -> None:
    async with raft.open_raft(
        1,
        raft.Config(),
        network=Router().factory(1),
        log_store=MemLogStore(),
        state_machine=KvStateMachine(),
    ) as node:
        assert type(node) is raft.Raft
        assert node.node_id == 1
