"""Compression codecs in Kafka's framing (FORMAT.md §1.2).

Only the records section of a batch (after ``recordsCount``) is compressed, as one stream.

* gzip: a plain gzip stream (standard library).
* snappy: Java clients write xerial snappy-java framing (magic ``82 53 4e 41 50 50 59 00``, two
  int32 versions, then blocks each prefixed by an int32 length); librdkafka writes a raw snappy
  block.  We write raw blocks (what librdkafka writes) and read both.
* lz4: the standard LZ4 frame format (magic ``04 22 4d 18``).
* zstd: a standard zstd frame.

snappy, lz4 and zstd come from ``cramjam``.
"""

from __future__ import annotations

import gzip
import mmap
import struct
import zlib

import cramjam

from ..errors import CorruptRecordError, InvalidRecordError

NONE, GZIP, SNAPPY, LZ4, ZSTD = 0, 1, 2, 3, 4
CODEC_NAMES = {NONE: "none", GZIP: "gzip", SNAPPY: "snappy", LZ4: "lz4", ZSTD: "zstd"}
CODECS_BY_NAME = {name: code for code, name in CODEC_NAMES.items()}
CODECS_BY_NAME["uncompressed"] = NONE

_XERIAL_MAGIC = b"\x82SNAPPY\x00"


def codec_from_name(name: str | int | None) -> int:
    if name is None:
        return NONE
    if isinstance(name, int):
        if name not in CODEC_NAMES:
            raise InvalidRecordError(f"unknown compression codec {name}")
        return name
    try:
        return CODECS_BY_NAME[name.lower()]
    except KeyError:
        raise InvalidRecordError(
            f"unknown compression {name!r}; use one of {', '.join(CODECS_BY_NAME)}"
        ) from None


def compress(codec: int, data: bytes) -> bytes:
    if codec == NONE:
        return data
    if codec == GZIP:
        return gzip.compress(data, compresslevel=6, mtime=0)
    if codec == SNAPPY:
        return bytes(cramjam.snappy.compress_raw(data))
    if codec == LZ4:
        return bytes(cramjam.lz4.compress(data))
    if codec == ZSTD:
        return bytes(cramjam.zstd.compress(data))
    raise InvalidRecordError(f"unknown compression codec {codec}")


def _bounded(module, data: bytes, max_size: int) -> bytes:
    """Decompress into an anonymous mapping of ``max_size + 1`` bytes: its pages cost nothing until
    written, and the codec stops (with an error) when the output would not fit."""
    buffer = mmap.mmap(-1, max_size + 1)
    try:
        try:
            size = module.decompress_into(data, buffer)
        except Exception as exc:
            raise CorruptRecordError(f"records do not decompress within {max_size} bytes: {exc}") from None
        if size > max_size:
            raise CorruptRecordError(f"records decompress beyond {max_size} bytes")
        return buffer[:size]
    finally:
        buffer.close()


def _snappy_decompress(data: bytes, max_size: int | None = None) -> bytes:
    limit = float("inf") if max_size is None else max_size
    if data[:8] != _XERIAL_MAGIC:
        if cramjam.snappy.decompress_raw_len(data) > limit:
            raise CorruptRecordError(f"snappy records would decompress beyond {max_size} bytes")
        return bytes(cramjam.snappy.decompress_raw(data))
    pos = 16  # magic + int32 version + int32 compatible version
    out = []
    total = 0
    while pos < len(data):
        if pos + 4 > len(data):
            raise CorruptRecordError("truncated xerial snappy block length")
        (length,) = struct.unpack_from(">i", data, pos)
        pos += 4
        if length < 0 or pos + length > len(data):
            raise CorruptRecordError("xerial snappy block runs past the end of the data")
        block = data[pos : pos + length]
        total += cramjam.snappy.decompress_raw_len(block)
        if total > limit:
            raise CorruptRecordError(f"snappy records would decompress beyond {max_size} bytes")
        out.append(bytes(cramjam.snappy.decompress_raw(block)))
        pos += length
    return b"".join(out)


def decompress(codec: int, data: bytes, *, max_size: int | None = None) -> bytes:
    """Decompress the records section; any codec failure becomes CorruptRecordError.

    With ``max_size``, output beyond it is refused (CorruptRecordError) without ever being produced:
    a few bytes of zstd can claim gigabytes.
    """
    try:
        if codec == NONE:
            out = data
        elif codec == GZIP:
            out = _gzip_decompress(data, max_size)
        elif codec == SNAPPY:
            out = _snappy_decompress(data, max_size)
        elif codec in (LZ4, ZSTD):
            module = cramjam.lz4 if codec == LZ4 else cramjam.zstd
            out = bytes(module.decompress(data)) if max_size is None else _bounded(module, data, max_size)
        else:
            raise CorruptRecordError(f"unknown compression codec {codec}")
    except CorruptRecordError:
        raise
    except Exception as exc:  # the codecs raise assorted types
        raise CorruptRecordError(f"cannot decompress {CODEC_NAMES.get(codec, codec)} records: {exc}") from None
    if max_size is not None and len(out) > max_size:
        raise CorruptRecordError(f"{CODEC_NAMES[codec]} records decompress beyond {max_size} bytes")
    return out


def _gzip_decompress(data: bytes, max_size: int | None) -> bytes:
    # zlib with wbits=47 reads gzip (and zlib) streams; loop for multi-member gzip.
    out = []
    total = 0
    while data:
        inflater = zlib.decompressobj(47)
        if max_size is None:
            chunk = inflater.decompress(data)
        else:
            chunk = inflater.decompress(data, max_size - total + 1)
            if inflater.unconsumed_tail or total + len(chunk) > max_size:
                raise CorruptRecordError(f"gzip records decompress beyond {max_size} bytes")
        out.append(chunk)
        total += len(chunk)
        data = inflater.unused_data
        if not inflater.eof:
            raise CorruptRecordError("gzip stream is truncated")
    return b"".join(out)
