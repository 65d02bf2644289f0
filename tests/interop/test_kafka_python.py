"""kafka-python (3.x) against a real ``logbroker serve`` child.

Compression: kafka-python compresses in pure Python only with gzip here; snappy, lz4 and zstd need
python-snappy, lz4 and zstandard, none of which this project installs (kafka-python does not use
cramjam).  So only gzip (and none) are produced and consumed by kafka-python; batches compressed by
librdkafka with the other codecs are covered in test_confluent_kafka.py.
"""

from __future__ import annotations

import time

import kafka.codec
import pytest
from confluent_kafka import Consumer, Producer
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, OffsetAndMetadata, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError, UnknownTopicOrPartitionError

from .conftest import unique, wait_until

# Polls long enough to outlast a rebalance (kafka-python can lose a join round a short poll gave up on).
GROUP = {"heartbeat_interval_ms": 200, "session_timeout_ms": 6000, "enable_auto_commit": False,
         "auto_offset_reset": "earliest", "fetch_max_wait_ms": 100}
POLL_MS = 2000


def poll_until(consumer: KafkaConsumer, count: int, timeout: float = 20.0) -> list:
    got: list = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=POLL_MS, max_records=count - len(got)).values():
            got.extend(records)
    return got


def test_only_gzip_is_available_to_kafka_python_here():
    # If this changes (someone installs python-snappy, lz4 or zstandard), extend the codec test below.
    assert [c for c in ("gzip", "snappy", "lz4", "zstd") if getattr(kafka.codec, f"has_{c}")()] == ["gzip"]


@pytest.mark.parametrize("compression", [None, "gzip"])
def test_acks_all_producer_and_group_consumer_commit(bootstrap, compression):
    topic, group = unique("kp"), unique("kp-group")
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", compression_type=compression,
                             linger_ms=5, enable_idempotence=True)
    try:
        futures = [producer.send(topic, key=b"k%d" % i, value=b"value-%d " % i * 10, headers=[("n", b"%d" % i)])
                   for i in range(100)]
        producer.flush(timeout=20)
        metadata = [f.get(timeout=10) for f in futures]
    finally:
        producer.close(timeout=10)
    assert [(m.topic, m.partition, m.offset) for m in metadata] == [(topic, 0, i) for i in range(100)]

    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, **GROUP)
    try:
        got = poll_until(consumer, 60)
        assert [r.offset for r in got] == list(range(60))
        assert [r.value for r in got] == [b"value-%d " % i * 10 for i in range(60)]
        assert got[42].key == b"k42" and got[42].headers == [("n", b"42")]
        consumer.commit()
        assert consumer.committed(TopicPartition(topic, 0)) == 60
    finally:
        consumer.close()

    resumed = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, **GROUP)
    try:
        rest = poll_until(resumed, 40)
        assert [r.offset for r in rest] == list(range(60, 100))
        resumed.commit({TopicPartition(topic, 0): OffsetAndMetadata(100, "done", -1)})
        assert resumed.committed(TopicPartition(topic, 0), metadata=True) == OffsetAndMetadata(100, "done", -1)
    finally:
        resumed.close()


def test_admin_create_delete_topics_and_list_describe_groups(bootstrap):
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    topic, other, group = unique("kp-admin"), unique("kp-admin"), unique("kp-admin-group")
    try:
        admin.create_topics([NewTopic(topic, 3, 1), NewTopic(other, 1, 1)])
        assert {topic, other} <= set(admin.list_topics())
        described = {t["name"]: t for t in admin.describe_topics([topic])}
        assert described[topic]["error_code"] == 0 and not described[topic]["is_internal"]
        assert sorted(p["partition_index"] for p in described[topic]["partitions"]) == [0, 1, 2]
        assert {(p["leader_id"], tuple(p["replica_nodes"])) for p in described[topic]["partitions"]} == {(0, (0,))}
        with pytest.raises(TopicAlreadyExistsError):
            admin.create_topics([NewTopic(topic, 1, 1)], raise_errors=True)

        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
        for i in range(9):
            producer.send(topic, b"v%d" % i, partition=i % 3)
        producer.flush(timeout=15)
        producer.close(timeout=10)

        consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, client_id="kp-member", **GROUP)
        try:
            assert len(poll_until(consumer, 9)) == 9
            consumer.commit()
            assert {"group_id": group, "protocol_type": "consumer"} in admin.list_groups()
            info = admin.describe_groups([group])[group]
            assert info["group_state"] == "Stable" and info["protocol_type"] == "consumer"
            assert info["protocol_data"] in ("range", "roundrobin")
            assert [m["client_id"] for m in info["members"]] == ["kp-member"]
        finally:
            consumer.close()
        assert admin.describe_groups([group])[group]["group_state"] == "Empty"
        offsets = admin.list_group_offsets(group)[group]
        assert {tp.partition: o.offset for tp, o in offsets.items()} == {0: 3, 1: 3, 2: 3}

        admin.delete_topics([topic, other])
        wait_until(lambda: not {topic, other} & set(admin.list_topics()), 10, what="topics deleted")
        with pytest.raises(UnknownTopicOrPartitionError):
            admin.delete_topics([other], raise_errors=True)
    finally:
        admin.close()


def test_cross_client_kafka_python_to_librdkafka_and_back(bootstrap):
    """Batches written by one client library are read back exactly by the other (gzip both ways)."""
    there, back = unique("kp-to-rdk"), unique("rdk-to-kp")
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", compression_type="gzip")
    for i in range(50):
        producer.send(there, key=b"k%d" % i, value=b"kp-%d" % i, headers=[("h", b"x")])
    producer.flush(timeout=15)
    producer.close(timeout=10)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("rdk"), "auto.offset.reset": "earliest",
                         "enable.auto.commit": False})
    got = []
    try:
        consumer.subscribe([there])
        deadline = time.monotonic() + 20
        while len(got) < 50 and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is not None and msg.error() is None:
                got.append((msg.offset(), msg.key(), msg.value(), msg.headers()))
    finally:
        consumer.close()
    assert got == [(i, b"k%d" % i, b"kp-%d" % i, [("h", b"x")]) for i in range(50)]

    rdk = Producer({"bootstrap.servers": bootstrap, "acks": "all", "compression.type": "gzip", "linger.ms": 5})
    for i in range(50):
        rdk.produce(back, key=b"k%d" % i, value=b"rdk-%d" % i, headers=[("h", b"y")])
    assert rdk.flush(15) == 0
    reader = KafkaConsumer(back, bootstrap_servers=bootstrap, group_id=unique("kp"), **GROUP)
    try:
        records = poll_until(reader, 50)
    finally:
        reader.close()
    assert [(r.offset, r.key, r.value, r.headers) for r in records] == \
        [(i, b"k%d" % i, b"rdk-%d" % i, [("h", b"y")]) for i in range(50)]
