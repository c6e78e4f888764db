"""Snapshots and log compaction (Raft §7; PROTOCOL-NOTES "Snapshots").

* The state machine worker builds a snapshot every ``snapshot_policy.logs_since_last``
  applied entries, or on ``trigger.snapshot()``; one build at a time.
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

from typing import Any

from .._messages import InstallSnapshotResponse
from .._types import Snapshot, SnapshotMeta, Vote, log_id_ge
from .base import EngineBase
from .commands import BuildSnapshot, InstallSnapshot, IOId, PurgeLog


class SnapshotHandler(EngineBase):
    def _snapshot_due(self) -> bool:
        applied = self.last_applied
        if applied is None:
            return False
        snap = self.snapshot_last_log_id
        since = applied.index - (-1 if snap is None else snap.index)
        return since >= self.config.snapshot_policy.logs_since_last

    def maybe_build_snapshot(self, force: bool = False) -> None:
        if self.snapshot_building or not (force or self._snapshot_due()):
            return
        self.snapshot_building = True
        self.push(BuildSnapshot())

    def on_snapshot_built(self, meta: SnapshotMeta) -> None:
        self.snapshot_building = False
        if not log_id_ge(self.snapshot_last_log_id, meta.last_log_id):
            self.snapshot_last_log_id = meta.last_log_id
        snap = self.snapshot_last_log_id
        if snap is None:
            return
        keep = self.config.max_in_snapshot_log_to_keep
        self.purge_log(snap.index - keep)

    def purge_log(self, upto_index: int) -> None:
        """Purge up to ``upto_index`` (clipped to the snapshot; never below what is purged)."""
        snap = self.snapshot_last_log_id
        if snap is None:
            return
        upto_index = min(upto_index, snap.index)
        purged = self.log_ids.purged
        if upto_index < 0 or (purged is not None and upto_index <= purged.index):
            return
        log_id = self.log_ids.get(upto_index)
        if log_id is None:
            return
        self.log_ids.purge(log_id)
        self.push(PurgeLog(log_id))

    # -- installing a snapshot from the leader ------------------------------------------------

    def handle_install_snapshot(self, vote: Vote, snapshot: Snapshot, responder: Any) -> None:
        """A leader sends its snapshot because the entries we need are purged there."""
        if not vote >= self.vote or not vote.committed:
            self.respond(responder, InstallSnapshotResponse(self.vote))
            return
        self.accept_leader_vote(vote)
        last = snapshot.meta.last_log_id
        if last is None or log_id_ge(self.committed, last):
            # Nothing new: everything it covers is committed here already.
            self.respond(responder, InstallSnapshotResponse(self.vote))
            return
        self.pending_installs.append((snapshot.meta, responder))
        self.push(InstallSnapshot(snapshot))

    def on_snapshot_installed(self, meta: SnapshotMeta) -> None:
        """The state machine now holds ``meta``'s state: align the log and the pointers."""
        last = meta.last_log_id
        if last is not None and not log_id_ge(self.committed, last):
            if not self.log_ids.contains(last):
                # Our log conflicts with (or ends before) the snapshot: discard it.
                self.truncate_log_after(self.log_ids.purged)
            self.log_ids.purge(last)
            self.push(PurgeLog(last))
            self.committed = last
            self.apply_requested = last
            self.membership.committed = meta.last_membership
            self.membership.uncommitted = [
                m for m in self.membership.uncommitted
                if m.log_id is not None and m.log_id.index > last.index
            ]
            if self.flushed is not None and not log_id_ge(self.flushed.log_id, last):
                self.flushed = IOId(self.flushed.vote, self.log_ids.last)
        if last is not None and not log_id_ge(self.last_applied, last):
            self.last_applied = last
        if not log_id_ge(self.snapshot_last_log_id, last):
            self.snapshot_last_log_id = last
        # Answer every install this one covers (an older one queued behind it was skipped).
        done = [(m, r) for m, r in self.pending_installs if log_id_ge(last, m.last_log_id)]
        for _, responder in done:
            self.respond(responder, InstallSnapshotResponse(self.vote))
        self.pending_installs = [
            (m, r) for m, r in self.pending_installs if not log_id_ge(last, m.last_log_id)
        ]
