"""LogSegment on its own: file naming, appends, reads, recovery of torn and damaged tails, read-only views."""

from __future__ import annotations

import os

import pytest

from logbroker.errors import CorruptRecordError
from logbroker.records import decode_all
from logbroker.storage.files import offset_file_name, parse_offset_file_name
from logbroker.storage.segment import LogSegment

from ._helpers import T0, batch, batch_layout, file_bytes, flip


def stamped(base_offset, values, ts=T0):
    data = bytearray(batch(values, ts=ts))
    data[0:8] = base_offset.to_bytes(8, "big")
    return bytes(data)


def write_batches(directory, base, count, *, start=None, per_batch=2, mode="ab"):
    """Write ``count`` batches of ``per_batch`` records straight into ``<base>.log`` (as a writer process
    would); batch i holds timestamps T0 + i.  Return the next offset."""
    offset = base if start is None else start
    with open(os.path.join(str(directory), offset_file_name(base, ".log")), mode) as fh:
        for i in range(count):
            fh.write(stamped(offset, [b"%d-%d" % (i, j) for j in range(per_batch)], ts=T0 + i))
            offset += per_batch
    return offset


def recovered(directory, base, **kwargs):
    segment = LogSegment(str(directory), base, **kwargs)
    result = segment.recover()
    return segment, result


def test_file_names_are_twenty_digit_base_offsets(tmp_path):
    write_batches(tmp_path, 1234, 3, per_batch=1)
    segment, _ = recovered(tmp_path, 1234, index_interval_bytes=0)
    segment.close()
    assert sorted(os.listdir(tmp_path)) == ["00000000000000001234.index", "00000000000000001234.log",
                                            "00000000000000001234.timeindex"]
    assert offset_file_name(2**63 - 1, ".log") == "09223372036854775807.log"
    assert parse_offset_file_name("00000000000000001234.timeindex") == (1234, ".timeindex")
    for name in ("1234.log", "00000000000000001234.log.deleted", "00000000000000001234.txt", "x0000000000000000123.log"):
        assert parse_offset_file_name(name) is None


def test_append_read_and_find_position(tmp_path):
    end = write_batches(tmp_path, 100, 20)
    segment, result = recovered(tmp_path, 100, index_interval_bytes=100)
    assert (segment.next_offset, end, result.batches, result.reason) == (140, 140, 20, None)
    layout = batch_layout(segment.log_path)
    assert segment.size == os.path.getsize(segment.log_path) == layout[-1][0] + layout[-1][1]
    for pos, _, base, last in layout:
        assert segment.find_position(base) == segment.find_position(last) == pos
    assert segment.find_position(99) == 0
    assert segment.find_position(140) == segment.size
    records = decode_all(segment.read(111, 1, max_offset=140))
    assert [r.offset for r in records] == [110, 111]  # the whole batch holding 111, even over max_bytes
    records = decode_all(segment.read(100, 10**6, max_offset=106))
    assert [r.offset for r in records] == list(range(100, 106))
    assert segment.read(140, 10**6, max_offset=10**9) == b""
    segment.close()


def test_find_offset_by_timestamp(tmp_path):
    write_batches(tmp_path, 0, 10)
    segment, _ = recovered(tmp_path, 0, index_interval_bytes=50)  # batch i: offsets 2i, 2i+1 at T0 + i
    assert segment.find_offset_by_timestamp(T0 + 3, 0) == (6, T0 + 3)
    assert segment.find_offset_by_timestamp(T0 + 3, 9) == (9, T0 + 4)
    assert segment.find_offset_by_timestamp(T0 + 10, 0) is None
    segment.close()


@pytest.mark.parametrize("tail", ["zeros", "short-garbage", "header-only", "length-past-end"])
def test_recover_truncates_invalid_tails(tmp_path, tail):
    write_batches(tmp_path, 0, 10)
    segment, _ = recovered(tmp_path, 0, index_interval_bytes=64)
    size = segment.size
    entries = segment.index.entries()
    assert entries
    segment.close()
    extra = {
        "zeros": b"\x00" * 4096,  # a preallocated file: batch length 0, below the minimum
        "short-garbage": b"\x01" * 17,  # 17 bytes or fewer: not even a header
        "header-only": stamped(20, [b"x"])[:61],
        "length-past-end": stamped(20, [b"x" * 100])[:-1],
    }[tail]
    with open(segment.log_path, "ab") as fh:
        fh.write(extra)
    segment = LogSegment(str(tmp_path), 0, index_interval_bytes=64)
    result = segment.recover()
    assert (result.valid_bytes, result.truncated_bytes, result.batches) == (size, len(extra), 10)
    assert result.reason
    assert os.path.getsize(segment.log_path) == size and segment.next_offset == 20
    assert segment.index.entries() == entries
    segment.close()


def test_recover_stops_at_offsets_that_do_not_follow(tmp_path):
    end = write_batches(tmp_path, 0, 3)
    with open(os.path.join(tmp_path, offset_file_name(0, ".log")), "ab") as fh:
        fh.write(stamped(end + 5, [b"gap"]))  # a hole: impossible in a log that is not compacted
    segment, result = recovered(tmp_path, 0)
    assert result.batches == 3 and "expected 6" in result.reason
    segment.close()


def test_recover_in_a_compacted_segment_accepts_gaps(tmp_path):
    end = write_batches(tmp_path, 0, 3)
    with open(os.path.join(tmp_path, offset_file_name(0, ".log")), "ab") as fh:
        fh.write(stamped(end + 5, [b"gap"]))
    segment, result = recovered(tmp_path, 0, strict=False)
    assert result.batches == 4 and result.reason is None and segment.next_offset == end + 6
    segment.close()


def test_read_only_segment_sees_the_valid_prefix_and_changes_nothing(tmp_path):
    write_batches(tmp_path, 0, 5)
    path = os.path.join(tmp_path, offset_file_name(0, ".log"))
    with open(path, "ab") as fh:
        fh.write(stamped(10, [b"torn"])[:40])
    before = sorted(os.listdir(tmp_path)), file_bytes(path)
    reader, result = recovered(tmp_path, 0, writable=False)
    assert result.truncated_bytes == 40 and reader.next_offset == 10
    assert (sorted(os.listdir(tmp_path)), file_bytes(path)) == before  # a reader changes nothing
    assert [r.offset for r in decode_all(reader.read(0, 10**6, max_offset=10**9))] == list(range(10))
    reader.close()


def test_read_only_segment_extends_to_batches_written_later(tmp_path):
    write_batches(tmp_path, 0, 2)
    reader, _ = recovered(tmp_path, 0, writable=False)
    assert reader.next_offset == 4
    end = write_batches(tmp_path, 0, 3, start=4)
    half = stamped(end, [b"half"])
    path = os.path.join(tmp_path, offset_file_name(0, ".log"))
    with open(path, "ab") as fh:
        fh.write(half[:30])  # another process is in the middle of a write
    reader.extend()
    assert reader.next_offset == 10
    assert [r.offset for r in decode_all(reader.read(0, 10**6, max_offset=10**9))] == list(range(10))
    with open(path, "ab") as fh:
        fh.write(half[30:])
    reader.extend()
    assert reader.next_offset == 11
    reader.close()


def test_segment_read_refuses_a_damaged_batch(tmp_path):
    write_batches(tmp_path, 0, 4)
    segment, _ = recovered(tmp_path, 0)
    layout = batch_layout(segment.log_path)
    flip(segment.log_path, layout[2][0] + 65)
    with pytest.raises(CorruptRecordError, match="CRC"):
        segment.read(4, 10**6, max_offset=10**9)
    # a read that starts before the damage ends before it
    assert [r.offset for r in decode_all(segment.read(0, 10**6, max_offset=10**9))] == [0, 1, 2, 3]
    segment.close()


def test_truncate_to_removes_whole_batches_and_rebuilds_indexes(tmp_path):
    write_batches(tmp_path, 0, 10)
    segment, _ = recovered(tmp_path, 0, index_interval_bytes=40)
    layout = batch_layout(segment.log_path)
    size = segment.size
    assert segment.truncate_to(7) == size - layout[3][0]  # offset 7 is in batch 3 (6, 7): the batch goes whole
    assert segment.size == layout[3][0] == os.path.getsize(segment.log_path)
    assert segment.next_offset == 6
    assert all(pos < segment.size for _, pos in segment.index.entries())
    assert segment.max_timestamp == T0 + 2
    assert segment.truncate_to(100) == 0
    segment.close()
