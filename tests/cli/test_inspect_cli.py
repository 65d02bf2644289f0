"""``logbroker inspect dump|verify|repair`` over real segment files, damaged on purpose."""

from __future__ import annotations

import json
import os
import struct

import pytest

from logbroker.broker import Broker
from logbroker.client import Producer
from logbroker.inspect import dump_file

BATCHES = 4


@pytest.fixture
def segment(data_dir) -> dict:
    """A closed data dir with topic ``t``: 4 batches of 2 records each, every batch but the first indexed."""
    with Broker.open(data_dir, housekeeping=False) as broker:
        broker.create_topic("t", config={"index.interval.bytes": "0"})
        with Producer(broker, linger_ms=0) as producer:
            for b in range(BATCHES):
                for i in range(2):
                    n = 2 * b + i
                    producer.send("t", f"v{n}".encode(), key=f"k{n}".encode(), headers=[("h", f"{n}".encode())],
                                  timestamp=1_000 * (n + 1))
                producer.flush()
    directory = os.path.join(data_dir, "t-0")
    base = os.path.join(directory, "00000000000000000000")
    batches = dump_file(base + ".log")
    assert len(batches) == BATCHES
    return {"dir": directory, "log": base + ".log", "index": base + ".index", "timeindex": base + ".timeindex",
            "positions": [b["position"] for b in batches], "size": os.path.getsize(base + ".log")}


def flip_byte(path: str, position: int) -> None:
    with open(path, "r+b") as fh:
        fh.seek(position)
        byte = fh.read(1)
        fh.seek(position)
        fh.write(bytes([byte[0] ^ 0xFF]))


# ---- dump ------------------------------------------------------------------------------------

def test_dump_log_text(run, segment):
    result = run.ok("inspect", "dump", segment["log"])
    lines = result.stdout.splitlines()
    assert lines[0] == f"Dumping {segment['log']}"
    assert len(lines) == 1 + BATCHES
    for i, (line, position) in enumerate(zip(lines[1:], segment["positions"])):
        assert line.startswith(f"baseOffset: {2 * i} lastOffset: {2 * i + 1} count: 2 position: {position} ")
        assert "compression: none" in line and "isControl: false" in line
        assert f"CreateTime: {1000 * (2 * i + 2)}" in line
    assert "| offset:" not in result.stdout


def test_dump_log_with_records(run, segment):
    lines = run.ok("inspect", "dump", segment["log"], "--records").stdout.splitlines()
    assert len(lines) == 1 + BATCHES * 3
    records = [line for line in lines if line.startswith("| offset:")]
    assert records[0] == "| offset: 0 timestamp: 1000 key: k0 value: v0 headers: h=0"
    assert records[7] == "| offset: 7 timestamp: 8000 key: k7 value: v7 headers: h=7"


def test_dump_log_json(run, segment):
    lines = run.ok("inspect", "dump", segment["log"], "--json").stdout.splitlines()
    items = [json.loads(line) for line in lines]
    assert len(items) == BATCHES
    assert [i["position"] for i in items] == segment["positions"]
    assert [i["base_offset"] for i in items] == [0, 2, 4, 6]
    for item in items:
        assert item["file"] == segment["log"]
        assert item["count"] == 2 and item["magic"] == 2 and item["compression"] == "none"
        assert "records" not in item
    with_records = [json.loads(line) for line in
                    run.ok("inspect", "dump", segment["log"], "--json", "--records").stdout.splitlines()]
    assert with_records[1]["records"] == [
        {"offset": 2, "timestamp": 3000, "key": "k2", "value": "v2", "headers": [["h", "2"]]},
        {"offset": 3, "timestamp": 4000, "key": "k3", "value": "v3", "headers": [["h", "3"]]},
    ]


def test_dump_index(run, segment):
    lines = run.ok("inspect", "dump", segment["index"]).stdout.splitlines()
    assert lines[0] == f"Dumping {segment['index']}"
    # index.interval.bytes=0: every batch after the first gets an entry (its last offset -> its start)
    assert lines[1:] == [f"offset: {2 * i + 1} position: {segment['positions'][i]}" for i in range(1, BATCHES)]
    items = [json.loads(line) for line in run.ok("inspect", "dump", segment["index"], "--json").stdout.splitlines()]
    assert items == [{"file": segment["index"], "offset": 2 * i + 1, "position": segment["positions"][i]}
                     for i in range(1, BATCHES)]


def test_dump_timeindex(run, segment):
    lines = run.ok("inspect", "dump", segment["timeindex"]).stdout.splitlines()
    assert lines[0] == f"Dumping {segment['timeindex']}"
    entries = lines[1:]
    assert entries and entries[-1] == f"timestamp: {1000 * 2 * BATCHES} offset: {2 * BATCHES - 1}"
    items = [json.loads(line) for line in run.ok("inspect", "dump", segment["timeindex"], "--json").stdout.splitlines()]
    assert [(i["timestamp"], i["offset"]) for i in items] == [
        tuple(int(x) for x in line.replace("timestamp: ", "").split(" offset: ")) for line in entries]
    assert all(i["file"] == segment["timeindex"] for i in items)
    stamps = [i["timestamp"] for i in items]
    assert stamps == sorted(set(stamps))


def test_dump_several_files(run, segment):
    result = run.ok("inspect", "dump", segment["log"], segment["index"])
    assert f"Dumping {segment['log']}" in result.stdout and f"Dumping {segment['index']}" in result.stdout


def test_dump_rejects_other_files(run, segment):
    result = run("inspect", "dump", os.path.join(segment["dir"], "partition.metadata"))
    assert result.exit_code == 2 and "not a .log, .index, .timeindex or .snapshot file" in result.output
    assert run("inspect", "dump", os.path.join(segment["dir"], "missing.log")).exit_code == 2
    assert run("inspect", "dump").exit_code == 2
    assert run("inspect", "dump", segment["dir"]).exit_code == 2


def test_dump_stops_at_a_damaged_batch_and_exits_1(run, segment):
    bad = segment["positions"][2]
    flip_byte(segment["log"], bad + 40)
    result = run("inspect", "dump", segment["log"])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert len(lines) == 1 + 3
    assert lines[-1].startswith(f"ERROR at position {bad}: ") and "CRC" in lines[-1]
    items = [json.loads(line) for line in run("inspect", "dump", segment["log"], "--json").stdout.splitlines()]
    assert items[-1]["position"] == bad and items[-1]["torn"] is False and "error" in items[-1]


# ---- verify ----------------------------------------------------------------------------------

def test_verify_clean_directory(run, data_dir, segment):
    with Broker.open(data_dir, housekeeping=False) as broker:
        broker.create_topic("other", partitions=2)
    result = run.ok("inspect", "verify", data_dir)
    assert result.stdout == "OK: 3 partition(s) verified, no problems.\n"
    assert run.ok("inspect", "verify", data_dir, "--json").stdout == ""


def test_verify_empty_directory(run, tmp_path):
    assert run.ok("inspect", "verify", str(tmp_path)).stdout == "OK: 0 partition(s) verified, no problems.\n"


def test_verify_missing_directory_is_a_usage_error(run, tmp_path):
    assert run("inspect", "verify", str(tmp_path / "nope")).exit_code == 2


def test_verify_reports_a_flipped_byte_with_file_and_position(run, data_dir, segment):
    bad = segment["positions"][1]
    flip_byte(segment["log"], bad + 30)
    result = run("inspect", "verify", data_dir)
    assert result.exit_code == 1
    assert result.stdout.startswith(f"{segment['log']}: byte {bad} ")
    assert "CRC-32C" in result.stdout
    assert result.stderr.endswith("problem(s) found.\n")
    problems = [json.loads(line) for line in run("inspect", "verify", data_dir, "--json").stdout.splitlines()]
    assert problems[0] == {"file": segment["log"], "position": bad, "message": problems[0]["message"]}
    assert "CRC-32C" in problems[0]["message"]


def test_verify_reports_a_torn_tail(run, data_dir, segment):
    with open(segment["log"], "rb") as fh:
        first_batch = fh.read(segment["positions"][1])
    with open(segment["log"], "ab") as fh:
        fh.write(first_batch[:40])
    result = run("inspect", "verify", data_dir)
    assert result.exit_code == 1
    assert f"{segment['log']}: byte {segment['size']} " in result.stdout


def test_verify_reports_an_index_entry_off_a_batch(run, data_dir, segment):
    with open(segment["index"], "r+b") as fh:
        rel, _ = struct.unpack(">ii", fh.read(8))
        fh.seek(0)
        fh.write(struct.pack(">ii", rel, segment["positions"][1] + 3))
    result = run("inspect", "verify", data_dir)
    assert result.exit_code == 1
    assert f"{segment['index']}: byte 0 " in result.stdout
    assert "does not point at a batch" in result.stdout


def test_verify_reports_an_index_with_a_partial_entry(run, data_dir, segment):
    size = os.path.getsize(segment["index"])
    with open(segment["index"], "ab") as fh:
        fh.write(b"\x00\x01\x02")
    result = run("inspect", "verify", data_dir, "--json")
    assert result.exit_code == 1
    problems = [json.loads(line) for line in result.stdout.splitlines()]
    assert {"file": segment["index"], "position": size,
            "message": f"file size {size + 3} is not a multiple of 8"} in problems


def test_verify_reports_an_index_that_does_not_increase(run, data_dir, segment):
    with open(segment["index"], "rb") as fh:
        entries = fh.read()
    with open(segment["index"], "wb") as fh:
        fh.write(entries[8:16] + entries[0:8] + entries[16:])
    result = run("inspect", "verify", data_dir)
    assert result.exit_code == 1
    assert f"{segment['index']}: byte 8 " in result.stdout and "does not increase" in result.stdout


def test_verify_reports_a_time_index_beyond_the_log(run, data_dir, segment):
    with open(segment["timeindex"], "ab") as fh:
        fh.write(struct.pack(">qi", 10**15, 0))
    result = run("inspect", "verify", data_dir)
    assert result.exit_code == 1
    assert segment["timeindex"] in result.stdout and "beyond the log" in result.stdout


# ---- repair ----------------------------------------------------------------------------------

def test_repair_truncates_a_torn_tail_then_verify_is_clean(run, data_dir, segment):
    with open(segment["log"], "ab") as fh:
        fh.write(b"\x00" * 7 + b"\x01\x00\x00\x00\x50" + b"\x00" * 20)  # a batch header cut short
    assert run("inspect", "verify", data_dir).exit_code == 1
    result = run.ok("inspect", "repair", data_dir)
    assert f"t-0: truncated 32 bytes at {segment['log']} byte {segment['size']}" in result.stdout
    assert result.stdout.endswith("Repaired 1 partition(s); 1 had data dropped.\n")
    assert os.path.getsize(segment["log"]) == segment["size"]
    assert run.ok("inspect", "verify", data_dir).stdout == "OK: 1 partition(s) verified, no problems.\n"
    assert run.consume_values("t") == [f"v{n}" for n in range(2 * BATCHES)]


def test_repair_drops_everything_after_a_corrupt_batch(run, data_dir, segment):
    bad = segment["positions"][2]
    flip_byte(segment["log"], bad + 50)
    result = run.ok("inspect", "repair", data_dir)
    assert f"truncated {segment['size'] - bad} bytes at {segment['log']} byte {bad}" in result.stdout
    assert os.path.getsize(segment["log"]) == bad
    assert run.ok("inspect", "verify", data_dir).exit_code == 0
    assert run.consume_values("t") == ["v0", "v1", "v2", "v3"]
    run.ok("produce", "t", input="next\n")
    assert run.consume_json("t", "-o", "-1")[0]["offset"] == 4


def test_repair_rebuilds_a_corrupt_index(run, data_dir, segment):
    with open(segment["index"], "wb") as fh:
        fh.write(b"\xff" * 13)
    assert run("inspect", "verify", data_dir).exit_code == 1
    result = run.ok("inspect", "repair", data_dir)
    assert "Repaired 1 partition(s); 0 had data dropped." in result.stdout
    assert run.ok("inspect", "verify", data_dir).exit_code == 0
    assert len(dump_file(segment["index"])) == BATCHES - 1


def test_repair_of_a_clean_directory_drops_nothing(run, data_dir, segment):
    result = run.ok("inspect", "repair", data_dir)
    assert "t-0: recovered 1 segment(s), nothing dropped, log end offset 8" in result.stdout
    assert result.stdout.endswith("Repaired 1 partition(s); 0 had data dropped.\n")
    assert os.path.getsize(segment["log"]) == segment["size"]
