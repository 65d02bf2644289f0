"""Offset and time indexes (FORMAT.md §6-7): the interval rule, the file layout, rebuilds on open."""

from __future__ import annotations

import os
import random
import struct

import pytest

from logbroker.errors import CorruptRecordError
from logbroker.records import decode_all
from logbroker.storage.index import CorruptIndexError, OffsetIndex, TimeIndex, read_offset_index, read_time_index

from ._helpers import T0, abandon, append_durably, batch, batch_layout, file_bytes, open_log, read_all, segment_path

INTERVAL = 128


def expected_entries(layout, timestamps, interval):
    """The index.interval.bytes rule of FORMAT.md §6-7, one batch per append, computed independently."""
    offset_entries, time_entries = [], []
    since = 0
    max_ts, offset_of_max = -1, -1
    for (position, size, _, last), ts in zip(layout, timestamps):
        if since > interval:
            offset_entries.append((last, position))
            entry_ts = max(max_ts, ts)
            entry_offset = last if ts > max_ts else offset_of_max
            if not time_entries or entry_ts > time_entries[-1][0]:
                time_entries.append((entry_ts, entry_offset))
            since = 0
        since += size
        if ts > max_ts:
            max_ts, offset_of_max = ts, last
    return offset_entries, time_entries, (max_ts, offset_of_max)


def fill(log, count, *, seed=0):
    """Append ``count`` single-batch chunks of 1-4 records with wandering timestamps; return the batch max ts."""
    rng = random.Random(seed)
    stamps = []
    for i in range(count):
        n = rng.randint(1, 4)
        ts = [T0 + rng.randint(0, 500) for _ in range(n)]
        append_durably(log, batch([b"v%d-%d" % (i, j) + b"x" * rng.randint(0, 60) for j in range(n)], ts=ts))
        stamps.append(max(ts))
    return stamps


def test_offset_index_entry_layout_matches_format_md(tmp_path):
    index = OffsetIndex(str(tmp_path / "x.index"), 1000, writable=True)
    index.append(1005, 4200)
    assert index.to_bytes() == bytes.fromhex("00000005 00001068")
    index.write_pending()
    assert read_offset_index(index.path) == [(5, 4200)]
    time_index = TimeIndex(str(tmp_path / "x.timeindex"), 1000, writable=True)
    time_index.maybe_append(0x18BCFE56800, 1005)
    assert time_index.to_bytes() == bytes.fromhex("0000018bcfe56800 00000005")


def test_lookup_semantics():
    index = OffsetIndex("/nonexistent", 100, writable=False)
    assert index.lookup(150) == (100, 0)
    for offset, position in [(110, 500), (120, 1000), (130, 1500)]:
        index.append(offset, position)
    assert index.lookup(109) == (100, 0)
    assert index.lookup(110) == (110, 500)
    assert index.lookup(125) == (120, 1000)
    assert index.lookup(10**6) == (130, 1500)
    time_index = TimeIndex("/nonexistent", 100, writable=False)
    assert time_index.lookup(T0) == 100
    time_index.maybe_append(T0 + 10, 105)
    time_index.maybe_append(T0 + 10, 107)  # not above the last entry: ignored
    time_index.maybe_append(T0 + 20, 115)
    assert time_index.entries() == [(T0 + 10, 105), (T0 + 20, 115)]
    assert time_index.lookup(T0 + 10) == 100  # an entry at the target itself says nothing
    assert time_index.lookup(T0 + 11) == 105
    assert time_index.lookup(T0 + 21) == 115


@pytest.mark.parametrize("content, reason", [
    (b"\x00" * 7, "not a multiple"),
    (struct.pack(">ii", 5, 100) + struct.pack(">ii", 5, 200), "does not increase"),
    (struct.pack(">ii", 5, 200) + struct.pack(">ii", 6, 100), "does not increase"),
    (struct.pack(">ii", 5, 10_000), "points past the log"),
    (struct.pack(">ii", -1, 10), "does not increase"),
])
def test_offset_index_sanity_check_rejects(tmp_path, content, reason):
    path = tmp_path / "0.index"
    path.write_bytes(content)
    with pytest.raises(CorruptIndexError, match=reason):
        OffsetIndex(str(path), 0, writable=False).load(log_size=1000)


def test_index_sanity_check_rejects_a_missing_file(tmp_path):
    with pytest.raises(CorruptIndexError, match="missing"):
        OffsetIndex(str(tmp_path / "nope.index"), 0, writable=False).load(100)
    with pytest.raises(CorruptIndexError, match="missing"):
        TimeIndex(str(tmp_path / "nope.timeindex"), 0, writable=False).load(100)


@pytest.mark.parametrize("content", [
    b"\x00" * 13,
    struct.pack(">qi", T0 + 5, 1) + struct.pack(">qi", T0 + 5, 2),
    struct.pack(">qi", T0 + 5, 1) + struct.pack(">qi", T0 + 4, 2),
    struct.pack(">qi", T0, 50),  # past the next offset
    struct.pack(">qi", T0, -1),
])
def test_time_index_sanity_check_rejects(tmp_path, content):
    path = tmp_path / "0.timeindex"
    path.write_bytes(content)
    with pytest.raises(CorruptIndexError):
        TimeIndex(str(path), 0, writable=False).load(next_offset=20)


def test_entries_follow_index_interval_bytes(tmp_path):
    log, _ = open_log(tmp_path, index_interval_bytes=INTERVAL)
    stamps = fill(log, 40)
    segment = log.active_segment
    layout = batch_layout(segment.log_path)
    offsets, times, _ = expected_entries(layout, stamps, INTERVAL)
    assert len(offsets) > 10
    assert segment.index.entries() == offsets
    assert segment.time_index.entries() == times
    # flushed to the files as they are made (buffered until the fsync)
    assert read_offset_index(segment.index.path) == [(o, p) for o, p in offsets]
    assert read_time_index(segment.time_index.path) == times
    log.close()


def test_index_interval_zero_indexes_every_batch_after_the_first(tmp_path):
    log, _ = open_log(tmp_path, index_interval_bytes=0)
    for i in range(5):
        append_durably(log, batch([b"v%d" % i]))
    layout = batch_layout(log.active_segment.log_path)
    assert log.active_segment.index.entries() == [(last, pos) for pos, _, _, last in layout[1:]]
    log.close()


def test_a_multi_batch_append_is_indexed_by_its_last_offset_and_start(tmp_path):
    log, _ = open_log(tmp_path, index_interval_bytes=1)
    append_durably(log, batch([b"a" * 50]))
    chunk = batch([b"b", b"c"]) + batch([b"d", b"e", b"f"])
    info = append_durably(log, chunk)
    assert (info.base_offset, info.last_offset) == (1, 5)
    first_size = batch_layout(log.active_segment.log_path)[0][1]
    assert log.active_segment.index.entries() == [(5, first_size)]
    assert [r.value for r in read_all(log, 3)] == [b"d", b"e", b"f"]
    log.close()


def test_recovery_rebuilds_exactly_the_indexes_appends_made(tmp_path):
    log, _ = open_log(tmp_path, index_interval_bytes=INTERVAL, segment_bytes=4096)
    fill(log, 120, seed=1)
    assert len(log.segments) >= 3
    live = {s.base_offset: (s.index.entries(), s.time_index.entries()) for s in log.segments}
    log.close()
    files = {p: file_bytes(os.path.join(tmp_path, p)) for p in os.listdir(tmp_path) if p.endswith("index")}
    # every segment: after close the files hold what the live indexes held (plus the final time entry)
    for base, (offsets, _) in live.items():
        assert read_offset_index(segment_path(tmp_path, base, ".index")) == [(o - base, p) for o, p in offsets]

    log, report = open_log(tmp_path, clean=False, recovery_point=0, index_interval_bytes=INTERVAL,
                           segment_bytes=4096)
    assert report is not None and report.segments_recovered == len(live) and not report.dropped_anything
    rebuilt = {p: file_bytes(os.path.join(tmp_path, p)) for p in os.listdir(tmp_path) if p.endswith("index")}
    assert rebuilt == files
    log.close()


def test_recovery_after_a_crash_rebuilds_the_indexes_the_live_log_had(tmp_path):
    log, _ = open_log(tmp_path, index_interval_bytes=INTERVAL)
    stamps = fill(log, 60, seed=2)
    segment = log.active_segment
    live_offsets = segment.index.entries()
    layout = batch_layout(segment.log_path)
    abandon(log)
    log, report = open_log(tmp_path, clean=False, recovery_point=0, index_interval_bytes=INTERVAL)
    assert not report.dropped_anything
    assert log.active_segment.index.entries() == live_offsets
    offsets, times, final = expected_entries(layout, stamps, INTERVAL)
    assert live_offsets == offsets
    assert log.active_segment.time_index.entries() == times + ([final] if final[0] > times[-1][0] else [])
    log.close()


def _build(tmp_path, count=80):
    log, _ = open_log(tmp_path, index_interval_bytes=INTERVAL, segment_bytes=4096)
    fill(log, count, seed=3)
    values = [r.value for r in read_all(log)]
    answers = {ts: log.offset_for_timestamp(ts) for ts in range(T0 - 1, T0 + 502, 7)}
    log.close()
    return values, answers


def _check_everything_works(tmp_path, values, answers, **open_kwargs):
    log, report = open_log(tmp_path, index_interval_bytes=INTERVAL, segment_bytes=4096, **open_kwargs)
    assert report is None or not report.dropped_anything
    for offset in range(len(values)):
        assert [r.value for r in read_all(log, offset, max_bytes=1)][:1] == [values[offset]]
    assert {ts: log.offset_for_timestamp(ts) for ts in answers} == answers
    log.close()


def _damage(path, how, rng):
    size = os.path.getsize(path)
    if how == "delete":
        os.unlink(path)
    elif how == "truncate-mid-entry":
        os.truncate(path, max(0, size - 3))
    elif how == "garbage":
        with open(path, "ab") as fh:
            fh.write(bytes(rng.randrange(256) for _ in range(5)))
    elif how == "zeros":  # what a preallocated Kafka index looks like, and what some crashes leave
        with open(path, "ab") as fh:
            fh.write(b"\x00" * 24)
    elif how == "past-end":
        with open(path, "ab") as fh:
            fh.write(struct.pack(">ii", 2**30, 2**30) if path.endswith(".index") else struct.pack(">qi", 2**62, 2**30))


@pytest.mark.parametrize("clean", [True, False], ids=["clean", "unclean-after-recovery-point"])
@pytest.mark.parametrize("how", ["delete", "truncate-mid-entry", "garbage", "zeros", "past-end"])
@pytest.mark.parametrize("suffix", [".index", ".timeindex"])
def test_damaged_index_is_rebuilt_on_open(tmp_path, suffix, how, clean):
    values, answers = _build(tmp_path)
    rng = random.Random(how)
    bases = sorted(int(p[:20]) for p in os.listdir(tmp_path) if p.endswith(".log"))
    assert len(bases) >= 3
    expected = {base: file_bytes(segment_path(tmp_path, base, suffix)) for base in bases[:-1]}
    for base in bases[:-1]:  # every inactive segment; an unclean open trusts these (before the recovery point)
        _damage(segment_path(tmp_path, base, suffix), how, rng)
    kwargs = {} if clean else {"clean": False, "recovery_point": bases[-1]}
    _check_everything_works(tmp_path, values, answers, **kwargs)
    for base in bases[:-1]:
        assert file_bytes(segment_path(tmp_path, base, suffix)) == expected[base], "index not rebuilt"


def test_index_files_of_a_missing_log_are_removed(tmp_path):
    _build(tmp_path, 10)
    stray = segment_path(tmp_path, 12345, ".index")
    with open(stray, "wb") as fh:
        fh.write(struct.pack(">ii", 1, 1))
    log, _ = open_log(tmp_path, index_interval_bytes=INTERVAL)
    assert not os.path.exists(stray)
    assert [s.base_offset for s in log.segments] == [0]
    log.close()


# ---- damage the sanity check does not see ---------------------------------------------------------


def test_offset_index_entry_pointing_inside_a_batch_is_not_served_from_and_is_healed(tmp_path):
    """An entry moved by one byte still increases and points inside the log, so load() accepts it.

    Reading must still work: the .log is intact.  Today every read that lands on that entry raises
    CorruptRecordError, after every clean restart, until the index is rebuilt by hand.
    """
    values, answers = _build(tmp_path)
    path = segment_path(tmp_path, 0, ".index")
    raw = bytearray(file_bytes(path))
    assert len(raw) >= 24
    rel, position = struct.unpack_from(">ii", raw, 8)
    struct.pack_into(">ii", raw, 8, rel, position + 1)
    with open(path, "wb") as fh:
        fh.write(raw)
    log, _ = open_log(tmp_path, index_interval_bytes=INTERVAL, segment_bytes=4096)
    failures = []
    for offset in range(len(values)):
        try:
            got = [r.value for r in decode_all(log.read(offset, 1).records) if r.offset == offset]
        except CorruptRecordError as exc:
            failures.append((offset, str(exc)))
            continue
        assert got == [values[offset]]
    log.close()
    assert not failures, f"intact records unreadable because of a damaged .index: {failures[:3]}"


def test_time_index_with_offsets_going_backwards_is_rejected(tmp_path):
    """A flipped byte in a time-index entry's offset can leave timestamps increasing but offsets not;
    load() accepts that and ListOffsets then answers with a later offset than the right one."""
    values, answers = _build(tmp_path)
    path = segment_path(tmp_path, 0, ".timeindex")
    entries = read_time_index(path)
    assert len(entries) >= 3
    raw = bytearray(file_bytes(path))
    # push the first entry's offset past the second entry's: timestamps still increase
    struct.pack_into(">i", raw, 8, entries[1][1] + 1)
    with open(path, "wb") as fh:
        fh.write(raw)
    log, _ = open_log(tmp_path, index_interval_bytes=INTERVAL, segment_bytes=4096)
    got = {ts: log.offset_for_timestamp(ts) for ts in answers}
    log.close()
    wrong = {ts: (got[ts], answers[ts]) for ts in answers if got[ts] != answers[ts]}
    assert not wrong, f"offset_for_timestamp answers (got, right) after a damaged .timeindex: {list(wrong.items())[:3]}"


def test_emptied_time_index_of_a_sealed_segment_is_rebuilt(tmp_path):
    """An empty .timeindex is a valid file, so load() accepts it for a segment that holds records.

    The segment's max timestamp then comes only from the batches after its last offset-index entry:
    ListOffsets skips the segment and retention.ms deletes it although it holds recent records.
    (``_Index.rewrite`` truncates the file before writing it, so a crash during a recovery or a
    truncation can leave exactly this behind.)
    """
    log, _ = open_log(tmp_path, index_interval_bytes=INTERVAL)
    for i in range(30):  # the newest record comes early in the segment
        append_durably(log, batch([b"v%d" % i + b"x" * 40], ts=T0 + 10_000 if i == 1 else T0 + i))
    log.roll()
    append_durably(log, batch([b"next"], ts=T0 + 20_000))
    sealed_max = log.segments[0].max_timestamp
    assert sealed_max == T0 + 10_000
    log.close()
    os.truncate(segment_path(tmp_path, 0, ".timeindex"), 0)
    log, _ = open_log(tmp_path, index_interval_bytes=INTERVAL, retention_ms=15_000)
    try:
        assert log.segments[0].max_timestamp == sealed_max
        assert log.offset_for_timestamp(T0 + 5000) == (1, T0 + 10_000)
        # 14 s after the segment's newest record, retention.ms=15 s must keep it
        assert log.apply_retention(T0 + 10_000 + 14_000) == []
    finally:
        log.close()


def test_reads_with_damaged_index_on_disk_are_unaffected_while_running(tmp_path):
    log, _ = open_log(tmp_path, index_interval_bytes=INTERVAL)
    fill(log, 30)
    values = [r.value for r in read_all(log)]
    os.unlink(log.active_segment.index.path)  # reads use the in-memory index; the file is a cache
    assert [r.value for r in read_all(log, max_bytes=1)] == values
    log.close()
