"""Variable-length integers as RecordBatch v2 uses them (FORMAT.md §2.1).

Records use *signed* zigzag varints (protobuf's scheme): 0, -1, 1, -2 ... become 0, 1, 2, 3 ...,
then 7 bits per byte, least significant group first, high bit set while more bytes follow.  A varint
is at most 5 bytes, a varlong at most 10.  The flexible wire protocol's *unsigned* varints share the
grouping without the zigzag step.

Encoding small values is the hot path of the record encoder, so ``encode_varint`` serves values in
``[-SMALL, SMALL)`` from a precomputed table.
"""

from __future__ import annotations

from ..errors import CorruptRecordError

SMALL = 1 << 14


def _encode_unsigned(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def encode_uvarint(value: int) -> bytes:
    if value < 0:
        raise ValueError(f"unsigned varint cannot hold {value}")
    return _encode_unsigned(value)


def zigzag(value: int) -> int:
    """Map a signed 64-bit integer to its zigzag form."""
    return (value << 1) ^ (value >> 63)


def _encode_signed(value: int) -> bytes:
    return _encode_unsigned(zigzag(value) & 0xFFFFFFFFFFFFFFFF)


# _SMALL_TABLE[v + SMALL] is the encoding of v for -SMALL <= v < SMALL
_SMALL_TABLE = [_encode_signed(v) for v in range(-SMALL, SMALL)]


def encode_varint(value: int) -> bytes:
    """Zigzag varint (or varlong) bytes for ``value``."""
    if -SMALL <= value < SMALL:
        return _SMALL_TABLE[value + SMALL]
    return _encode_signed(value)


def decode_uvarint(buf, pos: int, max_bytes: int = 10) -> tuple[int, int]:
    """Decode an unsigned varint at ``pos``; return (value, position after it)."""
    result = 0
    shift = 0
    end = len(buf)
    for i in range(max_bytes):
        if pos >= end:
            raise CorruptRecordError(f"varint runs past the end of the buffer at byte {pos}")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
    raise CorruptRecordError(f"varint longer than {max_bytes} bytes ending at byte {pos}")


def decode_varint(buf, pos: int, max_bytes: int = 10) -> tuple[int, int]:
    """Decode a zigzag varint (or varlong) at ``pos``; return (value, position after it)."""
    raw, pos = decode_uvarint(buf, pos, max_bytes)
    return (raw >> 1) ^ -(raw & 1), pos
