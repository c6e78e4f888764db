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

from .._errors import InvalidRequest
from .._messages import AppendEntriesRequest, AppendEntriesResponse
from .._types import Entry, MembershipChange, StoredMembership, Vote, log_id_ge
from .base import EngineBase
from .commands import AdvanceCommitted, AppendEntries, IOId, Respond


class FollowingHandler(EngineBase):
    def handle_append_entries(self, req: AppendEntriesRequest, responder: object) -> None:
        """Handle ``req``; the reply is emitted as a ``Respond(responder, ...)`` command."""
        if not req.vote >= self.vote or not req.vote.committed:
            self.respond(responder, AppendEntriesResponse(self.vote, success=False))
            return
        try:
            self._check_committed_unchanged(req.entries)
        except InvalidRequest as e:
            self.respond(responder, e)
            return
        self.accept_leader_vote(req.vote)
        if req.is_heartbeat:
            self.respond(responder, AppendEntriesResponse(self.vote, success=True))
            return

        prev = req.prev_log_id
        if not self._prev_matches(req):
            hint = self._conflict_hint(prev.index if prev is not None else 0)
            self.respond(
                responder,
                AppendEntriesResponse(self.vote, success=False, conflict=True, conflict_hint=hint),
            )
            return

        to_append = self._entries_to_append(req.entries)
        if to_append:
            self._append_as_follower(to_append)
        matching = req.entries[-1].log_id if req.entries else prev
        io = IOId(self.vote, matching)
        self.push_after_flush(
            io, Respond(responder, AppendEntriesResponse(self.vote, success=True, matching=matching))
        )
        if req.leader_commit is not None and matching is not None:
            upto_index = min(req.leader_commit.index, matching.index)
            new_committed = self.log_ids.get(upto_index)
            if new_committed is not None and not log_id_ge(self.committed, new_committed):
                # committed <= flushed: the commit index moves only once the entries are
                # durable here, so a crash can never take it backwards.
                self.push_after_flush(io, AdvanceCommitted(new_committed))

    def _check_committed_unchanged(self, entries: tuple[Entry, ...]) -> None:
        """Refuse, before touching any state, a request that would rewrite a committed
        entry: a correct leader with a diverging committed log cannot exist (§5.4)."""
        committed = self.committed
        if committed is None or not entries or entries[0].index > committed.index:
            return
        for entry in entries:
            if entry.index > committed.index:
                break
            mine = self.log_ids.get(entry.index)
            if mine is not None and mine != entry.log_id:
                raise InvalidRequest(f"entry {entry.log_id} conflicts with committed {mine}")

    def accept_leader_vote(self, vote: Vote) -> None:
        """A committed vote >= ours reached us: follow its leader (saving it if newer)."""
        leader = vote.leader_id.node_id
        if vote.partial_cmp(self.vote) != 0:
            if self.leader is not None or self.candidate is not None:
                self.step_down(leader)
            self.save_vote(vote)
        elif self.candidate is not None:
            self.candidate = None
        self.current_leader = leader
        self.leader_seen_time = self.now
        self.reset_election_timer()

    def _prev_matches(self, req: AppendEntriesRequest) -> bool:
        prev = req.prev_log_id
        if prev is None:
            return True
        if self.committed is not None and prev.index <= self.committed.index:
            # Committed entries match the leader's log (leader completeness, §5.4).
            return True
        return self.log_ids.contains(prev)

    def _conflict_hint(self, prev_index: int) -> int:
        """Where the leader should try next: never below what we have committed."""
        floor = 0 if self.committed is None else self.committed.index + 1
        last = self.log_ids.last
        if last is None or prev_index > last.index:
            hint = 0 if last is None else last.index + 1
        else:
            hint = self.log_ids.first_index_of_run(prev_index)
        return max(hint, floor)

    def _entries_to_append(self, entries: tuple[Entry, ...]) -> list[Entry]:
        """Skip the entries we already hold; truncate at the first real conflict."""
        purged = self.log_ids.purged
        for i, entry in enumerate(entries):
            if purged is not None and entry.index <= purged.index:
                continue  # covered by our snapshot: committed, hence matching
            mine = self.log_ids.get(entry.index)
            if mine == entry.log_id:
                continue
            if mine is not None:
                self.truncate_log_after(self.log_ids.get(entry.index - 1))
            return list(entries[i:])
        return []

    def _append_as_follower(self, entries: list[Entry]) -> None:
        for e in entries:
            self.log_ids.append(e.log_id)
            if isinstance(e.payload, MembershipChange):
                self.membership.append(StoredMembership(e.log_id, e.payload.membership))
        self.push(AppendEntries(self.vote, tuple(entries)))
