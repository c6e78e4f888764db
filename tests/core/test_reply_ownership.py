"""One owner per reply: the core hands each write's reply slot to the sm_worker with the
``Apply`` that covers it, in log order; the worker answers exactly the writes it applies
and fails exactly the ones a snapshot skips."""

from __future__ import annotations

from typing import Any

import trio

from openraft_trio import ClientWriteResponse, ForwardToLeader
from openraft_trio._core.api_calls import Responder
from openraft_trio._core.notifications import Notification
from openraft_trio._core.sm_worker import ApplyHandle, sm_worker
from openraft_trio._types import (
    Entry,
    LeaderId,
    LogId,
    Normal,
)
from openraft_trio.kv import KvStateMachine, Set
from openraft_trio.storage import MemLogStore


class _Notes:
    def __init__(self) -> None:
        self.sent: list[Notification] = []

    async def send(self, value: Notification) -> None:
        self.sent.append(value)

    def try_send(self, value: Notification) -> bool:
        self.sent.append(value)
        return True


def lid(term: int, index: int) -> LogId:
    return LogId(LeaderId(term, 1), index)


async def _log_with(entries: list[Entry]) -> MemLogStore:
    store = MemLogStore()
    await store.append(entries, lambda err: None)
    return store


def _start_worker(nursery: trio.Nursery, handle: ApplyHandle, store: MemLogStore) -> None:
    """An sm_worker over a fresh KvStateMachine and ``store``, from nothing applied."""
    nursery.start_soon(
        lambda: sm_worker(
            handle=handle,
            state_machine=KvStateMachine(),
            log_store=store,
            applied=None,
            notify=_Notes(),
        )
    )


def _slot() -> Responder:
    return Responder(trio.Event())


async def test_the_worker_answers_the_writes_it_applies_in_log_order(autojump_clock: Any) -> None:
    entries = [Entry(lid(1, i), Normal(Set(f"k{i}", i))) for i in range(4)]
    store = await _log_with(entries)
    handle = ApplyHandle()
    slots = {i: _slot() for i in (1, 3)}
    replaced = _slot()  # a write at index 2 by term 0: the log holds another entry there
    async with trio.open_nursery() as nursery:
        _start_worker(nursery, handle, store)
        handle.apply_upto(lid(1, 1), [(lid(1, 1), slots[1])])
        await trio.sleep(0.01)
        assert slots[1].done
        assert not slots[3].done
        handle.apply_upto(lid(1, 3), [(lid(0, 2), replaced), (lid(1, 3), slots[3])])
        await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    assert isinstance(slots[1].result(), ClientWriteResponse)
    assert slots[1].result().log_id == lid(1, 1)
    assert slots[3].result().log_id == lid(1, 3)
    assert replaced.done
    assert isinstance(replaced._value, ForwardToLeader)


async def test_an_installed_snapshot_fails_exactly_the_writes_it_covers(autojump_clock: Any) -> None:
    store = await _log_with([])
    handle = ApplyHandle()
    covered, after = _slot(), _slot()
    source = KvStateMachine()
    await source.apply([Entry(lid(1, i), Normal(Set(f"k{i}", i))) for i in range(6)])
    snap = await source.build_snapshot()
    assert snap.meta.last_log_id == lid(1, 5)
    async with trio.open_nursery() as nursery:
        _start_worker(nursery, handle, store)
        handle.replies.extend([(lid(1, 5), covered), (lid(1, 6), after)])
        handle.request_install(snap)
        await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    assert covered.done
    error = covered._value
    assert isinstance(error, ForwardToLeader)
    assert error.maybe_committed
    assert error.log_id == lid(1, 5)
    assert not after.done  # its entry is still to come
