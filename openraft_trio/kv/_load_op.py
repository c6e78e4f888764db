"""The ``bench`` client-API op, a load generator built into the service (off unless the
node is started with ``serve --bench-op``): write load generated inside the leader's
process, so an operator or a benchmark can measure replication and storage without a
client connection in the way (the way PySyncObj, which has no client protocol, is
measured). A product feature, opt-in, with bounded arguments; ``benchmarks/bench_tcp.py``
and ``bench_peers.py`` use it through a real ``serve`` process."""

from __future__ import annotations

from typing import Any

import trio

from .._core.handle import Raft
from .._errors import InvalidRequest, RaftError
from .._percentile import percentile
from ._state_machine import Set

MAX_CLIENTS = 4096
MAX_SECONDS = 60.0


async def run_write_load(
    raft: Raft, clients: Any, duration: Any, warmup: Any, value_size: Any
) -> dict[str, Any]:
    """``clients`` writers keep one ``Set`` each in flight for ``warmup + duration``
    seconds; latencies of the writes issued after the warm-up are reported (µs)."""
    if type(clients) is not int or not 1 <= clients <= MAX_CLIENTS:
        raise InvalidRequest(f"clients must be an int in 1..{MAX_CLIENTS}")
    for name, value in (("duration", duration), ("warmup", warmup)):
        if type(value) not in (int, float) or not 0 <= value <= MAX_SECONDS:
            raise InvalidRequest(f"{name} must be a number of seconds in 0..{MAX_SECONDS}")
    if type(value_size) is not int or not 0 <= value_size <= 1 << 20:
        raise InvalidRequest("value_size must be an int in 0..1048576")
    payload = "x" * value_size
    start = trio.current_time()
    measure_from = start + warmup
    end = measure_from + duration
    latencies: list[float] = []
    errors: list[str] = []

    async def writer(w: int) -> None:
        i = 0
        while not errors:
            t0 = trio.current_time()
            if t0 >= end:
                return
            try:
                await raft.client_write(Set(f"bench-{w}-{i % 1024}", payload))
            except RaftError as e:
                errors.append(f"{type(e).__name__}: {e}")
                return
            if t0 >= measure_from:
                latencies.append(trio.current_time() - t0)
            i += 1

    async with trio.open_nursery() as nursery:
        for w in range(clients):
            nursery.start_soon(writer, w)
    latencies.sort()
    return {
        "ops": len(latencies),
        "seconds": float(duration),
        "ops_per_s": len(latencies) / duration if duration else 0.0,
        "p50_us": percentile(latencies, 50) * 1e6 if latencies else 0.0,
        "p99_us": percentile(latencies, 99) * 1e6 if latencies else 0.0,
        "errors": errors[:5],
    }
