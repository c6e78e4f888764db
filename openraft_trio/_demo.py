"""``python -m openraft_trio demo``: a guided tour of a 3-node cluster, in one process.

The demo runs real ``open_raft`` nodes wired by the in-process ``Router`` of
:mod:`openraft_trio.testing`, on trio's real clock, and narrates what happens:

1. a leader is elected;
2. ``writes`` keys are written by several concurrent clients (throughput is shown);
3. a key is read linearizably, with ``READ_INDEX`` and with ``LEASE_READ``;
4. the leader crashes; a new one is elected and more keys are written;
5. the old leader restarts (with its log, a fresh state machine) and catches up;
6. every acknowledged write is checked on every node, and the state machines compared.

Any failed check raises :class:`DemoFailed`; :func:`run_demo` turns it into a message and
``SystemExit(1)``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import attrs
import trio

from ._config import Config
from ._core.raft import Raft
from ._errors import ForwardToLeader, RaftError
from ._types import LogId, ReadPolicy
from .kv import Set
from .testing import Cluster, open_cluster

NODES = 3
# The whole tour normally takes about a second; anything near this is a hang.
DEADLINE = 30.0
# How often one write may be retried after ForwardToLeader before the demo gives up.
MAX_RETRIES = 50
# Phase-2 writes also overwrite this many phase-1 keys, so the restarted node must replay
# updates, not only inserts.
OVERWRITES = 10


class DemoFailed(Exception):
    """A check of the demo failed; the message says which."""


@attrs.frozen
class DemoOptions:
    seed: int = 0
    writes: int = 200
    clients: int = 8


class Reporter:
    """Prints narration lines stamped with the time since the demo started."""

    def __init__(self) -> None:
        self._t0 = trio.current_time()

    def elapsed_ms(self) -> float:
        return (trio.current_time() - self._t0) * 1000.0

    def step(self, title: str) -> None:
        print(f"\n== {title}", flush=True)

    def say(self, message: str) -> None:
        print(f"[{self.elapsed_ms():8.1f} ms] {message}", flush=True)


@attrs.define
class WriteStats:
    """What a batch of concurrent writes achieved."""

    acknowledged: int = 0
    retries: int = 0
    max_index: int = -1
    seconds: float = 0.0

    @property
    def per_second(self) -> float:
        return self.acknowledged / self.seconds if self.seconds > 0 else float("inf")


# -- entry point ------------------------------------------------------------------------------


def run_demo(options: DemoOptions) -> None:
    """Run the tour; on a failed check print why and raise ``SystemExit(1)``."""
    try:
        trio.run(_main, options)
    except BaseException as exc:  # sorted below; anything unexpected is re-raised
        failures = _demo_failures(exc)
        if failures is None:
            raise
        for failure in failures:
            print(f"\nDEMO FAILED: {failure}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None


def _demo_failures(exc: BaseException) -> list[str] | None:
    """Messages for an expected failure (possibly inside exception groups), else None."""
    if isinstance(exc, BaseExceptionGroup):
        messages: list[str] = []
        for inner in exc.exceptions:
            found = _demo_failures(inner)
            if found is None:
                return None
            messages.extend(found)
        return messages
    if isinstance(exc, DemoFailed):
        return [str(exc)]
    if isinstance(exc, RaftError):
        return [f"{type(exc).__name__}: {exc}"]
    if isinstance(exc, trio.TooSlowError):
        return [f"the demo did not finish within {DEADLINE:.0f}s (a hang?)"]
    return None


async def _main(options: DemoOptions) -> None:
    report = Reporter()
    config = Config(cluster_name="demo")
    report.step(f"Starting {NODES} nodes in one process (seed {options.seed})")
    report.say(
        f"election timeout {config.election_timeout_min * 1000:.0f}-"
        f"{config.election_timeout_max * 1000:.0f} ms, heartbeat every "
        f"{config.heartbeat_interval * 1000:.0f} ms, leader lease {config.lease * 1000:.0f} ms"
    )
    with trio.fail_after(DEADLINE):
        async with open_cluster(NODES, config=config, seed=options.seed) as cluster:
            await _tour(cluster, report, options)
    print("\nDemo finished: every check passed.", flush=True)


async def _tour(cluster: Cluster, report: Reporter, options: DemoOptions) -> None:
    acked: dict[str, str] = {}

    leader = await _elect_first_leader(cluster, report)

    report.step(f"Writing {options.writes} keys from {options.clients} concurrent clients")
    first = [(_key(i), f"value-{i}") for i in range(options.writes)]
    await _write_and_report(cluster, report, first, options.clients, acked)

    report.step("Linearizable reads")
    await _linearizable_reads(cluster, report, leader, first[-1][0], acked)

    report.step(f"Crashing the leader, node {leader}")
    new_leader = await _crash_leader(cluster, report, leader)

    more = max(1, options.writes // 2)
    updated = [(_key(i), f"value-{i}-updated") for i in range(min(OVERWRITES, options.writes))]
    added = [(_key(i), f"value-{i}") for i in range(options.writes, options.writes + more)]
    report.step(f"Writing {len(added)} new keys and updating {len(updated)} on node {new_leader}")
    await _write_and_report(cluster, report, updated + added, options.clients, acked)

    report.step(f"Restarting node {leader} (same log, empty state machine)")
    await _restart_and_catch_up(cluster, report, leader, new_leader)

    report.step("Verifying")
    _verify(cluster, report, acked)

    report.step("Final status")
    _print_status(cluster)


def _key(i: int) -> str:
    return f"key-{i:05d}"


# -- steps ------------------------------------------------------------------------------------


async def _elect_first_leader(cluster: Cluster, report: Reporter) -> int:
    report.say("node 1 initialized the cluster with voters {1, 2, 3}; waiting for a leader")
    leader = await cluster.wait_for_leader(timeout=10.0)
    metrics = cluster.nodes[leader].metrics
    report.say(
        f"node {leader} is leader of term {metrics.current_term} "
        f"(its blank entry committed at index {_index(metrics.committed)})"
    )
    return leader


async def _write_and_report(
    cluster: Cluster,
    report: Reporter,
    items: Sequence[tuple[str, str]],
    clients: int,
    acked: dict[str, str],
) -> WriteStats:
    stats = await _write_concurrently(cluster, items, clients, acked)
    report.say(
        f"{stats.acknowledged} writes acknowledged in {stats.seconds * 1000:.1f} ms "
        f"({stats.per_second:,.0f} writes/s), last at log index {stats.max_index}"
    )
    if stats.retries:
        report.say(f"{stats.retries} writes were retried after ForwardToLeader")
    if stats.acknowledged != len(items):
        raise DemoFailed(f"only {stats.acknowledged} of {len(items)} writes were acknowledged")
    return stats


async def _write_concurrently(
    cluster: Cluster, items: Sequence[tuple[str, str]], clients: int, acked: dict[str, str]
) -> WriteStats:
    """Write ``items`` (distinct keys) from ``clients`` tasks; record what was acked."""
    stats = WriteStats()
    started = trio.current_time()
    async with trio.open_nursery() as nursery:
        for client in range(clients):
            share = items[client::clients]
            if share:
                nursery.start_soon(_client_task, cluster, share, acked, stats)
    stats.seconds = trio.current_time() - started
    return stats


async def _client_task(
    cluster: Cluster, items: Sequence[tuple[str, str]], acked: dict[str, str], stats: WriteStats
) -> None:
    for key, value in items:
        index = await _write_one(cluster, key, value, stats)
        stats.max_index = max(stats.max_index, index)
        acked[key] = value
        stats.acknowledged += 1


async def _write_one(cluster: Cluster, key: str, value: str, stats: WriteStats) -> int:
    """Write ``key`` on the current leader, retrying on ``ForwardToLeader``.

    A write whose leader stepped down after appending it has an unknown outcome; writing the
    same value again is safe because ``Set`` is idempotent.
    """
    for _ in range(MAX_RETRIES):
        leader = await cluster.wait_for_leader(timeout=10.0)
        try:
            response = await cluster.nodes[leader].client_write(Set(key, value))
        except ForwardToLeader:
            stats.retries += 1
            await trio.sleep(0.01)
            continue
        return response.log_id.index
    raise DemoFailed(f"write of {key!r} still refused after {MAX_RETRIES} tries")


async def _linearizable_reads(
    cluster: Cluster, report: Reporter, leader: int, key: str, acked: dict[str, str]
) -> None:
    for policy in (ReadPolicy.READ_INDEX, ReadPolicy.LEASE_READ):
        started = trio.current_time()
        read_log_id = await cluster.nodes[leader].ensure_linearizable(policy)
        value = cluster.state_machines[leader].get(key)
        took = (trio.current_time() - started) * 1000.0
        report.say(
            f"{policy.name:<10} on node {leader}: {key} = {value!r} "
            f"(read log id {read_log_id}, confirmed in {took:.2f} ms)"
        )
        if value != acked[key]:
            raise DemoFailed(f"{policy.name} read {value!r}, but {acked[key]!r} was acknowledged")
    follower = _followers(cluster, leader)[0]
    try:
        await cluster.nodes[follower].ensure_linearizable()
    except ForwardToLeader as exc:
        report.say(f"the same read on follower node {follower} is refused: {exc}")
    else:
        raise DemoFailed(f"follower node {follower} served a linearizable read")


async def _crash_leader(cluster: Cluster, report: Reporter, leader: int) -> int:
    started = trio.current_time()
    await cluster.crash(leader)
    report.say(f"node {leader} crashed (its log store survives for the restart)")
    new_leader = await cluster.wait_for_leader(timeout=10.0)
    took = (trio.current_time() - started) * 1000.0
    term = cluster.nodes[new_leader].metrics.current_term
    report.say(
        f"node {new_leader} is leader of term {term}, {took:.0f} ms after the crash "
        f"(followers honour the old leader's lease first, then pre-vote and vote)"
    )
    return new_leader


async def _restart_and_catch_up(
    cluster: Cluster, report: Reporter, old_leader: int, leader: int
) -> None:
    target = _index(cluster.nodes[leader].metrics.committed)
    started = trio.current_time()
    node: Raft = await cluster.restart(old_leader)
    metrics = node.metrics
    report.say(
        f"node {old_leader} is back as {metrics.state.value} of term {metrics.current_term} "
        f"with {_index(metrics.last_log_id) + 1} log entries; cluster committed up to {target}"
    )
    await node.wait(10.0).applied_index_at_least(target)
    took = (trio.current_time() - started) * 1000.0
    report.say(f"node {old_leader} replicated and re-applied up to index {target} in {took:.0f} ms")
    await cluster.wait_applied(target, timeout=10.0)
    report.say(f"every node has applied index {target}")


def _verify(cluster: Cluster, report: Reporter, acked: dict[str, str]) -> None:
    problems: list[str] = []
    for node_id in sorted(cluster.state_machines):
        data = cluster.state_machines[node_id].data
        wrong = sorted(k for k, v in acked.items() if data.get(k) != v)
        if wrong:
            problems.append(
                f"node {node_id}: {len(wrong)} acknowledged writes missing or wrong, "
                f"e.g. {wrong[0]} = {data.get(wrong[0])!r}, expected {acked[wrong[0]]!r}"
            )
        else:
            report.say(f"node {node_id}: all {len(acked)} acknowledged writes present and correct")
    problems.extend(_compare_replicas(cluster))
    if problems:
        raise DemoFailed("; ".join(problems))
    reference = cluster.state_machines[min(cluster.state_machines)]
    report.say(
        f"all {len(cluster.state_machines)} state machines are identical: "
        f"{len(reference.data)} keys, applied up to {reference.last_applied}"
    )


def _compare_replicas(cluster: Cluster) -> list[str]:
    machines = cluster.state_machines
    ids = sorted(machines)
    reference = machines[ids[0]]
    problems: list[str] = []
    for node_id in ids[1:]:
        other = machines[node_id]
        if other.last_applied != reference.last_applied:
            problems.append(
                f"node {node_id} applied up to {other.last_applied}, "
                f"node {ids[0]} up to {reference.last_applied}"
            )
        elif other.data != reference.data:
            problems.append(f"node {node_id} and node {ids[0]} differ at the same applied log id")
    return problems


def _print_status(cluster: Cluster) -> None:
    header = ("node", "state", "term", "last log", "committed", "applied", "leader")
    rows = [header]
    for node_id in cluster.node_ids:
        m = cluster.nodes[node_id].metrics
        rows.append(
            (
                str(node_id),
                m.state.value,
                str(m.current_term),
                _fmt(m.last_log_index),
                _fmt(None if m.committed is None else m.committed.index),
                _fmt(None if m.last_applied is None else m.last_applied.index),
                _fmt(m.current_leader),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for n, row in enumerate(rows):
        print("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            print("  " + "  ".join("-" * w for w in widths))


# -- helpers ----------------------------------------------------------------------------------


def _followers(cluster: Cluster, leader: int) -> list[int]:
    return [n for n in cluster.node_ids if n != leader]


def _index(log_id: LogId | None) -> int:
    """The index of ``log_id``; -1 for an empty log."""
    return -1 if log_id is None else log_id.index


def _fmt(value: int | None) -> str:
    return "-" if value is None else str(value)
