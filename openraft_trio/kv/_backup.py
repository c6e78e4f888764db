"""Backups of the KV service: ``snapshot save FILE`` and ``snapshot restore FILE``.

``save`` asks the leader for a snapshot of every write acknowledged before the call (the
``snapshot`` op), checks it, and writes it to ``FILE`` atomically (a temp file, fsync,
rename, fsync of the directory). ``restore`` seeds a *new* cluster from such a file: the
target must be initialized, hold no keys, and have another cluster name than the cluster
the backup was taken from; every key is then written through its leader as an ordinary
replicated write. The backup's log ids and membership are not reused: the new cluster has
its own members, addresses and log, so nothing of it can mix with the old one
(docs/operations.md).

Backup file (big-endian)::

    offset  size  field
    0       8     magic b"ORTKVBAK"
    8       2     format version, 1
    10      4     length of the header, in bytes
    14      ...   the header: UTF-8 JSON {"cluster_name", "node_id", "term", "index",
                  "keys", "sha256"}; "sha256" is the hex digest of the rest of the file
    ...     ...   a snapshot file (:mod:`._snapshot_files`: its own magic and CRC-32)
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from typing import Any, final

import attrs
import trio

from .._errors import InvalidRequest, RaftError
from .._nursery import leaves
from ..storage._fs import OsFileSystem, write_file_atomic
from ._client import AmbiguousOutcome, KvClient, NoLeader
from ._snapshot_files import SnapshotFileError, decode_snapshot_file
from ._state_machine import _decode_snapshot

MAGIC = b"ORTKVBAK"
FORMAT_VERSION = 1
_PREFIX = struct.Struct(">8sHI")


class BackupError(RaftError):
    """A backup file is damaged or not a backup, or a restore target is not a new, empty
    cluster. Nothing was written."""


@final
@attrs.frozen
class Backup:
    """A backup file's content: where it came from and the key-value data."""

    cluster_name: str
    node_id: int
    term: int
    index: int
    sha256: str
    data: dict[str, Any]


def encode_backup(reply: dict[str, Any]) -> tuple[bytes, Backup]:
    """The backup file for a ``snapshot`` op reply, and what it holds.

    Raises:
        BackupError: the snapshot in the reply is damaged or not at the index it claims.
    """
    snapshot = reply["file"]
    backup = _check_snapshot(
        snapshot,
        cluster_name=str(reply["cluster_name"]),
        node_id=int(reply["node_id"]),
        term=int(reply["term"]),
        index=int(reply["index"]),
    )
    header = {
        "cluster_name": backup.cluster_name,
        "node_id": backup.node_id,
        "term": backup.term,
        "index": backup.index,
        "keys": len(backup.data),
        "sha256": backup.sha256,
    }
    head = json.dumps(header, sort_keys=True).encode("utf-8")
    return _PREFIX.pack(MAGIC, FORMAT_VERSION, len(head)) + head + snapshot, backup


def decode_backup(raw: bytes) -> Backup:
    """The content of a backup file's bytes.

    Raises:
        BackupError: not a backup file, an unknown version, a damaged header, a checksum
            (SHA-256 or the snapshot's CRC-32) that does not match.
    """
    if len(raw) < _PREFIX.size:
        raise BackupError(f"truncated: {len(raw)} bytes, shorter than the header")
    magic, version, head_len = _PREFIX.unpack_from(raw)
    if magic != MAGIC:
        raise BackupError(f"not an openraft_trio backup file (magic {magic!r})")
    if version != FORMAT_VERSION:
        raise BackupError(f"unsupported backup format version {version}")
    try:
        header = json.loads(raw[_PREFIX.size : _PREFIX.size + head_len].decode("utf-8"))
        fields = (header["cluster_name"], header["node_id"], header["term"], header["index"])
        sha256 = header["sha256"]
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as e:
        raise BackupError(f"damaged header: {e}") from None
    snapshot = raw[_PREFIX.size + head_len :]
    actual = hashlib.sha256(snapshot).hexdigest()
    if actual != sha256:
        raise BackupError(f"checksum mismatch: the header says sha256 {sha256}, the data {actual}")
    cluster_name, node_id, term, index = fields
    return _check_snapshot(
        snapshot, cluster_name=str(cluster_name), node_id=int(node_id), term=int(term), index=int(index)
    )


def _check_snapshot(
    snapshot: bytes, *, cluster_name: str, node_id: int, term: int, index: int
) -> Backup:
    try:
        _snapshot_id, payload = decode_snapshot_file(snapshot)
        decoded = _decode_snapshot(payload)
    except (SnapshotFileError, InvalidRequest) as e:
        raise BackupError(f"damaged snapshot: {e}") from None
    last = decoded.last_log_id
    found = (0, 0) if last is None else (last.term, last.index)
    if found != (term, index):
        raise BackupError(f"the snapshot is at {found}, its header says {(term, index)}")
    return Backup(
        cluster_name, node_id, term, index, hashlib.sha256(snapshot).hexdigest(), decoded.data
    )


async def save_backup(client: KvClient, path: str) -> tuple[Backup, str]:
    """Fetch the leader's snapshot (see :meth:`KvClient.snapshot`) and write it to
    ``path`` atomically; returns what it holds and the SHA-256 of the whole file (what
    ``sha256sum`` prints for it).

    Raises:
        BackupError: the snapshot received is damaged.
        OSError: ``path`` cannot be written.
    """
    raw, backup = encode_backup(await client.snapshot())
    await trio.to_thread.run_sync(_write_atomic, path, raw)
    return backup, hashlib.sha256(raw).hexdigest()


def _write_atomic(path: str, raw: bytes) -> None:
    directory, name = os.path.split(os.path.abspath(path))
    write_file_atomic(OsFileSystem(), directory, name, raw)


async def read_backup(path: str) -> Backup:
    """Read and check the backup file at ``path`` (see :func:`decode_backup`)."""
    raw = await trio.Path(path).read_bytes()
    return decode_backup(raw)


async def restore_backup(client: KvClient, backup: Backup, *, concurrency: int = 32) -> int:
    """Write every key of ``backup`` into the new cluster ``client`` talks to; returns how
    many were written.

    Raises:
        BackupError: the cluster has the backup's cluster name, or holds keys already.
        NoLeader: no leader answered.
    """
    if client.cluster_name == backup.cluster_name:
        raise BackupError(
            f"the target cluster is named {backup.cluster_name!r}, like the cluster the "
            "backup was taken from: restore into a new cluster with another --cluster-name"
        )
    statuses = await client.cluster_status()
    leaders = [s for s in statuses if s.get("state") == "LEADER"]
    if not leaders:
        raise NoLeader("restore: no leader answered; start the new cluster and `init` it first")
    if leaders[0].get("keys"):
        raise BackupError(
            f"the target cluster holds {leaders[0]['keys']} keys: restore only into a new, "
            "empty cluster"
        )
    pending = sorted(backup.data.items(), reverse=True)

    async def writer() -> None:
        while pending:
            key, value = pending.pop()
            try:
                await client.put(key, value)
            except AmbiguousOutcome:
                # A put of the same value is safe to repeat: nothing else writes here yet.
                await client.put(key, value)

    try:
        async with trio.open_nursery() as nursery:
            for _ in range(concurrency):
                nursery.start_soon(writer)
    except BaseExceptionGroup as group:
        # One writer failed and the others were cancelled: raise that failure as itself.
        leaf = leaves(group)[0]
        if isinstance(leaf, RaftError):
            raise leaf from None
        raise
    return len(backup.data)
