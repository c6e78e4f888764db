"""Engine state and the small helpers every handler shares."""

from __future__ import annotations

import random
from collections import deque
from typing import Any

from .._config import Config
from .._errors import ForwardToLeader
from .._types import Entry, LeaderId, LogId, ServerState, Vote, log_id_ge
from .commands import (
    AdvanceCommitted,
    Apply,
    Command,
    IOId,
    QuitLeader,
    Respond,
    SaveCommitted,
    SaveVote,
    TruncateLog,
)
from .log_ids import LogIdList
from .state import CandidateState, LeaderState, MembershipState


class EngineBase:
    """State of one node's protocol logic. Handlers (mixins) add the transitions."""

    def __init__(self, node_id: int, config: Config, rng: random.Random) -> None:
        self.id = node_id
        self.config = config
        self.rng = rng
        self.now = 0.0
        self.vote = Vote(LeaderId(0, None))
        self.log_ids = LogIdList()
        self.flushed: IOId | None = None
        self.committed: LogId | None = None
        self.apply_requested: LogId | None = None
        self.last_applied: LogId | None = None
        self.snapshot_last_log_id: LogId | None = None
        self.snapshot_building = False
        # Snapshots being installed for a leader, and who waits for each.
        self.pending_installs: list[tuple[Any, Any]] = []
        self.membership = MembershipState()
        self.leader: LeaderState | None = None
        self.candidate: CandidateState | None = None
        # Last time this node heard from (or, as leader, was) a live leader: the follower
        # side of the leader lease. None: never, or the lease was given up.
        self.leader_seen_time: float | None = None
        self.current_leader: int | None = None
        self.election_deadline = 0.0
        self.elect_enabled = True
        self.output: deque[Command] = deque()
        # Commands waiting for a log flush, in the order they were produced.
        self.gated: deque[tuple[IOId, Command]] = deque()

    # -- output ----------------------------------------------------------------------------

    def push(self, cmd: Command) -> None:
        self.output.append(cmd)

    def push_after_flush(self, io: IOId, cmd: Command) -> None:
        """Emit ``cmd`` once ``io`` is durable (at once if it already is)."""
        if not self.gated and io.is_flushed_by(self.flushed):
            self._release(cmd)
        else:
            self.gated.append((io, cmd))

    def _release(self, cmd: Command) -> None:
        if isinstance(cmd, AdvanceCommitted):
            self._advance_committed(cmd.committed)
        else:
            self.output.append(cmd)

    def _advance_committed(self, committed: LogId) -> None:
        """Move the commit index forward (never back): persist it, then apply."""
        if log_id_ge(self.committed, committed):
            return
        self.committed = committed
        self.membership.commit_upto(committed.index)
        self.output.append(SaveCommitted(committed))
        self.output.append(Apply(committed))
        self.apply_requested = committed

    def respond(self, responder: Any, value: Any) -> None:
        self.output.append(Respond(responder, value))

    def take_output(self) -> list[Command]:
        out = list(self.output)
        self.output.clear()
        return out

    # -- derived state ---------------------------------------------------------------------

    @property
    def last_log_id(self) -> LogId | None:
        return self.log_ids.last

    @property
    def is_leader(self) -> bool:
        return self.leader is not None

    @property
    def is_voter(self) -> bool:
        return self.membership.membership.is_voter(self.id)

    @property
    def server_state(self) -> ServerState:
        if self.leader is not None:
            return ServerState.LEADER
        if self.candidate is not None and not self.candidate.pre_vote:
            return ServerState.CANDIDATE
        if self.is_voter:
            return ServerState.FOLLOWER
        return ServerState.LEARNER

    def other_voters(self) -> tuple[int, ...]:
        return tuple(sorted(self.membership.membership.voter_ids - {self.id}))

    def replication_targets(self) -> tuple[int, ...]:
        m = self.membership.membership
        return tuple(sorted((set(m.nodes) | m.voter_ids) - {self.id}))

    def lease_valid_for_followers(self) -> bool:
        """Follower side of the lease: a live leader was heard from within ``lease``."""
        if self.leader is not None:
            return True
        t = self.leader_seen_time
        return t is not None and self.now < t + self.config.lease

    # -- transitions shared by handlers ------------------------------------------------------

    def reset_election_timer(self) -> None:
        """Draw the next election deadline: ``now + uniform(min, max)``.

        After hearing from a leader, no voter grants a (pre-)vote until its lease from that
        leader ends (leader stickiness), so campaigning earlier is wasted and costs a whole
        extra timeout. Then the randomized range starts where our own lease ends:
        ``leader_seen + lease + uniform(0, max - min)`` — the spread that avoids split
        votes is kept, the doomed first attempt is not made.
        """
        c = self.config
        deadline = self.now + self.rng.uniform(c.election_timeout_min, c.election_timeout_max)
        if self.leader is None and self.leader_seen_time is not None:
            spread = c.election_timeout_max - c.election_timeout_min
            lease_end = self.leader_seen_time + c.lease + self.rng.uniform(0, spread)
            deadline = max(deadline, lease_end)
        self.election_deadline = deadline

    def save_vote(self, vote: Vote) -> None:
        """Adopt ``vote`` and persist it; commands after this run once it is durable."""
        self.vote = vote
        self.push(SaveVote(vote))
        # save_vote is durable on return and flushes every earlier append first (I/O
        # ordering), so once it returns everything submitted so far is flushed under it.
        self.flushed = IOId(vote, self.log_ids.last)

    def step_down(self, new_leader: int | None) -> None:
        """Stop leading or campaigning; become a follower (or learner) of ``new_leader``."""
        self.candidate = None
        if self.leader is not None:
            leader = self.leader
            self.leader = None
            self.push(QuitLeader(new_leader, self.committed))
            for read in leader.pending_reads:
                self.respond(read.responder, ForwardToLeader(new_leader, self.node_of(new_leader)))
            if leader.pending_change is not None:
                self.respond(
                    leader.pending_change.responder,
                    ForwardToLeader(new_leader, self.node_of(new_leader), maybe_committed=True),
                )
            self.leader_seen_time = None
        self.current_leader = new_leader
        self.reset_election_timer()

    def truncate_log_after(self, after: LogId | None) -> None:
        """Delete our log after ``after`` (a real conflict): memberships appended in the
        deleted part revert, and ``flushed`` cannot point past the new end."""
        self.push(TruncateLog(after))
        self.log_ids.truncate_after(after)
        self.membership.truncate_after(-1 if after is None else after.index)
        if self.flushed is not None and not log_id_ge(after, self.flushed.log_id):
            self.flushed = IOId(self.flushed.vote, after)

    def node_of(self, node_id: int | None) -> Any:
        if node_id is None:
            return None
        return self.membership.membership.nodes.get(node_id)

    # Provided by LeaderHandler (declared here so every handler can call them).
    def leader_append_entries(self, entries: list[Entry]) -> None:
        raise NotImplementedError

    def start_stream(self, target: int, prev: LogId | None) -> None:
        raise NotImplementedError

    def replicate_all(self) -> None:
        raise NotImplementedError

    # Provided by FollowingHandler.
    def accept_leader_vote(self, vote: Vote) -> None:
        raise NotImplementedError

    # Provided by MembershipHandler.
    def after_commit(self) -> None:
        raise NotImplementedError

    def on_flushed(self, io: IOId) -> None:
        """Storage reports ``io`` durable: release the commands that waited for it."""
        if self.flushed is None or not io.is_flushed_by(self.flushed):
            self.flushed = io
        while self.gated and self.gated[0][0].is_flushed_by(self.flushed):
            self._release(self.gated.popleft()[1])
