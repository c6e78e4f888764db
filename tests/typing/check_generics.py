"""Checked by mypy (``test_generics.py``), never run: the types a user's code sees.

``open_raft`` infers the node's command and reply types from its state machine, so a
typed state machine gets a typed ``Raft`` and typed ``ClientWriteResponse.data``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, assert_type

import attrs

import openraft_trio as raft
from openraft_trio.kv import CompareAndSwap, Delete, Get, Increment, KvStateMachine, Set
from openraft_trio.storage import MemLogStore, RaftStateMachine
from openraft_trio.testing import Router

CONFIG = raft.Config(cluster_name="typed")


@attrs.frozen
class Deposit:
    account: str
    amount: int


@attrs.frozen
class Receipt:
    balance: int


class Bank:
    """A user's state machine with typed commands and replies."""

    def __init__(self) -> None:
        self.balances: dict[str, int] = {}
        self.applied: raft.LogId | None = None
        self.membership = raft.StoredMembership(None, raft.Membership([], {}))

    async def applied_state(self) -> tuple[raft.LogId | None, raft.StoredMembership]:
        return self.applied, self.membership

    async def apply(self, entries: Sequence[raft.Entry[Deposit]]) -> list[Receipt | None]:
        replies: list[Receipt | None] = []
        for entry in entries:
            payload = entry.payload
            if isinstance(payload, raft.Normal):
                deposit = payload.data
                assert_type(deposit, Deposit)
                balance = self.balances.get(deposit.account, 0) + deposit.amount
                self.balances[deposit.account] = balance
                replies.append(Receipt(balance))
            else:
                replies.append(None)
        return replies

    async def build_snapshot(self) -> raft.Snapshot:
        raise NotImplementedError

    async def install_snapshot(self, meta: raft.SnapshotMeta, data: bytes) -> None:
        raise NotImplementedError

    async def get_current_snapshot(self) -> raft.Snapshot | None:
        return None


async def typed_state_machine(router: Router) -> None:
    bank: RaftStateMachine[Deposit, Receipt | None] = Bank()
    async with raft.open_raft(
        1, CONFIG, network=router.factory(1), log_store=MemLogStore(), state_machine=Bank()
    ) as node:
        assert_type(node, raft.Raft[Deposit, Receipt | None])
        response = await node.client_write(Deposit("alice", 10))
        assert_type(response, raft.ClientWriteResponse[Receipt | None])
        assert_type(response.data, Receipt | None)
        assert_type(response.log_id, raft.LogId)
        many = await node.client_write_many([Deposit("alice", 1), Deposit("bob", 2)])
        assert_type(many, list[raft.ClientWriteResponse[Receipt | None]])
        outcomes = await node.client_write_many([Deposit("bob", 3)], return_exceptions=True)
        assert_type(outcomes, list[raft.ClientWriteResponse[Receipt | None] | raft.RaftError])
        joined = await node.change_membership({1})
        assert_type(joined, raft.ClientWriteResponse[Receipt | None])
        # A command of another type is refused (the ignore would be unused otherwise, which
        # strict mypy reports).
        await node.client_write("not a deposit")  # type: ignore[arg-type]
    async with raft.open_raft(
        2, CONFIG, network=router.factory(2), log_store=MemLogStore(), state_machine=bank
    ) as node:
        assert_type(node, raft.Raft[Deposit, Receipt | None])


async def kv_state_machine(router: Router) -> None:
    async with raft.open_raft(
        1, CONFIG, network=router.factory(1), log_store=MemLogStore(), state_machine=KvStateMachine()
    ) as node:
        assert_type(node, raft.Raft[Set | Delete | CompareAndSwap | Increment | Get, Any])
        response = await node.client_write(Set("k", "v"))
        assert_type(response, raft.ClientWriteResponse[Any])
        await node.client_write(Delete("k"))
        await node.client_write({"not": "a kv request"})  # type: ignore[arg-type]


class Untyped:
    """A state machine without annotations on its data: everything stays ``Any``."""

    async def applied_state(self) -> tuple[raft.LogId | None, raft.StoredMembership]:
        raise NotImplementedError

    async def apply(self, entries: Sequence[raft.Entry]) -> list[Any]:
        return [None for _ in entries]

    async def build_snapshot(self) -> raft.Snapshot:
        raise NotImplementedError

    async def install_snapshot(self, meta: raft.SnapshotMeta, data: bytes) -> None:
        raise NotImplementedError

    async def get_current_snapshot(self) -> raft.Snapshot | None:
        return None


async def untyped_state_machine(router: Router) -> None:
    async with raft.open_raft(
        1, CONFIG, network=router.factory(1), log_store=MemLogStore(), state_machine=Untyped()
    ) as node:
        assert_type(node, raft.Raft[Any, Any])
        response = await node.client_write(object())
        assert_type(response.data, Any)


def generic_values() -> None:
    entry = raft.Entry(raft.LogId(raft.LeaderId(1, 1), 1), raft.Normal(Deposit("a", 1)))
    assert_type(entry, raft.Entry[Deposit])
    bare: raft.Entry = entry  # a bare Entry is an Entry of any data
    assert_type(bare.payload, raft.Blank | raft.Normal[Any] | raft.MembershipChange)
    assert_type(raft.Normal.from_encoded(b"").data, Any)
