"""The wire format: positional encodings of the RPC messages and the frame envelope."""

from __future__ import annotations

from typing import Any

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openraft_trio import codec
from openraft_trio._messages import (
    AppendEntriesRequest,
    AppendEntriesResponse,
    InstallSnapshotResponse,
    TransferLeaderRequest,
    VoteRequest,
    VoteResponse,
)
from openraft_trio._types import (
    BLANK,
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
    Vote,
)
from openraft_trio._validate import check_append_entries, check_vote_request
from openraft_trio.kv import Set
from openraft_trio.network._wire import (
    KIND_CODES,
    MAX_REQUEST_ID,
    ClientReply,
    ClientRequest,
    ErrorReply,
    FullSnapshotRequest,
    Hello,
    HelloOk,
    SnapshotChunk,
    decode_message,
    encode_message,
)

FAST = settings(max_examples=200, deadline=None)


def lid(term: int, node: int | None, index: int) -> LogId:
    return LogId(LeaderId(term, node), index)


MEMBERSHIP = Membership(
    configs=[{1, 2, 3}, {2, 3, 4}],
    nodes={
        1: Node("127.0.0.1:7001"),
        2: Node("127.0.0.1:7002", {"zone": "a"}),
        3: Node("127.0.0.1:7003"),
        4: Node("[::1]:7004", {"zone": "b", "rack": "7"}),
        5: Node("127.0.0.1:7005"),
    },
)
VOTE = Vote(LeaderId(3, 1), committed=True)
ENTRIES = (
    Entry(lid(0, None, 0), MembershipChange(Membership([{1}], {1: Node("127.0.0.1:7001")}))),
    Entry(lid(1, 1, 1), BLANK),
    Entry(lid(2, 1, 2), Normal(Set("k", "v"))),
    Entry(lid(2, 1, 3), Normal(Set("nested", {"a": [1, 2.5, None, b"\x00"], "b": True}))),
    Entry(lid(3, 1, 4), Normal(None)),
    Entry(lid(3, 1, 5), Normal([1, "two", {"three": 3}])),
    Entry(lid(3, 1, 6), MembershipChange(MEMBERSHIP)),
)
SNAPSHOT = Snapshot(
    SnapshotMeta(lid(3, 1, 6), StoredMembership(lid(3, 1, 6), MEMBERSHIP), "3-1-6-abc"),
    b"\x00\x01snapshot bytes" * 100,
)

MESSAGES: list[tuple[str, Any]] = [
    ("vote", VoteRequest(Vote(LeaderId(4, 2)), lid(3, 1, 6))),
    ("vote", VoteRequest(Vote(LeaderId(4, 2)), None, pre_vote=True)),
    ("vote", VoteRequest(Vote(LeaderId(5, 3)), lid(0, None, 0), leader_transfer=True)),
    ("vote_resp", VoteResponse(Vote(LeaderId(4, 2)), True, lid(3, 1, 6))),
    ("vote_resp", VoteResponse(Vote(LeaderId(4, None)), False, None)),
    ("append", AppendEntriesRequest(VOTE, None, ENTRIES, lid(2, 1, 2))),
    ("append", AppendEntriesRequest(VOTE, lid(3, 1, 6), (), lid(3, 1, 6))),
    ("append", AppendEntriesRequest(VOTE, None, (), None)),  # heartbeat
    ("append_resp", AppendEntriesResponse(VOTE, True, lid(3, 1, 6))),
    ("append_resp", AppendEntriesResponse(VOTE, False, None, conflict=True, conflict_hint=4)),
    ("append_resp", AppendEntriesResponse(Vote(LeaderId(9, 2), True), False)),
    ("transfer", TransferLeaderRequest(VOTE, 2, lid(3, 1, 6))),
    ("transfer", TransferLeaderRequest(VOTE, 3, None)),
    ("transfer_resp", None),
    ("snapshot", FullSnapshotRequest(VOTE, SNAPSHOT)),
    (
        "snapshot",
        FullSnapshotRequest(VOTE, Snapshot(SnapshotMeta(None, StoredMembership(), "empty"), b"")),
    ),
    ("snapshot_resp", InstallSnapshotResponse(VOTE)),
    ("error", ErrorReply("StorageError", "disk on fire")),
    ("error", ErrorReply.from_exception(ValueError("bad value"))),
    ("error", ErrorReply("ForwardToLeader", "not the leader", [2, "127.0.0.1:7002"])),
    ("hello", Hello("prod", "raft", 1, 2)),
    ("hello", Hello("prod", "client", None, None)),
    ("hello_ok", HelloOk("prod", 2)),
    ("chunk", SnapshotChunk(VOTE, SNAPSHOT.meta, 0, b"abc", False)),
    ("chunk", SnapshotChunk(VOTE, SNAPSHOT.meta, 3, b"", True)),
    ("chunk_ack", None),
    ("client", ClientRequest("put", ["k", "v"])),
    ("client", ClientRequest("status", [])),
    ("client_resp", ClientReply({"value": "v", "revision": 7})),
    ("client_resp", ClientReply(None)),
]


# -- round trips -----------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "msg"), MESSAGES)
@pytest.mark.parametrize("request_id", [0, 1, 2**31, MAX_REQUEST_ID])
def test_round_trip(kind: str, msg: Any, request_id: int) -> None:
    assert decode_message(encode_message(kind, request_id, msg)) == (kind, request_id, msg)


@pytest.mark.parametrize(
    ("kind", "msg"), [m for m in MESSAGES if m[1] is not None and m[0] != "client_resp"]
)
def test_converter_hooks_round_trip(kind: str, msg: Any) -> None:
    raw = codec.converter.unstructure(msg)
    assert isinstance(raw, list)
    assert codec.converter.structure(raw, type(msg)) == msg
    assert codec.loads(codec.dumps(msg), type(msg)) == msg


def test_kind_codes_are_a_fixed_table() -> None:
    assert KIND_CODES == {
        "error": 0,
        "vote": 1,
        "vote_resp": 2,
        "append": 3,
        "append_resp": 4,
        "transfer": 5,
        "transfer_resp": 6,
        "snapshot": 7,
        "snapshot_resp": 8,
        "hello": 9,
        "hello_ok": 10,
        "chunk": 11,
        "chunk_ack": 12,
        "client": 13,
        "client_resp": 14,
    }


def test_envelope_layout() -> None:
    raw = cbor2.loads(encode_message("vote", 7, VoteRequest(Vote(LeaderId(4, 2)), None)))
    assert raw == [1, 7, [[4, 2, False], None, False, False]]
    raw = cbor2.loads(encode_message("error", 9, ErrorReply("X", "y")))
    assert raw == [0, 9, ["X", "y"]]
    raw = cbor2.loads(encode_message("hello", 0, Hello("c", "raft", 1, 2)))
    assert raw == [9, 0, [2, "c", "raft", 1, 2]]


def test_append_entries_travel_flat_with_payloads_as_their_encoding() -> None:
    payload = Normal(Set("k", "v"))
    req = AppendEntriesRequest(
        VOTE,
        lid(3, 1, 6),
        (Entry(lid(3, 1, 7), payload), Entry(lid(4, 2, 8), BLANK)),
        None,
    )
    raw = cbor2.loads(encode_message("append", 5, req))
    # fmt: off
    assert raw == [3, 5, [
        3, 1, True,  3, 1, 6,  None, None, None,
        3, 1, 7, payload.encoded,
        4, 2, 8, None,
    ]]
    # fmt: on
    assert payload.encoded == cbor2.dumps(["kv.Set", {"key": "k", "value": "v"}])
    raw = cbor2.loads(encode_message("append_resp", 6, AppendEntriesResponse(VOTE, True, None)))
    assert raw == [4, 6, [3, 1, True, True, None, None, None, False, None]]


def test_a_received_payload_is_kept_as_bytes_until_its_data_is_read() -> None:
    req = AppendEntriesRequest(VOTE, None, (Entry(lid(3, 1, 0), Normal(Set("k", "v"))),), None)
    [entry] = decode_message(encode_message("append", 1, req))[2].entries
    payload = entry.payload
    assert isinstance(payload, Normal)
    assert not payload.is_decoded
    assert payload.encoded == Normal(Set("k", "v")).encoded
    assert payload.data == Set("k", "v")
    assert payload.is_decoded


def test_decoded_requests_pass_validation() -> None:
    _, _, req = decode_message(
        encode_message("append", 1, AppendEntriesRequest(VOTE, None, ENTRIES, None))
    )
    assert check_append_entries(req) == req
    _, _, vote = decode_message(encode_message("vote", 1, MESSAGES[0][1]))
    assert check_vote_request(vote) == vote


def test_decode_accepts_bytearray_and_memoryview() -> None:
    data = encode_message("snapshot_resp", 3, InstallSnapshotResponse(VOTE))
    assert decode_message(bytearray(data))[2] == InstallSnapshotResponse(VOTE)
    assert decode_message(memoryview(data))[2] == InstallSnapshotResponse(VOTE)


@pytest.mark.parametrize(
    ("kind", "request_id", "msg", "exc"),
    [
        ("nope", 1, None, ValueError),
        ("vote", -1, MESSAGES[0][1], ValueError),
        ("vote", MAX_REQUEST_ID + 1, MESSAGES[0][1], ValueError),
        ("vote", True, MESSAGES[0][1], TypeError),
        ("vote", 1, MESSAGES[3][1], TypeError),
        ("transfer_resp", 1, "not none", TypeError),
        ("error", 1, RuntimeError("x"), TypeError),
    ],
)
def test_encode_rejects_misuse(kind: str, request_id: Any, msg: Any, exc: type[Exception]) -> None:
    with pytest.raises(exc):
        encode_message(kind, request_id, msg)


# -- hypothesis round trips ------------------------------------------------------------------

terms = st.integers(min_value=0, max_value=2**40)
node_ids = st.integers(min_value=0, max_value=2**20)
leader_ids = st.builds(LeaderId, terms, st.none() | node_ids)
log_ids = st.builds(LogId, leader_ids, st.integers(min_value=0, max_value=2**62))
votes = st.builds(Vote, st.builds(LeaderId, terms, node_ids), st.booleans())
plain_data = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=10)
    | st.binary(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)
memberships = st.builds(
    Membership,
    st.lists(st.frozensets(node_ids, min_size=1, max_size=4), min_size=1, max_size=2),
    st.dictionaries(
        node_ids,
        st.builds(Node, st.text(max_size=20), st.dictionaries(st.text(max_size=5), st.text())),
        max_size=4,
    ),
)
payloads = st.one_of(
    st.just(BLANK),
    st.builds(Normal, plain_data),
    st.builds(Normal, st.builds(Set, st.text(max_size=10), plain_data)),
    st.builds(MembershipChange, memberships),
)
append_requests = st.builds(
    AppendEntriesRequest,
    votes,
    st.none() | log_ids,
    st.lists(st.builds(Entry, log_ids, payloads), max_size=8).map(tuple),
    st.none() | log_ids,
)
vote_requests = st.builds(VoteRequest, votes, st.none() | log_ids, st.booleans(), st.booleans())
request_ids = st.integers(min_value=0, max_value=MAX_REQUEST_ID)


@FAST
@given(append_requests, request_ids)
def test_append_entries_round_trip_property(req: AppendEntriesRequest, request_id: int) -> None:
    assert decode_message(encode_message("append", request_id, req)) == (
        "append",
        request_id,
        req,
    )


def _flatten_nested_append(nested: list[Any]) -> list[Any]:
    """The flat AppendEntries body, derived from the converter's nested one (the schema)."""
    vote, prev, entries, commit = nested
    out = [*vote, *(prev or [None] * 3), *(commit or [None] * 3)]
    for entry in entries:
        kind = entry[3]
        out += [*entry[:3], entry[4] if kind in (1, 2) else None]
    return out


@FAST
@given(append_requests, request_ids)
def test_append_entries_flat_form_agrees_with_the_converter(
    req: AppendEntriesRequest, request_id: int
) -> None:
    nested = codec.converter.unstructure(req)
    flat = cbor2.loads(encode_message("append", request_id, req))[2]
    assert flat == cbor2.loads(cbor2.dumps(_flatten_nested_append(nested)))
    by_converter = codec.loads(codec.dumps(req), AppendEntriesRequest)
    assert decode_message(encode_message("append", request_id, req))[2] == by_converter == req


append_responses = st.builds(
    AppendEntriesResponse,
    votes,
    st.booleans(),
    st.none() | log_ids,
    st.booleans(),
    st.none() | st.integers(min_value=0, max_value=2**62),
)


@FAST
@given(append_responses)
def test_append_entries_response_flat_form_agrees_with_the_converter(
    resp: AppendEntriesResponse,
) -> None:
    vote, success, matching, conflict, hint = codec.converter.unstructure(resp)
    flat = cbor2.loads(encode_message("append_resp", 1, resp))[2]
    assert flat == [*vote, success, *(matching or [None] * 3), conflict, hint]
    by_converter = codec.loads(codec.dumps(resp), AppendEntriesResponse)
    assert decode_message(encode_message("append_resp", 1, resp))[2] == by_converter == resp


@FAST
@given(vote_requests, request_ids)
def test_vote_request_round_trip_property(req: VoteRequest, request_id: int) -> None:
    assert decode_message(encode_message("vote", request_id, req)) == ("vote", request_id, req)


# -- hostile input ---------------------------------------------------------------------------

GOOD_VOTE = [3, 1, True]
GOOD_LOG_ID = [3, 1, 6]
GOOD_META = [GOOD_LOG_ID, [GOOD_LOG_ID, [[[1, 2]], {1: ["a", {}], 2: ["b", {}]}]], "id"]
AE_HEAD = [*GOOD_VOTE, None, None, None, *GOOD_LOG_ID]  # vote, prev_log_id, leader_commit

GARBAGE = [
    b"",
    b"\xff",
    b"\x1f",
    b"\x83\x01",  # truncated array
    b"\x5f\x01",
    b"\xc1\x61a",  # bad epoch datetime tag
    b"\x7f\x61a",  # unterminated indefinite string
    b"\x81" * 100_000 + b"\x00",  # nested far beyond the depth limit
    cbor2.dumps([1, 0, [GOOD_VOTE, None, False, False]]) + b"\x00",  # trailing bytes
    b"\x83\x01\x00\xd8\x1c\x81\xd8\x1d\x00",  # shared reference (cyclic) body
    bytes(range(256)),
    b"\xa2\x01\x02\x01\x03",  # duplicate map key
]

WRONG_SHAPES: list[Any] = [
    None,
    1,
    "vote",
    {"kind": 1},
    [],
    [1, 0],
    [1, 0, [GOOD_VOTE, None, False, False], "extra"],
    # unknown / ill-typed kind codes
    [99, 0, None],
    [15, 0, None],
    [9, 0, None],  # a hello without a body,
    [-1, 0, None],
    [True, 0, [GOOD_VOTE, None, False, False]],
    [1.0, 0, [GOOD_VOTE, None, False, False]],
    ["vote", 0, [GOOD_VOTE, None, False, False]],
    # bad request ids
    [1, -1, [GOOD_VOTE, None, False, False]],
    [1, 2**64, [GOOD_VOTE, None, False, False]],
    [1, 2**100, [GOOD_VOTE, None, False, False]],
    [1, True, [GOOD_VOTE, None, False, False]],
    [1, 1.5, [GOOD_VOTE, None, False, False]],
    [1, None, [GOOD_VOTE, None, False, False]],
    [1, "1", [GOOD_VOTE, None, False, False]],
    # vote requests
    [1, 0, None],
    [1, 0, [GOOD_VOTE, None, False]],
    [1, 0, [GOOD_VOTE, None, False, False, False]],
    [1, 0, [GOOD_VOTE, None, 0, False]],
    [1, 0, [GOOD_VOTE, None, False, None]],
    [1, 0, [[3, 1], None, False, False]],
    [1, 0, [[3, 1, 1], None, False, False]],
    [1, 0, [[True, 1, True], None, False, False]],
    [1, 0, [[3, "1", True], None, False, False]],
    [1, 0, [GOOD_VOTE, [3, 1], False, False]],
    [1, 0, [GOOD_VOTE, [3, 1, 1.0], False, False]],
    [1, 0, [GOOD_VOTE, [3, 1, False], False, False]],
    [1, 0, [GOOD_VOTE, {"term": 3}, False, False]],
    [1, 0, {"vote": GOOD_VOTE}],
    # vote responses
    [2, 0, [GOOD_VOTE, 1, None]],
    [2, 0, [GOOD_VOTE, True]],
    [2, 0, [None, True, None]],
    # append entries: [vote(3), prev(3), commit(3), (term, node_id, index, payload)...]
    [3, 0, [GOOD_VOTE, None, [], None]],  # the nested form
    [3, 0, [*GOOD_VOTE, *GOOD_LOG_ID, 3, 1]],  # 8 items
    [3, 0, [*AE_HEAD, 1, 1, 0]],  # an entry cut short
    [3, 0, [*AE_HEAD, 1, 1, 0, None, 2]],
    [3, 0, [3, 1, 1, *GOOD_LOG_ID, *GOOD_LOG_ID]],  # committed not a bool
    [3, 0, [3, "1", True, *GOOD_LOG_ID, *GOOD_LOG_ID]],
    [3, 0, [*GOOD_VOTE, None, 1, None, *GOOD_LOG_ID]],  # half a missing log id
    [3, 0, [*GOOD_VOTE, 3, 1, None, *GOOD_LOG_ID]],
    [3, 0, [*GOOD_VOTE, 3, 1, 1.0, *GOOD_LOG_ID]],
    [3, 0, [*GOOD_VOTE, *GOOD_LOG_ID, True, 1, 6]],
    [3, 0, [*AE_HEAD, 1.5, 1, 0, None]],
    [3, 0, [*AE_HEAD, True, 1, 0, None]],
    [3, 0, [*AE_HEAD, 1, "1", 0, None]],
    [3, 0, [*AE_HEAD, 1, 1, None, None]],
    [3, 0, [*AE_HEAD, 1, 1, 0, 7]],  # a payload neither bytes, null nor a membership
    [3, 0, [*AE_HEAD, 1, 1, 0, "kv.Set"]],
    [3, 0, [*AE_HEAD, 1, 1, 0, {}]],
    [3, 0, [*AE_HEAD, 1, 1, 0, b""]],  # payload bytes that are not [tag, value]
    [3, 0, [*AE_HEAD, 1, 1, 0, b"\x82"]],
    [3, 0, [*AE_HEAD, 1, 1, 0, b"\x81\xf6"]],
    [3, 0, [*AE_HEAD, 1, 1, 0, b"\x82\xf6"]],  # no value
    [3, 0, [*AE_HEAD, 1, 1, 0, b"\x82\x01\x02"]],  # an int tag
    [3, 0, [*AE_HEAD, 1, 1, 0, cbor2.dumps(["no.such.tag", {}])]],
    [3, 0, [*AE_HEAD, 1, 1, 0, cbor2.dumps(["kv.Set"])]],
    [3, 0, [*AE_HEAD, 1, 1, 0, b"\x82\x62\xff\xfe\x00"]],  # a tag that is not UTF-8
    [3, 0, [*AE_HEAD, 1, 1, 0, cbor2.dumps(["x" * 300, {}])]],  # a long tag
    [3, 0, [*AE_HEAD, 1, 1, 0, [[[1]], {1: ["a"]}]]],
    [3, 0, [*AE_HEAD, 1, 1, 0, [[[1]], {"1": ["a", {}]}]]],
    [3, 0, [*AE_HEAD, 1, 1, 0, [[["1"]], {}]]],
    [3, 0, [*AE_HEAD, 1, 1, 0, [[1], {}]]],
    [3, 0, [*AE_HEAD, 1, 1, 0, [[[1]], {1: ["a", {"k": 1}]}]]],
    [3, 0, [*AE_HEAD, *([0] * 100_000)]],  # huge, every entry bad
    # append entries responses: [vote(3), success, matching(3), conflict, hint]
    [4, 0, [GOOD_VOTE, True, None, False, None]],  # the nested form
    [4, 0, [*GOOD_VOTE, True, None, None, None, False]],
    [4, 0, [*GOOD_VOTE, True, None, None, None, False, "4"]],
    [4, 0, [*GOOD_VOTE, True, None, None, None, False, 4.0]],
    [4, 0, [*GOOD_VOTE, True, None, None, None, False, True]],
    [4, 0, [*GOOD_VOTE, 1, None, None, None, False, None]],
    [4, 0, [*GOOD_VOTE, True, None, None, None, 0, None]],
    [4, 0, [*GOOD_VOTE, True, 3, None, None, False, None]],
    [4, 0, [*GOOD_VOTE, True, None, 1, None, False, None]],
    [4, 0, [*GOOD_VOTE, True, 3, 1, "6", False, None]],
    # transfer leader
    [5, 0, [GOOD_VOTE, True, None]],
    [5, 0, [GOOD_VOTE, None, None]],
    [5, 0, [GOOD_VOTE, 2]],
    [6, 0, []],
    [6, 0, False],
    # snapshots
    [7, 0, [GOOD_VOTE, [GOOD_META, "not bytes"]]],
    [7, 0, [GOOD_VOTE, [GOOD_META, [1, 2]]]],
    [7, 0, [GOOD_VOTE, [GOOD_META]]],
    [7, 0, [GOOD_VOTE, [[GOOD_LOG_ID, None, "id"], b""]]],
    [7, 0, [GOOD_VOTE, [[GOOD_LOG_ID, GOOD_META[1], 5], b""]]],
    [7, 0, [GOOD_VOTE, [[GOOD_LOG_ID, GOOD_META[1]], b""]]],
    [7, 0, [GOOD_VOTE]],
    [7, 0, [GOOD_VOTE, [GOOD_META, b""], None]],
    [8, 0, []],
    [8, 0, [GOOD_VOTE, None]],
    [8, 0, GOOD_VOTE],
    # errors
    [0, 0, ["X"]],
    [0, 0, ["X", 1]],
    [0, 0, [None, "m"]],
    [0, 0, "X: m"],
    # deep but legal CBOR in the body
    [1, 0, [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],
]


@pytest.mark.parametrize("data", GARBAGE, ids=range(len(GARBAGE)))
def test_garbage_bytes_raise_decode_error(data: bytes) -> None:
    with pytest.raises(codec.DecodeError):
        decode_message(data)


@pytest.mark.parametrize("value", WRONG_SHAPES, ids=range(len(WRONG_SHAPES)))
def test_wrong_shapes_raise_decode_error(value: Any) -> None:
    with pytest.raises(codec.DecodeError):
        decode_message(cbor2.dumps(value))


def test_deeply_nested_body_raises_decode_error() -> None:
    body: Any = []
    for _ in range(350):
        body = [body]
    with pytest.raises(codec.DecodeError):
        decode_message(cbor2.dumps([3, 0, body]))


def test_error_message_names_the_kind() -> None:
    with pytest.raises(codec.DecodeError, match=r"'vote'.*pre_vote"):
        decode_message(cbor2.dumps([1, 0, [GOOD_VOTE, None, 0, False]]))


def test_converter_structure_hooks_are_strict() -> None:
    with pytest.raises(codec.DecodeError):
        codec.converter.structure([GOOD_VOTE, None, 1, False], VoteRequest)
    with pytest.raises(codec.DecodeError):
        codec.loads(cbor2.dumps([GOOD_VOTE, True]), AppendEntriesResponse)


# -- fuzzing ---------------------------------------------------------------------------------

cbor_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=8)
    | st.binary(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(st.integers(-3, 10) | st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=25,
)


def _decode_or_decode_error(data: bytes) -> None:
    try:
        kind, request_id, _msg = decode_message(data)
    except codec.DecodeError:
        return
    assert kind in KIND_CODES
    assert 0 <= request_id <= MAX_REQUEST_ID


@FAST
@given(st.binary(max_size=200))
def test_fuzz_random_bytes(data: bytes) -> None:
    _decode_or_decode_error(data)


@FAST
@given(cbor_values)
def test_fuzz_cbor_values(value: Any) -> None:
    _decode_or_decode_error(cbor2.dumps(value))


@FAST
@given(st.integers(min_value=-1, max_value=10), st.integers(-1, 3), cbor_values)
def test_fuzz_envelopes(code: int, request_id: int, body: Any) -> None:
    _decode_or_decode_error(cbor2.dumps([code, request_id, body]))


@FAST
@given(st.sampled_from(MESSAGES), st.data())
def test_fuzz_mutated_messages(message: tuple[str, Any], data: st.DataObject) -> None:
    """Replace one node of a valid message tree with a random value, or flip a byte."""
    kind, msg = message
    raw = cbor2.loads(encode_message(kind, 1, msg))
    paths: list[tuple[int, ...]] = []

    def walk(node: Any, path: tuple[int, ...]) -> None:
        paths.append(path)
        if isinstance(node, list):
            for i, child in enumerate(node):
                walk(child, (*path, i))

    walk(raw, ())
    path = data.draw(st.sampled_from(paths[1:]))
    target = raw
    for i in path[:-1]:
        target = target[i]
    target[path[-1]] = data.draw(cbor_values)
    _decode_or_decode_error(cbor2.dumps(raw))

    encoded = bytearray(encode_message(kind, 1, msg))
    pos = data.draw(st.integers(0, len(encoded) - 1))
    encoded[pos] = data.draw(st.integers(0, 255))
    _decode_or_decode_error(bytes(encoded))
