"""The embedded Consumer over a real Broker in a temporary directory."""

from __future__ import annotations

import threading
import time

import pytest

from logbroker.client import Consumer, Producer, TopicPartition
from logbroker.broker import Broker
from logbroker.errors import BrokerClosedError, OffsetOutOfRangeError, UnknownTopicOrPartitionError

from .conftest import drain, poll_until


def fill(broker, topic: str, count: int, *, partition: int | None = 0, per_batch: int = 1, ts0: int = 1_000,
         prefix: str = "v") -> None:
    """``count`` records ``<prefix>0..`` with timestamps ts0, ts0+1000, ..., ``per_batch`` per batch."""
    with Producer(broker, linger_ms=60_000) as producer:
        for i in range(count):
            producer.send(topic, f"{prefix}{i}".encode(), partition=partition, timestamp=ts0 + 1000 * i)
            if (i + 1) % per_batch == 0:
                producer.flush()


def values(records) -> list[str]:
    return [r.value.decode() for r in records]


# ---- assignment ------------------------------------------------------------------------------

def test_subscribe_assigns_every_partition(broker):
    broker.create_topic("a", partitions=3)
    broker.create_topic("b")
    with Consumer(broker, topics=["a", "b"]) as consumer:
        assert consumer.assignment() == {TopicPartition("a", 0), TopicPartition("a", 1), TopicPartition("a", 2),
                                         TopicPartition("b", 0)}
    consumer = Consumer(broker)
    assert consumer.assignment() == set()
    consumer.subscribe(["a"])
    assert consumer.assignment() == {("a", 0), ("a", 1), ("a", 2)}


def test_subscribe_unknown_topic_raises(broker):
    with pytest.raises(UnknownTopicOrPartitionError):
        Consumer(broker, topics=["missing"])


def test_assign_reads_only_those_partitions(broker):
    broker.create_topic("t", partitions=3)
    for p in range(3):
        fill(broker, "t", 2, partition=p, prefix=f"p{p}-")
    with Consumer(broker) as consumer:
        consumer.assign([("t", 1)])
        assert consumer.assignment() == {TopicPartition("t", 1)}
        records = drain(consumer)
        assert values(records) == ["p1-0", "p1-1"]
        assert {(r.topic, r.partition) for r in records} == {("t", 1)}
        consumer.assign([("t", 1), ("t", 2)])  # keeps t-1's position
        assert values(drain(consumer)) == ["p2-0", "p2-1"]


def test_assign_unknown_partition_raises(broker):
    broker.create_topic("t", partitions=2)
    consumer = Consumer(broker)
    with pytest.raises(UnknownTopicOrPartitionError):
        consumer.assign([("t", 2)])
    with pytest.raises(UnknownTopicOrPartitionError):
        consumer.assign([("nope", 0)])


# ---- poll ------------------------------------------------------------------------------------

def test_poll_max_records_and_positions(broker):
    broker.create_topic("t")
    fill(broker, "t", 10, per_batch=4)
    with Consumer(broker, topics=["t"]) as consumer:
        assert consumer.position("t", 0) == 0
        first = consumer.poll(max_records=3)
        assert values(first) == ["v0", "v1", "v2"]
        assert [r.offset for r in first] == [0, 1, 2]
        assert consumer.position("t", 0) == 3
        assert values(consumer.poll(max_records=5)) == ["v3", "v4", "v5", "v6", "v7"]
        assert consumer.position("t", 0) == 8
        assert values(consumer.poll(timeout=0.5)) == ["v8", "v9"]
        assert consumer.position("t", 0) == 10
        assert consumer.poll(timeout=0.05) == []
        assert consumer.at_end()


def test_max_poll_records_setting(broker):
    broker.create_topic("t")
    fill(broker, "t", 10, per_batch=10)
    with Consumer(broker, topics=["t"], max_poll_records=4) as consumer:
        assert [len(consumer.poll()) for _ in range(4)] == [4, 4, 2, 0]


def test_records_carry_their_fields(broker):
    broker.create_topic("t", partitions=2)
    with Producer(broker) as producer:
        producer.send("t", b"v", key=b"k", headers={"h": b"1"}, partition=1, timestamp=42).result()
    with Consumer(broker, topics=["t"]) as consumer:
        (record,) = drain(consumer)
    assert (record.topic, record.partition, record.offset, record.timestamp, record.timestamp_type) == ("t", 1, 0, 42, 0)
    assert (record.key, record.value, list(record.headers)) == (b"k", b"v", [("h", b"1")])


def test_poll_waits_for_new_data(broker):
    broker.create_topic("t")
    with Consumer(broker, topics=["t"]) as consumer:
        assert consumer.poll(timeout=0) == []
        timer = threading.Timer(0.2, lambda: fill(broker, "t", 1))
        timer.start()
        try:
            started = time.monotonic()
            records = consumer.poll(timeout=5.0)
            assert values(records) == ["v0"]
            assert time.monotonic() - started < 4.0
        finally:
            timer.join(5)


def test_poll_after_close_raises(broker):
    broker.create_topic("t")
    consumer = Consumer(broker, topics=["t"])
    consumer.close()
    with pytest.raises(BrokerClosedError):
        consumer.poll()


def test_iteration(broker):
    broker.create_topic("t")
    fill(broker, "t", 5)
    consumer = Consumer(broker, topics=["t"])
    got = []
    for record in consumer:
        got.append(record.value.decode())
        if len(got) == 5:
            consumer.close()
    assert got == ["v0", "v1", "v2", "v3", "v4"]


# ---- seeking ---------------------------------------------------------------------------------

def test_seek_and_seek_to_beginning_and_end(broker):
    broker.create_topic("t", partitions=2)
    fill(broker, "t", 6, partition=0, per_batch=3)
    fill(broker, "t", 4, partition=1, prefix="w")
    with Consumer(broker, topics=["t"]) as consumer:
        consumer.seek("t", 0, 4)
        consumer.seek_to_end(("t", 1))
        assert values(drain(consumer)) == ["v4", "v5"]
        consumer.seek("t", 0, 1)  # into the middle of a batch
        assert values(drain(consumer)) == ["v1", "v2", "v3", "v4", "v5"]
        consumer.seek_to_beginning()
        assert sorted(values(drain(consumer))) == sorted([f"v{i}" for i in range(6)] + [f"w{i}" for i in range(4)])
        consumer.seek_to_beginning(("t", 1))
        assert values(drain(consumer)) == ["w0", "w1", "w2", "w3"]
        consumer.seek_to_end()
        assert consumer.position("t", 0) == 6 and consumer.position("t", 1) == 4
        assert consumer.end_offsets() == {TopicPartition("t", 0): 6, TopicPartition("t", 1): 4}
        assert drain(consumer) == []


def test_seek_drops_buffered_records(broker):
    broker.create_topic("t")
    fill(broker, "t", 10, per_batch=10)
    with Consumer(broker, topics=["t"]) as consumer:
        assert values(consumer.poll(max_records=2)) == ["v0", "v1"]  # the rest of the batch is buffered
        consumer.seek("t", 0, 7)
        assert values(drain(consumer)) == ["v7", "v8", "v9"]


def test_seek_past_the_end_resets(broker):
    broker.create_topic("t")
    fill(broker, "t", 3)
    with Consumer(broker, topics=["t"]) as consumer:
        consumer.seek("t", 0, 100)
        assert values(poll_until(consumer, 3, timeout=2.0)) == ["v0", "v1", "v2"]  # earliest


def test_seek_unassigned_partition_raises(broker):
    broker.create_topic("t", partitions=2)
    consumer = Consumer(broker)
    consumer.assign([("t", 0)])
    with pytest.raises(ValueError):
        consumer.seek("t", 1, 0)
    with pytest.raises(ValueError):
        consumer.position("t", 1)


def test_offsets_for_times(broker):
    broker.create_topic("t", partitions=2)
    fill(broker, "t", 5, ts0=1_000)  # timestamps 1000..5000 in partition 0
    with Consumer(broker, topics=["t"]) as consumer:
        found = consumer.offsets_for_times({("t", 0): 2_500, ("t", 1): 0})
        assert found == {TopicPartition("t", 0): (2, 3_000), TopicPartition("t", 1): None}
        assert consumer.offsets_for_times({("t", 0): 0})[TopicPartition("t", 0)] == (0, 1_000)
        assert consumer.offsets_for_times({("t", 0): 5_000})[TopicPartition("t", 0)] == (4, 5_000)
        assert consumer.offsets_for_times({("t", 0): 5_001})[TopicPartition("t", 0)] is None
        offset, _ = found[TopicPartition("t", 0)]
        consumer.assign([("t", 0)])
        consumer.seek("t", 0, offset)
        assert values(drain(consumer)) == ["v2", "v3", "v4"]


def test_pause_and_resume(broker):
    broker.create_topic("t", partitions=2)
    fill(broker, "t", 3, partition=0, prefix="a")
    fill(broker, "t", 3, partition=1, prefix="b")
    with Consumer(broker, topics=["t"]) as consumer:
        consumer.pause(("t", 0))
        got = poll_until(consumer, 3, timeout=2.0)
        assert values(got) == ["b0", "b1", "b2"]
        assert consumer.poll(timeout=0.05) == []
        consumer.resume(("t", 0))
        assert values(poll_until(consumer, 3, timeout=2.0)) == ["a0", "a1", "a2"]
        consumer.pause(("t", 0), ("t", 1))
        fill(broker, "t", 1, partition=1, prefix="late")
        assert consumer.poll(timeout=0.05) == []
        consumer.resume(("t", 1))
        assert values(poll_until(consumer, 1, timeout=2.0)) == ["late0"]


# ---- auto_offset_reset -----------------------------------------------------------------------

def test_auto_offset_reset_earliest(broker):
    broker.create_topic("t")
    fill(broker, "t", 3)
    with Consumer(broker, topics=["t"], auto_offset_reset="earliest") as consumer:
        assert values(drain(consumer)) == ["v0", "v1", "v2"]


def test_auto_offset_reset_latest(broker):
    broker.create_topic("t")
    fill(broker, "t", 3)
    with Consumer(broker, topics=["t"], auto_offset_reset="latest") as consumer:
        assert consumer.position("t", 0) == 3
        assert consumer.poll(timeout=0.05) == []
        fill(broker, "t", 2, prefix="new")
        assert values(poll_until(consumer, 2, timeout=2.0)) == ["new0", "new1"]


def test_auto_offset_reset_error(broker):
    broker.create_topic("t")
    fill(broker, "t", 5, per_batch=1)
    # fetch_max_bytes=1: one batch per fetch, so nothing is buffered past the position (buffered
    # records are still handed out after the log start moves, as Kafka's consumer does)
    consumer = Consumer(broker, topics=["t"], auto_offset_reset="error", fetch_max_bytes=1)
    with pytest.raises(OffsetOutOfRangeError):
        consumer.poll()
    consumer.seek("t", 0, 1)
    assert values(consumer.poll(max_records=1)) == ["v1"]
    broker.delete_records("t", 0, 4)
    with pytest.raises(OffsetOutOfRangeError):
        consumer.poll()


def test_invalid_auto_offset_reset(broker):
    with pytest.raises(ValueError):
        Consumer(broker, auto_offset_reset="smallest")


# ---- the log start moves under the consumer ----------------------------------------------------

def test_reading_after_delete_records_resets_to_the_new_log_start(broker):
    broker.create_topic("t")
    fill(broker, "t", 10, per_batch=1)
    with Consumer(broker, topics=["t"], fetch_max_bytes=1) as consumer:  # one batch per fetch: no buffer
        assert values(poll_until(consumer, 2, timeout=2.0)) == ["v0", "v1"]
        assert broker.delete_records("t", 0, 6) == 6
        assert values(poll_until(consumer, 4, timeout=2.0)) == ["v6", "v7", "v8", "v9"]


def test_reading_after_retention_deleted_segments(tmp_path):
    from logbroker.clock import ManualClock

    clock = ManualClock()
    with Broker.open(str(tmp_path / "data"), clock=clock, housekeeping=False) as broker:
        broker.create_topic("t", config={"segment.bytes": "1024", "retention.ms": "60000"})
        with Producer(broker, linger_ms=0) as producer:
            for i in range(40):
                producer.send("t", f"{i:03d}".encode() * 10).result()
        with Consumer(broker, topics=["t"], fetch_max_bytes=1) as consumer:  # one batch per fetch: no buffer
            assert len(consumer.poll(max_records=1)) == 1
            assert len(broker.log("t", 0).segments) > 2
            clock.advance(120_000)
            done = broker.run_housekeeping(force=True)
            assert done["deleted_segments"][("t", 0)]
            start = broker.list_offsets("t", 0, -2)[0]
            assert start > 1
            rest = poll_until(consumer, 40 - start, timeout=2.0)
            assert [r.offset for r in rest] == list(range(start, 40))


# ---- concurrency -----------------------------------------------------------------------------

def test_reading_while_a_producer_thread_appends(broker):
    broker.create_topic("t", partitions=3)
    total = 900
    errors: list = []

    def produce():
        try:
            with Producer(broker, linger_ms=1) as producer:
                for i in range(total):
                    producer.send("t", str(i).encode(), key=str(i % 7).encode())
                    if i % 100 == 0:
                        time.sleep(0.005)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    thread = threading.Thread(target=produce, daemon=True)
    with Consumer(broker, topics=["t"]) as consumer:
        thread.start()
        got = poll_until(consumer, total, timeout=30.0)
        thread.join(30)
        assert not thread.is_alive() and not errors
        got += consumer.poll(timeout=0.2)
    assert len(got) == total
    assert sorted(int(r.value) for r in got) == list(range(total))  # each exactly once
    for p in range(3):
        mine = [r for r in got if r.partition == p]
        assert [r.offset for r in mine] == list(range(len(mine)))  # in order, no gaps
        assert [int(r.value) for r in mine] == sorted(int(r.value) for r in mine)
        for r in mine:
            assert int(r.key) == int(r.value) % 7


def test_read_only_broker_sees_appends_of_the_writer(tmp_path):
    path = str(tmp_path / "data")
    with Broker.open(path, housekeeping=False) as writer:
        writer.create_topic("t", config={"segment.bytes": "1024"})
        fill(writer, "t", 2)
        with Broker.open(path, read_only=True) as reader, Consumer(reader, topics=["t"]) as consumer:
            assert values(drain(consumer)) == ["v0", "v1"]
            with Producer(writer, linger_ms=0) as producer:
                for i in range(30):  # enough to roll several segments
                    producer.send("t", f"x{i:02d}".encode() * 20).result()
            got = poll_until(consumer, 30, timeout=5.0)
            assert [r.offset for r in got] == list(range(2, 32))
            assert len(writer.log("t", 0).segments) > 1
