"""RecordBatch v2 (magic 2): encode, decode and check, exactly as FORMAT.md §1-3 lays it out.

Byte layout of one batch (all integers big-endian)::

     0  int64  baseOffset            \\ the "log overhead": not covered by the CRC, so the broker
     8  int32  batchLength            |  rewrites baseOffset (and partitionLeaderEpoch) freely
    12  int32  partitionLeaderEpoch  /
    16  int8   magic = 2
    17  uint32 crc                   CRC-32C of bytes [21, end)
    21  int16  attributes            codec (bits 0-2), timestamp type (3), transactional (4), control (5)
    23  int32  lastOffsetDelta
    27  int64  baseTimestamp
    35  int64  maxTimestamp
    43  int64  producerId
    51  int16  producerEpoch
    53  int32  baseSequence
    57  int32  recordsCount           never compressed
    61  ...    records              possibly compressed as one stream

Each record: varint length, int8 attributes, varlong timestampDelta, varint offsetDelta, varint
keyLength (-1 = null) + key, varint valueLength (-1 = null) + value, varint headerCount, headers
(varint key length + UTF-8 key, varint value length (-1 = null) + value).

Invariants this module enforces on every batch it checks: the declared length fits the buffer,
magic is 2, the CRC matches, the codec is known and no unused attribute bit is set.  Batches from
clients must also satisfy ``lastOffsetDelta + 1 == recordsCount > 0`` and must not be control
batches (``validate_produced``); compacted batches read back from a log may have gaps instead.
"""

from __future__ import annotations

import os
import struct
from typing import Iterator, NamedTuple, Sequence

from crc32c import crc32c

from ..errors import CorruptRecordError, InvalidRecordError, RecordTooLargeError
from . import compression
from .varint import SMALL, _SMALL_TABLE, decode_varint, encode_varint

# The C versions of the per-record loops (_speedups.c), when the optional extension was built and
# LOGBROKER_NO_SPEEDUPS is unset (or "0").  They return NotImplemented for any input outside their
# fast path, and the pure-Python *_py functions below, the reference, then run instead.
_speedups = None
if os.environ.get("LOGBROKER_NO_SPEEDUPS", "") in ("", "0"):
    try:
        from . import _speedups
    except ImportError:
        pass

MAGIC = 2
HEADER_SIZE = 61
LOG_OVERHEAD = 12  # baseOffset + batchLength
CRC_START = 21

CREATE_TIME = 0
LOG_APPEND_TIME = 1

ATTR_CODEC_MASK = 0x07
ATTR_TIMESTAMP_TYPE = 0x08
ATTR_TRANSACTIONAL = 0x10
ATTR_CONTROL = 0x20
ATTR_DELETE_HORIZON = 0x40
ATTR_UNUSED = ~0x7F & 0xFFFF

NO_PRODUCER_ID = -1
_MIN_RECORD_SIZE = 7  # length, attributes, timestamp delta, offset delta, key, value, header count
NO_TIMESTAMP = -1

CONTROL_TYPES = {0: "ABORT", 1: "COMMIT", 2: "LEADER_CHANGE", 3: "SNAPSHOT_HEADER",
                 4: "SNAPSHOT_FOOTER", 5: "KRAFT_VERSION", 6: "KRAFT_VOTERS"}

_HEADER = struct.Struct(">qiibIhiqqqhii")
_AFTER_CRC = struct.Struct(">hiqqqhii")  # bytes 21..61
_OFFSET = struct.Struct(">q")
_LENGTH_AT_8 = struct.Struct(">qi")
assert _HEADER.size == HEADER_SIZE


class BatchHeader(NamedTuple):
    base_offset: int
    batch_length: int
    partition_leader_epoch: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    records_count: int

    @property
    def size(self) -> int:
        """Bytes the whole batch occupies, log overhead included."""
        return self.batch_length + LOG_OVERHEAD

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    @property
    def next_offset(self) -> int:
        return self.base_offset + self.last_offset_delta + 1

    @property
    def compression(self) -> int:
        return self.attributes & ATTR_CODEC_MASK

    @property
    def timestamp_type(self) -> int:
        return LOG_APPEND_TIME if self.attributes & ATTR_TIMESTAMP_TYPE else CREATE_TIME

    @property
    def is_transactional(self) -> bool:
        return bool(self.attributes & ATTR_TRANSACTIONAL)

    @property
    def is_control(self) -> bool:
        return bool(self.attributes & ATTR_CONTROL)

    @property
    def last_sequence(self) -> int:
        if self.base_sequence < 0:
            return -1
        return (self.base_sequence + self.last_offset_delta) % 2**31


class Record(NamedTuple):
    """One record as an application sees it."""

    topic: str | None
    partition: int
    offset: int
    timestamp: int
    timestamp_type: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]  # (key, value) pairs in order; () when none


_new_record = tuple.__new__


def read_header(buf, pos: int = 0) -> BatchHeader:
    """Parse the 61-byte header at ``pos`` (no checks beyond having the bytes)."""
    return BatchHeader._make(_HEADER.unpack_from(buf, pos))


def check_batch(buf, pos: int = 0, end: int | None = None) -> BatchHeader:
    """Check the batch at ``pos`` of ``buf`` (up to ``end``); return its header.

    Raises IncompleteBatchError when the buffer ends inside the batch (a torn write) and
    CorruptRecordError for anything else wrong, each naming the byte position and the reason.
    """
    if end is None:
        end = len(buf)
    available = end - pos
    if available < LOG_OVERHEAD + 5:
        raise IncompleteBatchError(f"only {available} bytes left at byte {pos}, less than a batch header", pos)
    base_offset, batch_length = _LENGTH_AT_8.unpack_from(buf, pos)
    size = batch_length + LOG_OVERHEAD
    if batch_length < HEADER_SIZE - LOG_OVERHEAD:
        raise CorruptRecordError(
            f"batch at byte {pos} declares length {batch_length}, below the minimum "
            f"{HEADER_SIZE - LOG_OVERHEAD}")
    magic = buf[pos + 16]
    if magic != MAGIC:
        raise CorruptRecordError(f"batch at byte {pos} has magic {magic}, expected {MAGIC}")
    if size > available:
        raise IncompleteBatchError(
            f"batch at byte {pos} declares {size} bytes but only {available} remain", pos)
    header = BatchHeader._make(_HEADER.unpack_from(buf, pos))
    actual = crc32c(memoryview(buf)[pos + CRC_START : pos + size])
    if actual != header.crc:
        raise CorruptRecordError(
            f"batch at byte {pos} (base offset {base_offset}) fails its CRC-32C: "
            f"stored {header.crc:#010x}, computed {actual:#010x}")
    attributes = header.attributes & 0xFFFF
    if attributes & ATTR_UNUSED or attributes & ATTR_CODEC_MASK > compression.ZSTD:
        raise CorruptRecordError(f"batch at byte {pos} has invalid attributes {attributes:#06x}")
    if header.records_count < 0 or header.last_offset_delta < 0:
        raise CorruptRecordError(
            f"batch at byte {pos} has records count {header.records_count} and last offset delta "
            f"{header.last_offset_delta}")
    return header


class IncompleteBatchError(CorruptRecordError):
    """The buffer ends inside a batch: a torn tail rather than damage."""

    def __init__(self, message: str, position: int):
        super().__init__(message)
        self.position = position


def iter_batches(buf, pos: int = 0, end: int | None = None) -> Iterator[tuple[int, BatchHeader]]:
    """Yield (position, header) for each checked batch; stop quietly at a torn tail."""
    if end is None:
        end = len(buf)
    while pos < end:
        try:
            header = check_batch(buf, pos, end)
        except IncompleteBatchError:
            return
        yield pos, header
        pos += header.size


def validate_produced(records: bytes, *, max_message_bytes: int | None = None, deep: bool = True,
                      max_decompressed_bytes: int | None = None) -> list[tuple[int, BatchHeader]]:
    """Check the batches a producer sent; return [(position, header)].  Nothing is written yet.

    Everything ``check_batch`` checks, plus Kafka's produce rules: the data is whole batches,
    ``recordsCount > 0``, ``lastOffsetDelta == recordsCount - 1``, no control batches, an
    idempotent batch has ``baseSequence >= 0``, and no batch exceeds ``max.message.bytes``.
    With ``deep`` (the default) the records themselves are walked too, as Kafka's LogValidator does:
    a CRC only proves the bytes are what the producer sent, not that they are records.  That is one
    pass over the (decompressed) records section per batch, building nothing.  A returned header
    carries the records' true max timestamp, which may differ from the one in the batch's bytes.
    """
    if not records:
        raise InvalidRecordError("no record batches in the request")
    batches = []
    pos, end = 0, len(records)
    while pos < end:
        try:
            header = check_batch(records, pos, end)
        except IncompleteBatchError as exc:
            raise CorruptRecordError(f"truncated record batch: {exc}") from None
        if max_message_bytes is not None and header.size > max_message_bytes:
            raise RecordTooLargeError(
                f"batch at byte {pos} is {header.size} bytes, over max.message.bytes={max_message_bytes}")
        if header.records_count <= 0:
            raise InvalidRecordError(f"batch at byte {pos} holds no records")
        if not header.compression and header.records_count > (header.size - HEADER_SIZE) // _MIN_RECORD_SIZE:
            raise InvalidRecordError(
                f"batch at byte {pos} claims {header.records_count} records in {header.size - HEADER_SIZE} bytes")
        if header.last_offset_delta != header.records_count - 1:
            raise InvalidRecordError(
                f"batch at byte {pos} has {header.records_count} records but last offset delta "
                f"{header.last_offset_delta}")
        if header.is_control:
            raise InvalidRecordError(f"batch at byte {pos} is a control batch; producers may not write them")
        if header.producer_id >= 0 and header.base_sequence < 0:
            raise InvalidRecordError(
                f"batch at byte {pos} has producer id {header.producer_id} but base sequence "
                f"{header.base_sequence}")
        if deep:
            max_timestamp = _check_produced_records(records, pos, header,
                                                    max_decompressed_bytes or MAX_DECOMPRESSED_BYTES)
            if header.timestamp_type == CREATE_TIME and max_timestamp != header.max_timestamp:
                # the append writes the right value in (and redoes the CRC), as Kafka does
                header = header._replace(max_timestamp=max_timestamp)
        batches.append((pos, header))
        pos += header.size
    return batches


# Decompressing a producer's batch stops here: a few bytes of zstd must not become gigabytes.
MAX_DECOMPRESSED_BYTES = 256 * 1024 * 1024


def _check_produced_records(records, pos: int, header: BatchHeader, max_decompressed_bytes: int) -> int | None:
    """Walk the records of one produced batch: structure, count and offset deltas 0..n-1.  Returns
    the records' max timestamp (the header's may be wrong: old Sarama sends -1, and Kafka then writes
    the right one in, as the append does).  Raises CorruptRecordError."""
    if header.compression:
        data = compression.decompress(header.compression, bytes(records[pos + HEADER_SIZE : pos + header.size]),
                                      max_size=max_decompressed_bytes)
        start, end = 0, len(data)
    elif type(records) is bytes:
        data, start, end = records, pos + HEADER_SIZE, pos + header.size
    else:
        data = bytes(records[pos + HEADER_SIZE : pos + header.size])
        start, end = 0, len(data)
    try:
        return _scan_records(data, start, end, header.records_count, header.base_timestamp)
    except CorruptRecordError as exc:
        raise CorruptRecordError(f"batch at byte {pos}: {exc}") from None


def _scan_records(data: bytes, start: int, end: int, count: int, base_timestamp: int):
    if _speedups is not None:
        result = _speedups.scan_records(data, start, end, count, base_timestamp)
        if result is not NotImplemented:
            return result
    return _scan_records_py(data, start, end, count, base_timestamp)


def _scan_records_py(data: bytes, start: int, end: int, count: int, base_timestamp: int):
    """The pure-Python reference for ``_speedups.scan_records`` (it decodes, then checks)."""
    try:
        decoded = _decode_records_py(data, start, end, count, 0, base_timestamp, CREATE_TIME, None, None, -1)
    except IndexError:
        raise CorruptRecordError("records run past the end of the batch") from None
    for i, record in enumerate(decoded):
        if record.offset != i:
            raise CorruptRecordError(f"record {i} of the batch has offset delta {record.offset}")
        if not -(2**63) <= record.timestamp < 2**63:
            raise CorruptRecordError(f"record {i} of the batch has a timestamp delta out of range")
    return max((r.timestamp for r in decoded), default=None)


def set_base_offset(batch: bytearray, pos: int, base_offset: int) -> None:
    """Stamp a base offset in place (bytes 0-7: outside the CRC, so nothing else changes)."""
    _OFFSET.pack_into(batch, pos, base_offset)


def set_max_timestamp(batch: bytearray, pos: int, header: BatchHeader, timestamp: int) -> None:
    """Write a CreateTime batch's true max timestamp into its header, and redo its CRC."""
    struct.pack_into(">q", batch, pos + 35, timestamp)
    crc = crc32c(memoryview(batch)[pos + CRC_START : pos + header.size])
    struct.pack_into(">I", batch, pos + 17, crc)


def set_log_append_time(batch: bytearray, pos: int, header: BatchHeader, timestamp: int) -> None:
    """Mark a batch LogAppendTime with ``timestamp`` as its max timestamp, and redo its CRC."""
    struct.pack_into(">h", batch, pos + 21, header.attributes | ATTR_TIMESTAMP_TYPE)
    struct.pack_into(">q", batch, pos + 35, timestamp)
    crc = crc32c(memoryview(batch)[pos + CRC_START : pos + header.size])
    struct.pack_into(">I", batch, pos + 17, crc)


def _encode_headers(headers) -> bytes:
    if not headers:
        return b"\x00"
    items = headers.items() if isinstance(headers, dict) else headers
    parts = []
    count = 0
    for hkey, hvalue in items:
        if not isinstance(hkey, str):
            raise InvalidRecordError(f"header keys are strings, got {type(hkey).__name__}")
        kb = hkey.encode()
        parts.append(encode_varint(len(kb)))
        parts.append(kb)
        if hvalue is None:
            parts.append(b"\x01")
        else:
            if isinstance(hvalue, str):
                hvalue = hvalue.encode()
            parts.append(encode_varint(len(hvalue)))
            parts.append(hvalue)
        count += 1
    return encode_varint(count) + b"".join(parts)


def encode_records(records: Sequence, base_timestamp: int, offset_deltas: Sequence[int] | None = None) -> bytes:
    """Encode (key, value, headers, timestamp) tuples as the uncompressed records section.

    Offset deltas are 0, 1, 2 ... unless ``offset_deltas`` gives them (a compacted batch has gaps).
    """
    if _speedups is not None:
        body = _speedups.encode_records(records, base_timestamp, offset_deltas)
        if body is not NotImplemented:
            return body
    return _encode_records_py(records, base_timestamp, offset_deltas)


def _encode_records_py(records: Sequence, base_timestamp: int, offset_deltas: Sequence[int] | None = None) -> bytes:
    """The pure-Python reference for (and fallback of) ``_speedups.encode_records``."""
    table = _SMALL_TABLE
    small = SMALL
    parts: list[bytes] = []
    append = parts.append
    deltas = offset_deltas if offset_deltas is not None else range(len(records))
    for delta, (key, value, headers, timestamp) in zip(deltas, records):
        ts_delta = timestamp - base_timestamp
        if key is None:
            key_part = b"\x01"
        else:
            n = len(key)
            key_part = (table[n + small] if n < small else encode_varint(n)) + key
        if value is None:
            value_part = b"\x01"
        else:
            n = len(value)
            value_part = (table[n + small] if n < small else encode_varint(n)) + value
        body = b"".join((
            b"\x00",
            table[ts_delta + small] if -small <= ts_delta < small else encode_varint(ts_delta),
            table[delta + small] if delta < small else encode_varint(delta),
            key_part,
            value_part,
            b"\x00" if not headers else _encode_headers(headers),
        ))
        n = len(body)
        append(table[n + small] if n < small else encode_varint(n))
        append(body)
    return b"".join(parts)


def encode_batch(
    records: Sequence,
    *,
    base_offset: int = 0,
    compression_type: int = compression.NONE,
    timestamp_type: int = CREATE_TIME,
    producer_id: int = NO_PRODUCER_ID,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    partition_leader_epoch: int = 0,
    transactional: bool = False,
    control: bool = False,
    max_timestamp: int | None = None,
    offset_deltas: Sequence[int] | None = None,
    last_offset_delta: int | None = None,
) -> bytes:
    """Build one batch from (key, value, headers, timestamp) tuples; keys/values are bytes or None.

    Every record needs an integer timestamp (ms).  With LogAppendTime pass ``max_timestamp``.
    ``offset_deltas`` / ``last_offset_delta`` are for rewriting compacted batches only.
    """
    if not records:
        raise InvalidRecordError("a batch needs at least one record")
    timestamps = [r[3] for r in records]
    base_timestamp = timestamps[0]
    if max_timestamp is None:
        max_timestamp = max(timestamps)
    body = encode_records(records, base_timestamp, offset_deltas)
    if last_offset_delta is None:
        last_offset_delta = len(records) - 1 if offset_deltas is None else offset_deltas[-1]
    return _assemble(body, len(records), last_offset_delta, base_timestamp, max_timestamp, base_offset=base_offset,
                     compression_type=compression_type, timestamp_type=timestamp_type, producer_id=producer_id,
                     producer_epoch=producer_epoch, base_sequence=base_sequence,
                     partition_leader_epoch=partition_leader_epoch, transactional=transactional, control=control)


def encode_batch_columns(keys: list, values: list, headers: list | None, timestamps: list[int], *,
                         compression_type: int = compression.NONE, producer_id: int = NO_PRODUCER_ID,
                         producer_epoch: int = -1, base_sequence: int = -1) -> bytes:
    """Build one batch from parallel lists (what the Producer accumulates).

    ``keys`` may be None for "every key is null", ``headers`` None for "no record has headers":
    those batches take a faster loop.
    """
    if not values:
        raise InvalidRecordError("a batch needs at least one record")
    base_timestamp = timestamps[0]
    if keys is None and headers is None:
        body = _encode_values_only(values, timestamps, base_timestamp)
    else:
        n = len(values)
        body = encode_records(list(zip(keys or [None] * n, values, headers or [None] * n, timestamps)),
                              base_timestamp)
    return _assemble(body, len(values), len(values) - 1, base_timestamp, max(timestamps),
                     compression_type=compression_type, producer_id=producer_id, producer_epoch=producer_epoch,
                     base_sequence=base_sequence)


def _encode_values_only(values: list, timestamps: list[int], base_timestamp: int) -> bytes:
    """Records with null keys and no headers: the common case, in as few operations as possible."""
    if _speedups is not None:
        body = _speedups.encode_values_only(values, timestamps, base_timestamp)
        if body is not NotImplemented:
            return body
    return _encode_values_only_py(values, timestamps, base_timestamp)


def _encode_values_only_py(values: list, timestamps: list[int], base_timestamp: int) -> bytes:
    """The pure-Python reference for (and fallback of) ``_speedups.encode_values_only``."""
    table = _SMALL_TABLE
    small = SMALL
    parts: list[bytes] = []
    append = parts.append
    delta = 0
    for value, timestamp in zip(values, timestamps):
        ts_delta = timestamp - base_timestamp
        ts_part = table[ts_delta + small] if -small <= ts_delta < small else encode_varint(ts_delta)
        offset_part = table[delta + small] if delta < small else encode_varint(delta)
        if value is None:
            body = b"".join((b"\x00", ts_part, offset_part, b"\x01\x01\x00"))
        else:
            n = len(value)
            body = b"".join((b"\x00", ts_part, offset_part, b"\x01",
                             table[n + small] if n < small else encode_varint(n), value, b"\x00"))
        n = len(body)
        append(table[n + small] if n < small else encode_varint(n))
        append(body)
        delta += 1
    return b"".join(parts)


def _assemble(body: bytes, count: int, last_offset_delta: int, base_timestamp: int, max_timestamp: int, *,
              base_offset: int = 0, compression_type: int = compression.NONE, timestamp_type: int = CREATE_TIME,
              producer_id: int = NO_PRODUCER_ID, producer_epoch: int = -1, base_sequence: int = -1,
              partition_leader_epoch: int = 0, transactional: bool = False, control: bool = False) -> bytes:
    if compression_type != compression.NONE:
        body = compression.compress(compression_type, body)
    attributes = (compression_type | (ATTR_TIMESTAMP_TYPE if timestamp_type == LOG_APPEND_TIME else 0)
                  | (ATTR_TRANSACTIONAL if transactional else 0) | (ATTR_CONTROL if control else 0))
    tail = _AFTER_CRC.pack(attributes, last_offset_delta, base_timestamp, max_timestamp,
                           producer_id, producer_epoch, base_sequence, count) + body
    head = struct.pack(">qiibI", base_offset, len(tail) + 9, partition_leader_epoch, MAGIC, crc32c(tail))
    return head + tail


def encode_control_batch(control_type: int, *, producer_id: int, producer_epoch: int, timestamp: int,
                         coordinator_epoch: int = 0, base_offset: int = 0) -> bytes:
    """A transaction marker (FORMAT.md §3): one record, key = version + type."""
    key = struct.pack(">hh", 0, control_type)
    value = struct.pack(">hi", 0, coordinator_epoch)
    return encode_batch([(key, value, None, timestamp)], base_offset=base_offset, producer_id=producer_id,
                        producer_epoch=producer_epoch, transactional=True, control=True)


def records_section(buf, pos: int, header: BatchHeader) -> bytes:
    """The decompressed records section of a checked batch."""
    raw = bytes(buf[pos + HEADER_SIZE : pos + header.size])
    return compression.decompress(header.compression, raw) if header.compression else raw


def decode_records(buf, pos: int = 0, header: BatchHeader | None = None, *, topic: str | None = None,
                   partition: int = -1) -> list[Record]:
    """Decode every record of the (already checked) batch at ``pos``."""
    if header is None:
        header = read_header(buf, pos)
    if header.compression:
        data = records_section(buf, pos, header)
        start, end = 0, len(data)
    elif isinstance(buf, bytes):
        data, start, end = buf, pos + HEADER_SIZE, pos + header.size
    else:
        data = bytes(buf[pos + HEADER_SIZE : pos + header.size])
        start, end = 0, len(data)
    timestamp_type = header.timestamp_type
    fixed_timestamp = header.max_timestamp if timestamp_type == LOG_APPEND_TIME else None
    try:
        return _decode_records(data, start, end, header.records_count, header.base_offset,
                               header.base_timestamp, timestamp_type, fixed_timestamp, topic, partition)
    except IndexError:
        raise CorruptRecordError(
            f"records of the batch at base offset {header.base_offset} run past the end of the batch") from None


# _ZIGZAG[raw] decodes a zigzag varint whose raw (7-bit-grouped) value is below 2**14, i.e. every
# one- and two-byte varint: the hot loop below looks these up instead of calling decode_varint.
_ZIGZAG = [(raw >> 1) ^ -(raw & 1) for raw in range(1 << 14)]
# Records without headers share one empty tuple: no second GC-tracked object per record.
_NO_HEADERS = ()


def _decode_records(data: bytes, pos: int, end: int, count: int, base_offset: int, base_timestamp: int,
                    timestamp_type: int, fixed_timestamp, topic, partition) -> list[Record]:
    if _speedups is not None:
        out = _speedups.decode_records(data, pos, end, count, base_offset, base_timestamp, timestamp_type,
                                       fixed_timestamp, topic, partition, Record)
        if out is not NotImplemented:
            return out
    return _decode_records_py(data, pos, end, count, base_offset, base_timestamp, timestamp_type,
                              fixed_timestamp, topic, partition)


def _decode_records_py(data: bytes, pos: int, end: int, count: int, base_offset: int, base_timestamp: int,
                       timestamp_type: int, fixed_timestamp, topic, partition) -> list[Record]:
    """The pure-Python reference for (and fallback of) ``_speedups.decode_records``."""
    # Hot loop, once per record: one- and two-byte varints are decoded inline through _ZIGZAG,
    # longer ones through decode_varint.  Bounds: an index past the end raises IndexError (turned
    # into CorruptRecordError by the caller); slices are checked through record_end.
    zz = _ZIGZAG
    out: list[Record] = []
    append = out.append
    for _ in range(count):
        b = data[pos]
        if b < 0x80:
            length = zz[b]
            pos += 1
        elif data[pos + 1] < 0x80:
            length = zz[(b & 0x7F) | (data[pos + 1] << 7)]
            pos += 2
        else:
            length, pos = decode_varint(data, pos, 5)
        record_end = pos + length
        if length < 6 or record_end > end:
            raise CorruptRecordError(f"record at byte {pos} declares length {length}, which does not fit")
        b = data[pos + 1]  # data[pos] is the record's attributes byte
        if b < 0x80:
            ts_delta = zz[b]
            pos += 2
        elif data[pos + 2] < 0x80:
            ts_delta = zz[(b & 0x7F) | (data[pos + 2] << 7)]
            pos += 3
        else:
            ts_delta, pos = decode_varint(data, pos + 1, 10)
        b = data[pos]
        if b < 0x80:
            offset_delta = zz[b]
            pos += 1
        elif data[pos + 1] < 0x80:
            offset_delta = zz[(b & 0x7F) | (data[pos + 1] << 7)]
            pos += 2
        else:
            offset_delta, pos = decode_varint(data, pos, 5)
        b = data[pos]
        if b == 1:
            key = None
            pos += 1
        else:
            if b < 0x80:
                n = zz[b]
                pos += 1
            elif data[pos + 1] < 0x80:
                n = zz[(b & 0x7F) | (data[pos + 1] << 7)]
                pos += 2
            else:
                n, pos = decode_varint(data, pos, 5)
            if n >= 0:
                key = data[pos : pos + n]
                pos += n
            elif n == -1:  # a zero-padded -1, e.g. 81 00: Kafka reads it as null too
                key = None
            else:
                raise CorruptRecordError(f"record key length {n} at byte {pos}")
        b = data[pos]
        if b == 1:
            value = None
            pos += 1
        else:
            if b < 0x80:
                n = zz[b]
                pos += 1
            elif data[pos + 1] < 0x80:
                n = zz[(b & 0x7F) | (data[pos + 1] << 7)]
                pos += 2
            else:
                n, pos = decode_varint(data, pos, 5)
            if n >= 0:
                value = data[pos : pos + n]
                pos += n
            elif n == -1:  # a zero-padded -1, e.g. 81 00: Kafka reads it as null too
                value = None
            else:
                raise CorruptRecordError(f"record value length {n} at byte {pos}")
        if data[pos] == 0:
            headers = _NO_HEADERS
            pos += 1
        else:
            headers, pos = _decode_headers(data, pos)
        if pos != record_end:
            raise CorruptRecordError(
                f"record at offset delta {offset_delta} declares {length} bytes but holds {length + pos - record_end}")
        append(_new_record(Record, (topic, partition, base_offset + offset_delta,
                                    fixed_timestamp if fixed_timestamp is not None else base_timestamp + ts_delta,
                                    timestamp_type, key, value, headers)))
    if pos != end:
        raise CorruptRecordError(f"{end - pos} bytes left over after {count} records")
    return out


def _decode_headers(data: bytes, pos: int) -> tuple[list, int]:
    count, pos = decode_varint(data, pos, 5)
    if count < 0:
        raise CorruptRecordError(f"negative header count {count} at byte {pos}")
    headers = []
    for _ in range(count):
        n, pos = decode_varint(data, pos, 5)
        if n < 0:
            raise CorruptRecordError(f"header key length {n} at byte {pos}")
        try:
            hkey = data[pos : pos + n].decode()
        except UnicodeDecodeError:
            raise CorruptRecordError(f"header key at byte {pos} is not UTF-8") from None
        pos += n
        n, pos = decode_varint(data, pos, 5)
        if n < -1:
            raise CorruptRecordError(f"header value length {n} at byte {pos}")
        if n == -1:
            hvalue = None
        else:
            hvalue = data[pos : pos + n]
            pos += n
        headers.append((hkey, hvalue))
    return tuple(headers), pos


def decode_all(buf, *, topic: str | None = None, partition: int = -1, skip_control: bool = True) -> list[Record]:
    """Check and decode every batch in ``buf`` (a Fetch response's or a segment's bytes)."""
    out: list[Record] = []
    for pos, header in iter_batches(buf):
        if skip_control and header.is_control:
            continue
        out.extend(decode_records(buf, pos, header, topic=topic, partition=partition))
    return out


def describe_control_record(record: Record) -> str:
    """'COMMIT (coordinator epoch 0)' and the like, for inspection output."""
    if record.key is None or len(record.key) < 4:
        return "malformed control record"
    _, ctype = struct.unpack_from(">hh", record.key)
    name = CONTROL_TYPES.get(ctype, f"unknown type {ctype}")
    if ctype in (0, 1) and record.value is not None and len(record.value) >= 6:
        _, coordinator_epoch = struct.unpack_from(">hi", record.value)
        return f"{name} (coordinator epoch {coordinator_epoch})"
    return name
