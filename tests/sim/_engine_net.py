"""A hand-driven network of Engines for scripted scenarios and stateful property tests.

Commands become messages in ``outbox``; nothing is delivered until the test says so
(``deliver`` / ``deliver_all``), so a scenario controls exactly who hears what, in which
order, and can replay stale or duplicated messages.

Storage is modelled per node. ``Disk`` is what survives a restart: the vote, the flushed
log entries, the committed log id, the purge point and the state machine's last snapshot.
Appends (and commit index saves, ordered with them) reach the disk at once, or — with
``delayed_flush=True`` — only when the test calls ``flush(node)``; until then appends are
readable (``logs``) but not durable, and a restart loses them. A vote save, a truncation
and a purge flush every earlier write first (writes are durable in submission order). The state machine (``StateMachine``) is volatile: a
restarted node comes back with its snapshot's state and applies the rest again.

Message kinds: ``vote``/``vote_resp``, ``append``/``append_resp`` (replication),
``heartbeat``/``heartbeat_resp`` (the heartbeat task's AppendEntries, carrying the send time
and the ReadIndex round), ``snapshot``/``snapshot_resp`` (a full snapshot, sent when the
entries a target needs are purged) and ``transfer`` (a leader transfer). A ``Respond`` to a
responder ``("reply", token)`` — a client read, write or membership change — lands in
``replies[token]``.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import attrs

from openraft_trio._config import Config
from openraft_trio._engine import Engine, IOId
from openraft_trio._engine import commands as cmd
from openraft_trio._messages import (
    AppendEntriesRequest,
    AppendEntriesResponse,
    InstallSnapshotResponse,
    VoteRequest,
)
from openraft_trio._types import (
    Entry,
    LogId,
    Membership,
    MembershipChange,
    Node,
    Snapshot,
    SnapshotMeta,
    StoredMembership,
    Vote,
    log_id_ge,
)


@attrs.define
class Msg:
    kind: str
    src: int
    dst: int
    body: Any
    meta: Any = None


@attrs.define
class Disk:
    """What survives a restart."""

    vote: Vote | None = None
    entries: dict[int, Entry] = attrs.field(factory=dict)
    committed: LogId | None = None
    purged: LogId | None = None
    snapshot: Snapshot | None = None


@attrs.define
class StateMachine:
    """The applied state (volatile): how far it got, and the last membership it applied."""

    applied: LogId | None = None
    membership: StoredMembership = attrs.field(factory=StoredMembership)


class EngineNet:
    def __init__(
        self,
        n: int,
        config: Config,
        seed: int = 0,
        *,
        delayed_flush: bool = False,
        observer: Callable[[Engine], None] | None = None,
    ) -> None:
        self.config = config
        self.seed = seed
        self.delayed_flush = delayed_flush
        self.observer = observer
        self.ids = list(range(1, n + 1))
        self.disks = {i: Disk() for i in self.ids}
        # The readable log (durable entries plus appends not flushed yet) and the appends
        # waiting for a flush, per node.
        self.logs: dict[int, dict[int, Entry]] = {i: {} for i in self.ids}
        # A pending item is an append ``(IOId, entries)`` or a commit save ``(None, log id)``.
        self.pending: dict[int, list[tuple[IOId | None, Any]]] = {i: [] for i in self.ids}
        self.sms = {i: StateMachine() for i in self.ids}
        self.engines: dict[int, Engine] = {}
        self.outbox: list[Msg] = []
        self.now = 0.0
        self.streams: dict[tuple[int, int], dict[str, Any]] = {}
        self.truncations: list[tuple[int, LogId | None]] = []
        self.replies: dict[Any, Any] = {}
        # Every vote saved, in order: (node, vote).
        self.saved_votes: list[tuple[int, Vote]] = []
        # Every vote granted (not pre-votes), in order: (node, the vote it granted).
        self.grants: list[tuple[int, Vote]] = []
        # Every entry applied, in order: (node, log id).
        self.applied: list[tuple[int, LogId]] = []
        self.restarts = 0
        for i in self.ids:
            self.engines[i] = self._new_engine(i)

    def _new_engine(self, i: int) -> Engine:
        eng = Engine(i, self.config, random.Random(f"{self.seed}-{i}-{self.restarts}"))
        eng.now = self.now
        return eng

    # -- setup and control ----------------------------------------------------------------

    def initialize(self, first: int, voters: set[int] | None = None) -> None:
        """Initialize ``first`` with ``voters`` (default: every node); the other nodes are
        learners."""
        voter_ids = set(self.ids) if voters is None else voters
        m = Membership(configs=[voter_ids], nodes={i: Node(f"n{i}") for i in self.ids})
        self.engines[first].initialize(m)
        self.run(first)

    def restart(self, i: int) -> None:
        """Rebuild node ``i`` from its disk (vote, flushed log, committed, snapshot); its
        messages in flight and its unflushed appends are lost."""
        self.restarts += 1
        disk = self.disks[i]
        self.pending[i] = []
        self.logs[i] = dict(disk.entries)
        sm = self.sms[i] = StateMachine()
        snapshot = disk.snapshot
        if snapshot is not None:
            sm.applied = snapshot.meta.last_log_id
            sm.membership = snapshot.meta.last_membership
        applied_index = -1 if sm.applied is None else sm.applied.index
        log = [disk.entries[k] for k in sorted(disk.entries)]
        eng = self._new_engine(i)
        eng.startup(
            vote=disk.vote,
            log_ids=[e.log_id for e in log],
            purged=disk.purged,
            committed=disk.committed,
            last_applied=sm.applied,
            applied_membership=sm.membership,
            log_memberships=[
                StoredMembership(e.log_id, e.payload.membership)
                for e in log
                if isinstance(e.payload, MembershipChange) and e.index > applied_index
            ],
            snapshot=None if snapshot is None else snapshot.meta.last_log_id,
        )
        self.engines[i] = eng
        self.outbox = [m for m in self.outbox if i not in (m.src, m.dst)]
        self._drop_streams(i)
        self.run(i)

    def advance(self, dt: float) -> None:
        self.now += dt
        for eng in self.engines.values():
            eng.now = self.now

    def elect(self, i: int) -> None:
        self.engines[i].elect()
        self.run(i)

    def flush(self, i: int) -> None:
        """Storage makes node ``i``'s pending appends durable and reports them."""
        self._flush_pending(i)
        self.run(i)

    def heartbeat(self, i: int) -> None:
        """Node ``i``'s heartbeat tasks send one heartbeat each (if it leads)."""
        eng = self.engines[i]
        if eng.leader is not None:
            self._send_heartbeats(i, eng.leader.read_round)

    # -- running commands -----------------------------------------------------------------

    def run(self, i: int) -> None:
        """Run node ``i``'s commands, in order; then show it to the observer."""
        eng = self.engines[i]
        while eng.output:
            self._run_command(i, eng.output.popleft())
        if self.observer is not None:
            self.observer(eng)

    def _run_command(self, i: int, c: cmd.Command) -> None:
        eng = self.engines[i]
        disk = self.disks[i]
        if isinstance(c, cmd.SaveVote):
            self._flush_pending(i)
            disk.vote = c.vote
            self.saved_votes.append((i, c.vote))
        elif isinstance(c, cmd.AppendEntries):
            for e in c.entries:
                self.logs[i][e.index] = e
            io = IOId(c.vote, c.entries[-1].log_id)
            self.pending[i].append((io, c.entries))
            if not self.delayed_flush:
                self._flush_pending(i)
        elif isinstance(c, cmd.TruncateLog):
            self._flush_pending(i)
            self.truncations.append((i, c.after))
            keep = -1 if c.after is None else c.after.index
            for log in (self.logs[i], disk.entries):
                for k in [k for k in log if k > keep]:
                    del log[k]
        elif isinstance(c, cmd.PurgeLog):
            self._flush_pending(i)
            for log in (self.logs[i], disk.entries):
                for k in [k for k in log if k <= c.upto.index]:
                    del log[k]
            if not log_id_ge(disk.purged, c.upto):
                disk.purged = c.upto
        elif isinstance(c, cmd.SaveCommitted):
            # Durable in order with the appends before it (like FileLogStore's batch).
            self.pending[i].append((None, c.committed))
            if not self.delayed_flush:
                self._flush_pending(i)
        elif isinstance(c, cmd.Apply):
            self._apply(i, c.upto)
        elif isinstance(c, cmd.BuildSnapshot):
            sm = self.sms[i]
            meta = SnapshotMeta(sm.applied, sm.membership, f"{i}-{sm.applied}")
            if sm.applied is not None:
                disk.snapshot = Snapshot(meta, b"")
            eng.on_snapshot_built(meta)
        elif isinstance(c, cmd.InstallSnapshot):
            meta = c.snapshot.meta
            sm = self.sms[i]
            if not log_id_ge(sm.applied, meta.last_log_id):
                sm.applied, sm.membership = meta.last_log_id, meta.last_membership
                disk.snapshot = c.snapshot
            eng.on_snapshot_installed(meta)
        elif isinstance(c, cmd.SendVote):
            for t in c.targets:
                self.outbox.append(Msg("vote", i, t, c.req))
        elif isinstance(c, cmd.Replicate):
            self._replicate(i, c)
        elif isinstance(c, cmd.SendHeartbeat):
            self._send_heartbeats(i, c.read_round)
        elif isinstance(c, cmd.SendTransferLeader):
            self.outbox.append(Msg("transfer", i, c.req.to_node_id, c.req))
        elif isinstance(c, cmd.Respond):
            kind, route = c.responder
            if kind == "reply":
                self.replies[route] = c.value
            else:
                self.outbox.append(Msg(kind, i, route[0], c.value, route[1:]))
        elif isinstance(c, cmd.QuitLeader):
            self._drop_streams(i)
        elif isinstance(c, cmd.RemoveReplicationTargets):
            for t in c.targets:
                self.streams.pop((i, t), None)
        # BecomeLeader, AddReplicationTargets (streams start with the first Replicate),
        # RespondWhenApplied, ReportLogReversion: nothing to do here.

    def _flush_pending(self, i: int) -> None:
        """Write node ``i``'s pending appends to disk, in order, and report each flushed."""
        pending, self.pending[i] = self.pending[i], []
        disk = self.disks[i]
        for io, item in pending:
            if io is None:
                disk.committed = item
                continue
            for e in item:
                disk.entries[e.index] = e
            self.engines[i].on_io_flushed(io)

    def _apply(self, i: int, upto: LogId) -> None:
        sm = self.sms[i]
        start = 0 if sm.applied is None else sm.applied.index + 1
        for k in range(start, upto.index + 1):
            e = self.logs[i][k]  # a missing entry is a bug: KeyError
            if isinstance(e.payload, MembershipChange):
                sm.membership = StoredMembership(e.log_id, e.payload.membership)
            self.applied.append((i, e.log_id))
        if not log_id_ge(sm.applied, upto):
            sm.applied = upto
        self.engines[i].on_applied(upto)

    def _drop_streams(self, i: int) -> None:
        for key in [k for k in self.streams if k[0] == i]:
            del self.streams[key]

    def _send_heartbeats(self, i: int, read_round: int) -> None:
        eng = self.engines[i]
        assert eng.leader is not None
        req = AppendEntriesRequest(eng.leader.vote, None, (), None)
        for t in sorted(eng.leader.progress):
            self.outbox.append(Msg("heartbeat", i, t, req, (self.now, read_round)))

    def _replicate(self, i: int, c: cmd.Replicate) -> None:
        """Like ReplicationStream: a new epoch restarts after ``prev``; within an epoch the
        stream keeps sending (one request in flight) until ``upto`` and ``committed`` are
        delivered."""
        key = (i, c.target)
        st = self.streams.get(key)
        vote = self.engines[i].vote
        if st is None or st["epoch"] != c.epoch or st["vote"] != vote:
            st = {
                "epoch": c.epoch, "vote": vote, "sent": c.prev, "inflight": False,
                "sent_committed": None,
            }
            self.streams[key] = st
        st["upto"], st["committed"] = c.upto, c.committed
        self._pump(i, c.target)

    def _pump(self, i: int, target: int) -> None:
        st = self.streams[(i, target)]
        if st["inflight"]:
            return
        sent: LogId | None = st["sent"]
        upto: LogId | None = st["upto"]
        start = 0 if sent is None else sent.index + 1
        stop = -1 if upto is None else upto.index
        if stop < start and st["committed"] == st["sent_committed"]:
            return
        if stop >= start and start not in self.logs[i]:
            # The entries the target needs next were purged: send the snapshot.
            snapshot = self.disks[i].snapshot
            assert snapshot is not None, "log purged without a snapshot"
            last = snapshot.meta.last_log_id
            body = (self.engines[i].vote, snapshot)
            self.outbox.append(Msg("snapshot", i, target, body, (st["epoch"], self.now)))
            st["inflight"] = True
            st["sent"] = last
            return
        stop = min(stop, start + self.config.max_payload_entries - 1)
        entries = tuple(self.logs[i][k] for k in range(start, stop + 1))
        req = AppendEntriesRequest(self.engines[i].vote, sent, entries, st["committed"])
        self.outbox.append(Msg("append", i, target, req, (st["epoch"], self.now)))
        st["inflight"] = True
        st["sent"] = entries[-1].log_id if entries else sent
        st["sent_committed"] = st["committed"]

    # -- delivery -------------------------------------------------------------------------

    def take(self, kind: str, src: int, dst: int) -> Msg:
        """Remove and return the first queued message of ``kind`` from src to dst."""
        for k, m in enumerate(self.outbox):
            if (m.kind, m.src, m.dst) == (kind, src, dst):
                return self.outbox.pop(k)
        raise LookupError(f"no {kind} {src}->{dst} queued: {self.outbox}")

    def lose(self, m: Msg) -> None:
        """``m`` (already out of ``outbox``) is lost: a lost append or snapshot (or its
        reply) frees its stream to resend, as an RPC failure would."""
        if m.kind in ("append", "append_resp", "snapshot", "snapshot_resp"):
            leader, follower = (m.src, m.dst) if m.kind in ("append", "snapshot") else (m.dst, m.src)
            st = self.streams.get((leader, follower))
            if st is not None:
                st["inflight"] = False

    def drop(self, kind: str | None = None, src: int | None = None, dst: int | None = None) -> None:
        """Lose every queued message that matches (see ``lose``)."""
        keep = []
        for m in self.outbox:
            if (kind is None or m.kind == kind) and (src is None or m.src == src) and (
                dst is None or m.dst == dst
            ):
                self.lose(m)
            else:
                keep.append(m)
        self.outbox = keep

    def deliver(self, m: Msg) -> None:
        eng = self.engines[m.dst]
        if m.kind == "vote":
            resp = eng.handle_vote_req(m.body)
            self.run(m.dst)
            if resp.vote_granted and not m.body.pre_vote:
                self.grants.append((m.dst, m.body.vote))
            self.outbox.append(Msg("vote_resp", m.dst, m.src, resp, m.body))
        elif m.kind == "vote_resp":
            req: VoteRequest = m.meta
            eng.handle_vote_resp(m.src, req, m.body)
        elif m.kind in ("append", "heartbeat"):
            eng.handle_append_entries(m.body, (m.kind + "_resp", (m.src, m.body, m.meta)))
        elif m.kind == "heartbeat_resp":
            req_hb, (sent_at, read_round) = m.meta
            if isinstance(m.body, AppendEntriesResponse):
                eng.handle_heartbeat_ack(m.src, req_hb.vote, sent_at, m.body.vote, read_round)
        elif m.kind == "append_resp":
            self._deliver_append_resp(m)
        elif m.kind == "snapshot":
            vote, snapshot = m.body
            responder = ("snapshot_resp", (m.src, vote, snapshot.meta.last_log_id, m.meta))
            eng.handle_install_snapshot(vote, snapshot, responder)
        elif m.kind == "snapshot_resp":
            self._deliver_snapshot_resp(m)
        elif m.kind == "transfer":
            eng.handle_transfer_leader(m.body)
        else:  # pragma: no cover - a bug in the test
            raise ValueError(f"unknown message kind {m.kind!r}")
        self.run(m.dst)

    def _deliver_append_resp(self, m: Msg) -> None:
        eng = self.engines[m.dst]
        req_ae, (epoch, sent_at) = m.meta
        st = self.streams.get((m.dst, m.src))
        if st is not None and st["epoch"] == epoch:
            st["inflight"] = False
        resp = m.body
        if not isinstance(resp, AppendEntriesResponse):
            # The follower refused the request as invalid (an RPC error): resend later.
            if st is not None and st["epoch"] == epoch:
                st["sent"] = req_ae.prev_log_id
            return
        if resp.success:
            eng.handle_replication_progress(m.src, req_ae.vote, epoch, resp.matching, sent_at)
        elif resp.conflict:
            eng.handle_replication_conflict(
                m.src, req_ae.vote, epoch, req_ae.prev_log_id, resp.conflict_hint or 0, sent_at
            )
        else:
            eng.handle_higher_vote(resp.vote)
        self.run(m.dst)
        if self._stream_alive(m.dst, m.src, st, epoch) and resp.success:
            self._pump(m.dst, m.src)

    def _deliver_snapshot_resp(self, m: Msg) -> None:
        eng = self.engines[m.dst]
        vote, last, (epoch, sent_at) = m.meta
        resp: InstallSnapshotResponse = m.body
        st = self.streams.get((m.dst, m.src))
        if st is not None and st["epoch"] == epoch:
            st["inflight"] = False
        if resp.vote > vote:
            eng.handle_higher_vote(resp.vote)
            return
        eng.handle_replication_progress(m.src, vote, epoch, last, sent_at)
        self.run(m.dst)
        if self._stream_alive(m.dst, m.src, st, epoch):
            self._pump(m.dst, m.src)

    def _stream_alive(self, i: int, target: int, st: dict[str, Any] | None, epoch: int) -> bool:
        """``st`` is still the stream from ``i`` to ``target`` (not stopped by a step-down or
        a membership change meanwhile), in ``epoch``."""
        return (
            st is not None
            and self.streams.get((i, target)) is st
            and st["epoch"] == epoch
            and self.engines[i].is_leader
        )

    def exchange(self, kind: str, src: int, dst: int) -> None:
        """Deliver one message and then its reply (an idle stream resends first)."""
        queued = any((m.kind, m.src, m.dst) == (kind, src, dst) for m in self.outbox)
        if kind == "append" and not queued and (src, dst) in self.streams:
            self._pump(src, dst)
        self.deliver(self.take(kind, src, dst))
        self.deliver(self.take(kind + "_resp", dst, src))

    def deliver_all(self, among: set[int] | None = None, rounds: int = 50) -> None:
        """Deliver everything queued between nodes of ``among`` (others are dropped)."""
        for _ in range(rounds):
            if not self.outbox:
                return
            batch, self.outbox = self.outbox, []
            for m in batch:
                if among is None or (m.src in among and m.dst in among):
                    self.deliver(m)

    def log_of(self, i: int) -> list[LogId]:
        return [self.logs[i][k].log_id for k in sorted(self.logs[i])]
