"""``sm_worker``: applies committed entries to the state machine, in batches.

The core raises ``apply_upto``; the worker applies everything from its last applied entry up
to there in one ``apply`` call (chunked for very long catch-ups) and reports the replies.
It is the only task that touches the state machine, so apply and snapshot install can
never race (PROTOCOL-NOTES "Snapshots").
"""

from __future__ import annotations

from typing import Any

import attrs

from .._types import LogId, log_id_ge, next_index
from .messages import Applied
from .signals import Notifier, Wakeup

APPLY_CHUNK = 4096


@attrs.define
class ApplyHandle:
    upto: LogId | None = None
    wakeup: Wakeup = attrs.field(factory=Wakeup)

    def apply_upto(self, upto: LogId) -> None:
        if not log_id_ge(self.upto, upto):
            self.upto = upto
            self.wakeup.set()


async def sm_worker(
    handle: ApplyHandle,
    state_machine: Any,
    log_store: Any,
    applied: LogId | None,
    notify: Notifier,
) -> None:
    while True:
        upto = handle.upto
        if upto is None or log_id_ge(applied, upto):
            await handle.wakeup.wait()
            continue
        start = next_index(applied)
        stop = min(upto.index + 1, start + APPLY_CHUNK)
        entries = await log_store.try_get_log_entries(start, stop)
        if not entries or entries[0].index != start:
            raise RuntimeError(f"log entries [{start}, {stop}) to apply are missing")
        replies = await state_machine.apply(entries)
        applied = entries[-1].log_id
        await notify.send(
            Applied(applied, [(e.log_id, r) for e, r in zip(entries, replies, strict=True)])
        )
