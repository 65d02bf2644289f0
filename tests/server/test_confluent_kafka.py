"""confluent-kafka (librdkafka) against a real ``logbroker serve``: ApiVersions v3 handshake,
idempotent produce, a consumer group of two with a rebalance, and the admin client."""

from __future__ import annotations

import time

import pytest

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewPartitions, NewTopic

QUIET = {"log_level": 0}  # silent: the shared server going away at the end of the module is expected


def group_consumer(bootstrap: str, group: str, name: str) -> Consumer:
    return Consumer({"bootstrap.servers": bootstrap, "group.id": group, "client.id": name,
                     "auto.offset.reset": "earliest", "enable.auto.commit": False,
                     "session.timeout.ms": 6000, "heartbeat.interval.ms": 100, "fetch.wait.max.ms": 100,
                     "topic.metadata.refresh.interval.ms": 1000, **QUIET})


def test_idempotent_producer_and_plain_consumer(served):
    topic = "rdkafka-produce"
    admin = AdminClient({"bootstrap.servers": served.bootstrap, **QUIET})
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])[topic].result(10)
    producer = Producer({"bootstrap.servers": served.bootstrap, "enable.idempotence": True, "acks": "all",
                         "linger.ms": 5, "compression.type": "lz4", **QUIET})
    reports = []
    for i in range(300):
        producer.produce(topic, value=b"v%d" % i, key=b"k%d" % (i % 7),
                         on_delivery=lambda err, msg: reports.append((err, msg.partition(), msg.offset())))
        producer.poll(0)
    assert producer.flush(15) == 0
    assert len(reports) == 300 and all(err is None for err, _, _ in reports)
    per_partition = {}
    for _, partition, offset in reports:
        per_partition.setdefault(partition, []).append(offset)
    assert all(sorted(o) == list(range(len(o))) for o in per_partition.values())  # dense, no duplicates

    consumer = Consumer({"bootstrap.servers": served.bootstrap, "group.id": "unused", **QUIET})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(3)])  # OFFSET_BEGINNING-style explicit start
    got = []
    deadline = time.monotonic() + 15
    while len(got) < 300 and time.monotonic() < deadline:
        message = consumer.poll(0.2)
        if message is not None and message.error() is None:
            got.append(message.value())
    consumer.close()
    assert sorted(got) == sorted(b"v%d" % i for i in range(300))
    low, high = Consumer({"bootstrap.servers": served.bootstrap, "group.id": "x", **QUIET}).get_watermark_offsets(
        TopicPartition(topic, 0), timeout=5)
    assert low == 0 and high == len(per_partition.get(0, []))


def test_group_of_two_with_a_rebalance(served):
    topic, group = "rdkafka-group", "rdkafka-group"
    admin = AdminClient({"bootstrap.servers": served.bootstrap, **QUIET})
    admin.create_topics([NewTopic(topic, num_partitions=4, replication_factor=1)])[topic].result(10)
    producer = Producer({"bootstrap.servers": served.bootstrap, **QUIET})
    for i in range(40):
        producer.produce(topic, value=b"m%d" % i, partition=i % 4)
    assert producer.flush(15) == 0

    a = group_consumer(served.bootstrap, group, "rdk-a")
    b = group_consumer(served.bootstrap, group, "rdk-b")
    a.subscribe([topic])
    b.subscribe([topic])
    seen: dict[str, list[bytes]] = {"a": [], "b": []}

    def pump(seconds: float, until) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not until():
            for name, consumer in (("a", a), ("b", b)):
                if consumer is None:
                    continue
                message = consumer.poll(0.05)
                if message is not None and message.error() is None:
                    seen[name].append(message.value())
                    consumer.commit(message=message, asynchronous=False)

    pump(20, lambda: len(seen["a"]) + len(seen["b"]) >= 40 and len(a.assignment()) == 2 and len(b.assignment()) == 2)
    assert len(a.assignment()) == 2 and len(b.assignment()) == 2
    assert sorted(seen["a"] + seen["b"]) == sorted(b"m%d" % i for i in range(40))
    groups = admin.list_consumer_groups().result(10)
    assert group in {g.group_id for g in groups.valid}
    described = admin.describe_consumer_groups([group])[group].result(10)
    assert len(described.members) == 2 and {m.client_id for m in described.members} == {"rdk-a", "rdk-b"}

    b.close()  # LeaveGroup: a gets everything
    b = None
    pump(20, lambda: len(a.assignment()) == 4)
    assert {tp.partition for tp in a.assignment()} == {0, 1, 2, 3}
    for i in range(8):
        producer.produce(topic, value=b"late%d" % i, partition=i % 4)
    producer.flush(15)
    pump(20, lambda: sum(v.startswith(b"late") for v in seen["a"]) == 8)
    committed = a.committed([TopicPartition(topic, p) for p in range(4)], timeout=10)
    assert sum(tp.offset for tp in committed) == 48
    a.close()


def test_admin_client(served):
    admin = AdminClient({"bootstrap.servers": served.bootstrap, **QUIET})
    futures = admin.create_topics([NewTopic("rdk-admin", num_partitions=2, replication_factor=1,
                                            config={"cleanup.policy": "compact"}),
                                   NewTopic("rdk-bad", num_partitions=1, replication_factor=3)])
    futures["rdk-admin"].result(10)
    with pytest.raises(KafkaException) as raised:
        futures["rdk-bad"].result(10)
    assert raised.value.args[0].code() == 38  # INVALID_REPLICATION_FACTOR
    metadata = admin.list_topics(timeout=10)
    assert metadata.controller_id == 0 and list(metadata.brokers) == [0]
    assert sorted(metadata.topics["rdk-admin"].partitions) == [0, 1]
    admin.create_partitions([NewPartitions("rdk-admin", 3)])["rdk-admin"].result(10)
    resource = ConfigResource("topic", "rdk-admin")
    configs = admin.describe_configs([resource])[resource].result(10)
    assert configs["cleanup.policy"].value == "compact"
    admin.delete_topics(["rdk-admin"])["rdk-admin"].result(10)
    assert "rdk-admin" not in admin.list_topics(timeout=10).topics
