"""Kafka's primitive wire types: a bounds-checked ``Reader`` and a ``Writer`` (PROTOCOL.md §2).

Everything is big-endian.  Classic types carry INT16 (strings) or INT32 (bytes, arrays) lengths with
-1 for null; the flexible ("compact") variants carry an unsigned varint N+1 with 0 for null.  A
tagged-field section is an unsigned varint count, then (tag, size, bytes) triples.

The Reader reads from untrusted bytes, so every read checks what is left *before* it slices or
allocates: a string that claims 30000 bytes when 12 remain, or an array that claims 2**31 elements
of at least 4 bytes each, fails at once with a ``ProtocolError`` naming what was being read and where;
no read ever surfaces ``IndexError`` or ``struct.error``.  Array lengths are checked against a minimum
element size supplied by the caller, so a claimed count can never make the decoder loop or allocate
beyond what the remaining bytes could hold.

The Writer appends to a ``bytearray``.  ``records`` values (fetch payloads) may be large or may not
be bytes at all (a file region the server hands to ``os.sendfile``), so the Writer keeps them out of
its buffer: it closes the current chunk and puts the value into ``parts`` as it is.  Record payloads
under ``INLINE_RECORDS`` bytes are copied into the buffer instead, which keeps the part list short
when a response carries many small partitions.
"""

from __future__ import annotations

import struct
import uuid

from .errors import EncodeError, ProtocolError

__all__ = ["INLINE_RECORDS", "NULL_UUID", "Reader", "Writer"]

NULL_UUID = uuid.UUID(int=0)
INLINE_RECORDS = 4096

_I8, _I16, _I32, _I64 = struct.Struct(">b"), struct.Struct(">h"), struct.Struct(">i"), struct.Struct(">q")
_U16, _U32, _F64 = struct.Struct(">H"), struct.Struct(">I"), struct.Struct(">d")
_BYTES_LIKE = (bytes, bytearray, memoryview)


class Reader:
    """Reads primitives from ``buf[pos:end]``; ``pos`` advances past what was read."""

    __slots__ = ("buf", "pos", "end")

    def __init__(self, data, pos: int = 0, end: int | None = None):
        buf = data if isinstance(data, memoryview) else memoryview(data)
        if buf.format != "B" or buf.ndim != 1:
            buf = buf.cast("B")
        self.buf = buf
        self.pos = pos
        self.end = len(buf) if end is None else end

    def remaining(self) -> int:
        return self.end - self.pos

    def _short(self, n: int, what: str) -> ProtocolError:
        return ProtocolError(f"{what} needs {n} bytes at offset {self.pos} but only {self.end - self.pos} are left")

    def _fixed(self, codec: struct.Struct, what: str):
        pos = self.pos
        if pos + codec.size > self.end:
            raise self._short(codec.size, what)
        self.pos = pos + codec.size
        return codec.unpack_from(self.buf, pos)[0]

    def int8(self) -> int:
        return self._fixed(_I8, "int8")

    def int16(self) -> int:
        return self._fixed(_I16, "int16")

    def int32(self) -> int:
        return self._fixed(_I32, "int32")

    def int64(self) -> int:
        return self._fixed(_I64, "int64")

    def uint16(self) -> int:
        return self._fixed(_U16, "uint16")

    def uint32(self) -> int:
        return self._fixed(_U32, "uint32")

    def float64(self) -> float:
        return self._fixed(_F64, "float64")

    def bool(self) -> bool:
        pos = self.pos
        if pos >= self.end:
            raise self._short(1, "bool")
        self.pos = pos + 1
        return self.buf[pos] != 0  # Kafka: 0 is false, anything else true

    def uuid(self) -> uuid.UUID:
        pos = self.pos
        if pos + 16 > self.end:
            raise self._short(16, "uuid")
        self.pos = pos + 16
        return uuid.UUID(bytes=bytes(self.buf[pos:pos + 16]))

    def raw(self, n: int, what: str = "bytes") -> memoryview:
        """The next ``n`` bytes as a zero-copy slice."""
        pos = self.pos
        if n > self.end - pos:
            raise ProtocolError(f"{what} of length {n} at offset {pos} runs past the end ({self.end - pos} bytes left)")
        self.pos = pos + n
        return self.buf[pos:pos + n]

    # -- varints -----------------------------------------------------------------------------------

    def uvarint(self, max_bytes: int = 5, what: str = "unsigned varint") -> int:
        """Unsigned varint, no zigzag; at most 5 bytes (32 bits) unless ``max_bytes`` says otherwise."""
        buf, pos, end = self.buf, self.pos, self.end
        result = shift = 0
        for i in range(max_bytes):
            if pos >= end:
                self.pos = pos
                raise ProtocolError(f"{what} truncated at offset {pos}")
            byte = buf[pos]
            pos += 1
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                self.pos = pos
                return result
            shift += 7
        raise ProtocolError(f"{what} at offset {self.pos} is longer than {max_bytes} bytes")

    def uvarlong(self) -> int:
        return self.uvarint(10, "unsigned varlong")

    def varint(self) -> int:
        """Zigzag-encoded signed 32-bit varint (as in records)."""
        n = self.uvarint(5, "varint")
        return (n >> 1) ^ -(n & 1)

    def varlong(self) -> int:
        n = self.uvarint(10, "varlong")
        return (n >> 1) ^ -(n & 1)

    # -- lengths -----------------------------------------------------------------------------------

    def _length(self, compact: bool, what: str) -> int:
        """A classic INT16/INT32 length or a compact N+1 varint; -1 means null in both cases."""
        if compact:
            return self.uvarint(5, f"{what} length") - 1
        return self.int16() if what == "string" else self.int32()

    def array_length(self, compact: bool, min_size: int) -> int:
        """Element count (-1 for null), checked against the bytes left at ``min_size`` bytes each."""
        n = self.uvarint(5, "array length") - 1 if compact else self.int32()
        if n < -1:
            raise ProtocolError(f"negative array length {n} at offset {self.pos}")
        if n > 0 and n * max(min_size, 1) > self.end - self.pos:
            raise ProtocolError(f"array of {n} elements (at least {max(min_size, 1)} bytes each) "
                                f"does not fit in the {self.end - self.pos} bytes left")
        return n

    # -- strings and bytes -------------------------------------------------------------------------

    def string(self, compact: bool = False, nullable: bool = False, errors: str = "strict") -> str | None:
        n = self._length(compact, "string")
        if n < 0:
            if n == -1 and nullable:
                return None
            raise ProtocolError("null string in a non-nullable field" if n == -1 else f"negative string length {n}")
        data = self.raw(n, "string")
        try:
            return str(data, "utf-8", errors)
        except UnicodeDecodeError as exc:
            raise ProtocolError(f"string is not valid UTF-8 ({exc.reason} at byte {exc.start})") from None

    def bytes(self, compact: bool = False, nullable: bool = False) -> bytes | None:
        data = self.records(compact, nullable, "bytes")
        return None if data is None else bytes(data)

    def records(self, compact: bool = False, nullable: bool = True, what: str = "records") -> memoryview | None:
        """NULLABLE_BYTES / COMPACT_RECORDS as a zero-copy memoryview (None for null)."""
        n = self._length(compact, what)
        if n < 0:
            if n == -1 and nullable:
                return None
            raise ProtocolError(f"null {what} in a non-nullable field" if n == -1 else f"negative {what} length {n}")
        return self.raw(n, what)


class Writer:
    """Appends primitives; ``finish()`` gives the buffers, ``getvalue()`` the joined bytes."""

    __slots__ = ("buf", "parts", "passed")

    def __init__(self, reserve: int = 0):
        self.buf = bytearray(reserve)
        self.parts: list = []  # closed chunks (bytearray) and passed-through values (wrapped in a 1-tuple)
        self.passed = 0  # bytes in passed-through values

    def int8(self, v: int) -> None:
        self.buf += _I8.pack(v)

    def int16(self, v: int) -> None:
        self.buf += _I16.pack(v)

    def int32(self, v: int) -> None:
        self.buf += _I32.pack(v)

    def int64(self, v: int) -> None:
        self.buf += _I64.pack(v)

    def uint16(self, v: int) -> None:
        self.buf += _U16.pack(v)

    def uint32(self, v: int) -> None:
        self.buf += _U32.pack(v)

    def float64(self, v: float) -> None:
        self.buf += _F64.pack(v)

    def bool(self, v) -> None:
        self.buf.append(1 if v else 0)

    def uuid(self, v) -> None:
        if isinstance(v, uuid.UUID):
            self.buf += v.bytes
        elif isinstance(v, _BYTES_LIKE) and len(v) == 16:
            self.buf += v
        else:
            raise EncodeError(f"a uuid must be a uuid.UUID or 16 bytes, not {v!r}")

    def uvarint(self, v: int) -> None:
        if v < 0 or v > 0xFFFFFFFFFFFFFFFF:
            raise EncodeError(f"unsigned varint cannot hold {v}")
        buf = self.buf
        while v >= 0x80:
            buf.append((v & 0x7F) | 0x80)
            v >>= 7
        buf.append(v)

    def varint(self, v: int) -> None:
        if not -(1 << 31) <= v < 1 << 31:
            raise EncodeError(f"varint cannot hold {v}")
        self.uvarint(((v << 1) ^ (v >> 31)) & 0xFFFFFFFF)

    def varlong(self, v: int) -> None:
        if not -(1 << 63) <= v < 1 << 63:
            raise EncodeError(f"varlong cannot hold {v}")
        self.uvarint(((v << 1) ^ (v >> 63)) & 0xFFFFFFFFFFFFFFFF)

    def length(self, n: int, compact: bool, short: bool = False) -> None:
        """A length prefix: compact N+1 varint, or INT16 (``short``, strings) / INT32; -1 is null."""
        if compact:
            self.uvarint(n + 1)
        elif short:
            self.buf += _I16.pack(n)
        else:
            self.buf += _I32.pack(n)

    def string(self, v: str | None, compact: bool = False, nullable: bool = False) -> None:
        if v is None:
            if not nullable:
                raise EncodeError("null is not allowed in this non-nullable string")
            self.length(-1, compact, short=True)
            return
        data = v.encode("utf-8")
        if len(data) > 0x7FFF:
            raise EncodeError(f"string of {len(data)} bytes is longer than 32767")
        self.length(len(data), compact, short=True)
        self.buf += data

    def bytes(self, v, compact: bool = False, nullable: bool = False) -> None:
        if v is None:
            if not nullable:
                raise EncodeError("null is not allowed in this non-nullable bytes field")
            self.length(-1, compact)
            return
        if not isinstance(v, _BYTES_LIKE):
            raise EncodeError(f"bytes expected, not {type(v).__name__}")
        self.length(v.nbytes if isinstance(v, memoryview) else len(v), compact)
        self.buf += v

    def records(self, v, compact: bool = False, nullable: bool = True) -> None:
        """Length prefix, then the value: copied if small bytes, otherwise its own part, as it is."""
        if v is None:
            if not nullable:
                raise EncodeError("null is not allowed in this non-nullable records field")
            self.length(-1, compact)
            return
        n = v.nbytes if isinstance(v, memoryview) else len(v)
        self.length(n, compact)
        if n < INLINE_RECORDS and isinstance(v, _BYTES_LIKE):
            self.buf += v
        elif n:
            self.parts.append(self.buf)
            self.parts.append((v,))
            self.passed += n
            self.buf = bytearray()

    def raw(self, data) -> None:
        self.buf += data

    def nbytes(self) -> int:
        """Everything written so far, passed-through values included."""
        return len(self.buf) + self.passed + sum(len(p) for p in self.parts if type(p) is bytearray)

    def finish(self) -> list:
        """Every chunk in order: the codec's own bytes as ``bytes``, records values as given."""
        parts = self.parts + [self.buf]
        self.parts, self.buf, self.passed = [], bytearray(), 0
        return [p[0] if type(p) is tuple else bytes(p) for p in parts if type(p) is tuple or p]

    def finish_frame(self) -> list:
        """``finish()`` after writing the size into the 4 bytes reserved at the start (``Writer(4)``)."""
        first = self.parts[0] if self.parts else self.buf
        _I32.pack_into(first, 0, self.nbytes() - 4)
        return self.finish()

    def getvalue(self) -> bytes:
        if not self.parts:
            return bytes(self.buf)
        return b"".join(self.finish())
