"""Does one large ``put`` cost the leadership? A measurement, not a benchmark of speed.

Starts a 3-process KV cluster (``python -m openraft_trio serve`` with ``--data-dir`` and
the default election timeouts), then for each value size puts ``--puts`` values of that
size, one at a time, and reads every node's term before and after each: a term that moved
is an election the put caused. Sizes above the default ``Config.max_entry_bytes`` need
``--max-entry-bytes`` (the nodes refuse them otherwise).

    python benchmarks/large_values.py          # 256 KiB, 512 KiB, just under the 1 MiB limit
    python benchmarks/large_values.py --sizes 4000000,8000000,16000000 \
        --max-entry-bytes 20000000             # past the default limit
"""

from __future__ import annotations

import argparse
import tempfile
import time

import trio

from openraft_trio import RaftError
from openraft_trio.testing.processes import ProcessCluster, open_process_cluster


async def terms(cluster: ProcessCluster) -> dict[int, int]:
    return {i: int(s["term"]) for i, s in (await cluster.statuses()).items()}


async def measure(sizes: list[int], puts: int, max_entry_bytes: int | None) -> None:
    extra = ["--max-entry-bytes", str(max_entry_bytes)] if max_entry_bytes else []
    with tempfile.TemporaryDirectory() as base:
        async with open_process_cluster(3, base_dir=base, extra_args=extra) as cluster:
            await cluster.initialize()
            await cluster.wait_converged()
            header = ("value bytes", "puts", "elections", "failed", "put ms (max)")
            print("{:>12} {:>5} {:>9} {:>8} {:>12}".format(*header))
            async with cluster.client(timeout=30.0, rpc_timeout=20.0) as kv:
                for size in sizes:
                    elections = failed = 0
                    slowest = 0.0
                    for i in range(puts):
                        before = await terms(cluster)
                        started = time.perf_counter()
                        try:
                            await kv.put(f"big-{size}-{i}", b"x" * size)
                        except RaftError as e:  # refused (too large), or ambiguous
                            failed += 1
                            print(f"  put failed: {type(e).__name__}: {e}")
                        slowest = max(slowest, time.perf_counter() - started)
                        await cluster.wait_converged()
                        after = await terms(cluster)
                        if max(after.values()) != max(before.values()):
                            elections += 1
                    row = (size, puts, elections, failed, f"{slowest * 1000:.0f}")
                    print("{:>12} {:>5} {:>9} {:>8} {:>12}".format(*row))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        default="262144,524288,1048000",
        help="value sizes in bytes, comma-separated (default 262144,524288,1048000: the "
        "last just under the default max_entry_bytes)",
    )
    parser.add_argument("--puts", type=int, default=5, help="puts per size (5)")
    parser.add_argument("--max-entry-bytes", type=int, help="the nodes' --max-entry-bytes")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    trio.run(measure, sizes, args.puts, args.max_entry_bytes)


if __name__ == "__main__":
    main()
