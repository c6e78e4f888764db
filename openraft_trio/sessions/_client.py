"""The client's half of a session, for code that writes through a ``Raft`` handle.

::

    session = await open_session(raft)
    call = session.call(Deposit("alice", 5))   # numbered once
    resp = await call.send(raft)               # safe to repeat, on any node, after any failure

:meth:`SessionCall.send` stamps the command with the clock of the process it runs in. Send
it to the leader's ``Raft`` handle (other nodes refuse it with ``ForwardToLeader``), so the
time in the log is the leader's, as the session table expects.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar, final

from .._core.handle import Raft
from .._errors import RaftError, short_repr
from .._messages import ClientWriteResponse
from ._commands import CloseSession, KeepAlive, OpenSession, SessionCommand
from ._table import Expired, Stale, TooManySessions, WindowExceeded

C = TypeVar("C")
R = TypeVar("R")

Clock = Callable[[], float]


class SessionError(RaftError):
    """A session refused a command: nothing was applied by the refused entry."""


class SessionExpired(SessionError):
    """The session is unknown or has expired.

    ``maybe_applied`` is True when the command had been sent before, with an outcome not
    known (a retry met the expiry): it may or may not have been applied, exactly as
    without sessions. When False this was the command's first sending, so it was not
    applied; it is safe to send again in a new session.
    """

    def __init__(self, session_id: int, *, maybe_applied: bool) -> None:
        what = "may have been applied before" if maybe_applied else "was not applied"
        super().__init__(f"session {session_id} has expired; the command {what}")
        self.session_id = session_id
        self.maybe_applied = maybe_applied


class StaleSequence(SessionError):
    """The command's sequence number is at or below what its client acknowledged: the
    client said it had the reply, which is gone (a client bug or a very late copy)."""


class SequenceOutOfWindow(SessionError):
    """The command runs more than the session window ahead of the client's
    acknowledgements; acknowledge replies (finish earlier calls) first."""


class SessionsFull(SessionError):
    """Registration refused: the cluster holds its most live sessions. Retry later, once
    idle sessions expire or close."""


def refusal(reply: Any, *, sent_before: bool) -> SessionError | None:
    """The error a session refusal ``reply`` stands for, or ``None`` for a real reply."""
    if isinstance(reply, Expired):
        return SessionExpired(reply.session_id, maybe_applied=sent_before)
    if isinstance(reply, Stale):
        return StaleSequence(
            f"session {reply.session_id}: seq {reply.seq} <= acknowledged {reply.acked_seq}"
        )
    if isinstance(reply, WindowExceeded):
        return SequenceOutOfWindow(
            f"session {reply.session_id}: seq {reply.seq} is beyond acknowledged "
            f"{reply.acked_seq} + window {reply.window}"
        )
    if isinstance(reply, TooManySessions):
        return SessionsFull(f"the cluster holds its most live sessions ({reply.max_sessions})")
    return None


def unless_refused(reply: Any, *, sent_before: bool) -> Any:
    """``reply``, unless it is a session refusal: then raise its error (see :func:`refusal`)."""
    error = refusal(reply, sent_before=sent_before)
    if error is not None:
        raise error
    return reply


@final
class ClientSession:
    """One registered session: its id and the numbering of its commands.

    Sequence numbers start at 1. :attr:`acked_seq` is the highest ``n`` such that the
    replies to ``1..n`` have all arrived (every command carries it, so the replicas drop
    those cached replies). Commands may be in flight concurrently, within the window.
    """

    def __init__(self, session_id: int, *, clock: Clock = time.time) -> None:
        if isinstance(session_id, bool) or not isinstance(session_id, int) or session_id < 1:
            raise ValueError(f"session_id must be an integer >= 1, got {session_id!r}")
        self.session_id = session_id
        self.clock = clock
        self.acked_seq = 0
        self._next_seq = 1
        self._done: set[int] = set()

    def next_seq(self) -> int:
        """Take the next sequence number."""
        seq = self._next_seq
        self._next_seq += 1
        return seq

    def completed(self, seq: int) -> None:
        """The reply to ``seq`` arrived (or the caller gave up on it for good)."""
        if seq > self.acked_seq:
            self._done.add(seq)
        while self.acked_seq + 1 in self._done:
            self.acked_seq += 1
            self._done.remove(self.acked_seq)

    def acked_for(self, seq: int) -> int:
        """The ``acked_seq`` command ``seq`` carries: the replies below ``seq`` only, never
        its own, so a copy sent again after its reply came is still answered, until a later
        command acknowledges it."""
        return min(self.acked_seq, seq - 1)

    def command(self, seq: int, command: C, now: float) -> SessionCommand[C]:
        """The log command of ``command`` as number ``seq``, stamped ``now``."""
        return SessionCommand(self.session_id, seq, self.acked_for(seq), now, command)

    def call(self, command: C) -> SessionCall[C]:
        """Number ``command``: the returned call may be sent any number of times."""
        return SessionCall(self, self.next_seq(), command)

    async def keep_alive(self, raft: Raft[Any, Any]) -> None:
        """Keep the session alive while idle (send one well within the session timeout).

        Raises:
            SessionExpired: it has already expired.
        """
        resp = await raft.client_write(KeepAlive(self.session_id, self.acked_seq, self.clock()))
        unless_refused(resp.data, sent_before=False)

    async def close(self, raft: Raft[Any, Any]) -> None:
        """End the session on the cluster (an expired one is closed already)."""
        await raft.client_write(CloseSession(self.session_id, self.clock()))

    def __repr__(self) -> str:
        return f"ClientSession({self.session_id}, acked_seq={self.acked_seq})"


@final
class SessionCall(Generic[C]):
    """A command numbered in a session; see :meth:`ClientSession.call`."""

    def __init__(self, session: ClientSession, seq: int, command: C) -> None:
        self.session = session
        self.seq = seq
        self.command = command
        self.sent = False

    async def send(self, raft: Raft[Any, R]) -> ClientWriteResponse[R]:
        """Write the command through ``raft`` (the leader); its response, whose ``data`` is
        the command's reply, the same on every retry.

        Safe to call again after any failure (a timeout, ``ForwardToLeader`` with
        ``maybe_committed``, a stopped node): the command is applied at most once.

        Raises:
            SessionExpired: the session expired (``maybe_applied`` if sent before).
            StaleSequence, SequenceOutOfWindow: the session refused the number.
            RaftError: as ``Raft.client_write``.
        """
        session = self.session
        entry = session.command(self.seq, self.command, session.clock())
        sent_before, self.sent = self.sent, True
        resp = await raft.client_write(entry)
        unless_refused(resp.data, sent_before=sent_before)
        session.completed(self.seq)
        return resp

    def __repr__(self) -> str:
        return f"SessionCall(seq={self.seq}, command={short_repr(self.command)})"


async def open_session(raft: Raft[Any, Any], *, clock: Clock = time.time) -> ClientSession:
    """Register a session through ``raft`` (the leader) and return it.

    ``clock`` stamps every entry this session writes: the default is the wall clock
    (``time.time``); the simulator passes ``trio.current_time``.

    Raises:
        SessionsFull: the cluster holds its most live sessions.
        RaftError: as ``Raft.client_write`` (a retry after an unknown outcome at worst
            registers a session that expires unused).
    """
    resp = await raft.client_write(OpenSession(clock()))
    return ClientSession(unless_refused(resp.data, sent_before=False), clock=clock)
