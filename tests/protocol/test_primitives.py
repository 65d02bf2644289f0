"""Reader and Writer: PROTOCOL.md §2's encodings, and bounds checks on every read."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from logbroker.protocol import EncodeError, ProtocolError
from logbroker.protocol.primitives import INLINE_RECORDS, Reader, Writer


def written(method: str, *args, **kwargs) -> bytes:
    w = Writer()
    getattr(w, method)(*args, **kwargs)
    return w.getvalue()


@pytest.mark.parametrize("value, encoded", [(0, "00"), (1, "01"), (127, "7f"), (128, "80 01"), (300, "ac 02"),
                                            (2**32 - 1, "ff ff ff ff 0f")])
def test_unsigned_varints_from_protocol_md(value, encoded):
    assert written("uvarint", value) == bytes.fromhex(encoded)
    assert Reader(bytes.fromhex(encoded)).uvarint() == value


@pytest.mark.parametrize("value, zigzag", [(0, 0), (-1, 1), (1, 2), (-2, 3), (2**31 - 1, 2**32 - 2),
                                           (-2**31, 2**32 - 1)])
def test_signed_varints_are_zigzag(value, zigzag):
    assert written("varint", value) == written("uvarint", zigzag)
    assert Reader(written("varint", value)).varint() == value


@given(st.integers(0, 2**32 - 1), st.integers(-2**31, 2**31 - 1), st.integers(-2**63, 2**63 - 1),
       st.integers(0, 2**64 - 1))
def test_varints_round_trip(u, i, long, ulong):
    w = Writer()
    w.uvarint(u)
    w.varint(i)
    w.varlong(long)
    w.uvarint(ulong)
    r = Reader(w.getvalue())
    assert (r.uvarint(), r.varint(), r.varlong(), r.uvarlong()) == (u, i, long, ulong)
    assert r.remaining() == 0


def test_varint_range_is_checked_on_both_sides():
    with pytest.raises(EncodeError):
        written("varint", 2**31)
    with pytest.raises(EncodeError):
        written("uvarint", -1)
    with pytest.raises(ProtocolError, match="longer than 5 bytes"):
        Reader(b"\xff" * 5 + b"\x01").uvarint()
    with pytest.raises(ProtocolError, match="unsigned varint truncated at offset 2"):
        Reader(b"\xff\xff").uvarint()


FIXED = [("int8", -128, "80"), ("int16", -2, "ff fe"), ("int32", 30000, "00 00 75 30"),
         ("int64", -1, "ff" * 8), ("uint16", 65535, "ff ff"), ("uint32", 2**32 - 1, "ff ff ff ff"),
         ("float64", 1.5, "3f f8 00 00 00 00 00 00")]


@pytest.mark.parametrize("kind, value, encoded", FIXED, ids=[f[0] for f in FIXED])
def test_fixed_width_types_are_big_endian(kind, value, encoded):
    data = bytes.fromhex(encoded)
    assert written(kind, value) == data
    assert getattr(Reader(data), kind)() == value
    for cut in range(len(data)):
        with pytest.raises(ProtocolError, match=f"{kind} needs {len(data)} bytes at offset 0 but only {cut} are left"):
            getattr(Reader(data[:cut]), kind)()


def test_bool_and_uuid():
    assert [Reader(bytes([b])).bool() for b in (0, 1, 2, 255)] == [False, True, True, True]
    assert written("bool", True) == b"\x01" and written("bool", 0) == b"\x00"
    u = uuid.UUID("0123456789abcdef0123456789abcdef")
    assert written("uuid", u) == u.bytes == written("uuid", u.bytes)
    assert Reader(u.bytes).uuid() == u
    with pytest.raises(ProtocolError):
        Reader(u.bytes[:15]).uuid()
    with pytest.raises(EncodeError):
        written("uuid", "not a uuid")


STRINGS = [  # (value, compact, nullable, encoded)
    ("ab", False, False, "00 02 61 62"), ("", False, False, "00 00"), (None, False, True, "ff ff"),
    ("ab", True, False, "03 61 62"), ("", True, False, "01"), (None, True, True, "00"),
    ("é", False, False, "00 02 c3 a9"),
]


@pytest.mark.parametrize("value, compact, nullable, encoded", STRINGS)
def test_strings(value, compact, nullable, encoded):
    data = bytes.fromhex(encoded)
    assert written("string", value, compact, nullable) == data
    assert Reader(data).string(compact, nullable) == value


@pytest.mark.parametrize("compact, encoded", [(False, "ff ff"), (True, "00")])
def test_null_strings_need_nullable(compact, encoded):
    with pytest.raises(ProtocolError, match="null string in a non-nullable field"):
        Reader(bytes.fromhex(encoded)).string(compact, nullable=False)
    with pytest.raises(EncodeError):
        written("string", None, compact, False)


BYTES = [(b"xy", False, "00 00 00 02 78 79"), (b"", False, "00 00 00 00"), (None, False, "ff ff ff ff"),
         (b"xy", True, "03 78 79"), (b"", True, "01"), (None, True, "00")]


@pytest.mark.parametrize("value, compact, encoded", BYTES)
def test_bytes_and_records(value, compact, encoded):
    data = bytes.fromhex(encoded)
    assert written("bytes", value, compact, nullable=True) == data
    assert written("records", value, compact) == data
    assert Reader(data).bytes(compact, nullable=True) == value
    got = Reader(data).records(compact)
    assert got == value and (got is None or isinstance(got, memoryview))


def test_records_share_the_frame_memory():
    frame = bytearray(b"\x00\x00\x00\x03abc")
    view = Reader(frame).records()
    frame[4] = ord("z")
    assert bytes(view) == b"zbc"


@pytest.mark.parametrize("compact, encoded", [(False, "00 00 00 05 61"), (True, "06 61")])
def test_lengths_past_the_end_are_refused(compact, encoded):
    with pytest.raises(ProtocolError, match="bytes of length 5 at offset .* runs past the end"):
        Reader(bytes.fromhex(encoded)).bytes(compact)


def test_array_lengths_are_checked_against_the_minimum_element_size():
    assert Reader(b"\x00\x00\x00\x02" + b"\x00" * 8).array_length(False, 4) == 2
    with pytest.raises(ProtocolError, match="array of 3 elements .* does not fit in the 8 bytes left"):
        Reader(b"\x00\x00\x00\x03" + b"\x00" * 8).array_length(False, 4)
    assert Reader(b"\xff\xff\xff\xff").array_length(False, 4) == -1
    assert Reader(b"\x00").array_length(True, 1) == -1
    assert Reader(b"\x01").array_length(True, 1) == 0
    with pytest.raises(ProtocolError, match="does not fit"):  # a zero-size element still counts as one byte
        Reader(b"\x7f\xff\xff\xff").array_length(False, 0)


def test_reader_over_a_slice_of_a_memoryview():
    data = memoryview(b"..\x00\x01x..")
    r = Reader(data, 2, 5)
    assert r.string() == "x" and r.remaining() == 0
    with pytest.raises(ProtocolError):
        r.int8()


def test_writer_keeps_large_or_foreign_records_as_separate_parts():
    class Region:
        def __len__(self):
            return 5

    region, big = Region(), b"B" * INLINE_RECORDS
    w = Writer(4)
    w.int16(1)
    w.records(region)
    w.records(b"tiny")
    w.records(big)
    w.int8(9)
    assert w.nbytes() == 4 + 2 + (4 + 5) + (4 + 4) + (4 + INLINE_RECORDS) + 1
    parts = w.finish_frame()
    assert parts[1] is region and parts[3] is big
    assert parts[0] == (w_size := (4 + 2 + 9 + 8 + 4 + INLINE_RECORDS + 1 - 4)).to_bytes(4, "big") + b"\x00\x01" \
        + b"\x00\x00\x00\x05"
    assert parts[2] == b"\x00\x00\x00\x04tiny" + len(big).to_bytes(4, "big")
    assert parts[4] == b"\x09"
    assert w_size == sum(len(p) for p in parts) - 4
