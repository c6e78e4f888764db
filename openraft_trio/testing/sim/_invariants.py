"""Raft's safety properties, checked after every core round of every node.

Checked (Raft paper Figure 3, plus the log pointers of openraft ``log_pointers.md``):

* **election safety**: at most one leader per term;
* **leader append-only**: a leader never overwrites or deletes entries in its log;
* **log matching**: if two logs hold an entry with the same index and log id, they are
  identical in all entries up to that index;
* **leader completeness**: a committed entry is in the log of every later leader;
* **state machine safety**: no two nodes commit (hence apply) different entries at one
  index;
* the committed index of a node never moves backwards, across restarts too when the log
  store persists it durably (``MemLogStore``); a ``FileLogStore`` persists it lazily
  (Raft's commit index is volatile state, §5.3), so there it may restart lower;
* ``applied <= committed`` on every node;
* **no acknowledged write lost**: the log id a client was told is committed stays the
  committed entry at that index;
* **no log reversion**: storage keeps what it acknowledged, so a leader never finds a
  follower's log reverted (a report is a false alarm that halts replication to that
  follower, or durable data really lost);
* **one vote per term**: the candidate a node voted for in a term never changes, across
  restarts too (the vote is durable before it is granted); following the leader elected
  in that term, a committed vote, is not a second vote;
* ``committed <= flushed`` (the flushed log, or what an installed snapshot covers) and
  ``snapshot <= applied`` on every node;
* **a vote acted on is durable**: after every core round, the vote a node holds is the
  one on its (simulated) disk — a vote is never granted before it is durable;
* **check-quorum**: a leader that no quorum acknowledged for a lease has stepped down;
* **committed writes are answered as such**: a write reported ``maybe_committed`` is not
  committed already;
* **membership agreement**: nodes that committed a membership at one log id hold the same
  one, and a node whose commit index is past a committed membership has adopted it (or a
  later one) — whether it got there by replication or by installing a snapshot.

Every violation carries the seed, the virtual time and a readable explanation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, final

import attrs

from ..._engine.log_ids import LogIdList
from ..._types import LogId, Vote
from ...storage import MemLogStore


@final
@attrs.frozen
class Violation:
    """A broken invariant: the ``seed`` and virtual ``time`` it was found at, its ``kind``
    and what was seen (``message``)."""

    seed: int
    time: float
    kind: str
    message: str

    def __str__(self) -> str:
        return f"[seed {self.seed} t={self.time:.6f}s] {self.kind}: {self.message}"


def _runs(ids: LogIdList) -> list[tuple[int, Any]]:
    return [(k.index, k.leader_id) for k in ids.key_log_ids()]


@final
class InvariantChecker:
    """Feed it every node's RaftCore after each round (``observe``)."""

    FULL_CHECK_EVERY = 200

    def __init__(self, seed: int, now: Callable[[], float]) -> None:
        self.seed = seed
        self.now = now
        self.violations: list[Violation] = []
        self.leader_of_term: dict[int, int] = {}
        self.committed_log: dict[int, LogId] = {}
        self.max_commit_index = -1
        self.node_commit: dict[int, int] = {}
        self.leader_last: dict[int, tuple[int, LogId | None]] = {}
        self.logs: dict[int, LogIdList] = {}
        self.log_shape: dict[int, tuple[int, int]] = {}
        self.acked: dict[int, LogId] = {}  # index -> log id of an acknowledged write
        self.observations = 0
        self.snapshots: set[tuple[int, int]] = set()  # (node, snapshot index) seen
        self.max_purged = -1
        self.on_state: Callable[[int, str, int, int], None] | None = None
        self._last_state: dict[int, tuple[str, int, int]] = {}
        # False when the log store persists the committed log id lazily (FileLogStore):
        # then a restarted node's committed index is checked afresh, not against before.
        self.committed_survives_restart = True
        self.reversions_seen: set[tuple[int, int, int]] = set()  # (leader, term, target)
        # The runtime ticks each node when its deadline is due, so a leader past its lease
        # must have stepped down. A hand-driven engine (ticks chosen by a test) sets False.
        self.ticks_on_deadline = True
        # (node, term) -> the candidate it voted for; survives node_down (votes are durable).
        self.votes: dict[tuple[int, int], int] = {}
        # index -> (log id, membership) of every membership seen committed on some node.
        self.committed_memberships: dict[int, tuple[LogId, Any]] = {}
        self._not_adopted: set[tuple[int, int]] = set()
        self._stale_leaders: set[tuple[int, int]] = set()
        self._overdue_since: dict[tuple[int, int], float] = {}  # (leader, term) -> time
        # (node, term it led) -> its commit index in the round it stopped leading.
        self.stepdown_commit: dict[tuple[int, int], int] = {}

    def fail(self, kind: str, message: str) -> None:
        """Record a violation of kind ``kind`` at the current time."""
        self.violations.append(Violation(self.seed, self.now(), kind, message))

    def node_down(self, node_id: int) -> None:
        """Forget what was observed of node ``node_id`` (it crashed or stopped); votes are kept."""
        self.logs.pop(node_id, None)
        self.log_shape.pop(node_id, None)
        self.leader_last.pop(node_id, None)
        self._last_state.pop(node_id, None)
        if not self.committed_survives_restart:
            self.node_commit.pop(node_id, None)

    def reported_unknown(self, log_id: LogId, node: int) -> None:
        """A client was told by ``node`` that its write at ``log_id`` is of unknown outcome
        (``ForwardToLeader.maybe_committed``): ``node`` must not have committed it by the
        round in which it stopped leading (another node may have: ``node`` cannot know)."""
        upto = self.stepdown_commit.get((node, log_id.term), -1)
        if log_id.index <= upto and self.committed_log.get(log_id.index) == log_id:
            self.fail(
                "committed write reported unknown",
                f"node {node} committed {log_id} (up to index {upto}) when it stepped down, "
                f"yet told the client the write may not have taken effect",
            )

    def acknowledged(self, log_id: LogId) -> None:
        """A client was told ``log_id`` committed."""
        known = self.committed_log.get(log_id.index)
        if known is not None and known != log_id:
            self.fail("acknowledged write lost", f"client acked {log_id} but {known} committed")
        self.acked[log_id.index] = log_id

    # -- per round ---------------------------------------------------------------------

    def observe(self, core: Any) -> None:
        """Check the invariants against the engine of ``core`` (a node's ``RaftCore``) now;
        violations are recorded, not raised."""
        eng = core.engine
        nid: int = eng.id
        self.observations += 1
        ids: LogIdList = eng.log_ids
        self.logs[nid] = ids
        snap = eng.snapshot_last_log_id
        if snap is not None:
            self.snapshots.add((nid, snap.index))
        if ids.purged is not None:
            self.max_purged = max(self.max_purged, ids.purged.index)
        committed: LogId | None = eng.committed
        c_index = -1 if committed is None else committed.index
        role = eng.server_state.value
        term = eng.vote.term
        state = (role, term, c_index)
        if self._last_state.get(nid) != state:
            self._last_state[nid] = state
            if self.on_state is not None:
                self.on_state(nid, role, term, c_index)

        # The log pointers' order (purged <= snapshot <= applied <= ... <= accepted).
        for kind, details in eng.io.violations(ids):
            self.fail(kind, f"node {nid}: {details}")
        self._check_vote_durable(nid, eng.vote, getattr(core, "log_store", None))
        self._check_vote(nid, eng.vote)
        self._check_membership(nid, eng.membership.committed, c_index)
        prev_c = self.node_commit.get(nid, -1)
        if c_index < prev_c:
            self.fail("committed regressed", f"node {nid}: committed {prev_c} -> {c_index}")
        if c_index > prev_c:
            self._record_commits(nid, ids, max(prev_c, -1) + 1, c_index)
            self.node_commit[nid] = c_index

        if eng.leader is not None:
            if self.ticks_on_deadline:
                self._check_quorum(nid, eng)
            self._check_leader(nid, term, ids)
            self._check_no_log_reversion(nid, term, eng.leader.progress)
        else:
            last = self.leader_last.pop(nid, None)
            if last is not None:
                # The round it stepped down in: what it had committed by then.
                self.stepdown_commit[(nid, last[0])] = c_index

        shape = (len(ids.key_log_ids()), -1 if ids.last is None else ids.last.index)
        old = self.log_shape.get(nid)
        self.log_shape[nid] = shape
        if old is None or shape[0] != old[0] or shape[1] < old[1] or (
            self.observations % self.FULL_CHECK_EVERY == 0
        ):
            self._check_log_matching(nid)

    def _check_quorum(self, nid: int, eng: Any) -> None:
        """Check-quorum: a leader that no quorum acknowledged for a lease steps down within
        one heartbeat interval of noticing it (a membership change can make the quorum
        stale at once: the tick that deposes the leader comes right after)."""
        config = eng.config
        key = (nid, eng.vote.term)
        deadline = max(
            eng.quorum_ack_time() + config.lease, eng.leader.check_quorum_grace_until
        )
        if eng.now <= deadline:
            self._overdue_since.pop(key, None)
            return
        since = self._overdue_since.setdefault(key, eng.now)
        if eng.now - since > config.heartbeat_interval and key not in self._stale_leaders:
            self._stale_leaders.add(key)
            self.fail(
                "check-quorum",
                f"leader {nid} of term {eng.vote.term} still leads {eng.now - since:.3f}s "
                f"after its lease ran out",
            )

    def _check_vote_durable(self, nid: int, vote: Vote, store: object) -> None:
        """After a core round every ``SaveVote`` it ran is complete: the vote the node acts
        on (and may have granted in that round) is the one on its disk. Checked on every
        ``MemLogStore`` (the simulated disk lets a cancellation interrupt a vote write)."""
        if not isinstance(store, MemLogStore):
            return
        durable = store.vote
        if durable != vote and not (durable is None and vote.term == 0):
            self.fail(
                "vote not durable",
                f"node {nid} acts on vote {vote} after a round, but its disk holds {durable}",
            )

    def _check_vote(self, nid: int, vote: Any) -> None:
        """A granted (uncommitted) vote never changes candidate within a term. Following the
        elected leader of that term (a committed vote) is not a vote."""
        candidate = vote.leader_id.node_id
        if candidate is None or vote.committed:
            return
        key = (nid, vote.leader_id.term)
        before = self.votes.setdefault(key, candidate)
        if before != candidate:
            self.fail(
                "two votes in a term",
                f"node {nid} voted for {before} and then {candidate} in term {key[1]}",
            )
            self.votes[key] = candidate

    def _check_membership(self, nid: int, committed: Any, c_index: int) -> None:
        log_id = committed.log_id
        if log_id is not None:
            known = self.committed_memberships.get(log_id.index)
            if known is None:
                self.committed_memberships[log_id.index] = (log_id, committed.membership)
            elif known != (log_id, committed.membership):
                self.fail(
                    "membership agreement",
                    f"node {nid} committed {committed.membership} at {log_id}, another node "
                    f"{known[1]} at {known[0]}",
                )
        have = -1 if log_id is None else log_id.index
        newer = [i for i in self.committed_memberships if have < i <= c_index]
        if newer and (nid, max(newer)) not in self._not_adopted:
            i = max(newer)
            self._not_adopted.add((nid, i))
            self.fail(
                "membership not adopted",
                f"node {nid} committed up to {c_index} but holds the membership of index "
                f"{have}, not the one committed at {i} ({self.committed_memberships[i][1]})",
            )

    def _record_commits(self, nid: int, ids: LogIdList, start: int, stop: int) -> None:
        for i in range(start, stop + 1):
            log_id = ids.get(i)
            if log_id is None:
                continue  # purged: covered by a snapshot
            known = self.committed_log.get(i)
            if known is None:
                self.committed_log[i] = log_id
                acked = self.acked.get(i)
                if acked is not None and acked != log_id:
                    self.fail(
                        "acknowledged write lost",
                        f"client acked {acked} at index {i}, node {nid} committed {log_id}",
                    )
                self._check_current_leaders_have(i, log_id)
            elif known != log_id:
                self.fail(
                    "state machine safety",
                    f"node {nid} committed {log_id} at index {i}, another node {known}",
                )
        self.max_commit_index = max(self.max_commit_index, stop)

    def _check_current_leaders_have(self, index: int, log_id: LogId) -> None:
        """A newly known committed entry must be in the log of every leader of a later term."""
        for lid, (term, _) in self.leader_last.items():
            ids = self.logs.get(lid)
            if term <= log_id.term or ids is None:
                continue
            if ids.purged is not None and index <= ids.purged.index:
                continue
            if ids.get(index) != log_id:
                self.fail(
                    "leader completeness",
                    f"leader {lid} of term {term} lacks committed {log_id} "
                    f"(has {ids.get(index)})",
                )

    def _check_leader(self, nid: int, term: int, ids: LogIdList) -> None:
        holder = self.leader_of_term.get(term)
        if holder is None:
            self.leader_of_term[term] = nid
            self._check_completeness(nid, term, ids)
        elif holder != nid:
            self.fail("election safety", f"term {term} has two leaders: {holder} and {nid}")
        prev = self.leader_last.get(nid)
        if prev is not None and prev[0] == term and prev[1] is not None:
            last = prev[1]
            if ids.get(last.index) != last and not (
                ids.purged is not None and last.index < ids.purged.index
            ):
                self.fail(
                    "leader append-only",
                    f"leader {nid} of term {term} lost or rewrote {last} "
                    f"(now {ids.get(last.index)})",
                )
        self.leader_last[nid] = (term, ids.last)

    def _check_no_log_reversion(self, nid: int, term: int, progress: dict[int, Any]) -> None:
        for target, p in progress.items():
            if p.log_reversions and (nid, term, target) not in self.reversions_seen:
                self.reversions_seen.add((nid, term, target))
                self.fail(
                    "log reversion",
                    f"leader {nid} of term {term} found node {target}'s log reverted "
                    f"(it needs entries from index {p.reverted_to} again)",
                )

    def _check_completeness(self, nid: int, term: int, ids: LogIdList) -> None:
        last = -1 if ids.last is None else ids.last.index
        if last < self.max_commit_index:
            self.fail(
                "leader completeness",
                f"node {nid} became leader of term {term} with last index {last} < "
                f"committed {self.max_commit_index}",
            )
            return
        for i, log_id in self.committed_log.items():
            mine = ids.get(i)
            if mine is not None and mine != log_id:
                self.fail(
                    "leader completeness",
                    f"node {nid} became leader of term {term} with {mine} at {i}, "
                    f"committed {log_id}",
                )
                return

    def _check_log_matching(self, nid: int) -> None:
        mine = self.logs[nid]
        for other, theirs in self.logs.items():
            if other == nid:
                continue
            bad = _log_matching_breach(mine, theirs)
            if bad is not None:
                self.fail(
                    "log matching",
                    f"nodes {nid} and {other} share {bad} but differ before it",
                )

    def final_check(self) -> None:
        """At the end of a run: every acknowledged write must be the committed entry at its index."""
        for i, log_id in sorted(self.acked.items()):
            known = self.committed_log.get(i)
            if known != log_id:
                self.fail(
                    "acknowledged write lost",
                    f"client acked {log_id}, final committed entry at {i} is {known}",
                )


def _log_matching_breach(a: LogIdList, b: LogIdList) -> LogId | None:
    """A log id both logs hold although they differ at some earlier index, else None.

    Walks both logs' leader runs over their common index range: after the first index where
    they differ, no later index may hold the same log id in both.
    """
    lo = max(a.first_index, b.first_index)
    hi = min(-1 if a.last is None else a.last.index, -1 if b.last is None else b.last.index)
    if hi < lo:
        return None
    # Boundaries where either log's run changes, within [lo, hi].
    points = sorted(
        {lo}
        | {i for i, _ in _runs(a) if lo < i <= hi}
        | {i for i, _ in _runs(b) if lo < i <= hi}
    )
    diverged = False
    for k, start in enumerate(points):
        la, lb = a.leader_at(start), b.leader_at(start)
        if la != lb:
            diverged = True
        elif diverged:
            end = points[k + 1] - 1 if k + 1 < len(points) else hi
            return LogId(la, end) if la is not None else None
    return None
