"""sm_worker and snapshots built beside apply: apply goes on while a build runs, the
snapshot is the state when the build was asked for, and an install waits for a running
build (PROTOCOL-NOTES "Snapshots": apply and install never race)."""

from __future__ import annotations

from typing import Any

import cbor2
import trio
import trio.testing

from openraft_trio._core.notifications import (
    Applied,
    Notification,
    SnapshotBuilt,
    SnapshotInstalled,
)
from openraft_trio._core.sm_worker import ApplyHandle, sm_worker
from openraft_trio._types import Entry, Snapshot, SnapshotMeta
from openraft_trio.kv import KvSnapshotBuilder, KvStateMachine, Set
from openraft_trio.storage import BuildsSnapshotsAside, MemLogStore

from ..kv._kv_log import Log


class Notes:
    """A Notifier that keeps every notification."""

    def __init__(self) -> None:
        self.notes: list[Notification] = []

    async def send(self, value: Notification) -> None:
        self.notes.append(value)
        await trio.lowlevel.checkpoint()

    def of(self, kind: type) -> list[Any]:
        return [n for n in self.notes if isinstance(n, kind)]


class GatedBuilder:
    """Builds only once ``gate`` is set (a slow serializer, held open by the test)."""

    def __init__(self, inner: KvSnapshotBuilder, gate: trio.Event) -> None:
        self.inner = inner
        self.gate = gate

    async def build_snapshot(self) -> Snapshot:
        await self.gate.wait()
        return await self.inner.build_snapshot()


class GatedKv(KvStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.gate = trio.Event()
        self.installs: list[SnapshotMeta] = []

    def get_snapshot_builder(self) -> Any:
        return GatedBuilder(super().get_snapshot_builder(), self.gate)

    async def install_snapshot(self, meta: SnapshotMeta, data: bytes) -> None:
        self.installs.append(meta)
        await super().install_snapshot(meta, data)


class PlainKv:
    """Only the RaftStateMachine protocol (no get_snapshot_builder)."""

    def __init__(self) -> None:
        self.kv = KvStateMachine()

    async def applied_state(self) -> Any:
        return await self.kv.applied_state()

    async def apply(self, entries: Any) -> list[Any]:
        return await self.kv.apply(entries)

    async def build_snapshot(self) -> Snapshot:
        return await self.kv.build_snapshot()

    async def install_snapshot(self, meta: SnapshotMeta, data: bytes) -> None:
        await self.kv.install_snapshot(meta, data)

    async def get_current_snapshot(self) -> Snapshot | None:
        return await self.kv.get_current_snapshot()


async def logged(count: int) -> tuple[MemLogStore, list[Entry]]:
    store = MemLogStore()
    log = Log()
    log.next_index = 0
    entries = [log.entry(Set(f"k{i}", i)) for i in range(count)]
    await store.append(entries, lambda error: None)
    return store, entries


def snapshot_keys(data: bytes) -> set[str]:
    return set(cbor2.loads(data)["data"])


async def test_apply_goes_on_while_a_build_runs_and_the_snapshot_is_the_state_at_the_request(
    autojump_clock,
):
    store, entries = await logged(20)
    sm, notes, handle = GatedKv(), Notes(), ApplyHandle()
    assert isinstance(sm, BuildsSnapshotsAside)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            lambda: sm_worker(
                handle=handle, state_machine=sm, log_store=store, applied=None, notify=notes
            )
        )
        handle.apply_upto(entries[9].log_id)
        await trio.testing.wait_all_tasks_blocked()
        handle.request_build()
        handle.apply_upto(entries[19].log_id)
        await trio.testing.wait_all_tasks_blocked()
        # The build is held open, and apply went on to the end regardless.
        assert notes.of(SnapshotBuilt) == []
        assert notes.of(Applied)[-1] == Applied(entries[19].log_id)
        assert sm.last_applied == entries[19].log_id
        sm.gate.set()
        await trio.testing.wait_all_tasks_blocked()
        [built] = notes.of(SnapshotBuilt)
        snapshot = await sm.get_current_snapshot()
        assert snapshot is not None
        assert built == SnapshotBuilt(snapshot.meta, len(snapshot.data))
        # Exactly the state at the request: entries 0..9, at entry 9's log id.
        assert built.meta.last_log_id == entries[9].log_id
        assert snapshot_keys(snapshot.data) == {f"k{i}" for i in range(10)}
        nursery.cancel_scope.cancel()


async def test_an_install_waits_until_the_running_build_has_finished(autojump_clock):
    store, entries = await logged(10)
    sm, notes, handle = GatedKv(), Notes(), ApplyHandle()
    # A newer snapshot from elsewhere: 30 keys, at index 30.
    source = KvStateMachine()
    log = Log()
    await source.apply([log.entry(Set(f"s{i}", i)) for i in range(30)])
    newer = await source.build_snapshot()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            lambda: sm_worker(
                handle=handle, state_machine=sm, log_store=store, applied=None, notify=notes
            )
        )
        handle.apply_upto(entries[9].log_id)
        await trio.testing.wait_all_tasks_blocked()
        handle.request_build()
        await trio.testing.wait_all_tasks_blocked()
        handle.request_install(newer)
        await trio.testing.wait_all_tasks_blocked()
        assert sm.installs == []  # the build still runs: the install waits
        sm.gate.set()
        await trio.testing.wait_all_tasks_blocked()
        assert sm.installs == [newer.meta]
        kinds = [type(n) for n in notes.notes if not isinstance(n, Applied)]
        assert kinds == [SnapshotBuilt, SnapshotInstalled]
        assert notes.of(SnapshotInstalled) == [SnapshotInstalled(newer.meta, len(newer.data))]
        # The older build finished first; the installed snapshot is the current one.
        assert await sm.get_current_snapshot() == newer
        assert sm.data == source.data
        nursery.cancel_scope.cancel()


async def test_a_state_machine_without_a_builder_builds_between_applies(autojump_clock):
    store, entries = await logged(10)
    sm, notes, handle = PlainKv(), Notes(), ApplyHandle()
    assert not isinstance(sm, BuildsSnapshotsAside)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            lambda: sm_worker(
                handle=handle, state_machine=sm, log_store=store, applied=None, notify=notes
            )
        )
        handle.apply_upto(entries[4].log_id)
        await trio.testing.wait_all_tasks_blocked()
        handle.request_build()
        handle.apply_upto(entries[9].log_id)
        await trio.testing.wait_all_tasks_blocked()
        [built] = notes.of(SnapshotBuilt)
        assert built.meta.last_log_id == entries[4].log_id
        kinds = [type(n) for n in notes.notes]
        assert kinds == [Applied, SnapshotBuilt, Applied]  # in turn, never beside
        nursery.cancel_scope.cancel()


class InlineKv(KvStateMachine):
    """Opts out of building beside apply, as docs/reference.md describes."""

    get_snapshot_builder = None  # type: ignore[assignment]


async def test_a_kv_subclass_can_opt_out_of_building_beside_apply(autojump_clock):
    store, entries = await logged(10)
    sm, notes, handle = InlineKv(), Notes(), ApplyHandle()
    assert not isinstance(sm, BuildsSnapshotsAside)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            lambda: sm_worker(
                handle=handle, state_machine=sm, log_store=store, applied=None, notify=notes
            )
        )
        handle.apply_upto(entries[4].log_id)
        await trio.testing.wait_all_tasks_blocked()
        handle.request_build()
        await trio.testing.wait_all_tasks_blocked()
        [built] = notes.of(SnapshotBuilt)
        assert built.meta.last_log_id == entries[4].log_id
        assert await sm.get_current_snapshot() is not None
        nursery.cancel_scope.cancel()
