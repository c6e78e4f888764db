"""Applying session entries: what a state machine does with each, and a wrapper that adds
client sessions to any state machine.

:func:`decide` is the whole rule, shared by :class:`SessionStateMachine` (the wrapper) and
state machines that keep their own table (``openraft_trio.kv.KvStateMachine``,
``openraft_trio.objects.ObjectStateMachine``, through :func:`apply_session_entry`): an entry is
either answered from the table (:class:`Answer`: a registration, a duplicate, a refusal,
a keep-alive, a close) or applied (:class:`Run`), after which its reply is recorded with
``table.record(session_id, seq, reply)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final, Generic, TypeVar, final

import attrs
import cbor2

from .. import codec
from .._errors import InvalidRequest
from .._types import (
    BLANK,
    Entry,
    LogId,
    Normal,
    Snapshot,
    SnapshotMeta,
    StoredMembership,
    log_id_ge,
)
from ..storage import BuildsSnapshotsAside, RaftSnapshotBuilder, RaftStateMachine
from ._commands import SESSION_ENTRIES, CloseSession, KeepAlive, OpenSession, SessionCommand
from ._table import Apply, Duplicate, Expired, Registered, SessionTable

C = TypeVar("C")
R = TypeVar("R")

SNAPSHOT_FORMAT: Final = 1


@final
@attrs.frozen
class Run:
    """Apply ``command`` (then record its reply when ``seq`` is not ``None``)."""

    command: Any
    session_id: int | None = None
    seq: int | None = None


@final
@attrs.frozen
class Answer:
    """Reply ``reply`` and apply nothing."""

    reply: Any


def decide(table: SessionTable, data: Any, index: int) -> Run | Answer:
    """What to do with the application data ``data`` of the entry at log index ``index``.

    Data that is no session entry is a plain command: :class:`Run` without a session.
    (Session entries cannot hold impossible numbers: their constructors refuse them.)
    """
    if isinstance(data, SessionCommand):
        outcome = table.begin(data.session_id, data.seq, data.acked_seq, data.now)
        if isinstance(outcome, Apply):
            return Run(data.command, data.session_id, data.seq)
        if isinstance(outcome, Duplicate):
            return Answer(outcome.reply)
        return Answer(outcome)
    if isinstance(data, OpenSession):
        registered = table.register(index, data.now)
        return Answer(index if isinstance(registered, Registered) else registered)
    if isinstance(data, KeepAlive):
        alive = table.keep_alive(data.session_id, data.acked_seq, data.now)
        return Answer(alive if isinstance(alive, Expired) else None)
    if isinstance(data, CloseSession):
        closed = table.close(data.session_id, data.now)
        return Answer(closed if isinstance(closed, Expired) else None)
    return Run(data)


def apply_session_entry(
    table: SessionTable, data: Any, index: int, run: Callable[[int, Any], Any]
) -> Any:
    """The reply to session entry ``data`` (one of :data:`SESSION_ENTRIES`) at ``index``, for
    a state machine that keeps its own ``table``: a new command is ``run(index, command)``
    and its reply recorded; anything else is answered from the table (:func:`decide`)."""
    if type(data) is SessionCommand:  # the common entry, without decide()'s allocation
        outcome = table.begin(data.session_id, data.seq, data.acked_seq, data.now)
        if type(outcome) is Apply:
            reply = run(index, data.command)
            table.record(data.session_id, data.seq, reply)
            return reply
        return outcome.reply if type(outcome) is Duplicate else outcome
    decision = decide(table, data, index)
    assert isinstance(decision, Answer), f"not a session entry: {data!r}"
    return decision.reply


def table_like(table: SessionTable, plain: Any) -> SessionTable:
    """A new table with ``table``'s settings, holding the sessions of :func:`table_to_plain`'s
    data ``plain`` (``None``: none, as in a snapshot from before sessions).

    Raises:
        ValueError: ``plain`` is not such data.
    """
    new = SessionTable(timeout=table.timeout, window=table.window, max_sessions=table.max_sessions)
    if plain is not None:
        table_from_plain(new, plain)
    return new


def table_to_plain(table: SessionTable) -> Any:
    """The table as CBOR-ready data, replies in the codec's encoding."""
    plain = table.snapshot()
    for session in plain["sessions"]:
        session[3] = [[seq, codec.encode_data(reply)] for seq, reply in session[3]]
    return plain


def table_from_plain(table: SessionTable, plain: Any) -> None:
    """Restore ``table`` from :func:`table_to_plain`'s data.

    Raises:
        ValueError: not such data (the table is unchanged).
    """
    try:
        sessions = [
            [sid, used, acked, [[seq, codec.decode_data(r)] for seq, r in replies]]
            for sid, used, acked, replies in plain["sessions"]
        ]
        plain = {**plain, "sessions": sessions}
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"not a session table snapshot: {error!r}") from error
    table.restore(plain)


class SessionStateMachine(Generic[C, R]):
    """Client sessions around any state machine ``inner`` (a ``RaftStateMachine``).

    Applies the session entries itself (:class:`OpenSession`, :class:`SessionCommand`,
    :class:`KeepAlive`, :class:`CloseSession`) and hands ``inner`` the commands to apply:
    the command of each new :class:`SessionCommand`, and every other entry unchanged. An
    entry answered from the table (a retry, a refusal, a registration) reaches ``inner``
    as a ``Blank`` entry, so its last applied log id moves as usual. Consecutive commands
    still reach ``inner.apply`` in batches.

    Its snapshots are ``inner``'s with the session table added, so ``inner`` must not
    persist snapshots of its own that it restores on restart (``inner`` is rebuilt from
    this wrapper's snapshots and the log); a durable state machine keeps the table inside
    its own snapshot instead, as ``openraft_trio.kv.KvStateMachine`` and
    ``openraft_trio.objects.ObjectStateMachine`` do. Snapshots are
    built aside when ``inner`` builds them aside
    (:class:`~openraft_trio.storage.BuildsSnapshotsAside`).

    Args:
        inner: the state machine whose commands get exactly-once sessions.
        timeout: log seconds an unused session lives (see :class:`SessionTable`).
        window: the most unacknowledged replies cached per session.
        max_sessions: the most live sessions.

    All replicas must use the same ``timeout``, ``window`` and ``max_sessions``.
    """

    def __new__(cls, inner: RaftStateMachine[Any, Any], **_: Any) -> SessionStateMachine[C, R]:
        if cls is SessionStateMachine and isinstance(inner, BuildsSnapshotsAside):
            cls = _SessionStateMachineAside
        return super().__new__(cls)

    def __init__(
        self,
        inner: RaftStateMachine[Any, Any],
        *,
        timeout: float = 60.0,
        window: int = 64,
        max_sessions: int = 10_000,
    ) -> None:
        self.inner = inner
        self.table = SessionTable(timeout=timeout, window=window, max_sessions=max_sessions)
        self._current: Snapshot | None = None

    async def applied_state(self) -> tuple[LogId | None, StoredMembership]:
        """``inner``'s last applied log id and membership."""
        return await self.inner.applied_state()

    async def apply(self, entries: Sequence[Entry[Any]]) -> list[Any]:
        """Apply ``entries``: session entries here, commands in ``inner`` (one reply each)."""
        table = self.table
        replies: list[Any] = [None] * len(entries)
        batch: list[Entry[Any]] = []
        # Per entry of the batch: where inner's reply goes (None: answered here already),
        # and the session and seq to record it under.
        slots: list[tuple[int | None, int | None, int | None]] = []
        # session id -> the seqs in the batch, whose replies are not recorded yet.
        pending: dict[int, list[int]] = {}

        async def flush() -> None:
            if not batch:
                return
            for (position, session_id, seq), reply in zip(
                slots, await self.inner.apply(batch), strict=True
            ):
                if position is None:
                    continue
                replies[position] = reply
                if session_id is not None and seq is not None:
                    table.record(session_id, seq, reply)
            batch.clear()
            slots.clear()
            pending.clear()

        for position, entry in enumerate(entries):
            payload = entry.payload
            data = payload.data if isinstance(payload, Normal) else None
            if not isinstance(data, SESSION_ENTRIES):
                batch.append(entry)
                slots.append((position, None, None))
                continue
            # A reply recorded late must find its session live, not acknowledged yet, and
            # no earlier copy of itself.
            if pending and (
                not isinstance(data, SessionCommand)
                or table.expires_before(data.now)
                or any(
                    seq == data.seq or seq <= data.acked_seq
                    for seq in pending.get(data.session_id, ())
                )
            ):
                await flush()
            decision = decide(table, data, entry.log_id.index)
            if isinstance(decision, Run):
                assert decision.session_id is not None
                assert decision.seq is not None
                batch.append(Entry(entry.log_id, Normal(decision.command)))
                slots.append((position, decision.session_id, decision.seq))
                pending.setdefault(decision.session_id, []).append(decision.seq)
            else:
                batch.append(Entry(entry.log_id, BLANK))
                slots.append((None, None, None))
                replies[position] = decision.reply
        await flush()
        return replies

    async def build_snapshot(self) -> Snapshot:
        """``inner``'s snapshot of everything applied, with the session table."""
        snapshot = await self.inner.build_snapshot()
        return self._combine(snapshot, table_to_plain(self.table))

    def _combine(self, snapshot: Snapshot, table: Any) -> Snapshot:
        data = cbor2.dumps([SNAPSHOT_FORMAT, table, snapshot.data])
        self._current = Snapshot(meta=snapshot.meta, data=data)
        return self._current

    async def install_snapshot(self, meta: SnapshotMeta, data: bytes) -> None:
        """Install a snapshot :meth:`build_snapshot` built: ``inner``'s part and the table.
        One not newer than what is applied is ignored.

        Raises:
            InvalidRequest: ``data`` is not such a snapshot; nothing changes.
        """
        applied, _ = await self.inner.applied_state()
        if log_id_ge(applied, meta.last_log_id):
            return
        try:
            fmt, plain, inner_data = cbor2.loads(data)
            if fmt != SNAPSHOT_FORMAT or not isinstance(inner_data, bytes):
                raise ValueError(f"unknown session snapshot format {fmt!r}")
            table = table_like(self.table, plain)
        except (ValueError, TypeError, cbor2.CBORDecodeError) as error:
            raise InvalidRequest(f"not a session snapshot: {error}") from error
        await self.inner.install_snapshot(meta, inner_data)
        self.table = table
        self._current = Snapshot(meta=meta, data=bytes(data))

    async def get_current_snapshot(self) -> Snapshot | None:
        """The latest snapshot this wrapper built or installed, if any."""
        return self._current


@final
class _SessionStateMachineAside(SessionStateMachine[C, R]):
    """A :class:`SessionStateMachine` whose ``inner`` builds snapshots aside."""

    def get_snapshot_builder(self) -> RaftSnapshotBuilder:
        """A builder of ``inner``'s snapshot with the table as it is now."""
        assert isinstance(self.inner, BuildsSnapshotsAside)
        return _Builder(self, self.inner.get_snapshot_builder(), table_to_plain(self.table))


@final
@attrs.define
class _Builder:
    owner: SessionStateMachine[Any, Any]
    inner: RaftSnapshotBuilder
    table: Any

    async def build_snapshot(self) -> Snapshot:
        return self.owner._combine(await self.inner.build_snapshot(), self.table)
