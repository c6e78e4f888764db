"""One framed connection over a ``trio.abc.Stream``: a coalescing writer and a frame reader.

Both ends of the TCP transport (the peer client, the server and the KV client) use it:

* :meth:`FramedStream.send_nowait` queues one frame body and never blocks; the single
  writer task (:meth:`FramedStream.run_writer`) takes *everything* queued, joins it into one
  buffer and hands it to the kernel with one ``send_all``. A framed round trip costs ~200 µs
  of CPU when each frame is sent on its own; joining them is what lets 64+ callers share a
  connection cheaply (DESIGN.md section 7).
* :meth:`FramedStream.receive_frames` returns the next batch of complete frame bodies,
  through the hostile-input-proof :class:`~._frames.FrameDecoder`.
* :meth:`FramedStream.run` runs the writer task beside the caller's reader loop and stops
  both when either fails, re-raising the first error *as itself*, not wrapped in an
  ``ExceptionGroup``: a dead or hostile peer's error must reach the caller's plain
  ``except`` clauses (one counter, one closed connection), not escape them and crash the
  node.

Timeouts belong to the connection, not to a caller: a peer that stops reading (a full send
buffer for ``write_timeout``) or stops in the middle of a frame (``frame_timeout``) is a
dead connection, and both raise :class:`ConnectionTimeout`.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Protocol

import trio

from ._frames import DEFAULT_MAX_FRAME_SIZE, FrameDecoder, FrameTooLarge, join_frames

RECEIVE_SIZE = 256 * 1024
WRITE_SLICE = 1024 * 1024
"""The writer joins at most this many queued bytes (or one bigger frame) per ``send_all``,
so joining never copies a whole long queue at once."""
FRAME_OVERHEAD = 64
"""What a queued frame costs beyond its body (the ``bytes`` object, the list slot), for
:attr:`FramedStream.unsent`."""


class FrameCounters(Protocol):
    """Where a :class:`FramedStream` counts what it sends and receives (a transport's
    statistics, shared by its connections)."""

    frames_sent: int
    bytes_sent: int
    frames_received: int
    bytes_received: int


class _Counters:
    """The counters of a stream given none (counted, never read)."""

    __slots__ = ("bytes_received", "bytes_sent", "frames_received", "frames_sent")

    def __init__(self) -> None:
        self.frames_sent = self.bytes_sent = self.frames_received = self.bytes_received = 0


class ConnectionTimeout(Exception):
    """The peer stopped reading, or stopped sending in the middle of a frame."""


class ConnectionClosed(Exception):
    """The peer closed the connection cleanly (between frames)."""


class FramedStream:
    """A stream carrying length-prefixed frames; see the module docstring."""

    def __init__(
        self,
        stream: trio.abc.Stream,
        *,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        write_timeout: float = 10.0,
        frame_timeout: float = 10.0,
        max_receive_size: int | None = None,
        counters: FrameCounters | None = None,
    ) -> None:
        self.stream = stream
        self.counters: FrameCounters = counters if counters is not None else _Counters()
        self.max_frame_size = max_frame_size
        self.write_timeout = write_timeout
        self.frame_timeout = frame_timeout
        # Frames we accept may start smaller than frames we send (a server accepts only a
        # small hello until the handshake passed): see allow_frames_up_to.
        self._decoder = FrameDecoder(
            max_frame_size if max_receive_size is None else max_receive_size
        )
        self._queue: list[bytes] = []
        self._unsent = 0  # bytes queued or being sent (see FRAME_OVERHEAD)
        self._wakeup = trio.Event()
        self._sent = trio.Event()  # set each time the writer finished a send
        self._closing = False
        self._read_scope: trio.CancelScope | None = None
        self._read_timeout: tuple[float, str] = (0.0, "")

    def allow_frames_up_to(self, max_frame_size: int) -> None:
        """Raise the limit on received frames (after a handshake)."""
        self._decoder.raise_max_frame_size(max_frame_size)

    def send_nowait(self, body: bytes) -> None:
        """Queue one frame body for the writer task.

        Raises:
            FrameTooLarge: ``body`` is over ``max_frame_size``; nothing was queued (checked
                here, not by the writer, where it would break the connection and every
                call waiting on it).
            trio.ClosedResourceError: the connection is closing.
        """
        if self._closing:
            raise trio.ClosedResourceError("connection is closed")
        if len(body) > self.max_frame_size:
            raise FrameTooLarge(
                f"refusing to send a frame body of {len(body)} bytes: max_frame_size is "
                f"{self.max_frame_size} bytes",
                size=len(body),
                max_frame_size=self.max_frame_size,
            )
        self._queue.append(body)
        self._unsent += len(body) + FRAME_OVERHEAD
        self._wakeup.set()

    @property
    def receiving(self) -> bool:
        """True while a frame is partly received."""
        return self._decoder.buffered > 0

    @property
    def unsent(self) -> int:
        """Bytes of frames queued or being sent (each counted with ``FRAME_OVERHEAD``)."""
        return self._unsent

    async def wait_unsent_below(self, limit: int) -> None:
        """Wait until fewer than ``limit`` bytes are queued or being sent (a reader that
        queues replies calls this before handling more, so a peer that does not read its
        replies cannot make the queue grow: TCP flow control pushes back instead)."""
        while self._unsent >= limit:
            self._sent = trio.Event()
            await self._sent.wait()

    async def send_now(self, body: bytes) -> None:
        """Send one frame directly (the handshake, before the writer task runs)."""
        data = join_frames([body], max_frame_size=self.max_frame_size)
        with trio.move_on_after(self.write_timeout) as scope:
            await self.stream.send_all(data)
        if scope.cancelled_caught:
            raise ConnectionTimeout(f"peer did not read for {self.write_timeout}s")
        self.counters.frames_sent += 1
        self.counters.bytes_sent += len(data)

    async def run_writer(self) -> None:
        """The writer task: send every queued frame, joined, until cancelled or broken."""
        # One long-lived scope whose deadline is armed around each send (cheaper than a
        # cancel scope per send on the hot path).
        with trio.CancelScope() as scope:
            while True:
                if not self._queue:
                    self._wakeup = trio.Event()
                    await self._wakeup.wait()
                    continue
                frames = self._take_slice()
                count = len(frames)
                cost = sum(len(f) for f in frames) + FRAME_OVERHEAD * count
                data = join_frames(frames, max_frame_size=self.max_frame_size)
                del frames
                scope.deadline = trio.current_time() + self.write_timeout
                await self.stream.send_all(data)
                scope.deadline = math.inf
                counters = self.counters
                counters.frames_sent += count
                counters.bytes_sent += len(data)
                del data
                self._unsent -= cost
                self._sent.set()
        raise ConnectionTimeout(f"peer did not read for {self.write_timeout}s")

    def _take_slice(self) -> list[bytes]:
        """Take queued frames from the front: up to ``WRITE_SLICE`` bytes, at least one."""
        queue = self._queue
        total = 0
        count = 0
        for body in queue:
            total += len(body)
            if count and total > WRITE_SLICE:
                break
            count += 1
        if count == len(queue):
            self._queue = []
            return queue
        taken = queue[:count]
        del queue[:count]
        return taken

    async def run(self, reader: Callable[[trio.Nursery], Awaitable[None]]) -> None:
        """Run :meth:`run_writer` and ``reader(nursery)`` until either raises (or the reader
        returns), then cancel everything started in ``nursery`` (the reader may start
        tasks there) and re-raise the first ``Exception`` as itself. Later errors are
        consequences of the first (both sides of a reset stream fail) and are dropped."""
        errors: list[Exception] = []

        async def guard(fn: Callable[[], Awaitable[None]], scope: trio.CancelScope) -> None:
            try:
                await fn()
            except Exception as e:
                errors.append(e)
            scope.cancel()

        async def read(nursery: trio.Nursery) -> None:
            # Like the writer: one scope for the reader, its deadline armed per receive.
            with trio.CancelScope() as scope:
                self._read_scope = scope
                try:
                    await reader(nursery)
                finally:
                    self._read_scope = None
            if scope.cancelled_caught:
                timeout, where = self._read_timeout
                raise ConnectionTimeout(f"peer sent nothing for {timeout}s {where}")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(guard, self.run_writer, nursery.cancel_scope)
            await guard(lambda: read(nursery), nursery.cancel_scope)
        if errors:
            # The error's traceback holds this frame (and the guards'): a list or a local
            # in them still holding an error would be a reference cycle, keeping all the
            # traceback reaches (a hostile frame's decoded objects) until a GC run.
            error = errors[0]
            errors.clear()
            try:
                raise error
            finally:
                del error

    async def receive_frames(self, idle_timeout: float | None = None) -> list[bytes]:
        """The next non-empty batch of complete frame bodies.

        Raises:
            ConnectionClosed: the peer closed the stream between frames.
            FrameError: an oversized length prefix, or the stream ended inside a frame.
            ConnectionTimeout: no byte for ``frame_timeout`` inside a frame, or for
                ``idle_timeout`` between frames.
            trio.BrokenResourceError: the connection broke.
        """
        while True:
            if self._decoder.buffered:
                timeout = self.frame_timeout
            else:
                timeout = math.inf if idle_timeout is None else idle_timeout
            where = "inside a frame" if self._decoder.buffered else "between frames"
            scope = self._read_scope
            if scope is not None:  # inside run(): arm the reader's scope
                self._read_timeout = (timeout, where)
                scope.deadline = trio.current_time() + timeout
                chunk = await self.stream.receive_some(RECEIVE_SIZE)
                scope.deadline = math.inf
            else:
                with trio.move_on_after(timeout) as own:
                    chunk = await self.stream.receive_some(RECEIVE_SIZE)
                if own.cancelled_caught:
                    raise ConnectionTimeout(f"peer sent nothing for {timeout}s {where}")
            if not chunk:
                self._decoder.eof()
                raise ConnectionClosed("peer closed the connection")
            frames = self._decoder.feed(chunk)
            counters = self.counters
            counters.bytes_received += len(chunk)
            if frames:
                counters.frames_received += len(frames)
                return frames

    async def aclose(self) -> None:
        """Stop accepting frames and close the stream (without waiting for the peer)."""
        self._closing = True
        self._queue.clear()
        self._unsent = 0
        with trio.CancelScope(shield=True):
            await trio.aclose_forcefully(self.stream)
