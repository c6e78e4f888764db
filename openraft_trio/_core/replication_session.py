"""The decisions of ``replication[target]``, without I/O: :class:`ReplicationSession`.

The Engine decides *what* the target needs (``Replicate(epoch, prev, upto, committed)``)
and judges every reply; the session decides *when and how* the stream sends it:

* **Batches.** Within an epoch, entries go in batches of up to ``max_payload_entries``,
  cut before the entry that would take a batch over ``max_payload_bytes`` (an entry larger
  than that goes alone). After a cut, the next read asks for only as many entries as fitted.
* **Pipelining.** Up to ``max_inflight_append_entries`` requests are out at once; each is
  sent right after the previous one, without waiting for its reply.
* **Stalls and retries.** A conflict or a higher vote stops the stream until the Engine
  starts a new epoch. An RPC failure resends from the last acknowledged entry after a
  backoff: ``Unreachable`` backs off exponentially (from ``heartbeat_interval`` up to
  ``election_timeout_max``), other failures retry after half a heartbeat interval.
* **Commit news rides on appends.** A new commit index alone never sends a request at once:
  it leaves with the next batch of entries. If none comes within ``heartbeat_interval`` of
  sending entries the target was not yet told are committed, a request without entries
  carries it. The stream is never woken for a commit index alone.
* **Idle refresh.** An idle stream re-sends the commit index every
  ``election_timeout_max``: a follower that restarted lost its (volatile) commit index.
* **Snapshot fallback.** When the entries to send next were purged, send the snapshot.

The stream (``replication.py``) does what the session asks — read entries, send, sleep —
and feeds it the outcomes. Every method is synchronous and takes the time as an argument,
so the unit tests drive it step by step and assert each decision exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import final

import attrs

from .._config import Config
from .._errors import RPCError, Unreachable
from .._messages import AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotResponse
from .._types import Entry, LogId, Vote, index_of
from .notifications import HigherVote, ReplicationConflict, ReplicationProgress

ReplicationNote = ReplicationProgress | ReplicationConflict | HigherVote


@final
@attrs.frozen
class Wait:
    """Sleep until ``until`` (``math.inf``: until woken), then ask again."""

    until: float


@final
@attrs.frozen
class ReadEntries:
    """Read log entries ``[start, stop)`` and pass them to
    :meth:`ReplicationSession.request_for`; ``start == stop`` reads nothing (a request
    that carries only the commit index)."""

    start: int
    stop: int


@final
@attrs.frozen
class SendSnapshot:
    """The entries the target needs were purged: send it the current snapshot."""


Action = Wait | ReadEntries | SendSnapshot



@final
class ReplicationSession:
    """The state and the decisions of one leader-to-target stream (module docstring)."""

    __slots__ = (
        "acked",
        "backoff",
        "commit_due",
        "commit_sent_at",
        "config",
        "entry_size",
        "epoch",
        "fetch_count",
        "inflight",
        "retry_at",
        "sent",
        "sent_committed",
        "stalled",
        "target",
        "vote",
    )

    def __init__(
        self, *, target: int, vote: Vote, config: Config, entry_size: Callable[[Entry], int]
    ) -> None:
        self.target = target
        self.vote = vote
        self.config = config
        self.entry_size = entry_size
        self.epoch = -1
        self.sent: LogId | None = None  # last log id sent in this epoch (ahead of acked)
        self.acked: LogId | None = None  # last log id the target acknowledged
        self.sent_committed: LogId | None = None  # the commit index last sent
        self.inflight = 0
        self.stalled = False  # after a conflict or a higher vote: wait for a new epoch
        self.retry_at: float | None = None  # after an RPC failure: resend from acked then
        self.backoff = config.heartbeat_interval
        # When the commit index must go out even without entries to ride on.
        self.commit_due: float | None = None
        self.commit_sent_at = -math.inf
        # How many entries the next read asks for: max_payload_entries, fewer after a
        # batch was cut by max_payload_bytes (large entries: do not read 300 to send 2).
        self.fetch_count = config.max_payload_entries

    # -- what next -----------------------------------------------------------------------

    def next_action(
        self,
        now: float,
        *,
        epoch: int,
        prev: LogId | None,
        upto: LogId | None,
        committed: LogId | None,
    ) -> Action:
        """What the stream does next, given the core's latest instruction."""
        if epoch != self.epoch:
            # Requests of the old epoch still out finish on their own; their replies are
            # dropped (they still count against the window).
            self.epoch, self.sent, self.acked = epoch, prev, prev
            self.stalled, self.retry_at, self.sent_committed = False, None, None
            self.commit_due = None
        if self.retry_at is not None:
            if now < self.retry_at:
                return Wait(self.retry_at)
            self.retry_at, self.sent = None, self.acked
        if self.stalled:
            return Wait(math.inf)
        window_full = self.inflight >= self.config.max_inflight_append_entries
        start = index_of(self.sent) + 1
        if index_of(upto) >= start:
            if window_full:
                return Wait(math.inf)  # the reply that frees a slot wakes the stream
            return ReadEntries(start, min(index_of(upto) + 1, start + self.fetch_count))
        if committed is not None and committed != self.sent_committed:
            # Commit news with no entries to ride on: it goes out when due.
            if self.commit_due is None:
                self.commit_due = now + self.config.heartbeat_interval
            if now < self.commit_due:
                return Wait(self.commit_due)
            if window_full:
                return Wait(math.inf)
            return ReadEntries(start, start)
        return self._idle(now, committed)

    def _idle(self, now: float, committed: LogId | None) -> Wait:
        """Nothing to send. Wake for the commit index of entries sent but not yet known
        committed (it is not announced by a wakeup), and for the periodic refresh."""
        heartbeat = self.config.heartbeat_interval
        refresh_at = self.commit_sent_at + self.config.election_timeout_max
        if committed is None:
            refresh_at = math.inf  # nothing to refresh
        elif self.inflight:
            # Never a deadline already past while a request is out: that would spin.
            refresh_at = max(refresh_at, now + heartbeat)
        elif now >= refresh_at:
            self.sent_committed = None  # re-send it (as commit news)
            self.commit_due = now + heartbeat
            return Wait(self.commit_due)
        if self.commit_due is not None:
            if index_of(self.sent) <= index_of(self.sent_committed):
                self.commit_due = None  # the target knows the commit of all it was sent
            elif now >= self.commit_due:
                self.commit_due = now + heartbeat  # not committed yet: look again later
        if self.commit_due is not None:
            return Wait(min(self.commit_due, refresh_at))
        return Wait(refresh_at)

    # -- sending -------------------------------------------------------------------------

    def request_for(
        self, read: ReadEntries, entries: list[Entry], committed: LogId | None, now: float
    ) -> AppendEntriesRequest | SendSnapshot:
        """The request to send with the ``entries`` that ``read`` returned (recorded as
        sent), or :class:`SendSnapshot` if the log no longer holds ``read.start``."""
        if read.stop > read.start and (not entries or entries[0].index != read.start):
            return SendSnapshot()
        if entries:
            entries = self._within_byte_budget(entries)
        req = AppendEntriesRequest(self.vote, self.sent, tuple(entries), committed)
        self.inflight += 1
        if entries:
            self.sent = entries[-1].log_id
        self.sent_committed = committed
        self.commit_sent_at = now
        self.commit_due = (
            now + self.config.heartbeat_interval
            if index_of(self.sent) > index_of(committed)
            else None
        )
        return req

    def _within_byte_budget(self, entries: list[Entry]) -> list[Entry]:
        """The longest prefix of ``entries`` within ``max_payload_bytes`` (at least one
        entry); adapts how many entries the next batch reads."""
        budget, total, kept = self.config.max_payload_bytes, 0, 0
        entry_size = self.entry_size
        for entry in entries:
            total += entry_size(entry)
            if total > budget and kept:
                break
            kept += 1
        if kept < len(entries):
            self.fetch_count = kept
            return entries[:kept]
        self.fetch_count = min(self.fetch_count * 2, self.config.max_payload_entries)
        return entries

    # -- replies -------------------------------------------------------------------------

    def on_reply(
        self,
        req: AppendEntriesRequest,
        epoch: int,
        result: AppendEntriesResponse | RPCError,
        now: float,
        send_time: float,
    ) -> tuple[ReplicationNote | None, bool]:
        """Take the outcome of ``req`` (sent in ``epoch`` at ``send_time``): what to tell the
        core (if anything), and whether the stream must be woken (a slot freed in a full
        window, or a retry to schedule)."""
        wake = self.inflight == self.config.max_inflight_append_entries
        self.inflight -= 1
        if isinstance(result, RPCError):
            if epoch == self.epoch and self.retry_at is None:
                # Unreachable backs off; other failures retry after half a heartbeat.
                unreachable = isinstance(result, Unreachable)
                self._retry(now, None if unreachable else self.config.heartbeat_interval / 2)
                wake = True
            return None, wake
        if epoch != self.epoch or self.stalled:
            return None, wake
        if result.success:
            self.backoff = self.config.heartbeat_interval
            last = req.entries[-1].log_id if req.entries else req.prev_log_id
            if index_of(last) > index_of(self.acked):
                self.acked = last
            return (
                ReplicationProgress(self.target, self.vote, epoch, result.matching, send_time),
                wake,
            )
        self.stalled = True
        if result.conflict:
            hint = result.conflict_hint if result.conflict_hint is not None else 0
            return (
                ReplicationConflict(
                    self.target, self.vote, epoch, req.prev_log_id, hint, send_time
                ),
                wake,
            )
        return HigherVote(self.target, result.vote), wake

    def on_snapshot_reply(
        self,
        epoch: int,
        result: InstallSnapshotResponse | RPCError,
        last: LogId | None,
        now: float,
        send_time: float,
    ) -> ReplicationNote | None:
        """Take the outcome of sending the snapshot up to ``last`` (in ``epoch``, at
        ``send_time``): what to tell the core, if anything. A failure is retried after a
        backoff; a higher vote stalls the stream; an install streams entries after
        ``last``."""
        if isinstance(result, RPCError):
            self._retry(now, None)
            return None
        if epoch != self.epoch:
            return None
        if result.vote > self.vote:
            self.stalled = True
            return HigherVote(self.target, result.vote)
        self.sent = self.acked = last
        return ReplicationProgress(self.target, self.vote, epoch, last, send_time)

    def _retry(self, now: float, delay: float | None) -> None:
        """Resend from the last acknowledged entry after ``delay``, or after the backoff
        (``None``), which doubles each time up to ``election_timeout_max`` (a success
        resets it). Never a zero delay: a zero-delay retry would spin a MockClock world."""
        self.retry_at = now + (self.backoff if delay is None else delay)
        self.backoff = min(self.backoff * 2, self.config.election_timeout_max)
