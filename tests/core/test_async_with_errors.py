"""What comes out of ``async with open_raft(...)`` and the library's other ``async with``
resources (docs/guide.md, "Errors out of ``async with``"):

* an exception raised by the body comes out as itself (the same object, with its
  traceback, ``__cause__`` and ``__context__``), not wrapped in ``ExceptionGroup``s, and
  cancellation (a cancel scope around the block, ``KeyboardInterrupt``) works as in trio;
* a node task that fails (a bug, here in the state machine) cancels the body and comes out
  as ``Fatal``, chained from what the task raised;
* a body error together with a task failure stays a group holding both.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing

import openraft_trio as raft
from openraft_trio.kv import KvStateMachine, Set, open_kv_client
from openraft_trio.network.tcp import open_tcp_network
from openraft_trio.storage import MemLogStore, open_file_log_store, run_inline
from openraft_trio.testing import Router, open_cluster
from openraft_trio.testing.crashfs import CrashFS
from openraft_trio.testing.processes import open_process_cluster

CONFIG = raft.Config(cluster_name="test")


class BodyError(Exception):
    """What the test bodies raise."""


class Bug(Exception):
    """What a broken state machine raises."""


class CrashingStateMachine(KvStateMachine):
    """A state machine with a bug: ``apply`` raises."""

    async def apply(self, entries: Sequence[raft.Entry]) -> list[Any]:
        raise Bug("apply is broken")


def leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for sub in exc.exceptions for leaf in leaves(sub)]
    return [exc]


def innermost_frame(exc: BaseException) -> str:
    tb = exc.__traceback__
    assert tb is not None
    while tb.tb_next is not None:
        tb = tb.tb_next
    return tb.tb_frame.f_code.co_name


@asynccontextmanager
async def one_node(
    *, data_dir: str | None = None, state_machine: KvStateMachine | None = None
) -> AsyncIterator[raft.Raft]:
    """``open_raft`` of node 1 on a ``Router`` (one node: it never sends an RPC, so the
    router needs no nursery of the test's, which would wrap what the block raises)."""
    router = Router(0)
    store: dict[str, Any] = (
        {"data_dir": data_dir} if data_dir is not None else {"log_store": MemLogStore()}
    )
    async with raft.open_raft(
        1,
        CONFIG,
        network=router.factory(1),
        state_machine=state_machine if state_machine is not None else KvStateMachine(),
        **store,
    ) as node:
        router.add(1, node)
        yield node


# -- open_raft -------------------------------------------------------------------------------


@pytest.mark.parametrize("durable", [False, True], ids=["mem", "data_dir"])
async def test_forward_to_leader_from_the_body_comes_out_as_itself(
    autojump_clock: Any, tmp_path: Any, durable: bool
) -> None:
    raised: list[BaseException] = []

    async def write_on_a_node_that_does_not_lead(node: raft.Raft) -> None:
        try:
            await node.client_write(Set("a", 1))
        except raft.ForwardToLeader as e:
            raised.append(e)
            raise

    async def block() -> None:
        async with one_node(data_dir=str(tmp_path) if durable else None) as node:
            await write_on_a_node_that_does_not_lead(node)

    with pytest.raises(raft.ForwardToLeader) as info:
        await block()
    assert type(info.value) is raft.ForwardToLeader
    assert info.value is raised[0]
    # The traceback still reaches where it was raised, through the body.
    assert innermost_frame(info.value) == "leading"  # in the Engine
    assert any(entry.name == "write_on_a_node_that_does_not_lead" for entry in info.traceback)


async def test_the_cause_and_context_of_a_body_error_are_kept(autojump_clock: Any) -> None:
    cause = KeyError("cause")
    context = ValueError("context")
    original = BodyError("body")

    async def block() -> None:
        async with one_node():
            try:
                raise context
            except ValueError:
                raise original from cause

    with pytest.raises(BodyError) as info:
        await block()
    assert info.value is original
    assert info.value.__cause__ is cause
    assert info.value.__context__ is context
    assert info.value.__suppress_context__


async def test_a_body_error_without_a_cause_keeps_its_context_shown(autojump_clock: Any) -> None:
    context = ValueError("context")

    async def block() -> None:
        async with one_node():
            try:
                raise context
            except ValueError:
                raise BodyError("body")  # noqa: B904 - the implicit context is the point

    with pytest.raises(BodyError) as info:
        await block()
    assert info.value.__cause__ is None
    assert info.value.__context__ is context
    assert not info.value.__suppress_context__


async def test_an_exception_group_raised_by_the_body_comes_out_as_that_group(
    autojump_clock: Any,
) -> None:
    group = ExceptionGroup("the body's own", [BodyError("a"), BodyError("b")])

    async def block() -> None:
        async with one_node():
            raise group

    with pytest.raises(ExceptionGroup) as info:
        await block()
    assert info.value is group


async def test_keyboard_interrupt_in_the_body_comes_out_as_itself(autojump_clock: Any) -> None:
    interrupt = KeyboardInterrupt()

    async def block() -> None:
        async with one_node():
            raise interrupt

    with pytest.raises(KeyboardInterrupt) as info:
        await block()
    assert info.value is interrupt


async def test_a_cancel_scope_around_the_block_still_works(autojump_clock: Any) -> None:
    with trio.move_on_after(1) as scope:
        async with one_node():
            await trio.sleep_forever()
    assert scope.cancelled_caught
    with trio.CancelScope() as scope:
        async with one_node():
            scope.cancel()
            await trio.sleep(1)
    assert scope.cancelled_caught


async def test_a_failing_node_task_comes_out_as_fatal(autojump_clock: Any) -> None:
    async def block() -> None:
        async with one_node(state_machine=CrashingStateMachine()) as node:
            # Applying the membership entry crashes the state-machine worker, which
            # cancels the body.
            await node.initialize({1: raft.Node("a")})
            await trio.sleep_forever()

    with pytest.raises(raft.Fatal) as info:
        await block()
    assert type(info.value) is raft.Fatal
    assert isinstance(info.value.__cause__, Bug)
    assert "Bug: apply is broken" in str(info.value)


async def test_a_node_task_failing_after_the_body_succeeded_comes_out_as_fatal(
    autojump_clock: Any,
) -> None:
    async def block() -> None:
        async with one_node(state_machine=CrashingStateMachine()) as node:
            await node.initialize({1: raft.Node("a")})
            await trio.testing.wait_all_tasks_blocked()

    with pytest.raises(raft.Fatal) as info:
        await block()
    assert isinstance(info.value.__cause__, Bug)


class SlowToStopStateMachine(KvStateMachine):
    """``apply`` blocks; cancelled, it fails (a bug in cleanup)."""

    def __init__(self) -> None:
        super().__init__()
        self.applying = trio.Event()

    async def apply(self, entries: Sequence[raft.Entry]) -> list[Any]:
        self.applying.set()
        try:
            await trio.sleep_forever()
        finally:
            raise Bug("cleanup is broken")  # the bug under test


async def test_a_body_error_and_a_task_failure_come_out_together_in_a_group(
    autojump_clock: Any,
) -> None:
    sm = SlowToStopStateMachine()
    original = BodyError("body")

    async def block() -> None:
        async with one_node(state_machine=sm) as node:
            await node.initialize({1: raft.Node("a")})
            await sm.applying.wait()
            raise original

    with pytest.raises(BaseExceptionGroup) as info:
        await block()
    found = leaves(info.value)
    assert original in found
    assert any(isinstance(leaf, Bug) for leaf in found)


# -- open_cluster ----------------------------------------------------------------------------


async def test_forward_to_leader_comes_out_of_open_cluster_as_itself(autojump_clock: Any) -> None:
    raised: list[raft.ForwardToLeader] = []
    leaders: list[int] = []

    async def block() -> None:
        async with open_cluster(3, seed=1) as cluster:
            leader = await cluster.wait_for_leader()
            leaders.append(leader)
            follower = cluster.nodes[next(n for n in cluster.node_ids if n != leader)]
            await follower.wait(5).current_leader(leader)
            try:
                await follower.client_write(Set("a", 1))
            except raft.ForwardToLeader as e:
                raised.append(e)
                raise

    with pytest.raises(raft.ForwardToLeader) as info:
        await block()
    assert info.value is raised[0]
    assert info.value.leader_id == leaders[0]


async def test_a_crashing_node_of_open_cluster_comes_out_as_fatal(autojump_clock: Any) -> None:
    async def block() -> None:
        async with open_cluster(1, state_machine_factory=CrashingStateMachine):
            await trio.sleep_forever()

    with pytest.raises(raft.Fatal) as info:
        await block()
    assert isinstance(info.value.__cause__, Bug)


# -- every public ``async with`` resource ----------------------------------------------------


def _file_log_store() -> AbstractAsyncContextManager[Any]:
    return open_file_log_store("/store", fs=CrashFS(), run_io=run_inline)


def _tcp_network() -> AbstractAsyncContextManager[Any]:
    return open_tcp_network(1, CONFIG)


def _kv_client() -> AbstractAsyncContextManager[Any]:
    return open_kv_client(["127.0.0.1:1"])


@asynccontextmanager
async def _process_cluster() -> AsyncIterator[Any]:
    with tempfile.TemporaryDirectory() as base:
        async with open_process_cluster(2, base_dir=os.path.join(base, "c"), start=False) as c:
            yield c


@asynccontextmanager
async def _process_cluster_client() -> AsyncIterator[Any]:
    async with _process_cluster() as cluster, cluster.client() as client:
        yield client


RESOURCES: dict[str, Callable[[], AbstractAsyncContextManager[Any]]] = {
    "open_raft": one_node,
    "open_cluster": lambda: open_cluster(3),
    "open_file_log_store": _file_log_store,
    "open_tcp_network": _tcp_network,
    "open_kv_client": _kv_client,
    "open_process_cluster": _process_cluster,
    "ProcessCluster.client": _process_cluster_client,
}


@pytest.mark.parametrize("name", sorted(RESOURCES))
async def test_every_resource_lets_a_body_error_out_as_itself(
    autojump_clock: Any, name: str
) -> None:
    original = raft.ForwardToLeader(2, raft.Node("b"))

    async def block() -> None:
        async with RESOURCES[name]():
            await trio.sleep(0.01)
            raise original

    with pytest.raises(raft.ForwardToLeader) as info:
        await block()
    assert info.value is original
    assert info.value.__context__ is None


@pytest.mark.parametrize("name", sorted(RESOURCES))
async def test_every_resource_keeps_cancellation_working(autojump_clock: Any, name: str) -> None:
    with trio.move_on_after(0.5) as scope:
        async with RESOURCES[name]():
            await trio.sleep_forever()
    assert scope.cancelled_caught
