"""The client session table: exactly-once commands for any state machine (Raft thesis §6.3).

Theory of operation
-------------------

A client registers a session (a log entry; the session id is that entry's log index), then
numbers its commands ``1, 2, 3, ...``. Each command entry carries ``(session_id, seq,
acked_seq, now)``: ``acked_seq`` says every reply up to it has reached the client, ``now``
is the leader's clock stamped into the entry. The state machine asks :meth:`SessionTable.begin`
what to do with it:

* :class:`Apply`: a new command. Apply it, then :meth:`SessionTable.record` its reply.
* :class:`Duplicate`: already applied (a retry); answer with the cached reply, apply nothing.
* :class:`Expired`: the session is unknown or has expired; the command may or may not have
  been applied before, the client must be told so (a typed error).
* :class:`Stale`: ``seq <= acked``: the client itself said it had this reply, which has been
  dropped; answering is impossible (a typed error; a client bug or a very late duplicate).
* :class:`WindowExceeded`: ``seq > acked + window``: the client runs too far ahead of its
  acknowledgements; refusing bounds the cache per session (a typed error, nothing applied).

The table is pure and deterministic: it reads nothing but its arguments, so replicas that
apply the same entries hold the same table. Its time is *log time*: the maximum ``now`` seen
so far, which never goes back even if leaders' clocks disagree. A session unused for more
than ``timeout`` log seconds expires as soon as log time passes ``last_used + timeout``;
every replica expires it at the same index. Sessions are kept in an ordered dict by last
use (a use moves a session to the end, and log time is monotone), so expiry pops from the
front: amortised O(1) per expired session.

Replies cached per session, with the window ``W``::

    seq:   1 .. acked | acked+1 ........ acked+W | acked+W+1 ...
           Stale      | Apply or Duplicate       | WindowExceeded
           (dropped)  | (cached by seq)          |

Pipelined clients may send sequence numbers out of order within the window; each applied
one is cached under its own ``seq`` until acknowledged.

An idle client keeps its session with :meth:`SessionTable.keep_alive` (which also carries
acknowledgements), and a client done with it frees its place with :meth:`SessionTable.close`.

Memory bound: at most ``max_sessions`` live sessions. A registration beyond it is refused
(:class:`TooManySessions`) rather than evicting the least recently used session. Eviction
would silently end a live client's exactly-once guarantee: its next retry would meet
:class:`Expired` and the write it was retrying becomes ambiguous. A refused registration is
unambiguous (nothing was applied, nothing was promised) and the client may retry later,
once idle sessions expire; the cost is availability for newcomers under a flood of
registrations, never correctness for existing clients.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any, Final, TypeAlias, final

import attrs

SNAPSHOT_VERSION: Final = 1


@final
@attrs.frozen
class Apply:
    """A new command: apply it, then call :meth:`SessionTable.record` with its reply."""


@final
@attrs.frozen
class Duplicate:
    """The command was applied before: answer with ``reply``, apply nothing."""

    reply: object


@final
@attrs.frozen
class Expired:
    """The session is unknown or has expired: the command's outcome cannot be told."""

    session_id: int


@final
@attrs.frozen
class Stale:
    """``seq`` is at or below what the client acknowledged; its reply has been dropped."""

    session_id: int
    seq: int
    acked_seq: int


@final
@attrs.frozen
class WindowExceeded:
    """``seq`` is beyond ``acked_seq + window``: the client must acknowledge replies first."""

    session_id: int
    seq: int
    acked_seq: int
    window: int


Outcome: TypeAlias = Apply | Duplicate | Expired | Stale | WindowExceeded


@final
@attrs.frozen
class Registered:
    """The session ``session_id`` is open."""

    session_id: int


@final
@attrs.frozen
class TooManySessions:
    """Registration refused: ``max_sessions`` sessions are live; retry after some expire."""

    max_sessions: int


RegisterOutcome: TypeAlias = Registered | TooManySessions


@final
@attrs.frozen
class Alive:
    """The session is live, kept alive by :meth:`SessionTable.keep_alive`."""


@final
@attrs.frozen
class Closed:
    """The session ``session_id`` was closed by its client."""

    session_id: int


@attrs.define
class _Session:
    last_used: float
    acked_seq: int = 0
    # seq -> reply, for every applied seq above acked_seq.
    replies: dict[int, object] = attrs.Factory(dict)


def _check_now(now: float, name: str = "now") -> float:
    if type(now) is float and math.isfinite(now):  # the common case, first
        return now
    if isinstance(now, bool) or not isinstance(now, int | float) or not math.isfinite(now):
        raise ValueError(f"{name} must be a finite number, got {now!r}")
    return float(now)


def _check_count(name: str, value: int, minimum: int) -> int:
    if type(value) is int and value >= minimum:  # the common case, first
        return value
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


@final
@attrs.define(init=False)
class SessionTable:
    """Client sessions: which commands were applied, and their replies, per session.

    Args:
        timeout: log seconds a session may stay unused before it expires (> 0).
        window: how far a command's ``seq`` may run ahead of the client's ``acked_seq``;
            also the most replies cached per session (>= 1).
        max_sessions: the most live sessions; registration beyond is refused (>= 1).

    All replicas must build their tables with the same arguments.
    """

    timeout: float
    window: int
    max_sessions: int
    _time: float | None
    _sessions: OrderedDict[int, _Session]

    def __init__(self, *, timeout: float, window: int = 64, max_sessions: int = 10_000) -> None:
        if _check_now(timeout, "timeout") <= 0:
            raise ValueError(f"timeout must be > 0, got {timeout!r}")
        self.timeout = float(timeout)
        self.window = _check_count("window", window, 1)
        self.max_sessions = _check_count("max_sessions", max_sessions, 1)
        self._time = None
        self._sessions = OrderedDict()

    @property
    def time(self) -> float | None:
        """Log time: the largest ``now`` seen so far (``None`` before any)."""
        return self._time

    def __len__(self) -> int:
        return len(self._sessions)

    def __contains__(self, session_id: object) -> bool:
        return session_id in self._sessions

    def advance(self, now: float) -> list[int]:
        """Move log time to ``now`` (if later) and expire the sessions it passes.

        Call it for every entry that carries a time, also those that are no session
        command, so that all replicas expire at the same index.

        Returns:
            The ids of the sessions expired, oldest use first.

        Raises:
            ValueError: ``now`` is not a finite number.
        """
        now = _check_now(now)
        if self._time is not None and now <= self._time:
            return []
        self._time = now
        expired: list[int] = []
        while self._sessions:
            session_id, session = next(iter(self._sessions.items()))
            if session.last_used + self.timeout >= now:
                break
            del self._sessions[session_id]
            expired.append(session_id)
        return expired

    def expires_before(self, now: float) -> bool:
        """Whether :meth:`advance` to ``now`` would expire at least one session."""
        if not self._sessions:
            return False
        oldest = next(iter(self._sessions.values()))
        return oldest.last_used + self.timeout < now

    def register(self, session_id: int, now: float) -> RegisterOutcome:
        """Open session ``session_id`` (the log index of the registration entry).

        Raises:
            ValueError: ``session_id`` is not a positive integer or is already live.
        """
        _check_count("session_id", session_id, 1)
        self.advance(now)
        if session_id in self._sessions:
            raise ValueError(f"session {session_id} is already registered")
        if len(self._sessions) >= self.max_sessions:
            return TooManySessions(self.max_sessions)
        self._sessions[session_id] = _Session(last_used=self._now())
        return Registered(session_id)

    def begin(self, session_id: int, seq: int, acked_seq: int, now: float) -> Outcome:
        """Decide what to do with command ``seq`` of ``session_id``.

        First drops the replies the client acknowledged (``seq <= acked_seq``); any command
        of a live session, refused or not, counts as a use that keeps it alive.

        Raises:
            ValueError: ``seq`` < 1 or ``acked_seq`` < 0 (not integers).
        """
        _check_count("seq", seq, 1)
        session = self._use(session_id, acked_seq, now)
        if session is None:
            return Expired(session_id)
        if seq <= session.acked_seq:
            return Stale(session_id, seq, session.acked_seq)
        if seq in session.replies:
            return Duplicate(session.replies[seq])
        if seq > session.acked_seq + self.window:
            return WindowExceeded(session_id, seq, session.acked_seq, self.window)
        return Apply()

    def keep_alive(self, session_id: int, acked_seq: int, now: float) -> Alive | Expired:
        """Keep an idle session from expiring, and drop the replies up to ``acked_seq``.

        A client with nothing to write sends one before ``timeout`` runs out (§6.3).

        Raises:
            ValueError: ``acked_seq`` < 0 (not an integer).
        """
        if self._use(session_id, acked_seq, now) is None:
            return Expired(session_id)
        return Alive()

    def close(self, session_id: int, now: float) -> Closed | Expired:
        """End a session its client no longer needs, freeing its place at once."""
        self.advance(now)
        if self._sessions.pop(session_id, None) is None:
            return Expired(session_id)
        return Closed(session_id)

    def record(self, session_id: int, seq: int, reply: object) -> None:
        """Cache the reply of command ``seq``, just applied after :meth:`begin` said Apply.

        Raises:
            ValueError: :meth:`begin` did not just answer :class:`Apply` for it.
        """
        session = self._sessions.get(session_id)
        if (
            session is None
            or seq <= session.acked_seq
            or seq > session.acked_seq + self.window
            or seq in session.replies
        ):
            raise ValueError(f"record({session_id}, {seq}) without begin() answering Apply")
        session.replies[seq] = reply

    def snapshot(self) -> dict[str, Any]:
        """The table as plain data (dicts, lists, numbers and the replies themselves), for
        a state machine's snapshot; :meth:`restore` takes it back exactly."""
        return {
            "version": SNAPSHOT_VERSION,
            "time": self._time,
            "sessions": [
                [session_id, s.last_used, s.acked_seq, [[q, r] for q, r in s.replies.items()]]
                for session_id, s in self._sessions.items()
            ],
        }

    def restore(self, data: Any) -> None:
        """Replace the table's state with one :meth:`snapshot` produced.

        Raises:
            ValueError: ``data`` is not such a snapshot (the table is left unchanged).
        """
        try:
            if data["version"] != SNAPSHOT_VERSION:
                raise ValueError(f"unknown session snapshot version {data['version']!r}")
            time = None if data["time"] is None else _check_now(data["time"])
            sessions: OrderedDict[int, _Session] = OrderedDict()
            previous_use = -math.inf
            for session_id, last_used, acked_seq, replies in data["sessions"]:
                _check_count("session_id", session_id, 1)
                session = _Session(
                    last_used=_check_now(last_used),
                    acked_seq=_check_count("acked_seq", acked_seq, 0),
                    replies={_check_count("seq", q, 1): r for q, r in replies},
                )
                if session_id in sessions:
                    raise ValueError(f"session {session_id} appears twice")
                # Expiry pops from the front: the order must be by last use, within time.
                if time is None or not previous_use <= session.last_used <= time:
                    raise ValueError(f"session {session_id} is out of last-use order")
                previous_use = session.last_used
                if any(seq <= session.acked_seq for seq in session.replies):
                    raise ValueError(f"session {session_id} caches an acknowledged reply")
                sessions[session_id] = session
        except (KeyError, TypeError) as error:
            raise ValueError(f"not a session table snapshot: {error!r}") from error
        self._time = time
        self._sessions = sessions

    def _use(self, session_id: int, acked_seq: int, now: float) -> _Session | None:
        """Advance time; then, if the session is live, mark it used and apply the ack."""
        _check_count("acked_seq", acked_seq, 0)
        self.advance(now)
        session = self._sessions.get(session_id)
        if session is None:
            return None
        session.last_used = self._now()
        self._sessions.move_to_end(session_id)
        if acked_seq > session.acked_seq:
            session.acked_seq = acked_seq
            session.replies = {s: r for s, r in session.replies.items() if s > acked_seq}
        return session

    def _now(self) -> float:
        assert self._time is not None  # every caller has advanced first
        return self._time
