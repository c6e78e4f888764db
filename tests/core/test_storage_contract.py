"""A store that breaks the storage contract stops the node with a typed error (fail-stop),
never a bare RuntimeError escaping ``open_raft``."""

from __future__ import annotations

import pytest

import openraft_trio as raft
from openraft_trio.kv import KvStateMachine, Set
from openraft_trio.storage import MemLogStore
from openraft_trio.testing import Router


class HoleyLogStore(MemLogStore):
    """Breaks "the log never has holes": once ``lose_from`` is set, entries from that index
    on are missing from reads (the store wrote them, then lost them)."""

    def __init__(self) -> None:
        super().__init__()
        self.lose_from: int | None = None

    async def try_get_log_entries(self, start: int, stop: int) -> list[raft.Entry]:
        entries = await super().try_get_log_entries(start, stop)
        if self.lose_from is None:
            return entries
        return [entry for entry in entries if entry.index < self.lose_from]


async def test_entries_missing_when_applying_stop_the_node_with_a_contract_violation(
    autojump_clock,
):
    router = Router()
    store = HoleyLogStore()
    async with raft.open_raft(
        1,
        raft.Config(),
        network=router.factory(1),
        log_store=store,
        state_machine=KvStateMachine(),
    ) as node:
        router.add(1, node)
        await node.initialize({1: raft.Node("n1")})
        await node.wait(5).state(raft.ServerState.LEADER)
        first = await node.client_write(Set("a", 1))
        store.lose_from = first.log_id.index + 1
        # The next write is logged, committed, then cannot be read back to apply.
        with pytest.raises(raft.StorageContractViolation, match="missing"):
            await node.client_write(Set("b", 2))
        assert isinstance(node.fatal_error, raft.StorageContractViolation)
        assert isinstance(node.fatal_error, raft.StorageError)
        await node.wait(5).state(raft.ServerState.SHUTDOWN)
        with pytest.raises(raft.StorageContractViolation):
            await node.client_write(Set("c", 3))


async def test_entries_purged_without_a_snapshot_stop_the_leader_with_a_contract_violation(
    autojump_clock,
):
    router = Router()
    store = MemLogStore()
    async with (
        raft.open_raft(
            1,
            raft.Config(),
            network=router.factory(1),
            log_store=store,
            state_machine=KvStateMachine(),
        ) as leader,
        raft.open_raft(
            2,
            raft.Config(),
            network=router.factory(2),
            log_store=MemLogStore(),
            state_machine=KvStateMachine(),
        ) as learner,
    ):
        router.add(1, leader)
        router.add(2, learner)
        await leader.initialize({1: raft.Node("n1")})
        await leader.wait(5).state(raft.ServerState.LEADER)
        written = await leader.client_write(Set("a", 1))
        # Breaks "purge drops only entries a snapshot covers": there is no snapshot.
        await store.purge(written.log_id)
        await leader.add_learner(2, raft.Node("n2"), blocking=False)
        # Replication to the new learner needs the purged entries and finds no snapshot.
        await leader.wait(5).state(raft.ServerState.SHUTDOWN)
        assert isinstance(leader.fatal_error, raft.StorageContractViolation)
        assert "no snapshot" in str(leader.fatal_error)
        with pytest.raises(raft.StorageContractViolation):
            await leader.client_write(Set("b", 2))
        # Only the leader stopped.
        assert learner.fatal_error is None
