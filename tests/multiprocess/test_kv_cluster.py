"""The KV service as real OS processes on loopback (``python -m openraft_trio serve``).

Real processes and sockets run on the real clock: every wait is on a condition with a
generous bound (a hang fails the test), and nothing asserts on time.
"""

from __future__ import annotations

import random
import signal
from pathlib import Path

import pytest
import trio

from openraft_trio.kv import AmbiguousOutcome, KvClient
from openraft_trio.testing.processes import ProcessCluster, open_process_cluster

from ._fault_rounds import Increments, kill_and_pause_rounds

pytestmark = pytest.mark.slow

BOUND = 60.0


async def _write_all(kv: KvClient, items: dict[str, str], clients: int = 8) -> None:
    pending = list(items.items())

    async def writer() -> None:
        while pending:
            key, value = pending.pop()
            try:
                await kv.put(key, value)
            except AmbiguousOutcome:
                # Sent to a leader that died: it may or may not have been applied. A put
                # of the same value is safe to repeat here (no one else writes the key).
                await kv.put(key, value)

    async with trio.open_nursery() as nursery:
        for _ in range(clients):
            nursery.start_soon(writer)


async def _assert_on_every_node(
    cl: ProcessCluster, kv: KvClient, items: dict[str, str], nodes: list[int] | None = None
) -> None:
    await cl.wait_converged()
    for node_id in nodes or list(cl.nodes):
        addr = cl.nodes[node_id].addr
        found = {k: await kv.get(k, stale=True, addr=addr) for k in items}
        assert found == items, f"node {node_id} differs"


async def test_three_processes_survive_kill_9_of_the_leader(tmp_path: Path) -> None:
    with trio.fail_after(BOUND):
        async with open_process_cluster(3, base_dir=str(tmp_path)) as cl:
            leader = await cl.initialize()
            async with cl.client() as kv:
                first = {f"k{i}": f"v{i}" for i in range(200)}
                await _write_all(kv, first)
                # Linearizable reads through the leader see every acknowledged write.
                assert await kv.get("k0") == "v0"
                assert await kv.get("k199") == "v199"
                assert await kv.get("absent") is None

                await cl.kill(leader, signal.SIGKILL)
                second = {f"k{i}": f"w{i}" for i in range(0, 300, 2)}
                await _write_all(kv, second)
                new_leader = await cl.wait_leader(exclude=leader)
                assert new_leader != leader

                await cl.start(leader)
                acked = first | second
                await _assert_on_every_node(cl, kv, acked)
                statuses = await cl.statuses()
                assert {s["state"] for s in statuses.values()} == {"LEADER", "FOLLOWER"}
                assert len({s["term"] for s in statuses.values()}) == 1


async def test_compare_and_swap_and_delete_over_tcp(tmp_path: Path) -> None:
    with trio.fail_after(BOUND):
        async with open_process_cluster(3, base_dir=str(tmp_path), mem=True) as cl:
            await cl.initialize()
            async with cl.client() as kv:
                assert await kv.cas("c", None, 1) == (True, 1)
                assert await kv.cas("c", None, 2) == (False, 1)
                assert await kv.put("c", {"nested": [1, 2]}) == 1
                assert await kv.get("c") == {"nested": [1, 2]}
                assert await kv.delete("c") == {"nested": [1, 2]}
                assert await kv.get("c") is None


async def test_membership_change_over_tcp(tmp_path: Path) -> None:
    with trio.fail_after(BOUND):
        async with open_process_cluster(3, base_dir=str(tmp_path)) as cl:
            leader = await cl.initialize()
            async with cl.client() as kv:
                items = {f"m{i}": str(i) for i in range(50)}
                await _write_all(kv, items)
                node4 = cl.add_node(4)
                await cl.start(4)
                await kv.add_learner(4, node4.addr)
                # Replace a follower with the new node: joint consensus, then {leader,x,4}.
                follower = next(i for i in (1, 2, 3) if i != leader)
                voters = sorted({1, 2, 3, 4} - {follower})
                await kv.change_membership(voters)
                status = await kv.status(cl.nodes[leader].addr)
                assert status["voters"] == voters
                assert not status["joint"]
                await kv.put("after", "change")
                await _assert_on_every_node(cl, kv, items | {"after": "change"}, voters)


async def test_snapshot_streams_to_a_new_learner_over_tcp(tmp_path: Path) -> None:
    with trio.fail_after(BOUND):
        async with open_process_cluster(
            3, base_dir=str(tmp_path), extra_args=["--snapshot-every", "40", "--keep-logs", "0"]
        ) as cl:
            leader = await cl.initialize()
            async with cl.client() as kv:
                items = {f"s{i}": "x" * 200 + str(i) for i in range(300)}
                await _write_all(kv, items)
                with trio.fail_after(20):
                    while (await kv.status(cl.nodes[leader].addr))["purged"] is None:
                        await kv.put("tick", "tock")  # a snapshot is built past the policy
                        await trio.sleep(0.05)
                node4 = cl.add_node(4)
                await cl.start(4)
                await kv.add_learner(4, node4.addr)
                status = await kv.status(node4.addr)
                # Its log starts after the leader's purge point: it got a snapshot.
                assert status["snapshot"] is not None
                assert status["state"] == "LEARNER"
                await _assert_on_every_node(cl, kv, items, [4])


@pytest.mark.parametrize("seed", [1, 2])
async def test_writes_survive_a_schedule_of_kills_and_pauses(tmp_path: Path, seed: int) -> None:
    """Clients keep writing while, round after round, a random node (often the leader) is
    SIGKILLed and restarted, or SIGSTOPped (a silent peer with open connections) and
    resumed. Every acknowledged write must be on every node at the end; a write whose
    outcome was reported unknown may or may not be."""
    rng = random.Random(seed)
    acked: dict[str, str] = {}
    unknown: dict[str, str] = {}
    with trio.fail_after(120):
        async with open_process_cluster(3, base_dir=str(tmp_path)) as cl:
            await cl.initialize()
            async with cl.client(timeout=20) as kv:

                async def writer(w: int, stop: trio.Event) -> None:
                    i = 0
                    while not stop.is_set():
                        key, value = f"w{w}-{i}", f"v{i}"
                        try:
                            await kv.put(key, value)
                            acked[key] = value
                        except AmbiguousOutcome:
                            unknown[key] = value
                        i += 1

                await kill_and_pause_rounds(cl, rng, writer)
                assert len(acked) > 100
                await _assert_on_every_node(cl, kv, acked)
                for key, value in unknown.items():
                    assert await kv.get(key) in (None, value)


@pytest.mark.parametrize("seed", [3, 4])
async def test_increments_apply_exactly_once_through_kills_and_pauses(
    tmp_path: Path, seed: int
) -> None:
    """Writers increment one counter while, round after round, a node (often the leader) is
    SIGKILLed and restarted, or SIGSTOPped and resumed. Increments are not idempotent: a
    write sent again after an unknown outcome and applied twice would show. With client
    sessions every increment is sent until answered and applied once, so the counter ends
    equal to the number of acknowledged increments, and none is reported ambiguous."""
    with trio.fail_after(150):
        async with open_process_cluster(3, base_dir=str(tmp_path)) as cl:
            await cl.initialize()
            async with cl.client(timeout=30) as kv:
                increments = Increments(lambda: kv.incr("counter"))
                await kill_and_pause_rounds(cl, random.Random(seed), increments.worker)
                acked = increments.acked
                assert acked > 50
                assert increments.ambiguous == 0
                assert await kv.get("counter") == acked
                await cl.wait_converged()
                for node_id, node in cl.nodes.items():
                    found = await kv.get("counter", stale=True, addr=node.addr)
                    assert found == acked, f"node {node_id} differs"


async def test_sigterm_and_sigint_stop_a_node_cleanly(tmp_path: Path) -> None:
    with trio.fail_after(BOUND):
        async with open_process_cluster(3, base_dir=str(tmp_path)) as cl:
            leader = await cl.initialize()
            async with cl.client() as kv:
                await _write_all(kv, {"before": "stop"})
                stops = ((signal.SIGTERM, leader, 0), (signal.SIGINT, leader % 3 + 1, 130))
                for sig, node_id, status in stops:
                    await cl.kill(node_id, sig)
                    proc = cl.nodes[node_id].process
                    assert proc is not None
                    assert proc.returncode == status, cl.log_tail(node_id)
                    await cl.start(node_id)
                await _assert_on_every_node(cl, kv, {"before": "stop"})
