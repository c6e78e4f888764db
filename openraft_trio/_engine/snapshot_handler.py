"""Snapshots and log compaction (Raft §7; PROTOCOL-NOTES "Snapshots").

* The state machine worker builds a snapshot once ``snapshot_policy.logs_between(size)``
  entries were applied since the last one (``size``: the bytes of that snapshot, so the
  interval grows with the state and each write pays a bounded share of snapshot
  building), or on ``trigger.snapshot()``; one build at a time.
* After a snapshot, the log is purged so that at most ``max_in_snapshot_log_to_keep``
  snapshotted entries stay (for followers a little behind); ``trigger.purge_log(upto)``
  purges more, but never past the snapshot: ``purged <= snapshot``.
* A follower whose next entry was purged gets the snapshot (the replication stream sends
  it when the entries it needs are gone).
* Installing never moves applied backwards: a snapshot whose last log id is not beyond our
  commit index is acknowledged and ignored. Otherwise the state machine worker installs it
  (serialized with apply, so they never race), then the log keeps the suffix after the
  snapshot if it matches, or is discarded if it conflicts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._messages import InstallSnapshotResponse
from .._types import Snapshot, SnapshotMeta, Vote, log_id_ge
from . import roles
from .commands import BuildSnapshot, InstallSnapshot, IOId, PurgeLog

if TYPE_CHECKING:
    from .engine import Engine


class SnapshotHandler:
    """Snapshots and log compaction, on any node (a view over the Engine for one input)."""

    __slots__ = ("engine",)

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _snapshot_due(self) -> bool:
        io = self.engine.io
        applied = io.applied
        if applied is None:
            return False
        since = applied.index - (-1 if io.snapshot is None else io.snapshot.index)
        return since >= self.engine.config.snapshot_policy.logs_between(io.snapshot_bytes)

    def maybe_build_snapshot(self, *, force: bool = False) -> None:
        io = self.engine.io
        if io.snapshot_building or not (force or self._snapshot_due()):
            return
        io.snapshot_building = True
        self.engine.push(BuildSnapshot())

    def on_snapshot_built(self, meta: SnapshotMeta, size: int) -> None:
        io = self.engine.io
        io.snapshot_building = False
        if not log_id_ge(io.snapshot, meta.last_log_id):
            io.snapshot = meta.last_log_id
            io.snapshot_bytes = size
        if io.snapshot is None:
            return
        keep = self.engine.config.max_in_snapshot_log_to_keep
        self.purge_log(io.snapshot.index - keep)

    def purge_log(self, upto_index: int) -> None:
        """Purge up to ``upto_index`` (clipped to the snapshot; never below what is purged)."""
        engine = self.engine
        snapshot = engine.io.snapshot
        if snapshot is None:
            return
        upto_index = min(upto_index, snapshot.index)
        purged = engine.log_ids.purged
        if upto_index < 0 or (purged is not None and upto_index <= purged.index):
            return
        log_id = engine.log_ids.get(upto_index)
        if log_id is None:
            return
        engine.log_ids.purge(log_id)
        engine.push(PurgeLog(log_id))

    # -- installing a snapshot from the leader ------------------------------------------------

    def handle_install_snapshot(self, vote: Vote, snapshot: Snapshot, responder: Any) -> None:
        """A leader sends its snapshot because the entries we need are purged there."""
        engine = self.engine
        if not vote >= engine.vote or not vote.committed:
            engine.respond(responder, InstallSnapshotResponse(engine.vote))
            return
        roles.follow(engine, vote)
        last = snapshot.meta.last_log_id
        if last is None or log_id_ge(engine.io.committed, last):
            # Nothing new: everything it covers is committed here already.
            engine.respond(responder, InstallSnapshotResponse(engine.vote))
            return
        engine.pending_installs.append((snapshot.meta, responder))
        engine.push(InstallSnapshot(snapshot))

    def on_snapshot_installed(self, meta: SnapshotMeta, size: int) -> None:
        """The state machine now holds ``meta``'s state (``size`` bytes of snapshot data):
        align the log and the pointers."""
        engine, io = self.engine, self.engine.io
        last = meta.last_log_id
        if last is not None and not log_id_ge(io.committed, last):
            if not engine.log_ids.contains(last):
                # Our log conflicts with (or ends before) the snapshot: discard it.
                engine.truncate_log_after(engine.log_ids.purged)
            engine.log_ids.purge(last)
            engine.push(PurgeLog(last))
            io.committed = last
            io.apply_requested = last
            engine.membership.committed = meta.last_membership
            engine.membership.uncommitted = [
                stored for stored in engine.membership.uncommitted
                if stored.log_id is not None and stored.log_id.index > last.index
            ]
            if io.flushed is not None and not log_id_ge(io.flushed.log_id, last):
                io.flushed = IOId(io.flushed.vote, engine.log_ids.last)
        if last is not None and not log_id_ge(io.applied, last):
            io.applied = last
        if not log_id_ge(io.snapshot, last):
            io.snapshot = last
            io.snapshot_bytes = size
        # Answer every install this one covers (an older one queued behind it was skipped).
        waiting = []
        for pending, responder in engine.pending_installs:
            if log_id_ge(last, pending.last_log_id):
                engine.respond(responder, InstallSnapshotResponse(engine.vote))
            else:
                waiting.append((pending, responder))
        engine.pending_installs = waiting
