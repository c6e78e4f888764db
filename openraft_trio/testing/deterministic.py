"""Deterministic Trio: runs that repeat exactly, task switch for task switch.

Trio orders a batch of runnable tasks at random, and breaks ties between equal deadlines
by object address, so two runs of one program may interleave differently. Seeding the
scheduler's RNG is not enough on its own: trio must also be told to use it
(``trio._core._run._ALLOW_DETERMINISTIC_SCHEDULING``). Both are private trio API, so every
use of them lives here, behind a check of trio's version (DESIGN.md §5): on a trio release
this module does not know, it raises ``RuntimeError`` saying which releases it knows. The
rest of openraft_trio uses trio's public API only and works with any trio its dependency
range allows; a trio newer than :data:`TESTED_TRIO_VERSIONS` can still be tried with the
environment variable ``OPENRAFT_TRIO_ALLOW_UNTESTED_TRIO=1`` (a warning instead of the error).

    from openraft_trio.testing.deterministic import run_deterministic

    result = run_deterministic(main, seed=7, clock=trio.testing.MockClock(autojump_threshold=0))

With a ``MockClock(autojump_threshold=0)`` (virtual time) a seed replays one run exactly,
in this process or another; with trio's real clock the order of runnable tasks still
repeats, but timeouts depend on how fast the machine is. The simulator
(:mod:`openraft_trio.testing.sim`), the failover benchmark and the crash tests of the file
log store all run through this module.
"""

from __future__ import annotations

import os
import random
import warnings
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Final, TypeVar, final

import trio

__all__ = [
    "TESTED_TRIO_VERSIONS",
    "UntestedTrioWarning",
    "deterministic_scheduling",
    "run_deterministic",
]

T = TypeVar("T")

TESTED_TRIO_VERSIONS: Final = tuple(f"0.{minor}." for minor in range(25, 36))
"""Version prefixes of trio whose scheduler internals this module was checked against:
0.25 (the oldest the package allows: the first whose nurseries group exceptions by default)
to 0.35. The flag, the RNG and the scheduler's use of them are the same in each of these
releases; the test suite runs against the oldest and the newest (``nox -s
tests_oldest``, ``nox -s tests``)."""

# Set to 1 to run on a trio release not in TESTED_TRIO_VERSIONS: a warning, not an error.
_ALLOW_UNTESTED_TRIO_VARIABLE: Final = "OPENRAFT_TRIO_ALLOW_UNTESTED_TRIO"

_FLAG: Final = "_ALLOW_DETERMINISTIC_SCHEDULING"


@final
class UntestedTrioWarning(RuntimeWarning):
    """Deterministic scheduling was asked of a trio version it was not tested with: runs
    may not repeat (the private API it relies on may have changed)."""


def _trio_scheduler() -> ModuleType:
    """trio's private run module, after checking trio's version and that it has what we use."""
    if not trio.__version__.startswith(TESTED_TRIO_VERSIONS):
        known = f"{TESTED_TRIO_VERSIONS[0]}x to {TESTED_TRIO_VERSIONS[-1]}x"
        if os.environ.get(_ALLOW_UNTESTED_TRIO_VARIABLE) != "1":
            raise RuntimeError(
                f"openraft_trio's deterministic scheduling (the simulator, "
                f"run_deterministic) relies on private trio API it knows in trio {known}, "
                f"not in trio {trio.__version__}: install a trio it knows, or set "
                f"{_ALLOW_UNTESTED_TRIO_VARIABLE}=1 to try this one (a seed may then not "
                "replay the same run). The rest of openraft_trio works with this trio."
            )
        warnings.warn(
            f"openraft_trio's deterministic scheduling is tested with trio {known}, not "
            f"{trio.__version__}: a seed may not replay the same run",
            UntestedTrioWarning,
            stacklevel=3,
        )
    import trio._core._run as run_module

    if not hasattr(run_module, _FLAG) or not hasattr(run_module, "_r"):
        raise RuntimeError(
            f"trio {trio.__version__} has no trio._core._run.{_FLAG} / _r: deterministic "
            "scheduling is not available with this trio version"
        )
    return run_module


@contextmanager
def deterministic_scheduling(seed: int = 0) -> Iterator[Callable[[int], None]]:
    """Within the block, trio orders runnable tasks by an RNG seeded with ``seed``.

    Yields ``reseed(seed)``: call it before each ``trio.run`` that must repeat an earlier
    one exactly (a run draws from the RNG, so the second of two runs in one block starts
    where the first stopped). On exit, trio's flag and its RNG's state are what they were.

    Warns:
        UntestedTrioWarning: trio's version is not in :data:`TESTED_TRIO_VERSIONS` and
            ``OPENRAFT_TRIO_ALLOW_UNTESTED_TRIO=1`` is set.

    Raises:
        RuntimeError: trio's version is not in :data:`TESTED_TRIO_VERSIONS` (and the
            variable is not set), or this trio has not the private API deterministic
            scheduling needs.
    """
    run_module = _trio_scheduler()
    rng: random.Random = run_module._r
    saved_flag = getattr(run_module, _FLAG)
    saved_state = rng.getstate()
    setattr(run_module, _FLAG, True)
    rng.seed(seed)
    try:
        yield rng.seed
    finally:
        setattr(run_module, _FLAG, saved_flag)
        rng.setstate(saved_state)


def run_deterministic(
    async_fn: Callable[..., Awaitable[T]],
    *args: object,
    seed: int,
    clock: trio.abc.Clock | None = None,
) -> T:
    """``trio.run(async_fn, *args, clock=clock)`` with the scheduler seeded by ``seed``
    (see :func:`deterministic_scheduling`).

    Args:
        async_fn: the async function to run, called with ``*args``.
        seed: seeds trio's scheduling RNG: one seed, one order of task switches.
        clock: passed to ``trio.run``; ``None`` is trio's real clock. Pass
            ``trio.testing.MockClock(autojump_threshold=0)`` for runs that also repeat
            in time.

    Returns:
        What ``async_fn`` returned.
    """
    with deterministic_scheduling(seed):
        return trio.run(async_fn, *args, clock=clock)
