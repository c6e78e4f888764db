"""The storage conformance suite, run against the shipped stores, and shown to catch bugs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from openraft_trio import Entry, LogId
from openraft_trio.kv import KvStateMachine, Set
from openraft_trio.storage import (
    FileLogStore,
    IOCallback,
    MemLogStore,
    open_file_log_store,
    run_inline,
)
from openraft_trio.storage._mem import FlushMode
from openraft_trio.testing.crashfs import CrashFS
from openraft_trio.testing.storage_suite import (
    LOG_STORE_CHECKS,
    STATE_MACHINE_CHECKS,
    CheckSkipped,
    LogStoreFactory,
    LogStoreSuite,
    MakeRequest,
    MemLogStoreFactory,
    StateMachineFactory,
    StateMachineSuite,
    StorageCheckNotRun,
    check_append_callback_only_when_durable,
    check_sm_restart_restores_snapshot,
    make_log_store_factory,
    make_state_machine_factory,
    run_log_store_suite,
    run_state_machine_suite,
)


def kv_request(i: int) -> Set:
    return Set(f"k{i}", i)


def in_memory_kv() -> StateMachineFactory:
    return make_state_machine_factory(lambda name: KvStateMachine())


# -- the subclass way ------------------------------------------------------------------------


class TestMemLogStoreImmediate(LogStoreSuite):
    @pytest.fixture
    def log_store_factory(self) -> LogStoreFactory:
        return MemLogStoreFactory("immediate")


class TestMemLogStoreManualFlush(LogStoreSuite):
    @pytest.fixture
    def log_store_factory(self) -> LogStoreFactory:
        return MemLogStoreFactory("manual")


class TestInMemoryKvStateMachine(StateMachineSuite):
    # Not applicable: nothing survives a restart of an in-memory state machine (the
    # durable one runs it below; test_run_state_machine_suite_on_in_memory_kv checks that
    # the suite says so).
    test_sm_restart_restores_snapshot = None  # type: ignore[assignment]

    @pytest.fixture
    def state_machine_factory(self) -> StateMachineFactory:
        return in_memory_kv()

    @pytest.fixture
    def make_request(self) -> MakeRequest:
        return kv_request


class TestFileLogStore(LogStoreSuite):
    """The durable default, on the real disk, with tiny segments and cache so that
    rollover, purge of whole segments and reads from disk all happen."""

    @pytest.fixture
    def log_store_factory(self, tmp_path: Path) -> LogStoreFactory:
        return make_log_store_factory(
            lambda name: open_file_log_store(tmp_path / name, segment_size=700, cache_entries=3),
            durable_log_id=lambda store: store.flushed_log_id,
        )


class TestFileLogStoreOnCrashFS(LogStoreSuite):
    """The same, on the in-memory crash file system: a restart keeps only what was
    fsynced (and named durably), as after power loss."""

    @pytest.fixture
    def log_store_factory(self) -> LogStoreFactory:
        fs = CrashFSRestarts()
        return make_log_store_factory(
            lambda name: fs.open_store(f"/suite/{name}"),
            durable_log_id=lambda store: store.flushed_log_id,
        )


class TestDurableKvStateMachine(StateMachineSuite):
    @pytest.fixture
    def state_machine_factory(self, tmp_path: Path) -> StateMachineFactory:
        return make_state_machine_factory(
            lambda name: KvStateMachine(tmp_path / name), durable=True
        )

    @pytest.fixture
    def make_request(self) -> MakeRequest:
        return kv_request


class CrashFSRestarts:
    """Every reopen of a store sees the file system after a power loss."""

    def __init__(self) -> None:
        self.fs = CrashFS()

    @asynccontextmanager
    async def open_store(self, directory: str) -> AsyncIterator[FileLogStore]:
        self.fs = self.fs.crash()
        async with open_file_log_store(
            directory, fs=self.fs, run_io=run_inline, segment_size=700, cache_entries=3
        ) as store:
            yield store


def test_every_check_has_a_test_method() -> None:
    for suite, checks in (
        (LogStoreSuite, LOG_STORE_CHECKS),
        (StateMachineSuite, STATE_MACHINE_CHECKS),
    ):
        names = sorted(n for n in vars(suite) if n.startswith("test_"))
        assert names == sorted("test_" + c.__name__.removeprefix("check_") for c in checks)


# -- the one-call way ------------------------------------------------------------------------


@pytest.mark.parametrize("flush_mode", ["immediate", "manual"])
async def test_run_log_store_suite_on_mem_log_store(flush_mode: FlushMode) -> None:
    await run_log_store_suite(MemLogStoreFactory(flush_mode))


def hookless_factory() -> LogStoreFactory:
    stores: dict[str, MemLogStore] = {}

    def open_store(name: str) -> MemLogStore:
        return stores.setdefault(name, MemLogStore())

    return make_log_store_factory(open_store)


async def test_run_log_store_suite_without_durability_hook_says_so() -> None:
    """A factory that cannot tell what is durable: the durability check does not run, and
    the suite says so — a warning by default, a failure with require_all."""
    factory = hookless_factory()
    assert getattr(factory, "durable_log_id", None) is None
    with pytest.warns(
        StorageCheckNotRun,
        match=r"check_append_callback_only_when_durable NOT RUN: .*no durable_log_id",
    ):
        await run_log_store_suite(factory)
    with pytest.raises(AssertionError, match=r"(?s)1 storage check.*NOT RUN.*durable_log_id"):
        await run_log_store_suite(hookless_factory(), require_all=True)
    with pytest.raises(CheckSkipped, match="durable_log_id"):
        await check_append_callback_only_when_durable(factory)


async def test_run_state_machine_suite_on_in_memory_kv() -> None:
    with pytest.warns(StorageCheckNotRun, match="check_sm_restart_restores_snapshot NOT RUN"):
        await run_state_machine_suite(in_memory_kv(), kv_request)
    with pytest.raises(AssertionError, match="restart_restores_snapshot NOT RUN"):
        await run_state_machine_suite(in_memory_kv(), kv_request, require_all=True)
    with pytest.raises(CheckSkipped, match="not durable"):
        await check_sm_restart_restores_snapshot(in_memory_kv(), kv_request)


async def test_a_suite_class_skips_a_check_that_cannot_run_loudly_or_fails_it() -> None:
    """The subclass way: the test of a check that cannot run is skipped with a NOT RUN
    reason and a warning; with ``require_all_checks = True`` it fails."""

    class Lenient(LogStoreSuite):
        pass

    class Strict(LogStoreSuite):
        require_all_checks = True

    test = LogStoreSuite.test_append_callback_only_when_durable  # type: ignore[attr-defined]
    with (
        pytest.warns(StorageCheckNotRun, match="NOT RUN"),
        pytest.raises(pytest.skip.Exception, match=r"NOT RUN: .*durable_log_id"),
    ):
        await test(Lenient(), hookless_factory())
    with pytest.raises(pytest.fail.Exception, match=r"NOT RUN: .*durable_log_id"):
        await test(Strict(), hookless_factory())


# -- the suite catches broken stores ---------------------------------------------------------


class TruncateDoesNothing(MemLogStore):
    async def truncate_after(self, log_id: LogId | None) -> None:
        pass


class CallbackTwice(MemLogStore):
    async def append(self, entries: Sequence[Entry], callback: IOCallback) -> None:
        def twice(err: BaseException | None) -> None:
            callback(err)
            callback(err)

        await super().append(entries, twice)


class CallbackBeforeDurable(MemLogStore):
    """Reports appends durable at once, though (in "manual" mode) only flush() makes them so."""

    async def append(self, entries: Sequence[Entry], callback: IOCallback) -> None:
        await super().append(entries, lambda err: None)
        callback(None)


class PurgeForgotten(MemLogStore):
    """Loses the purge point on restart: purged entries stay gone, the last log id too."""

    def crash(self) -> None:
        super().crash()
        self._last_purged_log_id = None


class AcceptsHoles(MemLogStore):
    async def append(self, entries: Sequence[Entry], callback: IOCallback) -> None:
        if entries:
            self._first_index = entries[0].index - len(self._entries)
            self._durable_next = min(self._durable_next, self._first_index + len(self._entries))
        await super().append(entries, callback)


@pytest.mark.parametrize(
    ("store_class", "flush_mode", "failing_check"),
    [
        (TruncateDoesNothing, "immediate", "check_truncate_after_each_position"),
        (CallbackTwice, "immediate", "check_append_callback_called_once"),
        (CallbackBeforeDurable, "manual", "check_append_callback_only_when_durable"),
        (PurgeForgotten, "immediate", "check_purge_up_to_each_position"),
        (AcceptsHoles, "immediate", "check_append_rejects_hole_or_overlap"),
    ],
)
async def test_suite_fails_broken_log_store(
    store_class: type[MemLogStore], flush_mode: FlushMode, failing_check: str
) -> None:
    factory = MemLogStoreFactory(flush_mode, store_class=store_class)
    with pytest.raises(AssertionError) as info:
        await run_log_store_suite(factory)
    assert f"* {failing_check}: " in str(info.value)


class ForgetfulKv(KvStateMachine):
    """Reports the snapshot installed but keeps its old data."""

    async def install_snapshot(self, meta: Any, data: bytes) -> None:
        kept = self.data
        await super().install_snapshot(meta, data)
        self._data = kept


async def test_suite_fails_broken_state_machine() -> None:
    factory = make_state_machine_factory(lambda name: ForgetfulKv())
    with pytest.raises(AssertionError) as info, pytest.warns(StorageCheckNotRun):
        await run_state_machine_suite(factory, kv_request)
    assert "* check_sm_install_snapshot_into_new_state_machine: " in str(info.value)
