"""A partition's log: ordered segments in ``<topic>-<partition>/``, one of them active.

Files owned here (besides each segment's): ``partition.metadata`` (version and topic id, as Kafka
writes it).  Offsets are assigned here, per appended chunk: the base offset of each batch is
rewritten in place (outside the CRC, so nothing else changes).  Idempotent producers' state and its
``.snapshot`` files belong to producer_state.py; this module checks, writes, then commits each such
batch under its lock, snapshots the state on roll and clean close, and rebuilds it on open.

Invariants:
* segments are sorted by base offset and only the last (active) one is appended to;
* ``log_start_offset <= high_watermark <= log_end_offset``; reads serve offsets in
  ``[log_start_offset, high_watermark)`` only;
* with ``flush.messages=1`` (the default) the high watermark is the fsynced end: an append is
  acknowledged (``wait_durable``) and visible to consumers only once fsynced.  Appends that arrive
  while an fsync runs share the next one (group commit).  With ``flush.messages`` / ``flush.ms``
  relaxed, appends are acknowledged at once and fsynced by count or age;
* an append whose batches carry a producer id is exactly one batch (Kafka's rule for magic 2); a
  duplicate of one of the producer's last 5 batches is answered with the original offsets and
  nothing is written;
* opening a log (after a clean or an unclean shutdown) is loader.py's work; then the producer state
  is rebuilt from the newest snapshot and the batches after it.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
from bisect import bisect_right
from dataclasses import dataclass
from typing import NamedTuple

from ..clock import SYSTEM_CLOCK
from ..config import PRODUCER_ID_EXPIRATION_MS, LogConfig
from ..errors import CorruptRecordError, InvalidRecordError, KafkaStorageError, OffsetOutOfRangeError, ReadOnlyError
from ..records.batch import set_base_offset, set_log_append_time, set_max_timestamp, validate_produced
from .files import atomic_write, fsync_dir
from .loader import RecoveryReport, load_segments, tidy_directory
from .producer_state import ProducerEntry, ProducerStateManager
from .segment import LogSegment

log = logging.getLogger(__name__)

_pack_offset = struct.Struct(">q").pack
_unpack_timestamp = struct.Struct(">q").unpack_from

EARLIEST_TIMESTAMP = -2
LATEST_TIMESTAMP = -1


class AppendInfo(NamedTuple):
    base_offset: int
    last_offset: int
    log_append_time: int  # -1 unless the topic uses LogAppendTime
    log_start_offset: int
    records: int
    duplicate: bool = False  # a retried idempotent batch: nothing written, the original offsets


@dataclass
class ReadInfo:
    records: bytes
    high_watermark: int
    log_start_offset: int
    log_end_offset: int


def partition_dir_name(topic: str, partition: int) -> str:
    return f"{topic}-{partition}"


class PartitionLog:
    """The segments of one partition.  Thread-safe: appends serialise on a lock, reads do not block."""

    def __init__(self, directory: str, topic: str, partition: int, config: LogConfig, *, clock=SYSTEM_CLOCK,
                 writable: bool = True, on_checkpoint_change=None,
                 producer_id_expiration_ms: int = PRODUCER_ID_EXPIRATION_MS):
        self.directory = directory
        self.topic = topic
        self.partition = partition
        self.config = config
        self.clock = clock
        self.writable = writable
        # (segments, their base offsets), replaced whole in one assignment so that a reader on another
        # thread always sees a matching pair
        self._view: tuple[tuple[LogSegment, ...], tuple[int, ...]] = ((), ())
        self.cleaner_offset = 0  # segments below it were compacted: gaps between offsets are normal
        self.failed: str | None = None  # set when an fsync failed: nothing more is acknowledged
        self.log_start_offset = 0
        self.log_end_offset = 0
        self.recovery_point = 0
        self.flushed_offset = 0
        self._lock = threading.RLock()
        self._flush_cond = threading.Condition()
        self._flushing = False
        self._unflushed_messages = 0
        self._last_flush_ms = clock.time_ms()
        self._on_checkpoint_change = on_checkpoint_change
        self._cleaner_lock = threading.Lock()
        self._producers = ProducerStateManager(directory, topic=topic, partition=partition, writable=writable,
                                               expiration_ms=producer_id_expiration_ms)
        self.closed = False

    @property
    def segments(self) -> tuple[LogSegment, ...]:
        return self._view[0]

    @property
    def config(self) -> LogConfig:
        return self._config

    @config.setter
    def config(self, config: LogConfig) -> None:
        self._config = config
        self._sync_on_append = config.sync_on_append  # read on every append: plain attributes
        self._log_append_time = config.log_append_time

    def _publish(self, segments) -> None:
        segments = tuple(segments)
        self._view = (segments, tuple(s.base_offset for s in segments))

    # ---- opening -----------------------------------------------------------------------------

    @classmethod
    def open(cls, directory: str, topic: str, partition: int, config: LogConfig, *, clock=SYSTEM_CLOCK,
             writable: bool = True, clean: bool = True, recovery_point: int = 0, log_start_offset: int = 0,
             cleaner_offset: int = 0, on_checkpoint_change=None,
             producer_id_expiration_ms: int = PRODUCER_ID_EXPIRATION_MS) -> tuple["PartitionLog", RecoveryReport | None]:
        """Open (creating if needed) the log in ``directory``; recover it when ``clean`` is False.

        ``on_checkpoint_change(log)`` is called when the log start offset or the cleaner offset
        moved, to persist them.  Returns the log and, when anything had to be recovered, a
        RecoveryReport.  A writable open also rebuilds the idempotent producers' state (a read-only
        one does that only when ``producer_state`` is asked for).
        """
        if writable:
            os.makedirs(directory, exist_ok=True)
        self = cls(directory, topic, partition, config, clock=clock, writable=writable,
                   on_checkpoint_change=on_checkpoint_change, producer_id_expiration_ms=producer_id_expiration_ms)
        self.cleaner_offset = cleaner_offset
        report = self._load(clean=clean, recovery_point=recovery_point)
        self.log_start_offset = max(log_start_offset, self.segments[0].base_offset)
        if self.log_start_offset > self.log_end_offset:
            self.log_start_offset = self.log_end_offset
        self.recovery_point = self.flushed_offset = self.log_end_offset
        if writable:
            self._load_producer_state()
        return self, report

    def _load_producer_state(self) -> None:
        """Newest snapshot at or below the log end, then the batches after it; a snapshot at the end
        when anything was replayed (after recovery, or for a log older than its snapshots)."""
        start = self._producers.load(self.log_end_offset, self._headers_from, self.clock.time_ms())
        if start != self.log_end_offset and self.log_end_offset > 0:
            self._snapshot_producers(self.log_end_offset)

    def _headers_from(self, offset: int):
        """Headers of every batch from the one holding ``offset`` (-1: from the first segment) to the end."""
        segments, bases = self._view
        for segment in segments[max(0, bisect_right(bases, offset) - 1):]:
            yield from segment.headers_from(max(offset, segment.base_offset))

    def _tidy(self) -> list[int]:
        return tidy_directory(self.directory, writable=self.writable)

    def _new_segment(self, base_offset: int) -> LogSegment:
        return LogSegment(self.directory, base_offset, index_interval_bytes=self.config.index_interval_bytes,
                          writable=self.writable, strict=self._strict(base_offset))

    def _strict(self, base_offset: int) -> bool:
        """Must this segment's offsets be contiguous?  Not in a compacted topic (records may be gone),
        nor below the cleaner offset (compacted before a switch to cleanup.policy=delete).  A strict
        segment lets reads catch a damaged base offset, which the CRC does not cover."""
        return not self.config.compact and base_offset >= self.cleaner_offset

    def _load(self, *, clean: bool, recovery_point: int) -> RecoveryReport | None:
        return load_segments(self, clean=clean, recovery_point=recovery_point)

    def _compute_log_end_offset(self) -> int:
        for segment in reversed(self.segments):
            if not segment.is_empty:
                return max(segment.next_offset, self.segments[-1].base_offset)
        return self.segments[-1].base_offset

    # ---- appending ---------------------------------------------------------------------------

    @property
    def active_segment(self) -> LogSegment:
        return self.segments[-1]

    @property
    def high_watermark(self) -> int:
        return self.flushed_offset if self._sync_on_append else self.log_end_offset

    def append(self, records, *, batches=None) -> AppendInfo:
        """Assign offsets to the producer's batches and write them; nothing is fsynced here.

        ``batches`` is ``validate_produced(records)``'s result when the caller already checked them.
        Call ``wait_durable(info.last_offset + 1)`` before acknowledging.
        """
        if not self.writable:
            raise ReadOnlyError(f"{self.directory} was opened read-only")
        if batches is None:
            batches = validate_produced(records, max_message_bytes=self.config.max_message_bytes)
        producer_batch = batches[0][1] if len(batches) == 1 and batches[0][1].producer_id >= 0 else None
        if producer_batch is None and len(batches) > 1:
            for pos, header in batches:
                if header.producer_id >= 0:
                    raise InvalidRecordError(
                        f"batch at byte {pos} has producer id {header.producer_id} but arrived with "
                        f"{len(batches) - 1} other batch(es); an idempotent producer sends one batch per append")
        # The batches go to the file as they came, except for their first 8 bytes (the base offset,
        # outside the CRC): one os.writev of [offset, rest of batch, ...], no copy of the data.
        # LogAppendTime changes bytes under the CRC, so those batches are copied and re-checksummed.
        view = memoryview(records)
        config = self._config
        log_append_time = self._log_append_time
        now = self.clock.time_ms() if log_append_time or not self._sync_on_append else -1
        pieces = []
        with self._lock:
            if self.closed or self.failed:
                raise KafkaStorageError(self.failed or f"{self.directory} is closed")
            first_offset = offset = self.log_end_offset
            if producer_batch is not None:
                duplicate = self._producers.check(producer_batch, offset)
                if duplicate is not None:
                    return AppendInfo(duplicate.first_offset, duplicate.last_offset,
                                      duplicate.timestamp if log_append_time else -1, self.log_start_offset,
                                      duplicate.offset_delta + 1, True)
            max_timestamp, offset_of_max = -1, offset
            count = 0
            for pos, header in batches:
                end = pos + header.batch_length + 12
                if log_append_time:
                    batch = bytearray(view[pos:end])
                    set_base_offset(batch, 0, offset)
                    set_log_append_time(batch, 0, header, now)
                    pieces.append(batch)
                    timestamp = now
                elif header.max_timestamp != _unpack_timestamp(view, pos + 35)[0]:
                    batch = bytearray(view[pos:end])  # the producer's max timestamp was wrong
                    set_base_offset(batch, 0, offset)
                    set_max_timestamp(batch, 0, header, header.max_timestamp)
                    pieces.append(batch)
                    timestamp = header.max_timestamp
                else:
                    pieces.append(_pack_offset(offset))
                    pieces.append(view[pos + 8 : end])
                    timestamp = header.max_timestamp
                last = offset + header.last_offset_delta
                if timestamp > max_timestamp:
                    max_timestamp, offset_of_max = timestamp, last
                offset = last + 1
                count += header.records_count
            last_offset = offset - 1
            if last_offset - first_offset > 2**31 - 1:
                raise InvalidRecordError(
                    f"the batches of one append span {last_offset - first_offset + 1} offsets; at most 2**31 fit a segment")
            segment = self._view[0][-1]
            if segment.size:
                try:
                    self._maybe_roll(len(view), max_timestamp, last_offset)
                except OSError as exc:
                    raise KafkaStorageError(f"cannot roll a new segment in {self.directory}: {exc.strerror or exc}") from exc
                segment = self._view[0][-1]
            segment.append(pieces, len(view), last_offset, max_timestamp, offset_of_max)
            self.log_end_offset = offset
            if producer_batch is not None:
                self._producers.update(producer_batch, first_offset, max_timestamp, self.clock.time_ms())
            self._unflushed_messages += count
            if not self._sync_on_append and (
                    self._unflushed_messages >= config.flush_messages
                    or now - self._last_flush_ms >= config.flush_ms):
                self._flush_locked()
        return AppendInfo(first_offset, last_offset, now if log_append_time else -1, self.log_start_offset, count)

    def _maybe_roll(self, size: int, max_timestamp: int, last_offset: int) -> None:
        segment = self.active_segment
        if segment.is_empty:
            return
        if (segment.size + size > self.config.segment_bytes
                or (segment.first_batch_timestamp is not None and max_timestamp >= 0
                    and max_timestamp - segment.first_batch_timestamp > self.config.segment_ms)
                or last_offset - segment.base_offset > 2**31 - 1):
            self._roll_locked()

    def roll(self) -> None:
        """Start a new active segment at the log end offset (no-op when the active one is empty)."""
        with self._lock:
            if not self.active_segment.is_empty:
                self._roll_locked()

    def _roll_locked(self) -> None:
        old = self.active_segment
        try:
            old.seal()  # fsyncs the log and its indexes: everything below the new base is durable
        except OSError as exc:
            self.failed = f"fsync of {old.log_path} failed ({exc.strerror or exc}) while rolling"
            raise
        segment = self._new_segment(self.log_end_offset)
        fsync_dir(self.directory)
        self._publish(self.segments + (segment,))
        self._snapshot_producers(segment.base_offset)
        with self._flush_cond:
            self.flushed_offset = max(self.flushed_offset, self.log_end_offset)
            self._flush_cond.notify_all()
        self.recovery_point = segment.base_offset

    # ---- producer state ------------------------------------------------------------------------

    def _snapshot_producers(self, offset: int) -> None:
        """Snapshot the producer state at ``offset`` (the log end) and drop snapshots below the log
        start.  Best effort: without it the next open replays more of the log, nothing is lost."""
        try:
            self._producers.take_snapshot(offset)
            self._producers.delete_snapshots_below(self.log_start_offset)
        except OSError as exc:
            log.warning("could not write the producer-state snapshot of %s at offset %d: %s", self.directory,
                        offset, exc)

    @property
    def producer_state(self) -> list[ProducerEntry]:
        """Copies of the idempotent producers' entries, by producer id.  A read-only open rebuilds
        them from the files at each call (newest snapshot, then the batches after it)."""
        if self.writable:
            with self._lock:
                return self._producers.entries()
        manager = ProducerStateManager(self.directory, topic=self.topic, partition=self.partition, writable=False,
                                       expiration_ms=self._producers.expiration_ms)
        manager.load(self.log_end_offset, self._headers_from, self.clock.time_ms())
        return manager.entries()

    # ---- durability --------------------------------------------------------------------------

    def wait_durable(self, offset: int | None = None) -> None:
        """Return once everything below ``offset`` (default: the log end) is fsynced.

        Group commit: if an fsync is already running, wait for it and then, if it did not cover
        ``offset``, run one more for everyone who queued meanwhile.
        """
        if offset is None:
            offset = self.log_end_offset
        with self._flush_cond:
            while self.flushed_offset < offset:
                if self.failed:
                    raise KafkaStorageError(self.failed)
                if self._flushing:
                    self._flush_cond.wait()
                    continue
                self._flushing = True
                break
            else:
                return
        flushed = None
        try:
            with self._lock:
                target = self.log_end_offset
                segment = self.active_segment
                segment.write_index_entries_best_effort()
            segment.fsync()
            flushed = target
        except OSError as exc:
            # After a failed fsync the kernel may have dropped the dirty pages and a later fsync may
            # "succeed": nothing written since the last good fsync can be acknowledged, ever.
            self.failed = (f"fsync of {segment.log_path} failed ({exc.strerror or exc}); this partition "
                           f"acknowledges nothing more until the broker restarts and recovers it")
            raise KafkaStorageError(self.failed) from exc
        finally:
            with self._flush_cond:
                self._flushing = False
                if flushed is not None:
                    self.flushed_offset = max(self.flushed_offset, flushed)
                    self._unflushed_messages = 0
                    self._last_flush_ms = self.clock.time_ms()
                self._flush_cond.notify_all()

    flush = wait_durable

    def _flush_locked(self) -> None:
        self.active_segment.write_index_entries_best_effort()
        try:
            self.active_segment.fsync()
        except OSError as exc:
            self.failed = f"fsync of {self.active_segment.log_path} failed ({exc.strerror or exc})"
            raise KafkaStorageError(self.failed) from exc
        with self._flush_cond:
            self.flushed_offset = self.log_end_offset
            self._unflushed_messages = 0
            self._last_flush_ms = self.clock.time_ms()
            self._flush_cond.notify_all()

    def maybe_flush(self, now_ms: int) -> None:
        """Periodic check for ``flush.ms`` (called by the broker's housekeeping)."""
        if self.flushed_offset < self.log_end_offset and now_ms - self._last_flush_ms >= self.config.flush_ms:
            self.wait_durable()

    # ---- reading -----------------------------------------------------------------------------

    def read(self, offset: int, max_bytes: int = 1 << 20, *, max_offset: int | None = None) -> ReadInfo:
        """Checked batches from the one holding ``offset``, up to about ``max_bytes`` (at least one batch).

        Raises OffsetOutOfRangeError outside ``[log_start_offset, high_watermark]``.
        """
        high_watermark = self.high_watermark
        limit = high_watermark if max_offset is None else min(max_offset, high_watermark)
        segments, bases = self._view
        if offset < self.log_start_offset or offset > high_watermark:
            raise OffsetOutOfRangeError(
                f"offset {offset} is outside [{self.log_start_offset}, {high_watermark}] of {self.topic}-{self.partition}")
        if offset < bases[0]:
            raise OffsetOutOfRangeError(
                f"offset {offset} is below the first segment of {self.topic}-{self.partition} (retention moved on)")
        i = bisect_right(bases, offset) - 1
        data = b""
        while offset < limit and i < len(segments):
            segment = segments[i]
            data = segment.read(offset, max_bytes, limit)
            if data:
                break
            if segment.strict and offset < segment.next_offset:
                raise CorruptRecordError(
                    f"{segment.log_path}: nothing readable at offset {offset}, below the segment's end "
                    f"{segment.next_offset}; the segment is damaged")
            if (segment.strict and i + 1 < len(segments) and not segment.is_empty
                    and segments[i + 1].base_offset != segment.next_offset):
                raise CorruptRecordError(
                    f"offsets {segment.next_offset}..{segments[i + 1].base_offset - 1} of "
                    f"{self.topic}-{self.partition} are missing between {segment.log_path} and the next segment")
            i += 1  # the offset sits past this segment's data (a gap left by compaction)
            if i < len(segments):
                offset = max(offset, segments[i].base_offset)
        return ReadInfo(data, high_watermark, self.log_start_offset, self.log_end_offset)

    def refresh(self, log_start_offset: int | None = None, cleaner_offset: int | None = None) -> None:
        """Read-only opens: catch up with the owning process: its appends, new segments, segments
        its retention deleted and (when given, from its checkpoints) its log start and cleaner offsets."""
        if self.writable:
            return
        with self._lock:
            if cleaner_offset is not None and cleaner_offset > self.cleaner_offset:
                self.cleaner_offset = cleaner_offset
                self._restrict()
            present = set(self._tidy())
            segments = [s for s in self.segments if s.base_offset in present] or list(self.segments[-1:])
            known = segments[-1].base_offset
            for base in sorted(present):
                if base > known:
                    try:
                        segment = self._new_segment(base)
                    except FileNotFoundError:  # retention removed it meanwhile
                        continue
                    segment.size = 0  # extend() below scans it from the start
                    segments.append(segment)
            for segment in segments:
                if segment.base_offset >= known:
                    segment.extend()
            self._publish(segments)
            self.log_end_offset = self.flushed_offset = self._compute_log_end_offset()
            start = max(self.log_start_offset, segments[0].base_offset, log_start_offset or 0)
            self.log_start_offset = min(start, self.log_end_offset)

    def offset_for_timestamp(self, timestamp: int) -> tuple[int, int] | None:
        """Kafka's ListOffsets: -2 earliest, -1 latest, else the first offset with a timestamp >= it."""
        if timestamp == EARLIEST_TIMESTAMP:
            return self.log_start_offset, -1
        if timestamp == LATEST_TIMESTAMP:
            return self.high_watermark, -1
        for segment in list(self.segments):
            if segment.next_offset <= self.log_start_offset:
                continue
            found = segment.find_offset_by_timestamp(timestamp, self.log_start_offset)
            if found is not None and found[0] < self.high_watermark:
                return found
        return None

    # ---- retention and truncation --------------------------------------------------------------

    def delete_records(self, offset: int) -> int:
        """Move the log start offset up to ``offset`` (Kafka's DeleteRecords); return the new start."""
        if not self.writable:
            raise ReadOnlyError(f"{self.directory} was opened read-only")
        with self._lock:
            if offset == LATEST_TIMESTAMP:
                offset = self.high_watermark
            if offset < 0 or offset > self.high_watermark:
                raise OffsetOutOfRangeError(
                    f"cannot delete records below {offset}: the high watermark is {self.high_watermark}")
            if offset > self.log_start_offset:
                try:
                    self._set_log_start_offset(offset)
                except OSError as exc:
                    raise KafkaStorageError(f"cannot checkpoint the new log start offset of {self.directory}: "
                                            f"{exc.strerror or exc}") from exc
                self._delete_segments_below_start()
            return self.log_start_offset

    def _set_log_start_offset(self, offset: int) -> None:
        """Persist, then move, the log start offset (records below it must not come back)."""
        self._persist("log_start_offset", offset)

    def set_cleaner_offset(self, offset: int) -> None:
        """Segments below ``offset`` are compacted (their offsets may have gaps)."""
        self._persist("cleaner_offset", offset)
        with self._lock:
            self._restrict()

    def _persist(self, name: str, value: int) -> None:
        """Set a checkpointed offset; it counts only once the checkpoint is written (an OSError
        restores the previous value and propagates)."""
        previous = getattr(self, name)
        setattr(self, name, value)
        if self._on_checkpoint_change is not None:
            try:
                self._on_checkpoint_change(self)
            except OSError:
                setattr(self, name, previous)
                raise

    def apply_retention(self, now_ms: int | None = None) -> list[int]:
        """Delete whole old segments by ``retention.ms`` and ``retention.bytes``; return their base offsets."""
        if not self.writable:
            return []
        now_ms = self.clock.time_ms() if now_ms is None else now_ms
        retention_ms, retention_bytes = self.config.retention_ms, self.config.retention_bytes
        with self._lock:
            self._producers.remove_expired(now_ms)
            # segments left wholly below the log start (by delete_records) go under any policy
            deleted = self._delete_segments_below_start()
            if not self.config.delete:
                return deleted
            if retention_ms >= 0:
                deleted += self._delete_segments(
                    lambda s, nxt: nxt is not None and (s.is_empty or (s.max_timestamp >= 0
                                                                          and now_ms - s.max_timestamp > retention_ms)))
            if retention_bytes >= 0:
                total = self.size_bytes

                def over(segment, nxt):
                    nonlocal total
                    if nxt is not None and total - segment.size >= retention_bytes:
                        total -= segment.size
                        return True
                    return False

                deleted += self._delete_segments(over)
            return deleted

    def _delete_segments_below_start(self) -> list[int]:
        """Delete the leading segments left wholly below the log start offset (by delete_records)."""
        return self._delete_segments(lambda s, nxt: nxt is not None and nxt <= self.log_start_offset)

    def _delete_segments(self, predicate) -> list[int]:
        """Delete leading non-active segments while ``predicate(segment, next_base)`` holds."""
        deleted = []
        while len(self.segments) > 1 and predicate(self.segments[0], self.segments[1].base_offset):
            segment, new_first = self.segments[0], self.segments[1]
            # the start moves before the segment leaves the view, so a reader never looks below it
            self.log_start_offset = max(self.log_start_offset, new_first.base_offset)
            self._publish(self.segments[1:])
            segment.delete()  # unlinking frees space even on a full disk
            deleted.append(segment.base_offset)
        if deleted:  # the producers stay known (their entries stay); only old snapshots go
            self._producers.delete_snapshots_below(self.log_start_offset)
        if deleted and self._on_checkpoint_change is not None:
            # best effort: after a restart the start is at least the first segment's base anyway
            try:
                self._on_checkpoint_change(self)
            except OSError as exc:
                log.warning("could not checkpoint the log start offset of %s: %s", self.directory, exc)
        return deleted

    def remove_empty_segments(self) -> list[int]:
        """Drop inactive segments that compaction emptied, except the first (it holds the log start)."""
        with self._lock:
            segments = list(self.segments)
            doomed = [s for s in segments[1:-1] if s.is_empty]
            if doomed:
                self._publish([s for s in segments if s not in doomed])
                for segment in doomed:
                    segment.delete()
            return [s.base_offset for s in doomed]

    def truncate_to(self, offset: int) -> None:
        """Remove every record at or above ``offset`` (whole batches, as Kafka does)."""
        if not self.writable:
            raise ReadOnlyError(f"{self.directory} was opened read-only")
        with self._lock:
            if offset >= self.log_end_offset:
                return
            while len(self.segments) > 1 and self.segments[-1].base_offset >= offset:
                self.segments[-1].delete()
                self._publish(self.segments[:-1])
            self.active_segment.truncate_to(offset)
            self.log_end_offset = self._compute_log_end_offset()
            self.flushed_offset = min(self.flushed_offset, self.log_end_offset)
            self.recovery_point = min(self.recovery_point, self.log_end_offset)
            # the removed batches may have been any producer's last ones: rebuild from the files
            self._producers.load(self.log_end_offset, self._headers_from, self.clock.time_ms())
            if self.log_start_offset > self.log_end_offset:
                self._set_log_start_offset(self.log_end_offset)

    def replace_segment(self, old: LogSegment, new_log_path: str) -> LogSegment:
        """Swap a rewritten (compacted) ``.log`` file in for ``old``; indexes are rebuilt."""
        with self._lock:
            if old not in self.segments:  # retention removed it meanwhile
                os.unlink(new_log_path)
                return old
            i = self.segments.index(old)
            old.release()  # readers holding it keep reading the old (unlinked) file
            # the old indexes describe the old layout: gone before the new file takes the name, so a
            # crash in between finds a log without indexes and rebuilds them
            old.index.delete()
            old.time_index.delete()
            fsync_dir(self.directory)
            os.replace(new_log_path, old.log_path)
            fsync_dir(self.directory)
            segment = self._new_segment(old.base_offset)
            segment.recover()
            segments = list(self.segments)
            segments[i] = segment
            self._publish(segments)
            return segment

    # ---- housekeeping ------------------------------------------------------------------------

    def set_config(self, config: LogConfig) -> None:
        """Apply altered topic config.  Moving to fsync-on-append first fsyncs what is already
        visible, so the high watermark never goes backwards."""
        with self._lock:
            if self.writable and config.sync_on_append and not self.config.sync_on_append:
                self._flush_locked()
            self.config = config
            self._restrict()

    def _restrict(self) -> None:
        """Recompute which segments must have contiguous offsets (policy or cleaner offset changed)."""
        for segment in self.segments:
            segment.strict = self._strict(segment.base_offset)

    @property
    def size_bytes(self) -> int:
        return sum(s.size for s in self.segments)

    def statistics(self) -> dict:
        return {
            "topic": self.topic, "partition": self.partition,
            "log_start_offset": self.log_start_offset, "log_end_offset": self.log_end_offset,
            "high_watermark": self.high_watermark, "segments": len(self.segments), "size_bytes": self.size_bytes,
        }

    def write_partition_metadata(self, topic_id: str) -> None:
        atomic_write(os.path.join(self.directory, "partition.metadata"),
                     f"version: 0\ntopic_id: {topic_id}\n".encode())

    def close(self) -> None:
        """Flush and seal the active segment; close every file."""
        with self._lock:
            if self.closed:
                return
            try:
                if self.writable:
                    self.active_segment.seal()
                    self.flushed_offset = self.recovery_point = self.log_end_offset
                    if not self.failed and self.log_end_offset not in (0, self._producers.latest_snapshot_offset):
                        self._snapshot_producers(self.log_end_offset)
            finally:
                for segment in self.segments:
                    segment.close()
                self.closed = True
        with self._flush_cond:
            self._flush_cond.notify_all()

    def delete(self) -> None:
        """Remove the partition directory (the log must be closed or abandoned)."""
        import shutil

        with self._lock:
            for segment in self.segments:
                segment.close()
            self.closed = True
            shutil.rmtree(self.directory, ignore_errors=True)
