"""Kafka's schema primitives for the group records and the consumer-protocol blobs.

Two encodings exist (PROTOCOL.md §2):

* classic: int16-length strings (-1 = null), int32-length bytes (-1 = null), int32-count arrays;
* flexible ("compact"): unsigned-varint lengths stored as length + 1 (0 = null), and a tagged-field
  section (an unsigned-varint count, then tag / size / bytes) closing every struct.

``Writer`` builds bytes; ``Reader`` walks them and raises the error class it was given (the offsets
log uses ``CorruptRecordError``) naming what was being decoded, the field and the byte position, so a
damaged record is reported rather than misread.  Neither knows any schema: the codecs in
``offsets_log`` and ``consumer_protocol`` spell the field order out.
"""

from __future__ import annotations

import struct

from ..errors import CorruptRecordError, LogbrokerError
from ..records.varint import decode_uvarint, encode_uvarint

_INT16 = struct.Struct(">h")
_INT32 = struct.Struct(">i")
_INT64 = struct.Struct(">q")


class Writer:
    """Append-only builder; ``compact=True`` selects the flexible encodings for one call."""

    def __init__(self) -> None:
        self._out = bytearray()

    def getvalue(self) -> bytes:
        return bytes(self._out)

    def int16(self, value: int) -> None:
        self._out += _INT16.pack(value)

    def int32(self, value: int) -> None:
        self._out += _INT32.pack(value)

    def int64(self, value: int) -> None:
        self._out += _INT64.pack(value)

    def uvarint(self, value: int) -> None:
        self._out += encode_uvarint(value)

    def string(self, value: str | None, *, compact: bool = False) -> None:
        self.bytes_(None if value is None else value.encode("utf-8"), compact=compact, short=True)

    def bytes_(self, value: bytes | None, *, compact: bool = False, short: bool = False) -> None:
        """Length-prefixed bytes (int16 length when ``short``, as strings are); None is null."""
        if compact:
            self.uvarint(0 if value is None else len(value) + 1)
        elif short:
            if value is not None and len(value) > 0x7FFF:
                raise ValueError(f"string of {len(value)} bytes does not fit an int16 length")
            self.int16(-1 if value is None else len(value))
        else:
            self.int32(-1 if value is None else len(value))
        if value is not None:
            self._out += value

    def array_length(self, count: int, *, compact: bool = False) -> None:
        if compact:
            self.uvarint(count + 1)
        else:
            self.int32(count)

    def no_tagged_fields(self) -> None:
        self.uvarint(0)


class Reader:
    """Cursor over ``data``; every failure raises ``error`` naming ``what``, the field and the offset."""

    def __init__(self, data: bytes, what: str, error: type[LogbrokerError] = CorruptRecordError):
        self.data = memoryview(bytes(data))
        self.pos = 0
        self.what = what
        self.error = error

    def fail(self, message: str) -> LogbrokerError:
        return self.error(f"{self.what}: {message} (at byte {self.pos} of {len(self.data)})")

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos

    def _take(self, size: int, field: str) -> memoryview:
        if size > self.remaining:
            raise self.fail(f"truncated {field}: needs {size} bytes, {self.remaining} left")
        chunk = self.data[self.pos:self.pos + size]
        self.pos += size
        return chunk

    def int16(self, field: str) -> int:
        return _INT16.unpack(self._take(2, field))[0]

    def int32(self, field: str) -> int:
        return _INT32.unpack(self._take(4, field))[0]

    def int64(self, field: str) -> int:
        return _INT64.unpack(self._take(8, field))[0]

    def uvarint(self, field: str) -> int:
        try:
            value, self.pos = decode_uvarint(self.data, self.pos, 5)
        except CorruptRecordError as exc:
            raise self.fail(f"bad varint in {field}: {exc}") from None
        except IndexError:
            raise self.fail(f"truncated varint in {field}") from None
        return value

    def _length(self, field: str, compact: bool, short: bool) -> int:
        if compact:
            return self.uvarint(field) - 1
        return self.int16(field) if short else self.int32(field)

    def bytes_(self, field: str, *, nullable: bool = False, compact: bool = False,
               short: bool = False) -> bytes | None:
        size = self._length(field, compact, short)
        if size < 0:
            if size == -1 and nullable:
                return None
            raise self.fail(f"{field} has length {size}" + ("" if nullable else " but is not nullable"))
        return bytes(self._take(size, field))

    def string(self, field: str, *, nullable: bool = False, compact: bool = False) -> str | None:
        raw = self.bytes_(field, nullable=nullable, compact=compact, short=True)
        if raw is None:
            return None
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise self.fail(f"{field} is not UTF-8") from None

    def array_length(self, field: str, *, compact: bool = False) -> int:
        count = self.uvarint(field) - 1 if compact else self.int32(field)
        if count < 0:
            raise self.fail(f"{field} array is null or has count {count}")
        if count > self.remaining:  # every element takes at least one byte: refuse absurd counts early
            raise self.fail(f"{field} claims {count} elements with {self.remaining} bytes left")
        return count

    def skip_tagged_fields(self, field: str) -> None:
        """Tagged fields are optional by definition; the ones we do not know are skipped."""
        for _ in range(self.uvarint(f"{field} tag count")):
            self.uvarint(f"{field} tag")
            self._take(self.uvarint(f"{field} tag size"), f"{field} tagged field")

    def expect_end(self) -> None:
        if self.remaining:
            raise self.fail(f"{self.remaining} unexpected trailing bytes")
