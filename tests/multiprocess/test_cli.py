"""``python -m openraft_trio`` commands against node processes: results, exit statuses and
error messages (bad arguments, unreachable clusters, another node's data directory)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from openraft_trio.testing.processes import free_ports, open_process_cluster

pytestmark = pytest.mark.slow


async def cli(*args: str) -> subprocess.CompletedProcess[bytes]:
    with trio.fail_after(30):
        return await trio.run_process(
            [sys.executable, "-m", "openraft_trio", *args],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )


def out(result: subprocess.CompletedProcess[bytes]) -> str:
    return result.stdout.decode().strip()


def err(result: subprocess.CompletedProcess[bytes]) -> str:
    return result.stderr.decode().strip()


async def test_cli_against_a_three_process_cluster(tmp_path: Path) -> None:
    with trio.fail_after(90):
        async with open_process_cluster(
            3,
            base_dir=str(tmp_path),
            cluster_name="cli",
            extra_args=["--max-entry-bytes", "65536"],
        ) as cl:
            c = ["--cluster", ",".join(cl.addrs), "--cluster-name", "cli"]
            r = await cli("init", *c)
            assert (r.returncode, out(r)) == (0, "initialized"), err(r)
            r = await cli("put", "greeting", "hello", *c)
            assert (r.returncode, out(r)) == (0, "OK"), err(r)
            # A value over the nodes' --max-entry-bytes: refused, bad input (exit 2).
            r = await cli("put", "big", "x" * 100_000, *c)
            assert r.returncode == 2, (out(r), err(r))
            assert "value too large" in err(r)
            assert "65536" in err(r)
            assert len(err(r)) < 1024
            r = await cli("get", "greeting", *c)
            assert (r.returncode, out(r)) == (0, "hello")
            r = await cli("get", "greeting", "--lease", *c)
            assert (r.returncode, out(r)) == (0, "hello")
            r = await cli("cas", "n", "null", "1", "--json-values", *c)
            assert (r.returncode, out(r)) == (0, "swapped")
            r = await cli("cas", "n", "null", "2", "--json-values", "--json", *c)
            assert r.returncode == 1
            assert json.loads(out(r)) == {"swapped": False, "value": 1}
            r = await cli("incr", "n", *c)  # n is 1 (the cas above)
            assert (r.returncode, out(r)) == (0, "2"), err(r)
            r = await cli("incr", "n", "5", "--json", *c)
            assert json.loads(out(r)) == {"value": 7}
            r = await cli("incr", "greeting", *c)  # "hello" is not an integer
            assert (r.returncode, out(r)) == (1, "not an integer: nothing changed")
            r = await cli("delete", "greeting", *c)
            assert r.returncode == 0
            r = await cli(
                "get", "greeting", "--stale", "--cluster", cl.addrs[2], "--cluster-name", "cli"
            )
            assert (r.returncode, out(r)) == (0, "(absent)")

            r = await cli("status", *c)
            assert r.returncode == 0
            lines = out(r).splitlines()
            assert lines[0].split()[:3] == ["ID", "ADDR", "ROLE"]
            roles = sorted(line.split()[2] for line in lines[1:])
            assert roles == ["FOLLOWER", "FOLLOWER", "LEADER"]

            leader = await cl.wait_leader()
            other = next(i for i in cl.nodes if i != leader)
            r = await cli("transfer-leader", str(other), *c)
            assert (r.returncode, out(r)) == (0, f"node {other} leads"), err(r)

            # The wrong cluster name is refused by the handshake: unreachable, exit 3.
            r = await cli(
                "get", "x", "--cluster", cl.addrs[0], "--cluster-name", "other", "--timeout", "1"
            )
            assert r.returncode == 3
            assert "handshake refused" in err(r)

            # A second node on node 1's data directory: clear error, exit 5.
            data_dir = cl.nodes[1].data_dir
            assert data_dir is not None
            port = free_ports(1)[0]
            r = await cli(
                "serve",
                "--id",
                "2",
                "--listen",
                f"127.0.0.1:{port}",
                "--data-dir",
                data_dir,
                "--cluster-name",
                "cli",
            )
            assert r.returncode == 5
            assert "belongs to node 1" in err(r)
            r = await cli(
                "serve",
                "--id",
                "1",
                "--listen",
                f"127.0.0.1:{port}",
                "--data-dir",
                data_dir,
                "--cluster-name",
                "cli",
            )
            assert r.returncode == 5
            assert "in use by another process" in err(r)
            # The address is taken.
            r = await cli("serve", "--id", "9", "--listen", cl.addrs[0], "--mem")
            assert r.returncode == 5
            assert "address already in use" in err(r)


async def test_unreachable_cluster_exits_3() -> None:
    port = free_ports(1)[0]
    r = await cli("get", "k", "--cluster", f"127.0.0.1:{port}", "--timeout", "0.5")
    assert r.returncode == 3
    assert f"cannot reach the cluster at 127.0.0.1:{port}" in err(r)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["serve", "--listen", "127.0.0.1:7001", "--mem"], "--id"),
        (["serve", "--id", "1", "--listen", "nowhere", "--mem"], "host:port"),
        (["serve", "--id", "1", "--listen", "127.0.0.1:7001"], "--data-dir"),
        (
            ["serve", "--id", "1", "--listen", "127.0.0.1:7001", "--mem", "--peers", "1=x"],
            "host:port",
        ),
        (["serve", "--id", "x", "--listen", "127.0.0.1:7001", "--mem"], "node id"),
        (
            [
                "serve",
                "--id",
                "1",
                "--listen",
                "127.0.0.1:7001",
                "--mem",
                "--election-timeout",
                "0.3,0.1",
            ],
            "election_timeout",
        ),
        (
            ["serve", "--id", "1", "--listen", "127.0.0.1:7001", "--mem", "--tls-ca", "a"],
            "--tls-cert",
        ),
        (
            ["serve", "--id", "1", "--listen", "127.0.0.1:7001", "--mem", "--peers", "2=h:1"],
            "this node included",
        ),
        (["serve", "--id", "1", "--listen", "127.0.0.1:7001", "--mem", "--log-level", "LOUD"], "log level"),
        (["get", "k", "--timeout", "-1"], "--timeout"),
        (["get", "k", "--timeout", "0"], "--timeout"),
        (["change-membership", "1,x"], "node id"),
        (["put", "k", "{", "--json-values"], "not JSON"),
    ],
)
async def test_bad_arguments_exit_2_with_a_message(args: list[str], message: str) -> None:
    r = await cli(*args)
    assert r.returncode == 2, (out(r), err(r))
    assert message in err(r)
    assert "Traceback" not in err(r)


async def test_mutual_tls_between_processes(tmp_path: Path) -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "node.pem"))
    tls = [
        "--tls-ca",
        str(tmp_path / "ca.pem"),
        "--tls-cert",
        str(tmp_path / "node.pem"),
        "--tls-key",
        str(tmp_path / "node.pem"),
    ]
    other = trustme.CA().issue_cert("127.0.0.1")
    other.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "other.pem"))
    wrong = [
        "--tls-ca",
        str(tmp_path / "ca.pem"),
        "--tls-cert",
        str(tmp_path / "other.pem"),
        "--tls-key",
        str(tmp_path / "other.pem"),
    ]
    with trio.fail_after(60):
        async with open_process_cluster(
            3, base_dir=str(tmp_path / "c"), mem=True, extra_args=tls, start=False
        ) as cl:
            for node_id in cl.nodes:
                await cl.start(node_id, wait=False)
            c = ["--cluster", ",".join(cl.addrs)]
            r = await cli("init", *c, *tls, "--timeout", "20")
            assert r.returncode == 0, err(r)
            r = await cli("put", "secret", "s3", *c, *tls, "--timeout", "20")
            assert (r.returncode, out(r)) == (0, "OK"), err(r)
            r = await cli("get", "secret", *c, *tls)
            assert (r.returncode, out(r)) == (0, "s3")
            # Plaintext, or a certificate from another CA: refused (unreachable).
            r = await cli("get", "secret", *c, "--timeout", "1")
            assert r.returncode == 3
            r = await cli("get", "secret", *c, *wrong, "--timeout", "1")
            assert r.returncode == 3
