"""``Raft.statistics()``: the numbers a node keeps for monitoring (latency histograms,
replication lag, transport counters), and their Prometheus export
(``openraft_trio.prometheus``), read in process and over loopback HTTP."""

from __future__ import annotations

import json
import logging
import sys

import pytest
import trio

import openraft_trio as raft
from openraft_trio.kv import Set
from openraft_trio.observability import (
    EVENTS,
    LATENCY_BUCKETS,
    HistogramSnapshot,
    JsonLogFormatter,
    RaftStatistics,
)
from openraft_trio.storage import run_inline
from openraft_trio.testing import open_cluster

prometheus_client = pytest.importorskip("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from openraft_trio.prometheus import RaftCollector, metrics_registry, serve_metrics  # noqa: E402


def test_histogram_buckets_are_upper_bounds_inclusive() -> None:
    from openraft_trio._statistics import LatencyHistogram

    histogram = LatencyHistogram()
    histogram.observe(0.001)  # on a bound: that bucket
    histogram.observe(0.0011, 3)  # a batch of three
    histogram.observe(100.0)  # above every bound: the last bucket
    snap = histogram.snapshot()
    assert snap.count == 5
    assert snap.sum == pytest.approx(0.001 + 0.0033 + 100.0)
    assert snap.counts[LATENCY_BUCKETS.index(0.001)] == 1
    assert snap.counts[LATENCY_BUCKETS.index(0.0025)] == 3
    assert snap.counts[-1] == 1
    cumulative = snap.cumulative()
    assert cumulative[-1] == (float("inf"), 5)
    assert dict(cumulative)[0.001] == 1


async def test_statistics_count_every_write_and_show_replication_lag(autojump_clock):
    async with open_cluster(3, seed=21) as c:
        lid = await c.wait_for_leader(5)
        c.router.set_latency(0.001, 0.002)
        leader = c.nodes[lid]
        before = leader.statistics()
        await leader.client_write_many([Set(f"a{i}", i) for i in range(10)])
        for i in range(5):
            await leader.client_write(Set(f"b{i}", i))
        await c.wait_applied(leader.metrics.last_log_index)
        stats = leader.statistics()
        assert isinstance(stats, RaftStatistics)
        assert stats.metrics == leader.metrics
        assert stats.commit_latency.count - before.commit_latency.count == 15
        # A round trip to a follower (1-2 ms each way) before each commit.
        assert stats.commit_latency.sum - before.commit_latency.sum >= 15 * 0.002
        for nid in c.node_ids:
            applied = c.nodes[nid].statistics().apply_latency
            assert applied.count == c.nodes[nid].metrics.last_applied.index + 1
        assert stats.log_flush_latency is None  # MemLogStore keeps none
        assert stats.transport is None  # the Router keeps none
        assert stats.replication_lag == {n: 0 for n in c.node_ids if n != lid}

        follower = min(n for n in c.node_ids if n != lid)
        c.router.isolate(follower)
        for i in range(7):
            await leader.client_write(Set(f"c{i}", i))
        lag = leader.statistics().replication_lag
        assert lag is not None
        assert lag[follower] == 7
        assert c.nodes[follower].statistics().replication_lag is None  # not a leader


async def test_file_log_store_keeps_a_flush_latency_histogram(autojump_clock, tmp_path):
    async with open_cluster(3, seed=22, data_dir=tmp_path, run_io=run_inline) as c:
        lid = await c.wait_for_leader(5)
        await c.nodes[lid].client_write(Set("k", 1))
        flush = c.nodes[lid].statistics().log_flush_latency
        assert isinstance(flush, HistogramSnapshot)
        assert flush.count >= 2  # the first membership, the blank entry, the write...
        assert flush.count <= c.log_stores[lid].batch_count


def scrape(registry: object) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """``{sample name: {sorted labels: value}}`` of ``registry``'s text exposition."""
    text = prometheus_client.generate_latest(registry).decode()
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = (
                sample.value
            )
    return samples


async def test_the_collector_reads_the_numbers_at_scrape_time(autojump_clock):
    async with open_cluster(3, seed=23) as c:
        lid = await c.wait_for_leader(5)
        registry = prometheus_client.CollectorRegistry()
        for nid in c.node_ids:  # several nodes, one registry: told apart by ``node``
            registry.register(RaftCollector(c.nodes[nid]))
        for i in range(4):
            await c.nodes[lid].client_write(Set(f"k{i}", i))
        await c.wait_applied(c.nodes[lid].metrics.last_log_index)
        samples = scrape(registry)
        for nid in c.node_ids:
            m = c.nodes[nid].metrics
            node = (("node", str(nid)),)
            assert samples["openraft_trio_term"][node] == m.current_term
            assert samples["openraft_trio_committed_index"][node] == m.committed.index
            assert samples["openraft_trio_applied_index"][node] == m.last_applied.index
            assert samples["openraft_trio_last_log_index"][node] == m.last_log_index
            assert samples["openraft_trio_current_leader"][node] == lid
            assert samples["openraft_trio_snapshot_index"][node] == -1
            state = samples["openraft_trio_server_state"]
            assert state[(("node", str(nid)), ("state", m.state.name.lower()))] == 1
            assert sum(v for k, v in state.items() if k[0] == node[0]) == 1
        leader = (("node", str(lid)),)
        assert samples["openraft_trio_commit_latency_seconds_count"][leader] == 4
        assert samples["openraft_trio_commit_latency_seconds_bucket"][(("le", "+Inf"), *leader)] == 4
        lag = samples["openraft_trio_replication_lag_entries"]
        assert lag == {(("node", str(lid)), ("target", str(t))): 0 for t in c.node_ids if t != lid}
        # Read at scrape time: one more write shows at once.
        await c.nodes[lid].client_write(Set("more", 1))
        assert scrape(registry)["openraft_trio_commit_latency_seconds_count"][leader] == 5


async def http_get(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(request)
        data = b""
        while chunk := await stream.receive_some(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


async def test_serve_metrics_answers_get_metrics_over_loopback():
    # Real sockets and trio's real clock: a loopback round trip, no sleeps.
    with trio.fail_after(20):
        async with open_cluster(1, seed=24) as c, trio.open_nursery() as nursery:
            await c.wait_for_leader(5)
            port = await nursery.start(
                serve_metrics, metrics_registry(c.nodes[1]), "127.0.0.1", 0
            )
            status, headers, body = await http_get(
                port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
            )
            assert status == 200
            assert headers["Content-Type"].startswith("text/plain")
            assert int(headers["Content-Length"]) == len(body)
            names = {f.name for f in text_string_to_metric_families(body.decode())}
            assert {"openraft_trio_term", "openraft_trio_commit_latency_seconds"} <= names
            assert "process_cpu_seconds" in names or sys.platform != "linux"
            assert (await http_get(port, b"GET /other HTTP/1.1\r\n\r\n"))[0] == 404
            assert (await http_get(port, b"POST /metrics HTTP/1.1\r\n\r\n"))[0] == 405
            assert (await http_get(port, b"nonsense\r\n\r\n"))[0] == 400
            status, _, body = await http_get(port, b"HEAD /metrics HTTP/1.0\r\n\r\n")
            assert (status, body) == (200, b"")
            nursery.cancel_scope.cancel()


def test_json_log_formatter_writes_one_object_per_record() -> None:
    record = logging.LogRecord("openraft_trio.election", logging.INFO, "f", 1, "won", (), None)
    record.event = "election.won"
    record.node_id = 1
    record.votes = [1, 2]
    record.when = raft.LogId(raft.LeaderId(1, 1), 3)  # not JSON: written as str
    line = JsonLogFormatter().format(record)
    assert "\n" not in line
    out = json.loads(line)
    assert out["level"] == "INFO"
    assert out["logger"] == "openraft_trio.election"
    assert out["event"] == "election.won"
    assert out["message"] == "won"
    assert out["node_id"] == 1
    assert out["votes"] == [1, 2]
    assert out["when"] == str(record.when)
    assert out["time"].endswith("+00:00")
    plain = json.loads(JsonLogFormatter().format(logging.makeLogRecord({"msg": "x"})))
    assert plain["event"] is None


def test_the_event_catalogue_is_consistent_and_documented() -> None:
    from pathlib import Path

    docs = (Path(__file__).parents[2] / "docs" / "observability.md").read_text()
    reserved = set(logging.makeLogRecord({}).__dict__) | {"message", "event"}
    for name, event in EVENTS.items():
        assert event.name == name
        assert event.logger == "openraft_trio." + name.split(".")[0]
        assert not set(event.fields) & reserved, name
        assert "node_id" in event.fields
        row = next(line for line in docs.splitlines() if line.startswith(f"| `{name}` |"))
        assert f"| {logging.getLevelName(event.level)} |" in row
        assert row.endswith(" | " + ", ".join(f"`{f}`" for f in event.fields) + " |")
