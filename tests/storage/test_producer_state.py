"""Idempotent producers in a PartitionLog: dedup, epochs, sequences, snapshots, restarts and retention.

Real files throughout: every test appends produced batches to a real log and reopens it the way a
broker does (cleanly, or after a simulated crash).
"""

from __future__ import annotations

import os
import subprocess

import pytest

from logbroker.clock import ManualClock
from logbroker.config import PRODUCER_ID_EXPIRATION_MS
from logbroker.errors import (CorruptSnapshotError, InvalidProducerEpochError, InvalidRecordError, KafkaStorageError,
                              OutOfOrderSequenceError, ReadOnlyError)
from logbroker.records import encode_batch
from logbroker.storage.log_manager import PRODUCER_ID_BLOCK_SIZE, PRODUCER_IDS_FILE, LogManager
from logbroker.storage.producer_state import (BatchMetadata, ProducerEntry, decode_snapshot, encode_snapshot,
                                              list_snapshots)

from ._helpers import T0, abandon, append_durably, batch, file_bytes, flip, open_log, read_all, segment_path

PID = 1000
MAX_SEQ = 2**31 - 1

# FORMAT.md §9.4: the state after the §4.2 batch (producer 1000, epoch 0, sequences 0-1 at offsets 0-1)
SNAPSHOT_EXAMPLE = bytes.fromhex(
    "00 01 0f ab 3f 35 00 00 00 01 00 00 00 00 00 00"
    "03 e8 00 00 00 00 00 01 00 00 00 00 00 00 00 01"
    "00 00 00 01 00 00 01 8b cf e5 68 05 ff ff ff ff"
    "ff ff ff ff ff ff ff ff")


def idem(n: int, seq: int, *, pid: int = PID, epoch: int = 0, tag: str = "", ts: int = T0) -> bytes:
    """One idempotent batch of ``n`` records whose values name the producer and sequence."""
    values = [f"{pid}/{epoch}/{(seq + i) % 2**31}{tag}".encode() for i in range(n)]
    return batch(values, ts=ts, producer_id=pid, producer_epoch=epoch, base_sequence=seq)


def snapshots(directory) -> list[int]:
    return list_snapshots(str(directory))


def entry_of(log, pid: int = PID) -> ProducerEntry | None:
    return next((e for e in log.producer_state if e.producer_id == pid), None)


def remembered_after_reload(sent, snapshot_offset: int) -> tuple[list, list]:
    """Which of the last 5 ``sent`` (data, info) pairs a reload from the snapshot at ``snapshot_offset``
    still knows as duplicates: the snapshot's last batch plus every batch replayed after it."""
    last_five = sent[-5:]
    before = [pair for pair in sent if pair[1].base_offset < snapshot_offset]
    known = ([before[-1]] if before else []) + [pair for pair in sent if pair[1].base_offset >= snapshot_offset]
    known = [pair for pair in known if pair in last_five]
    return known, [pair for pair in last_five if pair not in known]


def crash(log, directory, garbage: bytes = b"\x00\x00\x00\x00\x00\x00\x00\x07\x00\x00\x10\x00torn"):
    """Drop the log without closing it, tear its active segment's tail, reopen it uncleanly."""
    path = log.active_segment.log_path
    abandon(log)
    with open(path, "ab") as fh:
        fh.write(garbage)
    return open_log(directory, clean=False)


# ---- the snapshot file ------------------------------------------------------------------------


def test_snapshot_matches_the_format_md_example_byte_for_byte(tmp_path):
    records = [(None, b"a", None, T0), (b"k2", b"bb", [("h", b"x")], T0 + 5)]
    log, _ = open_log(tmp_path)
    info = append_durably(log, encode_batch(records, producer_id=1000, producer_epoch=0, base_sequence=0))
    assert (info.base_offset, info.last_offset, info.duplicate) == (0, 1, False)
    log.close()
    assert snapshots(tmp_path) == [2]
    assert file_bytes(segment_path(tmp_path, 2, ".snapshot")) == SNAPSHOT_EXAMPLE
    assert len(SNAPSHOT_EXAMPLE) == 56 and SNAPSHOT_EXAMPLE[2:6] == bytes.fromhex("0fab3f35")


def test_snapshot_codec_round_trips_and_rejects_damage():
    entry = ProducerEntry(1000, 0, [BatchMetadata(0, 1, 1, 1, T0 + 5)], T0 + 5)
    assert encode_snapshot([entry]) == SNAPSHOT_EXAMPLE
    assert decode_snapshot(SNAPSHOT_EXAMPLE) == [entry]
    assert decode_snapshot(encode_snapshot([])) == []
    wrapped = ProducerEntry(7, 3, [BatchMetadata(MAX_SEQ - 1, 1, 40, 3, T0)], T0)  # sequences wrapped in the batch
    assert decode_snapshot(encode_snapshot([entry, wrapped])) == [wrapped, entry]  # by producer id
    for damaged in (SNAPSHOT_EXAMPLE[:9], SNAPSHOT_EXAMPLE[:-1], SNAPSHOT_EXAMPLE + b"\x00",
                    b"\x00\x02" + SNAPSHOT_EXAMPLE[2:], SNAPSHOT_EXAMPLE[:20] + b"\x01" + SNAPSHOT_EXAMPLE[21:]):
        with pytest.raises(CorruptSnapshotError):
            decode_snapshot(damaged)


# ---- dedup and the order of checks -------------------------------------------------------------


def test_each_of_the_last_five_batches_is_a_duplicate_with_its_original_offsets(tmp_path):
    log, _ = open_log(tmp_path)
    sent = []
    seq = 0
    for n in (1, 3, 2, 4, 1):
        data = idem(n, seq)
        sent.append((data, append_durably(log, data)))
        seq += n
    end = log.log_end_offset
    for data, original in sent:
        again = log.append(data)
        assert again.duplicate
        assert (again.base_offset, again.last_offset, again.records) == (
            original.base_offset, original.last_offset, original.records)
    assert log.log_end_offset == end
    assert len(read_all(log)) == end == 11
    log.close()


def test_a_sixth_batch_pushes_the_oldest_out(tmp_path):
    log, _ = open_log(tmp_path)
    first = idem(2, 0)
    append_durably(log, first)
    for i in range(5):
        append_durably(log, idem(1, 2 + i))
    assert [b.first_seq for b in entry_of(log).batches] == [2, 3, 4, 5, 6]
    with pytest.raises(OutOfOrderSequenceError, match="expected 7"):
        log.append(first)
    assert log.log_end_offset == 7
    assert log.append(idem(1, 6)).duplicate  # the newest is still remembered
    log.close()


def test_a_sequence_gap_is_out_of_order_and_writes_nothing(tmp_path):
    log, _ = open_log(tmp_path)
    append_durably(log, idem(3, 0))
    before = entry_of(log)
    for seq in (4, 2, 1, MAX_SEQ):
        with pytest.raises(OutOfOrderSequenceError) as info:
            log.append(idem(1, seq))
        message = str(info.value)
        assert f"producer {PID}" in message and "offset 3" in message and f"{seq}..{seq}" in message
    assert log.log_end_offset == 3 and entry_of(log) == before
    assert log.append(idem(2, 3)).base_offset == 3  # the right sequence still goes in
    log.close()


def test_a_partial_overlap_with_a_retained_batch_is_not_a_duplicate(tmp_path):
    log, _ = open_log(tmp_path)
    append_durably(log, idem(3, 0))
    with pytest.raises(OutOfOrderSequenceError):
        log.append(idem(2, 0))  # same first sequence, different last: Kafka wants both equal
    log.close()


def test_a_stale_epoch_is_fenced_even_for_a_retry(tmp_path):
    log, _ = open_log(tmp_path)
    old = idem(1, 0, epoch=4)
    append_durably(log, old)
    append_durably(log, idem(1, 0, epoch=5))
    for data in (old, idem(1, 1, epoch=4), idem(1, 0, epoch=0)):
        with pytest.raises(InvalidProducerEpochError, match="fenced"):
            log.append(data)
    assert log.log_end_offset == 2
    log.close()


def test_a_bumped_epoch_must_start_at_sequence_zero(tmp_path):
    log, _ = open_log(tmp_path)
    append_durably(log, idem(5, 0, epoch=0))
    with pytest.raises(OutOfOrderSequenceError, match="sequence 0, not 5"):
        log.append(idem(1, 5, epoch=1))
    info = append_durably(log, idem(2, 0, epoch=1))
    assert info.base_offset == 5 and not info.duplicate
    entry = entry_of(log)
    assert entry.epoch == 1 and [(b.first_seq, b.last_seq) for b in entry.batches] == [(0, 1)]  # history restarted
    assert log.append(idem(2, 0, epoch=1)).duplicate
    log.close()


def test_sequences_wrap_from_the_maximum_to_zero(tmp_path):
    log, _ = open_log(tmp_path)
    append_durably(log, idem(2, MAX_SEQ - 3))  # an unknown producer may start anywhere
    crossing = idem(3, MAX_SEQ - 1)  # sequences 2147483646, 2147483647, 0
    info = append_durably(log, crossing)
    assert (info.base_offset, info.last_offset) == (2, 4)
    assert entry_of(log).batches[-1][:2] == (MAX_SEQ - 1, 0)
    assert log.append(crossing).duplicate
    with pytest.raises(OutOfOrderSequenceError, match="expected 1"):
        log.append(idem(1, 2))
    assert append_durably(log, idem(1, 1)).base_offset == 5
    log.close()
    log, _ = open_log(tmp_path)  # the wrapped batch survives the snapshot
    assert log.append(idem(1, 1)).duplicate
    assert append_durably(log, idem(1, 2)).base_offset == 6
    log.close()


def test_unknown_producers_start_at_any_sequence_and_producers_are_independent(tmp_path):
    log, _ = open_log(tmp_path)
    append_durably(log, idem(1, 77, pid=1))
    append_durably(log, idem(1, 0, pid=2))
    append_durably(log, idem(1, 123_456, pid=3, epoch=9))
    append_durably(log, idem(1, 78, pid=1))
    assert [(e.producer_id, e.epoch, e.last_seq, e.last_offset) for e in log.producer_state] == [
        (1, 0, 78, 3), (2, 0, 0, 1), (3, 9, 123_456, 2)]
    log.close()


def test_plain_batches_leave_producer_state_alone(tmp_path):
    log, _ = open_log(tmp_path)
    append_durably(log, batch([b"a"]) + batch([b"b"]))  # several non-idempotent batches per append are fine
    assert log.producer_state == []
    log.close()
    assert snapshots(tmp_path) == [2]  # an empty snapshot still saves the next open a replay


def test_idempotent_batches_come_one_per_append(tmp_path):
    log, _ = open_log(tmp_path)
    for data in (idem(1, 0) + idem(1, 1), batch([b"plain"]) + idem(1, 0)):
        with pytest.raises(InvalidRecordError, match="one batch per append"):
            log.append(data)
    with pytest.raises(InvalidRecordError, match="base sequence -1"):
        log.append(batch([b"x"], producer_id=PID, producer_epoch=0, base_sequence=-1))
    assert log.log_end_offset == 0 and log.producer_state == []
    log.close()


def test_a_duplicate_under_log_append_time_answers_the_original_append_time(tmp_path):
    clock = ManualClock(T0)
    log, _ = open_log(tmp_path, clock, message_timestamp_type="LogAppendTime")
    data = idem(2, 0)
    clock.advance(1234)
    original = append_durably(log, data)
    assert original.log_append_time == T0 + 1234
    clock.advance(5000)
    again = log.append(data)
    assert again.duplicate and again.log_append_time == T0 + 1234
    log.close()


# ---- restarts ----------------------------------------------------------------------------------


def test_a_clean_restart_keeps_each_producers_last_batch(tmp_path):
    log, _ = open_log(tmp_path)
    sent = [(data, append_durably(log, data)) for data in (idem(1, 0), idem(2, 1), idem(1, 3))]
    append_durably(log, idem(4, 0, pid=2))
    log.close()
    assert snapshots(tmp_path) == [8]
    log, _ = open_log(tmp_path)
    last, last_info = sent[-1]
    again = log.append(last)
    assert again.duplicate and (again.base_offset, again.last_offset) == (last_info.base_offset, last_info.last_offset)
    # only the last batch is in a snapshot: an older retry is out of order (Kafka's trade-off)
    with pytest.raises(OutOfOrderSequenceError):
        log.append(sent[1][0])
    assert log.append(idem(4, 0, pid=2)).duplicate
    assert append_durably(log, idem(1, 4)).base_offset == 8
    log.close()


def test_a_crash_rebuilds_the_state_from_the_log(tmp_path):
    log, _ = open_log(tmp_path, segment_bytes=1024)
    sent = []
    seq = 0
    while len(log.segments) < 3:
        data = idem(3, seq, tag="." * 40)
        sent.append((data, append_durably(log, data)))
        seq += 3
    for _ in range(2):  # a few batches after the last roll, for the replay
        data = idem(3, seq, tag="." * 40)
        sent.append((data, append_durably(log, data)))
        seq += 3
    roll_snapshots = snapshots(tmp_path)
    assert roll_snapshots == [s.base_offset for s in log.segments[1:]]  # one per roll
    log, report = crash(log, tmp_path)
    assert report.truncated_bytes > 0
    # the newest roll snapshot's last batch and the batches replayed after it are known again
    known, forgotten = remembered_after_reload(sent, roll_snapshots[-1])
    assert len(known) == 4 and len(forgotten) == 1
    for data, info in known:
        again = log.append(data)
        assert again.duplicate and again.base_offset == info.base_offset
    for data, info in forgotten:
        with pytest.raises(OutOfOrderSequenceError):
            log.append(data)
    assert snapshots(tmp_path)[-1] == log.log_end_offset  # recovery ends with a snapshot
    assert append_durably(log, idem(1, seq)).base_offset == sent[-1][1].last_offset + 1
    log.close()


def test_a_crash_with_no_snapshot_at_all_replays_the_whole_log(tmp_path):
    log, _ = open_log(tmp_path, segment_bytes=1024)
    seq = 0
    while len(log.segments) < 3:
        append_durably(log, idem(3, seq, pid=5, tag="." * 40))
        seq += 3
    append_durably(log, idem(1, 0, pid=6))
    for offset in snapshots(tmp_path):
        os.unlink(segment_path(tmp_path, offset, ".snapshot"))
    log, _ = crash(log, tmp_path, garbage=b"")
    assert [(e.producer_id, e.last_seq) for e in log.producer_state] == [(5, seq - 1), (6, 0)]
    assert log.append(idem(3, seq - 3, pid=5, tag="." * 40)).duplicate
    log.close()


def test_a_torn_batch_is_not_remembered(tmp_path):
    log, _ = open_log(tmp_path)
    append_durably(log, idem(1, 0))
    torn = idem(1, 1)
    log, _ = crash(log, tmp_path, garbage=torn[:-3])  # the batch never made it whole to the disk
    assert log.log_end_offset == 1 and entry_of(log).last_seq == 0
    info = log.append(torn)
    assert not info.duplicate and info.base_offset == 1
    log.close()


def test_a_snapshot_above_the_log_end_is_deleted(tmp_path):
    log, _ = open_log(tmp_path)
    append_durably(log, idem(2, 0))
    log.close()
    # as if recovery had cut the log below a snapshot: that snapshot describes batches that are gone
    lying = ProducerEntry(PID, 0, [BatchMetadata(2, 9, 9, 7, T0)], T0)
    with open(segment_path(tmp_path, 10, ".snapshot"), "wb") as fh:
        fh.write(encode_snapshot([lying]))
    log, _ = open_log(tmp_path)
    assert snapshots(tmp_path) == [2]
    assert entry_of(log).last_seq == 1
    assert append_durably(log, idem(1, 2)).base_offset == 2
    log.close()


def test_a_corrupt_snapshot_falls_back_to_an_older_one_and_the_log(tmp_path):
    log, _ = open_log(tmp_path, segment_bytes=1024)
    sent = []
    seq = 0
    while len(log.segments) < 3:
        data = idem(2, seq, tag="." * 40)
        sent.append((data, append_durably(log, data)))
        seq += 2
    log.close()
    newest = snapshots(tmp_path)[-1]
    assert newest == log.log_end_offset
    older = snapshots(tmp_path)[-2]
    flip(segment_path(tmp_path, newest, ".snapshot"), 30)
    log, _ = open_log(tmp_path)
    assert newest in snapshots(tmp_path)  # rewritten after the replay, whole this time
    decode_snapshot(file_bytes(segment_path(tmp_path, newest, ".snapshot")))
    known, forgotten = remembered_after_reload(sent, older)  # replayed from the older snapshot
    assert known and forgotten
    for data, info in known:
        assert log.append(data).duplicate
    for data, info in forgotten:
        with pytest.raises(OutOfOrderSequenceError):
            log.append(data)
    log.close()
    for offset in snapshots(tmp_path):  # every snapshot damaged: an empty state and the whole log
        flip(segment_path(tmp_path, offset, ".snapshot"), 8)
    log, _ = open_log(tmp_path)
    assert entry_of(log).last_seq == seq - 1
    assert log.append(sent[-1][0]).duplicate
    log.close()


# ---- retention, expiry, truncation -------------------------------------------------------------


def test_retention_deleting_every_batch_of_a_producer_keeps_it_known(tmp_path):
    clock = ManualClock(T0)
    log, _ = open_log(tmp_path, clock, segment_bytes=1024, retention_bytes=1)
    quiet = idem(2, 0, pid=1)
    quiet_info = append_durably(log, quiet)
    seq = 0
    while len(log.segments) < 4:
        append_durably(log, idem(2, seq, pid=2, tag="." * 40))
        seq += 2
    assert log.apply_retention()
    assert log.log_start_offset > quiet_info.last_offset  # producer 1's batches are gone
    for reopen in ("no", "clean", "crash"):
        if reopen == "clean":
            log.close()
            log, _ = open_log(tmp_path, clock, log_start_offset=log.log_start_offset)
        elif reopen == "crash":
            log, _ = crash(log, tmp_path)
        again = log.append(quiet)
        assert again.duplicate and again.base_offset == quiet_info.base_offset, reopen
        with pytest.raises(OutOfOrderSequenceError):
            log.append(idem(1, 5, pid=1))
    assert append_durably(log, idem(1, 2, pid=1)).base_offset == log.log_end_offset - 1
    log.close()


def test_delete_records_keeps_producers_and_bounds_the_snapshots(tmp_path):
    log, _ = open_log(tmp_path, segment_bytes=1024)
    seq = 0
    while len(log.segments) < 6:
        append_durably(log, idem(2, seq, tag="." * 40))
        seq += 2
    assert len(snapshots(tmp_path)) == 5
    log.delete_records(log.log_end_offset)
    assert snapshots(tmp_path) == [log.segments[-1].base_offset]  # the newest always stays
    assert entry_of(log).last_seq == seq - 1
    with pytest.raises(OutOfOrderSequenceError):
        log.append(idem(1, seq + 1))
    log.close()


def test_producers_expire_only_after_the_expiration_time_without_writes(tmp_path):
    clock = ManualClock(T0)
    log, _ = open_log(tmp_path, clock)
    append_durably(log, idem(1, 0, pid=1))
    append_durably(log, idem(1, 0, pid=2))
    clock.advance(PRODUCER_ID_EXPIRATION_MS - 1)
    append_durably(log, idem(1, 1, pid=2))  # producer 2 writes again; producer 1 stays quiet
    log.apply_retention()
    assert [e.producer_id for e in log.producer_state] == [1, 2]
    clock.advance(1)
    log.apply_retention()
    assert [e.producer_id for e in log.producer_state] == [2]
    assert append_durably(log, idem(1, 500, pid=1)).base_offset == 3  # unknown again: any sequence goes
    log.close()
    # the files keep no write time (a batch timestamp is the producer's clock, and may be old): a
    # restart counts as a write, so nothing expires early, however old the records' timestamps
    clock.advance(10 * PRODUCER_ID_EXPIRATION_MS)
    log, _ = open_log(tmp_path, clock)
    assert [e.producer_id for e in log.producer_state] == [1, 2]
    clock.advance(PRODUCER_ID_EXPIRATION_MS - 1)
    log.apply_retention()
    assert [e.producer_id for e in log.producer_state] == [1, 2]
    clock.advance(1)
    log.apply_retention()
    assert log.producer_state == []
    log.close()


def test_truncate_to_rebuilds_the_state_from_what_is_left(tmp_path):
    log, _ = open_log(tmp_path, segment_bytes=1024)
    sent = []
    seq = 0
    while len(log.segments) < 3:
        data = idem(2, seq, tag="." * 40)
        sent.append((data, append_durably(log, data)))
        seq += 2
    append_durably(log, idem(1, 0, pid=9))
    cut = sent[2][1].last_offset + 1  # keep three batches of producer 1000
    log.truncate_to(cut)
    assert [s for s in snapshots(tmp_path) if s > cut] == []
    assert [(e.producer_id, e.last_seq, e.last_offset) for e in log.producer_state] == [(PID, 5, cut - 1)]
    assert log.append(sent[2][0]).duplicate
    info = append_durably(log, sent[3][0])  # no longer a duplicate: it was cut away
    assert not info.duplicate and info.base_offset == cut
    log.close()
    log, _ = open_log(tmp_path)
    assert entry_of(log).last_seq == 7 and entry_of(log, 9) is None
    log.close()


def test_read_only_opens_rebuild_the_state_without_touching_files(tmp_path):
    log, _ = open_log(tmp_path, segment_bytes=1024)
    seq = 0
    while len(log.segments) < 3:
        append_durably(log, idem(2, seq, tag="." * 40))
        seq += 2
    log.close()
    log, _ = open_log(tmp_path)
    append_durably(log, idem(1, seq))
    expected = log.producer_state  # the snapshot's last batch and the one after it
    assert [(b.first_seq, b.last_seq) for b in expected[0].batches] == [(seq - 2, seq - 1), (seq, seq)]
    before = sorted(os.listdir(tmp_path))
    from logbroker.config import LogConfig
    from logbroker.storage.log import PartitionLog

    reader, _ = PartitionLog.open(str(tmp_path), "t", 0, LogConfig.from_overrides({}), clock=ManualClock(T0),
                                  writable=False)
    assert reader.producer_state == expected
    assert sorted(os.listdir(tmp_path)) == before
    reader.close()
    log.close()


# ---- validate, append, then commit -------------------------------------------------------------


def test_a_write_the_disk_refuses_changes_no_state(tmp_path):
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount_point)],
                            capture_output=True, text=True)
    assert result.returncode == 0, f"mounting a tmpfs needs root: {result.stderr}"
    try:
        directory = mount_point / "p"
        log, _ = open_log(directory, segment_bytes=10_000_000)
        seq = 0
        with pytest.raises(KafkaStorageError):
            for _ in range(10_000):
                append_durably(log, idem(1, seq, tag="x" * 4000))
                seq += 1
        assert entry_of(log).last_seq == seq - 1  # the refused batch was not committed
        end = log.log_end_offset
        os.unlink(log.active_segment.index.path)  # free a little room (the index is rebuilt anyway)
        log.active_segment.index.writable = False
        info = log.append(idem(1, seq, tag="x" * 10))
        assert not info.duplicate and info.base_offset == end
        abandon(log)
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


# ---- producer ids ------------------------------------------------------------------------------


def test_producer_ids_are_never_reused_across_restarts_and_crashes(tmp_path):
    data_dir = str(tmp_path / "data")
    manager = LogManager(data_dir)
    first = [manager.allocate_producer_id() for _ in range(3)]
    assert first == [0, 1, 2]
    assert "block_end: 1000" in file_bytes(os.path.join(data_dir, PRODUCER_IDS_FILE)).decode()
    manager.close()
    manager = LogManager(data_dir)
    assert manager.allocate_producer_id() == PRODUCER_ID_BLOCK_SIZE  # the rest of the old block is skipped
    ids = [manager.allocate_producer_id() for _ in range(PRODUCER_ID_BLOCK_SIZE)]
    assert ids == list(range(PRODUCER_ID_BLOCK_SIZE + 1, 2 * PRODUCER_ID_BLOCK_SIZE + 1))
    assert "block_end: 3000" in file_bytes(os.path.join(data_dir, PRODUCER_IDS_FILE)).decode()
    manager._dir_lock.release()  # a crash: no close
    manager = LogManager(data_dir)
    assert manager.allocate_producer_id() == 3 * PRODUCER_ID_BLOCK_SIZE
    manager.close()


def test_a_damaged_producer_id_file_is_refused(tmp_path):
    data_dir = str(tmp_path / "data")
    manager = LogManager(data_dir)
    with open(os.path.join(data_dir, PRODUCER_IDS_FILE), "w") as fh:
        fh.write("version: 0\nblock_end: twelve\n")
    with pytest.raises(KafkaStorageError, match="producer-ids is damaged"):
        manager.allocate_producer_id()
    manager.close()
    reader = LogManager(data_dir, read_only=True)
    with pytest.raises(ReadOnlyError):
        reader.allocate_producer_id()
    reader.close()
