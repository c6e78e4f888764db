"""Run every benchmark in this directory; ``nox -s bench`` calls this.

Usage: ``python benchmarks/run_all.py [ARGS...]`` — ARGS are passed to each benchmark's
``main`` (e.g. ``--quick``, ``--duration 5``, ``--repeats 5``). Exits non-zero if any
benchmark failed (a failed run, not a missed target: targets are only reported).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent

# Modules in this directory with a ``main(argv) -> int``, run in this order.
BENCHMARKS: tuple[str, ...] = (
    "bench_core",
    "bench_sustained",
    "failover",
    "bench_snapshot",
    "bench_storage",
    "bench_tcp",
    "bench_sessions",
    "bench_scaling",
)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    failed: list[str] = []
    for name in BENCHMARKS:
        print(f"=== {name} ===", flush=True)
        module = importlib.import_module(name)
        try:
            rc = module.main(args)
        except SystemExit as exc:  # e.g. argparse refusing an option meant for another one
            rc = exc.code if isinstance(exc.code, int) else 1
        if rc:
            failed.append(f"{name} (exit {rc})")
        print()
    if failed:
        print("failed: " + ", ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
