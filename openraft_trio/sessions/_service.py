"""The session operations of a node's client API, shared by the services whose state
machine keeps its own session table (``KvService``, ``ObjectService``).

=============== ============================ ==========================================
op              args                         reply
=============== ============================ ==========================================
open_session    (none)                       {"session_id": id, "timeout": s, "window": n}
keep_alive      session_id, acked_seq        null
close_session   session_id                   null
=============== ============================ ==========================================

Each is a log entry stamped with this node's clock as it accepts it (the leader's, since
writes go to the leader). A refused entry fails with a
:class:`~openraft_trio.sessions.SessionError`. ``session_write`` is the service's own: it
wraps its write in :meth:`SessionOps.command` and checks the reply with
:meth:`SessionOps.answer`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar, final

from .._core.handle import Raft
from .._errors import InvalidRequest
from ._client import unless_refused
from ._commands import CloseSession, KeepAlive, OpenSession, SessionCommand
from ._table import SessionTable

T = TypeVar("T")


class KeepsSessions(Protocol):
    """A state machine that applies session entries itself, with this table."""

    sessions: SessionTable


def _entry(factory: Callable[..., T], *args: Any) -> T:
    """A session entry from client arguments; their checks' ``ValueError`` is an
    ``InvalidRequest``."""
    try:
        return factory(*args)
    except ValueError as error:
        raise InvalidRequest(str(error)) from error


@final
class SessionOps:
    """The session operations of ``raft``, whose state machine is ``state_machine``."""

    def __init__(
        self, raft: Raft[Any, Any], state_machine: KeepsSessions, clock: Callable[[], float]
    ) -> None:
        self.raft = raft
        self.state_machine = state_machine
        self.clock = clock

    def ops(self) -> dict[str, Callable[..., Awaitable[Any]]]:
        """Operation name -> handler (``session_write`` is the service's own)."""
        return {
            "open_session": self.open_session,
            "keep_alive": self.keep_alive,
            "close_session": self.close_session,
        }

    def command(
        self, session_id: Any, seq: Any, acked_seq: Any, command: Any, now: float | None = None
    ) -> SessionCommand[Any]:
        """``command`` as number ``seq`` of session ``session_id``, stamped ``now``
        (default: the clock, now).

        Raises:
            InvalidRequest: impossible numbers.
        """
        stamp = self.clock() if now is None else now
        return _entry(SessionCommand, session_id, seq, acked_seq, stamp, command)

    @staticmethod
    def answer(reply: Any) -> Any:
        """``reply`` of a session write, unless it is a refusal: then raise its error
        (``SessionExpired`` with ``maybe_applied``: the client knows whether it sent the
        write before)."""
        return unless_refused(reply, sent_before=True)

    async def open_session(self) -> dict[str, Any]:
        """Register a client session: ``{"session_id", "timeout", "window"}``;
        ``SessionsFull`` when the table is full."""
        resp = await self.raft.client_write(OpenSession(self.clock()))
        session_id = unless_refused(resp.data, sent_before=False)
        table = self.state_machine.sessions
        return {"session_id": session_id, "timeout": table.timeout, "window": table.window}

    async def keep_alive(self, session_id: Any, acked_seq: Any) -> None:
        """Keep an idle session alive; ``SessionExpired`` if it has expired."""
        resp = await self.raft.client_write(
            _entry(KeepAlive, session_id, acked_seq, self.clock())
        )
        unless_refused(resp.data, sent_before=False)

    async def close_session(self, session_id: Any) -> None:
        """End a session; an expired one is closed already."""
        await self.raft.client_write(_entry(CloseSession, session_id, self.clock()))
