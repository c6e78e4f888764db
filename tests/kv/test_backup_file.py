"""Backup files (``snapshot save``): a round trip, and every kind of damage refused with
:class:`BackupError` before anything is restored."""

from __future__ import annotations

import struct

import pytest

from openraft_trio import Membership, MembershipChange, Node
from openraft_trio.kv import KvStateMachine, Set
from openraft_trio.kv._backup import BackupError, decode_backup, encode_backup
from openraft_trio.kv._snapshot_files import encode_snapshot_file

from ._kv_log import Log, apply

MEMBERSHIP = Membership(configs=[{1}], nodes={1: Node("127.0.0.1:7001")})


async def snapshot_reply() -> dict[str, object]:
    """What the ``snapshot`` op answers for a state machine holding two keys at index 3."""
    sm = KvStateMachine()
    await apply(sm, Log(), MembershipChange(MEMBERSHIP), Set("a", 1), Set("b", [2, "x"]))
    snapshot = await sm.build_snapshot()
    assert snapshot.meta.last_log_id is not None
    return {
        "file": encode_snapshot_file(snapshot.meta.snapshot_id, snapshot.data),
        "cluster_name": "old",
        "node_id": 1,
        "term": snapshot.meta.last_log_id.term,
        "index": snapshot.meta.last_log_id.index,
    }


async def test_round_trip() -> None:
    raw, saved = encode_backup(await snapshot_reply())
    loaded = decode_backup(raw)
    assert loaded == saved
    assert (loaded.cluster_name, loaded.index, loaded.data) == ("old", 3, {"a": 1, "b": [2, "x"]})


async def test_a_reply_whose_snapshot_is_not_at_its_index_is_refused() -> None:
    reply = await snapshot_reply()
    with pytest.raises(BackupError, match="its header says"):
        encode_backup({**reply, "index": 7})


def flip(raw: bytes, offset: int) -> bytes:
    damaged = bytearray(raw)
    damaged[offset] ^= 0x01
    return bytes(damaged)


async def test_damage_is_refused() -> None:
    raw, _ = encode_backup(await snapshot_reply())
    head_len = struct.unpack_from(">I", raw, 10)[0]
    cases = {
        "truncated": raw[:10],
        "not an openraft_trio backup": flip(raw, 0),
        "unsupported backup format version": flip(raw, 9),
        "damaged header": flip(raw, 14),  # the JSON's opening brace
        "checksum mismatch": flip(raw, len(raw) - 1),
    }
    for message, damaged in cases.items():
        with pytest.raises(BackupError, match=message):
            decode_backup(damaged)
    # A header and data that agree with each other but not with the snapshot's CRC.
    snapshot = raw[14 + head_len :]
    with pytest.raises(BackupError, match="damaged snapshot"):
        encode_backup({**(await snapshot_reply()), "file": flip(snapshot, len(snapshot) - 1)})
