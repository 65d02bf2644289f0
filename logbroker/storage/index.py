"""Sparse offset and time indexes (FORMAT.md §6-7).  The index is a cache; the log is the truth.

``<base>.index``: 8-byte entries, int32 relative offset + int32 byte position in the ``.log``.  One
entry per appended chunk once more than ``index.interval.bytes`` have been appended since the last
entry; the entry holds the chunk's *last* offset and the position where the chunk *starts*.
``<base>.timeindex``: 12-byte entries, int64 timestamp + int32 relative offset: "the largest
timestamp seen up to and including this offset"; added only when the segment's max timestamp grew,
plus a final entry when the segment is rolled or closed.

Invariants: entries strictly increase in offset and position (offset index) and in timestamp (time
index).  Unlike Kafka we do not preallocate and mmap the files: the file holds exactly the entries,
appended as they are made (buffered until the log is flushed), so trimming on roll is a no-op and
the files stay readable by Kafka's tools.  Nothing here is fsynced on the append path: after an
unclean shutdown the indexes of every recovered segment are rebuilt, and ``sanity_check`` rejects a
damaged index of any other segment, which is then rebuilt from its log too.
"""

from __future__ import annotations

import logging
import os
import struct
from array import array
from bisect import bisect_right

from .files import atomic_write, write_all

log = logging.getLogger(__name__)

_OFFSET_ENTRY = struct.Struct(">ii")
_TIME_ENTRY = struct.Struct(">qi")


class CorruptIndexError(Exception):
    """An index file failed its sanity check; the caller rebuilds it from the log."""


class _Index:
    entry_size = 0

    def __init__(self, path: str, base_offset: int, *, writable: bool):
        self.path = path
        self.base_offset = base_offset
        self.writable = writable
        self._pending = bytearray()

    def _load_bytes(self) -> bytes:
        try:
            with open(self.path, "rb") as fh:
                data = fh.read()
        except FileNotFoundError:
            raise CorruptIndexError(f"{self.path} is missing") from None
        if len(data) % self.entry_size:
            raise CorruptIndexError(
                f"{self.path} is {len(data)} bytes, not a multiple of {self.entry_size}")
        return data

    def write_pending(self) -> None:
        """Append the entries made since the last call to the file (no fsync)."""
        if self._pending and self.writable:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                write_all(fd, self._pending)
            finally:
                os.close(fd)
        self._pending.clear()

    def sync(self) -> None:
        self.write_pending()
        if self.writable and os.path.exists(self.path):
            fd = os.open(self.path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def rewrite(self) -> None:
        """Replace the file with the in-memory entries (after a rebuild or truncation)."""
        self._pending.clear()
        if not self.writable:
            return
        try:
            atomic_write(self.path, self.to_bytes())  # a crash leaves the old file or the new, whole
        except OSError as exc:
            # The in-memory index serves this run; the file, now stale, goes (unlinking needs no
            # space) so that the next open rebuilds it instead of trusting it.
            log.warning("cannot write %s (%s); it will be rebuilt on the next open", self.path, exc)
            self.delete()

    def delete(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


class OffsetIndex(_Index):
    entry_size = 8

    def __init__(self, path: str, base_offset: int, *, writable: bool):
        super().__init__(path, base_offset, writable=writable)
        self.relative_offsets = array("i")
        self.positions = array("i")

    def __len__(self) -> int:
        return len(self.positions)

    def load(self, log_size: int) -> None:
        """Read the file and check it; CorruptIndexError if it cannot be trusted."""
        data = self._load_bytes()
        offsets, positions = array("i"), array("i")
        last_offset, last_position = -1, -1
        for rel, pos in _OFFSET_ENTRY.iter_unpack(data):
            if rel <= last_offset or pos <= last_position or pos >= log_size or rel < 0:
                raise CorruptIndexError(
                    f"{self.path}: entry ({rel}, {pos}) does not increase or points past the log "
                    f"({log_size} bytes)")
            offsets.append(rel)
            positions.append(pos)
            last_offset, last_position = rel, pos
        self.relative_offsets, self.positions = offsets, positions

    def append(self, offset: int, position: int) -> None:
        rel = offset - self.base_offset
        self.relative_offsets.append(rel)
        self.positions.append(position)
        self._pending += _OFFSET_ENTRY.pack(rel, position)

    def reset(self) -> None:
        self.relative_offsets = array("i")
        self.positions = array("i")
        self._pending.clear()

    def lookup(self, offset: int) -> tuple[int, int]:
        """(offset, position) of the last entry at or below ``offset``; (base, 0) if none.

        Entries name a chunk's last offset and its start position, so scanning forward from the
        returned position always reaches the batch holding ``offset``.
        """
        i = bisect_right(self.relative_offsets, offset - self.base_offset) - 1
        if i < 0:
            return self.base_offset, 0
        return self.base_offset + self.relative_offsets[i], self.positions[i]

    @property
    def last_entry(self) -> tuple[int, int]:
        if not self.positions:
            return self.base_offset, 0
        return self.base_offset + self.relative_offsets[-1], self.positions[-1]

    def entries(self) -> list[tuple[int, int]]:
        return [(self.base_offset + r, p) for r, p in zip(self.relative_offsets, self.positions)]

    def to_bytes(self) -> bytes:
        return b"".join(_OFFSET_ENTRY.pack(r, p) for r, p in zip(self.relative_offsets, self.positions))


class TimeIndex(_Index):
    entry_size = 12

    def __init__(self, path: str, base_offset: int, *, writable: bool):
        super().__init__(path, base_offset, writable=writable)
        self.timestamps = array("q")
        self.relative_offsets = array("i")

    def __len__(self) -> int:
        return len(self.timestamps)

    def load(self, next_offset: int) -> None:
        data = self._load_bytes()
        timestamps, offsets = array("q"), array("i")
        last_ts, last_rel = None, -1
        for ts, rel in _TIME_ENTRY.iter_unpack(data):
            if ((last_ts is not None and ts <= last_ts) or rel < max(last_rel, 0)
                    or self.base_offset + rel >= max(next_offset, self.base_offset + 1)):
                raise CorruptIndexError(f"{self.path}: entry ({ts}, {rel}) is out of order or out of range")
            timestamps.append(ts)
            offsets.append(rel)
            last_ts, last_rel = ts, rel
        self.timestamps, self.relative_offsets = timestamps, offsets

    def maybe_append(self, timestamp: int, offset: int) -> None:
        """Add (timestamp, offset) if ``timestamp`` is above every entry so far."""
        if self.timestamps and timestamp <= self.timestamps[-1]:
            return
        rel = offset - self.base_offset
        self.timestamps.append(timestamp)
        self.relative_offsets.append(rel)
        self._pending += _TIME_ENTRY.pack(timestamp, rel)

    def reset(self) -> None:
        self.timestamps = array("q")
        self.relative_offsets = array("i")
        self._pending.clear()

    def lookup(self, timestamp: int) -> int:
        """Offset to start scanning from for the first record with timestamp >= ``timestamp``."""
        i = bisect_right(self.timestamps, timestamp - 1) - 1
        if i < 0:
            return self.base_offset
        return self.base_offset + self.relative_offsets[i]

    @property
    def max_timestamp(self) -> int:
        return self.timestamps[-1] if self.timestamps else -1

    def entries(self) -> list[tuple[int, int]]:
        return [(t, self.base_offset + r) for t, r in zip(self.timestamps, self.relative_offsets)]

    def to_bytes(self) -> bytes:
        return b"".join(_TIME_ENTRY.pack(t, r) for t, r in zip(self.timestamps, self.relative_offsets))


def read_offset_index(path: str) -> list[tuple[int, int]]:
    """Raw (relative offset, position) entries of an index file, for inspection."""
    with open(path, "rb") as fh:
        data = fh.read()
    usable = len(data) - len(data) % 8
    return list(_OFFSET_ENTRY.iter_unpack(data[:usable]))


def read_time_index(path: str) -> list[tuple[int, int]]:
    with open(path, "rb") as fh:
        data = fh.read()
    usable = len(data) - len(data) % 12
    return list(_TIME_ENTRY.iter_unpack(data[:usable]))
