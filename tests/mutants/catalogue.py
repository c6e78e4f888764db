"""The catalogue of single-rule mutations the harness applies, one at a time.

Each :class:`Mutation` breaks exactly one protocol rule with a source patch — exact text
replaced in a copy of the package — so the harness can tell which of the project's checks
notice. A patch whose old text is no longer found exactly once is reported STALE: when you
rewrite the code a mutation targets, update its patch in the same change.

Adding a rule? Add its mutation here (see ``docs/simulator.md``, "Mutation testing"):
name it for the rule it breaks, say in ``description`` what the broken code does, mark it
``safety`` if a violation could lose data or serve a stale read, and point ``unit`` at the
tests written for the rule (the engine tests by default).
"""

from __future__ import annotations

from typing import Literal

import attrs

Kind = Literal["safety", "liveness", "performance"]

ENGINE_TESTS = ("tests/engine",)


@attrs.frozen
class Edit:
    """Replace ``old`` (which must occur exactly once in ``path``) by ``new``.

    ``function`` is the dotted name, inside the module at ``path``, of the function the
    edit lands in: the harness imports it from the copy and checks that its source holds
    ``new`` (the canary that the mutated code is what runs).
    """

    path: str
    function: str
    old: str
    new: str


@attrs.frozen
class Mutation:
    name: str
    description: str
    kind: Kind
    edits: tuple[Edit, ...]
    # The fast tests written for the rule: the engine tests for an engine rule.
    unit: tuple[str, ...] = ENGINE_TESTS
    # Run by ``--quick`` (the CI subset): mutants that two layers catch within the quick
    # sweep's seeds, so CI keeps them caught. Mark a mutant quick once it is.
    quick: bool = False
    # Where the row came from (issue 12's table, issue 11's defects, tests/sim).
    origin: str = ""


VOTE = "openraft_trio/_engine/vote_handler.py"
LEADER = "openraft_trio/_engine/leader_handler.py"
FOLLOWING = "openraft_trio/_engine/following_handler.py"
REPLICATION = "openraft_trio/_engine/replication_handler.py"
ENGINE = "openraft_trio/_engine/engine.py"
SNAPSHOT = "openraft_trio/_engine/snapshot_handler.py"
CORE = "openraft_trio/_core/raft_core.py"
RAFT = "openraft_trio/_core/handle.py"
ROLES = "openraft_trio/_engine/roles.py"
SESSION = "openraft_trio/_core/replication_session.py"
MEMBERSHIP = "openraft_trio/_engine/membership_handler.py"
SESSION_TABLE = "openraft_trio/sessions/_table.py"
SESSION_APPLY = "openraft_trio/sessions/_apply.py"


CATALOGUE: tuple[Mutation, ...] = (
    # -- issue 12's table -------------------------------------------------------------------
    Mutation(
        "vote-inside-lease",
        "leader stickiness: a follower inside the lease grants a (pre-)vote",
        "safety",
        (
            Edit(
                VOTE,
                "VoteHandler.handle_vote_req",
                "if engine.lease_valid_for_followers() and not req.leader_transfer and not regrant:",
                "if False and not req.leader_transfer and not regrant:",
            ),
        ),
        origin="issue 12",
    ),
    Mutation(
        "follower-lease-halved",
        "the follower side of the lease is half as long as the leader's",
        "safety",
        (
            Edit(
                ENGINE,
                "Engine.lease_valid_for_followers",
                "return seen is not None and self.now < seen + self.config.lease",
                "return seen is not None and self.now < seen + self.config.lease / 2",
            ),
        ),
        origin="issue 12",
    ),
    Mutation(
        "read-index-without-quorum-round",
        "ReadIndex answers without waiting for its quorum round of heartbeats",
        "safety",
        (
            Edit(
                LEADER,
                "LeaderHandler.resolve_reads",
                "elif acked_round >= read.read_round:",
                "elif True:",
            ),
        ),
        origin="issue 12",
    ),
    Mutation(
        "lease-always-valid",
        "the leader lease never expires (LEASE_READ always served)",
        "safety",
        (
            Edit(
                LEADER,
                "LeaderHandler.lease_valid",
                "return self.engine.now < self.quorum_ack_time() + config.lease - config.lease_clock_drift",
                "return True",
            ),
        ),
        origin="issue 12",
    ),
    Mutation(
        "check-quorum-never-steps-down",
        "check-quorum never deposes a leader that lost its quorum (reads stay safe: its "
        "lease runs out and ReadIndex needs a quorum; clients stuck on it is the harm)",
        "liveness",
        (
            Edit(
                LEADER,
                "LeaderHandler.check_quorum",
                "if engine.now >= self.quorum_ack_time() + engine.config.lease:\n"
                "            roles.step_down(engine, None)",
                "if engine.now >= self.quorum_ack_time() + engine.config.lease:\n"
                "            pass",
            ),
        ),
        origin="issue 12",
    ),
    Mutation(
        "lease-from-receipt",
        "the lease counts from when an ack was received instead of when its request was sent",
        "safety",
        (
            Edit(
                LEADER,
                "LeaderHandler.record_ack",
                "if target in acks and send_time > acks[target]:\n"
                "            acks[target] = send_time",
                "if target in acks and self.engine.now > acks[target]:\n"
                "            acks[target] = self.engine.now",
            ),
        ),
        origin="issue 12",
    ),
    Mutation(
        "ack-before-flush",
        "a follower acknowledges appended entries before they are flushed",
        "safety",
        (
            Edit(
                FOLLOWING,
                "FollowingHandler.handle_append_entries",
                "engine.push_after_flush(\n"
                "            io,\n"
                "            Respond(responder, AppendEntriesResponse(engine.vote, success=True, matching=matching)),\n"
                "        )",
                "engine.push(\n"
                "            Respond(responder, AppendEntriesResponse(engine.vote, success=True, matching=matching)),\n"
                "        )",
            ),
        ),
        origin="issue 12",
    ),
    Mutation(
        "second-vote-in-term",
        "a node grants a second candidate its vote in a term it already voted in",
        "safety",
        (
            Edit(
                VOTE,
                "VoteHandler.handle_vote_req",
                "if not req.vote >= engine.vote:",
                "if not (req.vote >= engine.vote or req.vote.term >= engine.vote.term):",
            ),
        ),
        quick=True,
        origin="issue 12",
    ),
    Mutation(
        "joint-commit-by-new-config",
        "a joint configuration commits with a majority of its last (new) voter set alone",
        "safety",
        (
            Edit(
                REPLICATION,
                "ReplicationHandler.quorum_index",
                "result = quorum_value(engine.membership.membership, index_of)",
                "last = engine.membership.membership.configs[-1]\n"
                "        ranked = sorted((index_of(v) for v in last), reverse=True)\n"
                "        result = ranked[len(ranked) // 2]",
            ),
        ),
        origin="issue 12",
    ),
    Mutation(
        "snapshot-membership-not-adopted",
        "installing a snapshot leaves the node's membership as it was (not the snapshot's)",
        "safety",
        (
            Edit(
                SNAPSHOT,
                "SnapshotHandler.on_snapshot_installed",
                "engine.membership.committed = meta.last_membership",
                "pass",
            ),
        ),
        quick=True,
        origin="issue 12",
    ),
    Mutation(
        "read-without-apply-wait",
        "ensure_linearizable returns before the read log id is applied on this node",
        "safety",
        (
            Edit(
                RAFT,
                "Raft.ensure_linearizable",
                "if read_log_id is not None:",
                "if False:",
            ),
        ),
        unit=("tests/cluster/test_reads.py", "tests/cluster/test_stale_reads.py"),
        origin="issue 12",
    ),
    # -- issue 11's defects, re-introduced ------------------------------------------------
    Mutation(
        "transfer-keeps-lease",
        "a leader that started a transfer keeps serving LEASE_READ from its lease",
        "safety",
        (
            Edit(
                LEADER,
                "LeaderHandler.lease_valid",
                "if self.leader.lease_given_up:\n            return False",
                "if False:\n            return False",
            ),
            Edit(
                LEADER,
                "LeaderHandler.ensure_linearizable",
                "if policy is ReadPolicy.LEASE_READ and leader.lease_given_up:",
                "if policy is ReadPolicy.LEASE_READ and False:",
            ),
        ),
        origin="issue 11 (a)",
    ),
    Mutation(
        "elect-ignores-own-lease",
        "elect() campaigns on a follower that heard from a live leader within the lease",
        "safety",
        (
            Edit(
                VOTE,
                "VoteHandler.elect",
                "if not engine.is_voter or engine.leader is not None or engine.lease_valid_for_followers():",
                "if not engine.is_voter or engine.leader is not None:",
            ),
        ),
        origin="issue 11 (b)",
    ),
    Mutation(
        "elect-on-leader",
        "elect() on the leader starts a new election",
        "liveness",
        (
            Edit(
                VOTE,
                "VoteHandler.elect",
                "if not engine.is_voter or engine.leader is not None or engine.lease_valid_for_followers():",
                "if not engine.is_voter or (engine.leader is None and engine.lease_valid_for_followers()):",
            ),
        ),
        origin="issue 11 (c)",
    ),
    Mutation(
        "no-startup-lease",
        "a restarted node grants votes and campaigns at once (no lease after startup)",
        "safety",
        (
            Edit(
                ENGINE,
                "Engine.startup",
                "            # election after a whole-cluster restart waits one lease.\n"
                "            self.leader_seen_time = self.now",
                "            # election after a whole-cluster restart waits one lease.\n"
                "            pass",
            ),
        ),
        origin="issue 11 (d)",
    ),
    Mutation(
        "step-down-fails-committed-writes",
        "a leader stepping down answers its committed writes as of unknown outcome",
        "liveness",
        (
            Edit(
                CORE,
                "RaftCore._quit_leader",
                "self.apply_handle.replies.extend(self._take_replies(upto))",
                "upto = -1",
            ),
        ),
        unit=("tests/cluster/test_stale_reads.py",),
        origin="issue 11 (e)",
    ),
    Mutation(
        "step-down-cancels-its-round",
        "a leader stepping down cancels the leader nursery at once, and with it the core's "
        "own storage call running in it: the SaveVote of the vote that deposed it is "
        "interrupted and the Respond granting that vote is sent before it is durable, or lost",
        "safety",
        (
            Edit(
                CORE,
                "RaftCore._quit_leader",
                "self.leader_nursery.stop_all()",
                "self.leader_nursery.stop_all()\n"
                "            self.leader_nursery._nursery.cancel_scope.cancel()",
            ),
        ),
        unit=("tests/core/test_step_down_round.py",),
        quick=True,
        origin="issue 13 (found by the trace-hash check)",
    ),
    Mutation(
        "reversion-backs-up-silently",
        "a conflict at or below what the target acknowledged backs up silently (log "
        "reversion neither reported nor halted)",
        "safety",
        (
            Edit(
                REPLICATION,
                "ReplicationHandler.handle_conflict",
                "if known is not None and prev is not None and prev.index <= known.index:",
                "if False:",
            ),
            Edit(
                REPLICATION,
                "ReplicationHandler.handle_conflict",
                "floor = -1 if progress.matching is None else progress.matching.index",
                "floor = -1",
            ),
        ),
        origin="issue 11 (f)",
    ),
    Mutation(
        "commit-past-own-flush",
        "a leader commits past its own flushed log",
        "safety",
        (
            Edit(
                REPLICATION,
                "ReplicationHandler.update_commit",
                "index = min(self.quorum_index(), own)",
                "index = self.quorum_index()",
            ),
        ),
        quick=True,
        origin="issue 11 (g)",
    ),
    # -- the mutations tests/sim/test_mutations.py used to monkeypatch --------------------
    Mutation(
        "vote-without-log-check",
        "§5.4.1: a vote is granted whatever the candidate's log",
        "safety",
        (
            Edit(
                VOTE,
                "VoteHandler.handle_vote_req",
                "if not log_id_ge(req.last_log_id, engine.last_log_id):",
                "if False:",
            ),
        ),
        quick=True,
        origin="tests/sim",
    ),
    Mutation(
        "commit-without-quorum",
        "the leader commits what its own log has flushed, without a quorum",
        "safety",
        (
            Edit(
                REPLICATION,
                "ReplicationHandler.quorum_index",
                "result = quorum_value(engine.membership.membership, index_of)",
                "result = index_of(engine.id)",
            ),
        ),
        origin="tests/sim",
    ),
    Mutation(
        "no-consistency-check",
        "§5.3: a follower appends whatever prev_log_id the leader sends",
        "safety",
        (
            Edit(
                FOLLOWING,
                "FollowingHandler._prev_matches",
                "return self.engine.log_ids.contains(prev)",
                "return True",
            ),
        ),
        quick=True,
        origin="tests/sim",
    ),
    Mutation(
        "reversion-judged-on-latest-matching",
        "a conflict is judged against the latest matching, not the stream's start: a "
        "reordered request looks like a log reversion and halts a healthy follower",
        "liveness",
        (
            Edit(
                REPLICATION,
                "ReplicationHandler.handle_conflict",
                "known = progress.stream_start_matching",
                "known = progress.matching",
            ),
        ),
        origin="tests/sim",
    ),
    # -- issue 14: the hot path ----------------------------------------------------------
    Mutation(
        "follower-redraws-timeout-per-append",
        "a follower re-draws its election timeout on every append from the leader it "
        "follows: the deadline moves earlier half the time and wakes the ticker",
        "performance",
        (
            Edit(
                ROLES,
                "follow",
                "    if same_leader:\n        engine.extend_election_timer()",
                "    if False:\n        engine.extend_election_timer()",
            ),
        ),
        origin="issue 14",
    ),
    Mutation(
        "commit-news-waits-forever",
        "replication[t] never sends a commit index without entries: an idle follower "
        "learns of a commit only with the next write",
        "liveness",
        (
            Edit(
                SESSION,
                "ReplicationSession.request_for",
                "            if index_of(self.sent) > index_of(committed)\n            else None",
                "            if False\n            else None",
            ),
        ),
        unit=("tests/core/test_replication_session.py",),
        origin="issue 14",
    ),
    # -- issue 15: membership from the shell ------------------------------------------------
    Mutation(
        "remove-learner-drops-a-voter",
        "remove_learner accepts a voter and drops it from nodes in one entry, bypassing "
        "joint consensus (a voter set whose member has no address)",
        "safety",
        (
            Edit(
                MEMBERSHIP,
                "MembershipHandler.remove_learner",
                "        if node_id in membership.voter_ids:\n            engine.respond(responder, NotALearner(node_id))",
                "        if False:\n            engine.respond(responder, NotALearner(node_id))",
            ),
        ),
        unit=("tests/engine/test_membership.py",),
        quick=True,
        origin="issue 15",
    ),
    Mutation(
        "transfer-to-non-voter-accepted",
        "a leader transfer to a learner or an unknown id is started: the leader refuses "
        "writes and gives up its lease until the transfer times out, for a target that can "
        "never win",
        "liveness",
        (
            Edit(
                LEADER,
                "LeaderHandler.transfer_leader",
                "        if not engine.membership.membership.is_voter(to):\n            if responder",
                "        if False:\n            if responder",
            ),
        ),
        unit=("tests/engine/test_membership.py",),
        origin="issue 15",
    ),
    # -- issue 16: client sessions ----------------------------------------------------------
    Mutation(
        "session-retry-applied-again",
        "the session table forgets what it applied: a command sent again after an unknown "
        "outcome is applied a second time (an increment counts twice)",
        "safety",
        (
            Edit(
                SESSION_TABLE,
                "SessionTable.begin",
                "        if seq in session.replies:",
                "        if False and seq in session.replies:",
            ),
        ),
        unit=("tests/sessions", "tests/kv/test_kv_sessions.py"),
        quick=True,
        origin="issue 16",
    ),
    Mutation(
        "session-batch-no-flush-before-a-retry",
        "the session wrapper lets a retry into the same batch as its first copy: the retry "
        "is applied again, since the first copy's reply is recorded only after the batch",
        "safety",
        (
            Edit(
                SESSION_APPLY,
                "SessionStateMachine.apply",
                "                    seq == data.seq or seq <= data.acked_seq",
                "                    seq <= data.acked_seq",
            ),
        ),
        unit=("tests/sessions",),
        quick=True,
        origin="issue 16",
    ),
)
