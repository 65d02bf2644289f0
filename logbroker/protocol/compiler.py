"""Turns a definition into a decoder and an encoder for one version (the one generic codec).

``compile_struct(fields, version, flexible)`` walks the definition once and returns closures: per
field, a reader and a writer chosen for that version (present or not, in line or tagged, classic or
compact, nullable or not).  Decoding a body is then a loop over a prepared list, with no definition
interpreted per call; ``codec.py`` caches one ``StructCodec`` per (api, request/response, version).
Adjacent fixed-width fields (``error_code, partition_index, leader_id``) are fused into one ``struct``
pack/unpack; per-type readers and writers live in ``fieldcodecs.py``.

Decoded bodies are plain dicts holding every field of the version: tagged fields that were absent get
their defaults, unknown tags are skipped, and ``records`` values are zero-copy memoryviews of the
frame.  Encoding takes any mapping; keys missing from it take the field's default, keys that are not
fields of the version are ignored.  A tagged field is written only when its value differs from its
default, as Kafka does.

Errors unwind with the field path: a ``ProtocolError`` or ``EncodeError`` raised deep inside gets
``topics``, ``[2]``, ``partitions``... prepended on the way out, so its message says exactly where
the bytes (or the body) went wrong.
"""

from __future__ import annotations

import struct
from typing import Any, Callable, NamedTuple

from .errors import EncodeError, ProtocolError
from .fieldcodecs import ENCODE_FAILURES, FIXED_CODES, TypeCodec, array, nullable_struct, primitive, scalar_array
from .primitives import Reader, Writer
from .schema import MISSING, Array, Field, Struct

__all__ = ["StructCodec", "compile_struct"]


class StructCodec(NamedTuple):
    decode: Callable[[Reader], dict]
    encode: Callable[[Writer, Any], None]
    min_size: int  # the fewest bytes one encoded instance can take
    default: Callable[[], dict]  # a fresh dict of every field's default


def compile_struct(fields: tuple[Field, ...], version: int, flexible: bool) -> StructCodec:
    inline, tagged, defaults = [], [], []
    min_size = 1 if flexible else 0  # the tag section is at least one byte
    for f in fields:
        if not f.present(version):
            continue
        tc = _compile_type(f, version, flexible)
        defaults.append((f.name, tc.default))
        if flexible and f.tagged(version):
            tagged.append((f.tag, f.name, tc.read, tc.write, tc.default()))
        else:
            code = FIXED_CODES.get(f.type) if isinstance(f.type, str) else None
            inline.append(_Inline(f.name, tc.read, tc.write, f.default_for(version), code))
            min_size += tc.min_size
    tagged.sort()
    if len({t[0] for t in tagged}) != len(tagged):
        raise ValueError(f"duplicate tags in {[f.name for f in fields]}")

    def default() -> dict:
        return {name: make() for name, make in defaults}

    steps = _fuse(inline)
    decode = _struct_decoder(steps, tagged, flexible)
    encode = _struct_encoder(steps, tagged, flexible)
    return StructCodec(decode, encode, min_size, default)


class _Inline(NamedTuple):
    name: str
    read: Callable
    write: Callable
    default: Any
    code: str | None  # struct code when fixed-width (fusable with its neighbours)


class _Step(NamedTuple):
    """One field, or (``run``) several adjacent fixed-width fields read and written as one struct."""

    run: bool
    name: Any  # str, or a tuple of names for a run
    read: Callable
    write: Callable
    default: Any  # the default, or a tuple of defaults for a run


def _fuse(inline: list[_Inline]) -> list[_Step]:
    steps, i = [], 0
    while i < len(inline):
        j = i
        while j < len(inline) and inline[j].code is not None:
            j += 1
        if j - i >= 2:
            steps.append(_run(inline[i:j]))
            i = j
        else:
            f = inline[i]
            steps.append(_Step(False, f.name, f.read, f.write, f.default))
            i += 1
    return steps


def _run(fields: list[_Inline]) -> _Step:
    """Adjacent fixed-width fields as one ``struct`` unpack/pack; failures redo them one by one to blame one."""
    codec = struct.Struct(">" + "".join(f.code for f in fields))
    names = tuple(f.name for f in fields)
    defaults = tuple(f.default for f in fields)
    size = codec.size

    def read(r: Reader) -> tuple:
        pos = r.pos
        if pos + size > r.end:
            _one_by_one_read(fields, r)  # raises, naming the field that is cut short
        r.pos = pos + size
        return codec.unpack_from(r.buf, pos)

    def write(w: Writer, get) -> None:
        try:
            w.buf += codec.pack(*map(get, names, defaults))
        except ENCODE_FAILURES:
            _one_by_one_write(fields, w, get)  # raises, naming the field that does not fit
            raise

    return _Step(True, names, read, write, defaults)


def _one_by_one_read(fields: list[_Inline], r: Reader) -> None:
    for f in fields:
        try:
            f.read(r)
        except ProtocolError as exc:
            exc.add_path(f.name)
            raise


def _one_by_one_write(fields: list[_Inline], w: Writer, get) -> None:
    for f in fields:
        value = get(f.name, f.default)
        try:
            f.write(Writer(), value)
        except ENCODE_FAILURES as exc:
            err = EncodeError(f"cannot encode {_short_repr(value)}: {exc}")
            err.add_path(f.name)
            raise err from exc


def _struct_decoder(steps: list[_Step], tagged, flexible: bool):
    plan = [(step.run, step.name, step.read) for step in steps]
    by_tag = {tag: (name, read) for tag, name, read, _, _ in tagged}
    tag_defaults = [(name, value) for _, name, _, _, value in tagged]

    def decode(r: Reader) -> dict:
        out = {}
        name = None
        try:
            for run, name, read in plan:
                if run:
                    out.update(zip(name, read(r)))
                else:
                    out[name] = read(r)
            if flexible:
                name = None
                for tname, value in tag_defaults:
                    out[tname] = _copy(value)
                _read_tags(r, by_tag, out)
        except ProtocolError as exc:
            if type(name) is str:
                exc.add_path(name)
            raise
        return out

    return decode


def _read_tags(r: Reader, by_tag: dict, out: dict) -> None:
    count = r.uvarint(5, "tagged field count")
    last = -1
    for _ in range(count):
        tag = r.uvarint(5, "tag")
        size = r.uvarint(5, "tagged field size")
        if tag <= last:
            raise ProtocolError(f"tag {tag} follows tag {last}: tags must be strictly ascending")
        last = tag
        data = r.raw(size, f"tagged field {tag}")
        entry = by_tag.get(tag)
        if entry is None:
            continue  # unknown tags are skipped
        name, read = entry
        sub = Reader(data)
        try:
            out[name] = read(sub)
            if sub.pos != sub.end:
                raise ProtocolError(f"{sub.end - sub.pos} bytes left over inside tagged field {tag}")
        except ProtocolError as exc:
            exc.add_path(name)
            raise


def _struct_encoder(steps: list[_Step], tagged, flexible: bool):
    plan = [(step.run, step.name, step.write, step.default) for step in steps]

    def encode(w: Writer, body) -> None:
        get = getattr(body, "get", None)
        if get is None:
            raise EncodeError(f"a struct must be a mapping, not {type(body).__name__}")
        name = None
        try:
            for run, name, write, default in plan:
                if run:
                    write(w, get)
                else:
                    write(w, get(name, default))
            if flexible:
                name = None
                if tagged:
                    _write_tags(w, tagged, body)
                else:
                    w.buf.append(0)
        except EncodeError as exc:
            if type(name) is str:
                exc.add_path(name)
            raise
        except ENCODE_FAILURES as exc:
            if name is None:
                err = EncodeError(f"tagged fields: {exc}")
            elif type(name) is not str:
                err = EncodeError(str(exc))
            else:
                err = EncodeError(f"cannot encode {_short_repr(get(name))}: {exc}")
                err.add_path(name)
            raise err from exc

    return encode


def _write_tags(w: Writer, tagged, body) -> None:
    entries = []
    for tag, name, _, write, default in tagged:
        value = body.get(name, MISSING)
        if value is MISSING or value == default:
            continue
        sub = Writer()
        try:
            write(sub, value)
        except EncodeError as exc:
            exc.add_path(name)
            raise
        entries.append((tag, sub.getvalue()))
    w.uvarint(len(entries))
    for tag, data in entries:
        w.uvarint(tag)
        w.uvarint(len(data))
        w.raw(data)


def _short_repr(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _copy(value):
    if isinstance(value, list):
        return [_copy(v) for v in value]
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    return value


def _compile_type(f: Field, version: int, flexible: bool) -> TypeCodec:
    """The codec of one field's type at ``version``; structs recurse into ``compile_struct``."""
    t = f.type
    compact = f.compact(version, flexible)
    nullable = f.nullable(version)
    zero = f.default_for(version)
    if isinstance(t, Array):
        elem = compile_struct(tuple(t), version, flexible)
        return array(elem.decode, elem.encode, elem.min_size, compact, nullable, zero)
    if isinstance(t, Struct):
        sc = compile_struct(tuple(t), version, flexible)
        if nullable:
            return nullable_struct(sc.decode, sc.encode)
        return TypeCodec(sc.decode, sc.encode, sc.min_size, sc.default)
    if t.startswith("[]"):
        return scalar_array(t[2:], compact, nullable, zero)
    read, write, size = primitive(t, compact, nullable)
    return TypeCodec(read, write, size, lambda: zero)
