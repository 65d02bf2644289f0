"""Zigzag varints / varlongs and unsigned varints (FORMAT.md §2.1)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from logbroker.errors import CorruptRecordError
from logbroker.records.varint import (
    SMALL,
    decode_uvarint,
    decode_varint,
    encode_uvarint,
    encode_varint,
    zigzag,
)

INT32 = st.integers(-(2**31), 2**31 - 1)
INT64 = st.integers(-(2**63), 2**63 - 1)
UINT64 = st.integers(0, 2**64 - 1)

# FORMAT.md §2.1, byte for byte.
VARINT_TABLE = [
    (0, "00"),
    (-1, "01"),
    (1, "02"),
    (-2, "03"),
    (2, "04"),
    (63, "7e"),
    (-64, "7f"),
    (64, "80 01"),
    (-65, "81 01"),
    (150, "ac 02"),
    (300, "d8 04"),
    (8191, "fe 7f"),
    (8192, "80 80 01"),
    (2147483647, "fe ff ff ff 0f"),
    (-2147483648, "ff ff ff ff 0f"),
]
VARLONG_TS = (1700000000000, "80 a0 ab fe f9 62")


def _reference_signed(value: int) -> bytes:
    """Independent protobuf-style zigzag + LEB128, for comparison."""
    raw = (value << 1) if value >= 0 else ((-value) << 1) - 1
    out = bytearray()
    while True:
        group = raw & 0x7F
        raw >>= 7
        if raw:
            out.append(group | 0x80)
        else:
            out.append(group)
            return bytes(out)


@pytest.mark.parametrize("value,hexbytes", VARINT_TABLE, ids=[str(v) for v, _ in VARINT_TABLE])
def test_varint_table_encode(value, hexbytes):
    assert encode_varint(value) == bytes.fromhex(hexbytes)


@pytest.mark.parametrize("value,hexbytes", VARINT_TABLE, ids=[str(v) for v, _ in VARINT_TABLE])
def test_varint_table_decode(value, hexbytes):
    data = bytes.fromhex(hexbytes)
    assert decode_varint(data, 0, 5) == (value, len(data))
    # Decoding in the middle of a buffer returns the position right after the varint.
    padded = b"\xaa\xbb" + data + b"\xff\x01"
    assert decode_varint(padded, 2, 5) == (value, 2 + len(data))


def test_varlong_timestamp_from_table():
    value, hexbytes = VARLONG_TS
    data = bytes.fromhex(hexbytes)
    assert encode_varint(value) == data
    assert decode_varint(data, 0, 10) == (value, 6)
    assert decode_varint(data, 0) == (value, 6)  # default max is a varlong's 10 bytes
    # Six bytes are too many for a 32-bit varint.
    with pytest.raises(CorruptRecordError):
        decode_varint(data, 0, 5)


def test_zigzag_mapping():
    assert [zigzag(v) for v in (0, -1, 1, -2, 2)] == [0, 1, 2, 3, 4]
    assert zigzag(2**63 - 1) == 2**64 - 2
    assert zigzag(-(2**63)) & 0xFFFFFFFFFFFFFFFF == 2**64 - 1


@pytest.mark.parametrize("value", [-SMALL - 1, -SMALL, -SMALL + 1, SMALL - 1, SMALL, SMALL + 1,
                                   2**31, -(2**31) - 1, 2**63 - 1, -(2**63)])
def test_table_boundaries_and_extremes(value):
    # encode_varint serves [-SMALL, SMALL) from a table; both sides of the edge must agree.
    data = encode_varint(value)
    assert data == _reference_signed(value)
    assert decode_varint(data, 0, 10) == (value, len(data))


def test_int64_extremes_take_ten_bytes():
    assert encode_varint(2**63 - 1) == b"\xfe" + b"\xff" * 8 + b"\x01"
    assert encode_varint(-(2**63)) == b"\xff" * 9 + b"\x01"


@given(INT32)
def test_varint_int32_round_trip(value):
    data = encode_varint(value)
    assert 1 <= len(data) <= 5
    assert data == _reference_signed(value)
    assert decode_varint(data, 0, 5) == (value, len(data))


@given(INT64)
def test_varlong_int64_round_trip(value):
    data = encode_varint(value)
    assert 1 <= len(data) <= 10
    assert data == _reference_signed(value)
    assert decode_varint(data, 0, 10) == (value, len(data))


@given(st.lists(INT64, min_size=1, max_size=20))
def test_concatenated_varlongs_decode_in_sequence(values):
    buf = b"".join(encode_varint(v) for v in values)
    pos = 0
    out = []
    for _ in values:
        v, pos = decode_varint(buf, pos, 10)
        out.append(v)
    assert out == values
    assert pos == len(buf)


@pytest.mark.parametrize("value,hexbytes", [
    (0, "00"), (1, "01"), (127, "7f"), (128, "80 01"), (300, "ac 02"),
    (16383, "ff 7f"), (16384, "80 80 01"), (2**32 - 1, "ff ff ff ff 0f"),
    (2**64 - 1, "ff ff ff ff ff ff ff ff ff 01"),
])
def test_uvarint_known_values(value, hexbytes):
    data = bytes.fromhex(hexbytes)
    assert encode_uvarint(value) == data
    assert decode_uvarint(data, 0) == (value, len(data))


@given(UINT64)
def test_uvarint_round_trip(value):
    data = encode_uvarint(value)
    assert 1 <= len(data) <= 10
    assert all(b & 0x80 for b in data[:-1]) and data[-1] < 0x80
    assert decode_uvarint(data, 0) == (value, len(data))
    if value < 2**32:
        assert len(data) <= 5
        assert decode_uvarint(data, 0, 5) == (value, len(data))


def test_uvarint_refuses_negative():
    with pytest.raises(ValueError):
        encode_uvarint(-1)


@given(INT64)
def test_every_truncation_of_a_varlong_is_corrupt(value):
    data = encode_varint(value)
    for cut in range(len(data)):
        with pytest.raises(CorruptRecordError):
            decode_varint(data[:cut], 0, 10)
        with pytest.raises(CorruptRecordError):
            decode_uvarint(data[:cut], 0, 10)


def test_truncated_varint_at_offset():
    buf = b"\x00\x00\x80\x80"  # continuation bits set up to the end of the buffer
    with pytest.raises(CorruptRecordError, match="past the end"):
        decode_varint(buf, 2, 5)
    with pytest.raises(CorruptRecordError):
        decode_varint(buf, 4, 5)  # nothing at all left


@pytest.mark.parametrize("data,max_bytes", [
    (b"\x80\x80\x80\x80\x80\x00", 5),   # 6-byte varint
    (b"\xff\xff\xff\xff\xff\x01", 5),
    (b"\x80" * 10 + b"\x00", 10),       # 11-byte varlong
    (b"\xff" * 10 + b"\x01", 10),
])
def test_overlong_varint_is_corrupt(data, max_bytes):
    with pytest.raises(CorruptRecordError, match="longer than"):
        decode_varint(data, 0, max_bytes)
    with pytest.raises(CorruptRecordError, match="longer than"):
        decode_uvarint(data, 0, max_bytes)


def _pad(data: bytes, total: int) -> bytes:
    """The same value in a non-canonical, longer form: extra zero groups with continuation bits."""
    extra = total - len(data)
    return data[:-1] + bytes([data[-1] | 0x80]) + b"\x80" * (extra - 1) + b"\x00"


@given(INT32)
def test_varint_limit_is_exact(value):
    # Padded encodings of up to max_bytes still decode (Kafka reads them too); one byte more is
    # an overlong varint.
    data = encode_varint(value)
    if len(data) < 5:
        assert decode_varint(_pad(data, 5), 0, 5) == (value, 5)
    with pytest.raises(CorruptRecordError, match="longer than 5 bytes"):
        decode_varint(_pad(data, 6), 0, 5)


@given(INT64)
def test_varlong_limit_is_exact(value):
    data = encode_varint(value)
    if len(data) < 10:
        assert decode_varint(_pad(data, 10), 0, 10) == (value, 10)
    with pytest.raises(CorruptRecordError, match="longer than 10 bytes"):
        decode_varint(_pad(data, 11), 0, 10)
