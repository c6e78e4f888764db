"""Shape checks for inbound RPCs: malformed input is refused with ``InvalidRequest``
before it reaches the Engine, so a bad peer cannot corrupt or crash a node."""

from __future__ import annotations

from typing import Any

from ._errors import InvalidRequest, short_repr
from ._messages import AppendEntriesRequest, VoteRequest
from ._types import Blank, Entry, LeaderId, LogId, MembershipChange, Normal, Vote


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_leader_id(lid: Any, what: str, *, need_node: bool) -> None:
    if not isinstance(lid, LeaderId) or not _is_int(lid.term) or lid.term < 0:
        raise InvalidRequest(f"{what}: bad leader id {short_repr(lid)}")
    if lid.node_id is None:
        if need_node:
            raise InvalidRequest(f"{what}: leader id without a node")
    elif not _is_int(lid.node_id):
        raise InvalidRequest(f"{what}: bad node id {short_repr(lid.node_id)}")


def _check_log_id(log_id: Any, what: str) -> None:
    if log_id is None:
        return
    if not isinstance(log_id, LogId) or not _is_int(log_id.index) or log_id.index < 0:
        raise InvalidRequest(f"{what}: bad log id {short_repr(log_id)}")
    _check_leader_id(log_id.leader_id, what, need_node=False)


def _check_vote(vote: Any, what: str) -> None:
    if not isinstance(vote, Vote) or not isinstance(vote.committed, bool):
        raise InvalidRequest(f"{what}: bad vote {short_repr(vote)}")
    _check_leader_id(vote.leader_id, what, need_node=True)


def check_vote_request(req: Any) -> VoteRequest:
    if not isinstance(req, VoteRequest):
        raise InvalidRequest(f"expected VoteRequest, got {type(req).__name__}")
    _check_vote(req.vote, "vote request")
    _check_log_id(req.last_log_id, "vote request last_log_id")
    if req.last_log_id is not None and req.last_log_id.term > req.vote.term:
        raise InvalidRequest("vote request: last log id is from a future term")
    return req


def check_append_entries(req: Any) -> AppendEntriesRequest:
    """Entries must be well-formed, consecutive after ``prev_log_id`` and no newer than the
    sender's term."""
    if not isinstance(req, AppendEntriesRequest):
        raise InvalidRequest(f"expected AppendEntriesRequest, got {type(req).__name__}")
    _check_vote(req.vote, "append entries")
    if not req.vote.committed:
        raise InvalidRequest("append entries: the sender's vote is not committed")
    _check_log_id(req.prev_log_id, "append entries prev_log_id")
    _check_log_id(req.leader_commit, "append entries leader_commit")
    if not isinstance(req.entries, tuple | list):
        raise InvalidRequest("append entries: entries must be a sequence")
    expected = 0 if req.prev_log_id is None else req.prev_log_id.index + 1
    term = req.vote.term
    # Hot path (every replicated entry): exact type checks, one pass, no helper calls.
    for e in req.entries:
        log_id = getattr(e, "log_id", None)
        leader_id = getattr(log_id, "leader_id", None)
        if (
            type(e) is not Entry
            or type(log_id) is not LogId
            or type(leader_id) is not LeaderId
            or type(e.payload) not in _PAYLOAD_TYPES
            or type(log_id.index) is not int
            or type(leader_id.term) is not int
        ):
            raise InvalidRequest(f"append entries: bad entry {short_repr(e)}")
        if log_id.index != expected:
            raise InvalidRequest(f"append entries: entry index {log_id.index}, expected {expected}")
        if leader_id.term > term or leader_id.term < 0:
            raise InvalidRequest(f"append entries: entry {log_id} has a bad term (sender {term})")
        node = leader_id.node_id
        if node is not None and type(node) is not int:
            raise InvalidRequest(f"append entries: bad node id in {short_repr(log_id)}")
        expected += 1
    return req


_PAYLOAD_TYPES = (Normal, Blank, MembershipChange)
