"""``sm_worker``: applies committed entries to the state machine, in batches.

The core raises ``apply_upto`` and hands over, with it, the reply slots of the client writes
up to there (in log order: one owner per reply, the core before, the worker after). The
worker applies everything from its last applied entry up to there in one ``apply`` call
(chunked for very long catch-ups), answers the clients whose writes it applied (answering
here saves a task hop on every write) and reports the new applied log id to the core.
It is the only task that calls ``apply``, ``build_snapshot`` and ``install_snapshot``, so
apply and snapshot install can never race (PROTOCOL-NOTES "Snapshots").

Snapshots are built beside apply when the state machine declares
:class:`~openraft_trio.storage.BuildsSnapshotsAside`: between two applies this task takes
a builder (the state machine captures a consistent view of what is applied), and a child
task runs the builder's ``build_snapshot`` while apply goes on. One build at a time (the
Engine asks for the next only after ``SnapshotBuilt``), and an install waits until a
running build has finished, so a build never overlaps an install. A state machine
without ``get_snapshot_builder`` builds between applies, as before.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from typing import final

import attrs
import trio

from .._errors import ForwardToLeader, StorageContractViolation
from .._messages import ClientWriteResponse
from .._statistics import LatencyHistogram
from .._types import Entry, LogId, MembershipChange, Snapshot, log_id_ge, next_index
from ..storage import BuildsSnapshotsAside, RaftLogStorage, RaftSnapshotBuilder, RaftStateMachine
from .api_calls import Responder
from .notifications import Applied, SnapshotBuilt, SnapshotInstalled
from .signals import Notifier, Wakeup

APPLY_CHUNK = 4096


@final
@attrs.define
class ApplyHandle:
    upto: LogId | None = None
    wakeup: Wakeup = attrs.field(factory=Wakeup)
    # (log id, responder) of client writes handed over with ``apply_upto``, in log order
    # (leader only): this worker answers each once its entry is applied.
    replies: deque[tuple[LogId, Responder]] = attrs.field(factory=deque)
    # Snapshot work, serialized with apply: a build request, and a snapshot to install.
    build_requested: bool = False
    install: Snapshot | None = None
    # Apply latency: the core notes ``(index, time)`` each time the commit index moves;
    # the worker counts each entry it applies against the first note that covers it.
    clock: Callable[[], float] = trio.current_time
    commit_marks: deque[tuple[int, float]] = attrs.field(factory=deque)
    apply_latency: LatencyHistogram = attrs.field(factory=LatencyHistogram)
    # The first index not yet counted in ``apply_latency``.
    latency_next: int = 0

    def observe_applied(self, applied: int) -> None:
        """Count the entries up to index ``applied`` (just applied) in ``apply_latency``."""
        marks = self.commit_marks
        first = self.latency_next
        if not marks:
            self.latency_next = max(first, applied + 1)
            return
        now = self.clock()
        histogram = self.apply_latency
        while marks:
            index, at = marks[0]
            upto = index if index < applied else applied
            if upto >= first:
                histogram.observe(now - at, upto - first + 1)
                first = upto + 1
            if index > applied:
                break
            marks.popleft()
        self.latency_next = max(first, applied + 1)

    def skip_latency_upto(self, installed: LogId | None) -> None:
        """Entries up to ``installed`` came in a snapshot, not applied one by one: they are
        not counted in ``apply_latency``."""
        self.latency_next = next_index(installed)
        marks = self.commit_marks
        while marks and marks[0][0] < self.latency_next:
            marks.popleft()

    def request_build(self) -> None:
        self.build_requested = True
        self.wakeup.set()

    def request_install(self, snapshot: Snapshot) -> None:
        self.install = snapshot
        self.wakeup.set()

    def apply_upto(self, upto: LogId, replies: Iterable[tuple[LogId, Responder]] = ()) -> None:
        """Apply up to ``upto``; answer ``replies`` (their entries are at most ``upto``, in
        log order, after those handed over before) as their entries are applied."""
        self.replies.extend(replies)
        if not log_id_ge(self.upto, upto):
            self.upto = upto
            self.wakeup.set()


async def _build_aside(builder: RaftSnapshotBuilder, notify: Notifier, done: trio.Event) -> None:
    try:
        built = await builder.build_snapshot()
        await notify.send(SnapshotBuilt(built.meta, len(built.data)))
    finally:
        done.set()


async def sm_worker(
    *,
    handle: ApplyHandle,
    state_machine: RaftStateMachine,
    log_store: RaftLogStorage,
    applied: LogId | None,
    notify: Notifier,
) -> None:
    aside = isinstance(state_machine, BuildsSnapshotsAside)
    # Set when no build runs beside apply.
    build_done = trio.Event()
    build_done.set()
    async with trio.open_nursery() as builds:
        while True:
            if handle.install is not None:
                if not build_done.is_set():
                    # A build never overlaps an install: let it finish first.
                    await build_done.wait()
                    continue
                # Install and apply never race: this task does both, one at a time. A
                # snapshot not newer than what is applied is ignored (applied never moves
                # backwards).
                snapshot, handle.install = handle.install, None
                if not log_id_ge(applied, snapshot.meta.last_log_id):
                    await state_machine.install_snapshot(snapshot.meta, snapshot.data)
                    applied = snapshot.meta.last_log_id
                    _fail_below(handle.replies, next_index(applied))
                    handle.skip_latency_upto(applied)
                await notify.send(SnapshotInstalled(snapshot.meta, len(snapshot.data)))
                continue
            if handle.build_requested:
                handle.build_requested = False
                if aside:
                    # The builder captures everything applied so far, here between two
                    # applies; it serializes in a task of its own while apply goes on.
                    assert isinstance(state_machine, BuildsSnapshotsAside)
                    builder = state_machine.get_snapshot_builder()
                    build_done = trio.Event()
                    builds.start_soon(
                        _build_aside,
                        builder,
                        notify,
                        build_done,
                        name="openraft_trio.snapshot_build",
                    )
                else:
                    # A snapshot of everything applied so far (apply waits meanwhile).
                    built = await state_machine.build_snapshot()
                    await notify.send(SnapshotBuilt(built.meta, len(built.data)))
                continue
            applied = await _apply_next(handle, state_machine, log_store, applied, notify)


async def _apply_next(
    handle: ApplyHandle,
    state_machine: RaftStateMachine,
    log_store: RaftLogStorage,
    applied: LogId | None,
    notify: Notifier,
) -> LogId | None:
    """Apply the next chunk up to ``handle.upto`` (or wait for work); return the new applied."""
    upto = handle.upto
    if upto is None or log_id_ge(applied, upto):
        await handle.wakeup.wait()
        return applied
    start = next_index(applied)
    stop = min(upto.index + 1, start + APPLY_CHUNK)
    entries = await log_store.try_get_log_entries(start, stop)
    if not entries or entries[0].index != start:
        raise StorageContractViolation(
            f"log entries [{start}, {stop}) to apply are missing from the log store "
            f"(the log never has holes; purge drops only entries a snapshot covers)"
        )
    replies = await state_machine.apply(entries)
    applied = entries[-1].log_id
    handle.observe_applied(applied.index)
    if handle.replies:
        _answer(handle.replies, entries, replies)
    await notify.send(Applied(applied))
    return applied


def _answer(
    waiting: deque[tuple[LogId, Responder]], entries: list[Entry], replies: list[object]
) -> None:
    """Answer the writes among ``entries`` (just applied, with ``replies``)."""
    first, last = entries[0].index, entries[-1].index
    _fail_below(waiting, first)
    while waiting and waiting[0][0].index <= last:
        log_id, responder = waiting.popleft()
        entry, reply = entries[log_id.index - first], replies[log_id.index - first]
        # A different log id at our index: our entry was replaced (we lost leadership
        # before it committed).
        if log_id != entry.log_id:
            responder.send(ForwardToLeader(None))
        elif isinstance(entry.payload, MembershipChange):
            responder.send(ClientWriteResponse(log_id, reply, entry.payload.membership))
        else:
            responder.send(ClientWriteResponse(log_id, reply))


def _fail_below(waiting: deque[tuple[LogId, Responder]], index: int) -> None:
    """Fail the writes below ``index`` still waiting: their entries will not be applied one
    by one here (an installed snapshot covers them). They were committed, but their
    replies are unknown."""
    while waiting and waiting[0][0].index < index:
        log_id, responder = waiting.popleft()
        responder.send(ForwardToLeader(None, maybe_committed=True, log_id=log_id))
