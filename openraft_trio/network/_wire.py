"""Wire format of the TCP transport: RPC messages <-> CBOR frames (sans-I/O).

Every frame body (the transport adds the length prefix) is one CBOR array, the envelope::

    [kind_code, request_id, body]

``request_id`` is a non-negative int below 2**64 chosen by the caller; the reply (or the
``error`` reply) to a request carries the same id. Bodies are positional lists, built by
the hooks :func:`register_converter_hooks` registers on :data:`openraft_trio.codec.converter`
(the :mod:`openraft_trio.network` package does, once):

==== ============= ======================= ==============================================
code kind          Python value            body
==== ============= ======================= ==============================================
0    error         ErrorReply              [error_type_name, message]
1    vote          VoteRequest             [vote, last_log_id, pre_vote, leader_transfer]
2    vote_resp     VoteResponse            [vote, vote_granted, last_log_id]
3    append        AppendEntriesRequest    flat: [vote(3), prev(3), commit(3), entry(4)...]
4    append_resp   AppendEntriesResponse   flat: [vote(3), success, matching(3), conflict,
                                           hint]
5    transfer      TransferLeaderRequest   [from_vote, to_node_id, last_log_id]
6    transfer_resp None                    null
7    snapshot      FullSnapshotRequest     [vote, [snapshot_meta, data]]
8    snapshot_resp InstallSnapshotResponse [vote]
9    hello         Hello                   [version, cluster_name, role, from_id, to_id]
10   hello_ok      HelloOk                 [cluster_name, node_id]
11   chunk         SnapshotChunk           [vote, snapshot_meta, offset, data, done]
12   chunk_ack     None                    null
13   client        ClientRequest           [op, args]
14   client_resp   ClientReply             value (any CBOR)
15   (reserved)                            future kinds: decoding fails
==== ============= ======================= ==============================================

``hello``/``hello_ok`` is the handshake, the first frame each way on a connection (request
id 0). ``role`` is ``"raft"`` (a peer: ``from_id`` and ``to_id`` are node ids) or
``"client"`` (the KV client API: both ids ``null``). ``chunk`` frames stream a snapshot in
order (``offset`` is where ``data`` starts); every chunk but the last is answered by
``chunk_ack``, the last (``done``) by ``snapshot_resp`` once the snapshot is installed.
``client`` carries an operation name and a list of arguments that the service validates
itself; its reply value is any CBOR. An ``error`` body may carry a third item, ``detail``
(``[leader_id, leader_addr, maybe_committed]`` with ``ForwardToLeader``, ``[size, limit,
what]`` with ``PayloadTooLarge``). Error messages are clipped: none embeds a whole value.

The hot messages, ``append`` and ``append_resp``, are flat lists of primitives (one CBOR
call each way, no list per field): a vote is ``term, node_id, committed``, a log id
``term, node_id, index`` (three nulls when there is none), and an entry ``term, node_id,
index, payload``, where ``payload`` is a ``Normal`` entry's encoding as a byte string (the
CBOR of ``[tag, value]`` its leader encoded once, ``Normal.encoded``), null for ``Blank``,
or a membership ``[configs, nodes]``. A receiver keeps the payload's bytes undecoded
(``Normal.from_encoded``) once its tag is known here (``codec.check_payload_tag``); the
data is decoded where the entry is applied. The converter's nested forms of these two
messages (the hooks below) are their schema: tests check that both forms agree.

``snapshot_meta`` is ``[last_log_id, stored_membership, snapshot_id]``, ``data`` a byte
string. Leaves use the codec's encodings: ``vote`` is ``[term, node_id, committed]``, a log
id ``[term, node_id, index]`` or ``null``, an entry (nested form) ``[term, node_id, index,
kind, ...]``, ``stored_membership`` ``[log_id, [configs, nodes]]``. Flags are CBOR booleans; ids and
``hint`` (``conflict_hint``, may be ``null``) ints; the error strings and ``snapshot_id``
text strings.

Decoding is strict about *shape* (list lengths, exact ``int``/``bool``/``str``/``bytes``
types, no trailing bytes, no shared-reference tags, no duplicate map keys) and raises
:class:`openraft_trio.codec.DecodeError` for anything else, never another exception type.
Protocol-level checks (non-negative terms, consecutive entries, ...) stay in
``openraft_trio._validate`` and run when the node handles the request.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any, Final

import attrs
import cattrs
import cbor2

from .. import codec
from .._errors import short_repr, short_text
from .._messages import (
    AppendEntriesRequest,
    AppendEntriesResponse,
    InstallSnapshotResponse,
    TransferLeaderRequest,
    VoteRequest,
    VoteResponse,
)
from .._types import (
    BLANK,
    Entry,
    LeaderId,
    LogId,
    MembershipChange,
    Normal,
    Snapshot,
    SnapshotMeta,
    Vote,
)
from ..codec import (
    SEMANTIC_DECODERS,
    _bool,
    _fields,
    _int,
    _opt_int,
    _str,
    _structure_hook,
    check_items,
)

DecodeError: Final = codec.DecodeError

DEFAULT_MAX_ITEMS: Final = 2**18
"""Default limit on the CBOR data items in one message (every array, map, tag, string and
scalar counts one). One item decodes to at most ~128 bytes of Python objects (an empty
set: a tag and an empty array), so this bounds what a frame may decode to."""

DEFAULT_MAX_DEPTH: Final = 64
"""Default limit on the nesting of arrays and maps in one message."""

MAX_REQUEST_ID: Final = 2**64 - 1
"""Request ids are CBOR unsigned ints: ``0 <= request_id <= MAX_REQUEST_ID``."""


@attrs.frozen
class FullSnapshotRequest:
    """Body of a ``snapshot`` frame: ``RaftNetwork.full_snapshot(vote, snapshot)``."""

    vote: Vote
    snapshot: Snapshot


@attrs.frozen
class ErrorReply:
    """Body of an ``error`` frame: the remote handler failed; the transport raises
    ``RemoteError``."""

    error_type: str
    message: str
    detail: Any = None

    @classmethod
    def from_exception(cls, exc: BaseException, detail: Any = None) -> ErrorReply:
        return cls(type(exc).__name__, short_text(str(exc)), detail)


PROTOCOL_VERSION: Final = 2
"""Version of this wire format, sent in the handshake; a peer speaking another is refused."""

ROLES: Final = ("raft", "client")


@attrs.frozen
class Hello:
    """The first frame of a connection, from the side that connected."""

    cluster_name: str
    role: str
    from_id: int | None
    to_id: int | None
    version: int = PROTOCOL_VERSION


@attrs.frozen
class HelloOk:
    """The server's answer to an accepted :class:`Hello`."""

    cluster_name: str
    node_id: int


@attrs.frozen
class SnapshotChunk:
    """One piece of a snapshot streamed by ``full_snapshot``."""

    vote: Vote
    meta: SnapshotMeta
    offset: int
    data: bytes
    done: bool


@attrs.frozen
class ClientRequest:
    """A call of the service's client API: ``op`` with positional ``args``."""

    op: str
    args: list[Any]


@attrs.frozen
class ClientReply:
    """The value a client API call returned."""

    value: Any


# -- helpers ---------------------------------------------------------------------------------


_log_id = codec.unstructure_log_id
_vote = codec.unstructure_vote
_struct_log_id = codec.structure_log_id
_struct_vote = codec.structure_vote


# -- per-type encodings ----------------------------------------------------------------------


def unstructure_vote_request(req: VoteRequest) -> list[Any]:
    return [_vote(req.vote), _log_id(req.last_log_id), req.pre_vote, req.leader_transfer]


def structure_vote_request(raw: Any) -> VoteRequest:
    f = _fields(raw, 4, "vote request [vote, last_log_id, pre_vote, leader_transfer]")
    return VoteRequest(
        _struct_vote(f[0]),
        _struct_log_id(f[1]),
        _bool(f[2], "vote request pre_vote"),
        _bool(f[3], "vote request leader_transfer"),
    )


def unstructure_vote_response(resp: VoteResponse) -> list[Any]:
    return [_vote(resp.vote), resp.vote_granted, _log_id(resp.last_log_id)]


def structure_vote_response(raw: Any) -> VoteResponse:
    f = _fields(raw, 3, "vote response [vote, vote_granted, last_log_id]")
    return VoteResponse(
        _struct_vote(f[0]), _bool(f[1], "vote response vote_granted"), _struct_log_id(f[2])
    )


def unstructure_append_entries_request(req: AppendEntriesRequest) -> list[Any]:
    entry = codec.unstructure_entry
    return [
        _vote(req.vote),
        _log_id(req.prev_log_id),
        [entry(e) for e in req.entries],
        _log_id(req.leader_commit),
    ]


def structure_append_entries_request(raw: Any) -> AppendEntriesRequest:
    f = _fields(raw, 4, "append entries [vote, prev_log_id, entries, leader_commit]")
    entries = f[2]
    if type(entries) is not list:
        raise DecodeError(f"append entries: entries must be a list, got {short_repr(entries)}")
    entry = codec.structure_entry
    return AppendEntriesRequest(
        _struct_vote(f[0]),
        _struct_log_id(f[1]),
        tuple([entry(e) for e in entries]),
        _struct_log_id(f[3]),
    )


# The lean forms of the hot messages, what the envelope carries (see the module docstring):
# one flat list of primitives each, built and read in one pass. The converter's nested
# forms above are the schema; tests/network/test_wire.py checks that both agree.

_BLANK_ITEM: Final = None  # a Blank entry's payload item in the flat form


def flatten_append_entries_request(req: AppendEntriesRequest) -> list[Any]:
    """``AppendEntriesRequest`` -> ``[vote(3), prev_log_id(3), leader_commit(3),
    (term, node_id, index, payload)...]``; a missing log id is three nulls, a payload is
    its encoding (bytes, ``Normal``), null (``Blank``) or a membership (a list)."""
    vote = req.vote
    leader = vote.leader_id
    prev = req.prev_log_id
    commit = req.leader_commit
    out: list[Any] = [leader.term, leader.node_id, vote.committed]
    if prev is None:
        out += (None, None, None)
    else:
        out += (prev.leader_id.term, prev.leader_id.node_id, prev.index)
    if commit is None:
        out += (None, None, None)
    else:
        out += (commit.leader_id.term, commit.leader_id.node_id, commit.index)
    append = out.append
    for entry in req.entries:
        log_id = entry.log_id
        entry_leader = log_id.leader_id
        append(entry_leader.term)
        append(entry_leader.node_id)
        append(log_id.index)
        payload = entry.payload
        if payload.__class__ is Normal:
            append(payload.encoded)
        elif payload.__class__ is MembershipChange:
            append(codec.unstructure_membership(payload.membership))
        else:
            append(_BLANK_ITEM)
    return out


def _flat_log_id(raw: list[Any], at: int, what: str) -> LogId | None:
    term = raw[at]
    if term is None:
        if raw[at + 1] is not None or raw[at + 2] is not None:
            raise DecodeError(f"{what}: a missing log id is three nulls")
        return None
    return LogId(LeaderId(_int(term, what), _opt_int(raw[at + 1], what)), _int(raw[at + 2], what))


def unflatten_append_entries_request(raw: Any) -> AppendEntriesRequest:
    """The inverse of :func:`flatten_append_entries_request`; raises :class:`DecodeError`."""
    if type(raw) is not list or len(raw) < 9 or (len(raw) - 9) % 4:
        raise DecodeError(
            "append entries: expected [vote(3), prev_log_id(3), leader_commit(3), "
            f"(term, node_id, index, payload)...], got {short_repr(raw)}"
        )
    vote = Vote(
        LeaderId(_int(raw[0], "append entries vote"), _opt_int(raw[1], "append entries vote")),
        _bool(raw[2], "append entries vote committed"),
    )
    prev = _flat_log_id(raw, 3, "append entries prev_log_id")
    commit = _flat_log_id(raw, 6, "append entries leader_commit")
    entries: list[Entry] = []
    append = entries.append
    leader: LeaderId | None = None
    check_tag = codec.check_payload_tag
    from_encoded = Normal.from_encoded
    for at in range(9, len(raw), 4):
        term, node_id, index, payload = raw[at : at + 4]
        if (
            type(term) is not int
            or type(index) is not int
            or (node_id is not None and type(node_id) is not int)
        ):
            raise DecodeError(
                f"append entries: entry {(at - 9) // 4} has a bad log id "
                f"{short_repr([term, node_id, index])}"
            )
        # Entries of one batch mostly share their leader id: share the object too.
        if leader is None or leader.term != term or leader.node_id != node_id:
            leader = LeaderId(term, node_id)
        if type(payload) is bytes:
            try:
                append(Entry(LogId(leader, index), from_encoded(check_tag(payload))))
            except DecodeError as exc:
                raise DecodeError(f"append entries: entry {(at - 9) // 4}: {exc}") from None
        elif payload is None:
            append(Entry(LogId(leader, index), BLANK))
        elif type(payload) is list:
            membership = codec.structure_membership(payload)
            append(Entry(LogId(leader, index), MembershipChange(membership)))
        else:
            raise DecodeError(
                f"append entries: entry {(at - 9) // 4}: a payload is bytes, null or a "
                f"membership, got {short_repr(payload)}"
            )
    return AppendEntriesRequest(vote, prev, tuple(entries), commit)


def flatten_append_entries_response(resp: AppendEntriesResponse) -> list[Any]:
    """``AppendEntriesResponse`` -> ``[vote(3), success, matching(3), conflict, hint]``."""
    vote = resp.vote
    matching = resp.matching
    out: list[Any] = [vote.leader_id.term, vote.leader_id.node_id, vote.committed, resp.success]
    if matching is None:
        out += (None, None, None)
    else:
        out += (matching.leader_id.term, matching.leader_id.node_id, matching.index)
    out += (resp.conflict, resp.conflict_hint)
    return out


def unflatten_append_entries_response(raw: Any) -> AppendEntriesResponse:
    """The inverse of :func:`flatten_append_entries_response`; raises :class:`DecodeError`."""
    f = _fields(raw, 9, "append entries response [vote(3), success, matching(3), conflict, hint]")
    hint = f[8]
    return AppendEntriesResponse(
        Vote(
            LeaderId(
                _int(f[0], "append entries response vote"),
                _opt_int(f[1], "append entries response vote"),
            ),
            _bool(f[2], "append entries response vote committed"),
        ),
        _bool(f[3], "append entries response success"),
        _flat_log_id(f, 4, "append entries response matching"),
        _bool(f[7], "append entries response conflict"),
        None if hint is None else _int(hint, "append entries response conflict_hint"),
    )


def unstructure_append_entries_response(resp: AppendEntriesResponse) -> list[Any]:
    return [
        _vote(resp.vote),
        resp.success,
        _log_id(resp.matching),
        resp.conflict,
        resp.conflict_hint,
    ]


def structure_append_entries_response(raw: Any) -> AppendEntriesResponse:
    f = _fields(raw, 5, "append entries response [vote, success, matching, conflict, hint]")
    hint = f[4]
    return AppendEntriesResponse(
        _struct_vote(f[0]),
        _bool(f[1], "append entries response success"),
        _struct_log_id(f[2]),
        _bool(f[3], "append entries response conflict"),
        None if hint is None else _int(hint, "append entries response conflict_hint"),
    )


def unstructure_transfer_leader_request(req: TransferLeaderRequest) -> list[Any]:
    return [_vote(req.from_vote), req.to_node_id, _log_id(req.last_log_id)]


def structure_transfer_leader_request(raw: Any) -> TransferLeaderRequest:
    f = _fields(raw, 3, "transfer leader [from_vote, to_node_id, last_log_id]")
    return TransferLeaderRequest(
        _struct_vote(f[0]), _int(f[1], "transfer leader to_node_id"), _struct_log_id(f[2])
    )


def unstructure_install_snapshot_response(resp: InstallSnapshotResponse) -> list[Any]:
    return [_vote(resp.vote)]


def structure_install_snapshot_response(raw: Any) -> InstallSnapshotResponse:
    return InstallSnapshotResponse(_struct_vote(_fields(raw, 1, "snapshot response [vote]")[0]))


def unstructure_snapshot_meta(meta: SnapshotMeta) -> list[Any]:
    return [
        _log_id(meta.last_log_id),
        codec.unstructure_stored_membership(meta.last_membership),
        meta.snapshot_id,
    ]


def structure_snapshot_meta(raw: Any) -> SnapshotMeta:
    f = _fields(raw, 3, "snapshot meta [last_log_id, last_membership, snapshot_id]")
    return SnapshotMeta(
        _struct_log_id(f[0]),
        codec.structure_stored_membership(f[1]),
        _str(f[2], "snapshot meta snapshot_id"),
    )


def unstructure_snapshot(snapshot: Snapshot) -> list[Any]:
    return [unstructure_snapshot_meta(snapshot.meta), bytes(snapshot.data)]


def structure_snapshot(raw: Any) -> Snapshot:
    f = _fields(raw, 2, "snapshot [meta, data]")
    if type(f[1]) is not bytes:
        raise DecodeError(f"snapshot data: expected bytes, got {short_repr(f[1])}")
    return Snapshot(structure_snapshot_meta(f[0]), f[1])


def unstructure_full_snapshot_request(req: FullSnapshotRequest) -> list[Any]:
    return [_vote(req.vote), unstructure_snapshot(req.snapshot)]


def structure_full_snapshot_request(raw: Any) -> FullSnapshotRequest:
    f = _fields(raw, 2, "full snapshot [vote, snapshot]")
    return FullSnapshotRequest(_struct_vote(f[0]), structure_snapshot(f[1]))


def unstructure_error_reply(reply: ErrorReply) -> list[Any]:
    if reply.detail is None:
        return [reply.error_type, reply.message]
    return [reply.error_type, reply.message, reply.detail]


def structure_error_reply(raw: Any) -> ErrorReply:
    if type(raw) is list and len(raw) == 3:
        return ErrorReply(_str(raw[0], "error type name"), _str(raw[1], "error message"), raw[2])
    f = _fields(raw, 2, "error [error_type_name, message(, detail)]")
    return ErrorReply(_str(f[0], "error type name"), _str(f[1], "error message"))


def unstructure_hello(hello: Hello) -> list[Any]:
    return [hello.version, hello.cluster_name, hello.role, hello.from_id, hello.to_id]


def structure_hello(raw: Any) -> Hello:
    f = _fields(raw, 5, "hello [version, cluster_name, role, from_id, to_id]")
    role = _str(f[2], "hello role")
    if role not in ROLES:
        raise DecodeError(f"hello role: expected one of {ROLES}, got {short_repr(role)}")
    return Hello(
        _str(f[1], "hello cluster_name"),
        role,
        _opt_int(f[3], "hello from_id"),
        _opt_int(f[4], "hello to_id"),
        _int(f[0], "hello version"),
    )


def unstructure_hello_ok(ok: HelloOk) -> list[Any]:
    return [ok.cluster_name, ok.node_id]


def structure_hello_ok(raw: Any) -> HelloOk:
    f = _fields(raw, 2, "hello_ok [cluster_name, node_id]")
    return HelloOk(_str(f[0], "hello_ok cluster_name"), _int(f[1], "hello_ok node_id"))


def unstructure_snapshot_chunk(chunk: SnapshotChunk) -> list[Any]:
    return [
        _vote(chunk.vote),
        unstructure_snapshot_meta(chunk.meta),
        chunk.offset,
        bytes(chunk.data),
        chunk.done,
    ]


def structure_snapshot_chunk(raw: Any) -> SnapshotChunk:
    f = _fields(raw, 5, "snapshot chunk [vote, meta, offset, data, done]")
    offset = _int(f[2], "snapshot chunk offset")
    if offset < 0:
        raise DecodeError(f"snapshot chunk offset must be >= 0, got {offset}")
    if type(f[3]) is not bytes:
        raise DecodeError(f"snapshot chunk data: expected bytes, got {short_repr(f[3])}")
    return SnapshotChunk(
        _struct_vote(f[0]),
        structure_snapshot_meta(f[1]),
        offset,
        f[3],
        _bool(f[4], "snapshot chunk done"),
    )


def unstructure_client_request(req: ClientRequest) -> list[Any]:
    return [req.op, list(req.args)]


def structure_client_request(raw: Any) -> ClientRequest:
    f = _fields(raw, 2, "client request [op, args]")
    if type(f[1]) is not list:
        raise DecodeError(f"client request args: expected a list, got {short_repr(f[1])}")
    return ClientRequest(_str(f[0], "client request op"), f[1])


def unstructure_client_reply(reply: ClientReply) -> Any:
    return reply.value


def structure_client_reply(raw: Any) -> ClientReply:
    return ClientReply(raw)


def _unstructure_none(_msg: None) -> None:
    return None


def _structure_none(raw: Any) -> None:
    if raw is not None:
        raise DecodeError(f"expected null, got {short_repr(raw)}")


_HOOKS: Final[list[tuple[type[Any], Callable[[Any], Any], Callable[[Any], Any]]]] = [
    (VoteRequest, unstructure_vote_request, structure_vote_request),
    (VoteResponse, unstructure_vote_response, structure_vote_response),
    (AppendEntriesRequest, unstructure_append_entries_request, structure_append_entries_request),
    (
        AppendEntriesResponse,
        unstructure_append_entries_response,
        structure_append_entries_response,
    ),
    (
        TransferLeaderRequest,
        unstructure_transfer_leader_request,
        structure_transfer_leader_request,
    ),
    (
        InstallSnapshotResponse,
        unstructure_install_snapshot_response,
        structure_install_snapshot_response,
    ),
    (SnapshotMeta, unstructure_snapshot_meta, structure_snapshot_meta),
    (Snapshot, unstructure_snapshot, structure_snapshot),
    (FullSnapshotRequest, unstructure_full_snapshot_request, structure_full_snapshot_request),
    (ErrorReply, unstructure_error_reply, structure_error_reply),
    (Hello, unstructure_hello, structure_hello),
    (HelloOk, unstructure_hello_ok, structure_hello_ok),
    (SnapshotChunk, unstructure_snapshot_chunk, structure_snapshot_chunk),
    (ClientRequest, unstructure_client_request, structure_client_request),
]


_registered: list[cattrs.Converter] = []  # the converters the hooks are registered on


def register_converter_hooks(converter: cattrs.Converter = codec.converter) -> None:
    """Register the positional encodings of the wire's messages on ``converter``, so that
    ``converter.unstructure(msg)`` / ``codec.dumps(msg)`` give a frame's body and
    ``codec.loads`` reads one back. Idempotent. The envelope (:func:`encode_message`,
    :func:`decode_message`) calls the encodings directly and does not need this:
    :mod:`openraft_trio.network` calls it once, for :data:`openraft_trio.codec.converter`.
    """
    if any(done is converter for done in _registered):
        return
    for cls, unstructure, structure in _HOOKS:
        converter.register_unstructure_hook(cls, unstructure)
        converter.register_structure_hook(cls, _structure_hook(structure))
    _registered.append(converter)


# -- the envelope ----------------------------------------------------------------------------


@attrs.frozen
class _Kind:
    name: str
    code: int
    cls: type[Any] | None  # None: the body is CBOR null (``transfer_resp``)
    unstructure: Callable[[Any], Any]
    structure: Callable[[Any], Any]


_KINDS: Final = (
    _Kind("error", 0, ErrorReply, unstructure_error_reply, structure_error_reply),
    _Kind("vote", 1, VoteRequest, unstructure_vote_request, structure_vote_request),
    _Kind("vote_resp", 2, VoteResponse, unstructure_vote_response, structure_vote_response),
    _Kind(
        "append",
        3,
        AppendEntriesRequest,
        flatten_append_entries_request,
        unflatten_append_entries_request,
    ),
    _Kind(
        "append_resp",
        4,
        AppendEntriesResponse,
        flatten_append_entries_response,
        unflatten_append_entries_response,
    ),
    _Kind(
        "transfer",
        5,
        TransferLeaderRequest,
        unstructure_transfer_leader_request,
        structure_transfer_leader_request,
    ),
    _Kind("transfer_resp", 6, None, _unstructure_none, _structure_none),
    _Kind(
        "snapshot",
        7,
        FullSnapshotRequest,
        unstructure_full_snapshot_request,
        structure_full_snapshot_request,
    ),
    _Kind(
        "snapshot_resp",
        8,
        InstallSnapshotResponse,
        unstructure_install_snapshot_response,
        structure_install_snapshot_response,
    ),
    _Kind("hello", 9, Hello, unstructure_hello, structure_hello),
    _Kind("hello_ok", 10, HelloOk, unstructure_hello_ok, structure_hello_ok),
    _Kind("chunk", 11, SnapshotChunk, unstructure_snapshot_chunk, structure_snapshot_chunk),
    _Kind("chunk_ack", 12, None, _unstructure_none, _structure_none),
    _Kind("client", 13, ClientRequest, unstructure_client_request, structure_client_request),
    _Kind("client_resp", 14, ClientReply, unstructure_client_reply, structure_client_reply),
)
_BY_NAME: Final = {k.name: k for k in _KINDS}
_BY_CODE: Final = {k.code: k for k in _KINDS}

KIND_CODES: Final = {k.name: k.code for k in _KINDS}
"""Kind name -> code (the table in the module docstring)."""



def encode_message(kind: str, request_id: int, msg: Any) -> bytes:
    """One frame body: CBOR of ``[kind_code, request_id, body]``.

    Raises:
        ValueError: unknown ``kind`` or ``request_id`` out of range.
        TypeError: ``msg`` is not the type ``kind`` carries, or ``request_id`` not an int.
        cbor2.CBOREncodeError: application data in ``msg`` cannot be encoded.
    """
    k = _BY_NAME.get(kind)
    if k is None:
        raise ValueError(f"unknown message kind {kind!r}")
    if type(request_id) is not int:
        raise TypeError(f"request_id must be an int, got {type(request_id).__name__}")
    if not 0 <= request_id <= MAX_REQUEST_ID:
        raise ValueError(f"request_id {request_id} out of range")
    if (msg is not None) if k.cls is None else (type(msg) is not k.cls):
        expected = "None" if k.cls is None else k.cls.__name__
        raise TypeError(f"a {kind!r} message must be {expected}, got {type(msg).__name__}")
    return cbor2.dumps([k.code, request_id, k.unstructure(msg)])


def decode_message(
    data: bytes | bytearray | memoryview,
    *,
    max_items: int = DEFAULT_MAX_ITEMS,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> tuple[str, int, Any]:
    """The inverse of :func:`encode_message`: ``(kind, request_id, msg)``.

    Hostile input is bounded before it is decoded: a message of more than ``max_items``
    CBOR items (checked by :func:`check_items`, only for messages longer than
    ``max_items`` bytes: a shorter one cannot hold more) or arrays and maps nested deeper
    than ``max_depth`` is refused.

    Raises:
        DecodeError: not (exactly one item of) CBOR, over a limit, not an envelope, an
            unknown kind code, a bad request id, or a body of the wrong shape.
    """
    if len(data) > max_items:
        check_items(data, max_items, max_depth)
    fp = io.BytesIO(data)
    try:
        raw = cbor2.load(
            fp,
            semantic_decoders=SEMANTIC_DECODERS,
            allow_duplicate_keys=False,
            allow_indefinite=False,
            max_depth=max_depth,
        )
    except Exception as exc:  # cbor2 raises several types (and RecursionError, ...)
        # No ``from exc``: the message says it all, and a cause's traceback would keep
        # the decoder's frames (and what they hold) alive as long as this error.
        raise DecodeError(f"not valid CBOR: {exc}") from None
    if fp.read(1):
        raise DecodeError("trailing bytes after the CBOR message")
    if type(raw) is not list or len(raw) != 3:
        raise DecodeError(f"a message is [kind, request_id, body], got {short_repr(raw)}")
    code, request_id, body = raw
    k = _BY_CODE.get(code) if type(code) is int else None
    if k is None:
        raise DecodeError(f"unknown message kind code {short_repr(code)}")
    if type(request_id) is not int or not 0 <= request_id <= MAX_REQUEST_ID:
        raise DecodeError(f"bad request id {short_repr(request_id)}")
    try:
        msg = k.structure(body)
    except DecodeError as exc:
        raise DecodeError(f"bad {k.name!r} body: {exc}") from None
    except Exception as exc:  # a hook deeper down tripped over hostile input
        reason = short_text(str(exc))
        # ``from None``: the decoded body must not stay reachable from a traceback.
        raise DecodeError(f"bad {k.name!r} body: {type(exc).__name__}: {reason}") from None
    return k.name, request_id, msg
