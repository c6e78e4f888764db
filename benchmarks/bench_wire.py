"""The TCP wire codec alone: encode and decode of one AppendEntries of N writes.

No sockets, no Trio: the CPU a leader spends per follower to put a batch of ``kv.Set``
writes on the wire, and what a follower spends to take it off, store it (the bytes its
``FileLogStore`` writes) and apply it (each entry's ``payload.data``). Rows:

* ``encode``: ``encode_message("append", ...)`` of a request whose entries went through
  the write check (as a leader's log holds them);
* ``decode``: ``decode_message`` of that frame body (what a follower does before it stores);
* ``decode+store``: that, then the log store's record bytes of every entry;
* ``decode+data``: that, then every entry's ``payload.data`` (what applying decodes);
* ``follower``: decode, store and data: a follower's whole codec work for the batch.

To compare two checkouts in one run (interleaved repeats, each side in its own process)::

    python benchmarks/bench_wire.py --baseline /path/to/old/checkout
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

_ROWS = ("encode", "decode", "decode+store", "decode+data", "follower")


def _request(entries: int, value_size: int) -> Any:
    from openraft_trio import codec
    from openraft_trio._messages import AppendEntriesRequest
    from openraft_trio._types import Entry, LeaderId, LogId, Normal, Vote
    from openraft_trio.kv import Set

    leader = LeaderId(3, 1)
    payloads = []
    for i in range(entries):
        data = Set(f"key-{i:08d}", "v" * value_size)
        payload = Normal(data)
        # The write check a leader runs before logging: it encodes the data once.
        check_payload = getattr(codec, "check_payload", None)
        if check_payload is not None:
            check_payload(payload)
        else:
            codec.check_encodable(data)
        payloads.append(payload)
    return AppendEntriesRequest(
        Vote(leader, True),
        LogId(leader, 99),
        tuple(Entry(LogId(leader, 100 + i), p) for i, p in enumerate(payloads)),
        LogId(leader, 99),
    )


def _time(fn: Callable[[], object], loops: int) -> float:
    """Microseconds per call of ``fn`` over ``loops`` calls."""
    start = time.perf_counter()
    for _ in range(loops):
        fn()
    return (time.perf_counter() - start) / loops * 1e6


def measure(entries: int, value_size: int, loops: int) -> dict[str, float]:
    """One repeat in this process: microseconds per message for each row."""
    from openraft_trio.network._wire import decode_message, encode_message
    from openraft_trio.storage._file_format import encode_entry

    req = _request(entries, value_size)
    body = encode_message("append", 7, req)

    def decode_store() -> None:
        for entry in decode_message(body)[2].entries:
            encode_entry(entry)

    def decode_data() -> None:
        for entry in decode_message(body)[2].entries:
            _ = entry.payload.data

    def follower() -> None:
        for entry in decode_message(body)[2].entries:
            encode_entry(entry)
            _ = entry.payload.data

    fns: dict[str, Callable[[], object]] = {
        "encode": lambda: encode_message("append", 7, req),
        "decode": lambda: decode_message(body),
        "decode+store": decode_store,
        "decode+data": decode_data,
        "follower": follower,
    }
    for fn in fns.values():  # warm caches and lazily built hooks
        fn()
    result = {row: _time(fns[row], loops) for row in _ROWS}
    result["frame_bytes"] = float(len(body))
    return result


def _child(checkout: str, entries: int, value_size: int, loops: int) -> dict[str, float]:
    """One repeat measured in a fresh process importing ``openraft_trio`` from
    ``checkout``."""
    env = dict(os.environ, PYTHONPATH=checkout)
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(entries), str(value_size), str(loops)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        cwd=checkout,
    ).stdout
    result: dict[str, float] = json.loads(out)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=64, help="writes per request (64)")
    parser.add_argument("--value-size", type=int, default=16, help="bytes per value (16)")
    parser.add_argument("--loops", type=int, default=500, help="messages per repeat (500)")
    parser.add_argument("--repeats", type=int, default=5, help="repeats; medians (5)")
    parser.add_argument("--baseline", help="another checkout to measure in the same run")
    parser.add_argument("--quick", action="store_true", help="100 loops, 1 repeat")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/bench_wire.json"))
    parser.add_argument("--child", nargs=3, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure(*args.child)))
        return 0
    if args.quick:
        args.loops, args.repeats = 100, 1
    here = str(Path(__file__).resolve().parent.parent)
    sides = {"this": here} | ({"baseline": args.baseline} if args.baseline else {})
    runs: dict[str, list[dict[str, float]]] = {side: [] for side in sides}
    for _ in range(args.repeats):  # interleaved: a load spike hits both sides alike
        for side, checkout in sides.items():
            runs[side].append(_child(checkout, args.entries, args.value_size, args.loops))
    medians = {
        side: {key: statistics.median(r[key] for r in rs) for key in rs[0]}
        for side, rs in runs.items()
    }
    header = ["us per message", *sides, *(["baseline/this"] if args.baseline else [])]
    rows = []
    for row in (*_ROWS, "frame_bytes"):
        cells = [row, *(f"{medians[side][row]:.1f}" for side in sides)]
        if args.baseline:
            cells.append(f"{medians['baseline'][row] / medians['this'][row]:.2f}x")
        rows.append(cells)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print(f"AppendEntries of {args.entries} kv.Set writes ({args.value_size}-byte values), "
          f"median of {args.repeats} repeats x {args.loops} messages")
    for cells in [header, *rows]:
        print("  ".join([cells[0].ljust(widths[0])]
                        + [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]))
    report = {
        "benchmark": "wire",
        "settings": {
            "entries": args.entries,
            "value_size": args.value_size,
            "loops": args.loops,
            "repeats": args.repeats,
            "checkouts": sides,
        },
        "median_us": medians,
        "runs_us": runs,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"JSON written to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
