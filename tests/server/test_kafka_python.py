"""kafka-python (3.0) against a real ``logbroker serve`` child: producer, consumer, groups, admin.

Every test uses its own topic and group names on one shared server process (module fixture).
"""

from __future__ import annotations

import threading
import time

import pytest

import kafka
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewPartitions, NewTopic

# Short heartbeats and fetch waits so rebalances finish quickly.  Polls are long (3 s): kafka-python
# 3.0.12 can lose a JoinGroup/SyncGroup round that completes after poll() gave up waiting for it (its
# heartbeat then stays disabled and the member is evicted), so a poll should outlast a rebalance.
FAST_GROUP = {"heartbeat_interval_ms": 100, "session_timeout_ms": 6000, "enable_auto_commit": False,
              "auto_offset_reset": "earliest", "fetch_max_wait_ms": 100}
POLL_MS = 3000


def consume_all(bootstrap: str, topic: str, expected: int, timeout: float = 15.0, **options) -> list:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest", **options)
    try:
        consumer.subscribe([topic]) if options.get("group_id") else consumer.assign(
            [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or {0})])
        got = []
        deadline = time.monotonic() + timeout
        while len(got) < expected and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=POLL_MS).values():
                got.extend(records)
        return got
    finally:
        consumer.close()


@pytest.mark.parametrize("acks", [0, 1, "all"])
def test_produce_with_each_acks_setting_and_consume_from_the_beginning(served, acks):
    topic = f"acks-{acks}"
    producer = KafkaProducer(bootstrap_servers=served.bootstrap, acks=acks, linger_ms=5,
                             enable_idempotence=acks == "all")
    futures = [producer.send(topic, key=b"k%d" % i, value=b"value-%d" % i, headers=[("h", b"%d" % i)])
               for i in range(30)]
    producer.flush(timeout=15)
    metadata = [f.get(timeout=10) for f in futures]
    producer.close(timeout=10)
    if acks != 0:
        assert [m.offset for m in metadata] == list(range(30))
    got = consume_all(served.bootstrap, topic, 30)
    assert [r.value for r in got] == [b"value-%d" % i for i in range(30)]
    assert [r.key for r in got] == [b"k%d" % i for i in range(30)]
    assert got[7].headers == [("h", b"7")]


def test_compressed_batches_are_stored_and_served(served):
    import kafka.codec

    codecs = [c for c in ("gzip", "snappy", "lz4", "zstd") if getattr(kafka.codec, f"has_{c}")()]
    for codec in codecs:  # whichever compression libraries this environment has
        producer = KafkaProducer(bootstrap_servers=served.bootstrap, compression_type=codec)
        topic = f"compressed-{codec}"
        for i in range(20):
            producer.send(topic, b"%s-%d" % (codec.encode(), i))
        producer.flush(timeout=15)
        producer.close(timeout=10)
        got = consume_all(served.bootstrap, topic, 20)
        assert [r.value for r in got] == [b"%s-%d" % (codec.encode(), i) for i in range(20)]


class Member(threading.Thread):
    """One group member polling in its own thread; records what it consumed and its assignment."""

    def __init__(self, bootstrap: str, group: str, topic: str, name: str):
        super().__init__(name=name, daemon=True)
        self.consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, client_id=name,
                                      **FAST_GROUP)
        self.values: list[bytes] = []
        self.assignment: set = set()
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                batches = self.consumer.poll(timeout_ms=POLL_MS)
                for records in batches.values():
                    self.values.extend(r.value for r in records)
                if batches:
                    self.consumer.commit()
                self.assignment = {tp.partition for tp in self.consumer.assignment()}
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            self.consumer.close()

    def finish(self) -> None:
        self.stop.set()
        self.join(15)
        assert not self.is_alive()
        assert self.error is None, self.error


def wait_until(predicate, timeout: float = 20.0, message: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message}")
        time.sleep(0.05)


def test_group_of_two_splits_partitions_and_rebalances_when_one_leaves(served):
    topic, group = "group-split", "split"
    admin = KafkaAdminClient(bootstrap_servers=served.bootstrap)
    admin.create_topics([NewTopic(topic, 4, 1)])
    producer = KafkaProducer(bootstrap_servers=served.bootstrap)
    for i in range(40):
        producer.send(topic, b"first-%d" % i, partition=i % 4)
    producer.flush(timeout=15)
    a = Member(served.bootstrap, group, topic, "member-a")
    b = Member(served.bootstrap, group, topic, "member-b")
    a.start()
    b.start()
    try:
        wait_until(lambda: len(a.assignment) == 2 and len(b.assignment) == 2 and not a.assignment & b.assignment,
                   message="two members with two partitions each")
        wait_until(lambda: len(a.values) + len(b.values) >= 40, message="the first 40 records")
        assert {"group_id": group, "protocol_type": "consumer"} in admin.list_groups()
        described = admin.describe_groups([group])[group]
        assert described["group_state"] == "Stable" and described["protocol_type"] == "consumer"
        assert {m["client_id"] for m in described["members"]} == {"member-a", "member-b"}
        assigned = [p for m in described["members"] for a in m["member_assignment"]["assigned_partitions"]
                    for p in a["partitions"]]
        assert sorted(assigned) == [0, 1, 2, 3]
        b.finish()  # LeaveGroup: a takes over every partition
        wait_until(lambda: a.assignment == {0, 1, 2, 3}, message="the survivor owning all four partitions")
        for i in range(8):
            producer.send(topic, b"second-%d" % i, partition=i % 4)
        producer.flush(timeout=15)
        wait_until(lambda: sum(v.startswith(b"second") for v in a.values) == 8, message="the next 8 records")
    finally:
        for member in (a, b):
            if member.is_alive():
                member.finish()
        producer.close(timeout=10)
    consumed = sorted(a.values + b.values)
    assert sorted(set(consumed)) == sorted([b"first-%d" % i for i in range(40)] + [b"second-%d" % i for i in range(8)])
    offsets = admin.list_group_offsets(group)[group]
    assert sum(o.offset for o in offsets.values()) == 48
    admin.close()


def test_commit_and_resume(served):
    topic, group = "resume", "resumers"
    producer = KafkaProducer(bootstrap_servers=served.bootstrap)
    for i in range(10):
        producer.send(topic, b"%d" % i)
    producer.flush(timeout=15)
    producer.close(timeout=10)
    first = KafkaConsumer(topic, bootstrap_servers=served.bootstrap, group_id=group, max_poll_records=4, **FAST_GROUP)
    got = []
    deadline = time.monotonic() + 15
    while not got and time.monotonic() < deadline:
        for records in first.poll(timeout_ms=POLL_MS).values():
            got.extend(records)
    assert [r.value for r in got] == [b"0", b"1", b"2", b"3"]
    first.commit()
    tp = TopicPartition(topic, 0)
    assert first.committed(tp) == 4
    first.close()
    rest = consume_all(served.bootstrap, topic, 6, group_id=group, **{k: v for k, v in FAST_GROUP.items()
                                                                      if k != "auto_offset_reset"})
    assert [r.value for r in rest] == [b"%d" % i for i in range(4, 10)]


def test_admin_topics_configs_and_groups(served):
    admin = KafkaAdminClient(bootstrap_servers=served.bootstrap)
    try:
        admin.create_topics([NewTopic("admin-a", 2, 1, topic_configs={"retention.ms": "60000"}),
                             NewTopic("admin-b", 1, 1)])
        assert {"admin-a", "admin-b"} <= set(admin.list_topics())
        with pytest.raises(Exception) as raised:
            admin.create_topics([NewTopic("admin-a", 2, 1)])
        assert "TopicAlreadyExists" in type(raised.value).__name__ or "36" in str(raised.value)
        admin.create_partitions({"admin-a": NewPartitions(total_count=5)})
        consumer = KafkaConsumer(bootstrap_servers=served.bootstrap)
        assert consumer.partitions_for_topic("admin-a") == {0, 1, 2, 3, 4}
        consumer.close()
        from kafka.admin import ConfigResource, ConfigResourceType

        result = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "admin-a")])
        assert result["topic"]["admin-a"]["retention.ms"]["value"] == "60000"
        assert result["topic"]["admin-a"]["retention.ms"]["config_source"] == "DYNAMIC_TOPIC_CONFIG"
        admin.delete_topics(["admin-b"])
        wait_until(lambda: "admin-b" not in set(admin.list_topics()), message="admin-b to go away")

        group = "admin-group"
        consumer = KafkaConsumer("admin-a", bootstrap_servers=served.bootstrap, group_id=group, **FAST_GROUP)
        consumer.poll(timeout_ms=500)
        consumer.commit({TopicPartition("admin-a", 0): kafka.OffsetAndMetadata(0, "", -1)})
        consumer.close()
        assert group in {g["group_id"] for g in admin.list_groups()}
        assert admin.describe_groups([group])[group]["group_state"] == "Empty"
        assert admin.list_group_offsets(group)[group] == {TopicPartition("admin-a", 0): kafka.OffsetAndMetadata(0, "", -1)}
        assert admin.delete_groups([group]) == {group: "OK"}
        assert group not in {g["group_id"] for g in admin.list_groups()}
    finally:
        admin.close()


def test_a_real_client_still_works_after_garbage_on_other_connections(served):
    from .support import WireClient
    from .test_wire import BAD_INPUTS

    for name, data in sorted(BAD_INPUTS.items()):
        with WireClient(served.port) as offender:
            offender.send_raw(data)
            assert offender.closed_by_server(), name
    producer = KafkaProducer(bootstrap_servers=served.bootstrap, acks="all")
    producer.send("after-garbage", b"still here").get(timeout=10)
    producer.close(timeout=10)
    assert [r.value for r in consume_all(served.bootstrap, "after-garbage", 1)] == [b"still here"]
    assert "closing connection from" in served.stderr()
