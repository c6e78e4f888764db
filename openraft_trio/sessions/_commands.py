"""The log commands of client sessions, and how each travels in a log entry.

Every session command carries ``now``: the time of the node that wrote it to the log (the
leader, which stamps it as it accepts the command). The session table's log time is the
largest ``now`` applied so far, so every replica expires the same sessions at the same
index whatever its own clock says.

:class:`SessionCommand` wraps the user's command; the codec carries the inner command
with its own tag, so any registered command type (or plain CBOR data) can be wrapped.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar, final

import attrs

from .. import codec
from ._table import Expired, Stale, TooManySessions, WindowExceeded, _check_count, _check_now

C = TypeVar("C")


# The fields are checked as the table checks its arguments, so an entry that reaches the
# log is one the table accepts.


def _time(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    _check_now(value, attribute.name)


def _at_least(minimum: int) -> Any:
    def check(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        _check_count(attribute.name, value, minimum)

    return check


@final
@attrs.frozen
class OpenSession:
    """Register a new session; the reply is its id (this entry's log index) or
    :class:`~openraft_trio.sessions.TooManySessions`."""

    now: float = attrs.field(validator=_time)


@final
@attrs.frozen
class SessionCommand(Generic[C]):
    """The user's ``command``, number ``seq`` of session ``session_id``.

    ``acked_seq`` says the client holds every reply up to it (those are dropped from the
    cache). The reply is the command's own reply, applied once however often the entry is
    retried, or a refusal (:class:`~openraft_trio.sessions.Expired`,
    :class:`~openraft_trio.sessions.Stale`,
    :class:`~openraft_trio.sessions.WindowExceeded`) when nothing was applied now.
    """

    session_id: int = attrs.field(validator=_at_least(1))
    seq: int = attrs.field(validator=_at_least(1))
    acked_seq: int = attrs.field(validator=_at_least(0))
    now: float = attrs.field(validator=_time)
    command: C


@final
@attrs.frozen
class KeepAlive:
    """Keep an idle session from expiring and drop replies up to ``acked_seq``; the reply is
    ``None`` or :class:`~openraft_trio.sessions.Expired`."""

    session_id: int = attrs.field(validator=_at_least(1))
    acked_seq: int = attrs.field(validator=_at_least(0))
    now: float = attrs.field(validator=_time)


@final
@attrs.frozen
class CloseSession:
    """End session ``session_id``, freeing its place; the reply is ``None`` or
    :class:`~openraft_trio.sessions.Expired`."""

    session_id: int = attrs.field(validator=_at_least(1))
    now: float = attrs.field(validator=_time)


SESSION_ENTRIES = (OpenSession, SessionCommand, KeepAlive, CloseSession)
"""The command types the session layer applies itself."""


def _unstructure_session_command(value: SessionCommand[Any]) -> list[Any]:
    return [
        value.session_id,
        value.seq,
        value.acked_seq,
        value.now,
        codec.encode_data(value.command),
    ]


def _structure_session_command(raw: Any, _cls: Any) -> SessionCommand[Any]:
    if not (isinstance(raw, list) and len(raw) == 5):
        raise codec.DecodeError("a session command is [session_id, seq, acked_seq, now, command]")
    session_id, seq, acked_seq, now, command = raw
    try:
        return SessionCommand(session_id, seq, acked_seq, now, codec.decode_data(command))
    except ValueError as error:  # DecodeError is one
        raise codec.DecodeError(f"bad session command: {error}") from error


codec.converter.register_unstructure_hook(SessionCommand, _unstructure_session_command)
codec.converter.register_structure_hook(SessionCommand, _structure_session_command)

for _cls, _tag in (
    (OpenSession, "sessions.Open"),
    (SessionCommand, "sessions.Command"),
    (KeepAlive, "sessions.KeepAlive"),
    (CloseSession, "sessions.Close"),
    (Expired, "sessions.Expired"),
    (Stale, "sessions.Stale"),
    (WindowExceeded, "sessions.WindowExceeded"),
    (TooManySessions, "sessions.TooManySessions"),
):
    codec.register_data_type(_cls, _tag)
