"""Leading: client writes, leader transfer, the leader lease and linearizable reads.

Replication progress and commit are :mod:`replication_handler`'s; membership changes are
:mod:`membership_handler`'s.

* Leader lease / check-quorum (openraft ``leader_lease.md``): each ack carries the time its
  request was *sent*; the lease runs from the latest time a quorum acked. A leader whose
  lease ran out (``lease = election_timeout_max``) steps down.
* Reads (Ongaro §6.4): READ_INDEX waits for a quorum of acks to heartbeats sent after the
  read arrived — proven by a round number, not by time, since a clock may not tick between
  the read and a heartbeat already on its way — and for the leader's blank entry to
  commit; LEASE_READ answers at once while
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
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .._errors import ForwardToLeader, NotAVoter, QuorumNotEnough
from .._messages import TransferLeaderRequest
from .._types import Entry, LogId, Payload, ReadPolicy, Vote, log_id_ge, max_log_id
from . import roles
from .commands import SendHeartbeat, SendTransferLeader
from .quorum import quorum_value
from .state import LeaderState, PendingRead

if TYPE_CHECKING:
    from .engine import Engine


class LeaderHandler:
    """What only the leader does (built only on a leader: ``leader`` is never None)."""

    __slots__ = ("engine", "leader")

    def __init__(self, engine: Engine, leader: LeaderState) -> None:
        self.engine = engine
        self.leader = leader

    # -- writes ----------------------------------------------------------------------------

    def client_write(self, payloads: Sequence[Payload]) -> list[LogId]:
        """Append client payloads as entries of our term; returns their log ids.

        Raises:
            ForwardToLeader: a leader transfer is in progress (ask its target).
        """
        engine, leader = self.engine, self.leader
        if leader.transfer_to is not None:
            # Handing leadership over: no new writes, ask the new leader.
            raise ForwardToLeader(leader.transfer_to, engine.node_of(leader.transfer_to))
        last = engine.log_ids.last
        start = last.index + 1 if last is not None else 0
        entries = [
            Entry(LogId(leader.vote.leader_id, start + i), p) for i, p in enumerate(payloads)
        ]
        engine.append_to_log(entries)
        engine.replication_handler().replicate_all()
        return [e.log_id for e in entries]

    # -- leader transfer (Ongaro's thesis §3.10) -------------------------------------------

    def transfer_leader(self, to: int, responder: Any = None) -> None:
        """Hand leadership to voter ``to``: stop accepting writes, bring ``to`` up to date,
        then tell it to campaign at once (its vote request carries the transfer flag, so
        followers' leases do not block it). Gives up after ``election_timeout_max``.

        A target that is not a voter of the effective membership (a learner, an unknown
        id) is refused at once with ``NotAVoter``: it could never win the election, and
        nothing changes (writes keep flowing, the lease is kept). ``responder`` (if any)
        gets ``None`` once the transfer started, or when ``to`` is this leader."""
        engine, leader = self.engine, self.leader
        if not engine.membership.membership.is_voter(to):
            if responder is not None:
                engine.respond(responder, NotAVoter(to))
            return
        if responder is not None:
            engine.respond(responder, None)
        if to == engine.id:
            return
        leader.transfer_to = to
        # From here on the target may be let through every follower's lease: give up our
        # own lease for the rest of this term, even if the transfer times out and we lead
        # on (acks that arrive later do not bring it back).
        leader.lease_given_up = True
        leader.transfer_deadline = engine.now + engine.config.election_timeout_max
        leader.transfer_sent = False
        self.maybe_send_transfer()

    def maybe_send_transfer(self) -> None:
        """Tell the transfer's target to campaign once it holds our whole log."""
        engine, leader = self.engine, self.leader
        if leader.transfer_to is None or leader.transfer_sent:
            return
        progress = leader.progress.get(leader.transfer_to)
        if progress is None or progress.matching != engine.log_ids.last:
            return  # not up to date yet: replication continues
        leader.transfer_sent = True
        engine.push(
            SendTransferLeader(
                TransferLeaderRequest(leader.vote, leader.transfer_to, engine.log_ids.last)
            )
        )

    def check_transfer_timeout(self) -> None:
        leader = self.leader
        if leader.transfer_to is not None and self.engine.now >= leader.transfer_deadline:
            leader.transfer_to = None  # the target did not take over: lead on
            leader.transfer_sent = False

    # -- lease -----------------------------------------------------------------------------

    def handle_heartbeat_ack(
        self, target: int, *, vote: Vote, send_time: float, resp_vote: Vote, read_round: int
    ) -> None:
        """A heartbeat sent at ``send_time`` under ``vote`` (carrying ReadIndex round
        ``read_round``) was answered with ``resp_vote``, not greater than ours."""
        leader = self.leader
        if vote != leader.vote or resp_vote != vote:
            return
        if target in leader.ack_round and read_round > leader.ack_round[target]:
            leader.ack_round[target] = read_round
        self.record_ack(target, send_time, force_reads=True)

    def record_ack(self, target: int, send_time: float, force_reads: bool = False) -> None:
        """``target`` answered a request sent at ``send_time``: the lease may move on."""
        acks = self.leader.ack_time
        if target in acks and send_time > acks[target]:
            acks[target] = send_time
            force_reads = True
        if force_reads and self.leader.pending_reads:
            self.resolve_reads()

    def quorum_ack_time(self) -> float:
        """The latest send time such that a quorum acknowledged a request sent then."""
        engine, acks = self.engine, self.leader.ack_time
        return quorum_value(
            engine.membership.membership,
            lambda voter: math.inf if voter == engine.id else acks.get(voter, -math.inf),
        )

    def quorum_ack_round(self) -> int:
        """The highest ReadIndex round a quorum of voters has acknowledged."""
        engine, rounds = self.engine, self.leader.ack_round
        result = quorum_value(
            engine.membership.membership,
            lambda voter: math.inf if voter == engine.id else rounds.get(voter, -1),
        )
        # Only ourselves in every config: every round is acknowledged at once.
        return sys.maxsize if result == math.inf else int(result)

    def lease_valid(self) -> bool:
        """LEASE_READ may be served locally: a quorum acknowledged a request sent less than
        ``lease - lease_clock_drift`` ago, and no leader transfer began in this term."""
        if self.leader.lease_given_up:
            return False
        config = self.engine.config
        return self.engine.now < self.quorum_ack_time() + config.lease - config.lease_clock_drift

    def check_quorum(self) -> None:
        """Check-quorum: a leader not acked by a quorum within the lease steps down."""
        engine = self.engine
        if engine.now < self.leader.check_quorum_grace_until:
            return
        if engine.now >= self.quorum_ack_time() + engine.config.lease:
            roles.step_down(engine, None)

    # -- reads -----------------------------------------------------------------------------

    def ensure_linearizable(self, policy: ReadPolicy, responder: Any) -> None:
        """Start a linearizable read; ``Respond(responder, read_log_id)`` when it is safe.

        The caller must then wait until ``applied >= read_log_id`` before reading.
        """
        engine, leader = self.engine, self.leader
        read_log_id = max_log_id(engine.io.committed, leader.noop_log_id)
        if policy is ReadPolicy.LEASE_READ and leader.lease_given_up:
            # A transfer began in this term: the lease proves nothing, confirm leadership
            # with a quorum round instead (the read stays linearizable, only slower).
            policy = ReadPolicy.READ_INDEX
        if policy is ReadPolicy.LEASE_READ and not self.lease_valid():
            engine.respond(responder, QuorumNotEnough("leader lease expired"))
            return
        read_round = leader.read_round
        if policy is ReadPolicy.READ_INDEX:
            leader.read_round = read_round = read_round + 1
        leader.pending_reads.append(
            PendingRead(
                read_time=engine.now,
                read_round=read_round,
                read_log_id=read_log_id,
                policy=policy,
                responder=responder,
            )
        )
        self.resolve_reads()
        if leader.pending_reads and policy is ReadPolicy.READ_INDEX:
            engine.push(SendHeartbeat(read_round))

    def resolve_reads(self) -> None:
        """Answer the pending reads that are now safe (or whose lease ran out)."""
        engine, leader = self.engine, self.leader
        if not leader.pending_reads:
            return
        if not log_id_ge(engine.io.committed, leader.noop_log_id):
            return  # reads wait for the blank entry of this term to commit
        acked_round = self.quorum_ack_round()
        lease_ok = self.lease_valid()
        waiting = []
        for read in leader.pending_reads:
            if read.policy is ReadPolicy.LEASE_READ:
                if lease_ok:
                    engine.respond(read.responder, read.read_log_id)
                else:
                    engine.respond(read.responder, QuorumNotEnough("leader lease expired"))
            elif acked_round >= read.read_round:
                engine.respond(read.responder, read.read_log_id)
            else:
                waiting.append(read)
        leader.pending_reads = waiting
