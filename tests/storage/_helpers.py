"""Small helpers shared by the storage tests (opening logs, simulating crashes, parsing files)."""

from __future__ import annotations

import os
import struct

from logbroker.clock import ManualClock
from logbroker.config import LogConfig
from logbroker.records import decode_all, encode_batch, iter_batches
from logbroker.storage.log import PartitionLog

T0 = 1_700_000_000_000
TOPIC = "t"


def open_log(directory, clock=None, *, clean=True, recovery_point=0, log_start_offset=0, cleaner_offset=0,
             **overrides):
    """PartitionLog.open with Kafka-named overrides given as keyword arguments (dots as underscores).

    ``cleaner_offset`` plays the cleaner-offset checkpoint a LogManager would pass in."""
    config = LogConfig.from_overrides({k.replace("_", "."): v for k, v in overrides.items()})
    return PartitionLog.open(str(directory), TOPIC, 0, config, clock=clock or ManualClock(T0), clean=clean,
                             recovery_point=recovery_point, log_start_offset=log_start_offset,
                             cleaner_offset=cleaner_offset)


def batch(values, ts=T0, keys=None, **kwargs) -> bytes:
    """One batch of ``values`` (bytes or None); ``ts`` is one timestamp or one per record."""
    values = list(values)
    stamps = list(ts) if isinstance(ts, (list, tuple)) else [ts] * len(values)
    keys = list(keys) if keys is not None else [None] * len(values)
    return encode_batch([(k, v, None, t) for k, v, t in zip(keys, values, stamps)], **kwargs)


def append_durably(log, data: bytes):
    info = log.append(data)
    log.wait_durable(info.last_offset + 1)
    return info


def read_all(log, start=None, max_bytes=1 << 20):
    """Every record from ``start`` (default: the log start) to the high watermark, read in steps."""
    offset = log.log_start_offset if start is None else start
    out = []
    for _ in range(100_000):
        if offset >= log.high_watermark:
            break
        data = log.read(offset, max_bytes).records
        headers = [header for _, header in iter_batches(data)]
        assert headers, f"empty read at {offset} below the high watermark {log.high_watermark}"
        out += [r for r in decode_all(data) if r.offset >= offset]
        offset = max(offset, headers[-1].next_offset)  # compacted batches may end in removed records
    return out


def abandon(log) -> None:
    """Simulate a crash: close every segment's descriptor without sealing or writing pending indexes."""
    for segment in log.segments:
        if segment.fd >= 0:
            os.close(segment.fd)
            segment.fd = -1


def batch_layout(source) -> list[tuple[int, int, int, int]]:
    """(position, size, base offset, last offset) of each whole batch in a .log file (a path) or in
    its bytes, parsed here independently of logbroker (offset, length and lastOffsetDelta only)."""
    if isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    else:
        with open(source, "rb") as fh:
            data = fh.read()
    out, pos = [], 0
    while pos + 61 <= len(data):
        base, length = struct.unpack_from(">qi", data, pos)
        if length < 49 or pos + 12 + length > len(data):
            break
        (delta,) = struct.unpack_from(">i", data, pos + 23)
        out.append((pos, 12 + length, base, base + delta))
        pos += 12 + length
    return out


def segment_path(directory, base: int, suffix: str = ".log") -> str:
    return os.path.join(str(directory), f"{base:020d}{suffix}")


def file_bytes(path) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


def flip(path, position: int, mask: int = 0x01) -> None:
    with open(path, "r+b") as fh:
        fh.seek(position)
        byte = fh.read(1)[0]
        fh.seek(position)
        fh.write(bytes([byte ^ mask]))


def fetch_all(broker, topic: str, partition: int = 0) -> list[tuple[int, bytes]]:
    """Everything a Broker serves for the partition, in offset order, as (offset, value)."""
    out, offset = [], broker.list_offsets(topic, partition, -2)[0]
    for _ in range(100_000):
        data = broker.fetch(topic, partition, offset).records
        headers = [h for _, h in iter_batches(data)]
        if not headers:
            break
        out += [(r.offset, r.value) for r in decode_all(data) if r.offset >= offset]
        offset = headers[-1].next_offset
    return out
