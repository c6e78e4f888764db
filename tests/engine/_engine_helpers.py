"""Builders for Engine unit tests: put an Engine in a given state, then call one method.

The style is openraft's engine tests: build a state, call ONE method, assert the exact
list of commands it emitted. ``Respond`` commands compare by identity (``eq=False``), so
:func:`out` turns each one into a :class:`Responded` that compares its responder by
identity and its value by ``==`` (use :class:`Raises` to match an exception value).

Times: every builder uses :data:`CONFIG` (election timeout in [1, 2) s, lease 2 s, clock
drift 0.1 s) so tests can step the clock by whole seconds and stay far from the edges.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any, Literal

import attrs

from openraft_trio._config import Config
from openraft_trio._engine import INIT_LOG_ID, Engine
from openraft_trio._engine.commands import Apply, Command, IOId, Respond, SendVote
from openraft_trio._engine.engine import INPUTS
from openraft_trio._engine.state import ProgressEntry
from openraft_trio._messages import VoteRequest, VoteResponse
from openraft_trio._types import LeaderId, LogId, Membership, Node, StoredMembership, Vote

CONFIG = Config(
    election_timeout_min=1.0,
    election_timeout_max=2.0,
    heartbeat_interval=0.1,
    lease_clock_drift=0.1,
).validate()
LEASE = CONFIG.lease


def lid(term: int, node_id: int | None, index: int) -> LogId:
    """``LogId(LeaderId(term, node_id), index)``."""
    return LogId(LeaderId(term, node_id), index)


def vote(term: int, node_id: int | None, committed: bool = False) -> Vote:
    return Vote(LeaderId(term, node_id), committed)


def membership(*configs: Iterable[int], learners: Iterable[int] = ()) -> Membership:
    """Voter set(s) ``configs``; every voter and learner gets a ``Node("n<id>")``."""
    ids = set(learners)
    for c in configs:
        ids |= set(c)
    return Membership(configs=configs, nodes={i: Node(f"n{i}") for i in sorted(ids)})


M123 = membership({1, 2, 3})


@attrs.frozen(eq=False)
class Responded:
    """A ``Respond`` as a comparable value: same responder object, equal value."""

    responder: Any
    value: Any

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Responded)
            and self.responder is other.responder
            and self.value == other.value
        )

    __hash__ = None  # type: ignore[assignment]


@attrs.frozen(eq=False)
class Raises:
    """Matches an exception of type ``type`` whose attributes equal ``attrs``."""

    type: type[BaseException]
    attrs: dict[str, Any] = attrs.field(factory=dict)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, self.type) and all(
            getattr(other, k) == v for k, v in self.attrs.items()
        )

    __hash__ = None  # type: ignore[assignment]


def out(eng: Engine) -> list[Any]:
    """``eng.take_output()`` with every ``Respond`` turned into a comparable ``Responded``."""
    return [
        Responded(c.responder, c.value) if isinstance(c, Respond) else c for c in eng.take_output()
    ]


def _validated(name: str) -> Any:
    method = getattr(Engine, name)

    def call(self: Engine, *args: Any, **kwargs: Any) -> Any:
        result = method(self, *args, **kwargs)
        self.validate()
        return result

    call.__name__ = name
    call.__doc__ = method.__doc__
    return call


class CheckedEngine(Engine):
    """An Engine that checks its log pointers (``IOState.validate``) after every input."""


for _name in INPUTS:
    setattr(CheckedEngine, _name, _validated(_name))


def new_engine(node_id: int = 1, *, config: Config = CONFIG, seed: int = 0) -> Engine:
    """A pristine node whose log pointers are checked after every input."""
    return CheckedEngine(node_id, config, random.Random(seed))


def follower(
    node_id: int = 1,
    *,
    vote: Vote | None = None,
    log: Iterable[LogId] = (INIT_LOG_ID,),
    committed: LogId | None = INIT_LOG_ID,
    applied: LogId | Literal["committed"] | None = "committed",
    membership: Membership = M123,
    log_memberships: Iterable[StoredMembership] = (),
    now: float = 0.0,
    config: Config = CONFIG,
    seed: int = 0,
    just_restarted: bool = False,
) -> Engine:
    """An initialized node restarted from storage (a follower, or a learner if not a voter).

    ``membership`` is the applied (committed) one, carried by ``INIT_LOG_ID``; the log is
    ``log`` (all flushed), committed up to ``committed`` and applied up to ``applied``
    (by default ``committed``; the ``Apply`` of the rest is dropped). Output is cleared.

    A restarted node assumes a live leader for one lease after startup. By default the
    node restarted long enough ago that this startup lease is over (and its election
    deadline is drawn as if it never had one); ``just_restarted=True`` keeps it.
    """
    eng = new_engine(node_id, config=config, seed=seed)
    eng.now = now
    rng_state = eng.rng.getstate()
    eng.startup(
        vote=vote,
        log_ids=list(log),
        purged=None,
        committed=committed,
        last_applied=committed if isinstance(applied, str) else applied,
        applied_membership=StoredMembership(INIT_LOG_ID, membership),
        log_memberships=log_memberships,
    )
    if not just_restarted:
        assert eng.leader_seen_time == now
        eng.leader_seen_time = None
        eng.rng.setstate(rng_state)
        eng.reset_election_timer()
    assert eng.take_output() == ([] if isinstance(applied, str) else [Apply(committed)])
    return eng


def elect(eng: Engine, *, grants: Iterable[int] = (2,)) -> None:
    """Drive ``eng`` from follower to leader: election timeout, pre-vote and vote granted by
    ``grants``. Leaves the blank entry unflushed and output cleared. ``eng.now`` is the
    time the election started (the election deadline)."""
    grants = list(grants)
    eng.tick(eng.election_deadline)
    if eng.leader is not None:  # a single voter wins at once
        eng.take_output()
        return
    [pre] = eng.take_output()
    assert isinstance(pre, SendVote)
    assert pre.req.pre_vote
    for g in grants:
        eng.handle_vote_resp(g, pre.req, VoteResponse(eng.vote, True, None))
    cmds = eng.take_output()
    assert isinstance(cmds[-1], SendVote), cmds
    assert not cmds[-1].req.pre_vote, cmds
    real: VoteRequest = cmds[-1].req
    for g in grants:
        eng.handle_vote_resp(g, real, VoteResponse(real.vote, True, None))
    assert eng.is_leader, "not elected"
    eng.take_output()


def leader(
    node_id: int = 1,
    *,
    term: int = 2,
    log: Iterable[LogId] = (INIT_LOG_ID,),
    committed: LogId | None = INIT_LOG_ID,
    membership: Membership = M123,
    grants: Iterable[int] = (2,),
    now: float = 0.0,
    config: Config = CONFIG,
) -> Engine:
    """A leader of ``term`` (elected at ``now``, previously following ``term - 1``), its
    blank entry appended but neither flushed nor replicated. Output is cleared."""
    eng = follower(
        node_id,
        vote=vote(term - 1, None if term - 1 == 0 else 9, committed=term - 1 > 0),
        log=log,
        committed=committed,
        membership=membership,
        now=now,
        config=config,
    )
    eng.election_deadline = now
    elect(eng, grants=grants)
    assert eng.vote == vote(term, node_id, committed=True)
    return eng


def progress_of(eng: Engine, target: int) -> ProgressEntry:
    """The leader's replication progress of ``target``."""
    assert eng.leader is not None, "not a leader"
    return eng.leader.progress[target]


def flush_own_log(eng: Engine) -> None:
    """Storage reports everything the engine appended as durable."""
    eng.on_io_flushed(IOId(eng.vote, eng.last_log_id))


def commit_blank(
    eng: Engine, *, send_time: float | None = None, acks: Iterable[int] = (2,)
) -> None:
    """Flush the leader's blank entry and let ``acks`` report it replicated; clear output."""
    assert eng.leader is not None
    flush_own_log(eng)
    noop = eng.leader.noop_log_id
    for t in acks:
        eng.handle_replication_progress(
            t,
            eng.vote,
            eng.leader.progress[t].epoch,
            noop,
            eng.now if send_time is None else send_time,
        )
    assert eng.committed == noop
    eng.take_output()


__all__ = [
    "CONFIG",
    "INIT_LOG_ID",
    "LEASE",
    "M123",
    "Command",
    "Raises",
    "Responded",
    "commit_blank",
    "elect",
    "flush_own_log",
    "follower",
    "leader",
    "lid",
    "membership",
    "new_engine",
    "out",
    "progress_of",
    "vote",
]
