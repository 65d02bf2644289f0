"""Idempotent producers: what each producer id last wrote to a partition, and its ``.snapshot`` files.

Kafka's rules (FORMAT.md §9).  Per producer id the manager keeps the producer's epoch, the metadata
of its last 5 batches (first sequence, last sequence, last offset, offset delta, max timestamp: a
client has at most 5 batches in flight) and the time of its last write.  A produced batch carrying a
producer id is checked in Kafka's order (``check``):

1. a duplicate first: same epoch and the same first *and* last sequence as one of the 5 retained
   batches.  Nothing is written; the append answers with the original batch's offsets;
2. an older epoch than the stored one: InvalidProducerEpochError (the producer was fenced);
3. the sequence: a bumped epoch must start at 0; the same epoch must continue at the last sequence
   + 1 (2147483647 wraps to 0); OutOfOrderSequenceError otherwise.  A producer with no state (never
   seen, or expired) may start at any sequence (KIP-360).

Validate, append, then commit: the log calls ``update`` only after the batch was written, so a
refused or failed append changes nothing here.

File owned here: ``<map end offset as 20 digits>.snapshot`` in the partition directory, the state
after every batch below that offset.  Layout (Kafka's ProducerSnapshot version 1, big-endian)::

     0  int16   version = 1
     2  uint32  CRC-32C of bytes 6..end
     6  int32   number of entries n
    10  46 x n  entries, by producer id: int64 producerId, int16 epoch, int32 lastSequence,
                int64 lastOffset, int32 offsetDelta (last offset - first offset of the last batch),
                int64 timestamp (max timestamp of the last batch), int32 coordinatorEpoch (-1),
                int64 currentTxnFirstOffset (-1)

Only each producer's last batch is persisted: after a restart, a retry of an older in-flight batch
gets OutOfOrderSequenceError (Kafka accepts the same trade-off).

Invariants:
* the in-memory state covers every batch below the log end offset: the log's lock is held around
  ``check`` + write + ``update``, and around every snapshot;
* a snapshot is written whole (temporary file, fsync, rename) on segment roll, on clean close, and
  after a load that had to replay the log (recovery); its CRC makes damage detectable;
* loading takes the newest valid snapshot at or below the log end and replays the batch headers from
  there (those with ``producer_id >= 0``).  Snapshots above the log end are deleted (a truncation made
  them wrong); a damaged one is deleted and an older one used, or an empty state and the whole log;
* retention, DeleteRecords and segment deletion never remove an entry: a live producer stays known
  however old its batches are.  Entries expire only after ``producer.id.expiration.ms`` without a
  write, measured on the broker's clock.  The file keeps no write time (its timestamp is the batch's,
  from the producer's clock: an old CreateTime would expire a live producer at the next start, and
  its retry would be stored twice), so loading counts as a write: a restart gives every known
  producer the full expiration time again.  Snapshots below the log start are deleted, but the
  newest one always stays.

Not thread-safe by itself: the owning PartitionLog serialises every call with its lock.
"""

from __future__ import annotations

import logging
import os
import struct
from typing import Callable, Iterable, Iterator, NamedTuple

from crc32c import crc32c

from ..config import PRODUCER_ID_EXPIRATION_MS
from ..errors import CorruptSnapshotError, InvalidProducerEpochError, InvalidRecordError, OutOfOrderSequenceError
from ..records.batch import BatchHeader
from .files import SNAPSHOT_SUFFIX, atomic_write, offset_file_name, parse_offset_file_name

log = logging.getLogger(__name__)

SNAPSHOT_VERSION = 1
NUM_BATCHES_TO_RETAIN = 5
MAX_SEQUENCE = 2**31 - 1
NO_EPOCH = -1

_SNAPSHOT_HEADER = struct.Struct(">hIi")  # version, crc, entry count
_ENTRY = struct.Struct(">qhiqiqiq")
_CRC_START = 6
assert _SNAPSHOT_HEADER.size == 10 and _ENTRY.size == 46


def next_sequence(sequence: int, records: int = 1) -> int:
    """The sequence ``records`` records after ``sequence``: 2147483647 is followed by 0."""
    return (sequence + records) % (MAX_SEQUENCE + 1)


class BatchMetadata(NamedTuple):
    """What dedup needs of one written batch."""

    first_seq: int
    last_seq: int
    last_offset: int
    offset_delta: int  # last offset - first offset (records - 1 for a produced batch)
    timestamp: int  # the stored batch's max timestamp (the append time under LogAppendTime)

    @property
    def first_offset(self) -> int:
        return self.last_offset - self.offset_delta


class ProducerEntry:
    """One producer id's state in one partition."""

    __slots__ = ("producer_id", "epoch", "batches", "last_write_ms", "coordinator_epoch", "current_txn_first_offset")

    def __init__(self, producer_id: int, epoch: int, batches: list[BatchMetadata] | None = None,
                 last_write_ms: int = -1, coordinator_epoch: int = -1, current_txn_first_offset: int = -1):
        self.producer_id = producer_id
        self.epoch = epoch
        self.batches = list(batches or ())  # oldest first, at most NUM_BATCHES_TO_RETAIN
        self.last_write_ms = last_write_ms
        self.coordinator_epoch = coordinator_epoch
        self.current_txn_first_offset = current_txn_first_offset

    @property
    def last_seq(self) -> int:
        return self.batches[-1].last_seq if self.batches else -1

    @property
    def last_offset(self) -> int:
        return self.batches[-1].last_offset if self.batches else -1

    @property
    def last_timestamp(self) -> int:
        return self.batches[-1].timestamp if self.batches else -1

    def find_duplicate(self, first_seq: int, last_seq: int) -> BatchMetadata | None:
        for batch in self.batches:
            if batch.first_seq == first_seq and batch.last_seq == last_seq:
                return batch
        return None

    def add(self, epoch: int, batch: BatchMetadata, write_ms: int) -> None:
        if epoch != self.epoch:  # a bumped epoch starts a new history
            self.epoch = epoch
            self.batches.clear()
        self.batches.append(batch)
        if len(self.batches) > NUM_BATCHES_TO_RETAIN:
            del self.batches[0]
        self.last_write_ms = write_ms

    def copy(self) -> "ProducerEntry":
        return ProducerEntry(self.producer_id, self.epoch, self.batches, self.last_write_ms, self.coordinator_epoch,
                             self.current_txn_first_offset)

    def to_dict(self) -> dict:
        return {"producer_id": self.producer_id, "epoch": self.epoch, "last_sequence": self.last_seq,
                "last_offset": self.last_offset, "last_timestamp": self.last_timestamp,
                "last_write_ms": self.last_write_ms, "coordinator_epoch": self.coordinator_epoch,
                "current_txn_first_offset": self.current_txn_first_offset,
                "batches": [{"first_sequence": b.first_seq, "last_sequence": b.last_seq,
                             "first_offset": b.first_offset, "last_offset": b.last_offset,
                             "max_timestamp": b.timestamp} for b in self.batches]}

    def __eq__(self, other) -> bool:
        return isinstance(other, ProducerEntry) and all(
            getattr(self, name) == getattr(other, name) for name in self.__slots__)

    def __repr__(self) -> str:
        return (f"ProducerEntry(producer_id={self.producer_id}, epoch={self.epoch}, batches={self.batches}, "
                f"last_write_ms={self.last_write_ms})")


# ---- the snapshot file ------------------------------------------------------------------------

def encode_snapshot(entries: Iterable[ProducerEntry]) -> bytes:
    """The bytes of a version-1 snapshot of ``entries`` (each producer's last batch only)."""
    parts = []
    for entry in sorted(entries, key=lambda e: e.producer_id):
        last = entry.batches[-1] if entry.batches else BatchMetadata(-1, -1, -1, 0, -1)
        parts.append(_ENTRY.pack(entry.producer_id, entry.epoch, last.last_seq, last.last_offset, last.offset_delta,
                                 last.timestamp, entry.coordinator_epoch, entry.current_txn_first_offset))
    body = struct.pack(">i", len(parts)) + b"".join(parts)
    return struct.pack(">hI", SNAPSHOT_VERSION, crc32c(body)) + body


def decode_snapshot(data: bytes, name: str = "snapshot") -> list[ProducerEntry]:
    """The entries of a snapshot file's bytes; CorruptSnapshotError (naming ``name``) if any check fails."""
    if len(data) < _SNAPSHOT_HEADER.size:
        raise CorruptSnapshotError(f"{name}: {len(data)} bytes, shorter than the 10-byte header")
    version, crc, count = _SNAPSHOT_HEADER.unpack_from(data)
    if version != SNAPSHOT_VERSION:
        raise CorruptSnapshotError(f"{name}: version {version}, expected {SNAPSHOT_VERSION}")
    actual = crc32c(memoryview(data)[_CRC_START:])
    if actual != crc:
        raise CorruptSnapshotError(f"{name}: CRC-32C stored {crc:#010x}, computed {actual:#010x}")
    if count < 0 or len(data) != _SNAPSHOT_HEADER.size + count * _ENTRY.size:
        raise CorruptSnapshotError(f"{name}: {count} entries do not fit its {len(data)} bytes")
    entries = []
    for pos in range(_SNAPSHOT_HEADER.size, len(data), _ENTRY.size):
        pid, epoch, last_seq, last_offset, delta, timestamp, coordinator_epoch, txn_first = _ENTRY.unpack_from(data, pos)
        batches = []
        if last_seq >= 0:
            first_seq = (last_seq - delta) % (MAX_SEQUENCE + 1)
            batches.append(BatchMetadata(first_seq, last_seq, last_offset, delta, timestamp))
        entries.append(ProducerEntry(pid, epoch, batches, timestamp, coordinator_epoch, txn_first))
    return entries


def snapshot_path(directory: str, offset: int) -> str:
    return os.path.join(directory, offset_file_name(offset, SNAPSHOT_SUFFIX))


def list_snapshots(directory: str) -> list[int]:
    """Offsets of the ``.snapshot`` files in ``directory``, ascending."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    parsed = (parse_offset_file_name(name) for name in names)
    return sorted(p[0] for p in parsed if p and p[1] == SNAPSHOT_SUFFIX)


# ---- the manager ------------------------------------------------------------------------------

class ProducerStateManager:
    """Producer entries of one partition, checked and updated by its log, persisted as snapshots."""

    def __init__(self, directory: str, *, topic: str = "", partition: int = -1, writable: bool = True,
                 expiration_ms: int = PRODUCER_ID_EXPIRATION_MS):
        self.directory = directory
        self.name = f"{topic}-{partition}"
        self.writable = writable
        self.expiration_ms = expiration_ms
        self.producers: dict[int, ProducerEntry] = {}
        self.snapshot_offsets: list[int] = []  # files known to exist, ascending

    # ---- the append path -----------------------------------------------------------------------

    def check(self, header: BatchHeader, offset: int) -> BatchMetadata | None:
        """Kafka's checks for a produced batch about to be written at ``offset``.

        Returns the retained batch this one duplicates (nothing must be written), or None (write it,
        then call ``update``).  Raises InvalidRecordError, InvalidProducerEpochError or
        OutOfOrderSequenceError; nothing changes either way.
        """
        pid, epoch, first = header.producer_id, header.producer_epoch, header.base_sequence
        if first < 0:
            raise InvalidRecordError(f"batch of producer {pid} for {self.name} has base sequence {first}")
        entry = self.producers.get(pid)
        if entry is None:
            return None  # never seen or expired: any sequence starts it
        if epoch == entry.epoch:
            duplicate = entry.find_duplicate(first, header.last_sequence)
            if duplicate is not None:
                return duplicate
            expected = next_sequence(entry.last_seq)
            if first != expected:
                raise OutOfOrderSequenceError(
                    f"out of order sequence for producer {pid} (epoch {epoch}) at offset {offset} in {self.name}: "
                    f"incoming batch has sequences {first}..{header.last_sequence}, expected {expected} after the "
                    f"last sequence {entry.last_seq}")
        elif epoch < entry.epoch:
            raise InvalidProducerEpochError(
                f"producer {pid} has epoch {epoch} but {self.name} already saw epoch {entry.epoch}: it was fenced")
        elif first != 0 and entry.epoch != NO_EPOCH:
            raise OutOfOrderSequenceError(
                f"producer {pid} bumped its epoch {entry.epoch} -> {epoch} in {self.name} at offset {offset}, "
                f"so its first batch must start at sequence 0, not {first}")
        return None

    def update(self, header: BatchHeader, base_offset: int, timestamp: int, now_ms: int) -> None:
        """Fold a batch that was just written at ``base_offset`` (max timestamp ``timestamp``) into the state."""
        entry = self.producers.get(header.producer_id)
        if entry is None:
            entry = self.producers[header.producer_id] = ProducerEntry(header.producer_id, header.producer_epoch)
        delta = header.last_offset_delta
        entry.add(header.producer_epoch,
                  BatchMetadata(header.base_sequence, header.last_sequence, base_offset + delta, delta, timestamp),
                  now_ms)

    def replay(self, header: BatchHeader, now_ms: int) -> None:
        """Fold a batch read back from the log (its base offset is the stored one); loading counts
        as the producer's last write (see the module's docstring)."""
        if header.producer_id < 0 or header.is_control or header.base_sequence < 0:
            return
        self.update(header, header.base_offset, header.max_timestamp, now_ms)

    def remove_expired(self, now_ms: int) -> list[int]:
        """Forget producers that wrote nothing for ``producer.id.expiration.ms``; return their ids."""
        expired = [pid for pid, entry in self.producers.items() if now_ms - entry.last_write_ms >= self.expiration_ms]
        for pid in expired:
            del self.producers[pid]
        return expired

    def entries(self) -> list[ProducerEntry]:
        """Copies of every entry, by producer id."""
        return [self.producers[pid].copy() for pid in sorted(self.producers)]

    # ---- snapshots -----------------------------------------------------------------------------

    @property
    def latest_snapshot_offset(self) -> int | None:
        return self.snapshot_offsets[-1] if self.snapshot_offsets else None

    def take_snapshot(self, offset: int) -> str:
        """Write the state as ``<offset>.snapshot`` (atomically); ``offset`` must be the log end offset."""
        path = snapshot_path(self.directory, offset)
        atomic_write(path, encode_snapshot(self.producers.values()))
        if offset not in self.snapshot_offsets:
            self.snapshot_offsets.append(offset)
            self.snapshot_offsets.sort()
        return path

    def delete_snapshots_below(self, offset: int) -> None:
        """Bound the number of snapshots: drop those below ``offset`` (the log start), never the newest."""
        while len(self.snapshot_offsets) > 1 and self.snapshot_offsets[0] < offset:
            self._delete_snapshot(self.snapshot_offsets[0])

    def _delete_snapshot(self, offset: int) -> None:
        if offset in self.snapshot_offsets:
            self.snapshot_offsets.remove(offset)
        if self.writable:
            try:
                os.unlink(snapshot_path(self.directory, offset))
            except FileNotFoundError:
                pass

    def load(self, log_end_offset: int, headers_from: Callable[[int], Iterator[BatchHeader]], now_ms: int) -> int | None:
        """Rebuild the state for a log ending at ``log_end_offset``: the newest valid snapshot at or
        below it, then every later batch of ``headers_from(start)`` (start -1: the whole log).

        Returns the offset of the snapshot used, None when there was none.  A writable manager
        deletes the snapshots above the log end and the damaged ones.
        """
        self.producers = {}
        self.snapshot_offsets = list_snapshots(self.directory)
        for offset in [o for o in self.snapshot_offsets if o > log_end_offset]:
            self._delete_snapshot(offset)
        start = None
        for offset in reversed(list(self.snapshot_offsets)):
            path = snapshot_path(self.directory, offset)
            try:
                with open(path, "rb") as fh:
                    entries = decode_snapshot(fh.read(), path)
            except (OSError, CorruptSnapshotError) as exc:
                log.warning("ignoring producer-state snapshot %s: %s", path, exc)
                self._delete_snapshot(offset)
                continue
            for entry in entries:
                entry.last_write_ms = now_ms  # loading counts as a write (see the module's docstring)
            self.producers = {entry.producer_id: entry for entry in entries}
            start = offset
            break
        if start != log_end_offset:
            first = -1 if start is None else start
            for header in headers_from(first):
                if header.base_offset >= first:
                    self.replay(header, now_ms)
        return start
