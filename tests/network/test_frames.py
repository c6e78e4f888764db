"""The sans-I/O frame layer: 4-byte big-endian length prefix + body."""

from __future__ import annotations

import itertools
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openraft_trio.network._frames import (
    DEFAULT_MAX_FRAME_SIZE,
    MAX_FRAME_SIZE_LIMIT,
    FrameDecoder,
    FrameError,
    FrameTooLarge,
    TruncatedFrame,
    encode_frame,
    join_frames,
)

FAST = settings(max_examples=200, deadline=None)

BODIES = [b"", b"a", b"hello world", bytes(range(256)), b"\x00" * 1000, b"", b"tail"]


def _feed_chunks(decoder: FrameDecoder, chunks: list[bytes]) -> list[bytes]:
    out: list[bytes] = []
    for chunk in chunks:
        out.extend(decoder.feed(chunk))
    return out


# --- encoding ---------------------------------------------------------------


def test_encode_frame_format() -> None:
    assert encode_frame(b"abc", max_frame_size=10) == b"\x00\x00\x00\x03abc"
    assert encode_frame(b"", max_frame_size=10) == b"\x00\x00\x00\x00"
    body = b"x" * 0x010203
    assert encode_frame(body, max_frame_size=DEFAULT_MAX_FRAME_SIZE)[:4] == b"\x00\x01\x02\x03"


def test_encode_frame_too_large() -> None:
    assert encode_frame(b"x" * 8, max_frame_size=8) == b"\x00\x00\x00\x08" + b"x" * 8
    with pytest.raises(FrameTooLarge, match=r"9 bytes.*max_frame_size is 8") as info:
        encode_frame(b"x" * 9, max_frame_size=8)
    assert info.value.size == 9
    assert info.value.max_frame_size == 8
    assert isinstance(info.value, ValueError)


def test_join_frames_equals_concatenated_encodes() -> None:
    joined = join_frames(BODIES, max_frame_size=1000)
    assert joined == b"".join(encode_frame(b, max_frame_size=1000) for b in BODIES)
    assert join_frames([], max_frame_size=1) == b""
    assert join_frames(iter([b"a", b"bc"]), max_frame_size=2) == b"\0\0\0\1a\0\0\0\2bc"


def test_join_frames_too_large_names_index() -> None:
    with pytest.raises(FrameTooLarge, match="#2 of 4 bytes"):
        join_frames([b"", b"abc", b"abcd"], max_frame_size=3)


@pytest.mark.parametrize("bad", [0, -1, MAX_FRAME_SIZE_LIMIT + 1, True, 1.5, "10", None])
def test_max_frame_size_validated(bad: object) -> None:
    with pytest.raises(ValueError, match="max_frame_size"):
        FrameDecoder(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_frame_size"):
        encode_frame(b"", max_frame_size=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_frame_size"):
        join_frames([], max_frame_size=bad)  # type: ignore[arg-type]


def test_max_frame_size_defaults() -> None:
    assert FrameDecoder().max_frame_size == DEFAULT_MAX_FRAME_SIZE == 64 * 1024 * 1024
    assert FrameDecoder(MAX_FRAME_SIZE_LIMIT).max_frame_size == 2**32 - 1


# --- decoding ---------------------------------------------------------------


def test_round_trip_single_frames() -> None:
    decoder = FrameDecoder(1000)
    for body in BODIES:
        assert decoder.feed(encode_frame(body, max_frame_size=1000)) == [body]
        assert decoder.buffered == 0
    decoder.eof()


def test_empty_body_and_empty_feed() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(b"") == []
    assert decoder.feed(b"\0\0\0\0") == [b""]
    assert decoder.feed(b"\0\0\0\0\0\0\0\0") == [b"", b""]
    assert decoder.feed(b"\0\0") == []
    assert decoder.feed(b"") == []
    assert decoder.buffered == 2
    assert decoder.feed(b"\0\0") == [b""]
    decoder.eof()


def test_many_frames_in_one_feed() -> None:
    bodies = [str(i).encode() * (i % 7) for i in range(5000)]
    decoder = FrameDecoder()
    assert decoder.feed(join_frames(bodies, max_frame_size=100)) == bodies
    assert decoder.buffered == 0


def test_accepts_bytearray_and_memoryview() -> None:
    stream = join_frames(BODIES, max_frame_size=1000)
    decoder = FrameDecoder()
    chunk = bytearray(stream[:10])
    got = decoder.feed(chunk)
    chunk.clear()  # the decoder must not keep a view of the caller's buffer
    got += decoder.feed(memoryview(stream)[10:])
    assert got == BODIES
    assert all(type(b) is bytes for b in got)


def test_rejects_non_byte_buffers() -> None:
    with pytest.raises(TypeError):
        FrameDecoder().feed(memoryview(b"\0" * 8).cast("I"))


def test_every_split_point() -> None:
    stream = join_frames(BODIES, max_frame_size=1000)
    for i in range(len(stream) + 1):
        decoder = FrameDecoder(1000)
        got = decoder.feed(stream[:i])
        assert decoder.buffered < 1000 + 4
        got += decoder.feed(stream[i:])
        assert got == BODIES, i
        assert decoder.buffered == 0
        decoder.eof()


def test_every_pair_of_split_points() -> None:
    stream = join_frames([b"ab", b"", b"cdef", b"g"], max_frame_size=10)
    for i in range(len(stream) + 1):
        for j in range(i, len(stream) + 1):
            decoder = FrameDecoder(10)
            got = _feed_chunks(decoder, [stream[:i], stream[i:j], stream[j:]])
            assert got == [b"ab", b"", b"cdef", b"g"], (i, j)


def test_byte_at_a_time() -> None:
    stream = join_frames(BODIES, max_frame_size=1000)
    decoder = FrameDecoder(1000)
    got: list[bytes] = []
    for i in range(len(stream)):
        got += decoder.feed(stream[i : i + 1])
    assert got == BODIES
    assert decoder.buffered == 0
    decoder.eof()


def test_partial_frame_is_buffered() -> None:
    decoder = FrameDecoder(100)
    assert decoder.feed(encode_frame(b"one", max_frame_size=100) + b"\0\0\0\5ab") == [b"one"]
    assert decoder.buffered == 6
    assert decoder.feed(b"cdeXX") == [b"abcde"]
    assert decoder.buffered == 2


# --- hostile input ----------------------------------------------------------


def test_oversized_prefix_raises_on_fourth_byte() -> None:
    decoder = FrameDecoder(1024)
    prefix = struct.pack(">I", 1025)
    assert decoder.feed(prefix[:3]) == []
    assert decoder.buffered == 3
    with pytest.raises(FrameTooLarge, match=r"1025 bytes.*max_frame_size is 1024") as info:
        decoder.feed(prefix[3:])
    assert info.value.size == 1025
    assert info.value.max_frame_size == 1024
    assert decoder.buffered == 0


def test_oversized_prefix_in_one_chunk_with_body() -> None:
    decoder = FrameDecoder(1024)
    with pytest.raises(FrameTooLarge):
        decoder.feed(struct.pack(">I", 0xFFFFFFFF) + b"x" * 5000)
    assert decoder.buffered == 0


def test_oversized_prefix_after_good_frames() -> None:
    decoder = FrameDecoder(16)
    with pytest.raises(FrameTooLarge):
        decoder.feed(encode_frame(b"ok", max_frame_size=16) + struct.pack(">I", 17))


def test_decoder_unusable_after_error() -> None:
    decoder = FrameDecoder(16)
    with pytest.raises(FrameTooLarge):
        decoder.feed(struct.pack(">I", 17))
    with pytest.raises(FrameError, match="unusable"):
        decoder.feed(encode_frame(b"ok", max_frame_size=16))
    with pytest.raises(FrameError, match="unusable"):
        decoder.eof()


def test_max_boundary() -> None:
    decoder = FrameDecoder(64)
    assert decoder.feed(encode_frame(b"m" * 64, max_frame_size=64)) == [b"m" * 64]
    with pytest.raises(FrameTooLarge):
        decoder.feed(struct.pack(">I", 65) + b"m" * 65)


def test_max_boundary_byte_at_a_time() -> None:
    decoder = FrameDecoder(64)
    stream = encode_frame(b"m" * 64, max_frame_size=64)
    got: list[bytes] = []
    for i in range(len(stream)):
        got += decoder.feed(stream[i : i + 1])
        assert decoder.buffered <= 64 + 3
    assert got == [b"m" * 64]


# --- end of stream ----------------------------------------------------------


def test_eof_clean() -> None:
    """An end of stream between frames is clean: every frame was delivered, nothing is
    buffered, ``eof()`` raises nothing and leaves the decoder usable."""
    decoder = FrameDecoder()
    assert decoder.eof() is None  # an empty stream
    assert decoder.feed(encode_frame(b"abc", max_frame_size=10)) == [b"abc"]
    assert decoder.buffered == 0
    assert decoder.eof() is None
    two = encode_frame(b"x", max_frame_size=10) + encode_frame(b"yz", max_frame_size=10)
    assert decoder.feed(two[:3]) == []
    assert decoder.feed(two[3:]) == [b"x", b"yz"]
    assert decoder.buffered == 0
    assert decoder.eof() is None


@pytest.mark.parametrize("cut", [1, 2, 3])
def test_eof_inside_prefix(cut: int) -> None:
    decoder = FrameDecoder()
    decoder.feed(encode_frame(b"abc", max_frame_size=10)[:cut])
    with pytest.raises(TruncatedFrame, match=f"{cut} of 4 prefix bytes") as info:
        decoder.eof()
    assert info.value.received == cut
    assert info.value.expected is None


@pytest.mark.parametrize("cut", [4, 5, 6])
def test_eof_inside_body(cut: int) -> None:
    decoder = FrameDecoder()
    assert decoder.feed(encode_frame(b"abc", max_frame_size=10)[:cut]) == []
    with pytest.raises(TruncatedFrame, match=f"{cut - 4} of 3 body bytes") as info:
        decoder.eof()
    assert info.value.received == cut
    assert info.value.expected == 7
    assert isinstance(info.value, FrameError)


# --- properties -------------------------------------------------------------


@FAST
@given(st.lists(st.binary(max_size=300)), st.data())
def test_round_trip_any_chunking(bodies: list[bytes], data: st.DataObject) -> None:
    stream = join_frames(bodies, max_frame_size=300)
    cuts = sorted(data.draw(st.lists(st.integers(min_value=0, max_value=len(stream)), max_size=20)))
    bounds = [0, *cuts, len(stream)]
    chunks = [stream[a:b] for a, b in itertools.pairwise(bounds)]
    decoder = FrameDecoder(300)
    got: list[bytes] = []
    for chunk in chunks:
        got += decoder.feed(chunk)
        assert decoder.buffered < 300 + 4
    assert got == bodies
    assert decoder.buffered == 0
    decoder.eof()


# Uniform random bytes nearly always start with a huge length; bytes biased to 0 make
# plausible small prefixes, so bodies really get buffered and split across chunks.
_BIASED_BYTES = st.lists(st.sampled_from([0, 0, 0, 0, 1, 2, 7, 0x80, 0xFF]), max_size=200).map(
    bytes
)


@FAST
@given(
    st.integers(min_value=1, max_value=300),
    st.lists(st.one_of(st.binary(max_size=200), _BIASED_BYTES), max_size=20),
)
def test_garbage_never_escapes_frame_error(max_frame_size: int, chunks: list[bytes]) -> None:
    decoder = FrameDecoder(max_frame_size)
    try:
        for chunk in chunks:
            for body in decoder.feed(chunk):
                assert len(body) <= max_frame_size
            assert decoder.buffered <= max_frame_size + 4
        decoder.eof()
    except FrameError:
        assert decoder.buffered <= max_frame_size + 4


def test_many_tiny_feeds_of_a_large_frame_stay_linear() -> None:
    # 1 MiB frame fed in 1 KiB chunks, then 200k empty frames in 3-byte chunks: a
    # quadratic implementation (re-copying the buffer per feed) would take minutes.
    decoder = FrameDecoder()
    stream = encode_frame(b"z" * (1 << 20), max_frame_size=1 << 20)
    got: list[bytes] = []
    for i in range(0, len(stream), 1024):
        got += decoder.feed(stream[i : i + 1024])
    assert got == [b"z" * (1 << 20)]
    stream = b"\0" * (4 * 200_000)
    count = 0
    for i in range(0, len(stream), 3):
        count += len(decoder.feed(stream[i : i + 3]))
    assert count == 200_000
    assert decoder.buffered == 0
