"""A nursery for the background tasks of an ``async with`` resource, and the rule for what
leaves the block (docs/guide.md, "Errors out of ``async with``").

Trio's nurseries wrap every exception in an ``ExceptionGroup`` (strict exception groups),
so a resource that runs tasks in a nursery would turn one ``ForwardToLeader`` raised by its
user's code into a group — one more per nested resource. At the boundary of each resource
:func:`background_nursery` undoes that when nothing else failed:

* the body raised, and no task failed: the body's exception comes out as itself (the same
  object, its traceback, ``__cause__`` and ``__context__`` untouched); so do ``Cancelled``
  and ``KeyboardInterrupt``;
* tasks failed, and the body returned or was cancelled because of it: ``task_failed``
  decides what comes out (a resource's own typed error, chained from the failures); by
  default the only failure comes out as itself;
* anything else (the body's error *and* a task failure, or a failure beside an outer
  cancellation) stays the group trio built, so that nothing is lost.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import NoReturn

import trio


def leaves(error: BaseException) -> list[BaseException]:
    """The exceptions in ``error``, nested groups flattened (``error`` itself if it is not a
    group)."""
    if isinstance(error, BaseExceptionGroup):
        return [leaf for sub in error.exceptions for leaf in leaves(sub)]
    return [error]


def reraise(error: BaseException) -> NoReturn:
    """Raise ``error`` again, from inside an ``except`` block, as it was: raising sets its
    ``__context__`` to the exception being handled (here the group that wrapped it); put
    back the context (and whether it is shown) that it had."""
    context, suppress = error.__context__, error.__suppress_context__
    try:
        raise error
    finally:
        error.__context__ = context
        error.__suppress_context__ = suppress
        del error, context  # no reference cycle through this frame


def _only(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """What a group that wraps one exception (through any nesting) wraps, else the group."""
    inner: BaseException = group
    while isinstance(inner, BaseExceptionGroup) and len(inner.exceptions) == 1:
        inner = inner.exceptions[0]
    return inner


def _holds_only(group: BaseExceptionGroup[BaseException], error: BaseException) -> bool:
    """True if ``group`` holds ``error`` and nothing else. Trio wraps the body's exception
    in a group of its own, and a group the body raised comes back as a copy (derived when
    trio splits off ``Cancelled``) holding the same exceptions: compare those."""
    found, expected = leaves(group), leaves(error)
    return len(found) == len(expected) and all(a is b for a, b in zip(found, expected, strict=True))


def _failures_only(group: BaseExceptionGroup[BaseException]) -> bool:
    """True if every exception in ``group`` is an ``Exception``: no ``Cancelled`` (an
    outer cancel scope's, which must reach it), no ``KeyboardInterrupt``."""
    return all(isinstance(leaf, Exception) for leaf in leaves(group))


@asynccontextmanager
async def background_nursery(
    *, task_failed: Callable[[BaseException], BaseException] | None = None
) -> AsyncIterator[trio.Nursery]:
    """Yield a nursery whose tasks are cancelled when the ``async with`` body ends.

    An exception raised by the *body* propagates as itself, not wrapped in an
    ``ExceptionGroup`` (a resource such as a node, a client or a network factory should not
    change what its user's code raises). When background tasks fail (and the body did not),
    ``task_failed(failure)`` returns the error to raise, chained ``from`` the failure (the
    only exception, or the group of several); without it that failure is raised as
    itself. A body error together with a task failure stays a group.
    """
    body_error: BaseException | None = None
    try:
        # Strict whatever ``trio.run(strict_exception_groups=...)`` says: the rules below
        # read the group trio builds.
        async with trio.open_nursery(strict_exception_groups=True) as nursery:
            try:
                yield nursery
            except BaseException as e:
                body_error = e
                raise
            finally:
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        if body_error is not None and _holds_only(group, body_error):
            reraise(body_error)
        if (body_error is None or isinstance(body_error, trio.Cancelled)) and _failures_only(
            group
        ):
            # Only tasks failed: the body returned, or was cancelled by the failure (that
            # ``Cancelled`` stayed inside the nursery, which is why the group holds none).
            failure = _only(group)
            if task_failed is not None:
                raise task_failed(failure) from failure
            if failure is not group:
                reraise(failure)
        raise
