"""``sm_worker``: applies committed entries to the state machine, in batches.

The core raises ``apply_upto``; the worker applies everything from its last applied entry up
to there in one ``apply`` call (chunked for very long catch-ups), answers the clients whose
writes it applied (the core registered them in ``pending``; answering here saves a task hop
on every write) and reports the new applied log id to the core.
It is the only task that touches the state machine, so apply and snapshot install can
never race (PROTOCOL-NOTES "Snapshots").
"""

from __future__ import annotations

from typing import final

import attrs

from .._errors import ForwardToLeader, StorageContractViolation
from .._messages import ClientWriteResponse
from .._types import LogId, MembershipChange, Snapshot, log_id_ge, next_index
from ..storage import RaftLogStorage, RaftStateMachine
from .api_calls import Responder
from .notifications import Applied, SnapshotBuilt, SnapshotInstalled
from .signals import Notifier, Wakeup

APPLY_CHUNK = 4096


@final
@attrs.define
class ApplyHandle:
    upto: LogId | None = None
    wakeup: Wakeup = attrs.field(factory=Wakeup)
    # index -> (log id, responder) of client writes waiting to be applied (leader only).
    pending: dict[int, tuple[LogId, Responder]] = attrs.field(factory=dict)
    # Snapshot work, serialized with apply: a build request, and a snapshot to install.
    build_requested: bool = False
    install: Snapshot | None = None

    def request_build(self) -> None:
        self.build_requested = True
        self.wakeup.set()

    def request_install(self, snapshot: Snapshot) -> None:
        self.install = snapshot
        self.wakeup.set()

    def apply_upto(self, upto: LogId) -> None:
        if not log_id_ge(self.upto, upto):
            self.upto = upto
            self.wakeup.set()


async def sm_worker(
    *,
    handle: ApplyHandle,
    state_machine: RaftStateMachine,
    log_store: RaftLogStorage,
    applied: LogId | None,
    notify: Notifier,
) -> None:
    while True:
        if handle.install is not None:
            # Install and apply never race: this task does both, one at a time. A snapshot
            # not newer than what is applied is ignored (applied never moves backwards).
            snapshot, handle.install = handle.install, None
            if not log_id_ge(applied, snapshot.meta.last_log_id):
                await state_machine.install_snapshot(snapshot.meta, snapshot.data)
                applied = snapshot.meta.last_log_id
            await notify.send(SnapshotInstalled(snapshot.meta))
            continue
        if handle.build_requested:
            # A snapshot of everything applied so far (apply waits meanwhile).
            handle.build_requested = False
            built = await state_machine.build_snapshot()
            await notify.send(SnapshotBuilt(built.meta))
            continue
        upto = handle.upto
        if upto is None or log_id_ge(applied, upto):
            await handle.wakeup.wait()
            continue
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
        pending = handle.pending
        if pending:
            for entry, reply in zip(entries, replies, strict=True):
                slot = pending.pop(entry.log_id.index, None)
                if slot is not None:
                    log_id, responder = slot
                    # A different log id at our index: our entry was replaced (we lost
                    # leadership before it committed).
                    if log_id != entry.log_id:
                        responder.send(ForwardToLeader(None))
                    elif isinstance(entry.payload, MembershipChange):
                        responder.send(
                            ClientWriteResponse(log_id, reply, entry.payload.membership)
                        )
                    else:
                        responder.send(ClientWriteResponse(log_id, reply))
        await notify.send(Applied(applied))
