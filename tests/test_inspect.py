"""logbroker.inspect: dump_file, verify_data_dir and repair_data_dir over real, damaged files."""

from __future__ import annotations

import os
import struct

import pytest

from logbroker.broker import Broker
from logbroker.client import Producer
from logbroker.errors import DataDirLockedError
from logbroker.storage.files import write_checkpoint
from logbroker.inspect import Problem, dump_file, format_entry, partition_dirs, repair_data_dir, verify_data_dir
from logbroker.records import encode_batch

BATCHES = 5


def build(path: str, *, topic: str = "t", config: dict | None = None, compression: str | None = None) -> dict:
    """A closed data dir whose partition 0 of ``topic`` holds BATCHES batches of 3 records."""
    with Broker.open(path, housekeeping=False) as broker:
        broker.create_topic(topic, config={"index.interval.bytes": "0", **(config or {})})
        with Producer(broker, linger_ms=60_000, compression=compression) as producer:
            for b in range(BATCHES):
                for i in range(3):
                    n = 3 * b + i
                    producer.send(topic, f"value-{n}".encode(), key=f"k{n}".encode(),
                                  headers={"n": str(n).encode()}, timestamp=10_000 + 100 * n)
                producer.flush()
    base = os.path.join(path, f"{topic}-0", "00000000000000000000")
    batches = dump_file(base + ".log")
    return {"log": base + ".log", "index": base + ".index", "timeindex": base + ".timeindex",
            "positions": [b["position"] for b in batches], "size": os.path.getsize(base + ".log")}


@pytest.fixture
def path(tmp_path) -> str:
    return str(tmp_path / "data")


@pytest.fixture
def files(path) -> dict:
    return build(path)


def patch(path: str, position: int, data: bytes) -> None:
    with open(path, "r+b") as fh:
        fh.seek(position)
        fh.write(data)


def flip(path: str, position: int) -> None:
    with open(path, "rb") as fh:
        fh.seek(position)
        byte = fh.read(1)[0]
    patch(path, position, bytes([byte ^ 0x55]))


# ---- dump_file -------------------------------------------------------------------------------

def test_dump_log_batches(files):
    batches = dump_file(files["log"])
    assert [b["base_offset"] for b in batches] == [0, 3, 6, 9, 12]
    assert [b["last_offset"] for b in batches] == [2, 5, 8, 11, 14]
    first = batches[0]
    assert first["position"] == 0 and first["count"] == 3 and first["magic"] == 2
    assert first["compression"] == "none" and first["timestamp_type"] == "CreateTime"
    assert (first["base_timestamp"], first["max_timestamp"]) == (10_000, 10_200)
    assert (first["producer_id"], first["producer_epoch"], first["base_sequence"]) == (-1, -1, -1)
    assert first["is_transactional"] is False and first["is_control"] is False
    assert sum(b["size"] for b in batches) == files["size"]
    assert [b["position"] for b in batches] == [sum(x["size"] for x in batches[:i]) for i in range(BATCHES)]
    assert "records" not in first


def test_dump_log_records(files):
    batches = dump_file(files["log"], records=True)
    assert batches[1]["records"][0] == {"offset": 3, "timestamp": 10_300, "key": "k3", "value": "value-3",
                                        "headers": [["n", "3"]]}
    assert [r["offset"] for b in batches for r in b["records"]] == list(range(15))


def test_dump_log_non_utf8_records_do_not_crash(path):
    with Broker.open(path, housekeeping=False) as broker:
        broker.create_topic("t")
        broker.produce("t", 0, encode_batch([(b"\xff", b"\x80\x81", [("h", b"\xfe")], 1)]))
    (item,) = dump_file(os.path.join(path, "t-0", "00000000000000000000.log"), records=True)
    record = item["records"][0]
    assert record["key"] == "\\xff" and record["value"] == "\\x80\\x81" and record["headers"] == [["h", "\\xfe"]]


@pytest.mark.parametrize("codec", ["gzip", "zstd"])
def test_dump_compressed_log(path, codec):
    files = build(path, compression=codec)
    batches = dump_file(files["log"], records=True)
    assert {b["compression"] for b in batches} == {codec}
    assert [r["value"] for b in batches for r in b["records"]] == [f"value-{n}" for n in range(15)]


def test_dump_control_batch(path):
    from logbroker.records import encode_control_batch

    with Broker.open(path, housekeeping=False) as broker:
        broker.create_topic("t")
    log_file = os.path.join(path, "t-0", "00000000000000000000.log")
    with open(log_file, "wb") as fh:
        fh.write(encode_control_batch(1, producer_id=7, producer_epoch=0, timestamp=5))
    (item,) = dump_file(log_file, records=True)
    assert item["is_control"] and item["is_transactional"] and item["producer_id"] == 7
    assert "COMMIT" in item["records"][0]["control"]
    assert "control: " in format_entry(log_file, item)


def test_dump_indexes(files):
    index = dump_file(files["index"])
    assert index == [{"offset": 3 * i + 2, "position": files["positions"][i]} for i in range(1, BATCHES)]
    time_index = dump_file(files["timeindex"])
    assert time_index[-1] == {"timestamp": 10_000 + 100 * 14, "offset": 14}
    assert [e["timestamp"] for e in time_index] == sorted({e["timestamp"] for e in time_index})


def test_dump_index_of_a_later_segment_uses_its_base_offset(path):
    with Broker.open(path, housekeeping=False) as broker:
        broker.create_topic("t", config={"index.interval.bytes": "0", "segment.bytes": "1024"})
        for i in range(30):
            broker.produce("t", 0, encode_batch([(None, b"z" * 100, None, 1000 + i)]))
        second = broker.log("t", 0).segments[1]
        base = second.base_offset
    index_path = os.path.join(path, "t-0", f"{base:020d}.index")
    entries = dump_file(index_path)
    assert entries and all(e["offset"] > base for e in entries)
    time_entries = dump_file(os.path.join(path, "t-0", f"{base:020d}.timeindex"))
    assert all(e["offset"] >= base for e in time_entries)


def test_dump_stops_at_damage(files):
    flip(files["log"], files["positions"][3] + 30)
    items = dump_file(files["log"])
    assert len(items) == 4
    assert items[-1]["position"] == files["positions"][3] and items[-1]["torn"] is False
    assert "CRC-32C" in items[-1]["error"]
    assert format_entry(files["log"], items[-1]).startswith(f"ERROR at position {files['positions'][3]}: ")


def test_dump_flags_a_torn_tail(files):
    with open(files["log"], "ab") as fh:
        fh.write(encode_batch([(None, b"torn", None, 1)])[:-5])
    items = dump_file(files["log"])
    assert items[-1] == {"position": files["size"], "error": items[-1]["error"], "torn": True}


def test_dump_rejects_other_files(path, files):
    with pytest.raises(ValueError, match="not a .log, .index, .timeindex or .snapshot file"):
        dump_file(os.path.join(path, "t-0", "partition.metadata"))


def test_format_entry(files):
    batch_line = format_entry(files["log"], dump_file(files["log"], records=True)[0])
    assert batch_line.startswith("baseOffset: 0 lastOffset: 2 count: 3 position: 0 ")
    assert "| offset: 1 timestamp: 10100 key: k1 value: value-1 headers: n=1" in batch_line
    assert format_entry(files["index"], {"offset": 5, "position": 99}) == "offset: 5 position: 99"
    assert format_entry(files["timeindex"], {"timestamp": 7, "offset": 5}) == "timestamp: 7 offset: 5"


# ---- verify_data_dir -------------------------------------------------------------------------

def test_verify_clean(path, files):
    assert verify_data_dir(path) == []
    assert [(topic, p) for _, topic, p in partition_dirs(path)] == [("t", 0)]


def test_verify_not_a_directory(tmp_path):
    (problem,) = verify_data_dir(str(tmp_path / "missing"))
    assert problem.message == "not a directory" and problem.position is None


def test_problem_str():
    assert str(Problem("f.log", 12, "bad")) == "f.log: byte 12 bad"
    assert str(Problem("f.log", None, "bad")) == "f.log: bad"


def test_verify_crc_flip_names_file_and_byte(path, files):
    bad = files["positions"][2]
    flip(files["log"], bad + 61)  # first byte of the records section
    problem, *rest = verify_data_dir(path)
    assert (problem.file, problem.position) == (files["log"], bad)
    assert "CRC-32C" in problem.message
    # index entries for batches past the damage can no longer be matched: reported too, never the log again
    assert all(p.file in (files["index"], files["timeindex"]) for p in rest)


def test_verify_header_damage_outside_the_crc(path, files):
    bad = files["positions"][1]
    patch(files["log"], bad + 16, b"\x01")  # magic
    problem, *rest = verify_data_dir(path)
    assert all(p.file in (files["index"], files["timeindex"]) for p in rest)
    assert (problem.file, problem.position) == (files["log"], bad) and "magic 1" in problem.message


def test_verify_offset_gap(path, files):
    pos = files["positions"][2]
    patch(files["log"], pos, struct.pack(">q", 100))  # base offset sits outside the CRC
    problems = verify_data_dir(path)
    assert any(p.file == files["log"] and p.position == pos and "batch base offset 100, expected 6" in p.message
               for p in problems), problems


def test_verify_torn_tail(path, files):
    with open(files["log"], "ab") as fh:
        fh.write(b"\x00" * 5)
    (problem,) = verify_data_dir(path)
    assert (problem.file, problem.position) == (files["log"], files["size"])


def test_verify_index_problems(path, files):
    with open(files["index"], "rb") as fh:
        entries = fh.read()
    rel, _ = struct.unpack(">ii", entries[:8])
    patch(files["index"], 0, struct.pack(">ii", rel, files["positions"][1] + 1))
    problems = verify_data_dir(path)
    assert [(p.file, p.position) for p in problems] == [(files["index"], 0)]
    assert "does not point at a batch" in problems[0].message


def test_verify_index_entry_with_the_wrong_offset(path, files):
    """Entry 0 is (5, start of batch 3..5); (7, same position) still increases but names an offset
    that batch does not hold."""
    assert dump_file(files["index"])[:2] == [{"offset": 5, "position": files["positions"][1]},
                                             {"offset": 8, "position": files["positions"][2]}]
    patch(files["index"], 0, struct.pack(">ii", 7, files["positions"][1]))
    problems = verify_data_dir(path)
    assert [(p.file, p.position) for p in problems] == [(files["index"], 0)], problems
    assert "does not end a batch" in problems[0].message


def test_verify_index_entry_before_its_batch(path, files):
    patch(files["index"], 0, struct.pack(">ii", 1, files["positions"][1]))  # batch 3..5, entry says 1
    problems = verify_data_dir(path)
    assert [(p.file, p.position) for p in problems] == [(files["index"], 0)]
    assert "does not end a batch" in problems[0].message


def test_verify_index_partial_entry(path, files):
    size = os.path.getsize(files["index"])
    with open(files["index"], "ab") as fh:
        fh.write(b"\x01")
    (problem,) = verify_data_dir(path)
    assert (problem.file, problem.position) == (files["index"], size)
    assert problem.message == f"file size {size + 1} is not a multiple of 8"


def test_verify_time_index_problems(path, files):
    size = os.path.getsize(files["timeindex"])
    with open(files["timeindex"], "ab") as fh:
        fh.write(struct.pack(">qi", 1, 0))  # goes backwards
    problems = verify_data_dir(path)
    assert [(p.file, p.position) for p in problems] == [(files["timeindex"], size)]
    assert "does not increase" in problems[0].message
    with open(files["timeindex"], "r+b") as fh:
        fh.truncate(size)
        fh.seek(size)
        fh.write(struct.pack(">qi", 10**13, 0))  # beyond the log's max timestamp
    (problem,) = verify_data_dir(path)
    assert problem.file == files["timeindex"] and "beyond the log" in problem.message


def test_verify_unreadable_topic_metadata(path, files):
    meta = os.path.join(path, ".metadata", "topics", "t.json")
    with open(meta, "w") as fh:
        fh.write("{not json")
    problems = verify_data_dir(path)
    assert [p.file for p in problems] == [meta] and "unreadable topic metadata" in problems[0].message


def test_verify_several_partitions_and_topics(path, files):
    build(path, topic="u")
    assert verify_data_dir(path) == []
    flip(os.path.join(path, "u-0", "00000000000000000000.log"), 70)
    problems = verify_data_dir(path)
    assert problems[0].file == os.path.join(path, "u-0", "00000000000000000000.log")
    assert all(os.sep + "u-0" + os.sep in p.file for p in problems)


def test_verify_ignores_directories_being_deleted(path, files):
    os.makedirs(os.path.join(path, "gone-0.abc-delete"))
    with open(os.path.join(path, "gone-0.abc-delete", "00000000000000000000.log"), "wb") as fh:
        fh.write(b"garbage" * 10)
    assert verify_data_dir(path) == []


def test_verify_allows_gaps_only_in_compacted_segments(path):
    files = build(path, config={"cleanup.policy": "compact"})
    pos = files["positions"][2]
    patch(files["log"], pos, struct.pack(">q", 7))  # 6..8 becomes 7..9: a gap, still increasing
    patch(files["log"], files["positions"][3], struct.pack(">q", 10))
    patch(files["log"], files["positions"][4], struct.pack(">q", 13))
    # never compacted (no cleaner-offset checkpoint covers the segment): a gap is damage
    problems = [p for p in verify_data_dir(path) if p.file == files["log"]]
    assert [p.position for p in problems] == [pos]  # the later batches follow on from the shifted one
    # below the cleaner offset the cleaner may have removed records: gaps are expected there
    write_checkpoint(os.path.join(path, "cleaner-offset-checkpoint"), {("t", 0): 100})
    problems = [p for p in verify_data_dir(path) if p.file == files["log"]]
    assert problems == []


# ---- repair_data_dir -------------------------------------------------------------------------

def test_repair_torn_tail(path, files):
    with open(files["log"], "ab") as fh:
        fh.write(encode_batch([(None, b"torn", None, 1)])[:-5])
    assert verify_data_dir(path)
    (report,) = repair_data_dir(path)
    assert (report.topic, report.partition) == ("t", 0)
    assert report.dropped_anything and report.truncated_at == (files["log"], files["size"])
    assert report.log_end_offset == 15
    assert os.path.getsize(files["log"]) == files["size"]
    assert verify_data_dir(path) == []
    with Broker.open(path, housekeeping=False) as broker:
        assert broker.recovery_reports == []  # repair closed cleanly
        assert broker.list_offsets("t", 0, -1) == (15, -1)


def test_repair_corrupt_middle_batch_drops_the_rest(path, files):
    bad = files["positions"][1]
    flip(files["log"], bad + 70)
    (report,) = repair_data_dir(path)
    assert report.truncated_at == (files["log"], bad)
    assert report.truncated_bytes == files["size"] - bad
    assert report.log_end_offset == 3 and "CRC-32C" in report.reason
    assert verify_data_dir(path) == []
    with Broker.open(path, housekeeping=False) as broker:
        assert broker.list_offsets("t", 0, -1) == (3, -1)


def test_repair_rebuilds_indexes(path, files):
    expected_index = dump_file(files["index"])
    with open(files["index"], "wb") as fh:
        fh.write(b"\x00" * 11)
    os.unlink(files["timeindex"])
    (report,) = repair_data_dir(path)
    assert not report.dropped_anything
    assert dump_file(files["index"]) == expected_index
    assert os.path.exists(files["timeindex"])
    assert verify_data_dir(path) == []


def test_repair_clean_directory_changes_nothing(path, files):
    with open(files["log"], "rb") as fh:
        before = fh.read()
    reports = repair_data_dir(path)
    assert [r.dropped_anything for r in reports] == [False]
    with open(files["log"], "rb") as fh:
        assert fh.read() == before


def test_repair_needs_the_lock(path, files):
    with Broker.open(path, housekeeping=False):
        with pytest.raises(DataDirLockedError):
            repair_data_dir(path)
