"""The command line's edges, through real processes: one ``error:`` line and a documented
exit status instead of a traceback (bad keys, closed stdout, Ctrl-C, a write that never
connected), values from files and stdin, membership from the shell (remove-learner,
transfer-leader to a non-voter, status marks), a failed start that leaves its data
directory as it was, and snapshot save / restore into a new cluster."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import trio

from openraft_trio.testing.processes import open_process_cluster

from .test_cli import cli, err, out

pytestmark = pytest.mark.slow

BOUND = 60.0
CLI = [sys.executable, "-m", "openraft_trio"]


def assert_one_error_line(result: subprocess.CompletedProcess[bytes]) -> None:
    text = err(result)
    assert "Traceback" not in text, text
    assert text.splitlines()[-1].startswith(("error:", "python -m openraft_trio")), text


async def cli_with_stdin(data: bytes, *args: str) -> subprocess.CompletedProcess[bytes]:
    with trio.fail_after(30):
        return await trio.run_process(
            [*CLI, *args], stdin=data, capture_stdout=True, capture_stderr=True, check=False
        )


async def cli_many(
    *commands: tuple[list[str], bytes],
) -> list[subprocess.CompletedProcess[bytes]]:
    """Run independent commands (argv, stdin) at once; their results in order."""
    results: list[subprocess.CompletedProcess[bytes] | None] = [None] * len(commands)

    async def one(i: int, args: list[str], stdin: bytes) -> None:
        results[i] = await cli_with_stdin(stdin, *args)

    async with trio.open_nursery() as nursery:
        for i, (args, stdin) in enumerate(commands):
            nursery.start_soon(one, i, args, stdin)
    return [r for r in results if r is not None]


@contextmanager
def black_hole() -> Iterator[tuple[socket.socket, str]]:
    """A port that accepts TCP connections (the kernel does) and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    try:
        yield sock, f"127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


async def test_values_from_files_and_stdin_and_keys_that_are_not_utf8(tmp_path: Path) -> None:
    with trio.fail_after(BOUND):
        async with open_process_cluster(3, base_dir=str(tmp_path), mem=True) as cl:
            await cl.initialize()
            c = ["--cluster", ",".join(cl.addrs)]
            big = "v" * 300_000
            (tmp_path / "value.txt").write_text(big)
            (tmp_path / "huge.bin").write_bytes(b"x" * 3_000_000)
            put_big, put_huge, put_stdin, put_dash = await cli_many(
                (["put", "big", "--value-file", str(tmp_path / "value.txt"), *c], b""),
                # Over the cluster's limit (1 MiB by default): refused, nothing written.
                (["put", "huge", "--value-file", str(tmp_path / "huge.bin"), *c], b""),
                # '-' reads stdin as it is; --value - stores a dash.
                (["put", "k", "-", *c], b"from stdin\n"),
                (["put", "dash", "--value", "-", *c], b""),
            )
            for r in (put_big, put_stdin, put_dash):
                assert (r.returncode, out(r)) == (0, "OK"), err(r)
            assert put_huge.returncode == 2
            assert "value too large" in err(put_huge)
            assert_one_error_line(put_huge)
            get_big, get_k, get_dash = await cli_many(
                (["get", "big", "--json", *c], b""),
                (["get", "k", "--json", *c], b""),
                (["get", "dash", *c], b""),
            )
            assert json.loads(out(get_big)) == big
            assert json.loads(out(get_k)) == "from stdin\n"
            assert out(get_dash) == "-"
            # Two sources, a file that is not there, stdin that is not UTF-8, and keys the
            # OS hands over as bytes that are not UTF-8: usage errors, exit 2.
            bad_key = os.fsdecode(b"key-\xff")
            cas, *results = await cli_many(
                (["cas", "dash", "-", "-", *c], b"from stdin"),  # NEW from stdin
                (["put", "k", "v", "--value-file", str(tmp_path / "value.txt"), *c], b""),
                (["put", "k", "--value-file", str(tmp_path / "missing"), *c], b""),
                (["put", "k", "-", *c], b"\xff\xfe"),
                (["put", bad_key, "v", *c], b""),
                (["get", bad_key, *c], b""),
                (["delete", bad_key, *c], b""),
            )
            for r in results:
                assert r.returncode == 2, err(r)
                assert_one_error_line(r)
            assert all("not valid UTF-8" in err(r) for r in results[3:])
            assert (cas.returncode, out(cas)) == (0, "swapped"), err(cas)


async def test_a_closed_stdout_exits_141_without_a_traceback(tmp_path: Path) -> None:
    with trio.fail_after(BOUND):
        async with open_process_cluster(3, base_dir=str(tmp_path), mem=True) as cl:
            await cl.initialize()
            c = ["--cluster", ",".join(cl.addrs)]
            for args in (["status", *c], ["get", "k", *c]):
                read_end, write_end = os.pipe()
                os.close(read_end)  # like `| head -0`: nobody reads our output
                try:
                    r = await trio.run_process(
                        [*CLI, *args], stdout=write_end, capture_stderr=True, check=False
                    )
                finally:
                    os.close(write_end)
                assert r.returncode == 141, err(r)
                assert err(r) == ""


async def test_membership_from_the_shell(tmp_path: Path) -> None:
    with trio.fail_after(BOUND):
        async with open_process_cluster(3, base_dir=str(tmp_path), mem=True) as cl:
            leader = await cl.initialize()
            learner = cl.add_node(4)
            cl.add_node(5)
            await cl.start(4)
            await cl.start(5)  # never added: uninitialized
            c = ["--cluster", ",".join(cl.addrs)]
            r = await cli("add-learner", "4", learner.addr, *c)
            assert r.returncode == 0, err(r)
            # Leadership goes to voters only: refused at once, exit 1. A voter is not
            # removed as a learner.
            results = await cli_many(
                (["transfer-leader", "4", *c], b""),
                (["transfer-leader", "9", *c], b""),
                (["remove-learner", "2", *c], b""),
            )
            for r, message in zip(
                results,
                ["node 4 is not a voter", "node 9 is not a voter", "is a voter, not a learner"],
                strict=True,
            ):
                assert r.returncode == 1, (out(r), err(r))
                assert message in err(r)
                assert_one_error_line(r)
            r = await cli("remove-learner", "4", *c)
            assert r.returncode == 0, err(r)
            assert out(r).startswith("learner 4 removed")
            r = await cli("remove-learner", "4", *c)
            assert r.returncode == 1
            assert "node 4 is not a learner" in err(r)

            follower = next(i for i in (1, 2, 3) if i != leader)
            await cl.kill(follower)
            r = await cli("status", *c, "--timeout", "2")
            assert r.returncode == 0, err(r)
            rows = {line.split()[0]: line.split() for line in out(r).splitlines()[1:]}
            assert rows[str(follower)][2] == "UNREACHABLE"  # its id, from the membership
            assert rows["4"][-1] == "removed"
            assert rows["5"][2] == "UNINITIALIZED"
            assert rows[str(leader)][2:3] == ["LEADER"]


async def test_ctrl_c_exits_130_and_a_stopped_node_restarts(tmp_path: Path) -> None:
    with trio.fail_after(BOUND):
        async with open_process_cluster(1, base_dir=str(tmp_path)) as cl:
            await cl.initialize()
            await cl.kill(1, signal.SIGINT)
            proc = cl.nodes[1].process
            assert proc is not None
            assert proc.returncode == 130, cl.log_tail(1)
            assert "Traceback" not in cl.log_tail(1)
            await cl.start(1)  # its log's lock was released: it starts again
            await cl.wait_leader()

        # A client command waiting on a node that never answers: Ctrl-C ends it, 130.
        with black_hole() as (sock, addr):
            proc = await trio.lowlevel.open_process(
                [*CLI, "get", "k", "--cluster", addr, "--timeout", "30"], stderr=subprocess.PIPE
            )
            try:
                conn, _ = await trio.to_thread.run_sync(sock.accept)  # it runs trio now
                proc.send_signal(signal.SIGINT)
                assert proc.stderr is not None
                stderr = b""
                while chunk := await proc.stderr.receive_some():
                    stderr += chunk
                await proc.wait()
                conn.close()
            finally:
                proc.kill()
                await proc.wait()
            assert proc.returncode == 130
            assert stderr.decode().strip() == "error: interrupted"


async def test_a_write_that_never_connected_is_not_ambiguous() -> None:
    with black_hole() as (_sock, addr):
        # Connected by the kernel, but the handshake is never answered: the request was
        # never sent, so the put was not applied (exit 3), not "outcome unknown" (exit 4).
        r = await cli("put", "k", "v", "--cluster", addr, "--timeout", "1")
    assert r.returncode == 3, err(r)
    assert "nothing was written" in err(r)
    assert_one_error_line(r)


async def test_a_failed_start_leaves_the_data_dir_as_it_was(tmp_path: Path) -> None:
    data_dir = tmp_path / "node-1"
    with black_hole() as (_sock, taken):
        r = await cli("serve", "--id", "1", "--listen", taken, "--data-dir", str(data_dir))
    assert r.returncode == 5
    assert "address already in use" in err(r)
    assert_one_error_line(r)
    assert not data_dir.exists() or list(data_dir.iterdir()) == []
    # The port is free again: a second start, even with another id, works.
    with trio.fail_after(BOUND):
        argv = ["serve", "--id", "2", "--listen", taken, "--data-dir", str(data_dir)]
        proc = await trio.lowlevel.open_process([*CLI, *argv], stdout=subprocess.PIPE)
        try:
            assert proc.stdout is not None
            line = await proc.stdout.receive_some()
            assert b"node 2 of cluster" in line
            proc.send_signal(signal.SIGTERM)
            await proc.wait()
        finally:
            proc.kill()
            await proc.wait()
        assert proc.returncode == 0
    assert (data_dir / "node-id").read_text().split("\n")[1] == "2"


async def test_snapshot_save_then_restore_into_a_new_cluster(tmp_path: Path) -> None:
    backup = tmp_path / "backup.snap"
    items = {f"key-{i}": f"value-{i}" for i in range(50)} | {"doc": {"a": [1, 2]}}
    with trio.fail_after(BOUND):
        async with open_process_cluster(3, base_dir=str(tmp_path / "old"), cluster_name="old") as cl:
            await cl.initialize()
            async with cl.client() as kv:
                for key, value in items.items():
                    await kv.put(key, value)
            c = ["--cluster", ",".join(cl.addrs), "--cluster-name", "old"]
            r = await cli("snapshot", "save", str(backup), *c, "--json")
            assert r.returncode == 0, err(r)
            saved = json.loads(out(r))
            assert (saved["keys"], saved["cluster_name"]) == (len(items), "old")
            assert saved["sha256"] == hashlib.sha256(backup.read_bytes()).hexdigest()
        # Everything stopped. A new cluster on fresh directories, another name.
        async with open_process_cluster(3, base_dir=str(tmp_path / "new"), cluster_name="new") as cl:
            await cl.initialize()
            c = ["--cluster", ",".join(cl.addrs), "--cluster-name", "new"]
            r = await cli("snapshot", "restore", str(backup), *c)
            assert r.returncode == 0, err(r)
            assert out(r).startswith(f"restored {len(items)} keys")
            async with cl.client() as kv:
                assert {key: await kv.get(key) for key in items} == items
            # Refused: into a cluster that holds keys, into a cluster named like the one it
            # came from, from a damaged file.
            raw = bytearray(backup.read_bytes())
            raw[-1] ^= 0xFF
            (tmp_path / "damaged.snap").write_bytes(bytes(raw))
            same_name = ["--cluster", cl.addrs[0], "--cluster-name", "old"]
            results = await cli_many(
                (["snapshot", "restore", str(backup), *c], b""),
                (["snapshot", "restore", str(backup), *same_name], b""),
                (["snapshot", "restore", str(tmp_path / "damaged.snap"), *c], b""),
            )
            messages = ["a new, empty cluster", "another --cluster-name", "checksum mismatch"]
            for r, message in zip(results, messages, strict=True):
                assert r.returncode == 1, err(r)
                assert message in err(r)
                assert_one_error_line(r)


async def test_watch_prints_changes_refuses_a_compacted_start_and_stops_on_ctrl_c(
    tmp_path: Path,
) -> None:
    with trio.fail_after(BOUND):
        async with open_process_cluster(
            3, base_dir=str(tmp_path), mem=True, extra_args=["--watch-history", "2"]
        ) as cl:
            await cl.initialize()
            c = ["--cluster", ",".join(cl.addrs)]
            for command in (["put", "user:1", "Ada"], ["put", "job:1", "x"], ["delete", "user:1"]):
                r = await cli(*command, *c)
                assert r.returncode == 0, err(r)
            # The nodes keep the last 2 changes: the delete and the job:1 put before it.
            r = await cli("watch", "user:", "--from", "0", *c)
            assert r.returncode == 1
            assert_one_error_line(r)
            assert "no longer held" in err(r)
            oldest = int(err(r).split("before index ")[1].split()[0])
            r = await cli("watch", "", "--from", str(oldest), "--count", "2", "--json", *c)
            assert r.returncode == 0, err(r)
            put, delete = (json.loads(line) for line in out(r).splitlines())
            assert put == {"index": oldest, "kind": "put", "key": "job:1", "value": "x"}
            assert delete["index"] > oldest
            assert delete == {
                "index": delete["index"],
                "kind": "delete",
                "key": "user:1",
                "value": None,
            }
            r = await cli("watch", "user:", "--from", str(oldest), "--count", "1", *c)
            assert (r.returncode, out(r)) == (0, f"{delete['index']} delete user:1"), err(r)

            # A watch from now prints a later change as it happens; Ctrl-C ends it, 130.
            proc = await trio.lowlevel.open_process(
                [*CLI, "watch", "user:", *c], stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
            try:
                assert proc.stdout is not None
                assert proc.stderr is not None
                line = b""
                while not line.endswith(b"\n"):
                    r = await cli("put", "user:2", "Bob", *c)
                    assert r.returncode == 0, err(r)
                    with trio.move_on_after(1):
                        line += await proc.stdout.receive_some()
                assert line.decode().split()[1:] == ["put", "user:2", "Bob"]
                proc.send_signal(signal.SIGINT)
                stderr = b""
                while chunk := await proc.stderr.receive_some():
                    stderr += chunk
                await proc.wait()
            finally:
                proc.kill()
                await proc.wait()
            assert proc.returncode == 130
            assert stderr.decode().strip() == "error: interrupted"
