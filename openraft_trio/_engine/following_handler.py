"""Following a leader: AppendEntries on the receiving side (Raft §5.3).

* Accept only a vote >= ours; a greater one is saved first (and ends any candidacy or
  leadership of ours).
* Consistency check on ``prev_log_id``. On a mismatch, reply with a conflict hint — our
  last index + 1, or the first index of the conflicting leader's run — so the leader backs
  up in one step (PROTOCOL-NOTES "Replication").
* Truncate only at a real conflict: same index, different log id. Entries we already have
  are skipped, so a duplicated or reordered request never truncates anything, and never a
  committed entry.
* Reply success only after the appended entries are durable (the reply is gated on the
  flush of ``IOId(vote, matching)``); apply committed entries only once flushed too.
* ``committed = min(leader_commit, matching)``, and it never moves backwards.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._errors import InvalidRequest
from .._messages import AppendEntriesRequest, AppendEntriesResponse
from .._types import Entry, log_id_ge
from . import roles
from .commands import AdvanceCommitted, IOId, Respond

if TYPE_CHECKING:
    from .engine import Engine


class FollowingHandler:
    """AppendEntries from a leader (a view over the Engine for one input)."""

    __slots__ = ("engine",)

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def handle_append_entries(self, req: AppendEntriesRequest, responder: object) -> None:
        """Handle ``req``; the reply is emitted as a ``Respond(responder, ...)`` command."""
        engine = self.engine
        if not req.vote >= engine.vote or not req.vote.committed:
            engine.respond(responder, AppendEntriesResponse(engine.vote, success=False))
            return
        try:
            self._check_committed_unchanged(req.entries)
        except InvalidRequest as e:
            engine.respond(responder, e)
            return
        roles.follow(engine, req.vote)
        if req.is_heartbeat:
            engine.respond(responder, AppendEntriesResponse(engine.vote, success=True))
            return

        prev = req.prev_log_id
        if not self._prev_matches(req):
            hint = self._conflict_hint(prev.index if prev is not None else 0)
            engine.respond(
                responder,
                AppendEntriesResponse(engine.vote, success=False, conflict=True, conflict_hint=hint),
            )
            return

        to_append = self._entries_to_append(req.entries)
        if to_append:
            engine.append_to_log(to_append)
        matching = req.entries[-1].log_id if req.entries else prev
        io = IOId(engine.vote, matching)
        engine.push_after_flush(
            io,
            Respond(responder, AppendEntriesResponse(engine.vote, success=True, matching=matching)),
        )
        if req.leader_commit is not None and matching is not None:
            upto_index = min(req.leader_commit.index, matching.index)
            new_committed = engine.log_ids.get(upto_index)
            if new_committed is not None and not log_id_ge(engine.io.committed, new_committed):
                # committed <= flushed: the commit index moves only once the entries are
                # durable here, so a crash can never take it backwards.
                engine.push_after_flush(io, AdvanceCommitted(new_committed))

    def _check_committed_unchanged(self, entries: tuple[Entry, ...]) -> None:
        """Refuse, before touching any state, a request that would rewrite a committed
        entry: a correct leader with a diverging committed log cannot exist (§5.4)."""
        committed = self.engine.io.committed
        if committed is None or not entries or entries[0].index > committed.index:
            return
        for entry in entries:
            if entry.index > committed.index:
                break
            mine = self.engine.log_ids.get(entry.index)
            if mine is not None and mine != entry.log_id:
                raise InvalidRequest(f"entry {entry.log_id} conflicts with committed {mine}")

    def _prev_matches(self, req: AppendEntriesRequest) -> bool:
        prev = req.prev_log_id
        if prev is None:
            return True
        committed = self.engine.io.committed
        if committed is not None and prev.index <= committed.index:
            # Committed entries match the leader's log (leader completeness, §5.4).
            return True
        return self.engine.log_ids.contains(prev)

    def _conflict_hint(self, prev_index: int) -> int:
        """Where the leader should try next: never below what we have committed."""
        committed = self.engine.io.committed
        floor = 0 if committed is None else committed.index + 1
        log_ids = self.engine.log_ids
        last = log_ids.last
        if last is None or prev_index > last.index:
            hint = 0 if last is None else last.index + 1
        else:
            hint = log_ids.first_index_of_run(prev_index)
        return max(hint, floor)

    def _entries_to_append(self, entries: tuple[Entry, ...]) -> list[Entry]:
        """Skip the entries we already hold; truncate at the first real conflict."""
        log_ids = self.engine.log_ids
        purged = log_ids.purged
        for i, entry in enumerate(entries):
            if purged is not None and entry.index <= purged.index:
                continue  # covered by our snapshot: committed, hence matching
            mine = log_ids.get(entry.index)
            if mine == entry.log_id:
                continue
            if mine is not None:
                self.engine.truncate_log_after(log_ids.get(entry.index - 1))
            return list(entries[i:])
        return []
