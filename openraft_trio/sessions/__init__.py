"""Client sessions: exactly-once commands for any state machine (Raft thesis §6.3).

A client registers a session (a log entry, :class:`OpenSession`; its log index is the
session id) and numbers its commands ``1, 2, 3, ...``. Each command travels as a
:class:`SessionCommand` stamped with the leader's time. The state machine keeps a
:class:`SessionTable`: a command applied before is answered with its cached reply instead
of being applied again, so a client may retry a write after a timeout, a lost connection
or a leader change without applying it twice. Replies the client acknowledged are dropped;
sessions unused for ``timeout`` seconds of *log time* expire on every replica at the same
index, and a command of an expired session is refused (:class:`SessionExpired`).

* Any state machine: wrap it, ``SessionStateMachine(MyStateMachine())``, and write with
  :func:`open_session` / :meth:`ClientSession.call` / :meth:`SessionCall.send`.
* ``openraft_trio.kv.KvStateMachine`` keeps a table of its own (in its durable snapshots),
  and :class:`~openraft_trio.kv.KvClient` uses a session for every write; so do
  ``openraft_trio.objects.ObjectStateMachine`` and ``ObjectClient``, and an
  ``ObjectHandle`` given a session.

Guarantees and limits: ``docs/sessions.md``.
"""

from ._apply import Answer, Run, SessionStateMachine, decide, table_from_plain, table_to_plain
from ._client import (
    ClientSession,
    SequenceOutOfWindow,
    SessionCall,
    SessionError,
    SessionExpired,
    SessionsFull,
    StaleSequence,
    open_session,
    refusal,
)
from ._commands import SESSION_ENTRIES, CloseSession, KeepAlive, OpenSession, SessionCommand
from ._table import (
    Alive,
    Apply,
    Closed,
    Duplicate,
    Expired,
    Registered,
    SessionTable,
    Stale,
    TooManySessions,
    WindowExceeded,
)

__all__ = [
    "SESSION_ENTRIES",
    "Alive",
    "Answer",
    "Apply",
    "ClientSession",
    "CloseSession",
    "Closed",
    "Duplicate",
    "Expired",
    "KeepAlive",
    "OpenSession",
    "Registered",
    "Run",
    "SequenceOutOfWindow",
    "SessionCall",
    "SessionCommand",
    "SessionError",
    "SessionExpired",
    "SessionStateMachine",
    "SessionTable",
    "SessionsFull",
    "Stale",
    "StaleSequence",
    "TooManySessions",
    "WindowExceeded",
    "decide",
    "open_session",
    "refusal",
    "table_from_plain",
    "table_to_plain",
]
