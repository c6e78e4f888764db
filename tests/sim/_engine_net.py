"""A hand-driven network of Engines for scripted regression scenarios.

Commands become messages in ``outbox``; nothing is delivered until the test says so
(``deliver`` / ``deliver_all``), so a scenario controls exactly who hears what, in which
order, and can replay stale or duplicated messages. Storage is modelled per node (log
entries, vote, committed) and flushed immediately; ``restart`` rebuilds a node's Engine
from that storage, as after a process restart.
"""

from __future__ import annotations

import random
from typing import Any

import attrs

from openraft_trio._config import Config
from openraft_trio._engine import Engine, IOId
from openraft_trio._engine import commands as cmd
from openraft_trio._messages import AppendEntriesRequest, AppendEntriesResponse, VoteRequest
from openraft_trio._types import Entry, LogId, Membership, Node, StoredMembership, Vote


@attrs.define
class Msg:
    kind: str  # "vote", "vote_resp", "append", "append_resp"
    src: int
    dst: int
    body: Any
    meta: Any = None


@attrs.define
class Disk:
    vote: Vote | None = None
    entries: dict[int, Entry] = attrs.field(factory=dict)
    committed: LogId | None = None


class EngineNet:
    def __init__(self, n: int, config: Config, seed: int = 0) -> None:
        self.config = config
        self.seed = seed
        self.ids = list(range(1, n + 1))
        self.disks = {i: Disk() for i in self.ids}
        self.engines: dict[int, Engine] = {}
        self.outbox: list[Msg] = []
        self.now = 0.0
        self.streams: dict[tuple[int, int], dict[str, Any]] = {}
        self.committed_seen: dict[int, LogId] = {}
        self.truncations: list[tuple[int, LogId | None]] = []
        for i in self.ids:
            self.engines[i] = self._new_engine(i)

    def _new_engine(self, i: int) -> Engine:
        eng = Engine(i, self.config, random.Random(f"{self.seed}-{i}-{len(self.engines)}"))
        eng.now = self.now
        return eng

    # -- setup and control ----------------------------------------------------------------

    def initialize(self, first: int) -> None:
        m = Membership(configs=[set(self.ids)], nodes={i: Node(f"n{i}") for i in self.ids})
        self.engines[first].initialize(m)
        self.run(first)

    def restart(self, i: int) -> None:
        """Rebuild node ``i`` from its disk (vote, log, committed); its messages in flight
        are dropped."""
        disk = self.disks[i]
        eng = self._new_engine(i)
        log = [disk.entries[k] for k in sorted(disk.entries)]
        eng.startup(
            vote=disk.vote,
            log_ids=[e.log_id for e in log],
            purged=None,
            committed=disk.committed,
            last_applied=None,
            applied_membership=StoredMembership(),
            log_memberships=[
                StoredMembership(e.log_id, e.payload.membership)
                for e in log
                if hasattr(e.payload, "membership")
            ],
        )
        self.engines[i] = eng
        self.outbox = [m for m in self.outbox if i not in (m.src, m.dst)]
        self.run(i)

    def advance(self, dt: float) -> None:
        self.now += dt
        for eng in self.engines.values():
            eng.now = self.now

    def elect(self, i: int) -> None:
        self.engines[i].elect()
        self.run(i)

    # -- running commands -----------------------------------------------------------------

    def run(self, i: int) -> None:
        eng = self.engines[i]
        disk = self.disks[i]
        while eng.output:
            c = eng.output.popleft()
            if isinstance(c, cmd.SaveVote):
                disk.vote = c.vote
            elif isinstance(c, cmd.AppendEntries):
                for e in c.entries:
                    disk.entries[e.index] = e
                eng.on_io_flushed(IOId(c.vote, c.entries[-1].log_id))
            elif isinstance(c, cmd.TruncateLog):
                self.truncations.append((i, c.after))
                keep = -1 if c.after is None else c.after.index
                for k in [k for k in disk.entries if k > keep]:
                    del disk.entries[k]
            elif isinstance(c, cmd.SaveCommitted):
                disk.committed = c.committed
            elif isinstance(c, cmd.SendVote):
                for t in c.targets:
                    self.outbox.append(Msg("vote", i, t, c.req))
            elif isinstance(c, cmd.Replicate):
                self._replicate(i, c)
            elif isinstance(c, cmd.Respond):
                kind, route = c.responder
                self.outbox.append(Msg(kind, i, route[0], c.value, route[1:]))
            # Apply, BecomeLeader, QuitLeader, SendHeartbeat: nothing to do here.

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
        stop = min(stop, start + self.config.max_payload_entries - 1)
        entries = tuple(self.disks[i].entries[k] for k in range(start, stop + 1))
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

    def drop(self, kind: str | None = None, src: int | None = None, dst: int | None = None) -> None:
        """Lose queued messages; a lost append (or its reply) frees its stream to resend,
        as an RPC failure would."""
        keep = []
        for m in self.outbox:
            if (kind is None or m.kind == kind) and (src is None or m.src == src) and (
                dst is None or m.dst == dst
            ):
                leader, follower = (m.src, m.dst) if m.kind == "append" else (m.dst, m.src)
                st = self.streams.get((leader, follower))
                if m.kind in ("append", "append_resp") and st is not None:
                    st["inflight"] = False
            else:
                keep.append(m)
        self.outbox = keep

    def deliver(self, m: Msg) -> None:
        eng = self.engines[m.dst]
        if m.kind == "vote":
            resp = eng.handle_vote_req(m.body)
            self.run(m.dst)
            self.outbox.append(Msg("vote_resp", m.dst, m.src, resp, m.body))
        elif m.kind == "vote_resp":
            req: VoteRequest = m.meta
            eng.handle_vote_resp(m.src, req, m.body)
        elif m.kind == "append":
            eng.handle_append_entries(m.body, ("append_resp", (m.src, m.body, m.meta)))
        elif m.kind == "append_resp":
            req_ae, (epoch, sent_at) = m.meta
            resp: AppendEntriesResponse = m.body
            st = self.streams.get((m.dst, m.src))
            if st is not None and st["epoch"] == epoch:
                st["inflight"] = False
            if resp.success:
                eng.handle_replication_progress(m.src, req_ae.vote, epoch, resp.matching, sent_at)
            elif resp.conflict:
                eng.handle_replication_conflict(
                    m.src, req_ae.vote, epoch, req_ae.prev_log_id, resp.conflict_hint or 0, sent_at
                )
            else:
                eng.handle_higher_vote(resp.vote)
            self.run(m.dst)
            if st is not None and st["epoch"] == epoch and resp.success and eng.is_leader:
                self._pump(m.dst, m.src)
        self.run(m.dst)

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
        return [self.disks[i].entries[k].log_id for k in sorted(self.disks[i].entries)]
