"""Opening a partition's log: tidying its directory, loading or recovering its segments.

After a clean shutdown every segment is loaded as trusted (``LogSegment.load``: indexes
sanity-checked against the log, the tail after the last index entry scanned).  After an unclean one,
every segment from the one holding the recovery point is recovered (``LogSegment.recover``: each
batch checked, indexes rebuilt, the file truncated at the first invalid byte), and the others are
loaded.  When a segment had to be truncated, or a segment does not follow the one before it (a
gap where offsets must be contiguous, an overlap anywhere), every later segment is deleted, newest
first: nothing after a damaged byte is trusted.  The report says what was dropped, and a warning is
logged.

Leftovers of interrupted work are tidied first: ``.cleaned``, ``.deleted`` and ``.tmp`` files are
removed, ``.swap`` files renamed back, index files without a log removed.  A read-only open changes
nothing on disk: it computes the same valid prefix in memory.  Producer-state ``.snapshot`` files
are left alone here: once the segments are loaded, PartitionLog.open rebuilds the producer state
(producer_state.py), deleting the snapshots the recovered log end left behind.
"""

from __future__ import annotations

import logging
import os
from bisect import bisect_right
from dataclasses import dataclass, field

from ..errors import OffsetOutOfRangeError
from .files import (CLEANED_SUFFIX, DELETED_SUFFIX, INDEX_SUFFIX, LOG_SUFFIX, SWAP_SUFFIX, TIME_INDEX_SUFFIX,
                    TMP_SUFFIX, fsync_dir, offset_file_name, parse_offset_file_name)
from .segment import LogSegment

log = logging.getLogger(__name__)


@dataclass
class RecoveryReport:
    """What opening a partition after an unclean shutdown found and dropped."""

    topic: str
    partition: int
    segments_recovered: int = 0
    truncated_bytes: int = 0
    truncated_at: tuple[str, int] | None = None  # (file, byte position) of the first invalid byte
    reason: str | None = None
    deleted_segments: list[str] = field(default_factory=list)
    log_end_offset: int = 0

    @property
    def dropped_anything(self) -> bool:
        return bool(self.truncated_bytes or self.deleted_segments)

    def describe(self) -> str:
        if not self.dropped_anything:
            return (f"{self.topic}-{self.partition}: recovered {self.segments_recovered} segment(s), "
                    f"nothing dropped, log end offset {self.log_end_offset}")
        where = f" at {self.truncated_at[0]} byte {self.truncated_at[1]}" if self.truncated_at else ""
        return (f"{self.topic}-{self.partition}: truncated {self.truncated_bytes} bytes{where} ({self.reason}); "
                f"deleted {len(self.deleted_segments)} later segment(s); log end offset now {self.log_end_offset}")


def tidy_directory(directory: str, *, writable: bool) -> list[int]:
    """Remove leftovers of interrupted work; return the base offsets of the segments present."""
    bases = set()
    names = os.listdir(directory) if os.path.isdir(directory) else []
    for name in names:
        path = os.path.join(directory, name)
        if name.endswith((CLEANED_SUFFIX, DELETED_SUFFIX, TMP_SUFFIX)):
            if writable:
                os.unlink(path)
            continue
        if name.endswith(SWAP_SUFFIX):
            if writable:
                os.replace(path, path[: -len(SWAP_SUFFIX)])
                name = name[: -len(SWAP_SUFFIX)]
            else:
                continue
        parsed = parse_offset_file_name(name)
        if parsed and parsed[1] == LOG_SUFFIX:
            bases.add(parsed[0])
    for name in names:  # index files whose log is gone
        parsed = parse_offset_file_name(name)
        if parsed and parsed[1] in (INDEX_SUFFIX, TIME_INDEX_SUFFIX) and parsed[0] not in bases and writable:
            os.unlink(os.path.join(directory, name))
    return sorted(bases)


def load_segments(log_, *, clean: bool, recovery_point: int) -> RecoveryReport | None:
    """Open every segment of the PartitionLog ``log_``; None when nothing had to be recovered."""
    bases = tidy_directory(log_.directory, writable=log_.writable)
    if not bases:
        if not log_.writable:
            raise OffsetOutOfRangeError(f"{log_.directory} holds no log segments")
        bases = [0]
    report = RecoveryReport(log_.topic, log_.partition)
    recover_from = bases[max(0, bisect_right(bases, recovery_point) - 1)] if not clean else None
    segments: list[LogSegment] = []
    doomed: list[int] = []
    for i, base in enumerate(bases):
        try:
            segment = log_._new_segment(base)
        except FileNotFoundError:  # a read-only open racing the owner's retention
            continue
        problem = gap_before(segments, segment)
        if problem:
            segment.close()
            report.reason = problem
            doomed = bases[i:]
            break
        if recover_from is not None and base >= recover_from:
            result = segment.recover()
            report.segments_recovered += 1
        else:
            result = segment.load()
        if segments and segment.is_empty and segment.base_offset < segments[-1].next_offset:
            segment.delete() if log_.writable else segment.close()
            continue
        segments.append(segment)
        if result is not None and result.truncated_bytes:
            report.truncated_bytes += result.truncated_bytes
            report.truncated_at = (result.path, result.valid_bytes)
            report.reason = result.reason
            doomed = bases[i + 1:]
            break
    # nothing after a damaged byte is trusted; newest first, so a crash midway leaves no gap
    for base in reversed(doomed):
        report.deleted_segments.insert(0, drop_file_set(log_.directory, base, writable=log_.writable))
    log_._publish(segments)
    log_.log_end_offset = log_._compute_log_end_offset()
    report.log_end_offset = log_.log_end_offset
    if report.dropped_anything:
        if log_.writable:
            fsync_dir(log_.directory)
        log.warning("recovery of %s dropped data: %s", log_.directory, report.describe())
    elif report.segments_recovered:
        log.info("recovered %s: %s", log_.directory, report.describe())
    return report if (report.segments_recovered or report.dropped_anything) else None


def gap_before(segments: list[LogSegment], segment: LogSegment) -> str | None:
    """Why ``segment`` cannot follow the segments before it (None when it can)."""
    if not segments or segments[-1].is_empty:
        return None
    previous_end = segments[-1].next_offset
    # a compacted (non-strict) segment may have lost its last records: a gap after it is normal
    if segments[-1].strict and segment.base_offset != previous_end:
        return (f"segment {segment.log_path} starts at offset {segment.base_offset} but the previous "
                f"segment ends at offset {previous_end - 1}")
    if segment.base_offset < previous_end:
        return (f"segment {segment.log_path} starts at offset {segment.base_offset}, inside the previous "
                f"segment (which ends at offset {previous_end - 1})")
    return None


def drop_file_set(directory: str, base: int, *, writable: bool) -> str:
    """Delete one segment's files (when ``writable``); return the ``.log`` path."""
    path = os.path.join(directory, offset_file_name(base, LOG_SUFFIX))
    if writable:
        for suffix in (LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX):
            try:
                os.unlink(os.path.join(directory, offset_file_name(base, suffix)))
            except FileNotFoundError:
                pass
    return path
