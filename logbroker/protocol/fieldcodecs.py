"""Readers and writers for one field's type: primitives, arrays of primitives or of structs, and
nullable structs.

``compiler.py`` asks for a ``TypeCodec`` per field and version; the choice between classic and
compact encodings and between nullable and not is made here, once, so the closures returned do no
such branching per call.  Arrays check their claimed length against the bytes left before reading
an element (``Reader.array_length``); arrays of fixed-width numbers are read and written with one
``struct`` call.  A nullable struct (ShareGroupHeartbeat's ``assignment``) is Kafka's INT8 marker,
-1 for null and 1 before a present struct; as Kafka's readers do, any negative marker reads as null.
"""

from __future__ import annotations

import struct
from typing import Any, Callable, NamedTuple

from .errors import EncodeError, ProtocolError
from .primitives import Reader, Writer

__all__ = ["ENCODE_FAILURES", "FIXED_CODES", "TypeCodec", "array", "nullable_struct", "primitive", "scalar_array"]

_FIXED = {  # type -> (struct code, size)
    "int8": ("b", 1), "int16": ("h", 2), "int32": ("i", 4), "int64": ("q", 8),
    "uint16": ("H", 2), "uint32": ("I", 4), "float64": ("d", 8),
}
_I32 = struct.Struct(">i")
FIXED_CODES = {t: code for t, (code, _) in _FIXED.items()} | {"bool": "?"}
ENCODE_FAILURES = (struct.error, TypeError, ValueError, OverflowError, AttributeError, UnicodeError)


class TypeCodec(NamedTuple):
    read: Callable
    write: Callable
    min_size: int
    default: Callable[[], Any]  # fresh default value (for absent tagged fields)


def primitive(t: str, compact: bool, nullable: bool):
    """(read, write, min_size) for a non-array type."""
    if t in _FIXED:
        return getattr(Reader, t), getattr(Writer, t), _FIXED[t][1]
    if t == "bool":
        return Reader.bool, Writer.bool, 1
    if t == "uuid":
        return Reader.uuid, Writer.uuid, 16
    size = 1 if compact else (2 if t == "string" else 4)
    if t == "string":
        return (lambda r: r.string(compact, nullable)), (lambda w, v: w.string(v, compact, nullable)), size
    if t == "bytes":
        return (lambda r: r.bytes(compact, nullable)), (lambda w, v: w.bytes(v, compact, nullable)), size
    if t == "records":
        return (lambda r: r.records(compact, nullable)), (lambda w, v: w.records(v, compact, nullable)), size
    raise ValueError(f"unknown type {t!r}")


def _read_count(r: Reader, compact: bool, nullable: bool, min_size: int) -> int:
    n = r.array_length(compact, min_size)
    if n == -1 and not nullable:
        raise ProtocolError("null array in a non-nullable field")
    return n


def _write_null(w: Writer, compact: bool, nullable: bool) -> None:
    if not nullable:
        raise EncodeError("null is not allowed in this non-nullable array")
    w.length(-1, compact)


def _write_count(w: Writer, n: int, compact: bool) -> None:
    if compact:
        w.uvarint(n + 1)
    else:
        w.buf += _I32.pack(n)


def array(read_elem, write_elem, min_size: int, compact: bool, nullable: bool, zero) -> TypeCodec:
    def read(r: Reader):
        n = _read_count(r, compact, nullable, min_size)
        if n < 0:
            return None
        out = []
        i = 0
        try:
            for i in range(n):
                out.append(read_elem(r))
        except ProtocolError as exc:
            exc.add_path(f"[{i}]")
            raise
        return out

    def write(w: Writer, v) -> None:
        if v is None:
            return _write_null(w, compact, nullable)
        _write_count(w, len(v), compact)
        for i, item in enumerate(v):
            try:
                write_elem(w, item)
            except EncodeError as exc:
                exc.add_path(f"[{i}]")
                raise

    return TypeCodec(read, write, 1 if compact else 4, lambda: None if zero is None else list(zero))


def scalar_array(t: str, compact: bool, nullable: bool, zero) -> TypeCodec:
    if t not in _FIXED:
        read_elem, write_elem, size = primitive(t, compact, False)
        return array(read_elem, write_elem, size, compact, nullable, zero)
    code, size = _FIXED[t]

    def read(r: Reader):
        n = _read_count(r, compact, nullable, size)
        if n < 0:
            return None
        pos = r.pos
        r.pos = pos + n * size  # array_length proved the n elements are there
        return list(struct.unpack_from(f">{n}{code}", r.buf, pos))

    def write(w: Writer, v) -> None:
        if v is None:
            return _write_null(w, compact, nullable)
        if compact:
            w.uvarint(len(v) + 1)
            w.buf += struct.pack(f">{len(v)}{code}", *v)
        else:
            w.buf += struct.pack(f">i{len(v)}{code}", len(v), *v)

    return TypeCodec(read, write, 1 if compact else 4, lambda: None if zero is None else list(zero))


def nullable_struct(read_struct, write_struct) -> TypeCodec:
    """A struct that may be null: INT8 -1 for null, else INT8 1 and the struct."""

    def read(r: Reader):
        if r.int8() < 0:
            return None
        return read_struct(r)

    def write(w: Writer, v) -> None:
        if v is None:
            w.buf.append(0xFF)
            return
        w.buf.append(1)
        write_struct(w, v)

    return TypeCodec(read, write, 1, lambda: None)
