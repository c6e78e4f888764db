"""Payloads encoded once (issue 14): a follower keeps the bytes it receives and decodes
them where the entry is applied; bytes that do not decode stop that node (fail-stop with
``codec.PayloadDecodeError``, a ``StorageError``), never skip the entry or crash silently.
"""

from __future__ import annotations

from typing import Any

import attrs
import cbor2
import pytest

import openraft_trio as raft
from openraft_trio import codec
from openraft_trio._messages import AppendEntriesRequest
from openraft_trio.kv import KvStateMachine, Set
from openraft_trio.testing import open_cluster

# A registered tag (so the follower accepts it when it arrives), fields that do not fit.
BAD_FIELDS = cbor2.dumps(["kv.Set", [1, 2, 3]])


def test_a_payload_decodes_lazily_once_and_compares_by_data() -> None:
    sent = raft.Normal(Set("k", [1, 2]))
    encoded = sent.encoded
    received = raft.Normal.from_encoded(encoded)
    assert not received.is_decoded
    assert received == sent  # equal bytes: no decode needed
    assert not received.is_decoded
    assert received == raft.Normal(Set("k", [1, 2]))  # no bytes on that side: decodes
    assert received.data == Set("k", [1, 2])
    assert received.data is received.data  # decoded once, kept
    assert received.encoded is encoded
    assert repr(received) == "Normal(data=Set(key='k', value=[1, 2]))"
    hashable = raft.Normal(Set("k", "v"))
    assert hash(raft.Normal.from_encoded(hashable.encoded)) == hash(hashable)
    assert raft.Normal(1) == raft.Normal(1.0)  # different bytes, equal data
    with pytest.raises(AttributeError):
        received.data = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        raft.Normal.from_encoded(bytearray(encoded))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "encoded",
    [BAD_FIELDS, cbor2.dumps(["no.such.tag", {}]), b"\x82\xf6", b"\xff", b"\x82\x01"],
)
def test_bytes_that_do_not_decode_raise_a_typed_error_where_the_data_is_read(
    encoded: bytes,
) -> None:
    payload = raft.Normal.from_encoded(encoded)
    with pytest.raises(codec.PayloadDecodeError) as info:
        _ = payload.data
    assert isinstance(info.value, raft.StorageError)
    assert isinstance(info.value, codec.DecodeError)
    assert "entry payload does not decode" in str(info.value)
    assert "from_encoded" in repr(payload)  # repr never raises


def test_decoding_is_bounded_like_a_frame() -> None:
    deep: Any = 0
    for _ in range(codec.MAX_PAYLOAD_DEPTH + 5):
        deep = [deep]
    with pytest.raises(codec.PayloadDecodeError):
        codec.decode_payload(cbor2.dumps([None, deep]))
    many = cbor2.dumps([None, [0] * (codec.MAX_PAYLOAD_ITEMS + 1)])
    with pytest.raises(codec.PayloadDecodeError, match="items"):
        codec.decode_payload(many)
    with pytest.raises(codec.PayloadDecodeError, match="tag 28"):
        codec.decode_payload(b"\x82\xf6\xd8\x1c\x80")


async def test_the_state_machine_raises_the_decode_error_from_apply() -> None:
    entry = raft.Entry(raft.LogId(raft.LeaderId(1, 1), 1), raft.Normal.from_encoded(BAD_FIELDS))
    with pytest.raises(codec.PayloadDecodeError):
        await KvStateMachine().apply([entry])


async def test_a_follower_that_cannot_decode_a_committed_entry_stops(autojump_clock: Any) -> None:
    async with open_cluster(3, seed=5) as c:
        leader_id = await c.wait_for_leader()
        leader = c.nodes[leader_id]
        await leader.client_write(Set("a", 1))
        follower_id = next(n for n in c.node_ids if n != leader_id)
        follower = c.nodes[follower_id]
        last = follower.metrics.last_log_index
        assert last is not None
        # What a leader of another version would send: a committed entry of a known tag
        # whose fields this node cannot decode. The follower stores it undecoded.
        vote = leader.metrics.vote
        [prev] = await c.log_stores[follower_id].try_get_log_entries(last, last + 1)
        entry = raft.Entry(
            raft.LogId(vote.leader_id, last + 1), raft.Normal.from_encoded(BAD_FIELDS)
        )
        response = await follower.append_entries(
            AppendEntriesRequest(vote, prev.log_id, (entry,), entry.log_id)
        )
        assert response.success
        # Applying it fails: the node stops, loudly, with the typed error.
        await follower.wait(5).state(raft.ServerState.SHUTDOWN)
        assert isinstance(follower.fatal_error, codec.PayloadDecodeError)
        assert follower.metrics.last_applied is not None
        assert follower.metrics.last_applied.index <= last  # the entry was not skipped
        with pytest.raises(codec.PayloadDecodeError):
            await follower.client_write(Set("x", 1))
        # The others go on.
        await leader.client_write(Set("b", 2))


def test_a_follower_checks_the_tag_of_what_it_receives_without_decoding() -> None:
    long_tag = "t" * 300

    @attrs.frozen
    class Long:
        x: int

    codec.register_data_type(Long, long_tag)
    for data in (Set("k", "v"), None, [1, "a"], Long(3)):
        encoded = raft.Normal(data).encoded
        assert codec.check_payload_tag(encoded) is encoded
    for bad, reason in [
        (cbor2.dumps(["no.such.tag", {}]), "unknown application data tag 'no.such.tag'"),
        (cbor2.dumps(["t" * 299, {}]), "unknown application data tag 'ttt"),
        (cbor2.dumps(["kv.Set"]), "a payload is CBOR"),
        (b"\x82fkv.Set", "a payload is CBOR"),  # no value
        (b"\x82\xf6", "a payload is CBOR"),
        (cbor2.dumps([1, 2]), "a payload is CBOR"),
        (b"", "a payload is CBOR"),
    ]:
        with pytest.raises(codec.DecodeError, match=reason):
            codec.check_payload_tag(bad)
