"""A replicated key-value state machine and the requests it applies.

Requests travel in ``Normal`` log entries; each gets one reply:

* :class:`Set` ``(key, value)`` -> the previous value, or ``None``;
* :class:`Delete` ``(key)`` -> the previous value, or ``None``;
* :class:`CompareAndSwap` ``(key, expected, new)`` -> ``(swapped, value_after)``; an absent
  key compares equal to ``None``;
* :class:`Get` ``(key)`` -> the current value. Reads are served locally after
  ``ensure_linearizable``; a ``Get`` that reaches the log anyway is answered and changes
  nothing.

Keys are ``str``; values must be CBOR-encodable (``None``, bool, int, float, str, bytes,
lists and str-keyed dicts of those), because snapshots are CBOR. Tuples come back from a
snapshot as lists.

A malformed payload (not one of the requests above, or a non-``str`` key) gets the reply
``None`` and is counted in :attr:`KvStateMachine.rejected`: a bad client request must never
crash the node's apply loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
import cbor2

from .._errors import InvalidRequest
from .._types import (
    Entry,
    LeaderId,
    LogId,
    Membership,
    MembershipChange,
    Node,
    Normal,
    Snapshot,
    SnapshotMeta,
    StoredMembership,
    log_id_ge,
)

_SNAPSHOT_FORMAT = 1


@attrs.frozen
class Set:
    """Store ``value`` under ``key``; reply the previous value or ``None``."""

    key: str
    value: Any


@attrs.frozen
class Delete:
    """Remove ``key``; reply the previous value or ``None``."""

    key: str


@attrs.frozen
class CompareAndSwap:
    """Store ``new`` if the current value equals ``expected`` (absent == ``None``).

    Reply ``(swapped, value_after)``.
    """

    key: str
    expected: Any
    new: Any


@attrs.frozen
class Get:
    """Read ``key``; reply its value or ``None``. Never modifies anything."""

    key: str


_Request = Set | Delete | CompareAndSwap | Get


class KvStateMachine:
    """An in-memory key-value :class:`~openraft_trio.storage.RaftStateMachine`.

    Attributes:
        rejected: how many malformed ``Normal`` payloads were answered with ``None``.
    """

    def __init__(self) -> None:
        self._data: dict[str, Any] = {}
        self._last_applied: LogId | None = None
        self._last_membership = StoredMembership()
        self._current_snapshot: Snapshot | None = None
        self._snapshot_counter = 0
        self.rejected = 0

    # -- local reads ----------------------------------------------------------------------

    def get(self, key: str) -> Any:
        """The value under ``key`` on this replica, or ``None`` (not linearizable alone)."""
        return self._data.get(key)

    @property
    def data(self) -> dict[str, Any]:
        """A copy of every key and value (for tests comparing replicas)."""
        return dict(self._data)

    @property
    def last_applied(self) -> LogId | None:
        return self._last_applied

    @property
    def last_membership(self) -> StoredMembership:
        return self._last_membership

    # -- RaftStateMachine -----------------------------------------------------------------

    async def applied_state(self) -> tuple[LogId | None, StoredMembership]:
        return self._last_applied, self._last_membership

    async def apply(self, entries: Sequence[Entry]) -> list[Any]:
        """Apply committed entries in order; one reply per entry (``None`` unless Normal)."""
        replies: list[Any] = []
        for entry in entries:
            payload = entry.payload
            if isinstance(payload, Normal):
                replies.append(self._apply_request(payload.data))
            else:
                if isinstance(payload, MembershipChange):
                    self._last_membership = StoredMembership(entry.log_id, payload.membership)
                replies.append(None)
            self._last_applied = entry.log_id
        return replies

    def _apply_request(self, request: Any) -> Any:
        if not isinstance(request, _Request) or not isinstance(request.key, str):
            self.rejected += 1
            return None
        data = self._data
        key = request.key
        if isinstance(request, Set):
            previous = data.get(key)
            data[key] = request.value
            return previous
        if isinstance(request, Delete):
            return data.pop(key, None)
        if isinstance(request, CompareAndSwap):
            current = data.get(key)
            if current == request.expected:
                data[key] = request.new
                return (True, request.new)
            return (False, current)
        return data.get(key)  # Get

    async def build_snapshot(self) -> Snapshot:
        """Snapshot every applied entry (data, last applied log id, last membership).

        Raises:
            cbor2.CBOREncodeError: if a stored value is not CBOR-encodable.
        """
        self._snapshot_counter += 1
        last = self._last_applied
        position = "0-none" if last is None else f"{last.term}-{last.index}"
        meta = SnapshotMeta(
            last_log_id=last,
            last_membership=self._last_membership,
            snapshot_id=f"{position}-{self._snapshot_counter}",
        )
        data = cbor2.dumps(
            {
                "format": _SNAPSHOT_FORMAT,
                "last_log_id": _encode_log_id(meta.last_log_id),
                "last_membership": _encode_stored_membership(meta.last_membership),
                "data": self._data,
            }
        )
        snapshot = Snapshot(meta=meta, data=data)
        self._current_snapshot = snapshot
        return snapshot

    async def install_snapshot(self, meta: SnapshotMeta, data: bytes) -> None:
        """Replace the state with the snapshot's, unless it is not newer than what is applied.

        A snapshot whose last log id is ``<=`` the last applied one is ignored: applied
        never moves backwards.

        Raises:
            InvalidRequest: if ``data`` is not a snapshot built by :meth:`build_snapshot`,
                or disagrees with ``meta``. Nothing changes.
        """
        if log_id_ge(self._last_applied, meta.last_log_id):
            return
        decoded = _decode_snapshot(data)
        if decoded.last_log_id != meta.last_log_id:
            raise InvalidRequest(
                f"snapshot data is at {decoded.last_log_id}, but its meta says {meta.last_log_id}"
            )
        if decoded.last_membership != meta.last_membership:
            raise InvalidRequest("snapshot data and meta disagree on the last membership")
        self._data = decoded.data
        self._last_applied = meta.last_log_id
        self._last_membership = meta.last_membership
        self._current_snapshot = Snapshot(meta=meta, data=bytes(data))

    async def get_current_snapshot(self) -> Snapshot | None:
        return self._current_snapshot


# -- snapshot codec -------------------------------------------------------------------------


@attrs.frozen
class _DecodedSnapshot:
    last_log_id: LogId | None
    last_membership: StoredMembership
    data: dict[str, Any]


def _encode_log_id(log_id: LogId | None) -> list[Any] | None:
    if log_id is None:
        return None
    return [log_id.leader_id.term, log_id.leader_id.node_id, log_id.index]


def _decode_log_id(raw: Any) -> LogId | None:
    if raw is None:
        return None
    if not (isinstance(raw, list) and len(raw) == 3):
        raise InvalidRequest(f"snapshot: a log id must be [term, node_id, index], got {raw!r}")
    term, node_id, index = raw
    if not (_is_int(term) and (node_id is None or _is_int(node_id)) and _is_int(index)):
        raise InvalidRequest(f"snapshot: malformed log id {raw!r}")
    return LogId(LeaderId(term, node_id), index)


def _encode_membership(membership: Membership) -> dict[str, Any]:
    return {
        "configs": [sorted(config) for config in membership.configs],
        "nodes": {
            str(node_id): [membership.nodes[node_id].addr, dict(membership.nodes[node_id].data)]
            for node_id in sorted(membership.nodes)
        },
    }


def _decode_membership(raw: Any) -> Membership:
    if not isinstance(raw, dict):
        raise InvalidRequest("snapshot: membership must be a map")
    configs = raw.get("configs")
    nodes = raw.get("nodes")
    if not (
        isinstance(configs, list)
        and all(isinstance(c, list) and all(_is_int(i) for i in c) for c in configs)
    ):
        raise InvalidRequest("snapshot: membership configs must be lists of node ids")
    if not isinstance(nodes, dict):
        raise InvalidRequest("snapshot: membership nodes must be a map")
    decoded_nodes: dict[int, Node] = {}
    for key, value in nodes.items():
        if not (isinstance(key, str) and key.lstrip("-").isdigit()):
            raise InvalidRequest(f"snapshot: membership node id {key!r} is not an integer")
        if not (
            isinstance(value, list)
            and len(value) == 2
            and isinstance(value[0], str)
            and isinstance(value[1], dict)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in value[1].items())
        ):
            raise InvalidRequest(f"snapshot: membership node {key} must be [addr, data]")
        decoded_nodes[int(key)] = Node(value[0], value[1])
    return Membership(configs=configs, nodes=decoded_nodes)


def _encode_stored_membership(stored: StoredMembership) -> dict[str, Any]:
    return {
        "log_id": _encode_log_id(stored.log_id),
        "membership": _encode_membership(stored.membership),
    }


def _decode_stored_membership(raw: Any) -> StoredMembership:
    if not isinstance(raw, dict):
        raise InvalidRequest("snapshot: last membership must be a map")
    return StoredMembership(
        log_id=_decode_log_id(raw.get("log_id")),
        membership=_decode_membership(raw.get("membership")),
    )


def _decode_snapshot(data: bytes) -> _DecodedSnapshot:
    try:
        raw = cbor2.loads(data)
    except cbor2.CBORDecodeError as exc:
        raise InvalidRequest(f"snapshot data is not valid CBOR: {exc}") from exc
    if not isinstance(raw, dict) or raw.get("format") != _SNAPSHOT_FORMAT:
        raise InvalidRequest(f"snapshot data is not a kv snapshot of format {_SNAPSHOT_FORMAT}")
    kv = raw.get("data")
    if not (isinstance(kv, dict) and all(isinstance(k, str) for k in kv)):
        raise InvalidRequest("snapshot: data must be a map with str keys")
    return _DecodedSnapshot(
        last_log_id=_decode_log_id(raw.get("last_log_id")),
        last_membership=_decode_stored_membership(raw.get("last_membership")),
        data=kv,
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
