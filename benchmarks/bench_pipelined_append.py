"""The TCP transport's AppendEntries pipelined two ways: reply callbacks vs a task each.

A client (this process) streams ``--appends`` AppendEntries (one 100-byte entry each) to
a peer in a child process that answers each at once, keeping ``--window`` (64) in flight,
either

* ``callback``: ``TcpNetwork.send_append_entries`` from one task, each reply a callback
  (the :class:`~openraft_trio.network.PipelinedAppend` path), or
* ``task``: a child task per request awaiting ``TcpNetwork.append_entries``, started with
  ``nursery.start`` as ``replication[t]``'s adapter does (the sender yields per request,
  so the connection's writer tends to send each frame with its own ``send_all``), or
* ``task_soon``: the same with ``nursery.start_soon`` (requests queue up between writer
  runs and are coalesced as in ``callback``: this isolates the cost of the tasks).

The two alternate, ``--repeats`` times each, in the same run and on the same connection.
It reports appends/s and the client process's CPU time per append (medians), and their
ratios. The peer is a bare framed server (handshake, then one fixed reply per request), not
a Raft node: what differs between the modes is the client side only. Run::

    python benchmarks/bench_pipelined_append.py [--appends N] [--repeats N] [--json PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import trio

from openraft_trio import (
    AppendEntriesRequest,
    AppendEntriesResponse,
    Config,
    Entry,
    LeaderId,
    LogId,
    Node,
    Normal,
    RPCError,
    RPCOption,
    Vote,
)
from openraft_trio.network import _wire as wire
from openraft_trio.network._conn import ConnectionClosed, FramedStream
from openraft_trio.network.tcp import TcpNetwork, open_tcp_network

CONFIG = Config(cluster_name="bench-pipelined")
VOTE = Vote(LeaderId(1, 1), committed=True)
OPTION = RPCOption(hard_ttl=30.0)
MODES = ("callback", "task", "task_soon")


# -- the peer (a child process) ---------------------------------------------------------------


async def _serve_one(stream: trio.SocketStream) -> None:
    conn = FramedStream(stream)
    reply = AppendEntriesResponse(VOTE, True, None)

    async def read(_nursery: trio.Nursery) -> None:
        while True:
            for frame in await conn.receive_frames():
                kind, rid, msg = wire.decode_message(frame)
                if kind == "hello":
                    ok = wire.HelloOk(msg.cluster_name, 2)
                    conn.send_nowait(wire.encode_message("hello_ok", rid, ok))
                else:
                    conn.send_nowait(wire.encode_message("append_resp", rid, reply))

    with contextlib.suppress(ConnectionClosed, trio.BrokenResourceError, trio.ClosedResourceError):
        await conn.run(read)  # until the client leaves


async def _peer_main() -> None:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    print(listeners[0].socket.getsockname()[1], flush=True)
    await trio.serve_listeners(_serve_one, listeners)


# -- the client -------------------------------------------------------------------------------


def _requests(count: int) -> list[AppendEntriesRequest]:
    leader = LeaderId(1, 1)
    return [
        AppendEntriesRequest(
            VOTE,
            LogId(leader, i),
            (Entry(LogId(leader, i + 1), Normal(b"v" * 100)),),
            None,
        )
        for i in range(count)
    ]


async def _by_callback(client: TcpNetwork, reqs: list[AppendEntriesRequest], window: int) -> None:
    """One task sends; replies arrive as callbacks."""
    state = {"inflight": 0, "errors": 0}
    wakeup = trio.Event()

    def on_reply(result: AppendEntriesResponse | RPCError) -> None:
        if isinstance(result, RPCError):
            state["errors"] += 1
        state["inflight"] -= 1
        wakeup.set()

    for req in reqs:
        while state["inflight"] >= window:
            wakeup = trio.Event()
            await wakeup.wait()
        if not client.send_append_entries(req, OPTION, on_reply):
            await client.append_entries(req, OPTION)  # the fallback (not connected)
            continue
        state["inflight"] += 1
    while state["inflight"]:
        wakeup = trio.Event()
        await wakeup.wait()
    if state["errors"]:
        raise RuntimeError(f"{state['errors']} appends failed")


async def _by_task(client: TcpNetwork, reqs: list[AppendEntriesRequest], window: int) -> None:
    """A child task per request, started as replication[t]'s adapter does."""
    state = {"inflight": 0}
    wakeup = trio.Event()

    async def send(
        req: AppendEntriesRequest, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        state["inflight"] += 1
        task_status.started()
        try:
            await client.append_entries(req, OPTION)
        finally:
            if state["inflight"] == window:
                wakeup.set()
            state["inflight"] -= 1

    async with trio.open_nursery() as nursery:
        for req in reqs:
            while state["inflight"] >= window:
                wakeup = trio.Event()
                await wakeup.wait()
            await nursery.start(send, req)


async def _by_task_soon(client: TcpNetwork, reqs: list[AppendEntriesRequest], window: int) -> None:
    """A child task per request, started with ``start_soon`` (no yield per request)."""
    state = {"inflight": 0}
    wakeup = trio.Event()

    async def send(req: AppendEntriesRequest) -> None:
        try:
            await client.append_entries(req, OPTION)
        finally:
            state["inflight"] -= 1
            wakeup.set()

    async with trio.open_nursery() as nursery:
        for req in reqs:
            while state["inflight"] >= window:
                wakeup = trio.Event()
                await wakeup.wait()
            state["inflight"] += 1
            nursery.start_soon(send, req)


async def _client_main(args: argparse.Namespace) -> dict[str, Any]:
    runs: dict[str, list[tuple[float, float]]] = {mode: [] for mode in MODES}
    modes: dict[str, Callable[..., Any]] = {
        "callback": _by_callback,
        "task": _by_task,
        "task_soon": _by_task_soon,
    }
    cmd = [sys.executable, __file__, "--peer"]
    async with trio.open_nursery() as nursery:
        proc = await nursery.start(
            partial(trio.run_process, cmd, stdout=subprocess.PIPE, check=False)
        )
        assert proc.stdout is not None
        port = int((await proc.stdout.receive_some(64)).decode().split()[0])
        async with open_tcp_network(1, CONFIG) as factory:
            client = await factory.new_client(2, Node(f"127.0.0.1:{port}"))
            await modes["task"](client, _requests(args.window * 4), args.window)  # warm up
            reqs = _requests(args.appends)
            for _ in range(args.repeats):
                for mode in MODES:
                    wall, cpu = time.perf_counter(), time.process_time()
                    await modes[mode](client, reqs, args.window)
                    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                    runs[mode].append((args.appends / wall, cpu / args.appends * 1e6))
        proc.kill()
    medians = {
        mode: {
            "appends_per_s": statistics.median(r[0] for r in runs[mode]),
            "cpu_us_per_append": statistics.median(r[1] for r in runs[mode]),
            "runs": runs[mode],
        }
        for mode in MODES
    }
    return {
        "benchmark": "pipelined_append",
        "appends": args.appends,
        "window": args.window,
        "repeats": args.repeats,
        "modes": medians,
        "throughput_ratio_callback_to_task": medians["callback"]["appends_per_s"]
        / medians["task"]["appends_per_s"],
        "cpu_ratio_callback_to_task": medians["callback"]["cpu_us_per_append"]
        / medians["task"]["cpu_us_per_append"],
        "throughput_ratio_callback_to_task_soon": medians["callback"]["appends_per_s"]
        / medians["task_soon"]["appends_per_s"],
        "cpu_ratio_callback_to_task_soon": medians["callback"]["cpu_us_per_append"]
        / medians["task_soon"]["cpu_us_per_append"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--appends", type=int, default=20_000)
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--json", type=Path, default=Path("benchmarks/results/pipelined_append.json")
    )
    parser.add_argument("--peer", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.peer:
        trio.run(_peer_main)
        return 0
    result = trio.run(_client_main, args)
    for mode in MODES:
        m = result["modes"][mode]
        print(
            f"{mode:>8}: {m['appends_per_s']:8.0f} appends/s, "
            f"{m['cpu_us_per_append']:6.1f} us CPU per append (client; median of {args.repeats})"
        )
    for other in ("task", "task_soon"):
        print(
            f"callback/{other}: throughput x{result[f'throughput_ratio_callback_to_{other}']:.2f}"
            f", CPU per append x{result[f'cpu_ratio_callback_to_{other}']:.2f}"
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
