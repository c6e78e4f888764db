"""Structured log events: the catalogue of event names, the one helper that emits them, and
a JSON formatter for them.

Each event is one :mod:`logging` record on a logger under ``openraft_trio.`` named for its
area (``openraft_trio.election``, ``openraft_trio.replication``...), with the stable event
name in ``record.event`` and its fields as further attributes of the record (``extra``), so
a handler or a formatter (:class:`JsonLogFormatter`) can read them without parsing the
message. The names and fields below are a contract: dashboards and alerts match on them.

:data:`EVENTS` is the catalogue: every :class:`EventType` is made here, once, and
``docs/observability.md`` lists them. :func:`emit` asks the logger whether the event's level
is enabled first, so an event nobody listens to costs one call and formats nothing.

Events are detected in the runtime (``openraft_trio._core``), never in the Engine: the
Engine stays pure, and the runtime compares the Engine's state after each round with what it
saw before (a few identity checks, done only in rounds whose metrics changed).
"""

from __future__ import annotations

import datetime
import json
import logging
from typing import Any, Final, final

import attrs


@final
@attrs.frozen
class EventType:
    """One kind of event: its stable ``name`` (``area.what``), the ``level`` it is logged at
    by default, when it happens, and the fields every record of it carries.

    Attributes:
        name: the stable event name, e.g. ``"election.won"``.
        level: the :mod:`logging` level it is logged at.
        when: when it is logged (one sentence, for the docs).
        fields: the names of the fields in the record's ``extra`` (``event`` aside).
        logger: the name of the logger it goes to (``openraft_trio.<area>``).
    """

    name: str
    level: int
    when: str
    fields: tuple[str, ...]
    logger: str


EVENTS: Final[dict[str, EventType]] = {}
"""Every event type, by name, in the order they are defined."""


def _event(name: str, level: int, when: str, fields: tuple[str, ...]) -> EventType:
    event = EventType(name, level, when, fields, "openraft_trio." + name.partition(".")[0])
    assert name not in EVENTS, name
    EVENTS[name] = event
    return event


INFO, DEBUG, WARNING, ERROR = logging.INFO, logging.DEBUG, logging.WARNING, logging.ERROR

ELECTION_PRE_VOTE: Final = _event(
    "election.pre_vote",
    DEBUG,
    "a voter's election timer fired: it asks whether it could win ``term`` (pre-vote, no "
    "state changes anywhere)",
    ("node_id", "term"),
)
ELECTION_STARTED: Final = _event(
    "election.started",
    INFO,
    "this node campaigns: it voted for itself in a new ``term`` and asks the others",
    ("node_id", "term"),
)
ELECTION_WON: Final = _event(
    "election.won",
    INFO,
    "a quorum granted this node's vote: it leads ``term`` (``votes``: who granted it; "
    "``duration``: seconds since the election started)",
    ("node_id", "term", "votes", "duration"),
)
ELECTION_LOST: Final = _event(
    "election.lost",
    INFO,
    "this node's election for ``term`` ended without a win; ``reason`` is ``timeout`` (no "
    "quorum in time: it campaigns again), ``leader`` (another node leads) or "
    "``higher_vote`` (a node with a greater vote answered)",
    ("node_id", "term", "reason", "leader", "votes"),
)
TERM_CHANGED: Final = _event(
    "term.changed",
    INFO,
    "this node's term moved (it campaigned, or saw a greater term)",
    ("node_id", "term", "previous_term"),
)
LEADER_CHANGED: Final = _event(
    "leader.changed",
    INFO,
    "the leader this node knows changed (``leader`` is null while none is known)",
    ("node_id", "term", "leader", "previous_leader"),
)
ROLE_CHANGED: Final = _event(
    "role.changed",
    INFO,
    "this node's role changed: ``LEARNER``, ``FOLLOWER``, ``CANDIDATE`` or ``LEADER``",
    ("node_id", "term", "role", "previous_role"),
)
MEMBERSHIP_CHANGED: Final = _event(
    "membership.changed",
    INFO,
    "the effective membership changed: a membership entry was appended at ``log_index`` "
    "(or one was truncated, or a snapshot brought one); ``voters`` is a list of voter id "
    "lists (two while ``joint``)",
    ("node_id", "term", "log_index", "voters", "learners", "joint"),
)
SNAPSHOT_BUILT: Final = _event(
    "snapshot.built",
    INFO,
    "the state machine built a snapshot up to ``index`` (``size``: bytes of snapshot data)",
    ("node_id", "index", "term", "size"),
)
SNAPSHOT_INSTALLED: Final = _event(
    "snapshot.installed",
    INFO,
    "this node installed a snapshot up to ``index`` sent by ``leader`` (its log was behind "
    "what the leader still had)",
    ("node_id", "index", "term", "size", "leader"),
)
LOG_PURGED: Final = _event(
    "log.purged",
    INFO,
    "log entries up to ``upto`` were deleted (a snapshot covers them)",
    ("node_id", "upto"),
)
LOG_TRUNCATED: Final = _event(
    "log.truncated",
    INFO,
    "this node's log was cut after index ``after`` (null: all of it): entries a previous "
    "leader appended but never committed conflicted with the current leader's log, or a "
    "snapshot replaced the log",
    ("node_id", "term", "after", "leader"),
)
REPLICATION_STALLED: Final = _event(
    "replication.stalled",
    WARNING,
    "the leader's replication to ``target`` failed (``error_type``, ``error``); it retries "
    "with a backoff and logs ``replication.resumed`` once a reply comes back",
    ("node_id", "term", "target", "error_type", "error"),
)
REPLICATION_RESUMED: Final = _event(
    "replication.resumed",
    INFO,
    "``target`` answered again after ``replication.stalled`` (``stalled_for``: seconds; "
    "``failures``: failed requests meanwhile)",
    ("node_id", "term", "target", "stalled_for", "failures"),
)
REPLICATION_LOG_REVERSION: Final = _event(
    "replication.log_reversion",
    ERROR,
    "``target`` lost log entries it had acknowledged up to ``lost_matching`` (a wiped or "
    "restored disk) and needs entries from ``reverted_to``. ERROR: replication to it is "
    "halted (``allowed`` false); WARNING with ``Config.allow_log_reversion``: it is "
    "replicated again",
    ("node_id", "term", "target", "lost_matching", "reverted_to", "allowed"),
)

_loggers: dict[str, logging.Logger] = {}


def logger_of(event: EventType) -> logging.Logger:
    """The logger ``event`` goes to."""
    logger = _loggers.get(event.logger)
    if logger is None:
        logger = _loggers[event.logger] = logging.getLogger(event.logger)
    return logger


def emit(event: EventType, message: str, /, *, level: int | None = None, **fields: Any) -> None:
    """Log one ``event``: ``message`` (``str.format``-ed with ``fields``, only if the level
    is enabled) with ``extra={"event": event.name, **fields}``.

    ``level`` overrides the event's own (a log reversion is a warning when allowed).
    """
    logger = logger_of(event)
    lvl = event.level if level is None else level
    if not logger.isEnabledFor(lvl):
        return
    assert set(fields) == set(event.fields), (event.name, sorted(fields))
    fields["event"] = event.name
    logger.log(lvl, message.format(**fields), extra=fields, stacklevel=2)


# Attributes every LogRecord has; anything else on a record came from ``extra``.
_RECORD_ATTRIBUTES: Final = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__
) | {"message", "asctime", "taskName"}


@final
class JsonLogFormatter(logging.Formatter):
    """Formats each record as one JSON object on one line: ``time`` (UTC, ISO 8601),
    ``level``, ``logger``, ``event`` (null for a record that is not an event),
    ``message``, every field passed in ``extra``, and ``exception`` when there is one.
    Values JSON cannot hold are written as their ``str``."""

    def format(self, record: logging.LogRecord) -> str:
        """``record`` as one JSON object: time, level, logger, event, message, its extra fields
        and any exception."""
        out: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "event": getattr(record, "event", None),
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRIBUTES and key not in out:
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)
