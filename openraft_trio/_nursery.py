"""A nursery for the background tasks of an ``async with`` resource."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio


@asynccontextmanager
async def background_nursery() -> AsyncIterator[trio.Nursery]:
    """Yield a nursery whose tasks are cancelled when the ``async with`` body ends.

    An exception raised by the *body* propagates as itself, not wrapped in an
    ``ExceptionGroup`` (a resource such as a client or a network factory should not change
    what its user's code raises). Errors of the background tasks still come as a group.
    """
    body_error: BaseException | None = None
    try:
        async with trio.open_nursery() as nursery:
            try:
                yield nursery
            except BaseException as e:
                body_error = e
                raise
            finally:
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        if body_error is not None and list(group.exceptions) == [body_error]:
            raise body_error from body_error.__cause__
        raise
