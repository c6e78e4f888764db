"""Deterministic Trio: runs that repeat exactly, task switch for task switch.

Trio orders a batch of runnable tasks at random, and breaks ties between equal deadlines
by object address, so two runs of one program may interleave differently. Seeding the
scheduler's RNG is not enough on its own: trio must also be told to use it
(``trio._core._run._ALLOW_DETERMINISTIC_SCHEDULING``). Both are private trio API, so every
use of them lives here, behind a check of trio's version (DESIGN.md §5); the project pins
trio's minor version for this.

    from openraft_trio.testing.deterministic import run_deterministic

    result = run_deterministic(main, seed=7, clock=trio.testing.MockClock(autojump_threshold=0))

With a ``MockClock(autojump_threshold=0)`` (virtual time) a seed replays one run exactly,
in this process or another; with trio's real clock the order of runnable tasks still
repeats, but timeouts depend on how fast the machine is. The simulator
(:mod:`openraft_trio.testing.sim`), the failover benchmark and the crash tests of the file
log store all run through this module.
"""

from __future__ import annotations

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

TESTED_TRIO_VERSIONS: Final = ("0.35.",)
"""Version prefixes of trio whose scheduler internals this module was tested against."""

_FLAG: Final = "_ALLOW_DETERMINISTIC_SCHEDULING"


@final
class UntestedTrioWarning(RuntimeWarning):
    """Deterministic scheduling was asked of a trio version it was not tested with: runs
    may not repeat (the private API it relies on may have changed)."""


def _trio_scheduler() -> ModuleType:
    """trio's private run module, after checking that it has what we use."""
    import trio._core._run as run_module

    if not trio.__version__.startswith(TESTED_TRIO_VERSIONS):
        warnings.warn(
            f"openraft_trio's deterministic scheduling is tested with trio "
            f"{', '.join(v + 'x' for v in TESTED_TRIO_VERSIONS)}, not {trio.__version__}: "
            "a seed may not replay the same run",
            UntestedTrioWarning,
            stacklevel=3,
        )
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
        UntestedTrioWarning: trio's version is not in :data:`TESTED_TRIO_VERSIONS`.

    Raises:
        RuntimeError: this trio has not the private API deterministic scheduling needs.
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
