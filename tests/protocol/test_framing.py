"""FrameDecoder: length-prefixed frames out of a stream delivered in arbitrary pieces."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from logbroker.protocol import DEFAULT_MAX_FRAME_BYTES, FrameDecoder, ProtocolError

from .test_golden import API_VERSIONS_V0_REQUEST, METADATA_V4_REQUEST, PRODUCE_V7_REQUEST

STREAM = API_VERSIONS_V0_REQUEST + METADATA_V4_REQUEST + PRODUCE_V7_REQUEST
FRAMES = [API_VERSIONS_V0_REQUEST[4:], METADATA_V4_REQUEST[4:], PRODUCE_V7_REQUEST[4:]]


def frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


def test_one_feed_many_frames():
    decoder = FrameDecoder()
    assert decoder.feed(STREAM) == FRAMES
    assert decoder.buffered == 0


def test_byte_by_byte():
    decoder = FrameDecoder()
    out = []
    for i in range(len(STREAM)):
        got = decoder.feed(STREAM[i:i + 1])
        out += got
        # a frame comes out exactly when its last byte arrives
        assert bool(got) == (i + 1 in (len(API_VERSIONS_V0_REQUEST), len(API_VERSIONS_V0_REQUEST)
                                       + len(METADATA_V4_REQUEST), len(STREAM)))
    assert out == FRAMES


@given(st.lists(st.binary(max_size=50), max_size=8), st.data())
def test_any_split_gives_the_same_frames(payloads, data):
    stream = b"".join(frame(p) for p in payloads)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    decoder = FrameDecoder()
    out = []
    for start, end in zip([0] + cuts, cuts + [len(stream)]):
        out += decoder.feed(stream[start:end])
    assert out == payloads
    assert decoder.buffered == 0


def test_empty_frames_and_empty_feeds():
    decoder = FrameDecoder()
    assert decoder.feed(b"") == []
    assert decoder.feed(b"\x00\x00\x00\x00" * 2) == [b"", b""]


def test_accepts_memoryview_and_bytearray():
    decoder = FrameDecoder()
    assert decoder.feed(memoryview(STREAM)[:10]) == []
    assert decoder.feed(bytearray(STREAM[10:])) == FRAMES


def test_negative_length_prefix_is_refused():
    decoder = FrameDecoder()
    with pytest.raises(ProtocolError, match="frame length -1 is negative"):
        decoder.feed(b"\xff\xff\xff\xff")


def test_oversized_length_prefix_is_refused_before_buffering():
    decoder = FrameDecoder(max_frame_bytes=100)
    assert decoder.feed(frame(b"x" * 100)) == [b"x" * 100]  # exactly the limit is fine
    with pytest.raises(ProtocolError, match="frame length 101 exceeds the limit of 100 bytes"):
        decoder.feed(struct.pack(">i", 101))
    assert decoder.buffered == 0
    assert FrameDecoder().max_frame_bytes == DEFAULT_MAX_FRAME_BYTES == 100 * 1024 * 1024
    with pytest.raises(ProtocolError, match="exceeds"):
        FrameDecoder().feed(struct.pack(">i", DEFAULT_MAX_FRAME_BYTES + 1))


def test_a_failed_stream_stays_failed():
    decoder = FrameDecoder()
    with pytest.raises(ProtocolError):
        decoder.feed(b"\x80\x00\x00\x00")
    with pytest.raises(ProtocolError, match="already failed"):
        decoder.feed(API_VERSIONS_V0_REQUEST)


def test_a_frame_after_complete_ones_in_the_same_feed_is_refused_too():
    decoder = FrameDecoder(max_frame_bytes=1000)
    with pytest.raises(ProtocolError):
        decoder.feed(API_VERSIONS_V0_REQUEST + struct.pack(">i", 5000))


def test_large_frame_fed_in_small_pieces():
    payload = bytes(range(256)) * 4096  # 1 MiB
    decoder = FrameDecoder()
    data = frame(payload)
    out = []
    for i in range(0, len(data), 1000):
        out += decoder.feed(data[i:i + 1000])
    assert out == [payload]
