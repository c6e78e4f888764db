"""Observability of real ``serve`` processes: ``--log-format json`` writes one JSON object
per line with the log events, and ``--metrics-listen`` serves the Prometheus text format,
scraped here over loopback and compared with ``status``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trio

from openraft_trio.testing.processes import free_ports, open_process_cluster

pytestmark = pytest.mark.slow
prometheus_client = pytest.importorskip("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

WRITES = 12
# The client writes in a session: registering it and closing it are client writes too.
CLIENT_WRITES = WRITES + 2


async def scrape(addr: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    host, _, port = addr.rpartition(":")
    stream = await trio.open_tcp_stream(host, int(port))
    async with stream:
        await stream.send_all(b"GET /metrics HTTP/1.1\r\nHost: " + host.encode() + b"\r\n\r\n")
        data = b""
        while chunk := await stream.receive_some(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), head
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = (
                sample.value
            )
    return samples


async def test_serve_logs_json_events_and_serves_metrics(tmp_path: Path) -> None:
    metrics_ports = free_ports(3)
    metrics = {i: f"127.0.0.1:{metrics_ports[i - 1]}" for i in (1, 2, 3)}
    with trio.fail_after(90):
        async with open_process_cluster(
            3,
            base_dir=str(tmp_path),
            cluster_name="obs",
            extra_args=["--log-format", "json", "--log-level", "INFO"],
            node_args={i: ["--metrics-listen", addr] for i, addr in metrics.items()},
        ) as cl:
            leader = await cl.initialize()
            async with cl.client() as kv:
                for i in range(WRITES):
                    await kv.put(f"k{i}", str(i))
            await cl.wait_converged()
            statuses = await cl.statuses()
            scraped = {i: await scrape(addr) for i, addr in metrics.items()}

            for i, status in statuses.items():
                samples, node = scraped[i], (("node", str(i)),)
                assert samples["openraft_trio_term"][node] == status["term"]
                assert samples["openraft_trio_current_leader"][node] == status["leader"] == leader
                for name, key in (
                    ("last_log_index", "last_log_index"),
                    ("committed_index", "committed"),
                    ("applied_index", "applied"),
                ):
                    assert samples[f"openraft_trio_{name}"][node] == status[key], name
                state = (("node", str(i)), ("state", status["state"].lower()))
                assert samples["openraft_trio_server_state"][state] == 1
                # Every entry applied was counted once, from committed to applied.
                applied = samples["openraft_trio_apply_latency_seconds_count"][node]
                assert applied == status["applied"] + 1
                # The durable log store fsynced, and the transport carried frames.
                assert samples["openraft_trio_log_flush_seconds_count"][node] > 0
                received = samples["openraft_trio_transport_frames_received_total"]
                assert received[(("endpoint", "server"), ("node", str(i)))] > 0
            lead, node = scraped[leader], (("node", str(leader)),)
            assert lead["openraft_trio_commit_latency_seconds_count"][node] == CLIENT_WRITES
            bucket = lead["openraft_trio_commit_latency_seconds_bucket"]
            assert bucket[(("le", "+Inf"), *node)] == CLIENT_WRITES
            assert lead["openraft_trio_commit_latency_seconds_sum"][node] > 0
            sent = lead["openraft_trio_transport_frames_sent_total"]
            assert sent[(("endpoint", "client"), ("node", str(leader)))] > 0
            assert lead["openraft_trio_transport_connects_total"][node] >= 2
            lag = lead["openraft_trio_replication_lag_entries"]
            assert lag == {(("node", str(leader)), ("target", str(t))): 0 for t in (1, 2, 3) if t != leader}

    # Each node's output: its banner (stdout), and one JSON object per line (stderr).
    log = (tmp_path / f"node-{leader}.log").read_text().splitlines()
    (banner,) = [line for line in log if not line.startswith("{")]
    assert banner.startswith(f"node {leader} of cluster 'obs' serving on ")
    assert banner.endswith(f", metrics on http://{metrics[leader]}/metrics")
    records = [json.loads(line) for line in log if line.startswith("{")]
    assert all({"time", "level", "logger", "event", "message"} <= set(r) for r in records)
    won = [r for r in records if r["event"] == "election.won"]
    assert len(won) == 1
    assert won[0]["node_id"] == leader
    assert won[0]["logger"] == "openraft_trio.election"
    assert won[0]["level"] == "INFO"
    assert leader in won[0]["votes"]
    assert any(
        r["event"] == "role.changed" and r["role"] == "LEADER" and r["node_id"] == leader
        for r in records
    )
