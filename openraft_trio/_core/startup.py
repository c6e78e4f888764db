"""Startup: restore the Engine from what the log store and the state machine hold."""

from __future__ import annotations

from .._engine import Engine
from .._types import LogId, MembershipChange, StoredMembership
from ..storage import RaftLogStorage, RaftStateMachine

STARTUP_READ_CHUNK = 4096


async def read_startup_state(
    engine: Engine, log_store: RaftLogStorage, state_machine: RaftStateMachine, now: float
) -> LogId | None:
    """Read the vote, the log ids, the committed and applied log ids, the memberships not
    applied yet and the current snapshot, and give them to ``engine.startup``.

    Returns:
        The last log id applied to the state machine (where the sm_worker starts).
    """
    vote = await log_store.read_vote()
    state = await log_store.get_log_state()
    committed = await log_store.read_committed()
    last_applied, applied_membership = await state_machine.applied_state()
    purged = state.last_purged_log_id
    log_ids: list[LogId] = []
    memberships: list[StoredMembership] = []
    start = 0 if purged is None else purged.index + 1
    stop = -1 if state.last_log_id is None else state.last_log_id.index
    applied_index = -1 if last_applied is None else last_applied.index
    while start <= stop:
        chunk = await log_store.try_get_log_entries(
            start, min(stop + 1, start + STARTUP_READ_CHUNK)
        )
        if not chunk:
            break
        for entry in chunk:
            log_ids.append(entry.log_id)
            if isinstance(entry.payload, MembershipChange) and entry.index > applied_index:
                memberships.append(StoredMembership(entry.log_id, entry.payload.membership))
        start = chunk[-1].index + 1
    current = await state_machine.get_current_snapshot()
    engine.startup(
        vote=vote,
        log_ids=log_ids,
        purged=purged,
        committed=committed,
        last_applied=last_applied,
        applied_membership=applied_membership,
        log_memberships=memberships,
        snapshot=None if current is None else current.meta.last_log_id,
        now=now,
    )
    return last_applied
