"""Leading: client writes, replication progress, commit, leader lease and reads.

* Commit (Raft §5.3, §5.4.2, Figure 8): an index commits once a quorum — a majority of
  *each* voter set while joint — has it durable (the leader counts its own *flushed* log,
  not its accepted one) **and** the entry there is of the leader's own term. Earlier-term
  entries commit indirectly. ``committed`` never moves backwards, and never past the
  leader's own flushed log (``committed <= flushed`` on every node).
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
* Leader lease / check-quorum (openraft ``leader_lease.md``): each ack carries the time its
  request was *sent*; the lease runs from the latest time a quorum acked. A leader whose
  lease ran out (``lease = election_timeout_max``) steps down.
* Reads (Ongaro §6.4): READ_INDEX waits for a quorum of acks to heartbeats sent after the
  read arrived — proven by a round number, not by time, since a clock may not tick between
  the read and a heartbeat already on its way — and for the leader's blank entry to commit; LEASE_READ answers at once while
  ``now < quorum_ack_time + lease - lease_clock_drift``, else ``QuorumNotEnough``.
  A leader that started a transfer gives its lease up for the rest of its term (the
  target's vote request crosses every follower's lease): LEASE_READ then runs as
  READ_INDEX.
* A write is answered with its success once committed and applied, even if this node
  steps down meanwhile: ``QuitLeader`` carries the commit index, and only writes after it
  are of unknown outcome.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from typing import Any

from .._errors import ForwardToLeader, QuorumNotEnough
from .._messages import TransferLeaderRequest
from .._types import (
    Entry,
    LogId,
    MembershipChange,
    Payload,
    ReadPolicy,
    StoredMembership,
    Vote,
    log_id_ge,
    max_log_id,
)
from .base import EngineBase
from .commands import (
    AppendEntries,
    Replicate,
    ReportLogReversion,
    SendHeartbeat,
    SendTransferLeader,
)
from .state import LeaderState, PendingRead


class LeaderHandler(EngineBase):
    # -- writes ----------------------------------------------------------------------------

    def _require_leader(self) -> LeaderState:
        if self.leader is None:
            raise ForwardToLeader(self.current_leader, self.node_of(self.current_leader))
        return self.leader

    def client_write(self, payloads: list[Payload]) -> list[LogId]:
        """Append client payloads as entries of our term; returns their log ids.

        Raises:
            ForwardToLeader: this node does not lead.
        """
        leader = self._require_leader()
        if leader.transfer_to is not None:
            # Handing leadership over: no new writes, ask the new leader.
            raise ForwardToLeader(leader.transfer_to, self.node_of(leader.transfer_to))
        start = self.log_ids.last.index + 1 if self.log_ids.last is not None else 0
        entries = [
            Entry(LogId(leader.vote.leader_id, start + i), p) for i, p in enumerate(payloads)
        ]
        self.leader_append_entries(entries)
        self.replicate_all()
        return [e.log_id for e in entries]

    def leader_append_entries(self, entries: list[Entry]) -> None:
        for e in entries:
            self.log_ids.append(e.log_id)
            if isinstance(e.payload, MembershipChange):
                self.membership.append(StoredMembership(e.log_id, e.payload.membership))
        self.push(AppendEntries(self.vote, tuple(entries)))

    # -- replication streams ---------------------------------------------------------------

    def start_stream(self, target: int, prev: LogId | None) -> None:
        """(Re)start ``replication[target]`` right after ``prev``, in a new epoch."""
        assert self.leader is not None
        p = self.leader.progress[target]
        p.epoch += 1
        p.stream_prev = prev
        p.stream_start_matching = p.matching
        p.sent_upto = self.log_ids.last
        p.sent_committed = self.committed
        self.push(Replicate(target, p.epoch, prev, self.log_ids.last, self.committed))

    def replicate_all(self) -> None:
        """Tell every stream about new entries or a new commit index (one command each)."""
        assert self.leader is not None
        last, committed = self.log_ids.last, self.committed
        for target, p in self.leader.progress.items():
            if p.halted or (p.sent_upto == last and p.sent_committed == committed):
                continue
            p.sent_upto, p.sent_committed = last, committed
            self.push(Replicate(target, p.epoch, p.stream_prev, last, committed))

    def _session_ok(self, vote: Vote, target: int, epoch: int) -> bool:
        leader = self.leader
        if leader is None or vote != leader.vote:
            return False
        p = leader.progress.get(target)
        return p is not None and p.epoch == epoch and not p.halted

    def handle_replication_progress(
        self, target: int, vote: Vote, epoch: int, matching: LogId | None, send_time: float
    ) -> None:
        """``target`` durably holds our log up to ``matching`` (reply to a request sent at
        ``send_time``)."""
        if not self._session_ok(vote, target, epoch):
            return
        assert self.leader is not None
        p = self.leader.progress[target]
        if not log_id_ge(p.matching, matching):
            p.matching = matching
        self._record_ack(target, send_time)
        self.update_commit()
        self._maybe_send_transfer()

    def handle_replication_conflict(
        self, target: int, vote: Vote, epoch: int, prev: LogId | None, hint: int, send_time: float
    ) -> None:
        """``target`` lacks ``prev``; restart its stream from ``hint`` (one step back), or
        handle a log reversion (see the module docstring)."""
        if not self._session_ok(vote, target, epoch):
            return
        assert self.leader is not None
        p = self.leader.progress[target]
        self._record_ack(target, send_time)
        tried = 0 if prev is None else prev.index
        next_index = min(hint, tried)
        known = p.stream_start_matching
        if known is not None and prev is not None and prev.index <= known.index:
            self._handle_log_reversion(target, next_index)
            return
        floor = -1 if p.matching is None else p.matching.index
        new_prev_index = max(next_index - 1, floor)
        self.start_stream(target, self.log_ids.get(new_prev_index))

    def _handle_log_reversion(self, target: int, reverted_to: int) -> None:
        """``target`` lost entries it acknowledged; it now needs entries from
        ``reverted_to``. Its acknowledgements are void: ``matching`` falls to None."""
        assert self.leader is not None
        p = self.leader.progress[target]
        lost = p.matching
        assert lost is not None  # at least the stream's start matching
        p.matching = None
        p.log_reversions += 1
        p.reverted_to = reverted_to
        allowed = self.config.allow_log_reversion
        self.push(ReportLogReversion(target, lost, reverted_to, allowed))
        if allowed:
            self.start_stream(target, self.log_ids.get(reverted_to - 1))
        else:
            p.halted = True

    def handle_higher_vote(self, vote: Vote) -> None:
        if vote > self.vote:
            self.step_down(vote.leader_id.node_id if vote.committed else None)
            self.save_vote(vote)

    def handle_heartbeat_ack(
        self, target: int, vote: Vote, send_time: float, resp_vote: Vote, read_round: int = 0
    ) -> None:
        """A heartbeat sent at ``send_time`` (carrying ReadIndex round ``read_round``) under
        ``vote`` was answered with ``resp_vote``."""
        if resp_vote > self.vote:
            self.handle_higher_vote(resp_vote)
            return
        leader = self.leader
        if leader is None or vote != leader.vote or resp_vote != vote:
            return
        if target in leader.ack_round and read_round > leader.ack_round[target]:
            leader.ack_round[target] = read_round
        self._record_ack(target, send_time, force_reads=True)

    # -- leader transfer (Ongaro's thesis §3.10) -------------------------------------------

    def transfer_leader(self, to: int) -> None:
        """Hand leadership to voter ``to``: stop accepting writes, bring ``to`` up to date,
        then tell it to campaign at once (its vote request carries the transfer flag, so
        followers' leases do not block it). Gives up after ``election_timeout_max``."""
        leader = self.leader
        if leader is None or to == self.id or not self.membership.membership.is_voter(to):
            return
        leader.transfer_to = to
        # From here on the target may be let through every follower's lease: give up our
        # own lease for the rest of this term, even if the transfer times out and we lead
        # on (acks that arrive later do not bring it back).
        leader.lease_given_up = True
        leader.transfer_deadline = self.now + self.config.election_timeout_max
        leader.transfer_sent = False
        self._maybe_send_transfer()

    def _maybe_send_transfer(self) -> None:
        leader = self.leader
        if leader is None or leader.transfer_to is None or leader.transfer_sent:
            return
        p = leader.progress.get(leader.transfer_to)
        if p is None or p.matching != self.log_ids.last:
            return  # not up to date yet: replication continues
        leader.transfer_sent = True
        self.push(
            SendTransferLeader(
                TransferLeaderRequest(leader.vote, leader.transfer_to, self.log_ids.last)
            )
        )

    def check_transfer_timeout(self) -> None:
        leader = self.leader
        if leader is not None and leader.transfer_to is not None and (
            self.now >= leader.transfer_deadline
        ):
            leader.transfer_to = None  # the target did not take over: lead on
            leader.transfer_sent = False

    # -- commit ----------------------------------------------------------------------------

    def _quorum_value(self, value_of: Callable[[int], float]) -> float:
        """The highest value a quorum has reached: per voter set the value a majority is at
        or above, the lowest over the sets (joint consensus); ``inf`` with no voter set."""
        result = math.inf
        for config in self.membership.membership.configs:
            values = sorted((value_of(v) for v in config), reverse=True)
            result = min(result, values[len(values) // 2])
        return result

    def _quorum_index(self) -> int:
        assert self.leader is not None
        own = self.flushed.log_id if self.flushed is not None else None
        progress = self.leader.progress

        def index_of(v: int) -> float:
            m = own if v == self.id else (progress[v].matching if v in progress else None)
            return -1 if m is None else m.index

        result = self._quorum_value(index_of)
        return -1 if result == math.inf else int(result)

    def update_commit(self) -> None:
        """Advance ``committed`` to the quorum index if that entry is of our term (Fig. 8).

        Never past our own flushed log (``committed <= flushed`` on every node): a commit
        index persisted beyond the durable log would leave a crashed leader unable to
        restart. Our flush completing calls this again.
        """
        leader = self.leader
        if leader is None:
            return
        own = -1 if self.flushed is None or self.flushed.log_id is None else self.flushed.log_id.index
        index = min(self._quorum_index(), own)
        if self.committed is not None and index <= self.committed.index:
            return
        candidate = self.log_ids.get(index)
        if candidate is None or candidate.leader_id != leader.vote.leader_id:
            return
        self._advance_committed(candidate)
        self.after_commit()
        if self.leader is None:
            return
        self.replicate_all()
        self._resolve_reads()

    # -- lease and reads -------------------------------------------------------------------

    def _record_ack(self, target: int, send_time: float, force_reads: bool = False) -> None:
        assert self.leader is not None
        acks = self.leader.ack_time
        if target in acks and send_time > acks[target]:
            acks[target] = send_time
            force_reads = True
        if force_reads and self.leader.pending_reads:
            self._resolve_reads()

    def quorum_ack_time(self) -> float:
        """The latest send time such that a quorum acknowledged a request sent then."""
        leader = self.leader
        if leader is None:
            return -math.inf
        acks = leader.ack_time
        return self._quorum_value(lambda v: math.inf if v == self.id else acks.get(v, -math.inf))

    def quorum_ack_round(self) -> int:
        """The highest ReadIndex round a quorum of voters has acknowledged."""
        leader = self.leader
        if leader is None:
            return -1
        rounds = leader.ack_round
        result = self._quorum_value(lambda v: math.inf if v == self.id else rounds.get(v, -1))
        # Only ourselves in every config: every round is acknowledged at once.
        return sys.maxsize if result == math.inf else int(result)

    def lease_valid(self) -> bool:
        """LEASE_READ may be served locally: a quorum acknowledged a request sent less than
        ``lease - lease_clock_drift`` ago, and no leader transfer began in this term."""
        leader = self.leader
        if leader is None or leader.lease_given_up:
            return False
        c = self.config
        return self.now < self.quorum_ack_time() + c.lease - c.lease_clock_drift

    def check_quorum(self) -> None:
        """Check-quorum: a leader not acked by a quorum within the lease steps down."""
        leader = self.leader
        if leader is None or self.now < leader.check_quorum_grace_until:
            return
        if self.now >= self.quorum_ack_time() + self.config.lease:
            self.step_down(None)

    def ensure_linearizable(self, policy: ReadPolicy, responder: Any) -> None:
        """Start a linearizable read; ``Respond(responder, read_log_id)`` when it is safe.

        The caller must then wait until ``applied >= read_log_id`` before reading.
        """
        try:
            leader = self._require_leader()
        except ForwardToLeader as e:
            self.respond(responder, e)
            return
        read_log_id = max_log_id(self.committed, leader.noop_log_id)
        if policy is ReadPolicy.LEASE_READ and leader.lease_given_up:
            # A transfer began in this term: the lease proves nothing, confirm leadership
            # with a quorum round instead (the read stays linearizable, only slower).
            policy = ReadPolicy.READ_INDEX
        if policy is ReadPolicy.LEASE_READ and not self.lease_valid():
            self.respond(responder, QuorumNotEnough("leader lease expired"))
            return
        read_round = leader.read_round
        if policy is ReadPolicy.READ_INDEX:
            leader.read_round = read_round = read_round + 1
        leader.pending_reads.append(
            PendingRead(self.now, read_round, read_log_id, policy, responder)
        )
        self._resolve_reads()
        if leader.pending_reads and policy is ReadPolicy.READ_INDEX:
            self.push(SendHeartbeat(read_round))

    def _resolve_reads(self) -> None:
        leader = self.leader
        if leader is None or not leader.pending_reads:
            return
        if not log_id_ge(self.committed, leader.noop_log_id):
            return  # reads wait for the blank entry of this term to commit
        acked_round = self.quorum_ack_round()
        lease_ok = self.lease_valid()
        waiting = []
        for r in leader.pending_reads:
            if r.policy is ReadPolicy.LEASE_READ:
                if lease_ok:
                    self.respond(r.responder, r.read_log_id)
                else:
                    self.respond(r.responder, QuorumNotEnough("leader lease expired"))
            elif acked_round >= r.read_round:
                self.respond(r.responder, r.read_log_id)
            else:
                waiting.append(r)
        leader.pending_reads = waiting
