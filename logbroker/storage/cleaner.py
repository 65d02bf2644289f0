"""Log compaction (``cleanup.policy=compact``): keep the latest record per key, never move offsets.

The cleaner reads every record once to build "key -> offset of its latest record", then rewrites
each inactive segment keeping only records that are the latest for their key (records without a key
are kept).  A kept record keeps its offset and timestamp: rewritten batches keep their base offset,
producer fields, codec and timestamp type, and their last offset delta (so the batch still ends at
the same offset, as Kafka's cleaner does), with gaps where records were removed.  Tombstones (null
values) are kept while the segment that holds them is younger than ``delete.retention.ms``; older
tombstones go too.  The active segment is never rewritten.

Crash safety: a segment is rewritten into ``<base>.log.cleaned``, fsynced, then renamed over the
original (atomic); a leftover ``.cleaned`` file is deleted on the next open.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..records.batch import decode_records, encode_batch
from .files import CLEANED_SUFFIX, write_all


@dataclass
class CleanerStats:
    segments_cleaned: int
    records_read: int
    records_removed: int
    bytes_before: int
    bytes_after: int


def _latest_offsets(partition_log) -> dict[bytes, int]:
    latest: dict[bytes, int] = {}
    for segment in list(partition_log.segments):
        for position, header, buf in segment.batches_from(0):
            if header.is_control:
                continue
            for record in decode_records(buf, position, header):
                if record.key is not None:
                    latest[record.key] = record.offset
    return latest


def dirty_ratio(partition_log) -> float:
    """Share of bytes in inactive segments (everything is dirty: we keep no cleaner checkpoint)."""
    total = partition_log.size_bytes
    return (total - partition_log.active_segment.size) / total if total else 0.0


def compact_log(partition_log, now_ms: int, *, force: bool = False) -> CleanerStats | None:
    """Compact every inactive segment of ``partition_log``; None when there was nothing to do."""
    if len(partition_log.segments) < 2:
        return None
    if not force and dirty_ratio(partition_log) < partition_log.config.min_cleanable_dirty_ratio:
        return None
    latest = _latest_offsets(partition_log)
    horizon = now_ms - partition_log.config.delete_retention_ms
    stats = CleanerStats(0, 0, 0, 0, 0)
    for segment in list(partition_log.segments[:-1]):
        drop_tombstones = 0 <= segment.max_timestamp < horizon
        out = []
        removed = 0
        for position, header, buf in segment.batches_from(0):
            if header.is_control:
                out.append(bytes(buf[position : position + header.size]))
                continue
            records = decode_records(buf, position, header)
            stats.records_read += len(records)
            kept = [r for r in records
                    if r.key is None or (latest.get(r.key) == r.offset and not (drop_tombstones and r.value is None))]
            removed += len(records) - len(kept)
            if len(kept) == len(records):
                out.append(bytes(buf[position : position + header.size]))
            elif kept:
                out.append(encode_batch(
                    [(r.key, r.value, r.headers, r.timestamp) for r in kept],
                    base_offset=header.base_offset, compression_type=header.compression,
                    timestamp_type=header.timestamp_type, producer_id=header.producer_id,
                    producer_epoch=header.producer_epoch, base_sequence=header.base_sequence,
                    partition_leader_epoch=header.partition_leader_epoch, transactional=header.is_transactional,
                    max_timestamp=header.max_timestamp,
                    offset_deltas=[r.offset - header.base_offset for r in kept],
                    last_offset_delta=header.last_offset_delta))
        if not removed:
            continue
        data = b"".join(out)
        stats.segments_cleaned += 1
        stats.records_removed += removed
        stats.bytes_before += segment.size
        stats.bytes_after += len(data)
        cleaned_path = segment.log_path + CLEANED_SUFFIX
        fd = os.open(cleaned_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        partition_log.replace_segment(segment, cleaned_path)
    return stats if stats.segments_cleaned else None
