"""The embedded Broker API over real data directories, including unclean shutdowns in subprocesses."""

from __future__ import annotations

import base64
import json
import os
import pathlib
import select
import signal
import subprocess
import sys
import time

import pytest

from logbroker.broker import Broker
from logbroker.clock import ManualClock
from logbroker.errors import (BrokerClosedError, CorruptRecordError, DataDirLockedError, InvalidConfigError,
                              InvalidPartitionsError, InvalidRecordError, InvalidRequestError, InvalidTopicError,
                              LogbrokerError, OffsetOutOfRangeError, ReadOnlyError, RecordTooLargeError,
                              TopicAlreadyExistsError, UnknownTopicOrPartitionError)
from logbroker.records import decode_all, encode_batch

from helpers import tree

REPO = pathlib.Path(__file__).resolve().parent.parent


def batch(*values: bytes, ts: int = 1_000, key: bytes | None = None) -> bytes:
    return encode_batch([(key, v, None, ts + i) for i, v in enumerate(values)])


def fetched_values(broker, topic: str, partition: int = 0, offset: int = 0) -> list[bytes]:
    info = broker.fetch(topic, partition, offset)
    return [r.value for r in decode_all(info.records) if r.offset >= offset]


@pytest.fixture
def path(tmp_path) -> str:
    return str(tmp_path / "data")


@pytest.fixture
def broker(path):
    with Broker.open(path, housekeeping=False) as b:
        yield b


# ---- opening and closing ---------------------------------------------------------------------

def test_open_creates_the_directory_and_close_marks_it_clean(path):
    broker = Broker.open(path, housekeeping=False)
    assert os.path.isdir(path) and not broker.read_only
    assert not os.path.exists(os.path.join(path, ".kafka_cleanshutdown"))
    broker.close()
    assert os.path.exists(os.path.join(path, ".kafka_cleanshutdown"))
    broker.close()  # idempotent
    with pytest.raises(BrokerClosedError):
        broker.list_topics()
    with pytest.raises(BrokerClosedError):
        broker.create_topic("t")


def test_context_manager_closes(path):
    with Broker.open(path) as broker:
        broker.create_topic("t")
    with pytest.raises(BrokerClosedError):
        broker.topic("t")


def test_second_writer_is_refused_and_named(path):
    with Broker.open(path, housekeeping=False):
        with pytest.raises(DataDirLockedError) as info:
            Broker.open(path, housekeeping=False)
        assert info.value.owner_pid == os.getpid()
        assert f"process {os.getpid()}" in str(info.value)
    Broker.open(path, housekeeping=False).close()  # released at close


# ---- topics ----------------------------------------------------------------------------------

def test_create_list_describe(broker, path):
    meta = broker.create_topic("orders", partitions=3, config={"retention.ms": 1000})
    assert (meta.name, meta.partitions, meta.config) == ("orders", 3, {"retention.ms": "1000"})
    # Kafka writes topic ids as URL-safe base64 of 16 bytes, without padding
    assert len(base64.urlsafe_b64decode(meta.topic_id + "==")) == 16 and len(meta.topic_id) == 22
    broker.create_topic("alpha")
    assert broker.list_topics() == ["alpha", "orders"]
    assert broker.partition_count("orders") == 3
    info = broker.describe_topic("orders")
    assert set(info) == {"name", "topic_id", "partitions", "config", "overrides"}
    assert info["topic_id"] == meta.topic_id and info["overrides"] == {"retention.ms": "1000"}
    assert info["config"]["retention.ms"] == "1000" and info["config"]["segment.bytes"] == "1073741824"
    assert [p["partition"] for p in info["partitions"]] == [0, 1, 2]
    assert info["partitions"][0] == {"partition": 0, "log_start_offset": 0, "log_end_offset": 0, "high_watermark": 0,
                                     "segments": 1, "size_bytes": 0}
    with open(os.path.join(path, "orders-2", "partition.metadata")) as fh:
        assert fh.read() == f"version: 0\ntopic_id: {meta.topic_id}\n"
    with open(os.path.join(path, ".metadata", "topics", "orders.json")) as fh:
        assert json.load(fh) == {"name": "orders", "topic_id": meta.topic_id, "partitions": 3,
                                 "config": {"retention.ms": "1000"}}


def test_create_existing_topic(broker):
    broker.create_topic("t")
    with pytest.raises(TopicAlreadyExistsError):
        broker.create_topic("t", partitions=2)
    assert broker.partition_count("t") == 1


@pytest.mark.parametrize("partitions", [0, -1, 10_001, "2", 1.5, None])
def test_create_invalid_partition_count(broker, partitions):
    with pytest.raises(InvalidPartitionsError):
        broker.create_topic("t", partitions=partitions)
    assert broker.list_topics() == []


@pytest.mark.parametrize("name", ["../x", "a/b", "/abs", "..", ".", "", "x" * 250, "sp ace", "ü", "a\\b", None, 5,
                                  "t\n"])
def test_invalid_topic_names_never_touch_the_file_system(broker, path, tmp_path, name):
    before = tree(tmp_path)
    with pytest.raises(InvalidTopicError):
        broker.create_topic(name)
    for call in (broker.topic, broker.delete_topic, broker.describe_topic):
        with pytest.raises(InvalidTopicError):
            call(name)
    assert tree(tmp_path) == before
    assert broker.list_topics() == []


@pytest.mark.parametrize("length", [200, 240, 249])
def test_long_valid_names_work_end_to_end(broker, path, length):
    """Kafka allows 249 characters; every file name derived from the topic must stay within NAME_MAX (255)."""
    name = "n" * length
    broker.create_topic(name, partitions=2)
    assert broker.list_topics() == [name]
    broker.produce(name, 1, batch(b"a"))
    assert fetched_values(broker, name, 1) == [b"a"]
    broker.delete_topic(name)
    assert broker.list_topics() == []
    assert os.listdir(os.path.join(path, ".metadata", "topics")) == []
    assert not any(n.startswith("nnn") for n in os.listdir(path))


@pytest.mark.parametrize("config, message", [
    ({"nope": "1"}, "unknown topic config 'nope'"),
    ({"retention.ms": "soon"}, "retention.ms"),
    ({"retention.ms": "-2"}, "retention.ms"),
    ({"segment.bytes": "100"}, "segment.bytes"),
    ({"cleanup.policy": "delete,delete"}, "cleanup.policy"),
    ({"min.cleanable.dirty.ratio": "1.5"}, "min.cleanable.dirty.ratio"),
    ({"compression.type": "brotli"}, "compression.type"),
])
def test_create_invalid_configs(broker, path, config, message):
    with pytest.raises(InvalidConfigError, match=message):
        broker.create_topic("t", config=config)
    assert broker.list_topics() == []
    assert not os.path.exists(os.path.join(path, "t-0"))


def test_config_values_are_normalised_to_strings(broker):
    meta = broker.create_topic("t", config={"retention.ms": 5, "cleanup.policy": "compact,delete"})
    assert meta.config == {"retention.ms": "5", "cleanup.policy": "compact,delete"}
    assert broker.topic("t").log_config.compact and broker.topic("t").log_config.delete


def test_alter_topic_config_persists(path):
    with Broker.open(path, housekeeping=False) as broker:
        broker.create_topic("t", config={"retention.ms": "1000", "segment.ms": "5000"})
        assert broker.alter_topic_config("t", set={"retention.ms": "2000", "max.message.bytes": 100},
                                         delete=["segment.ms"]) == {"retention.ms": "2000", "max.message.bytes": "100"}
        with pytest.raises(RecordTooLargeError):  # the new limit applies at once
            broker.produce("t", 0, batch(b"x" * 200))
        with pytest.raises(InvalidConfigError):
            broker.alter_topic_config("t", set={"retention.ms": "x"})
        with pytest.raises(InvalidConfigError):
            broker.alter_topic_config("t", delete=["bogus"])
        with pytest.raises(UnknownTopicOrPartitionError):
            broker.alter_topic_config("missing", set={"retention.ms": "1"})
        assert broker.topic("t").config == {"retention.ms": "2000", "max.message.bytes": "100"}
    with Broker.open(path, housekeeping=False) as broker:
        assert broker.describe_topic("t")["overrides"] == {"retention.ms": "2000", "max.message.bytes": "100"}
        assert broker.alter_topic_config("t", delete=["retention.ms", "max.message.bytes"]) == {}
    with Broker.open(path, read_only=True) as broker:
        assert broker.describe_topic("t")["overrides"] == {}


def test_delete_topic(broker, path):
    first = broker.create_topic("t", partitions=2)
    broker.produce("t", 0, batch(b"a"))
    broker.delete_topic("t")
    assert broker.list_topics() == []
    assert not any(n.startswith("t-") for n in os.listdir(path))
    with pytest.raises(UnknownTopicOrPartitionError):
        broker.fetch("t", 0, 0)
    with pytest.raises(UnknownTopicOrPartitionError):
        broker.delete_topic("t")
    second = broker.create_topic("t")
    assert second.topic_id != first.topic_id
    assert broker.list_offsets("t", 0, -1) == (0, -1)


def test_create_partitions(path):
    with Broker.open(path, housekeeping=False) as broker:
        meta = broker.create_topic("t", config={"retention.ms": "1000"})
        broker.produce("t", 0, batch(b"a"))
        broker.create_partitions("t", 3)
        assert broker.partition_count("t") == 3
        broker.produce("t", 2, batch(b"c"))
        assert fetched_values(broker, "t", 2) == [b"c"]
        for total in (3, 2, 10_001, "4"):
            with pytest.raises(InvalidPartitionsError):
                broker.create_partitions("t", total)
        with pytest.raises(UnknownTopicOrPartitionError):
            broker.create_partitions("missing", 2)
    with Broker.open(path, housekeeping=False) as broker:
        assert broker.partition_count("t") == 3
        assert broker.topic("t").topic_id == meta.topic_id
        assert broker.topic("t").config == {"retention.ms": "1000"}
        assert fetched_values(broker, "t", 0) == [b"a"] and fetched_values(broker, "t", 2) == [b"c"]
        with open(os.path.join(path, "t-2", "partition.metadata")) as fh:
            assert meta.topic_id in fh.read()


def test_topic_ids_are_stable_across_reopen(path):
    with Broker.open(path, housekeeping=False) as broker:
        ids = {name: broker.create_topic(name, partitions=2).topic_id for name in ("a", "b", "c")}
    assert len(set(ids.values())) == 3
    for _ in range(2):
        with Broker.open(path, housekeeping=False) as broker:
            assert {name: broker.topic(name).topic_id for name in broker.list_topics()} == ids
    with Broker.open(path, read_only=True) as broker:
        assert {name: broker.describe_topic(name)["topic_id"] for name in broker.list_topics()} == ids


# ---- produce / fetch / list_offsets / delete_records ---------------------------------------------

def test_produce_and_fetch(broker):
    broker.create_topic("t")
    first = broker.produce("t", 0, batch(b"a", b"b", b"c"))
    assert (first.base_offset, first.last_offset, first.records, first.log_append_time) == (0, 2, 3, -1)
    second = broker.produce("t", 0, batch(b"d", b"e"))
    assert (second.base_offset, second.last_offset) == (3, 4)
    info = broker.fetch("t", 0, 0)
    assert (info.high_watermark, info.log_start_offset, info.log_end_offset) == (5, 0, 5)
    records = decode_all(info.records, topic="t", partition=0)
    assert [(r.offset, r.value) for r in records] == [(0, b"a"), (1, b"b"), (2, b"c"), (3, b"d"), (4, b"e")]
    assert all(r.topic == "t" and r.partition == 0 for r in records)
    # fetching from the middle of a batch returns that whole batch
    assert [r.offset for r in decode_all(broker.fetch("t", 0, 1).records)] == [0, 1, 2, 3, 4]
    assert fetched_values(broker, "t", 0, 4) == [b"e"]
    assert broker.fetch("t", 0, 5).records == b""  # at the high watermark: nothing yet
    assert len(decode_all(broker.fetch("t", 0, 0, max_bytes=1).records)) == 3  # at least one batch


def test_fetch_out_of_range_and_bad_max_bytes(broker):
    broker.create_topic("t")
    broker.produce("t", 0, batch(b"a"))
    with pytest.raises(OffsetOutOfRangeError):
        broker.fetch("t", 0, 2)
    with pytest.raises(OffsetOutOfRangeError):
        broker.fetch("t", 0, -1)
    with pytest.raises(InvalidRequestError):
        broker.fetch("t", 0, 0, max_bytes=-1)


def test_produce_rejects_bad_batches(broker):
    broker.create_topic("t", config={"max.message.bytes": "1024"})
    good = bytearray(batch(b"a", b"b"))
    corrupt = bytes(good[:-1]) + bytes([good[-1] ^ 1])
    with pytest.raises(CorruptRecordError):
        broker.produce("t", 0, corrupt)
    with pytest.raises(CorruptRecordError):
        broker.produce("t", 0, bytes(good[:-3]))  # truncated
    with pytest.raises(RecordTooLargeError):
        broker.produce("t", 0, batch(b"x" * 2000))
    with pytest.raises(LogbrokerError):
        broker.produce("t", 0, b"")
    with pytest.raises(InvalidRecordError):
        broker.produce("t", 0, encode_batch([(None, b"c", None, 1)], control=True, transactional=True))
    assert broker.list_offsets("t", 0, -1) == (0, -1)
    assert broker.log("t", 0).log_end_offset == 0


def test_produce_acks_zero_returns_offsets(broker):
    broker.create_topic("t")
    info = broker.produce("t", 0, batch(b"a"), acks=0)
    assert info.base_offset == 0


def test_log_append_time(tmp_path):
    clock = ManualClock(5_000_000)
    with Broker.open(str(tmp_path / "d"), clock=clock, housekeeping=False) as broker:
        broker.create_topic("t", config={"message.timestamp.type": "LogAppendTime"})
        info = broker.produce("t", 0, batch(b"a", b"b", ts=1))
        assert info.log_append_time == 5_000_000
        records = decode_all(broker.fetch("t", 0, 0).records)
        assert [(r.timestamp, r.timestamp_type) for r in records] == [(5_000_000, 1), (5_000_000, 1)]


def test_list_offsets(broker):
    broker.create_topic("t")
    assert broker.list_offsets("t", 0, -2) == (0, -1)
    assert broker.list_offsets("t", 0, -1) == (0, -1)
    assert broker.list_offsets("t", 0, 0) is None
    broker.produce("t", 0, batch(b"a", b"b", ts=1_000))  # timestamps 1000, 1001
    broker.produce("t", 0, batch(b"c", ts=5_000))
    assert broker.list_offsets("t", 0, -2) == (0, -1)
    assert broker.list_offsets("t", 0, -1) == (3, -1)
    assert broker.list_offsets("t", 0, 0) == (0, 1_000)
    assert broker.list_offsets("t", 0, 1_001) == (1, 1_001)
    assert broker.list_offsets("t", 0, 1_002) == (2, 5_000)
    assert broker.list_offsets("t", 0, 5_001) is None


def test_delete_records(path):
    with Broker.open(path, housekeeping=False) as broker:
        broker.create_topic("t")
        for i in range(5):
            broker.produce("t", 0, batch(str(i).encode()))
        assert broker.delete_records("t", 0, 3) == 3
        assert broker.delete_records("t", 0, 1) == 3  # never moves back
        assert broker.list_offsets("t", 0, -2) == (3, -1)
        with pytest.raises(OffsetOutOfRangeError):
            broker.fetch("t", 0, 2)
        assert fetched_values(broker, "t", 0, 3) == [b"3", b"4"]
        with pytest.raises(OffsetOutOfRangeError):
            broker.delete_records("t", 0, 6)
        assert broker.describe_topic("t")["partitions"][0]["log_start_offset"] == 3
    with Broker.open(path, housekeeping=False) as broker:
        assert broker.list_offsets("t", 0, -2) == (3, -1)
        assert broker.delete_records("t", 0, -1) == 5  # -1: up to the high watermark
        assert broker.fetch("t", 0, 5).records == b""


@pytest.mark.parametrize("call", [
    lambda b: b.fetch("t", 1, 0),
    lambda b: b.produce("t", 1, batch(b"x")),
    lambda b: b.append("t", 1, batch(b"x")),
    lambda b: b.list_offsets("t", 1, -1),
    lambda b: b.delete_records("t", 1, 0),
    lambda b: b.log("t", 1),
    lambda b: b.fetch("nope", 0, 0),
    lambda b: b.produce("nope", 0, batch(b"x")),
    lambda b: b.list_offsets("nope", 0, -2),
    lambda b: b.topic("nope"),
    lambda b: b.describe_topic("nope"),
    lambda b: b.partition_count("nope"),
    lambda b: b.delete_topic("nope"),
], ids=["fetch-p", "produce-p", "append-p", "offsets-p", "delete-records-p", "log-p", "fetch-t", "produce-t",
        "offsets-t", "topic-t", "describe-t", "count-t", "delete-t"])
def test_unknown_topic_or_partition(broker, call):
    broker.create_topic("t")
    with pytest.raises(UnknownTopicOrPartitionError):
        call(broker)


def test_error_codes_are_kafkas():
    assert UnknownTopicOrPartitionError.error_code == 3
    assert RecordTooLargeError.error_code == 10
    assert InvalidTopicError.error_code == 17
    assert TopicAlreadyExistsError.error_code == 36
    assert InvalidConfigError.error_code == 40
    for error in (ReadOnlyError, DataDirLockedError, OffsetOutOfRangeError, CorruptRecordError):
        assert issubclass(error, LogbrokerError)


# ---- read-only -------------------------------------------------------------------------------

def snapshot(root) -> dict[str, bytes | None]:
    out = {}
    for rel in tree(root):
        full = os.path.join(root, rel)
        out[rel] = None if os.path.isdir(full) else pathlib.Path(full).read_bytes()
    return out


def test_read_only_refuses_writes_and_changes_nothing(path):
    with Broker.open(path, housekeeping=False) as broker:
        broker.create_topic("t")
        broker.produce("t", 0, batch(b"a"))
    before = snapshot(path)
    with Broker.open(path, read_only=True) as ro:
        assert ro.read_only
        writes = [
            lambda: ro.create_topic("u"),
            lambda: ro.delete_topic("t"),
            lambda: ro.alter_topic_config("t", set={"retention.ms": "1"}),
            lambda: ro.create_partitions("t", 2),
            lambda: ro.produce("t", 0, batch(b"b")),
            lambda: ro.append("t", 0, batch(b"b")),
            lambda: ro.delete_records("t", 0, 1),
            lambda: ro.run_housekeeping(force=True),
        ]
        for write in writes:
            with pytest.raises(ReadOnlyError):
                write()
        assert fetched_values(ro, "t") == [b"a"]
        assert ro.list_topics() == ["t"] and ro.describe_topic("t")["partitions"][0]["log_end_offset"] == 1
    assert snapshot(path) == before


def test_read_only_takes_no_lock_and_follows_the_writer(path):
    with Broker.open(path, housekeeping=False) as broker:
        broker.create_topic("t")
        broker.produce("t", 0, batch(b"a"))
    with Broker.open(path, read_only=True) as ro:
        with Broker.open(path, housekeeping=False) as writer:
            writer.produce("t", 0, batch(b"b"))
            assert fetched_values(ro, "t") == [b"a", b"b"]
            assert ro.list_offsets("t", 0, -1) == (2, -1)


def test_read_only_does_not_create_a_missing_directory(path):
    with Broker.open(path, read_only=True) as ro:
        assert ro.list_topics() == []
    assert not os.path.exists(path)


# ---- housekeeping ----------------------------------------------------------------------------

def test_retention_by_time_deletes_old_segments(tmp_path):
    clock = ManualClock(1_000_000)
    with Broker.open(str(tmp_path / "d"), clock=clock, housekeeping=False) as broker:
        broker.create_topic("t", config={"segment.bytes": "1024", "retention.ms": "10000"})
        for i in range(30):
            broker.produce("t", 0, batch(b"x" * 100, ts=clock.time_ms()))
        segments = len(broker.log("t", 0).segments)
        assert segments > 2
        assert broker.run_housekeeping(force=True)["deleted_segments"] == {}  # nothing old yet
        clock.advance(20_000)
        done = broker.run_housekeeping(force=True)
        assert len(done["deleted_segments"][("t", 0)]) == segments - 1  # the active one stays
        start = broker.list_offsets("t", 0, -2)[0]
        assert start == broker.log("t", 0).segments[0].base_offset > 0
        assert broker.list_offsets("t", 0, -1) == (30, -1)


def test_retention_by_size(tmp_path):
    with Broker.open(str(tmp_path / "d"), housekeeping=False) as broker:
        broker.create_topic("t", config={"segment.bytes": "1024", "retention.bytes": "2048"})
        for i in range(40):
            broker.produce("t", 0, batch(b"y" * 100))
        broker.run_housekeeping(force=True)
        assert broker.log("t", 0).size_bytes <= 2048 + 1024
        assert broker.list_offsets("t", 0, -2)[0] > 0


# ---- unclean shutdown and recovery -----------------------------------------------------------

CHILD = """
import os, sys, time
from logbroker.broker import Broker
from logbroker.client import Producer
broker = Broker.open(sys.argv[1], housekeeping=False)
broker.create_topic("t", partitions=2)
with Producer(broker, linger_ms=0) as producer:
    for i in range(5):
        producer.send("t", f"v{i}".encode(), partition=0).result()
    producer.send("t", b"other", partition=1).result()
if sys.argv[2] == "exit":
    os._exit(0)
print("ready", flush=True)
time.sleep(60)
"""


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def crash_child(path: str, how: str) -> None:
    """Run CHILD and end it uncleanly: os._exit(0) ("exit") or SIGKILL by pid ("kill")."""
    proc = subprocess.Popen([sys.executable, "-c", CHILD, path, how], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=child_env())
    try:
        if how == "exit":
            proc.wait(timeout=30)
            assert proc.returncode == 0, proc.stderr.read()
            return
        deadline = time.monotonic() + 30
        line = b""
        while time.monotonic() < deadline and not line:
            ready, _, _ = select.select([proc.stdout], [], [], deadline - time.monotonic())
            if ready:
                line = proc.stdout.readline()
                break
        assert line.strip() == b"ready", (line, proc.stderr.read() if proc.poll() is not None else b"")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        assert proc.returncode == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        proc.stdout.close()
        proc.stderr.close()


@pytest.mark.parametrize("how", ["exit", "kill"])
def test_recovery_after_unclean_shutdown_keeps_acknowledged_records(path, how):
    crash_child(path, how)
    assert not os.path.exists(os.path.join(path, ".kafka_cleanshutdown"))
    with Broker.open(path, housekeeping=False) as broker:
        reports = {(r.topic, r.partition): r for r in broker.recovery_reports}
        assert set(reports) == {("t", 0), ("t", 1)}
        report = reports[("t", 0)]
        assert report.segments_recovered >= 1 and not report.dropped_anything
        assert report.log_end_offset == 5 and reports[("t", 1)].log_end_offset == 1
        assert "nothing dropped" in report.describe()
        assert fetched_values(broker, "t", 0) == [f"v{i}".encode() for i in range(5)]
        assert broker.produce("t", 0, batch(b"after")).base_offset == 5
    with Broker.open(path, housekeeping=False) as broker:
        assert broker.recovery_reports == []  # that close was clean


def test_recovery_truncates_a_torn_tail(path):
    crash_child(path, "kill")
    log_file = os.path.join(path, "t-0", "00000000000000000000.log")
    size = os.path.getsize(log_file)
    torn = batch(b"half-written")[:30]
    with open(log_file, "ab") as fh:
        fh.write(torn)
    with Broker.open(path, housekeeping=False) as broker:
        (report,) = [r for r in broker.recovery_reports if r.partition == 0]
        assert report.dropped_anything
        assert report.truncated_bytes == len(torn)
        assert report.truncated_at == (log_file, size)
        assert report.reason
        assert f"truncated {len(torn)} bytes at {log_file} byte {size}" in report.describe()
        assert os.path.getsize(log_file) == size
        assert fetched_values(broker, "t", 0) == [f"v{i}".encode() for i in range(5)]


def test_clean_shutdown_has_no_recovery_reports(path):
    with Broker.open(path, housekeeping=False) as broker:
        broker.create_topic("t")
        broker.produce("t", 0, batch(b"a"))
        assert broker.recovery_reports == []
    with Broker.open(path, housekeeping=False) as broker:
        assert broker.recovery_reports == []
        assert fetched_values(broker, "t") == [b"a"]


def test_broker_side_compression_type_other_than_producer_is_refused(tmp_path):
    # batches are stored as produced; a recompression setting that would be ignored is refused instead
    with Broker.open(str(tmp_path / "data"), housekeeping=False) as broker:
        with pytest.raises(InvalidConfigError, match="compression.type"):
            broker.create_topic("t", config={"compression.type": "gzip"})
        assert broker.create_topic("t", config={"compression.type": "producer"}).config == {"compression.type": "producer"}
