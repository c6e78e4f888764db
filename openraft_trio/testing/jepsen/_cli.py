"""``python -m openraft_trio.testing.jepsen``: one run against real processes.

    python -m openraft_trio.testing.jepsen --seed 7 --duration 60
    python -m openraft_trio.testing.jepsen --seed 7 --faults pause,transfer --json

Exit status: 0 the run passed, 1 it found a violation (or a node died, or the cluster did
not converge), 2 bad arguments, 3 inconclusive (the checker ran out of time). See
``docs/kv-service.md``.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
from collections.abc import Callable, Sequence
from typing import Any

import trio

from ..sim._cli import _bounded
from ._checks import Verdict
from ._clients import ClientOptions
from ._history import FaultKind
from ._nemesis import NemesisOptions
from ._report import PROG, format_summary, summary_json
from ._run import JepsenOptions, run_jepsen

EXIT_STATUS = {Verdict.PASS: 0, Verdict.FAIL: 1, Verdict.INCONCLUSIVE: 3}


def _faults(text: str) -> tuple[FaultKind, ...]:
    if text.strip() == "none":
        return ()
    names = {kind.value: kind for kind in FaultKind}
    kinds = []
    for raw in text.split(","):
        name = raw.strip()
        if name not in names:
            raise argparse.ArgumentTypeError(
                f"unknown fault {name!r}: give a comma list of {', '.join(names)}, or none"
            )
        if names[name] not in kinds:
            kinds.append(names[name])
    return tuple(kinds)


def _range(what: str) -> Callable[[str], tuple[float, float]]:
    number = _bounded(float, 0.0, what)

    def conv(text: str) -> tuple[float, float]:
        low, sep, high = text.partition(",")
        if not sep:
            raise argparse.ArgumentTypeError(f"{what}: expected MIN,MAX, got {text!r}")
        bounds: tuple[float, float] = (number(low), number(high))
        if bounds[1] < bounds[0]:
            raise argparse.ArgumentTypeError(f"{what}: {bounds[1]:g} < {bounds[0]:g}")
        return bounds

    return conv


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Run a KV cluster of real `serve` processes on loopback, with durable storage, "
            "under concurrent clients (put, delete, cas, get with READ_INDEX and LEASE_READ) "
            "while a nemesis kills, pauses and moves the leadership; then check the history "
            "for linearizability, and that every node holds the same data and no "
            "acknowledged write is missing."
        ),
    )
    p.add_argument(
        "--seed",
        type=_bounded(int, 0, "seed"),
        help="seeds every client and nemesis choice (default: a random one, printed)",
    )
    p.add_argument(
        "--duration", type=_bounded(float, 0.0, "duration"), default=30.0,
        help="seconds of load and faults (30)",
    )
    p.add_argument("--nodes", type=_bounded(int, 3, "nodes"), default=3, help="processes (3)")
    p.add_argument(
        "--clients", type=_bounded(int, 1, "clients"), default=5, help="concurrent clients (5)"
    )
    p.add_argument(
        "--keys", type=_bounded(int, 1, "keys"), default=4, help="keys they share (4)"
    )
    p.add_argument(
        "--faults",
        type=_faults,
        default=tuple(FaultKind),
        help="comma list of kill, pause, transfer, or none (default: all)",
    )
    p.add_argument(
        "--fault-interval",
        type=_range("fault interval"),
        default=NemesisOptions().interval,
        metavar="MIN,MAX",
        help="seconds between two faults (1,3)",
    )
    p.add_argument(
        "--dir",
        help="where to make the run's directory of node data and logs (default: the "
        "system's temporary directory); it is removed if the run passes, unless --keep",
    )
    p.add_argument("--keep", action="store_true", help="keep the run's directory")
    p.add_argument(
        "--check-timeout",
        type=_bounded(float, 0.0, "check timeout"),
        default=300.0,
        help="seconds the linearizability check may take (300)",
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    return p


def options_from(args: argparse.Namespace) -> JepsenOptions:
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(10**6)
    return JepsenOptions(
        seed=seed,
        duration=args.duration,
        nodes=args.nodes,
        clients=ClientOptions(count=args.clients, keys=tuple(f"k{i}" for i in range(args.keys))),
        nemesis=NemesisOptions(kinds=args.faults, interval=args.fault_interval),
        base_dir=args.dir,
        keep_dir=args.keep,
        check_timeout=args.check_timeout,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    options = options_from(args)
    # The client logs every refused connection to a node that is down; the summary counts
    # the errors that mattered.
    logging.basicConfig(level=logging.ERROR)
    print(
        f"jepsen: seed {options.seed}, {options.duration:g} s of load and faults...",
        file=sys.stderr,
        flush=True,
    )
    report = trio.run(run_jepsen, options)
    summary: Any = summary_json(report)
    if args.json:
        print(json.dumps(summary, indent=2, default=repr))
    else:
        print(format_summary(report))
    return EXIT_STATUS[report.verdict]
