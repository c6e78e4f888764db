"""A replicated object served by real OS processes (``serve --object``), called through
client sessions while nodes are killed and paused.

Real processes and sockets run on the real clock: every wait is on a condition with a
generous bound (a hang fails the test), and nothing asserts on time.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import trio

from openraft_trio.testing.processes import open_process_cluster

from ..objects._objects import Counter
from ._fault_rounds import Increments, kill_and_pause_rounds

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("seed", [3, 4])
async def test_object_calls_apply_exactly_once_through_kills_and_pauses(
    tmp_path: Path, seed: int
) -> None:
    """A Counter's ``add`` is not idempotent: a call sent again after an unknown outcome
    and applied twice would show. With client sessions (``ObjectClient``'s default, the
    durable object machine keeping the table in its snapshots) every call is sent until
    answered and applied once: the counter ends equal to the acknowledged calls, none
    ambiguous, on every node."""
    with trio.fail_after(150):
        async with open_process_cluster(
            3,
            base_dir=str(tmp_path),
            object_spec="tests.objects._objects:Counter",
            extra_args=["--snapshot-every", "50"],
        ) as cl:
            await cl.initialize()
            async with cl.object_client(Counter, timeout=30) as counter:
                increments = Increments(lambda: counter.add(1))
                await kill_and_pause_rounds(cl, random.Random(seed), increments.worker)
                acked = increments.acked
                assert acked > 50
                assert increments.ambiguous == 0
                assert await counter.get() == acked
                # Every node's object: each node in turn leads and answers the query.
                for node_id in cl.nodes:
                    while await cl.wait_leader() != node_id:
                        await counter.kv.transfer_leader(node_id)
                        await trio.sleep(0.5)
                    assert await counter.get() == acked, f"node {node_id} differs"
