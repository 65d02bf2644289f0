"""Log compaction (``cleanup.policy=compact``): keep the latest record per key, never move offsets.

Segments below the partition's *cleaner offset* have been compacted before (the "clean" section);
inactive segments from there up to the active segment are the "dirty" section.  A pass starts when
dirty bytes make up ``min.cleanable.dirty.ratio`` of the inactive bytes.  It reads the dirty
section once to build "key -> offset of its latest record", then rewrites every inactive segment
keeping a record when it has no key or when no later record has its key (``latest.get(key, -1) <=
offset``: the clean section already holds one record per key).  Kept records keep their offsets
and timestamps: rewritten batches keep their base offset, producer fields, codec, timestamp type and
last offset delta (so a batch still ends where it did, as in Kafka), with gaps where records went.
Tombstones (null values) stay while their segment is younger than ``delete.retention.ms``.  The
active segment is never read for the map nor rewritten, so nothing above the high watermark (not
yet acknowledged) can displace an acknowledged record.  Afterwards the cleaner offset moves to the
active segment's base and is checkpointed (``cleaner-offset-checkpoint``).

Crash safety: a segment is rewritten into ``<base>.log.<random>.cleaned``, fsynced, then renamed
over the original after the old indexes are removed (see ``PartitionLog.replace_segment``); a
leftover ``.cleaned`` file is deleted on the next open.  One pass at a time per log.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from ..records.batch import decode_records, encode_batch
from .files import CLEANED_SUFFIX, write_synced


@dataclass
class CleanerStats:
    segments_cleaned: int
    records_read: int
    records_removed: int
    bytes_before: int
    bytes_after: int


def dirty_ratio(partition_log) -> float:
    """Bytes of inactive segments at or above the cleaner offset, over all inactive bytes."""
    inactive = partition_log.segments[:-1]
    total = sum(s.size for s in inactive)
    dirty = sum(s.size for s in inactive if s.base_offset >= partition_log.cleaner_offset)
    return dirty / total if total else 0.0


def _latest_offsets(segments) -> dict[bytes, int]:
    latest: dict[bytes, int] = {}
    for segment in segments:
        for position, header, buf in segment.batches_from(0):
            if header.is_control:
                continue
            for record in decode_records(buf, position, header):
                if record.key is not None:
                    latest[record.key] = record.offset
    return latest


def compact_log(partition_log, now_ms: int, *, force: bool = False) -> CleanerStats | None:
    """Compact the inactive segments of ``partition_log``; None when there was nothing to do."""
    if not partition_log._cleaner_lock.acquire(blocking=False):
        return None  # a pass is already running
    try:
        return _compact(partition_log, now_ms, force)
    finally:
        partition_log._cleaner_lock.release()


def _compact(partition_log, now_ms: int, force: bool) -> CleanerStats | None:
    segments = partition_log.segments
    if len(segments) < 2:
        return None
    inactive = segments[:-1]
    active_base = segments[-1].base_offset
    if not force and dirty_ratio(partition_log) < partition_log.config.min_cleanable_dirty_ratio:
        return None
    latest = _latest_offsets([s for s in inactive if s.base_offset >= partition_log.cleaner_offset])
    horizon = now_ms - partition_log.config.delete_retention_ms
    stats = CleanerStats(0, 0, 0, 0, 0)
    for segment in inactive:
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
                    if r.key is None or (latest.get(r.key, -1) <= r.offset and not (drop_tombstones and r.value is None))]
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
        cleaned_path = f"{segment.log_path}.{uuid.uuid4().hex[:8]}{CLEANED_SUFFIX}"
        write_synced(cleaned_path, data)
        # the cleaner offset first: the rewritten segment may now have gaps, and must be opened as such
        if partition_log.cleaner_offset < active_base:
            partition_log.set_cleaner_offset(active_base)
        partition_log.replace_segment(segment, cleaned_path)
    if partition_log.cleaner_offset < active_base:
        partition_log.set_cleaner_offset(active_base)
    partition_log.remove_empty_segments()
    return stats if stats.segments_cleaned else None
