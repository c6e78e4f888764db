"""A leader's replication: streams, progress, conflicts, log reversion and commit.

* Replication sessions: a reply counts only if it is for our vote and the target's current
  stream ``epoch``; ``matching`` only moves forward (but see log reversion).
* Conflicts back up in one step to the follower's hint, never below ``matching``.
* Log reversion (PROTOCOL-NOTES "Replication"; openraft ``allow_log_reversion``): a target
  that lacks an entry at or below what it acknowledged lost its log (a wiped disk, a
  restored backup). Such a conflict is certain only for a request that left after the
  acknowledgement arrived — a reordered request may have reached the target before it —
  so only a stream *started* after ``matching`` was known can prove it (a conflict on an
  older stream backs up to ``matching`` and the new stream asks again). Then ``matching``
  falls to None (the target no longer counts toward the commit quorum), the reversion is
  reported, and the stream either halts for the rest of our term (default) or, with
  ``Config.allow_log_reversion``, restarts from the target's hint. A success reply below
  ``matching`` is no such sign: it is an older request's reply arriving late.
* Commit (Raft §5.3, §5.4.2, Figure 8): an index commits once a quorum — a majority of
  *each* voter set while joint — has it durable (the leader counts its own *flushed* log,
  not its accepted one) **and** the entry there is of the leader's own term. Earlier-term
  entries commit indirectly. ``committed`` never moves backwards, and never past the
  leader's own flushed log (``committed <= flushed`` on every node).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from .._types import LogId, Vote, log_id_ge
from .commands import Replicate, ReportLogReversion
from .leader_handler import LeaderHandler
from .quorum import quorum_value
from .state import LeaderState, ProgressEntry

if TYPE_CHECKING:
    from .engine import Engine


class ReplicationHandler:
    """The leader's view of its followers' logs (built only on a leader)."""

    __slots__ = ("engine", "leader")

    def __init__(self, engine: Engine, leader: LeaderState) -> None:
        self.engine = engine
        self.leader = leader

    # -- streams ---------------------------------------------------------------------------

    def start_stream(self, target: int, prev: LogId | None) -> None:
        """(Re)start ``replication[target]`` right after ``prev``, in a new epoch."""
        engine = self.engine
        progress = self.leader.progress[target]
        progress.epoch += 1
        progress.stream_prev = prev
        progress.stream_start_matching = progress.matching
        progress.sent_upto = engine.log_ids.last
        progress.sent_committed = engine.io.committed
        engine.push(
            Replicate(
                target=target,
                epoch=progress.epoch,
                prev=prev,
                upto=engine.log_ids.last,
                committed=engine.io.committed,
            )
        )

    def replicate_all(self) -> None:
        """Tell every stream about new entries or a new commit index (one command each)."""
        engine = self.engine
        last, committed = engine.log_ids.last, engine.io.committed
        for target, progress in self.leader.progress.items():
            if progress.halted or (
                progress.sent_upto == last and progress.sent_committed == committed
            ):
                continue
            progress.sent_upto, progress.sent_committed = last, committed
            engine.push(
                Replicate(
                    target=target,
                    epoch=progress.epoch,
                    prev=progress.stream_prev,
                    upto=last,
                    committed=committed,
                )
            )

    def _session(self, vote: Vote, target: int, epoch: int) -> ProgressEntry | None:
        """``target``'s progress if a reply for ``vote`` and ``epoch`` is for its current
        stream, else None (the reply is stale)."""
        if vote != self.leader.vote:
            return None
        progress = self.leader.progress.get(target)
        if progress is None or progress.epoch != epoch or progress.halted:
            return None
        return progress

    # -- replies ---------------------------------------------------------------------------

    def handle_progress(
        self, target: int, *, vote: Vote, epoch: int, matching: LogId | None, send_time: float
    ) -> None:
        """``target`` durably holds our log up to ``matching`` (reply to a request sent at
        ``send_time``)."""
        progress = self._session(vote, target, epoch)
        if progress is None:
            return
        if not log_id_ge(progress.matching, matching):
            progress.matching = matching
        handler = LeaderHandler(self.engine, self.leader)
        handler.record_ack(target, send_time)
        self.update_commit()
        if self.engine.leader is self.leader:
            handler.maybe_send_transfer()

    def handle_conflict(
        self, target: int, *, vote: Vote, epoch: int, prev: LogId | None, hint: int,
        send_time: float,
    ) -> None:
        """``target`` lacks ``prev``; restart its stream from ``hint`` (one step back), or
        handle a log reversion (see the module docstring)."""
        progress = self._session(vote, target, epoch)
        if progress is None:
            return
        LeaderHandler(self.engine, self.leader).record_ack(target, send_time)
        tried = 0 if prev is None else prev.index
        next_index = min(hint, tried)
        known = progress.stream_start_matching
        if known is not None and prev is not None and prev.index <= known.index:
            self._handle_log_reversion(target, progress, next_index)
            return
        floor = -1 if progress.matching is None else progress.matching.index
        new_prev_index = max(next_index - 1, floor)
        self.start_stream(target, self.engine.log_ids.get(new_prev_index))

    def _handle_log_reversion(self, target: int, progress: ProgressEntry, reverted_to: int) -> None:
        """``target`` lost entries it acknowledged; it now needs entries from
        ``reverted_to``. Its acknowledgements are void: ``matching`` falls to None."""
        lost = progress.matching
        assert lost is not None  # at least the stream's start matching
        progress.matching = None
        progress.log_reversions += 1
        progress.reverted_to = reverted_to
        allowed = self.engine.config.allow_log_reversion
        self.engine.push(
            ReportLogReversion(
                target=target, lost_matching=lost, reverted_to=reverted_to, allowed=allowed
            )
        )
        if allowed:
            self.start_stream(target, self.engine.log_ids.get(reverted_to - 1))
        else:
            progress.halted = True

    # -- commit ----------------------------------------------------------------------------

    def quorum_index(self) -> int:
        """The highest index a quorum holds durably (our own *flushed* log counts)."""
        engine = self.engine
        flushed = engine.io.flushed
        own = None if flushed is None else flushed.log_id
        progress = self.leader.progress

        def index_of(voter: int) -> float:
            if voter == engine.id:
                matching = own
            else:
                matching = progress[voter].matching if voter in progress else None
            return -1 if matching is None else matching.index

        result = quorum_value(engine.membership.membership, index_of)
        return -1 if result == math.inf else int(result)

    def update_commit(self) -> None:
        """Advance ``committed`` to the quorum index if that entry is of our term (Fig. 8).

        Never past our own flushed log (``committed <= flushed`` on every node): a commit
        index persisted beyond the durable log would leave a crashed leader unable to
        restart. Our flush completing calls this again.
        """
        engine = self.engine
        flushed = engine.io.flushed
        own = -1 if flushed is None or flushed.log_id is None else flushed.log_id.index
        index = min(self.quorum_index(), own)
        committed = engine.io.committed
        if committed is not None and index <= committed.index:
            return
        candidate = engine.log_ids.get(index)
        if candidate is None or candidate.leader_id != self.leader.vote.leader_id:
            return
        engine.advance_committed(candidate)
        engine.membership_handler().after_commit()
        if engine.leader is not self.leader:
            return  # removed from the cluster: stepped down
        self.replicate_all()
        LeaderHandler(engine, self.leader).resolve_reads()
