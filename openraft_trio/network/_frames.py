"""Length-prefixed framing for the TCP transport (sans-I/O: no sockets, no trio).

Wire format
-----------
A TCP connection carries a sequence of frames. Each frame is::

    +----------------------------+---------------------------+
    | N: 4 bytes, unsigned,      | body: exactly N bytes     |
    |    big-endian (network)    | (CBOR, produced elsewhere)|
    +----------------------------+---------------------------+

``N`` counts the body only (not the prefix). ``N = 0`` is a valid, empty frame. A sender
never emits, and a receiver never accepts, a frame whose body is larger than the
connection's ``max_frame_size`` (default :data:`DEFAULT_MAX_FRAME_SIZE`, 64 MiB; never more
than ``2**32 - 1``, the largest length the prefix can express). This module knows nothing
about what the body means; decoding the CBOR and validating the message are the codec's job.

Theory of operation
-------------------
*Writing.* :func:`encode_frame` prefixes one body. :func:`join_frames` prefixes many and
concatenates them, so a coalescing writer task can drain its queue and hand the kernel one
buffer with a single ``send_all`` (see DESIGN.md section 7: batching is what makes the
transport fast). Both check the size limit before building anything and raise
:class:`FrameTooLarge` rather than put an oversized frame on the wire.

*Reading.* TCP delivers a byte stream, not messages: one ``receive_some`` may return half a
length prefix, the tail of one frame and the heads of three more. :class:`FrameDecoder` is
fed whatever arrived (:meth:`FrameDecoder.feed`) and returns every frame body that is now
complete, in order, holding back only the one incomplete frame at the end, if any. When the
peer closes the stream the reader calls :meth:`FrameDecoder.eof`, which raises
:class:`TruncatedFrame` if the stream stopped in the middle of a frame.

The decoder parses each incoming chunk in place through a ``memoryview`` with a moving
offset, copying a complete frame's body straight out of the chunk, and keeps only the
trailing incomplete frame in a ``bytearray``. The next chunk first completes that pending
frame (taking from the chunk only the bytes the frame still needs) and then parses the rest
of the chunk in place again. Every received byte is therefore copied at most twice (into
the pending buffer, then into the body ``bytes``) and no compaction is ever needed: the
work per ``feed`` is linear in the chunk, whether it holds thousands of tiny frames or one
byte of a huge frame.

Hostile-input guarantees
------------------------
The peer is not trusted (DESIGN.md section 6). Whatever bytes arrive, in whatever chunks:

* The decoder raises only :class:`FrameError` subclasses (``FrameError`` is a
  ``ValueError``): :class:`FrameTooLarge` for a length prefix over the limit,
  :class:`TruncatedFrame` from :meth:`FrameDecoder.eof` for a stream cut mid-frame.
* A length prefix over ``max_frame_size`` is rejected as soon as its 4th byte arrives,
  before a single body byte is buffered, so a peer cannot make us allocate for a frame it
  merely announces.
* Between calls the decoder holds at most one incomplete frame:
  :attr:`FrameDecoder.buffered` is always below ``max_frame_size + 4``.
* After a ``FrameTooLarge`` the stream is desynchronised (there is no way to find the next
  frame boundary), so the decoder drops its buffer and every later ``feed``/``eof`` raises
  :class:`FrameError`; the connection must be closed. Frames that were complete earlier in
  the same chunk as the bad prefix are discarded with it.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import Final

__all__ = [
    "DEFAULT_MAX_FRAME_SIZE",
    "HEADER_SIZE",
    "MAX_FRAME_SIZE_LIMIT",
    "FrameDecoder",
    "FrameError",
    "FrameTooLarge",
    "TruncatedFrame",
    "encode_frame",
    "join_frames",
]

HEADER_SIZE: Final = 4
"""Bytes in a frame's length prefix."""

MAX_FRAME_SIZE_LIMIT: Final = 2**32 - 1
"""The largest body length a 4-byte prefix can express."""

DEFAULT_MAX_FRAME_SIZE: Final = 64 * 1024 * 1024
"""Default limit on a frame body: 64 MiB."""

_HEADER: Final = struct.Struct(">I")


class FrameError(ValueError):
    """The byte stream is not a valid sequence of frames (or a frame is too big to send)."""


class FrameTooLarge(FrameError):
    """A frame body is larger than ``max_frame_size``.

    ``size`` is the body length (announced by the peer when decoding, or of the body we
    were asked to send); ``max_frame_size`` is the limit it broke.
    """

    def __init__(self, message: str, *, size: int, max_frame_size: int) -> None:
        super().__init__(message)
        self.size = size
        self.max_frame_size = max_frame_size


class TruncatedFrame(FrameError):
    """The stream ended in the middle of a frame (or of its length prefix).

    ``received`` is how many bytes of the frame (prefix included) arrived; ``expected`` is
    the full frame length (prefix included), or ``None`` if the prefix itself was cut.
    """

    def __init__(self, message: str, *, received: int, expected: int | None) -> None:
        super().__init__(message)
        self.received = received
        self.expected = expected


def _check_max_frame_size(max_frame_size: int) -> int:
    if (
        isinstance(max_frame_size, bool)
        or not isinstance(max_frame_size, int)
        or not 0 < max_frame_size <= MAX_FRAME_SIZE_LIMIT
    ):
        raise ValueError(
            f"max_frame_size must be an int in 1..{MAX_FRAME_SIZE_LIMIT} "
            f"(the 4-byte prefix limit), got {max_frame_size!r}"
        )
    return max_frame_size


def _outgoing_too_large(size: int, max_frame_size: int, what: str) -> FrameTooLarge:
    return FrameTooLarge(
        f"refusing to send {what} of {size} bytes: max_frame_size is {max_frame_size} bytes",
        size=size,
        max_frame_size=max_frame_size,
    )


def encode_frame(body: bytes, *, max_frame_size: int) -> bytes:
    """Return ``body`` with its 4-byte big-endian length prefix.

    Raises :class:`FrameTooLarge` if ``len(body) > max_frame_size`` and ``ValueError`` if
    ``max_frame_size`` is not an int in ``1..2**32-1``.
    """
    _check_max_frame_size(max_frame_size)
    size = len(body)
    if size > max_frame_size:
        raise _outgoing_too_large(size, max_frame_size, "a frame body")
    return _HEADER.pack(size) + body


def join_frames(bodies: Iterable[bytes], *, max_frame_size: int) -> bytes:
    """Frame every body and concatenate them, for one ``send_all`` of a whole batch.

    Equal to ``b"".join(encode_frame(b, max_frame_size=...) for b in bodies)``, built with a
    single join. If any body is too large, raises :class:`FrameTooLarge` (naming its index)
    and returns nothing, so no partial batch can reach the wire.
    """
    _check_max_frame_size(max_frame_size)
    pack = _HEADER.pack
    parts: list[bytes] = []
    for index, body in enumerate(bodies):
        size = len(body)
        if size > max_frame_size:
            raise _outgoing_too_large(size, max_frame_size, f"frame body #{index}")
        parts.append(pack(size))
        parts.append(body)
    return b"".join(parts)


class FrameDecoder:
    """Incremental decoder of a stream of length-prefixed frames.

    Feed it the chunks read from the connection with :meth:`feed`; call :meth:`eof` when
    the peer closes. See the module docstring for the format and the guarantees.
    """

    __slots__ = ("_broken", "_max_frame_size", "_pending")

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        self._max_frame_size = _check_max_frame_size(max_frame_size)
        # The one incomplete frame (prefix included) carried over from earlier chunks.
        self._pending = bytearray()
        # The error that desynchronised the stream, if any.
        self._broken: FrameTooLarge | None = None

    @property
    def max_frame_size(self) -> int:
        """The largest frame body this decoder accepts (raise it with
        :meth:`raise_max_frame_size`)."""
        return self._max_frame_size

    def raise_max_frame_size(self, max_frame_size: int) -> None:
        """Accept frames up to ``max_frame_size`` from now on (e.g. once the peer passed a
        handshake that ran under a small limit). Lowering is refused: a frame already
        accepted in part could exceed it."""
        max_frame_size = _check_max_frame_size(max_frame_size)
        if max_frame_size < self._max_frame_size:
            raise ValueError("the frame size limit can only be raised")
        self._max_frame_size = max_frame_size

    @property
    def buffered(self) -> int:
        """Bytes held for the incomplete frame at the end of the stream (always < max + 4)."""
        return len(self._pending)

    def _body_size(self, prefix: bytes | bytearray | memoryview, offset: int) -> int:
        (size,) = _HEADER.unpack_from(prefix, offset)
        if size > self._max_frame_size:
            self._pending.clear()
            self._broken = FrameTooLarge(
                f"peer announced a frame body of {size} bytes; "
                f"max_frame_size is {self._max_frame_size} bytes",
                size=size,
                max_frame_size=self._max_frame_size,
            )
            raise self._broken
        return int(size)

    def _check_usable(self) -> None:
        if self._broken is not None:
            raise FrameError(
                f"frame stream is unusable after an earlier error: {self._broken}"
            ) from self._broken

    def feed(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """Take the next chunk of the stream; return the frame bodies now complete, in order.

        Bytes of an incomplete trailing frame are kept for the next call. Raises
        :class:`FrameTooLarge` as soon as a length prefix over the limit is complete.
        """
        self._check_usable()
        frames: list[bytes] = []
        pending = self._pending
        with memoryview(data) as view:
            if view.ndim != 1 or view.itemsize != 1 or not view.c_contiguous:
                raise TypeError(
                    "feed() takes contiguous bytes (bytes, bytearray, memoryview of bytes)"
                )
            end = view.nbytes
            pos = 0
            if pending:
                # Complete the carried-over frame, taking only the bytes it still needs.
                have = len(pending)
                if have < HEADER_SIZE:
                    pos = min(HEADER_SIZE - have, end)
                    pending += view[:pos]
                    if len(pending) < HEADER_SIZE:
                        return frames
                    self._body_size(pending, 0)  # reject before buffering any body byte
                frame_len = HEADER_SIZE + self._body_size(pending, 0)
                take = min(frame_len - len(pending), end - pos)
                pending += view[pos : pos + take]
                pos += take
                if len(pending) < frame_len:
                    return frames
                with memoryview(pending) as pv:
                    frames.append(bytes(pv[HEADER_SIZE:]))
                pending.clear()
            # Parse the rest of the chunk in place.
            while end - pos >= HEADER_SIZE:
                size = self._body_size(view, pos)
                start = pos + HEADER_SIZE
                if end - start < size:
                    break
                frames.append(bytes(view[start : start + size]))
                pos = start + size
            if pos < end:
                pending += view[pos:]
        return frames

    def eof(self) -> None:
        """Declare the end of the stream.

        Raises :class:`TruncatedFrame` if it stopped inside a frame or its length prefix
        (and :class:`FrameError` if the decoder already failed). A clean end is a no-op.
        """
        self._check_usable()
        have = len(self._pending)
        if have == 0:
            return
        if have < HEADER_SIZE:
            raise TruncatedFrame(
                f"stream ended inside a frame's length prefix: "
                f"{have} of {HEADER_SIZE} prefix bytes received",
                received=have,
                expected=None,
            )
        body = self._body_size(self._pending, 0)
        raise TruncatedFrame(
            f"stream ended inside a frame: {have - HEADER_SIZE} of {body} body bytes received",
            received=have,
            expected=HEADER_SIZE + body,
        )
