"""confluent-kafka (librdkafka 2.x) against a real ``logbroker serve`` child.

Producer with acks=all and idempotence (delivery reports carry offsets), every compression codec,
a consumer group of two members in two threads splitting a 4-partition topic and rebalancing when
one leaves, commit and resume with a new consumer, and the AdminClient calls for topics and groups.
One server per module; each test uses its own topic and group names.
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
import threading
import time

import pytest
from confluent_kafka import (Consumer, ConsumerGroupTopicPartitions, KafkaError, KafkaException, Producer,
                             TopicPartition)
from confluent_kafka.admin import AdminClient, NewTopic

from .conftest import subprocess_env, unique, wait_until

# Short group timings so joins, rebalances and leaves finish in well under a second or two.
GROUP = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 200, "auto.offset.reset": "earliest",
         "enable.auto.commit": False, "fetch.wait.max.ms": 100, "topic.metadata.refresh.interval.ms": 2000}
REQUEST_TIMEOUT_S = 10


def produce(bootstrap: str, topic: str, values, *, partition=None, **config) -> list[tuple]:
    """Send ``values`` and return the delivery reports as (partition, offset, value); all must succeed."""
    reports: list[tuple] = []
    errors: list = []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(err)
        else:
            reports.append((msg.partition(), msg.offset(), msg.value()))

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                         "linger.ms": 5, **config})
    for i, value in enumerate(values):
        kwargs = {} if partition is None else {"partition": partition(i) if callable(partition) else partition}
        producer.produce(topic, value=value, key=b"key-%d" % i, on_delivery=on_delivery, **kwargs)
        producer.poll(0)
    assert producer.flush(20) == 0, "messages still in flight after 20 s"
    assert not errors, errors[:5]
    assert len(reports) == len(values)
    return reports


def consume(bootstrap: str, topic: str, count: int, timeout: float = 20.0, **config) -> list:
    """Poll until ``count`` messages arrived (bounded); the consumer is closed afterwards."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("reader"), **GROUP, **config})
    got = []
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + timeout
        while len(got) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            got.append(msg)
    finally:
        consumer.close()
    assert len(got) == count, f"{len(got)} of {count} messages within {timeout}s"
    return got


def admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap})


def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    client = admin(bootstrap)  # kept referenced: a collected AdminClient fails its futures
    futures = client.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)],
                                   request_timeout=REQUEST_TIMEOUT_S)
    assert futures[topic].result(REQUEST_TIMEOUT_S) is None


# ---- producer ---------------------------------------------------------------------------------------


def test_idempotent_acks_all_producer_gets_offsets_in_delivery_reports(bootstrap):
    topic = unique("idem")
    create_topic(bootstrap, topic, 3)
    values = [b"value-%d" % i for i in range(300)]
    reports = produce(bootstrap, topic, values, partition=lambda i: i % 3)
    for p in range(3):
        offsets = [o for part, o, _ in sorted(reports, key=lambda r: r[1]) if part == p]
        assert offsets == list(range(100)), f"partition {p} offsets {offsets[:5]}..."
    assert {(p, o): v for p, o, v in reports} == {(i % 3, i // 3): v for i, v in enumerate(values)}
    got = consume(bootstrap, topic, 300)
    assert {(m.partition(), m.offset()): m.value() for m in got} == {(p, o): v for p, o, v in reports}
    assert {m.key() for m in got} == {b"key-%d" % i for i in range(300)}


def test_null_and_empty_keys_values_and_headers_round_trip(bootstrap):
    topic = unique("nulls")
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    sent = [(b"tombstone", None, None), (None, b"", [("null", None), ("empty", b"")]), (b"", b"v", None),
            (None, None, [("k", b"v"), ("k", b"again")])]
    for key, value, headers in sent:
        producer.produce(topic, key=key, value=value, headers=headers, partition=0)
    assert producer.flush(15) == 0
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("nulls-reader"), **GROUP})
    got = []
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        deadline = time.monotonic() + 15
        while len(got) < len(sent) and time.monotonic() < deadline:
            msg = consumer.poll(0.2)  # a Message with an empty value is falsy: compare with None
            if msg is not None and msg.error() is None:
                got.append((msg.key(), msg.value(), msg.headers()))
    finally:
        consumer.close()
    assert got == sent


def dump_batches(data_dir: str, topic: str) -> list[dict]:
    paths = sorted(glob.glob(os.path.join(data_dir, f"{topic}-0", "*.log")))
    assert paths, f"no segment files for {topic}"
    out = subprocess.run([sys.executable, "-m", "logbroker", "inspect", "dump", "--json", *paths],
                         capture_output=True, text=True, timeout=30, env=subprocess_env())
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_each_compression_codec_round_trips(bootstrap, serve_module, codec):
    topic = unique(f"codec-{codec}")
    values = [(b"%s record %d " % (codec.encode(), i)) * (1 + i % 7) for i in range(200)]
    reports = produce(bootstrap, topic, values, partition=0, **{"compression.type": codec})
    assert sorted(o for _, o, _ in reports) == list(range(200))
    got = consume(bootstrap, topic, 200)
    assert [m.value() for m in sorted(got, key=lambda m: m.offset())] == values
    batches = dump_batches(serve_module.data_dir, topic)
    assert batches and {b["compression"] for b in batches} == {codec}, "the batches were not stored compressed"


# ---- consumer groups --------------------------------------------------------------------------------


class Member(threading.Thread):
    """A group member polling in its own thread; commits each message synchronously after reading it."""

    def __init__(self, bootstrap: str, group: str, topic: str, name: str, assignor: str):
        super().__init__(name=name, daemon=True)
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "client.id": name,
                                  "partition.assignment.strategy": assignor, **GROUP})
        self.topic = topic
        self.assignment: set[int] = set()
        self.received: list[tuple[int, int, bytes]] = []
        self.errors: list = []
        self.stop = threading.Event()
        self.closed = threading.Event()

    def run(self):
        deadline = time.monotonic() + 60  # a hard stop whatever the test does
        try:
            self.consumer.subscribe([self.topic])
            while not self.stop.is_set() and time.monotonic() < deadline:
                msg = self.consumer.poll(0.1)
                # (incremental with cooperative-sticky: on_assign would only name what was added)
                self.assignment = {tp.partition for tp in self.consumer.assignment()}
                if msg is None:
                    continue
                if msg.error() is not None:
                    self.errors.append(msg.error())
                    continue
                self.received.append((msg.partition(), msg.offset(), msg.value()))
                self.consumer.commit(message=msg, asynchronous=False)
        except Exception as exc:  # reported by the test
            self.errors.append(exc)
        finally:
            self.consumer.close()
            self.closed.set()


@pytest.mark.parametrize("assignor", ["range", "cooperative-sticky"])
def test_group_of_two_splits_four_partitions_and_rebalances_when_one_leaves(bootstrap, assignor):
    topic, group = unique("split"), unique("group")
    create_topic(bootstrap, topic, 4)
    a = Member(bootstrap, group, topic, "member-a", assignor)
    b = Member(bootstrap, group, topic, "member-b", assignor)
    try:
        a.start()
        wait_until(lambda: a.assignment == {0, 1, 2, 3}, 15, what="member a owning all four partitions")
        b.start()
        wait_until(lambda: len(a.assignment) == 2 and len(b.assignment) == 2, 20, what="a 2+2 split")
        assert a.assignment | b.assignment == {0, 1, 2, 3}
        first = produce(bootstrap, topic, [b"first-%d" % i for i in range(200)], partition=lambda i: i % 4)
        wait_until(lambda: len(a.received) + len(b.received) >= 200, 20, what="both members reading everything")
        for member in (a, b):
            assert {p for p, _, _ in member.received} == member.assignment, member.name
        b_partitions = set(b.assignment)

        b.stop.set()
        assert b.closed.wait(15), "member b did not close"
        wait_until(lambda: a.assignment == {0, 1, 2, 3}, 20, what="member a taking over after b left")
        second = produce(bootstrap, topic, [b"second-%d" % i for i in range(200)], partition=lambda i: i % 4)
        wait_until(lambda: len(a.received) + len(b.received) >= 400, 20, what="member a reading the rest")
        time.sleep(0.3)  # room for a duplicate to show up, if the broker lost b's commits
    finally:
        for member in (a, b):
            member.stop.set()
        for member in (a, b):
            member.join(15)
    assert not a.errors and not b.errors, (a.errors, b.errors)
    everything = a.received + b.received
    assert sorted((p, o) for p, o, _ in everything) == sorted((p, o) for p, o, _ in first + second), \
        "each record read exactly once"
    assert {p for p, _, v in a.received if v.startswith(b"second")} >= b_partitions
    assert {v for _, _, v in everything} == {v for _, _, v in first + second}


def test_commit_then_a_new_consumer_resumes_at_the_committed_offset(bootstrap):
    topic, group = unique("resume"), unique("group")
    produce(bootstrap, topic, [b"m-%d" % i for i in range(20)], partition=0)
    first = Consumer({"bootstrap.servers": bootstrap, "group.id": group, **GROUP})
    try:
        first.subscribe([topic])
        got = []
        deadline = time.monotonic() + 20
        while len(got) < 8 and time.monotonic() < deadline:
            msg = first.poll(0.2)
            if msg is not None and msg.error() is None:
                got.append(msg)
        assert len(got) == 8
        committed = first.commit(message=got[-1], asynchronous=False)
        assert [(tp.partition, tp.offset, tp.error) for tp in committed] == [(0, 8, None)]
        assert first.committed([TopicPartition(topic, 0)], timeout=REQUEST_TIMEOUT_S)[0].offset == 8
    finally:
        first.close()

    second = Consumer({"bootstrap.servers": bootstrap, "group.id": group, **GROUP})
    try:
        second.subscribe([topic])
        rest = []
        deadline = time.monotonic() + 20
        while len(rest) < 12 and time.monotonic() < deadline:
            msg = second.poll(0.2)
            if msg is not None and msg.error() is None:
                rest.append(msg)
        assert [m.offset() for m in rest] == list(range(8, 20))
        assert [m.value() for m in rest] == [b"m-%d" % i for i in range(8, 20)]
        nothing = second.poll(0.5)
        assert nothing is None or nothing.error() is not None, "a record beyond the end"
    finally:
        second.close()


# ---- admin ------------------------------------------------------------------------------------------


def test_admin_create_describe_and_delete_topics(bootstrap):
    client = admin(bootstrap)
    names = [unique("admin"), unique("admin")]
    futures = client.create_topics([NewTopic(names[0], num_partitions=3, replication_factor=1),
                                    NewTopic(names[1], num_partitions=1, replication_factor=1,
                                             config={"cleanup.policy": "compact"})],
                                   request_timeout=REQUEST_TIMEOUT_S)
    for name in names:
        assert futures[name].result(REQUEST_TIMEOUT_S) is None

    metadata = client.list_topics(timeout=REQUEST_TIMEOUT_S)
    assert metadata.cluster_id and metadata.controller_id == 0
    assert [(b.id, b.host, b.port) for b in metadata.brokers.values()] == \
        [(0, "127.0.0.1", int(bootstrap.rsplit(":", 1)[1]))]
    assert sorted(metadata.topics[names[0]].partitions) == [0, 1, 2]
    for part in metadata.topics[names[0]].partitions.values():
        assert (part.leader, part.replicas, part.isrs, part.error) == (0, [0], [0], None)
    assert sorted(metadata.topics[names[1]].partitions) == [0]
    one = client.list_topics(topic=names[0], timeout=REQUEST_TIMEOUT_S)
    assert set(one.topics) == {names[0]}

    again = client.create_topics([NewTopic(names[0], num_partitions=1, replication_factor=1)],
                                 request_timeout=REQUEST_TIMEOUT_S)
    with pytest.raises(KafkaException) as exc_info:
        again[names[0]].result(REQUEST_TIMEOUT_S)
    assert exc_info.value.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS

    deleted = client.delete_topics(names, request_timeout=REQUEST_TIMEOUT_S)
    for name in names:
        assert deleted[name].result(REQUEST_TIMEOUT_S) is None
    wait_until(lambda: not set(names) & set(client.list_topics(timeout=REQUEST_TIMEOUT_S).topics), 10,
               what="deleted topics gone from metadata")
    gone = client.delete_topics([names[0]], request_timeout=REQUEST_TIMEOUT_S)
    with pytest.raises(KafkaException) as exc_info:
        gone[names[0]].result(REQUEST_TIMEOUT_S)
    assert exc_info.value.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_admin_lists_and_describes_groups_and_their_offsets(bootstrap):
    topic, group = unique("groups"), unique("group")
    create_topic(bootstrap, topic, 2)
    produce(bootstrap, topic, [b"g-%d" % i for i in range(10)], partition=lambda i: i % 2)
    member = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "client.id": "described", **GROUP})
    client = admin(bootstrap)
    try:
        member.subscribe([topic])
        got = []
        deadline = time.monotonic() + 20
        while len(got) < 10 and time.monotonic() < deadline:
            msg = member.poll(0.2)
            if msg is not None and msg.error() is None:
                got.append(msg)
        assert len(got) == 10
        member.commit(asynchronous=False)

        listed = client.list_consumer_groups(request_timeout=REQUEST_TIMEOUT_S).result(REQUEST_TIMEOUT_S)
        assert not listed.errors
        mine = [g for g in listed.valid if g.group_id == group]
        assert len(mine) == 1 and not mine[0].is_simple_consumer_group
        # ListGroups is served up to v2, which carries no group state (v4 added it): UNKNOWN is right.
        assert mine[0].state.name == "UNKNOWN"

        description = client.describe_consumer_groups([group], request_timeout=REQUEST_TIMEOUT_S)[group] \
            .result(REQUEST_TIMEOUT_S)
        assert description.group_id == group and description.state.name == "STABLE"
        assert description.partition_assignor == "range"
        assert description.coordinator.id == 0
        assert [m.client_id for m in description.members] == ["described"]
        assert sorted(tp.partition for tp in description.members[0].assignment.topic_partitions) == [0, 1]

        offsets = client.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)],
                                                     request_timeout=REQUEST_TIMEOUT_S)[group].result(REQUEST_TIMEOUT_S)
        assert sorted((tp.topic, tp.partition, tp.offset) for tp in offsets.topic_partitions) == \
            [(topic, 0, 5), (topic, 1, 5)]
        one = client.list_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 1)])],
            request_timeout=REQUEST_TIMEOUT_S)[group].result(REQUEST_TIMEOUT_S)
        assert [(tp.partition, tp.offset) for tp in one.topic_partitions] == [(1, 5)]
    finally:
        member.close()

    description = client.describe_consumer_groups([group], request_timeout=REQUEST_TIMEOUT_S)[group] \
        .result(REQUEST_TIMEOUT_S)
    assert description.state.name == "EMPTY" and description.members == []
    assert client.delete_consumer_groups([group], request_timeout=REQUEST_TIMEOUT_S)[group] \
        .result(REQUEST_TIMEOUT_S) is None
    listed = client.list_consumer_groups(request_timeout=REQUEST_TIMEOUT_S).result(REQUEST_TIMEOUT_S)
    assert group not in {g.group_id for g in listed.valid}
