"""SharePartition: the delivery state of one (share group, topic, partition), KIP-932, sans-I/O.

SHARE_GROUPS.md §3.  Every offset from the **start offset** (SPSO) on is either *in flight* (below the
**end offset**, the first offset that never entered the window) or simply not fetched yet, which
means Available with delivery count 0.  In-flight records carry a state (Kafka's ids: AVAILABLE 0,
ACQUIRED 1, ACKNOWLEDGED 2, ARCHIVED 4) and a delivery count.  The start offset moves past the prefix
of finished (acknowledged or archived) records, and their state is forgotten, so memory is bounded by
the window, which ``max_in_flight`` (Kafka's ``group.share.partition.max.record.locks``) caps.

Calls take the time (``now_ms``) and first fire their due timers, as ``tick(now_ms)`` does: an expired
acquisition lock makes its record Available again, or Archived once its delivery count has reached
``delivery_count_limit``.  Each call returns a ``ShareResult``: ``error_code`` (0, or
INVALID_RECORD_STATE 121 for an acknowledgement that does not name the record's current acquisition
by this member and is then refused whole, or INVALID_REQUEST 42 for bad arguments), ``acquired``,
``records`` (state records to append to ``__share_group_state``, already applied) and ``dead_letters``
(one ``DeadLetter`` per record that became Archived by reject or by exhausting its deliveries, in
exactly one call's result, for the caller to copy to a dead-letter topic).  The caller appends
``records`` durably before it hands out records or answers an acknowledgement.

With ``dead_letter_queue=True`` a dead letter is not archived at once: it becomes ARCHIVING (3 when
rejected, 5 when its deliveries ran out) until the caller has copied it to the dead-letter topic and
calls ``archive(offsets)``; ``pending_dead_letters()`` lists them again after a restart, so a copy is
made exactly once when the caller checks the dead-letter topic for copies made just before a crash.

**Durable state changes only in ``replay``** (DESIGN.md decision 5): the start and end offsets and, per
in-flight offset, a durable state (AVAILABLE, ACKNOWLEDGED or ARCHIVED) and delivery count.  Acquired
is never durable: an acquisition is written as "Available, delivery count n+1" *before* the record is
handed out, so a crash never forgets a delivery, and after ``restart_from(records)`` records that were
Acquired come back Available with their count.  The locks (owner, delivery id, deadline) and release
delays are live state only.  A delivery is identified by ``(offset, delivery_id)`` where ``delivery_id``
is the record's delivery count at acquisition: counts only grow and are durable, so an acknowledgement
from before a restart, or of an earlier delivery, can never match a later acquisition.

State record encoding (big-endian; one record is one value of ``__share_group_state``)::

    version         int8    0
    type            int8    0 = ShareSnapshot (replaces the whole state), 1 = ShareUpdate (overlay)
    start_offset    int64   the new start offset; state below it is dropped
    end_offset      int64   offsets from here on never entered the window (replay keeps the max)
    batch count     int32
    batches         first_offset int64, last_offset int64, state int8 (0, 2, 3, 4, 5), delivery_count int16
                    (runs of consecutive offsets sharing state and count)

``snapshot_record()`` gives a ShareSnapshot of the current state, to write instead of the history.
"""

from __future__ import annotations

import bisect
import struct
from dataclasses import dataclass, field
from typing import Iterable, NamedTuple

from logbroker.errors import CorruptRecordError

from .errors import NONE

AVAILABLE, ACQUIRED, ACKNOWLEDGED, ARCHIVED = 0, 1, 2, 4
# Dead letters on their way to the dead-letter topic (durable, never delivered, hold the start offset).
# 3 is Kafka's ARCHIVING; 5 is this project's: the same, for a record that used up its deliveries.
ARCHIVING_REJECTED, ARCHIVING_EXHAUSTED = 3, 5
ARCHIVING = (ARCHIVING_REJECTED, ARCHIVING_EXHAUSTED)
FINISHED = (ACKNOWLEDGED, ARCHIVED)
DURABLE_STATES = (AVAILABLE, ACKNOWLEDGED, ARCHIVED, ARCHIVING_REJECTED, ARCHIVING_EXHAUSTED)
INVALID_REQUEST = 42
INVALID_RECORD_STATE = 121
GAP, ACCEPT, RELEASE, REJECT = 0, 1, 2, 3  # Kafka's acknowledge types (v1)

SNAPSHOT, UPDATE = 0, 1
_FRESH = (AVAILABLE, 0)
RECORD_VERSION = 0
_HEADER = struct.Struct(">bbqqi")
_BATCH = struct.Struct(">qqbh")

REJECTED = "rejected"
DELIVERY_LIMIT = "delivery_count_limit"


class Acquired(NamedTuple):
    offset: int
    delivery_count: int
    delivery_id: int


class DeadLetter(NamedTuple):
    offset: int
    delivery_count: int
    reason: str  # REJECTED or DELIVERY_LIMIT


@dataclass
class ShareResult:
    error_code: int = NONE
    acquired: list[Acquired] = field(default_factory=list)
    records: list[bytes] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)


@dataclass(frozen=True)
class ShareState:
    """A decoded state record, and the shape of ``durable_state()``: {offset: (state, delivery_count)}."""
    start_offset: int
    end_offset: int
    records: dict[int, tuple[int, int]]
    snapshot: bool = True


class _Lock(NamedTuple):
    member_id: str
    delivery_id: int
    deadline_ms: int
    session: object = None  # which of the member's share sessions acquired it (release_member's filter)


# ---- encoding ------------------------------------------------------------------------------------

def encode_state(state: ShareState) -> bytes:
    batches: list[bytes] = []
    pack = _BATCH.pack
    records = state.records
    first = last = value = None
    for offset in sorted(records):
        current = records[offset]
        if last is not None and offset == last + 1 and current == value:
            last = offset
            continue
        if first is not None:
            batches.append(pack(first, last, *value))
        first = last = offset
        value = current
    if first is not None:
        batches.append(pack(first, last, *value))
    header = _HEADER.pack(RECORD_VERSION, SNAPSHOT if state.snapshot else UPDATE, state.start_offset,
                          state.end_offset, len(batches))
    return header + b"".join(batches)


def decode_state(data: bytes) -> ShareState:
    """Strict: a wrong version, type, state, length or batch raises ``CorruptRecordError``."""
    if len(data) < _HEADER.size:
        raise CorruptRecordError("share state record truncated")
    version, kind, start, end, n = _HEADER.unpack_from(data)
    if version != RECORD_VERSION or kind not in (SNAPSHOT, UPDATE) or n < 0:
        raise CorruptRecordError(f"bad share state record header {version}/{kind}/{n}")
    if len(data) != _HEADER.size + n * _BATCH.size or not 0 <= start <= end:
        raise CorruptRecordError("bad share state record length or offsets")
    records = {}
    for i in range(n):
        first, last, st, count = _BATCH.unpack_from(data, _HEADER.size + i * _BATCH.size)
        if st not in DURABLE_STATES or first > last or count < 0:
            raise CorruptRecordError(f"bad share state batch {first}-{last} state {st} count {count}")
        records.update((o, (st, count)) for o in range(first, last + 1))
    return ShareState(start, end, records, kind == SNAPSHOT)


# ---- the share-partition -------------------------------------------------------------------------

class SharePartition:
    def __init__(self, *, start_offset: int = 0, delivery_count_limit: int = 5, max_in_flight: int = 2000,
                 dead_letter_queue: bool = False):
        """``start_offset`` is where a partition with no stored state begins (share.auto.offset.reset)."""
        self.delivery_count_limit = delivery_count_limit
        self.max_in_flight = max_in_flight
        self.dead_letter_queue = dead_letter_queue
        self._start = self._end = start_offset  # durable, written only by replay
        self._records: dict[int, tuple[int, int]] = {}  # durable: offset -> (state, count), non-trivial only
        self._locks: dict[int, _Lock] = {}  # live: acquired offsets
        self._not_before: dict[int, int] = {}  # live: released with a delay, available from then on

    @classmethod
    def restart_from(cls, records: Iterable[bytes], **settings) -> SharePartition:
        sp = cls(**settings)
        for record in records:
            sp.replay(record)
        return sp

    # ---- durable state ------------------------------------------------------------------------

    def replay(self, record: bytes) -> None:
        """Apply one state record: the only mutator of the durable state."""
        self._apply(decode_state(record))

    def _apply(self, state: ShareState) -> None:
        """``replay`` of a decoded record (``_emit`` applies what it encodes without decoding it)."""
        old_start = self._start
        if state.snapshot:
            self._records = {}
            self._start = state.start_offset
            self._end = state.end_offset
        for offset, value in state.records.items():
            if value == (AVAILABLE, 0):
                self._records.pop(offset, None)
            else:
                self._records[offset] = value
        self._end = max(self._end, state.end_offset, state.start_offset)
        if state.start_offset > self._start:
            self._start = state.start_offset
        if self._start != old_start or state.snapshot:
            for table in (self._records, self._locks, self._not_before):
                for offset in [o for o in table if o < self._start]:
                    del table[offset]

    def durable_state(self) -> ShareState:
        return ShareState(self._start, self._end, dict(self._records))

    def snapshot_record(self) -> bytes:
        return encode_state(self.durable_state())

    @property
    def start_offset(self) -> int:
        return self._start

    @property
    def end_offset(self) -> int:
        return self._end

    def state_of(self, offset: int) -> tuple[int, int]:
        """(state, delivery count) of an offset at or above the start offset, Acquired included."""
        state, count = self._records.get(offset, (AVAILABLE, 0))
        return (ACQUIRED if offset in self._locks else state), count

    def held_offsets(self) -> list[int]:
        """Offsets acquired right now (by anyone)."""
        return list(self._locks)

    def owner(self, offset: int) -> str | None:
        lock = self._locks.get(offset)
        return lock.member_id if lock else None

    def summary(self, log_end_offset: int, now_ms: int) -> dict:
        """Counts for ``queue describe`` and lag: records from the start offset to ``log_end_offset`` by
        state (offsets past the end offset count as available), the delivery-count histogram of the
        in-flight ones and the first offset a consumer could be handed now (None if none)."""
        counts = {"acquired": 0, "available": 0, "acknowledged": 0, "archived": 0, "dead_lettering": 0}
        histogram: dict[int, int] = {}
        first_available = None
        for offset in range(self._start, min(self._end, log_end_offset)):
            state, count = self.state_of(offset)
            if state == ACQUIRED:
                counts["acquired"] += 1
            elif state == AVAILABLE:
                counts["available"] += 1
                if first_available is None and self._not_before.get(offset, now_ms) <= now_ms:
                    first_available = offset
            elif state == ACKNOWLEDGED:
                counts["acknowledged"] += 1
            elif state == ARCHIVED:
                counts["archived"] += 1
            else:
                counts["dead_lettering"] += 1
            if count and state in (ACQUIRED, AVAILABLE):
                histogram[count] = histogram.get(count, 0) + 1
        beyond = max(0, log_end_offset - max(self._end, self._start))
        counts["available"] += beyond
        if first_available is None and beyond:
            first_available = max(self._end, self._start)
        counts["delivery_counts"] = dict(sorted(histogram.items()))
        counts["first_available_offset"] = first_available
        return counts

    def next_deadline(self) -> int | None:
        """When ``tick`` next has work (a lock expiry or the end of a release delay)."""
        times = [lock.deadline_ms for lock in self._locks.values()] + list(self._not_before.values())
        return min(times, default=None)

    # ---- acquisition --------------------------------------------------------------------------

    def acquire(self, now_ms: int, member_id: str, available_offsets: range | Iterable[int], max_records: int,
                lock_duration_ms: int, session: object = None) -> ShareResult:
        """Acquire up to ``max_records`` Available offsets among those the log has, in offset order.

        A record whose delivery count already reached the limit (possible after a restart) is archived
        and dead-lettered instead of delivered.  Acquiring stops at ``start_offset + max_in_flight``."""
        result = self._fire(now_ms)
        if max_records <= 0 or lock_duration_ms <= 0 or not member_id:
            result.error_code = INVALID_REQUEST
            return result
        changes: dict[int, tuple[int, int]] = {}
        limit = self._start + self.max_in_flight
        candidates = self._candidates(available_offsets)
        for offset in candidates:
            if offset >= limit or len(result.acquired) >= max_records:
                break
            if offset >= self._end and isinstance(candidates, range):
                # never in the window: no state, lock or delay; take the rest as one run
                fresh = range(offset, min(candidates.stop, limit, offset + max_records - len(result.acquired)))
                changes.update(dict.fromkeys(fresh, (AVAILABLE, 1)))
                result.acquired.extend([Acquired(o, 1, 1) for o in fresh])
                break
            state, count = self._records.get(offset, (AVAILABLE, 0))
            if state != AVAILABLE or offset in self._locks or self._not_before.get(offset, now_ms) > now_ms:
                continue
            if count >= self.delivery_count_limit:
                self._dead_letter(result, changes, offset, count, DELIVERY_LIMIT)
            else:
                changes[offset] = (AVAILABLE, count + 1)
                result.acquired.append(Acquired(offset, count + 1, count + 1))
            self._not_before.pop(offset, None)
        self._emit(result, changes)
        for a in result.acquired:
            self._locks[a.offset] = _Lock(member_id, a.delivery_id, now_ms + lock_duration_ms, session)
        return result

    def _candidates(self, available_offsets: range | Iterable[int]) -> Iterable[int]:
        if isinstance(available_offsets, range) and available_offsets.step == 1:
            return range(max(self._start, available_offsets.start), available_offsets.stop)
        offsets = sorted(set(available_offsets))
        return offsets[bisect.bisect_left(offsets, self._start):]

    # ---- acknowledgement ----------------------------------------------------------------------

    def accept(self, now_ms: int, member_id: str, offset: int, delivery_id: int) -> ShareResult:
        return self.acknowledge(now_ms, member_id, offset, delivery_id, ACCEPT)

    def release(self, now_ms: int, member_id: str, offset: int, delivery_id: int, delay_ms: int = 0) -> ShareResult:
        return self.acknowledge(now_ms, member_id, offset, delivery_id, RELEASE, delay_ms)

    def reject(self, now_ms: int, member_id: str, offset: int, delivery_id: int) -> ShareResult:
        return self.acknowledge(now_ms, member_id, offset, delivery_id, REJECT)

    def acknowledge(self, now_ms: int, member_id: str, offset: int, delivery_id: int | None, ack_type: int,
                    delay_ms: int = 0) -> ShareResult:
        """Kafka's acknowledge types: GAP (archived, no dead letter: there is no record), ACCEPT,
        RELEASE (Available again after ``delay_ms``, or Archived at the limit), REJECT (Archived)."""
        return self.acknowledge_many(now_ms, member_id, [(offset, delivery_id, ack_type)], delay_ms)

    def acknowledge_many(self, now_ms: int, member_id: str, acks: Iterable[tuple[int, int | None, int]],
                         delay_ms: int = 0) -> ShareResult:
        """Apply ``(offset, delivery_id, ack_type)`` acknowledgements all or nothing, as one state record.

        ``delivery_id`` None accepts whichever delivery the member holds (Kafka's wire acknowledgements
        name offsets only; the lock still fences them).  One offset twice, an unknown type or a
        negative delay is INVALID_REQUEST; any offset the member does not hold is INVALID_RECORD_STATE."""
        result = self._fire(now_ms)
        acks = list(acks)
        if (delay_ms < 0 or len({a[0] for a in acks}) != len(acks)
                or any(t not in (GAP, ACCEPT, RELEASE, REJECT) for _, _, t in acks)):
            result.error_code = INVALID_REQUEST
            return result
        locks = self._locks
        for offset, delivery_id, _ in acks:
            lock = locks.get(offset)
            if lock is None or lock.member_id != member_id or (delivery_id is not None and lock.delivery_id != delivery_id):
                result.error_code = INVALID_RECORD_STATE
                return result
        changes: dict[int, tuple[int, int]] = {}
        released = []
        records = self._records
        for offset, _, ack_type in sorted(acks):
            del locks[offset]
            _, count = records.get(offset, _FRESH)
            if ack_type == ACCEPT:
                changes[offset] = (ACKNOWLEDGED, count)
            elif ack_type == GAP:
                changes[offset] = (ARCHIVED, count)
            elif ack_type == REJECT:
                self._dead_letter(result, changes, offset, count, REJECTED)
            else:
                released.append(offset)
        self._end_delivery(result, released, delay_ms, now_ms, changes)
        return result

    def extend(self, now_ms: int, member_id: str, offset: int, delivery_id: int, extra_ms: int) -> ShareResult:
        """Push the lock deadline of a current acquisition back by ``extra_ms`` (Kafka's RENEW)."""
        result = self._fire(now_ms)
        if extra_ms < 0:
            result.error_code = INVALID_REQUEST
        elif not self._holds(member_id, offset, delivery_id):
            result.error_code = INVALID_RECORD_STATE
        else:
            lock = self._locks[offset]
            self._locks[offset] = lock._replace(deadline_ms=lock.deadline_ms + extra_ms)
        return result

    def holds_any(self, member_id: str, session: object = None) -> bool:
        return any(lock.member_id == member_id and (session is None or lock.session == session)
                   for lock in self._locks.values())

    def release_member(self, now_ms: int, member_id: str, session: object = None) -> ShareResult:
        """A member's share session ended: its acquired records (those of ``session`` only, if given)
        end their delivery at once."""
        result = self._fire(now_ms)
        mine = sorted(o for o, lock in self._locks.items()
                      if lock.member_id == member_id and (session is None or lock.session == session))
        for offset in mine:
            del self._locks[offset]
        self._end_delivery(result, mine, 0, now_ms)
        return result

    def unacquire(self, now_ms: int, member_id: str, offsets: Iterable[int]) -> ShareResult:
        """Take back acquisitions the member never received (a response had no room for them):
        Available again at once, and the delivery does not count (the count goes back down)."""
        result = self._fire(now_ms)
        changes = {}
        for offset in offsets:
            lock = self._locks.get(offset)
            if lock is None or lock.member_id != member_id:
                continue
            del self._locks[offset]
            state, count = self._records.get(offset, _FRESH)
            changes[offset] = (state, max(0, count - 1))
        self._emit(result, changes)
        return result

    def _holds(self, member_id: str, offset: int, delivery_id: int | None) -> bool:
        lock = self._locks.get(offset)
        return (lock is not None and lock.member_id == member_id
                and (delivery_id is None or lock.delivery_id == delivery_id))

    # ---- dead letters ---------------------------------------------------------------------------

    def _dead_letter(self, result: ShareResult, changes: dict, offset: int, count: int, reason: str) -> None:
        if self.dead_letter_queue:
            changes[offset] = (ARCHIVING_REJECTED if reason == REJECTED else ARCHIVING_EXHAUSTED, count)
        else:
            changes[offset] = (ARCHIVED, count)
        result.dead_letters.append(DeadLetter(offset, count, reason))

    def pending_dead_letters(self) -> list[DeadLetter]:
        """Dead letters not yet ``archive``d (copied to the dead-letter topic), in offset order."""
        return [DeadLetter(o, count, REJECTED if st == ARCHIVING_REJECTED else DELIVERY_LIMIT)
                for o, (st, count) in sorted(self._records.items()) if st in ARCHIVING]

    def archive(self, offsets: Iterable[int]) -> ShareResult:
        """The dead letters at ``offsets`` were copied: Archived (other offsets are left alone)."""
        result = ShareResult()
        changes = {}
        for offset in offsets:
            st, count = self._records.get(offset, (AVAILABLE, 0))
            if st in ARCHIVING:
                changes[offset] = (ARCHIVED, count)
        self._emit(result, changes)
        return result

    # ---- time and the log start ---------------------------------------------------------------

    def tick(self, now_ms: int) -> ShareResult:
        return self._fire(now_ms)

    def advance_start(self, log_start_offset: int) -> ShareResult:
        """Retention moved the log start past the start offset: everything below is gone (archived,
        without dead letters: there is nothing left to copy)."""
        result = ShareResult()
        if log_start_offset > self._start:
            self._emit(result, {}, start=log_start_offset)
        return result

    def _fire(self, now_ms: int) -> ShareResult:
        result = ShareResult()
        for offset in [o for o, t in self._not_before.items() if t <= now_ms]:
            del self._not_before[offset]
        expired = sorted(o for o, lock in self._locks.items() if lock.deadline_ms <= now_ms)
        for offset in expired:
            del self._locks[offset]
        self._end_delivery(result, expired, 0, now_ms)
        return result

    def _end_delivery(self, result: ShareResult, offsets: list[int], delay_ms: int, now_ms: int,
                      changes: dict | None = None) -> None:
        """Offsets no longer acquired whose delivery ended without an outcome: Available, or Archived
        (and dead-lettered) once their delivery count reached the limit."""
        changes = {} if changes is None else changes
        for offset in offsets:
            _, count = self._records.get(offset, (AVAILABLE, 0))
            if count >= self.delivery_count_limit:
                self._dead_letter(result, changes, offset, count, DELIVERY_LIMIT)
            elif delay_ms > 0:
                self._not_before[offset] = now_ms + delay_ms
        self._emit(result, changes)

    def _emit(self, result: ShareResult, changes: dict[int, tuple[int, int]], start: int | None = None) -> None:
        """Write one ShareUpdate with ``changes`` and the start offset they lead to, through replay."""
        if not changes and start is None:
            return
        new_start = self._start if start is None else start
        while True:
            state = changes.get(new_start) or self._records.get(new_start, (AVAILABLE, 0))
            if state[0] not in FINISHED or new_start in self._locks:
                break
            new_start += 1
        end = max([self._end, new_start] + [o + 1 for o in changes])
        state = ShareState(new_start, end, {o: v for o, v in changes.items() if o >= new_start}, snapshot=False)
        record = encode_state(state)
        self._apply(state)
        result.records.append(record)
