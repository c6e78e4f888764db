"""Task steps per write: how many times each task of a 3-node in-process cluster runs for
one ``client_write``, counted with a Trio instrument (not timed: the count is exact and
does not depend on the machine).

``python benchmarks/task_steps.py [--writes N] [--clients N] [--json PATH]`` writes
``N`` unique keys to the leader of a fresh ``open_cluster(3)`` (the same cluster as
``bench_core``) after a warm-up, and prints the steps per write by task name
(``replication[2]`` and ``replication[3]`` count as ``replication[t]``). At 1 client this
is the hop count of ``docs/architecture.md``, "The write path, hop by hop".
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import trio
from _bench_common import bench_config

from openraft_trio.kv import Set
from openraft_trio.testing import open_cluster


class StepCounter(trio.abc.Instrument):
    """Counts task steps by task name (target ids folded into ``[t]``) while ``on``."""

    def __init__(self) -> None:
        self.counts: collections.Counter[str] = collections.Counter()
        self.on = False

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        if self.on:
            name = re.sub(r"\[\d+\]", "[t]", task.name.rsplit(".", 1)[-1])
            self.counts[name] += 1


async def count_steps(writes: int, clients: int) -> dict[str, Any]:
    counter = StepCounter()
    trio.lowlevel.add_instrument(counter)
    async with open_cluster(3, config=bench_config(False), seed=1) as cluster:
        leader = cluster.nodes[await cluster.wait_for_leader(10)]
        per_client = writes // clients

        async def client(k: int) -> None:
            for i in range(per_client):
                await leader.client_write(Set(f"c{k}-{i}", i))

        async def run_clients(first: int) -> None:
            async with trio.open_nursery() as nursery:
                for k in range(clients):
                    nursery.start_soon(client, first + k)

        await run_clients(clients)  # warm-up, not counted
        counter.on = True
        cpu = time.process_time()
        await run_clients(0)
        cpu = time.process_time() - cpu
        counter.on = False
    trio.lowlevel.remove_instrument(counter)
    total = per_client * clients
    return {
        "writes": total,
        "clients": clients,
        "steps_per_write": sum(counter.counts.values()) / total,
        "by_task": {name: n / total for name, n in counter.counts.most_common()},
        "cpu_us_per_write": cpu / total * 1e6,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=3000)
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    result = trio.run(count_steps, args.writes, args.clients)
    print(
        f"{result['writes']} writes, {result['clients']} client(s): "
        f"{result['steps_per_write']:.2f} task steps per write "
        f"({result['cpu_us_per_write']:.0f} us CPU per write, instrumented)"
    )
    for name, steps in result["by_task"].items():
        print(f"  {steps:7.2f}  {name}")
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
