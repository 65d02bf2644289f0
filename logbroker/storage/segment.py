"""One log segment: ``<base>.log`` plus its ``.index`` and ``.timeindex`` (FORMAT.md §5-8).

The ``.log`` file is record batches back to back, nothing else: no header, no footer.  The segment's
base offset is the first offset it may hold and names all three files.

Invariants:
* batches are whole and checked (CRC, length, magic) before they get here; their offsets increase,
  and in a log that is not compacted each batch starts where the previous one ended (``strict``);
* every relative offset fits an int32 (the log rolls before it would not);
* ``size`` is the byte length of the valid prefix of the file; bytes beyond it (a torn write seen by
  a read-only open) are never read;
* a read checks every batch it returns (CRC and offsets) and stops at the first bad one: damaged
  data raises CorruptRecordError, it is never served.

Only the owner (``writable=True``) changes files.  ``recover()`` rebuilds both indexes from the log
and truncates at the first invalid byte; a read-only open computes the same valid prefix in memory.
"""

from __future__ import annotations

import logging
import mmap
import os
import struct
from bisect import bisect_right
from dataclasses import dataclass
from typing import Iterator

from ..errors import CorruptRecordError, KafkaStorageError
from ..records.batch import HEADER_SIZE, BatchHeader, check_batch, decode_records, read_header
from .files import INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX, offset_file_name, writev_all
from .index import CorruptIndexError, OffsetIndex, TimeIndex

log = logging.getLogger(__name__)

_OFFSET_AND_LENGTH = struct.Struct(">qi")
_MIN_BATCH_LENGTH = HEADER_SIZE - 12

MAX_RELATIVE_OFFSET = 2**31 - 1


@dataclass
class SegmentRecovery:
    """What recovering one segment found."""

    path: str
    valid_bytes: int
    truncated_bytes: int
    reason: str | None  # why the tail was dropped; None when the whole file was valid
    batches: int


class _FileView:
    """Read-only bytes of a file: an mmap when non-empty (zero-copy slices for CRC checks)."""

    def __init__(self, fd: int, size: int):
        self.buf = mmap.mmap(fd, size, prot=mmap.PROT_READ) if size else b""

    def __enter__(self):
        return self.buf

    def __exit__(self, *exc):
        if isinstance(self.buf, mmap.mmap):
            self.buf.close()


class LogSegment:
    def __init__(self, directory: str, base_offset: int, *, index_interval_bytes: int = 4096,
                 writable: bool = True, strict: bool = True):
        self.directory = directory
        self.base_offset = base_offset
        self.index_interval_bytes = index_interval_bytes
        self.writable = writable
        self.strict = strict
        self.log_path = os.path.join(directory, offset_file_name(base_offset, LOG_SUFFIX))
        flags = (os.O_RDWR | os.O_CREAT | os.O_APPEND) if writable else os.O_RDONLY
        self.fd = os.open(self.log_path, flags, 0o644)
        self.size = os.fstat(self.fd).st_size
        self.index = OffsetIndex(os.path.join(directory, offset_file_name(base_offset, INDEX_SUFFIX)),
                                 base_offset, writable=writable)
        self.time_index = TimeIndex(os.path.join(directory, offset_file_name(base_offset, TIME_INDEX_SUFFIX)),
                                    base_offset, writable=writable)
        self.next_offset = base_offset
        self.max_timestamp = -1
        self.offset_of_max_timestamp = base_offset - 1
        self.first_batch_timestamp: int | None = None  # max timestamp of the first batch (segment.ms)
        self.bytes_since_last_index_entry = 0
        self.created_ms = int(os.fstat(self.fd).st_mtime * 1000)
        if writable and self.size == 0:
            # a new segment: empty index files, so that "missing" always means "lost"
            for index in (self.index, self.time_index):
                if not os.path.exists(index.path):
                    os.close(os.open(index.path, os.O_WRONLY | os.O_CREAT, 0o644))

    # ---- loading and recovery ----------------------------------------------------------------

    def load(self) -> SegmentRecovery | None:
        """Open a segment trusted to be intact (before the recovery point, or after a clean shutdown).

        The indexes are sanity-checked and the batches after the last index entry scanned to find the
        next offset; any failure falls back to ``recover()``, whose result is returned.
        """
        try:
            self.index.load(self.size)
            position = self.index.last_entry[1]
            with _FileView(self.fd, self.size) as buf:
                self._check_index_entries(buf)
                end, stats = self._scan(buf, position, rebuild=False)
            if end != self.size:
                raise CorruptIndexError(f"{self.log_path}: invalid data at byte {end}")
            self.time_index.load(self.next_offset)
            if self.size and not len(self.time_index):
                raise CorruptIndexError(f"{self.time_index.path} is empty but the segment is not")
            if self.time_index.max_timestamp > self.max_timestamp:
                self.max_timestamp = self.time_index.max_timestamp
                self.offset_of_max_timestamp = self.time_index.entries()[-1][1]
            self._read_first_batch_timestamp()
            return None
        except (CorruptIndexError, CorruptRecordError) as exc:
            log.info("rebuilding indexes of %s: %s", self.log_path, exc)
            return self.recover()

    def _check_index_entries(self, buf) -> None:
        """Every offset-index entry must point at a batch start whose base offset lies above the
        previous entry's offset and at or below its own (one header read per entry, from the mmap)."""
        previous = self.base_offset - 1
        for offset, position in self.index.entries():
            if position + HEADER_SIZE > self.size or buf[position + 16] != 2:
                raise CorruptIndexError(f"{self.index.path}: entry ({offset}, {position}) is not a batch start")
            base = _OFFSET_AND_LENGTH.unpack_from(buf, position)[0]
            if not previous < base <= offset:
                raise CorruptIndexError(
                    f"{self.index.path}: entry ({offset}, {position}) points at a batch with base offset {base}")
            previous = offset

    def recover(self) -> SegmentRecovery:
        """Validate every batch, rebuild both indexes, truncate at the first invalid byte."""
        self.index.reset()
        self.time_index.reset()
        self.next_offset = self.base_offset
        self.max_timestamp = -1
        self.offset_of_max_timestamp = self.base_offset - 1
        self.bytes_since_last_index_entry = 0
        with _FileView(self.fd, self.size) as buf:
            end, (batches, reason) = self._scan(buf, 0, rebuild=True)
        truncated = self.size - end
        if self.writable:
            if truncated:
                os.ftruncate(self.fd, end)
            os.fsync(self.fd)  # what recovery kept is what later acknowledgements build on
        self.size = end
        if self.max_timestamp >= 0:
            self.time_index.maybe_append(self.max_timestamp, self.offset_of_max_timestamp)
        self.index.rewrite()
        self.time_index.rewrite()
        self._read_first_batch_timestamp()
        return SegmentRecovery(self.log_path, end, truncated, reason, batches)

    def _scan(self, buf, position: int, *, rebuild: bool):
        """Walk checked batches from ``position``; return (end of the valid prefix, (batches, reason)).

        Updates next_offset and max timestamp; with ``rebuild`` also re-creates index entries using
        the index.interval.bytes rule, exactly as appends make them.
        """
        end = self.size
        batches = 0
        reason = None
        expected = self.base_offset if position == 0 else None
        while position < end:
            try:
                header = check_batch(buf, position, end)
            except CorruptRecordError as exc:
                reason = str(exc)
                break
            problem = self._offset_problem(header, expected)
            if problem:
                reason = f"batch at byte {position}: {problem}"
                break
            if rebuild:
                self._index_batch(header, position)
            self._track(header)
            expected = header.next_offset
            position += header.size
            batches += 1
        return position, (batches, reason)

    def _offset_problem(self, header: BatchHeader, expected: int | None) -> str | None:
        if header.last_offset - self.base_offset > MAX_RELATIVE_OFFSET or header.base_offset < self.base_offset:
            return f"offsets {header.base_offset}..{header.last_offset} do not belong to segment {self.base_offset}"
        if expected is not None:
            if self.strict and header.base_offset != expected:
                return f"base offset {header.base_offset}, expected {expected}"
            if header.base_offset < expected:
                return f"base offset {header.base_offset} goes backwards (expected at least {expected})"
        return None

    def _index_batch(self, header: BatchHeader, position: int) -> None:
        if self.bytes_since_last_index_entry > self.index_interval_bytes:
            self.index.append(header.last_offset, position)
            self.time_index.maybe_append(max(self.max_timestamp, header.max_timestamp),
                                         header.last_offset if header.max_timestamp > self.max_timestamp
                                         else self.offset_of_max_timestamp)
            self.bytes_since_last_index_entry = 0
        self.bytes_since_last_index_entry += header.size

    def _track(self, header: BatchHeader) -> None:
        self.next_offset = header.next_offset
        if header.max_timestamp > self.max_timestamp:
            self.max_timestamp = header.max_timestamp
            self.offset_of_max_timestamp = header.last_offset

    def _read_first_batch_timestamp(self) -> None:
        if self.size >= HEADER_SIZE:
            self.first_batch_timestamp = read_header(os.pread(self.fd, HEADER_SIZE, 0)).max_timestamp
        else:
            self.first_batch_timestamp = None

    def extend(self) -> None:
        """Read-only opens: take in the whole batches another process appended since we looked."""
        file_size = os.fstat(self.fd).st_size
        if file_size <= self.size:
            return
        start, self.size = self.size, file_size
        with _FileView(self.fd, file_size) as buf:
            end, _ = self._scan(buf, start, rebuild=True)
        self.size = end
        if self.first_batch_timestamp is None:
            self._read_first_batch_timestamp()

    # ---- appending -------------------------------------------------------------------------

    def append(self, pieces: list, size: int, last_offset: int, max_timestamp: int,
               offset_of_max_timestamp: int) -> int:
        """Append checked batches (offsets assigned), given as buffers that add up to ``size`` bytes.

        Returns the start position.  A failed or short write is undone (the file is cut back) and
        raised as KafkaStorageError, so a full disk never leaves half a batch behind.
        """
        position = self.size
        try:
            writev_all(self.fd, pieces, size)
        except OSError as exc:
            try:
                os.ftruncate(self.fd, position)
            except OSError:
                pass
            raise KafkaStorageError(f"cannot append to {self.log_path}: {exc.strerror or exc}") from exc
        if self.bytes_since_last_index_entry > self.index_interval_bytes:
            self.index.append(last_offset, position)
            self.time_index.maybe_append(max(self.max_timestamp, max_timestamp),
                                         offset_of_max_timestamp if max_timestamp > self.max_timestamp
                                         else self.offset_of_max_timestamp)
            self.bytes_since_last_index_entry = 0
        self.bytes_since_last_index_entry += size
        if self.first_batch_timestamp is None:
            self.first_batch_timestamp = max_timestamp
        self.size = position + size
        self.next_offset = last_offset + 1
        if max_timestamp > self.max_timestamp:
            self.max_timestamp = max_timestamp
            self.offset_of_max_timestamp = offset_of_max_timestamp
        return position

    def write_index_entries(self) -> None:
        """Write the index entries made since the last call (no fsync: the indexes are a cache).

        Called with the log's lock held, so entries reach the files in order.
        """
        self.index.write_pending()
        self.time_index.write_pending()

    def write_index_entries_best_effort(self) -> None:
        """As write_index_entries, but a failure (a full disk) only costs the index files, which the
        next open rebuilds: the entries stay in memory and the stale files are removed."""
        try:
            self.write_index_entries()
        except OSError as exc:
            log.warning("cannot write index entries of %s (%s); the index will be rebuilt on the next open",
                        self.log_path, exc)
            self.index.delete()
            self.time_index.delete()
            self.index.writable = self.time_index.writable = False

    def fsync(self) -> None:
        """fsync the log data; safe to run while other threads append."""
        os.fsync(self.fd)

    def seal(self) -> None:
        """The segment stops being active: final time-index entry, indexes written and fsynced."""
        if self.max_timestamp >= 0:
            self.time_index.maybe_append(self.max_timestamp, self.offset_of_max_timestamp)
        if self.writable:
            os.fsync(self.fd)
            self.index.sync()
            self.time_index.sync()

    # ---- reading ---------------------------------------------------------------------------

    def find_position(self, offset: int) -> int:
        """Position of the batch holding ``offset`` (or of the first batch after it; ``size`` if none).

        The walk starts at an anchor the offsets are known at: the segment's first byte (its first
        batch starts at the base offset) or an index entry (its chunk starts above the previous
        entry's offset and ends exactly at the entry's offset).  Base offsets lie outside the CRC, so
        every batch header on the way must link up with the anchor and with the batch before it;
        anything that does not raises CorruptRecordError instead of misplacing a read.
        """
        index = self.index
        i = bisect_right(index.relative_offsets, offset - self.base_offset) - 1
        if i < 0:
            position, floor, must_end_at, expected = 0, self.base_offset - 1, None, self.base_offset
        else:
            position = index.positions[i]
            must_end_at = self.base_offset + index.relative_offsets[i]
            floor = self.base_offset + index.relative_offsets[i - 1] if i else self.base_offset - 1
            expected = None
        found = None
        end = self.size
        fd = self.fd
        while position < end:
            if position + HEADER_SIZE > end:
                raise self._damaged(position, "a batch header runs past the end of the segment")
            header = read_header(os.pread(fd, HEADER_SIZE, position))
            if header.magic != 2 or header.batch_length < _MIN_BATCH_LENGTH or position + header.size > end:
                raise self._damaged(position, f"a batch header is invalid (magic {header.magic}, "
                                              f"length {header.batch_length})")
            base, last = header.base_offset, header.last_offset
            if expected is None:
                if not floor < base <= must_end_at:
                    raise self._damaged(position, f"base offset {base} does not match the index entry "
                                                  f"for offsets ({floor}, {must_end_at}]")
            elif base != expected if self.strict else base < expected:
                raise self._damaged(position, f"base offset {base} does not follow offset {expected - 1}")
            if must_end_at is not None:
                if last == must_end_at:
                    must_end_at = None
                elif last > must_end_at:
                    raise self._damaged(position, f"no batch ends at offset {must_end_at}, as the index says")
            if found is None and last >= offset:
                found = position
            if found is not None and must_end_at is None:
                return found
            expected = last + 1
            position += header.size
        if must_end_at is not None:
            raise self._damaged(position, f"the segment ends before offset {must_end_at}, which the index names")
        return end if found is None else found

    def _damaged(self, position: int, problem: str) -> CorruptRecordError:
        return CorruptRecordError(f"{self.log_path}: batch at file position {position}: {problem}; the segment "
                                  f"is damaged")

    def read(self, offset: int, max_bytes: int, max_offset: int) -> bytes:
        """Checked batches from the one holding ``offset``, below ``max_offset``, about ``max_bytes`` long.

        Returns at least one whole batch when one exists (even if it is larger than ``max_bytes``, as
        Kafka does since KIP-74), and never a partial batch.
        """
        position = self.find_position(offset)
        if position >= self.size:
            return b""
        want = min(max(max_bytes, HEADER_SIZE), self.size - position)
        data = os.pread(self.fd, want, position)
        first = read_header(data) if len(data) >= HEADER_SIZE else None
        if first is not None and first.batch_length + 12 > len(data) and position + first.batch_length + 12 <= self.size:
            data = os.pread(self.fd, first.batch_length + 12, position)
        return self._checked_prefix(data, position, offset, max_offset)

    def _checked_prefix(self, data: bytes, position: int, offset: int, max_offset: int) -> bytes:
        """The longest run of whole, checked, linked batches at the start of ``data`` below ``max_offset``.

        The first batch was placed by ``find_position``; a problem there raises CorruptRecordError,
        a problem further on ends the run (the next read starts there and reports it).
        """
        pos = 0
        expected = None
        end = len(data)
        while pos < end:
            try:
                header = check_batch(data, pos, end)
            except CorruptRecordError as exc:
                if pos == 0:
                    raise CorruptRecordError(f"{self.log_path}: {exc} (file position {position})") from None
                break
            if expected is None:
                bad = header.last_offset < offset or (self.strict and header.base_offset > offset)
            else:
                bad = header.base_offset != expected if self.strict else header.base_offset < expected
            if bad:
                if pos == 0:
                    raise self._damaged(position, f"it holds offsets {header.base_offset}..{header.last_offset}, "
                                                  f"which cannot follow")
                break
            if header.base_offset >= max_offset:
                break
            expected = header.next_offset
            pos += header.size
        return data[:pos]

    def batches_from(self, position: int = 0):
        """Yield (position, header, file bytes) for every checked batch from ``position`` (inspection)."""
        with _FileView(self.fd, self.size) as buf:
            end = self.size
            while position < end:
                header = check_batch(buf, position, end)
                yield position, header, buf
                position += header.size

    def headers_from(self, offset: int) -> Iterator[BatchHeader]:
        """Yield the header of every batch from the one holding ``offset`` on, reading nothing but
        headers (producer-state replay).  The batches were checked when the segment was loaded."""
        position = self.find_position(offset)
        end = self.size
        with _FileView(self.fd, end) as buf:
            while position + HEADER_SIZE <= end:
                header = read_header(buf, position)
                if header.magic != 2 or header.batch_length < _MIN_BATCH_LENGTH:
                    raise self._damaged(position, f"a batch header is invalid (magic {header.magic}, "
                                                  f"length {header.batch_length})")
                yield header
                position += header.size

    def find_offset_by_timestamp(self, timestamp: int, start_offset: int) -> tuple[int, int] | None:
        """(offset, timestamp) of the first record at or after ``start_offset`` with a timestamp
        >= ``timestamp``; None if this segment has none."""
        if self.max_timestamp < timestamp:
            return None
        position = self.find_position(max(self.time_index.lookup(timestamp), start_offset))
        end = self.size
        while position + HEADER_SIZE <= end:
            header = read_header(os.pread(self.fd, HEADER_SIZE, position))
            if header.max_timestamp >= timestamp and header.last_offset >= start_offset and not header.is_control:
                data = os.pread(self.fd, header.size, position)
                header = check_batch(data)
                for record in decode_records(data, 0, header):
                    if record.offset >= start_offset and record.timestamp >= timestamp:
                        return record.offset, record.timestamp
            position += header.size
        return None

    # ---- truncation and lifecycle ------------------------------------------------------------

    def truncate_to(self, offset: int) -> int:
        """Remove every batch holding an offset >= ``offset`` (a batch goes whole, as in Kafka).

        Returns the number of bytes removed.
        """
        position = self.find_position(offset)
        removed = self.size - position
        if removed <= 0:
            return 0
        os.ftruncate(self.fd, position)
        self.size = position
        # the cheapest correct way to get next offset, timestamps and indexes right again
        self.recover()
        return removed

    def close(self) -> None:
        if self.fd >= 0:
            if self.writable:
                self.index.write_pending()
                self.time_index.write_pending()
            os.close(self.fd)
            self.fd = -1

    def delete(self) -> None:
        """Unlink the segment's files.  The log file stays open until the last reference goes:
        a reader in another thread that still holds this segment finishes its read safely."""
        self.writable = False
        for path in (self.log_path, self.index.path, self.time_index.path):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

    def release(self) -> None:
        """Drop a segment replaced by a rewritten file: pending index entries are discarded (the
        new segment rebuilt its own) and the descriptor closes with the last reference."""
        self.writable = False
        self.index.writable = self.time_index.writable = False

    def __del__(self) -> None:
        fd = getattr(self, "fd", -1)
        if fd >= 0:
            os.close(fd)

    @property
    def is_empty(self) -> bool:
        return self.size == 0
