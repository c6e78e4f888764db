"""``python -m openraft_trio demo``: a 3-node cluster as three OS processes on loopback.

Each node is ``python -m openraft_trio serve`` with a durable log and state machine in a
temporary directory (:mod:`openraft_trio.kv._process_cluster`). The demo talks to them with
:class:`~openraft_trio.kv.KvClient` over TCP and narrates:

1. the processes start and a leader is elected;
2. ``writes`` keys are written by ``clients`` concurrent clients, with a progress display;
3. the leader process is killed with SIGKILL; the demo shows how long the election of a
   new leader took (from the kill to the first write the new leader acknowledged) and
   writes more keys, some of them overwrites;
4. the killed node restarts from its data directory and catches up; the time is shown;
5. every acknowledged write is read back from every node, the status table is printed;
6. every process is killed and the directory removed.

Any failed check raises :class:`DemoFailed`; :func:`run_demo` prints it and exits 1.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Iterable

import attrs
import trio

from ._errors import RaftError
from .kv import AmbiguousOutcome, KvClient
from .kv._process_cluster import ProcessCluster, ProcessClusterError, open_process_cluster
from .kv._status import format_status_table

NODES = 3
DEADLINE = 55.0  # the demo normally takes a few seconds; anything near a minute is a hang
OVERWRITES = 10


class DemoFailed(Exception):
    """A check of the demo failed; the message says which."""


@attrs.frozen
class DemoOptions:
    writes: int = 1000
    clients: int = 32


class Reporter:
    """Prints narration lines stamped with the time since the demo started."""

    def __init__(self) -> None:
        self._t0 = trio.current_time()
        self.tty = sys.stdout.isatty()

    def step(self, title: str) -> None:
        print(f"\n== {title}", flush=True)

    def say(self, message: str) -> None:
        elapsed = trio.current_time() - self._t0
        print(f"[{elapsed:6.2f} s] {message}", flush=True)

    def progress(self, done: int, total: int) -> None:
        """A progress bar on a terminal; a line per quarter otherwise."""
        if self.tty:
            width = 30
            filled = width * done // total
            end = "\n" if done == total else ""
            print(
                f"\r  [{'#' * filled}{'.' * (width - filled)}] {done}/{total}", end=end, flush=True
            )
        elif done == total or done % max(1, total // 4) == 0:
            print(f"  {done}/{total} writes acknowledged", flush=True)


def run_demo(options: DemoOptions) -> None:
    """Run the demo; on a failed check print why and raise ``SystemExit(1)``."""
    try:
        trio.run(_main, options)
    except (DemoFailed, RaftError, ProcessClusterError) as e:
        print(f"\nDEMO FAILED: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
    except trio.TooSlowError:
        print(f"\nDEMO FAILED: not finished within {DEADLINE:.0f}s", file=sys.stderr)
        raise SystemExit(1) from None


async def _main(options: DemoOptions) -> None:
    report = Reporter()
    with tempfile.TemporaryDirectory(prefix="openraft-trio-demo-") as base:
        report.step(f"Starting {NODES} node processes (data in {base})")
        with trio.fail_after(DEADLINE):
            async with open_process_cluster(NODES, base_dir=base, cluster_name="demo") as cl:
                for node in cl.nodes.values():
                    pid = node.process.pid if node.process else "?"
                    report.say(f"node {node.node_id}: pid {pid}, listening on {node.addr}")
                await _tour(cl, report, options)
        report.say("every node process stopped; temporary directory removed")
    print("\nDemo finished: every check passed.", flush=True)


async def _tour(cl: ProcessCluster, report: Reporter, options: DemoOptions) -> None:
    acked: dict[str, str] = {}
    t0 = trio.current_time()
    leader = await cl.initialize()
    report.say(
        f"cluster initialized; node {leader} elected leader in "
        f"{(trio.current_time() - t0) * 1000:.0f} ms"
    )

    async with cl.client() as kv:
        report.step(f"Writing {options.writes} keys from {options.clients} concurrent clients")
        items = [(f"key-{i:05d}", f"value-{i}") for i in range(options.writes)]
        await _write(kv, report, items, options.clients, acked)

        report.step(f"Killing the leader, node {leader}, with SIGKILL")
        killed = leader
        t_kill = trio.current_time()
        await cl.kill(killed)
        report.say(f"node {killed} killed (it had acknowledged {len(acked)} writes)")
        await _put(kv, "after-failover", "first write of the new leader", acked)
        election_ms = (trio.current_time() - t_kill) * 1000
        leader = await cl.wait_leader(exclude=killed)
        report.say(
            f"node {leader} is the new leader: {election_ms:.0f} ms from the kill to "
            "its first acknowledged write"
        )
        more = [(f"key-{i:05d}", f"value-{i}-v2") for i in range(OVERWRITES)]
        more += [
            (f"key-{i:05d}", f"value-{i}")
            for i in range(options.writes, options.writes + options.writes // 3)
        ]
        await _write(kv, report, more, options.clients, acked)

        report.step(f"Restarting node {killed} from its data directory")
        t_start = trio.current_time()
        await cl.start(killed)
        target = (await cl.statuses())[leader]["last_log_index"]
        await _wait_applied(cl, killed, target)
        report.say(
            f"node {killed} restarted and caught up to log index {target} in "
            f"{(trio.current_time() - t_start) * 1000:.0f} ms"
        )

        report.step("Checking every acknowledged write on every node")
        await _verify(cl, kv, report, acked)

    report.step("Cluster status")
    statuses = await cl.statuses()
    print(format_status_table([statuses[i] for i in sorted(statuses)]), flush=True)
    if len(statuses) != NODES:
        raise DemoFailed(f"only {len(statuses)} of {NODES} nodes answered status")


async def _put(kv: KvClient, key: str, value: str, acked: dict[str, str]) -> None:
    try:
        await kv.put(key, value)
    except AmbiguousOutcome:
        # The leader may have died after appending it: not acknowledged; try once more.
        await kv.put(key, value)
    acked[key] = value


async def _write(
    kv: KvClient,
    report: Reporter,
    items: list[tuple[str, str]],
    clients: int,
    acked: dict[str, str],
) -> None:
    t0 = trio.current_time()
    done = 0
    queue = iter(items)

    async def client() -> None:
        nonlocal done
        for key, value in queue:
            await _put(kv, key, value, acked)
            done += 1
            report.progress(done, len(items))

    async with trio.open_nursery() as nursery:
        for _ in range(clients):
            nursery.start_soon(client)
    seconds = trio.current_time() - t0
    report.say(
        f"{len(items)} writes acknowledged in {seconds * 1000:.0f} ms "
        f"({len(items) / seconds:,.0f} writes/s, fsync'ed on a majority)"
    )


async def _wait_applied(cl: ProcessCluster, node_id: int, index: int) -> None:
    with trio.move_on_after(20):
        while True:
            status = (await cl.statuses()).get(node_id)
            if status is not None and (status["applied"] or 0) >= index:
                return
            await trio.sleep(0.02)
    raise DemoFailed(f"node {node_id} did not apply log index {index} within 20 s")


async def _verify(
    cl: ProcessCluster, kv: KvClient, report: Reporter, acked: dict[str, str]
) -> None:
    await cl.wait_converged()
    for node_id, node in cl.nodes.items():
        missing = await _missing(kv, node.addr, acked.items())
        if missing:
            raise DemoFailed(
                f"node {node_id} lacks {len(missing)} acknowledged writes, e.g. {missing[:3]}"
            )
        report.say(f"node {node_id}: all {len(acked)} acknowledged writes present")
    value = await kv.get("after-failover")
    if value != acked["after-failover"]:
        raise DemoFailed(f"linearizable read returned {value!r}")
    report.say("a linearizable read through the leader agrees")


async def _missing(kv: KvClient, addr: str, items: Iterable[tuple[str, str]]) -> list[str]:
    """Keys whose value on the node at ``addr`` (read locally) is not the acked one."""
    missing: list[str] = []
    pending = list(items)

    async def reader() -> None:
        while pending:
            key, value = pending.pop()
            if await kv.get(key, stale=True, addr=addr) != value:
                missing.append(key)

    async with trio.open_nursery() as nursery:
        for _ in range(16):
            nursery.start_soon(reader)
    return sorted(missing)
