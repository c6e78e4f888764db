"""The storage conformance suite: checks every log store and state machine must pass.

Run it from your own pytest suite against your :class:`~openraft_trio.storage.RaftLogStorage`
and :class:`~openraft_trio.storage.RaftStateMachine` implementations, in one of two ways.

**Subclass a suite** (one pytest test per check; your class name must start with ``Test``).
Each test gets its factory from a fixture you define::

    import pytest
    from openraft_trio.kv import KvStateMachine, Set
    from openraft_trio.storage import open_file_log_store
    from openraft_trio.testing.storage_suite import (
        LogStoreSuite,
        StateMachineSuite,
        make_log_store_factory,
        make_state_machine_factory,
    )

    class TestMyLogStore(LogStoreSuite):
        @pytest.fixture
        def log_store_factory(self, tmp_path):
            return make_log_store_factory(lambda name: open_file_log_store(tmp_path / name))

    class TestMyStateMachine(StateMachineSuite):
        @pytest.fixture
        def state_machine_factory(self, tmp_path):
            return make_state_machine_factory(
                lambda name: KvStateMachine(tmp_path / name), durable=True
            )

        @pytest.fixture
        def make_request(self):
            return lambda i: Set(f"k{i}", i)

**One call** that runs every check and raises :class:`AssertionError` naming each check
that failed. A check that cannot run — the durability check without a ``durable_log_id``
hook, the restart checks of a state machine factory not marked ``durable`` — is not a
silent pass: it warns :class:`StorageCheckNotRun` naming what stays unverified (pytest
shows it in its warnings summary), and with ``require_all=True`` it fails::

    async def test_my_storage(tmp_path):
        await run_log_store_suite(
            make_log_store_factory(lambda name: open_file_log_store(tmp_path / name))
        )
        await run_state_machine_suite(
            make_state_machine_factory(lambda name: KvStateMachine()),
            lambda i: Set(f"k{i}", i),
        )

The checks are async: run them under pytest-trio, with ``trio_mode = true`` in your pytest
configuration or ``pytestmark = pytest.mark.trio`` in the test module. This module imports
pytest only when a suite test is skipped, so importing it needs neither pytest nor
pytest-trio.

Factories
---------

A **log store factory** is a callable ``factory(name) -> async context manager`` yielding a
:class:`~openraft_trio.storage.RaftLogStorage`. ``name`` is a short string of
``[a-z0-9-]``, safe as a directory name. Every call with the same name opens **the same
persistent store** (for example the same directory): what the store had made durable when
the previous context was left must be there after reopening. Different names are
independent stores, each empty when first opened. The checks use a name per store they
need, so one factory serves every check; leaving the context models a restart (or a
crash: the suite assumes nothing more survives than what the contract promises).

Optionally the factory has an attribute ``durable_log_id(store) -> LogId | None`` (not
``None``) telling the last log id that is durable right now; then the suite checks that
``append`` calls back only once its entries are durable. :class:`MemLogStoreFactory` is the model: it keeps
one :class:`~openraft_trio.storage.MemLogStore` per name and calls
:meth:`~openraft_trio.storage.MemLogStore.crash` when a context is left, so unflushed
entries are lost as they would be in a power cut.

A **state machine factory** is the same for state machines, with an optional attribute
``durable: bool`` (default ``False``). A durable state machine reopened under the same name
must come back at least at its last snapshot; for a non-durable one the suite opens every
name once and skips the restart checks. :func:`make_state_machine_factory` wraps a plain
``name -> state machine`` function. The state machine checks also need
``make_request(i) -> data`` making the ``Normal`` payloads: repeating ``make_request(i)``
must give a reply that depends on the state (for the key-value store, ``Set(f"k{i}", i)``
replies with the key's previous value), so the suite can compare two state machines by
the replies they give. Replies must be comparable with ``==``.

What the checks assume (the contract of :mod:`openraft_trio.storage`)
----------------------------------------------------------------------

* ``append`` makes entries readable on return and calls its callback exactly once, with
  ``None`` once they are durable (possibly before returning); an append that would leave a
  hole or overlap the log raises (any ``Exception``), changes nothing and never reports
  success.
* ``save_vote`` is durable when it returns, together with every write submitted before it.
* Log writes (appends, truncations, purges) become durable in submission order. After a
  restart the log is exactly the log after *some* prefix of the submitted log writes (an
  append may be cut short inside its batch), a prefix at least as long as everything
  reported durable: every append whose callback fired and every write before the last
  ``save_vote``. So a truncated entry never comes back once anything later is durable.
* ``save_committed`` may be persisted lazily: after a restart ``read_committed`` returns
  ``None`` or one of the values saved (Raft only ever saves growing ones).
* ``durable_log_id(store)``, when the factory has it, is at least an append's last log id
  when its callback fires (or the point a later ``truncate_after`` cut the batch back to).
* ``try_get_log_entries(start, stop)`` returns the entries with ``start <= index < stop``
  that exist, in order, without holes.
* ``purge(upto)`` past the last entry leaves an empty log whose last log id is ``upto``;
  the next append starts at ``upto.index + 1``. Purging at or before the last purged log
  id does nothing.

Waiting for callbacks uses Trio's clock (at most :data:`CALLBACK_TIMEOUT` seconds): do not
run the suite under an autojumping ``MockClock`` if your store completes I/O in threads.

Each check is also a plain function (``check_*``, listed in :data:`LOG_STORE_CHECKS` and
:data:`STATE_MACHINE_CHECKS`) you can call on its own; a check that does not apply raises
:class:`CheckSkipped`.
"""

from __future__ import annotations

import functools
import random
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Final, Protocol, final

import attrs
import trio

from .._types import (
    Blank,
    Entry,
    LeaderId,
    LogId,
    LogState,
    Membership,
    MembershipChange,
    Node,
    Normal,
    Snapshot,
    StoredMembership,
    Vote,
    log_id_ge,
    next_index,
)
from ..storage import MemLogStore, RaftLogStorage, RaftStateMachine
from ..storage._mem import FlushMode

__all__ = [
    "CALLBACK_TIMEOUT",
    "LOG_STORE_CHECKS",
    "STATE_MACHINE_CHECKS",
    "CheckSkipped",
    "LogStoreCheck",
    "LogStoreFactory",
    "LogStoreSuite",
    "MakeRequest",
    "MemLogStoreFactory",
    "StateMachineCheck",
    "StateMachineFactory",
    "StateMachineSuite",
    "StorageCheckNotRun",
    "check_append_after_restart_continues",
    "check_append_and_read",
    "check_append_callback_called_once",
    "check_append_callback_only_when_durable",
    "check_append_rejects_hole_or_overlap",
    "check_committed",
    "check_initial_state",
    "check_purge_at_or_before_last_purge_is_noop",
    "check_purge_past_last_entry",
    "check_purge_up_to_each_position",
    "check_random_history",
    "check_restart_keeps_durable_state",
    "check_sm_apply_replies_and_applied_state",
    "check_sm_build_snapshot",
    "check_sm_initial_state",
    "check_sm_install_older_snapshot_is_ignored",
    "check_sm_install_snapshot_into_new_state_machine",
    "check_sm_install_snapshot_over_older_state",
    "check_sm_membership_entries_update_membership",
    "check_sm_restart_restores_snapshot",
    "check_truncate_after_each_position",
    "check_truncate_after_purge",
    "check_truncated_entries_stay_gone_after_restart",
    "check_vote",
    "check_writes_are_durable_in_submission_order",
    "make_log_store_factory",
    "make_state_machine_factory",
    "run_log_store_suite",
    "run_state_machine_suite",
]

CALLBACK_TIMEOUT: Final = 5.0
"""Seconds (Trio clock) the suite waits for ``append`` callbacks after a ``save_vote``."""


class CheckSkipped(Exception):
    """Raised by a check that does not apply to the store or state machine under test."""


class StorageCheckNotRun(UserWarning):
    """A conformance check did not run: the property it checks (most often durability)
    is unverified for this store. Warned once per skipped check; pass
    ``require_all=True`` (or set ``require_all_checks = True`` on a suite class) to make it
    a failure instead."""


def _not_run(check: Callable[..., Any], reason: str) -> str:
    return f"storage check {check.__name__} NOT RUN: {reason}"


def _warn_not_run(check: Callable[..., Any], reason: str) -> None:
    warnings.warn(StorageCheckNotRun(_not_run(check, reason)), stacklevel=3)


# -- factories ---------------------------------------------------------------------------


class LogStoreFactory(Protocol):
    """``factory(name)`` opens the persistent log store called ``name``.

    May also have ``durable_log_id(store) -> LogId | None`` (see the module docstring).
    """

    def __call__(self, name: str, /) -> AbstractAsyncContextManager[RaftLogStorage]: ...


class StateMachineFactory(Protocol):
    """``factory(name)`` opens the state machine called ``name``.

    May also have ``durable: bool``: reopening a name keeps its snapshots (default False).
    """

    def __call__(self, name: str, /) -> AbstractAsyncContextManager[RaftStateMachine]: ...


MakeRequest = Callable[[int], Any]
"""``make_request(i)``: the ``Normal`` payload data for request number ``i``."""

LogStoreCheck = Callable[[LogStoreFactory], Awaitable[None]]
StateMachineCheck = Callable[[StateMachineFactory, MakeRequest], Awaitable[None]]


@final
class MemLogStoreFactory:
    """A :class:`LogStoreFactory` of :class:`~openraft_trio.storage.MemLogStore`\\ s.

    One store per name, kept across opens; leaving the context calls
    :meth:`~openraft_trio.storage.MemLogStore.crash`, so what was not flushed is lost.

    Args:
        flush_mode: passed to every :class:`~openraft_trio.storage.MemLogStore`. With
            ``"manual"`` nothing flushes appends but the store's own durable writes
            (``save_vote`` and the others), which exercises the callback rules hardest.
        store_class: what to instantiate (a ``MemLogStore`` subclass, for tests).
    """

    def __init__(
        self,
        flush_mode: FlushMode = "immediate",
        *,
        store_class: type[MemLogStore] = MemLogStore,
    ) -> None:
        self.flush_mode: FlushMode = flush_mode
        self.store_class = store_class
        self.stores: dict[str, MemLogStore] = {}

    @asynccontextmanager
    async def __call__(self, name: str) -> AsyncIterator[MemLogStore]:
        store = self.stores.get(name)
        if store is None:
            store = self.stores[name] = self.store_class(self.flush_mode)
        try:
            yield store
        finally:
            store.crash()

    def durable_log_id(self, store: Any) -> LogId | None:
        """What survives a crash of ``store``: its flushed log id."""
        assert isinstance(store, MemLogStore)
        return store.flushed_log_id

    def __repr__(self) -> str:
        return f"MemLogStoreFactory({self.flush_mode!r})"


@attrs.frozen
class _WrappedLogStoreFactory:
    open: Callable[[str], AbstractAsyncContextManager[RaftLogStorage] | RaftLogStorage]
    durable_log_id: Callable[[Any], LogId | None] | None = None

    def __call__(self, name: str) -> AbstractAsyncContextManager[RaftLogStorage]:
        return _enter(self.open(name))


@attrs.frozen
class _WrappedStateMachineFactory:
    open: Callable[[str], AbstractAsyncContextManager[RaftStateMachine] | RaftStateMachine]
    durable: bool = False

    def __call__(self, name: str) -> AbstractAsyncContextManager[RaftStateMachine]:
        return _enter(self.open(name))


@asynccontextmanager
async def _enter(opened: Any) -> AsyncIterator[Any]:
    if isinstance(opened, AbstractAsyncContextManager):
        async with opened as resource:
            yield resource
    else:
        yield opened


def make_log_store_factory(
    open_store: Callable[[str], AbstractAsyncContextManager[RaftLogStorage] | RaftLogStorage],
    *,
    durable_log_id: Callable[[Any], LogId | None] | None = None,
) -> LogStoreFactory:
    """A :class:`LogStoreFactory` from ``open_store(name)``.

    Args:
        open_store: opens the persistent store called ``name``; returns an async context
            manager yielding the store, or the store itself (then nothing closes it).
        durable_log_id: optional ``durable_log_id(store)``: the store's last durable log id
            right now, so the suite can check callbacks fire only after durability.
    """
    return _WrappedLogStoreFactory(open_store, durable_log_id)


def make_state_machine_factory(
    open_sm: Callable[[str], AbstractAsyncContextManager[RaftStateMachine] | RaftStateMachine],
    *,
    durable: bool = False,
) -> StateMachineFactory:
    """A :class:`StateMachineFactory` from ``open_sm(name)``.

    Args:
        open_sm: opens the state machine called ``name``; returns an async context
            manager yielding it, or the state machine itself (then nothing closes it).
            An in-memory state machine ignores the name: ``lambda name: MySM()``.
        durable: ``True`` if reopening a name restores its last snapshot.
    """
    return _WrappedStateMachineFactory(open_sm, durable)


# -- running the checks ------------------------------------------------------------------


async def run_log_store_suite(
    factory: LogStoreFactory,
    *,
    checks: Iterable[LogStoreCheck] | None = None,
    require_all: bool = False,
) -> None:
    """Run every log store check (or only ``checks``) against stores from ``factory``.

    A check that cannot run (the durability check, without a ``durable_log_id`` hook)
    warns :class:`StorageCheckNotRun`; with ``require_all`` it fails instead.

    Raises:
        AssertionError: naming each check that failed, with its message; chained to the
            first failure. A store raising something else during a check is a failure
            too.
    """
    selected = LOG_STORE_CHECKS if checks is None else tuple(checks)
    await _run_checks([(check, (factory,)) for check in selected], require_all)


async def run_state_machine_suite(
    factory: StateMachineFactory,
    make_request: MakeRequest,
    *,
    checks: Iterable[StateMachineCheck] | None = None,
    require_all: bool = False,
) -> None:
    """Run every state machine check (or only ``checks``) against ``factory``.

    A check that cannot run (the restart checks, for a factory not marked ``durable``)
    warns :class:`StorageCheckNotRun`; with ``require_all`` it fails instead.

    Raises:
        AssertionError: naming each check that failed, with its message; chained to the
            first failure.
    """
    selected = STATE_MACHINE_CHECKS if checks is None else tuple(checks)
    await _run_checks([(check, (factory, make_request)) for check in selected], require_all)


async def _run_checks(
    runs: Sequence[tuple[Callable[..., Awaitable[None]], tuple[Any, ...]]],
    require_all: bool,
) -> None:
    failures: list[tuple[str, Exception]] = []
    for check, args in runs:
        try:
            await check(*args)
        except CheckSkipped as exc:
            if require_all:
                failures.append((check.__name__, AssertionError(_not_run(check, str(exc)))))
            else:
                _warn_not_run(check, str(exc))
        except Exception as exc:
            failures.append((check.__name__, exc))
    if failures:
        lines = [f"{len(failures)} storage check(s) failed:"]
        for name, failure in failures:
            kind = "" if isinstance(failure, AssertionError) else f"{type(failure).__name__}: "
            lines.append(f"* {name}: {kind}{failure}")
        raise AssertionError("\n".join(lines)) from failures[0][1]


async def _run_for_pytest(
    check: Callable[..., Awaitable[None]], require_all: bool, *args: Any
) -> None:
    try:
        await check(*args)
    except CheckSkipped as exc:
        import pytest  # only a pytest run gets here

        if require_all:
            pytest.fail(_not_run(check, str(exc)), pytrace=False)
        _warn_not_run(check, str(exc))
        pytest.skip(_not_run(check, str(exc)))


# -- test data ---------------------------------------------------------------------------


def _leader(term: int, node_id: int = 1) -> LeaderId:
    return LeaderId(term, node_id)


_NODES: Final = {i: Node(f"127.0.0.1:{7000 + i}") for i in range(1, 6)}
_MEMBERSHIP_123: Final = Membership(configs=[{1, 2, 3}], nodes={i: _NODES[i] for i in (1, 2, 3)})
_MEMBERSHIP_JOINT: Final = Membership(
    configs=[{1, 2, 3}, {2, 3, 4}],
    nodes={**{i: _NODES[i] for i in (1, 2, 3, 4)}, 5: Node("127.0.0.1:7005", {"zone": "b"})},
)
_MEMBERSHIP_234: Final = Membership(
    configs=[{2, 3, 4}], nodes={**{i: _NODES[i] for i in (2, 3, 4)}, 5: _NODES[5]}
)


def _log_payload(index: int) -> Blank | Normal | MembershipChange:
    """Every payload kind, and Normal data of every plain CBOR kind (no tuples, no floats)."""
    kind = index % 5
    if kind == 0:
        return Blank()
    if kind == 1:
        return Normal(f"value-{index}")
    if kind == 2:
        return Normal({"i": index, "b": bytes([index % 256, 0, 255]), "l": [index, None, True]})
    if kind == 3:
        return MembershipChange(_MEMBERSHIP_JOINT if index % 2 else _MEMBERSHIP_123)
    return Normal(index)


def _entries(start: int, stop: int, leader: LeaderId) -> list[Entry]:
    return [Entry(LogId(leader, i), _log_payload(i)) for i in range(start, stop)]


def _ids(entries: Iterable[Entry]) -> str:
    """``[T1-N1.0..T1-N1.4, T2-N2.5]``: log ids, runs of one leader collapsed."""
    runs: list[tuple[LeaderId, int, int]] = []
    for e in entries:
        lid, idx = e.log_id.leader_id, e.log_id.index
        if runs and runs[-1][0] == lid and runs[-1][2] == idx - 1:
            runs[-1] = (lid, runs[-1][1], idx)
        else:
            runs.append((lid, idx, idx))
    parts = [f"{lid}.{a}" if a == b else f"{lid}.{a}..{lid}.{b}" for lid, a, b in runs]
    return "[" + ", ".join(parts) + "]"


def _fmt_state(state: LogState) -> str:
    return (
        f"LogState(last_purged_log_id={state.last_purged_log_id}, last_log_id={state.last_log_id})"
    )


# -- the log model -----------------------------------------------------------------------


@attrs.frozen
class _LogModel:
    """What a correct store holds: the reference the store is compared with."""

    purged: LogId | None = None
    entries: tuple[Entry, ...] = ()

    @property
    def last(self) -> LogId | None:
        return self.entries[-1].log_id if self.entries else self.purged

    @property
    def next_index(self) -> int:
        return next_index(self.last)

    def state(self) -> LogState:
        return LogState(last_purged_log_id=self.purged, last_log_id=self.last)

    def log_id_at(self, index: int) -> LogId:
        for e in self.entries:
            if e.index == index:
                return e.log_id
        raise AssertionError(f"suite bug: no entry {index} in the model")

    def append(self, entry: Entry) -> _LogModel:
        assert entry.index == self.next_index, "suite bug: model append out of place"
        return attrs.evolve(self, entries=(*self.entries, entry))

    def truncate_after(self, log_id: LogId | None) -> _LogModel:
        keep = next_index(log_id)
        return attrs.evolve(self, entries=tuple(e for e in self.entries if e.index < keep))

    def purge(self, upto: LogId) -> _LogModel:
        if upto.index < next_index(self.purged):
            return self
        return _LogModel(upto, tuple(e for e in self.entries if e.index > upto.index))

    def read(self, start: int, stop: int) -> list[Entry]:
        return [e for e in self.entries if start <= e.index < stop]


# -- the log harness ---------------------------------------------------------------------


@attrs.define(eq=False)
class _Ack:
    """The callback of one append, recording every call."""

    batch_last: LogId
    history_pos: int  # the history position this append completes
    incarnation: int
    durable_probe: Callable[[], LogId | None] | None
    calls: list[BaseException | None] = attrs.Factory(list)
    durable_at_call: list[LogId | None] = attrs.Factory(list)
    # What must be durable when the callback fires: the batch's last log id, or less if a
    # truncation submitted later deleted the end of the batch (the store may call back
    # after it has carried out that truncation).
    must_be_durable: LogId | None = attrs.field(
        default=attrs.Factory(lambda self: self.batch_last, takes_self=True)
    )

    def truncated_after(self, log_id: LogId | None) -> None:
        if self.must_be_durable is not None and next_index(log_id) <= self.must_be_durable.index:
            self.must_be_durable = log_id

    def __call__(self, err: BaseException | None) -> None:
        if self.durable_probe is not None:
            self.durable_at_call.append(self.durable_probe())
        self.calls.append(err)

    @property
    def succeeded(self) -> bool:
        return bool(self.calls) and self.calls[0] is None


class _LogHarness:
    """Drives one named store and a model of it, checking the store after each step.

    ``history`` holds every state the log may be recovered to after a crash, in submission
    order (an append contributes one state per entry: a batch may be cut short);
    ``history[durable_pos]`` is the latest state everything says is durable.
    """

    def __init__(self, factory: LogStoreFactory, name: str) -> None:
        self.factory = factory
        self.name = name
        self._durable_log_id: Callable[[Any], LogId | None] | None = getattr(
            factory, "durable_log_id", None
        )
        self._cm: AbstractAsyncContextManager[RaftLogStorage] | None = None
        self._store: RaftLogStorage | None = None
        self.incarnation = 0
        self.model = _LogModel()
        self.history: list[_LogModel] = [self.model]
        self.durable_pos = 0
        self.acks: list[_Ack] = []
        self.vote: Vote | None = None
        self.committed_saved: list[LogId | None] = [None]
        # Leader ids of new entries only grow, as in a Raft log.
        self.term = 1

    @property
    def store(self) -> RaftLogStorage:
        assert self._store is not None, "suite bug: store is closed"
        return self._store

    def durable_log_id(self) -> LogId | None:
        assert self._durable_log_id is not None
        return self._durable_log_id(self.store)

    # -- open / close -----------------------------------------------------------------

    async def open(self) -> None:
        cm = self.factory(self.name)
        self._store = await cm.__aenter__()
        self._cm = cm
        self.incarnation += 1

    async def close(self) -> None:
        cm, self._cm, self._store = self._cm, None, None
        if cm is not None:
            await cm.__aexit__(None, None, None)

    # -- operations -------------------------------------------------------------------

    def leader(self, bump: bool = False) -> LeaderId:
        if bump:
            self.term += 1
        return _leader(self.term, 1 + self.term % 3)

    async def append(self, entries: Sequence[Entry], what: str = "") -> _Ack:
        assert entries, "suite bug: empty append"
        pos = len(self.history) - 1 + len(entries)
        hook = self._durable_log_id
        probe = None if hook is None else functools.partial(hook, self.store)
        ack = _Ack(entries[-1].log_id, pos, self.incarnation, probe)
        self.acks.append(ack)
        await self.store.append(list(entries), ack)
        model = self.model
        for e in entries:
            model = model.append(e)
            self.history.append(model)
        self.model = model
        await self.verify(what or f"after append({_ids(entries)})")
        return ack

    async def append_next(self, count: int, *, bump: bool = False) -> _Ack:
        start = self.model.next_index
        return await self.append(_entries(start, start + count, self.leader(bump)))

    async def append_rejected(self, entries: Sequence[Entry], why: str) -> None:
        ack = _Ack(entries[-1].log_id, -1, self.incarnation, None)
        before = self.model
        try:
            await self.store.append(list(entries), ack)
        except Exception:
            refused = True  # any exception will do; the store must be unchanged
        else:
            refused = False
        if not refused:
            raise AssertionError(
                f"append({_ids(entries)}) onto a log whose last log id is {before.last} "
                f"returned normally; an append that would {why} must raise"
            )
        for _ in range(3):
            await trio.lowlevel.checkpoint()
        if any(err is None for err in ack.calls) or len(ack.calls) > 1:
            raise AssertionError(
                f"the refused append({_ids(entries)}) called its callback with {ack.calls!r}; "
                "a refused append must never report success"
            )
        await self.verify(f"after the refused append({_ids(entries)}) (it must change nothing)")

    async def truncate_after(self, log_id: LogId | None) -> None:
        for ack in self.acks:
            if not ack.calls:
                ack.truncated_after(log_id)
        await self.store.truncate_after(log_id)
        self.model = self.model.truncate_after(log_id)
        self.history.append(self.model)
        await self.verify(f"after truncate_after({log_id})")

    async def purge(self, upto: LogId) -> None:
        await self.store.purge(upto)
        self.model = self.model.purge(upto)
        self.history.append(self.model)
        await self.verify(f"after purge({upto})")

    async def save_vote(self, vote: Vote) -> None:
        await self.store.save_vote(vote)
        self.vote = vote
        self.durable_pos = len(self.history) - 1
        got = await self.store.read_vote()
        if got != vote:
            raise AssertionError(f"after save_vote({vote}): read_vote() returned {got}")

    async def save_committed(self, log_id: LogId | None) -> None:
        await self.store.save_committed(log_id)
        self.committed_saved.append(log_id)
        got = await self.store.read_committed()
        if got != log_id:
            raise AssertionError(f"after save_committed({log_id}): read_committed() returned {got}")

    async def sync(self) -> None:
        """A ``save_vote`` (a barrier), then wait until every callback has fired."""
        await self.save_vote(self.vote if self.vote is not None else Vote(LeaderId(0, None)))
        await self.wait_callbacks()

    async def wait_callbacks(self) -> None:
        pending = [a for a in self.acks if a.incarnation == self.incarnation]
        deadline = trio.current_time() + CALLBACK_TIMEOUT
        spins = 0
        while not all(a.calls for a in pending):
            if trio.current_time() > deadline:
                missing = [str(a.batch_last) for a in pending if not a.calls]
                raise AssertionError(
                    f"the callbacks of the appends ending at {', '.join(missing)} were not "
                    f"called within {CALLBACK_TIMEOUT}s of a save_vote() that returned (it "
                    "makes every earlier append durable)"
                )
            spins += 1
            await trio.sleep(0 if spins < 10 else 0.001)
        for _ in range(3):
            await trio.lowlevel.checkpoint()
        self.check_callbacks()

    def check_callbacks(self) -> None:
        for ack in self.acks:
            if len(ack.calls) > 1:
                raise AssertionError(
                    f"the callback of the append ending at {ack.batch_last} was called "
                    f"{len(ack.calls)} times ({ack.calls!r}); it must be called exactly once"
                )
            if ack.calls and ack.calls[0] is not None:
                raise AssertionError(
                    f"the callback of the append ending at {ack.batch_last} reported an "
                    f"error: {ack.calls[0]!r}"
                )
            if ack.durable_at_call and not log_id_ge(ack.durable_at_call[0], ack.must_be_durable):
                raise AssertionError(
                    f"the callback of the append ending at {ack.batch_last} was called while "
                    f"the factory's durable_log_id(store) was {ack.durable_at_call[0]}: "
                    f"callback(None) must wait until the entries are durable (up to "
                    f"{ack.must_be_durable})"
                )

    def known_durable_pos(self) -> int:
        pos = self.durable_pos
        for ack in self.acks:
            if ack.incarnation == self.incarnation and ack.succeeded:
                pos = max(pos, ack.history_pos)
        return pos

    # -- checking the store -----------------------------------------------------------

    async def verify(self, when: str) -> None:
        """The store's log state and every kind of read equal the model's."""
        store, model = self.store, self.model
        state = await store.get_log_state()
        if state != model.state():
            raise AssertionError(
                f"{when}: get_log_state() returned {_fmt_state(state)}, "
                f"expected {_fmt_state(model.state())}"
            )
        lo = max(0, next_index(model.purged) - 2)
        hi = model.next_index + 3
        ranges = [(0, hi + 100), (lo, hi), (hi, hi + 5), (5, 5), (hi, lo), (lo + 2, lo + 1)]
        for i in range(lo, hi):
            ranges += [(i, i + 1), (lo, i), (i, hi)]
        for start, stop in ranges:
            got = list(await store.try_get_log_entries(start, stop))
            expected = model.read(start, stop)
            if got != expected:
                detail = ""
                if [e.log_id for e in got] == [e.log_id for e in expected]:
                    diff = next(g for g, x in zip(got, expected, strict=True) if g != x)
                    detail = f" (the entry at index {diff.index} differs: {diff!r})"
                raise AssertionError(
                    f"{when}: try_get_log_entries({start}, {stop}) returned {_ids(got)}, "
                    f"expected {_ids(expected)}{detail}"
                )

    async def restart(self, when: str = "after restart") -> None:
        """Close and reopen; the store must come back to a state it may recover to."""
        lower = self.known_durable_pos()
        await self.close()
        lower = max(lower, self.known_durable_pos())  # callbacks may fire while closing
        self.check_callbacks()
        await self.open()
        store = self.store
        vote = await store.read_vote()
        if vote != self.vote:
            raise AssertionError(f"{when}: read_vote() returned {vote}, but {self.vote} was saved")
        committed = await store.read_committed()
        if committed not in self.committed_saved:
            raise AssertionError(
                f"{when}: read_committed() returned {committed}; expected the last value "
                f"saved ({self.committed_saved[-1]}), or None or an earlier saved value "
                "(committed may be persisted lazily)"
            )
        state = await store.get_log_state()
        candidates = self.history[lower:]
        top = max(c.next_index for c in candidates)
        got = list(
            await store.try_get_log_entries(0, max(top, next_index(state.last_log_id)) + 100)
        )
        match = next(
            (c for c in reversed(candidates) if c.state() == state and list(c.entries) == got), None
        )
        if match is None:
            durable = self.history[lower]
            if all(c == durable for c in candidates):
                expected = (
                    f"{_fmt_state(durable.state())} with entries {_ids(durable.entries)}, "
                    "as every write was reported durable"
                )
            else:
                expected = (
                    "the log after some prefix of the submitted writes that includes everything "
                    f"reported durable: at least {_fmt_state(durable.state())} with entries "
                    f"{_ids(durable.entries)}, at most {_fmt_state(self.model.state())} with "
                    f"entries {_ids(self.model.entries)}"
                )
            raise AssertionError(
                f"{when}: the store came back with {_fmt_state(state)} and entries {_ids(got)}; "
                f"expected {expected}"
            )
        self.model = match
        self.history = [match]
        self.durable_pos = 0
        if self.model.last is not None:
            self.term = max(self.term, self.model.last.term)
        await self.verify(when)


@asynccontextmanager
async def _log_harness(factory: LogStoreFactory, name: str) -> AsyncIterator[_LogHarness]:
    """A harness on a newly opened store; on success, every callback must have fired once."""
    h = _LogHarness(factory, name)
    await h.open()
    try:
        yield h
        await h.sync()
    finally:
        await h.close()
    h.check_callbacks()


# -- log store checks --------------------------------------------------------------------


async def check_initial_state(factory: LogStoreFactory) -> None:
    """A new store: empty log, no vote, nothing committed, no entries to read."""
    async with _log_harness(factory, "initial-state") as h:
        state = await h.store.get_log_state()
        assert state == LogState(None, None), f"a new store has {_fmt_state(state)}"
        vote = await h.store.read_vote()
        assert vote is None, f"a new store has the vote {vote}"
        committed = await h.store.read_committed()
        assert committed is None, f"a new store has committed {committed}"
        await h.verify("on a new store")


async def check_vote(factory: LogStoreFactory) -> None:
    """save_vote/read_vote round trip, overwriting with higher votes; durable on return."""
    async with _log_harness(factory, "vote") as h:
        for vote in (
            Vote(LeaderId(1, 2)),
            Vote(LeaderId(1, 2), committed=True),
            Vote(LeaderId(3, None)),
            Vote(LeaderId(3, 1)),
            Vote(LeaderId(7, 3), committed=True),
        ):
            await h.save_vote(vote)
            await h.restart(f"after save_vote({vote}) and a restart")


async def check_committed(factory: LogStoreFactory) -> None:
    """save_committed/read_committed round trip; after a restart, None or a saved value."""
    async with _log_harness(factory, "committed") as h:
        await h.append_next(6)
        for log_id in (h.model.log_id_at(0), h.model.log_id_at(3), h.model.log_id_at(5)):
            await h.save_committed(log_id)
        await h.restart("after save_committed() and a restart")
        await h.save_committed(None)
        await h.restart("after save_committed(None) and a restart")


async def check_append_and_read(factory: LogStoreFactory) -> None:
    """Appends of every payload kind and several leaders; every read range after each."""
    async with _log_harness(factory, "append-and-read") as h:
        await h.append_next(1)
        await h.append_next(4)
        await h.append_next(3, bump=True)
        await h.append_next(1, bump=True)
        await h.append_next(7)
        await h.append(_entries(16, 18, LeaderId(h.term + 2, 3)))


async def check_append_callback_called_once(factory: LogStoreFactory) -> None:
    """Every append's callback fires exactly once, with None, once a save_vote returns."""
    async with _log_harness(factory, "callback-once") as h:
        for count in (1, 3, 2):
            await h.append_next(count)
        await h.sync()
        for count in (5, 1):
            await h.append_next(count, bump=True)
        await h.sync()
        await h.truncate_after(h.model.log_id_at(4))
        await h.append_next(2, bump=True)
        await h.purge(h.model.log_id_at(2))
        await h.append_next(1)
        await h.sync()


async def check_append_callback_only_when_durable(factory: LogStoreFactory) -> None:
    """callback(None) fires only once durable_log_id(store) covers the appended entries."""
    if not getattr(factory, "durable_log_id", None):
        raise CheckSkipped(
            "the factory has no durable_log_id(store) hook, so an append that calls back "
            "before its entries are durable would go unnoticed (give the factory one: "
            "make_log_store_factory(..., durable_log_id=...))"
        )
    async with _log_harness(factory, "callback-when-durable") as h:
        for count in (2, 1, 4):
            await h.append_next(count)
            h.check_callbacks()
            durable = h.durable_log_id()
            if not log_id_ge(h.model.last, durable):
                raise AssertionError(
                    f"durable_log_id(store) is {durable}, beyond the last log id {h.model.last}"
                )
        await h.sync()
        durable = h.durable_log_id()
        if durable != h.model.last:
            raise AssertionError(
                f"after save_vote(), durable_log_id(store) is {durable}; save_vote makes every "
                f"earlier append durable, up to {h.model.last}"
            )
        await h.append_next(3, bump=True)
        await h.truncate_after(h.model.log_id_at(8))
        await h.append_next(2, bump=True)
        await h.sync()


async def check_append_rejects_hole_or_overlap(factory: LogStoreFactory) -> None:
    """An append not starting right after the last log id, or not contiguous, is refused."""
    async with _log_harness(factory, "append-rejects") as h:
        lead = h.leader()
        await h.append_rejected(_entries(1, 3, lead), "leave a hole (a new log starts at 0)")
        await h.append_next(5)
        await h.append_rejected(_entries(6, 8, lead), "leave a hole")
        await h.append_rejected(_entries(100, 101, lead), "leave a hole")
        await h.append_rejected(_entries(0, 2, h.leader(bump=True)), "overlap the log")
        await h.append_rejected(_entries(4, 6, h.leader()), "overlap the log")
        gap = [*_entries(5, 6, h.leader()), *_entries(7, 8, h.leader())]
        await h.append_rejected(gap, "leave a hole inside the batch")
        await h.append_next(2)
        await h.purge(LogId(h.leader(), 20))
        await h.append_rejected(_entries(7, 8, h.leader()), "leave a hole after a purge")
        await h.append_rejected(_entries(20, 21, h.leader()), "overlap the purged log")
        await h.append_next(1)
        await h.restart("after refused appends and a restart")


async def check_truncate_after_each_position(factory: LogStoreFactory) -> None:
    """truncate_after(None), after every entry, after the last and past it; then append."""
    positions: list[int | None] = [None, *range(8), 9]
    for pos in positions:
        name = f"truncate-after-{'none' if pos is None else pos}"
        async with _log_harness(factory, name) as h:
            await h.append_next(4)
            await h.append_next(4, bump=True)  # indexes 0..7, two leaders
            await h.save_committed(h.model.log_id_at(0))
            if pos is None:
                after: LogId | None = None
            elif pos <= 7:
                after = h.model.log_id_at(pos)
            else:
                after = LogId(h.leader(), pos)  # past the last entry: nothing to delete
            await h.truncate_after(after)
            await h.append_next(3, bump=True)
            await h.restart(f"after truncate_after({after}), an append and a restart")


async def check_purge_up_to_each_position(factory: LogStoreFactory) -> None:
    """purge(upto) at every entry and past the last; reads, log state and appends after."""
    for pos in [*range(8), 8, 12]:
        async with _log_harness(factory, f"purge-upto-{pos}") as h:
            await h.append_next(5)
            await h.append_next(3, bump=True)  # indexes 0..7
            upto = h.model.log_id_at(pos) if pos <= 7 else LogId(h.leader(), pos)
            await h.purge(upto)
            await h.append_next(2, bump=True)
            await h.restart(f"after purge({upto}), an append and a restart")


async def check_purge_at_or_before_last_purge_is_noop(factory: LogStoreFactory) -> None:
    """Purging at or before the last purged log id changes nothing."""
    async with _log_harness(factory, "purge-noop") as h:
        await h.append_next(10)
        purged = h.model.log_id_at(4)
        for upto in (purged, purged, h.model.log_id_at(6)):
            await h.purge(upto)
        for index in (6, 5, 2, 0):
            await h.purge(LogId(h.leader(), index))
        await h.purge(LogId(h.leader(), 20))  # past the last entry
        for index in (20, 9):
            await h.purge(LogId(h.leader(), index))
        await h.restart("after purges at or before the last purge and a restart")
        await h.purge(LogId(h.leader(), 12))
        await h.append_next(1)


async def check_purge_past_last_entry(factory: LogStoreFactory) -> None:
    """Purging an empty log or past its end: empty log whose last log id is the purge point."""
    async with _log_harness(factory, "purge-past-end") as h:
        await h.purge(LogId(_leader(2, 2), 4))
        await h.append_rejected(_entries(0, 1, _leader(2, 2)), "leave a hole after a purge")
        await h.append(_entries(5, 7, _leader(2, 2)))
        await h.purge(LogId(_leader(3, 1), 9))
        await h.restart("after purging past the last entry and a restart")
        await h.append(_entries(10, 12, _leader(3, 1)))
        await h.purge(h.model.log_id_at(11))
        await h.restart("after purging exactly the last entry and a restart")
        await h.append(_entries(12, 13, _leader(4, 1)))


async def check_truncate_after_purge(factory: LogStoreFactory) -> None:
    """Truncating after the purge point: reads across both boundaries, then append."""
    async with _log_harness(factory, "truncate-after-purge") as h:
        await h.append_next(12)
        await h.purge(h.model.log_id_at(4))
        await h.truncate_after(h.model.log_id_at(9))
        await h.append_next(2, bump=True)
        await h.truncate_after(h.model.log_id_at(6))
        await h.truncate_after(h.model.purged)  # exactly at the purge point: empty log
        await h.append_next(3, bump=True)
        await h.purge(h.model.log_id_at(6))
        await h.restart("after truncating and purging and a restart")


async def check_restart_keeps_durable_state(factory: LogStoreFactory) -> None:
    """A restart keeps the vote, what callbacks reported durable, purges and truncations."""
    async with _log_harness(factory, "restart") as h:
        await h.restart("after a restart of a new store")
        await h.append_next(3)
        await h.sync()
        await h.restart("after a synced append and a restart")
        await h.save_vote(Vote(_leader(2, 2), committed=True))
        await h.append_next(4, bump=True)
        await h.save_committed(h.model.log_id_at(5))
        await h.purge(h.model.log_id_at(1))
        await h.truncate_after(h.model.log_id_at(5))
        await h.sync()
        await h.restart("after purge, truncate, sync and a restart")
        await h.append_next(2)
        # Not synced: the last append may or may not be there; earlier writes must be.
        await h.restart("after an unsynced append and a restart")
        await h.append_next(2)
        await h.restart("after a second restart")


async def check_truncated_entries_stay_gone_after_restart(factory: LogStoreFactory) -> None:
    """Entries deleted by truncate_after never come back once a later write is durable."""
    async with _log_harness(factory, "truncate-restart") as h:
        await h.append_next(8)
        await h.sync()
        await h.truncate_after(h.model.log_id_at(3))
        await h.sync()
        await h.restart("after truncate_after, save_vote and a restart")
        await h.append_next(2, bump=True)
        await h.sync()
        await h.truncate_after(h.model.log_id_at(2))
        await h.append_next(3, bump=True)
        await h.sync()  # the new entries are durable, so the truncation is too
        await h.restart("after truncate_after, a durable append and a restart")
        await h.truncate_after(None)
        await h.sync()
        await h.restart("after truncate_after(None) and a restart")
        await h.append_next(2, bump=True)
        await h.truncate_after(h.model.log_id_at(0))
        await h.restart("after an unsynced truncation and a restart")


async def check_writes_are_durable_in_submission_order(factory: LogStoreFactory) -> None:
    """save_vote makes every earlier append durable, whether or not its callback has fired."""
    async with _log_harness(factory, "io-ordering") as h:
        await h.append_next(3)
        await h.append_next(2, bump=True)
        await h.save_vote(Vote(_leader(h.term, 2)))
        await h.restart("after appends, save_vote (no waiting for callbacks) and a restart")
        await h.purge(h.model.log_id_at(1))
        await h.append_next(2)
        await h.save_vote(Vote(_leader(h.term, 2), committed=True))
        await h.restart("after purge, append, save_vote and a restart")


async def check_append_after_restart_continues(factory: LogStoreFactory) -> None:
    """After reopening, appends continue right after the recovered last log id."""
    async with _log_harness(factory, "append-after-restart") as h:
        await h.append_next(4)
        await h.sync()
        for round_ in range(3):
            await h.restart(f"after restart {round_ + 1}")
            await h.append_next(2, bump=True)
            await h.append_rejected(
                _entries(h.model.next_index + 1, h.model.next_index + 2, h.leader()),
                "leave a hole after a restart",
            )
            await h.sync()


async def check_random_history(factory: LogStoreFactory) -> None:
    """A seeded random mix of every operation and restarts, checked after each step."""
    rng = random.Random(20261101)
    async with _log_harness(factory, "random-history") as h:
        for step in range(150):
            op = rng.random()
            model = h.model
            first = next_index(model.purged)
            if op < 0.40:
                await h.append_next(rng.randint(1, 4), bump=rng.random() < 0.2)
            elif op < 0.55 and model.entries:
                index = rng.randint(first - 1, model.next_index)
                after = (
                    model.purged
                    if index < first
                    else LogId(h.leader(), index)
                    if index >= model.next_index
                    else model.log_id_at(index)
                )
                await h.truncate_after(after)
                h.leader(bump=True)
            elif op < 0.65:
                index = rng.randint(max(0, first - 2), model.next_index + 1)
                upto = (
                    model.log_id_at(index)
                    if first <= index < model.next_index
                    else LogId(h.leader(), index)
                    if index >= model.next_index
                    else LogId(model.purged.leader_id if model.purged else h.leader(), index)
                )
                await h.purge(upto)
            elif op < 0.72:
                await h.save_vote(Vote(_leader(h.term, rng.randint(1, 3)), rng.random() < 0.5))
            elif op < 0.80:
                committed = model.last if rng.random() < 0.8 else None
                await h.save_committed(committed)
            elif op < 0.88:
                await h.sync()
            else:
                await h.restart(f"after restart at step {step} of the random history")


LOG_STORE_CHECKS: Final[tuple[LogStoreCheck, ...]] = (
    check_initial_state,
    check_vote,
    check_committed,
    check_append_and_read,
    check_append_callback_called_once,
    check_append_callback_only_when_durable,
    check_append_rejects_hole_or_overlap,
    check_truncate_after_each_position,
    check_purge_up_to_each_position,
    check_purge_at_or_before_last_purge_is_noop,
    check_purge_past_last_entry,
    check_truncate_after_purge,
    check_restart_keeps_durable_state,
    check_truncated_entries_stay_gone_after_restart,
    check_writes_are_durable_in_submission_order,
    check_append_after_restart_continues,
    check_random_history,
)
"""Every log store check, in the order :func:`run_log_store_suite` runs them."""


# -- state machine harness ---------------------------------------------------------------


def _sm_script(make_request: MakeRequest) -> list[Entry]:
    """Entries of three leaders with every payload kind; requests 0..7, some repeated."""
    l1, l2, l3 = _leader(1, 1), _leader(2, 2), _leader(3, 3)
    plan: list[tuple[LeaderId, Blank | Normal | MembershipChange]] = [
        (l1, Blank()),
        (l1, MembershipChange(_MEMBERSHIP_123)),
        *[(l1, Normal(make_request(i))) for i in range(5)],
        (l2, Blank()),
        (l2, MembershipChange(_MEMBERSHIP_JOINT)),
        *[(l2, Normal(make_request(i))) for i in range(3, 6)],
        (l2, MembershipChange(_MEMBERSHIP_234)),
        *[(l2, Normal(make_request(i))) for i in range(6, 8)],
        (l3, Blank()),
        *[(l3, Normal(make_request(i))) for i in range(0, 8, 2)],
        (l3, Normal(make_request(1))),
    ]
    return [Entry(LogId(leader, index), payload) for index, (leader, payload) in enumerate(plan)]


def _membership_after(entries: Sequence[Entry]) -> StoredMembership:
    for entry in reversed(entries):
        if isinstance(entry.payload, MembershipChange):
            return StoredMembership(entry.log_id, entry.payload.membership)
    return StoredMembership()


class _Replica:
    """A state machine applying a prefix of a script, checked after every apply."""

    def __init__(self, sm: RaftStateMachine, script: Sequence[Entry], label: str) -> None:
        self.sm = sm
        self.script = script
        self.label = label
        self.pos = 0  # script[:pos] is applied
        self.replies: dict[int, Any] = {}  # script index -> reply

    def expected_state(self, pos: int | None = None) -> tuple[LogId | None, StoredMembership]:
        pos = self.pos if pos is None else pos
        applied = self.script[pos - 1].log_id if pos else None
        return applied, _membership_after(self.script[:pos])

    async def check_applied(self, when: str) -> None:
        got = await self.sm.applied_state()
        expected = self.expected_state()
        if tuple(got) != expected:
            raise AssertionError(
                f"{self.label} {when}: applied_state() returned {_fmt_applied(got)}, "
                f"expected {_fmt_applied(expected)}"
            )

    async def apply(self, stop: int, batch: int = 4) -> list[Any]:
        """Apply ``script[pos:stop]`` in batches of ``batch``; return the replies."""
        out: list[Any] = []
        while self.pos < stop:
            entries = list(self.script[self.pos : min(stop, self.pos + batch)])
            out += await _apply_checked(self.sm, entries, self.label)
            for entry, reply in zip(entries, out[-len(entries) :], strict=True):
                self.replies[entry.index] = reply
            self.pos += len(entries)
            await self.check_applied(f"after apply({_ids(entries)})")
        return out

    async def adopt_recovered_position(self, when: str, at_least: int) -> None:
        """After a restart or install: find where in the script the state machine is."""
        got = await self.sm.applied_state()
        applied = got[0]
        positions = [p for p in range(len(self.script) + 1) if self.expected_state(p)[0] == applied]
        if not positions or positions[0] < at_least:
            low = self.expected_state(at_least)[0]
            raise AssertionError(
                f"{self.label} {when}: applied_state() returned {_fmt_applied(got)}; expected "
                f"a log id between {low} and {self.script[-1].log_id} of the applied entries"
            )
        self.pos = positions[0]
        await self.check_applied(when)


def _fmt_applied(state: Sequence[Any]) -> str:
    applied, membership = state
    if not isinstance(membership, StoredMembership):
        return f"({applied}, {membership!r})"
    configs = [sorted(c) for c in membership.membership.configs]
    return f"({applied}, StoredMembership({membership.log_id}, voters={configs}))"


async def _apply_checked(sm: RaftStateMachine, entries: list[Entry], label: str) -> list[Any]:
    replies = list(await sm.apply(entries))
    if len(replies) != len(entries):
        raise AssertionError(
            f"{label}: apply({_ids(entries)}) returned {len(replies)} replies for "
            f"{len(entries)} entries; it must return one reply per entry"
        )
    for entry, reply in zip(entries, replies, strict=True):
        if not isinstance(entry.payload, Normal) and reply is not None:
            raise AssertionError(
                f"{label}: apply() replied {reply!r} to the {type(entry.payload).__name__} "
                f"entry {entry.log_id}; entries without application data reply None"
            )
    return replies


async def _probe(replica: _Replica, make_request: MakeRequest) -> list[Any]:
    """Replies to every request number again: they reveal the state (the replica moves on)."""
    start = replica.script[-1].index + 1
    leader = _leader(9, 1)
    entries = [Entry(LogId(leader, start + i), Normal(make_request(i))) for i in range(8)]
    return await _apply_checked(replica.sm, entries, replica.label)


async def _assert_same_state(
    a: _Replica, b: _Replica, make_request: MakeRequest, when: str
) -> None:
    state_a, state_b = tuple(await a.sm.applied_state()), tuple(await b.sm.applied_state())
    if state_a != state_b:
        raise AssertionError(
            f"{when}: {a.label} has applied_state() {_fmt_applied(state_a)} but {b.label} "
            f"has {_fmt_applied(state_b)}"
        )
    replies_a, replies_b = await _probe(a, make_request), await _probe(b, make_request)
    if replies_a != replies_b:
        raise AssertionError(
            f"{when}: the same requests got different replies from {a.label} ({replies_a!r}) "
            f"and {b.label} ({replies_b!r}), so their states differ"
        )


def _fmt_snapshot(snapshot: Snapshot | None) -> str:
    if snapshot is None:
        return "None"
    return f"Snapshot(last_log_id={snapshot.meta.last_log_id}, id={snapshot.meta.snapshot_id!r})"


async def _build_checked(replica: _Replica) -> Snapshot:
    snapshot = await replica.sm.build_snapshot()
    applied, membership = replica.expected_state()
    meta = snapshot.meta
    if meta.last_log_id != applied or meta.last_membership != membership:
        raise AssertionError(
            f"{replica.label}: build_snapshot() at {_fmt_applied((applied, membership))} "
            f"returned a snapshot whose meta says {_fmt_applied((meta.last_log_id, meta.last_membership))}"
        )
    if not (isinstance(meta.snapshot_id, str) and meta.snapshot_id):
        raise AssertionError(f"build_snapshot() returned the snapshot id {meta.snapshot_id!r}")
    if not isinstance(snapshot.data, bytes | bytearray | memoryview):
        raise AssertionError(f"build_snapshot() returned data of type {type(snapshot.data)}")
    await replica.check_applied("after build_snapshot() (building changes nothing)")
    await _expect_current_snapshot(replica, snapshot, "after build_snapshot()")
    return snapshot


async def _expect_current_snapshot(replica: _Replica, snapshot: Snapshot, when: str) -> None:
    current = await replica.sm.get_current_snapshot()
    if current is None or current.meta != snapshot.meta:
        raise AssertionError(
            f"{replica.label} {when}: get_current_snapshot() returned {_fmt_snapshot(current)}, "
            f"expected {_fmt_snapshot(snapshot)}"
        )
    if bytes(current.data) != bytes(snapshot.data):
        raise AssertionError(
            f"{replica.label} {when}: get_current_snapshot() has the expected meta but other data"
        )


@asynccontextmanager
async def _replica(
    factory: StateMachineFactory, name: str, script: Sequence[Entry], label: str = ""
) -> AsyncIterator[_Replica]:
    async with factory(name) as sm:
        yield _Replica(sm, script, label or f"state machine {name!r}")


def _require_durable(factory: StateMachineFactory) -> None:
    if not getattr(factory, "durable", False):
        raise CheckSkipped(
            "the state machine factory is not durable (durable=False), so nothing checks "
            "that a restart restores the last snapshot"
        )


# -- state machine checks ----------------------------------------------------------------


async def check_sm_initial_state(factory: StateMachineFactory, make_request: MakeRequest) -> None:
    """A new state machine: nothing applied, the empty membership, no snapshot."""
    async with _replica(factory, "sm-initial", _sm_script(make_request)) as r:
        await r.check_applied("when new")
        snapshot = await r.sm.get_current_snapshot()
        if snapshot is not None:
            raise AssertionError(
                f"a new state machine's get_current_snapshot() returned {_fmt_snapshot(snapshot)}"
            )


async def check_sm_apply_replies_and_applied_state(
    factory: StateMachineFactory, make_request: MakeRequest
) -> None:
    """One reply per entry, in order (batched = one by one); applied advances each apply."""
    script = _sm_script(make_request)
    async with (
        _replica(factory, "sm-apply-batched", script, "the batch-applying state machine") as a,
        _replica(factory, "sm-apply-single", script, "the one-by-one state machine") as b,
    ):
        batched = [*await a.apply(1, 1), *await a.apply(4, 3), *await a.apply(len(script), 7)]
        single = await b.apply(len(script), 1)
        if batched != single:
            raise AssertionError(
                f"applying the same entries in batches replied {batched!r}, one by one "
                f"{single!r}: replies must come one per entry, in order"
            )
        await _assert_same_state(a, b, make_request, "after applying the same entries")


async def check_sm_membership_entries_update_membership(
    factory: StateMachineFactory, make_request: MakeRequest
) -> None:
    """applied_state() reports the last applied membership entry and its log id."""
    script = _sm_script(make_request)
    async with _replica(factory, "sm-membership", script) as r:
        await r.apply(len(script), 1)  # checks the membership after every entry
        async with _replica(factory, "sm-membership-batch", script) as batched:
            await batched.apply(len(script), len(script))


async def check_sm_build_snapshot(factory: StateMachineFactory, make_request: MakeRequest) -> None:
    """build_snapshot() describes the applied state, changes nothing, becomes current."""
    script = _sm_script(make_request)
    async with (
        _replica(factory, "sm-build", script) as r,
        _replica(factory, "sm-build-reference", script, "the reference state machine") as ref,
    ):
        await r.apply(10)
        first = await _build_checked(r)
        await r.apply(len(script))
        second = await _build_checked(r)
        if second.meta.snapshot_id == first.meta.snapshot_id:
            raise AssertionError(
                f"two snapshots at different log ids share the snapshot id "
                f"{first.meta.snapshot_id!r}"
            )
        await ref.apply(len(script))
        await _assert_same_state(r, ref, make_request, "after building snapshots")


async def _install_checked(target: _Replica, snapshot: Snapshot, pos: int) -> None:
    """Install ``snapshot`` into ``target``; it must then be applied up to script ``pos``
    and report the snapshot as its current one."""
    await target.sm.install_snapshot(snapshot.meta, snapshot.data)
    await target.adopt_recovered_position("after install_snapshot()", pos)
    if target.pos != pos:
        raise AssertionError(
            f"after install_snapshot() of {_fmt_snapshot(snapshot)}, applied_state() says "
            f"{target.expected_state()[0]}"
        )
    await _expect_current_snapshot(target, snapshot, "after install_snapshot()")


async def check_sm_install_snapshot_into_new_state_machine(
    factory: StateMachineFactory, make_request: MakeRequest
) -> None:
    """A snapshot installed into a new state machine reproduces the state it was built at."""
    script = _sm_script(make_request)
    async with (
        _replica(factory, "sm-install-source", script, "the snapshot's source") as source,
        _replica(factory, "sm-install-target", script, "the new state machine") as target,
    ):
        await source.apply(13)
        snapshot = await _build_checked(source)
        await _install_checked(target, snapshot, 13)
        from_source = await source.apply(len(script))
        from_target = await target.apply(len(script))
        if from_source != from_target:
            raise AssertionError(
                f"after installing the snapshot, the same entries got the replies "
                f"{from_target!r}; the snapshot's source replied {from_source!r}"
            )
        await _assert_same_state(source, target, make_request, "after the same entries")


async def check_sm_install_snapshot_over_older_state(
    factory: StateMachineFactory, make_request: MakeRequest
) -> None:
    """A lagging state machine (applied a prefix) installing a newer snapshot catches up."""
    script = _sm_script(make_request)
    async with (
        _replica(factory, "sm-catch-up-source", script, "the snapshot's source") as source,
        _replica(factory, "sm-catch-up-target", script, "the lagging state machine") as target,
    ):
        await target.apply(6)
        await source.apply(16)
        snapshot = await _build_checked(source)
        await _install_checked(target, snapshot, 16)
        await source.apply(len(script))
        await target.apply(len(script))
        await _assert_same_state(source, target, make_request, "after the same entries")


async def check_sm_install_older_snapshot_is_ignored(
    factory: StateMachineFactory, make_request: MakeRequest
) -> None:
    """Installing a snapshot at or before the applied log id changes nothing."""
    script = _sm_script(make_request)
    async with (
        _replica(factory, "sm-older", script) as r,
        _replica(factory, "sm-older-reference", script, "the reference state machine") as ref,
    ):
        await r.apply(8)
        older = await _build_checked(r)
        await r.apply(len(script))
        await r.sm.install_snapshot(older.meta, older.data)
        await r.check_applied(f"after install_snapshot() of the older {_fmt_snapshot(older)}")
        await ref.apply(len(script))
        await _assert_same_state(r, ref, make_request, "after installing an older snapshot")


async def check_sm_restart_restores_snapshot(
    factory: StateMachineFactory, make_request: MakeRequest
) -> None:
    """A durable state machine reopens at its last snapshot or later, and continues."""
    _require_durable(factory)
    script = _sm_script(make_request)
    async with _replica(factory, "sm-restart-ref", script, "the reference") as ref:
        await ref.apply(len(script))
        snapshot_pos = 11
        async with _replica(factory, "sm-restart", script) as r:
            await r.apply(snapshot_pos)
            snapshot = await _build_checked(r)
            await r.apply(17)
        async with _replica(factory, "sm-restart", script, "the reopened state machine") as r:
            await r.adopt_recovered_position("after a restart", snapshot_pos)
            if r.pos > 17:
                raise AssertionError("after a restart applied_state() is past what was applied")
            current = await r.sm.get_current_snapshot()
            if current is None or not log_id_ge(
                current.meta.last_log_id, snapshot.meta.last_log_id
            ):
                raise AssertionError(
                    f"after a restart get_current_snapshot() returned {_fmt_snapshot(current)}; "
                    f"expected {_fmt_snapshot(snapshot)} (or a later one)"
                )
            if current.meta.last_log_id == snapshot.meta.last_log_id:
                await _expect_current_snapshot(r, snapshot, "after a restart")
            # Raft re-applies the log after the recovered position: same replies as before.
            replies = await r.apply(len(script))
            expected = [ref.replies[e.index] for e in script[len(script) - len(replies) :]]
            if replies != expected:
                raise AssertionError(
                    f"after a restart, re-applying the entries after {r.expected_state(len(script) - len(replies))[0]} "
                    f"replied {replies!r}; before the restart they replied {expected!r}"
                )
        # A snapshot installed into a durable state machine survives a restart too.
        async with _replica(factory, "sm-restart-installed", script) as installed:
            await installed.sm.install_snapshot(snapshot.meta, snapshot.data)
            await installed.adopt_recovered_position("after install_snapshot()", snapshot_pos)
        async with _replica(
            factory, "sm-restart-installed", script, "the reopened state machine"
        ) as installed:
            await installed.adopt_recovered_position(
                "after install_snapshot() and a restart", snapshot_pos
            )
            await _expect_current_snapshot(
                installed, snapshot, "after install_snapshot() and a restart"
            )
            await installed.apply(len(script))
            await _assert_same_state(
                installed, ref, make_request, "after a restart and the same entries"
            )


STATE_MACHINE_CHECKS: Final[tuple[StateMachineCheck, ...]] = (
    check_sm_initial_state,
    check_sm_apply_replies_and_applied_state,
    check_sm_membership_entries_update_membership,
    check_sm_build_snapshot,
    check_sm_install_snapshot_into_new_state_machine,
    check_sm_install_snapshot_over_older_state,
    check_sm_install_older_snapshot_is_ignored,
    check_sm_restart_restores_snapshot,
)
"""Every state machine check, in the order :func:`run_state_machine_suite` runs them."""


# -- pytest base classes -----------------------------------------------------------------


class LogStoreSuite:
    """Subclass as ``Test...`` and define the fixture ``log_store_factory``.

    One test per check in :data:`LOG_STORE_CHECKS`, named ``test_<check>``. A check that
    cannot run is skipped with a ``NOT RUN`` reason and warns :class:`StorageCheckNotRun`;
    set ``require_all_checks = True`` to make it fail instead.
    """

    require_all_checks: bool = False


class StateMachineSuite:
    """Subclass as ``Test...`` and define the fixtures ``state_machine_factory`` and
    ``make_request``.

    One test per check in :data:`STATE_MACHINE_CHECKS`, named ``test_<check>``. A check
    that cannot run is skipped with a ``NOT RUN`` reason and warns
    :class:`StorageCheckNotRun`; set ``require_all_checks = True`` to make it fail instead.
    """

    require_all_checks: bool = False


def _log_store_test(check: LogStoreCheck) -> Callable[..., Awaitable[None]]:
    async def test(self: LogStoreSuite, log_store_factory: LogStoreFactory) -> None:
        await _run_for_pytest(check, self.require_all_checks, log_store_factory)

    return test


def _state_machine_test(check: StateMachineCheck) -> Callable[..., Awaitable[None]]:
    async def test(
        self: StateMachineSuite,
        state_machine_factory: StateMachineFactory,
        make_request: MakeRequest,
    ) -> None:
        await _run_for_pytest(
            check, self.require_all_checks, state_machine_factory, make_request
        )

    return test


def _add_tests(
    cls: type, checks: Sequence[Callable[..., Awaitable[None]]], make_test: Callable[[Any], Any]
) -> None:
    for check in checks:
        test = make_test(check)
        name = "test_" + check.__name__.removeprefix("check_")
        test.__name__ = name
        test.__qualname__ = f"{cls.__name__}.{name}"
        test.__doc__ = check.__doc__
        setattr(cls, name, test)


_add_tests(LogStoreSuite, LOG_STORE_CHECKS, _log_store_test)
_add_tests(StateMachineSuite, STATE_MACHINE_CHECKS, _state_machine_test)
