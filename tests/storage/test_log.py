"""PartitionLog: offsets, rolls, durability, reads, retention, compaction, validation and recovery."""

from __future__ import annotations

import os
import random
import shutil
import struct

import pytest

from logbroker.clock import ManualClock
from logbroker.errors import CorruptRecordError, InvalidRecordError, OffsetOutOfRangeError, RecordTooLargeError
from logbroker.records import LOG_APPEND_TIME, check_batch, decode_all, iter_batches, read_header
from logbroker.storage.cleaner import compact_log
from logbroker.storage.files import CLEANED_SUFFIX, SWAP_SUFFIX

from ._helpers import (T0, abandon, append_durably, batch, batch_layout, file_bytes, flip, open_log, read_all,
                       segment_path)


def values_of(records):
    return [r.value for r in records]


def log_files(directory):
    return sorted(os.listdir(directory))


# ---- appending, durability, reading -----------------------------------------------------------


def test_offsets_are_assigned_per_batch_and_contiguous(tmp_path):
    log, report = open_log(tmp_path)
    assert report is None and log.log_end_offset == 0 and log.high_watermark == 0
    info = append_durably(log, batch([b"a", b"b", b"c"]))
    assert (info.base_offset, info.last_offset, info.records, info.log_append_time) == (0, 2, 3, -1)
    info = append_durably(log, batch([b"d"]) + batch([b"e", b"f"]))  # two batches in one append
    assert (info.base_offset, info.last_offset, info.records) == (3, 5, 3)
    records = read_all(log)
    assert [r.offset for r in records] == list(range(6))
    assert values_of(records) == [b"a", b"b", b"c", b"d", b"e", b"f"]
    # the base offsets were stamped into the file (the producer sent 0)
    assert [base for _, _, base, _ in batch_layout(log.active_segment.log_path)] == [0, 3, 4]
    log.close()


def test_high_watermark_moves_only_when_fsynced(tmp_path):
    log, _ = open_log(tmp_path)
    log.append(batch([b"a"]))
    assert (log.log_end_offset, log.high_watermark) == (1, 0)
    assert decode_all(log.read(0).records) == []
    with pytest.raises(OffsetOutOfRangeError):
        log.read(1)
    log.wait_durable()
    assert log.high_watermark == 1
    assert values_of(decode_all(log.read(0).records)) == [b"a"]
    log.close()


def test_relaxed_flush_messages_acknowledges_at_once(tmp_path):
    log, _ = open_log(tmp_path, flush_messages=1000)
    log.append(batch([b"a"]))
    assert log.high_watermark == 1
    log.close()


def test_read_returns_whole_batches_at_least_one(tmp_path):
    log, _ = open_log(tmp_path)
    for i in range(10):
        append_durably(log, batch([b"%d-%d" % (i, j) for j in range(3)]))
    sizes = [size for _, size, _, _ in batch_layout(log.active_segment.log_path)]
    for max_bytes in (0, 1, sizes[0] - 1, sizes[0], sizes[0] + 1, sizes[0] + sizes[1], 10**6):
        data = log.read(4, max_bytes).records
        returned = [h.size for _, h in iter_batches(data)]
        assert sum(returned) == len(data)  # whole batches only
        assert returned == sizes[1 : 1 + len(returned)]  # from the batch holding offset 4, in order
        assert len(data) <= max(max_bytes, sizes[1])  # over max_bytes only to return one batch
        rest = sizes[1 + len(returned):]
        assert not rest or len(data) + rest[0] > max_bytes  # and as much as fits
        assert decode_all(data)[0].offset == 3
    with pytest.raises(OffsetOutOfRangeError):
        log.read(31)
    assert log.read(30).records == b""
    log.close()


def test_read_below_the_log_start_is_out_of_range(tmp_path):
    log, _ = open_log(tmp_path)
    for i in range(5):
        append_durably(log, batch([b"%d" % i]))
    log.delete_records(3)
    with pytest.raises(OffsetOutOfRangeError):
        log.read(2)
    assert values_of(read_all(log)) == [b"3", b"4"]
    log.close()


# ---- validation of what is appended ----------------------------------------------------------


def _snapshot(directory):
    return {name: file_bytes(os.path.join(directory, name)) for name in os.listdir(directory)}


def test_batch_over_max_message_bytes_is_refused_and_nothing_written(tmp_path):
    log, _ = open_log(tmp_path, max_message_bytes=300)
    append_durably(log, batch([b"ok"]))
    before = _snapshot(tmp_path)
    big = batch([b"x" * 400])
    with pytest.raises(RecordTooLargeError):
        log.append(big)
    with pytest.raises(RecordTooLargeError):  # one good batch and one too large: the chunk goes whole or not
        log.append(batch([b"ok2"]) + big)
    assert (log.log_end_offset, log.active_segment.size) == (1, len(before["00000000000000000000.log"]))
    log.wait_durable()
    assert _snapshot(tmp_path) == before
    exact = next(b for b in (batch([b"y" * n]) for n in range(300)) if len(b) == 300)
    append_durably(log, exact)  # exactly at the limit is fine
    assert values_of(read_all(log))[-1].startswith(b"yyy")
    log.close()


@pytest.mark.parametrize("damage", ["crc", "magic", "truncated", "length", "second-batch", "trailing-bytes"])
def test_corrupt_batch_is_refused_and_the_log_unchanged(tmp_path, damage):
    log, _ = open_log(tmp_path)
    append_durably(log, batch([b"ok"]))
    before = _snapshot(tmp_path)
    data = bytearray(batch([b"payload", b"more"]))
    if damage == "crc":
        data[70] ^= 0x10
    elif damage == "magic":
        data[16] = 1
    elif damage == "truncated":
        data = data[:-3]
    elif damage == "length":
        struct.pack_into(">i", data, 8, len(data) - 12 + 5)
    elif damage == "second-batch":
        good = batch([b"fine"])
        data = bytearray(good) + data
        data[len(good) + 40] ^= 0x01
    elif damage == "trailing-bytes":
        data += b"\x00\x01"
    with pytest.raises((CorruptRecordError, InvalidRecordError)):
        log.append(bytes(data))
    assert log.log_end_offset == 1
    log.wait_durable()
    assert _snapshot(tmp_path) == before
    append_durably(log, batch([b"after"]))
    assert values_of(read_all(log)) == [b"ok", b"after"]
    log.close()


def test_log_append_time_stamps_the_append_time(tmp_path):
    clock = ManualClock(T0)
    log, _ = open_log(tmp_path, clock, message_timestamp_type="LogAppendTime")
    clock.advance(5000)
    info = append_durably(log, batch([b"a", b"b"], ts=[T0 - 100_000, T0 + 10**9]))
    assert info.log_append_time == T0 + 5000
    clock.advance(1000)
    append_durably(log, batch([b"c"], ts=T0))
    records = read_all(log)
    assert [(r.timestamp, r.timestamp_type) for r in records] == [
        (T0 + 5000, LOG_APPEND_TIME), (T0 + 5000, LOG_APPEND_TIME), (T0 + 6000, LOG_APPEND_TIME)]
    header = read_header(file_bytes(log.active_segment.log_path))
    assert header.timestamp_type == LOG_APPEND_TIME and header.max_timestamp == T0 + 5000
    assert log.offset_for_timestamp(T0 + 5001) == (2, T0 + 6000)
    abandon(log)
    # the rewritten CRC is right: an unclean open keeps every batch
    log, report = open_log(tmp_path, clock, clean=False, message_timestamp_type="LogAppendTime")
    assert not report.dropped_anything and log.log_end_offset == 3
    assert [r.timestamp for r in read_all(log)] == [T0 + 5000, T0 + 5000, T0 + 6000]
    log.close()


# ---- rolling ---------------------------------------------------------------------------------


def test_roll_by_segment_bytes(tmp_path):
    log, _ = open_log(tmp_path, segment_bytes=1024)
    rng = random.Random(7)
    placed = []  # (segment base, size) as the rule says: roll when active size + incoming > segment.bytes
    active_base, active_size = 0, 0
    for i in range(60):
        data = batch([b"v" * rng.randint(0, 200) for _ in range(rng.randint(1, 3))])
        if active_size and active_size + len(data) > 1024:
            active_base, active_size = log.log_end_offset, 0
        info = append_durably(log, data)
        if active_size == 0:
            assert info.base_offset == active_base
        active_size += len(data)
        placed.append(active_base)
    bases = sorted(set(placed))
    assert [s.base_offset for s in log.segments] == bases and len(bases) > 5
    for segment in log.segments:
        assert segment.size <= 1024
        assert os.path.getsize(segment.log_path) == segment.size
    log.close()


def test_a_batch_bigger_than_segment_bytes_gets_a_segment_of_its_own(tmp_path):
    log, _ = open_log(tmp_path, segment_bytes=1024)
    append_durably(log, batch([b"a"]))
    append_durably(log, batch([b"x" * 2000]))
    append_durably(log, batch([b"b"]))
    assert [s.base_offset for s in log.segments] == [0, 1, 2]
    assert values_of(read_all(log)) == [b"a", b"x" * 2000, b"b"]
    log.close()


def test_roll_by_segment_ms_uses_record_time(tmp_path):
    clock = ManualClock(T0)
    log, _ = open_log(tmp_path, clock, segment_ms=1000)
    append_durably(log, batch([b"a"], ts=T0))
    clock.advance(10_000)  # wall-clock age does not matter
    append_durably(log, batch([b"b"], ts=T0 + 1000))  # not more than segment.ms after the first batch
    assert len(log.segments) == 1
    append_durably(log, batch([b"c"], ts=T0 + 999))
    append_durably(log, batch([b"d", b"d2"], ts=[T0 + 5, T0 + 1001]))  # the incoming batch's max timestamp counts
    assert [s.base_offset for s in log.segments] == [0, 3]
    append_durably(log, batch([b"e"], ts=T0 + 1500))  # measured from the new segment's first batch
    assert len(log.segments) == 2
    log.close()
    log, _ = open_log(tmp_path, clock, segment_ms=1000)  # the first batch's time is reread after a restart
    append_durably(log, batch([b"f"], ts=T0 + 2002))
    assert [s.base_offset for s in log.segments] == [0, 3, 6]
    assert values_of(read_all(log)) == [b"a", b"b", b"c", b"d", b"d2", b"e", b"f"]
    log.close()


def test_roll_seals_the_old_segment_and_makes_it_durable(tmp_path):
    log, _ = open_log(tmp_path)
    log.append(batch([b"a"]))
    assert log.high_watermark == 0
    log.roll()
    assert log.high_watermark == 1 and log.recovery_point == 1
    log.roll()  # the active segment is empty: no-op
    assert [s.base_offset for s in log.segments] == [0, 1]
    log.close()


# ---- timestamps ------------------------------------------------------------------------------


def test_offset_for_timestamp(tmp_path):
    log, _ = open_log(tmp_path, segment_bytes=1024, index_interval_bytes=100)
    rng = random.Random(3)
    stamps = []
    for i in range(80):
        ts = [T0 + rng.randint(0, 10_000) for _ in range(rng.randint(1, 3))]
        append_durably(log, batch([b"%d" % i] * len(ts), ts=ts))
        stamps += ts
    assert len(log.segments) > 3
    log.append(batch([b"unacked"], ts=T0 + 20_000))

    def expected(target, start=0):
        return next(((o, t) for o, t in enumerate(stamps) if o >= start and t >= target), None)

    for target in [T0 - 1, T0, *range(T0, T0 + 10_002, 97), T0 + 10_001, T0 + 20_000]:
        assert log.offset_for_timestamp(target) == expected(target), target
    assert log.offset_for_timestamp(-2) == (0, -1)
    assert log.offset_for_timestamp(-1) == (len(stamps), -1)
    log.delete_records(100)
    for target in range(T0, T0 + 10_002, 333):
        assert log.offset_for_timestamp(target) == expected(target, 100), target
    log.close()


# ---- retention and deletion ------------------------------------------------------------------


def _segmented_log(tmp_path, clock=None, **overrides):
    """Five segments of 4 records, segment i holding timestamps T0 + i*1000 .. + 3."""
    log, _ = open_log(tmp_path, clock, **overrides)
    for i in range(5):
        for j in range(4):
            append_durably(log, batch([b"%d-%d" % (i, j)], ts=T0 + i * 1000 + j))
        log.roll()
    return log


def test_retention_ms_deletes_whole_old_segments(tmp_path):
    log = _segmented_log(tmp_path, retention_ms=1500)
    assert [s.base_offset for s in log.segments] == [0, 4, 8, 12, 16, 20]
    # segment 1's newest record is T0+1003: more than 1500 ms old only after T0+2503
    assert log.apply_retention(T0 + 2503) == [0]
    assert log.log_start_offset == 4
    assert log.apply_retention(T0 + 2504) == [4]
    assert log.apply_retention(T0 + 10**9) == [8, 12, 16]  # never the active segment
    assert log.log_start_offset == 20 and log.log_end_offset == 20
    assert {name[:20] for name in log_files(tmp_path)} == {f"{20:020d}"}
    log.close()
    log, _ = open_log(tmp_path, log_start_offset=20)
    assert log.log_start_offset == 20 and log.log_end_offset == 20
    append_durably(log, batch([b"new"]))
    assert [r.offset for r in read_all(log)] == [20]
    log.close()


def test_retention_bytes_deletes_oldest_segments_over_the_limit(tmp_path):
    log = _segmented_log(tmp_path)
    size = log.segments[0].size
    assert all(s.size == size for s in log.segments[:5])
    log.config = log.config.__class__(**{**log.config.__dict__, "retention_bytes": 3 * size})
    assert log.apply_retention(T0) == [0, 4]
    assert log.size_bytes == 3 * size and log.log_start_offset == 8
    log.config = log.config.__class__(**{**log.config.__dict__, "retention_bytes": 0})
    assert log.apply_retention(T0) == [8, 12, 16]
    assert values_of(read_all(log)) == []
    log.close()


def test_retention_ignores_compacted_topics(tmp_path):
    log = _segmented_log(tmp_path, retention_ms=1, cleanup_policy="compact")
    assert log.apply_retention(T0 + 10**9) == []
    log.close()


def test_delete_records_moves_the_log_start_and_deletes_whole_segments(tmp_path):
    log = _segmented_log(tmp_path)
    assert log.delete_records(6) == 6
    assert [s.base_offset for s in log.segments] == [4, 8, 12, 16, 20]
    assert [r.offset for r in read_all(log)] == list(range(6, 20))
    assert log.delete_records(2) == 6  # never backwards
    assert log.delete_records(-1) == 20  # -1: up to the high watermark
    assert [s.base_offset for s in log.segments] == [20]
    with pytest.raises(OffsetOutOfRangeError):
        log.delete_records(21)
    log.close()


def test_segment_left_below_the_log_start_is_deleted_by_retention(tmp_path):
    """DeleteRecords on the active segment cannot delete it; once it has rolled, the next retention
    pass must (Kafka's deleteLogStartOffsetBreachedSegments).  Here it stays on disk for good."""
    log, _ = open_log(tmp_path)  # retention.ms 7 days, retention.bytes unlimited
    for i in range(4):
        append_durably(log, batch([b"%d" % i]))
    assert log.delete_records(4) == 4
    log.roll()
    append_durably(log, batch([b"4"]))
    log.apply_retention(T0)
    try:
        assert [s.base_offset for s in log.segments] == [4], "segment wholly below the log start kept"
        assert not os.path.exists(segment_path(tmp_path, 0))
    finally:
        log.close()


def test_truncate_to(tmp_path):
    log = _segmented_log(tmp_path)
    append_durably(log, batch([b"x", b"y", b"z"]))  # offsets 20-22, one batch
    log.truncate_to(21)  # whole batches go: 20 too
    assert log.log_end_offset == 20
    log.truncate_to(10)
    assert [s.base_offset for s in log.segments] == [0, 4, 8]
    assert log.log_end_offset == 10 and log.high_watermark == 10
    append_durably(log, batch([b"again"]))
    assert [(r.offset, r.value) for r in read_all(log, 8)] == [(8, b"2-0"), (9, b"2-1"), (10, b"again")]
    log.close()
    log, report = open_log(tmp_path, clean=False)
    assert not report.dropped_anything and log.log_end_offset == 11
    log.close()


# ---- compaction ------------------------------------------------------------------------------


def test_compaction_keeps_the_latest_record_per_key_and_the_offsets(tmp_path):
    clock = ManualClock(T0)
    log, _ = open_log(tmp_path, clock, cleanup_policy="compact", delete_retention_ms=10_000, segment_bytes=1024)
    rng = random.Random(11)
    model = []  # (offset, key, value, ts)
    for i in range(120):
        recs = [(rng.choice([b"k1", b"k2", b"k3", b"k4", None]), rng.choice([b"v%d" % i, None]), T0 + i)
                for _ in range(rng.randint(1, 3))]
        recs = [(k, v if k is not None else b"keyless", ts) for k, v, ts in recs]
        info = append_durably(log, batch([v for _, v, _ in recs], ts=[t for _, _, t in recs],
                                         keys=[k for k, _, _ in recs]))
        model += [(info.base_offset + j, k, v, t) for j, (k, v, t) in enumerate(recs)]
    assert len(log.segments) > 3
    active_base = log.active_segment.base_offset
    # Kafka's rule: the active segment is neither cleaned nor read for the key map, so a key whose
    # newest record is still in the active segment keeps its newest record from the inactive ones.
    latest = {}
    for offset, key, _, _ in model:
        if key is not None and offset < active_base:
            latest[key] = offset

    def survivors(drop_tombstones):
        return [(o, k, v, t) for o, k, v, t in model
                if o >= active_base or k is None
                or (latest[k] == o and not (drop_tombstones and v is None))]

    stats = compact_log(log, T0 + 200, force=True)  # tombstones are young: kept
    assert stats is not None and stats.records_removed > 0
    got = [(r.offset, r.key, r.value, r.timestamp) for r in read_all(log)]
    assert got == survivors(False)
    assert log.log_end_offset == len(model)
    assert not [n for n in os.listdir(tmp_path) if n.endswith(CLEANED_SUFFIX)]

    compact_log(log, T0 + 200 + 10_001, force=True)  # now every inactive segment is past delete.retention.ms
    got = [(r.offset, r.key, r.value, r.timestamp) for r in read_all(log)]
    assert got == survivors(True)
    # offsets survive restarts, clean and unclean
    assert log.cleaner_offset == active_base
    log.close()
    log, report = open_log(tmp_path, clock, cleanup_policy="compact", segment_bytes=1024, cleaner_offset=active_base)
    assert [(r.offset, r.key, r.value, r.timestamp) for r in read_all(log)] == got
    abandon(log)
    log, report = open_log(tmp_path, clock, clean=False, cleanup_policy="compact", segment_bytes=1024,
                           cleaner_offset=active_base)
    assert not report.dropped_anything
    assert [(r.offset, r.key, r.value, r.timestamp) for r in read_all(log)] == got
    # reads starting inside a removed range land on the next surviving record
    offsets = [o for o, *_ in got]
    for offset in range(0, len(model)):
        nxt = next(o for o in offsets if o >= offset)
        assert read_all(log, offset, max_bytes=1)[0].offset == nxt
    log.close()


def test_compaction_never_touches_the_active_segment(tmp_path):
    log, _ = open_log(tmp_path, cleanup_policy="compact")
    for i in range(5):
        append_durably(log, batch([b"%d" % i], keys=[b"k"]))
    assert compact_log(log, T0, force=True) is None
    assert len(read_all(log)) == 5
    log.close()


def test_leftover_cleaner_files_are_handled_on_open(tmp_path):
    log = _segmented_log(tmp_path, cleanup_policy="compact")
    log.close()
    cleaned = segment_path(tmp_path, 0) + CLEANED_SUFFIX
    with open(cleaned, "wb") as fh:
        fh.write(b"half-written")
    swapped = segment_path(tmp_path, 4)
    os.rename(swapped, swapped + SWAP_SUFFIX)  # a swap that was not renamed back
    log, _ = open_log(tmp_path, clean=False, cleanup_policy="compact")
    assert not os.path.exists(cleaned) and os.path.exists(swapped)
    assert len(read_all(log)) == 20
    log.close()


# ---- recovery --------------------------------------------------------------------------------


def _build_for_recovery(directory, count=30, seed=0):
    log, _ = open_log(directory, index_interval_bytes=100)
    rng = random.Random(seed)
    for i in range(count):
        append_durably(log, batch([b"%d-%d" % (i, j) + b"p" * rng.randint(0, 30) for j in range(rng.randint(1, 4))],
                                  ts=T0 + i))
    values = values_of(read_all(log))
    log.close()
    return values


def test_torn_tail_at_every_byte_of_the_last_batch_is_truncated(tmp_path):
    original = tmp_path / "original"
    values = _build_for_recovery(original, 8)
    path = segment_path(original, 0)
    layout = batch_layout(path)
    last_pos, last_size, last_base, _ = layout[-1]
    for cut in range(last_pos, last_pos + last_size + 1):
        work = tmp_path / f"cut-{cut}"
        shutil.copytree(original, work)
        os.truncate(segment_path(work, 0), cut)
        log, report = open_log(work, clean=False, index_interval_bytes=100)
        kept = last_base if cut < last_pos + last_size else len(values)
        assert log.log_end_offset == kept, cut
        assert values_of(read_all(log)) == values[:kept]
        assert os.path.getsize(segment_path(work, 0)) == (last_pos if cut < last_pos + last_size else cut)
        assert report.truncated_bytes == (cut - last_pos if cut < last_pos + last_size else 0)
        if report.truncated_bytes:
            assert report.truncated_at == (segment_path(work, 0), last_pos)
        append_durably(log, batch([b"after"]))  # the log goes on from there
        assert values_of(read_all(log))[-1] == b"after"
        log.close()
        shutil.rmtree(work)


def test_garbage_at_random_positions_keeps_exactly_the_valid_prefix(tmp_path):
    """Kafka's testRecoveryWithCorruptMessage: damage the log at a random byte, recover, and exactly the
    batches before the damaged one survive; later segments are deleted."""
    rng = random.Random(1234)
    original = tmp_path / "original"
    log, _ = open_log(original, index_interval_bytes=100, segment_bytes=2048)
    for i in range(60):
        append_durably(log, batch([b"%d-%d" % (i, j) + b"p" * rng.randint(0, 40) for j in range(rng.randint(1, 4))],
                                  ts=T0 + i))
    values = values_of(read_all(log))
    bases = [s.base_offset for s in log.segments]
    log.close()
    assert len(bases) >= 3
    for attempt in range(40):
        work = tmp_path / f"w{attempt}"
        shutil.copytree(original, work)
        base = rng.choice(bases)
        path = segment_path(work, base)
        layout = batch_layout(path)
        if not layout:
            continue
        position = rng.randrange(layout[-1][0] + layout[-1][1])
        garbage = bytes(rng.randrange(1, 256) for _ in range(rng.randint(5, 40)))
        data = bytearray(file_bytes(path))
        for k, g in enumerate(garbage[: len(data) - position]):
            data[position + k] ^= g
        with open(path, "wb") as fh:
            fh.write(data)
        damaged_pos, _, first_bad, _ = next(b for b in layout if b[0] <= position < b[0] + b[1])
        log, report = open_log(work, clean=False, index_interval_bytes=100, segment_bytes=2048)
        assert log.log_end_offset == first_bad, (attempt, base, position)
        assert values_of(read_all(log)) == values[:first_bad]
        assert report.truncated_at == (path, damaged_pos) and report.reason
        assert report.deleted_segments == [segment_path(work, b) for b in bases if b > base]
        assert [s.base_offset for s in log.segments] == [b for b in bases if b <= base]
        log.close()
        shutil.rmtree(work)


def test_only_segments_from_the_recovery_point_are_recovered(tmp_path):
    log = _segmented_log(tmp_path)
    log.close()
    log, report = open_log(tmp_path, clean=False, recovery_point=12)
    assert report.segments_recovered == 3  # 12, 16 and the empty active 20
    log.close()
    log, report = open_log(tmp_path, clean=False, recovery_point=0)
    assert report.segments_recovered == 6
    log.close()
    log, report = open_log(tmp_path)
    assert report is None
    log.close()


def test_unclean_open_after_a_crash_keeps_every_fsynced_batch(tmp_path):
    log, _ = open_log(tmp_path, segment_bytes=1024, index_interval_bytes=64)
    for i in range(40):
        append_durably(log, batch([b"%d" % i + b"x" * 30]))
    log.append(batch([b"not acknowledged"]))  # written, not fsynced: the process dies, the page cache stays
    recovery_point = log.recovery_point
    abandon(log)
    log, report = open_log(tmp_path, clean=False, recovery_point=recovery_point, segment_bytes=1024,
                           index_interval_bytes=64)
    assert not report.dropped_anything and report.segments_recovered == 1
    assert values_of(read_all(log))[:40] == [b"%d" % i + b"x" * 30 for i in range(40)]
    assert log.log_end_offset == 41
    log.close()


# ---- damage that reads must refuse, never serve ------------------------------------------------


def _three_record_batches(directory, count=4, *, roll_after=None, **overrides):
    log, _ = open_log(directory, index_interval_bytes=10**6, **overrides)
    for i in range(count):
        if roll_after is not None and i == roll_after:
            log.roll()
        append_durably(log, batch([b"v%d-%d" % (i, j) for j in range(3)]))
    return log


def _set_base_offset(path, position, value):
    with open(path, "r+b") as fh:
        fh.seek(position)
        fh.write(struct.pack(">q", value))


def _check_never_served_wrong(log, model):
    """Every read either raises CorruptRecordError or returns the model's records from the requested offset."""
    for offset in range(log.log_start_offset, log.high_watermark):
        try:
            records = decode_all(log.read(offset, 1 << 20).records)
        except CorruptRecordError:
            continue
        assert records, f"empty read at offset {offset} below the high watermark"
        assert records[0].offset <= offset, f"read at {offset} skipped to {records[0].offset}"
        for r in records:
            assert r.value == model[r.offset], f"offset {r.offset}: served {r.value!r}, wrote {model[r.offset]!r}"


def test_damaged_base_offset_is_never_served(tmp_path):
    """The base offset (bytes 0-7) is outside the CRC.  One flipped bit turned 3 into 2: the batch then
    claims offsets 2..4 while it holds 3..5, and a read at offset 4 serves record 3's value as offset 4."""
    log = _three_record_batches(tmp_path)
    model = [b"v%d-%d" % (i, j) for i in range(4) for j in range(3)]
    position = batch_layout(log.active_segment.log_path)[1][0]
    _set_base_offset(log.active_segment.log_path, position, 2)
    try:
        _check_never_served_wrong(log, model)
    finally:
        log.close()


@pytest.mark.parametrize("damage", ["length", "base-offset-high-byte"])
def test_damaged_header_does_not_make_reads_skip_records(tmp_path, damage):
    """A damaged length field sends find_position's walk past the segment's end, and a base offset
    far above the high watermark makes the segment's read empty; either way PartitionLog.read takes
    the empty answer for a compaction gap and silently serves the next segment (or nothing) instead of
    raising CorruptRecordError."""
    log = _three_record_batches(tmp_path, 6, roll_after=4)
    model = [b"v%d-%d" % (i, j) for i in range(6) for j in range(3)]
    path = segment_path(tmp_path, 0)
    if damage == "length":
        flip(path, 8, 0x01)  # the first batch's length: +16 MiB
    else:
        flip(path, 0, 0x01)  # the first batch's base offset: +2**56
    try:
        _check_never_served_wrong(log, model)
    finally:
        log.close()


def test_damaged_data_is_refused_by_reads_and_truncated_by_recovery(tmp_path):
    log = _three_record_batches(tmp_path, 6, roll_after=4)
    model = [b"v%d-%d" % (i, j) for i in range(6) for j in range(3)]
    path = segment_path(tmp_path, 0)
    layout = batch_layout(path)
    flip(path, layout[2][0] + 70)  # inside the third batch's records: CRC
    with pytest.raises(CorruptRecordError):
        log.read(6)
    assert values_of(decode_all(log.read(3).records)) == model[3:6]  # stops before the damage
    _check_never_served_wrong(log, model)
    abandon(log)
    log, report = open_log(tmp_path, clean=False, recovery_point=0, index_interval_bytes=10**6)
    assert report.truncated_at == (path, layout[2][0])
    assert report.deleted_segments == [segment_path(tmp_path, 12)]
    assert values_of(read_all(log)) == model[:6]
    log.close()


def test_recovery_does_not_trust_segments_after_a_gap(tmp_path):
    """Recovery truncates a damaged segment (fsynced) and then deletes the later segments one by one.
    If the process dies in between, or the unlinks are lost with the directory not yet fsynced, the
    next open finds segment 0 ending at offset 5 and segment 10 still there: the log then serves
    0-4 and 10-29 with nothing between, and a read at offset 5 silently returns offset 10."""
    log, _ = open_log(tmp_path)
    for i in range(30):
        if i in (10, 20):
            log.roll()
        append_durably(log, batch([b"%d" % i]))
    log.close()
    layout = batch_layout(segment_path(tmp_path, 0))
    os.truncate(segment_path(tmp_path, 0), layout[5][0])  # what the interrupted recovery had done
    log, report = open_log(tmp_path, clean=False, recovery_point=0)
    try:
        offsets = [r.offset for r in read_all(log)]
        assert offsets == list(range(log.log_end_offset)), f"offsets served with a hole: {offsets[:8]}..."
        assert log.log_end_offset == 5 and report.dropped_anything
    finally:
        log.close()


def test_a_batch_with_a_wrong_max_timestamp_is_stored_with_the_right_one(tmp_path):
    """Old Sarama clients send maxTimestamp -1; like Kafka, the append writes the records' max in."""
    import crc32c

    log, _ = open_log(tmp_path)
    wrong = bytearray(batch([b"a", b"b"], ts=[T0 + 5, T0 + 9]))
    struct.pack_into(">q", wrong, 35, -1)
    struct.pack_into(">I", wrong, 17, crc32c.crc32c(bytes(wrong[21:])))
    info = append_durably(log, bytes(wrong))
    assert log.offset_for_timestamp(T0 + 6) == (info.base_offset + 1, T0 + 9)
    stored = log.read(0).records
    header = check_batch(stored)  # the CRC was redone
    assert header.max_timestamp == T0 + 9
    log.close()
    log, report = open_log(tmp_path, clean=False)  # recovery accepts it too
    assert report is None or not report.dropped_anything
    assert check_batch(log.read(0).records).max_timestamp == T0 + 9
    log.close()
