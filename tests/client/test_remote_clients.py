"""The network Producer / Consumer / RemoteAdmin (confluent-kafka) against librdkafka's mock cluster.

The mock is a real Kafka-protocol server on 127.0.0.1 inside this process (``kafka_mock.py``); what
it does not serve (topic admin APIs, timestamp look-ups, DescribeGroups, ...) is tested against
``logbroker serve`` in tests/cli/test_bootstrap_serve.py.
"""

from __future__ import annotations

import time

import pytest

from client.kafka_mock import MockCluster
from logbroker import Consumer, LogbrokerError, Producer, Record
from logbroker.client.consumer import CommitFailedError
from logbroker.client.producer import RecordMetadata, partition_for_key
from logbroker.client.remote_admin import RemoteAdmin
from logbroker.client.remote_common import RemoteKafkaError, to_logbroker_error
from logbroker.client.remote_consumer import RemoteConsumer
from logbroker.client.remote_producer import RemoteProducer
from logbroker.errors import (BrokerClosedError, OffsetOutOfRangeError, RecordTooLargeError, RequestTimedOutError,
                              TopicAlreadyExistsError, UnknownTopicOrPartitionError)

# the mock's coordinator waits up to max.poll.interval.ms for members to rejoin: keep it short
FAST_GROUP = {"session_timeout_ms": 2000, "max_poll_interval_ms": 2000}


@pytest.fixture
def mock():
    cluster = MockCluster()
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def clients():
    """Closes every client a test registers, before the mock cluster goes away."""
    made = []
    yield made
    for client in reversed(made):
        try:
            client.close()
        except Exception:  # noqa: BLE001 - cleanup
            pass


def poll_until(consumers, predicate, timeout: float = 20.0) -> list[Record]:
    """Poll every consumer in turn (one thread) until ``predicate(records so far)`` holds."""
    records: list[Record] = []
    deadline = time.monotonic() + timeout
    while not predicate(records):
        assert time.monotonic() < deadline, f"timed out; got {len(records)} records"
        for consumer in consumers:
            records += consumer.poll(timeout=0.05)
    return records


def produce(bootstrap: str, topic: str, values, **send) -> list[RecordMetadata]:
    with Producer(bootstrap=bootstrap, linger_ms=1) as producer:
        futures = [producer.send(topic, v, **send) for v in values]
        producer.flush()
        return [f.result() for f in futures]


# ---- construction ------------------------------------------------------------------------------


def test_bootstrap_returns_the_network_clients(mock, clients):
    mock.create_topic("t")
    producer = Producer(bootstrap=mock.bootstrap)
    consumer = Consumer(bootstrap=mock.bootstrap, topics=["t"])
    clients += [producer, consumer]
    assert type(producer) is RemoteProducer and isinstance(producer, Producer)
    assert type(consumer) is RemoteConsumer and isinstance(consumer, Consumer)
    assert producer.bootstrap == consumer.bootstrap == mock.bootstrap
    assert consumer.assignment() == {("t", 0)}
    direct = RemoteProducer(bootstrap=mock.bootstrap)  # the subclass can be named directly too
    clients.append(direct)
    assert type(direct) is RemoteProducer


def test_broker_and_bootstrap_are_exclusive(broker):
    with pytest.raises(ValueError, match="not both"):
        Producer(broker, bootstrap="127.0.0.1:9")
    with pytest.raises(ValueError, match="not both"):
        Consumer(broker, bootstrap="127.0.0.1:9")
    with pytest.raises(TypeError, match="bootstrap"):
        Producer()
    with pytest.raises(TypeError, match="bootstrap"):
        Consumer()


def test_arguments_are_checked_as_embedded():
    with pytest.raises(ValueError, match="acks"):
        Producer(bootstrap="127.0.0.1:9", acks=2)
    with pytest.raises(ValueError, match="idempotent"):
        Producer(bootstrap="127.0.0.1:9", idempotent=True, acks=1)
    with pytest.raises(LogbrokerError, match="compression"):
        Producer(bootstrap="127.0.0.1:9", compression="brotli")
    with pytest.raises(ValueError, match="auto_offset_reset"):
        Consumer(bootstrap="127.0.0.1:9", auto_offset_reset="middle")
    with pytest.raises(ValueError, match="assignment strategy"):
        Consumer(bootstrap="127.0.0.1:9", group="g", partition_assignment_strategy=["sticky-ish"])
    with pytest.raises(ValueError, match="bootstrap"):
        Producer(bootstrap="")


# ---- produce and consume -----------------------------------------------------------------------


def test_round_trip_keys_headers_timestamps(mock, clients):
    mock.create_topic("orders", 3)
    with Producer(bootstrap=mock.bootstrap, compression="gzip") as producer:
        sent = [("user-%d" % (i % 5)).encode() for i in range(30)]
        futures = [producer.send("orders", b"v%d" % i, key=key, headers={"n": str(i).encode(), "empty": None},
                                 timestamp=1_700_000_000_000 + i) for i, key in enumerate(sent)]
        keyless = producer.send("orders", "text value", partition=1, headers=[("h", "x")], timestamp=5)
        nothing = producer.send("orders", None, key="tombstone", timestamp=6)
        metas = [f.result() for f in futures]
        assert keyless.result().partition == 1 and keyless.done()
        assert nothing.exception() is None
    # keyed records land where the embedded producer puts them (murmur3), offsets count up
    for key, meta in zip(sent, metas):
        assert meta.topic == "orders" and meta.partition == partition_for_key(key, 3)
    for p in range(3):
        offsets = [m.offset for m in metas if m.partition == p]
        assert offsets == list(range(len(offsets)))

    consumer = Consumer(bootstrap=mock.bootstrap, topics=["orders"])
    clients.append(consumer)
    records = poll_until([consumer], lambda got: len(got) >= 32)
    assert len(records) == 32 and all(isinstance(r, Record) for r in records)
    by_value = {r.value: r for r in records}
    first = by_value[b"v0"]
    assert first == Record("orders", partition_for_key(b"user-0", 3), 0, 1_700_000_000_000, 0, b"user-0", b"v0",
                           (("n", b"0"), ("empty", None)))
    text = by_value[b"text value"]
    assert (text.partition, text.timestamp, text.headers, text.key) == (1, 5, (("h", b"x"),), None)
    tombstone = by_value[None]
    assert tombstone.key == b"tombstone" and tombstone.timestamp == 6 and tombstone.headers == ()
    # per partition in offset order
    for p in range(3):
        offsets = [r.offset for r in records if r.partition == p]
        assert offsets == sorted(offsets)
    assert consumer.at_end()
    assert consumer.poll(timeout=0.2) == []


def test_poll_returns_at_most_max_records_and_iterates(mock, clients):
    mock.create_topic("t")
    produce(mock.bootstrap, "t", [b"%d" % i for i in range(20)])
    consumer = Consumer(bootstrap=mock.bootstrap, topics=["t"], max_poll_records=7)
    clients.append(consumer)
    first = poll_until([consumer], lambda got: got)
    assert 1 <= len(first) <= 7
    more = consumer.poll(timeout=1.0, max_records=3)
    assert len(more) <= 3
    seen = [r.value for r in first + more]
    for record in consumer:
        seen.append(record.value)
        if len(seen) == 20:
            break
    assert seen == [b"%d" % i for i in range(20)]


def test_flush_close_and_send_after_close(mock):
    mock.create_topic("t")
    producer = Producer(bootstrap=mock.bootstrap, linger_ms=50)
    futures = [producer.send("t", b"x") for _ in range(5)]
    producer.flush()
    assert all(f.done() for f in futures)
    assert [f.result().offset for f in futures] == [0, 1, 2, 3, 4]
    producer.close()
    producer.close()  # twice is fine
    with pytest.raises(BrokerClosedError):
        producer.send("t", b"late")


def test_waiting_on_a_future_drives_delivery(mock, clients):
    """No flush, no background poll: result() itself serves librdkafka's delivery reports."""
    mock.create_topic("t")
    producer = Producer(bootstrap=mock.bootstrap, linger_ms=20)
    clients.append(producer)
    future = producer.send("t", b"x")
    assert future.result(timeout=10).offset == 0


def test_idempotent_producer(mock, clients):
    mock.create_topic("t", 2)
    producer = Producer(bootstrap=mock.bootstrap, idempotent=True, acks="all")
    clients.append(producer)
    metas = [producer.send("t", b"%d" % i, key=b"k").result() for i in range(5)]
    assert [m.offset for m in metas] == [0, 1, 2, 3, 4]
    assert producer.producer_id == -1  # librdkafka keeps it to itself


def test_seek_position_and_offsets(mock, clients):
    mock.create_topic("t", 2)
    produce(mock.bootstrap, "t", [b"%d" % i for i in range(10)], partition=0)
    consumer = Consumer(bootstrap=mock.bootstrap)
    clients.append(consumer)
    consumer.assign([("t", 0), ("t", 1)])
    assert consumer.assignment() == {("t", 0), ("t", 1)}
    assert consumer.position("t", 0) == 0  # earliest
    consumer.seek("t", 0, 6)
    assert consumer.position("t", 0) == 6
    records = poll_until([consumer], lambda got: len(got) >= 4)
    assert [r.offset for r in records] == [6, 7, 8, 9]
    assert consumer.position("t", 0) == 10 and consumer.at_end()
    consumer.seek_to_beginning(("t", 0))
    assert consumer.position("t", 0) == 0
    assert [r.offset for r in poll_until([consumer], lambda got: got)][0] == 0
    consumer.seek_to_end()
    assert consumer.position("t", 0) == 10 and consumer.position("t", 1) == 0
    assert consumer.end_offsets() == {("t", 0): 10, ("t", 1): 0}
    assert consumer.offsets_for_times({("t", 0): -2, ("t", 1): -1}) == {("t", 0): (0, -1), ("t", 1): (0, -1)}
    with pytest.raises(ValueError, match="not assigned"):
        consumer.seek("t", 5, 0)


def test_latest_starts_at_the_end_and_pause_resume(mock, clients):
    mock.create_topic("t")
    produce(mock.bootstrap, "t", [b"old"])
    consumer = Consumer(bootstrap=mock.bootstrap, topics=["t"], auto_offset_reset="latest")
    clients.append(consumer)
    assert consumer.position("t", 0) == 1
    consumer.seek("t", 0, 1)
    produce(mock.bootstrap, "t", [b"new"])
    consumer.pause(("t", 0))
    assert consumer.poll(timeout=0.5) == []
    consumer.resume(("t", 0))
    assert [r.value for r in poll_until([consumer], lambda got: got)] == [b"new"]


# ---- groups ------------------------------------------------------------------------------------


def test_two_members_split_the_partitions_then_one_takes_over(mock, clients):
    mock.create_topic("t", 4)
    events = []
    a = Consumer(bootstrap=mock.bootstrap, group="g", topics=["t"], enable_auto_commit=False,
                 **FAST_GROUP, on_assign=lambda c, ps: events.append(("a+", sorted(ps))))
    b = Consumer(bootstrap=mock.bootstrap, group="g", pattern=r"t|other", enable_auto_commit=False,
                 **FAST_GROUP, on_assign=lambda c, ps: events.append(("b+", sorted(ps))),
                 on_revoke=lambda c, ps: events.append(("b-", sorted(ps))))
    clients += [a, b]

    def split(_records):
        return len(a.assignment()) == 2 and len(b.assignment()) == 2

    poll_until([a, b], split)
    assert a.assignment() | b.assignment() == {("t", p) for p in range(4)}
    assert not a.assignment() & b.assignment()
    # everything is read once across the two members
    with Producer(bootstrap=mock.bootstrap) as producer:
        metas = [producer.send("t", b"%d" % i, key=b"key-%d" % i).result() for i in range(40)]
    assert {m.partition for m in metas} == {0, 1, 2, 3}
    got = []
    deadline = time.monotonic() + 20
    while len(got) < 40 and time.monotonic() < deadline:
        for consumer in (a, b):
            got += consumer.poll(timeout=0.05)
    assert sorted(int(r.value) for r in got) == list(range(40))
    a.commit()
    b.commit()
    a.close()
    poll_until([b], lambda _r: len(b.assignment()) == 4)
    assert ("b+", sorted(b.assignment())) in events or any(e[0] == "b+" for e in events)
    # b starts a's old partitions at a's commits: nothing more to read
    assert b.poll(timeout=0.5) == []
    assert b.committed() == {tp: b.position(*tp) for tp in b.assignment()}


def test_commit_committed_and_resume_in_a_new_member(mock, clients):
    mock.create_topic("t")
    produce(mock.bootstrap, "t", [b"%d" % i for i in range(10)])
    consumer = Consumer(bootstrap=mock.bootstrap, group="g", topics=["t"], enable_auto_commit=False,
                        **FAST_GROUP)
    clients.append(consumer)
    records = poll_until([consumer], lambda got: len(got) >= 4)
    assert consumer.committed() == {("t", 0): None}
    last = records[-1].offset
    consumer.commit()
    assert consumer.committed() == {("t", 0): last + 1}
    consumer.commit({("t", 0): 3})
    assert consumer.committed([("t", 0)]) == {("t", 0): 3}
    future = consumer.commit({("t", 0): 4}, asynchronous=True)
    assert future.result(timeout=10) == {("t", 0): 4}
    consumer.close()
    again = Consumer(bootstrap=mock.bootstrap, group="g", topics=["t"], enable_auto_commit=False,
                     **FAST_GROUP)
    clients.append(again)
    assert poll_until([again], lambda got: got)[0].offset == 4


def test_auto_commit_on_close(mock, clients):
    mock.create_topic("t")
    produce(mock.bootstrap, "t", [b"a", b"b", b"c"])
    consumer = Consumer(bootstrap=mock.bootstrap, group="g", topics=["t"], auto_commit_interval_ms=60000,
                        **FAST_GROUP)
    poll_until([consumer], lambda got: len(got) >= 3)
    consumer.close()
    admin = RemoteAdmin(mock.bootstrap)
    clients.append(admin)
    # (the mock answers an OffsetFetch for all partitions with nothing: ask for the partition)
    assert admin.fetch_offsets("g", [("t", 0)]) == {("t", 0): (3, -1, "")}


def test_on_assign_may_seek_and_ask_committed(mock, clients):
    mock.create_topic("t", 2)
    produce(mock.bootstrap, "t", [b"%d" % i for i in range(6)], partition=1)
    seen = []

    def on_assign(consumer, partitions):
        seen.append(consumer.committed(partitions))
        for tp in partitions:
            consumer.seek(tp.topic, tp.partition, 4 if tp.partition == 1 else 0)

    consumer = Consumer(bootstrap=mock.bootstrap, group="g2", topics=["t"], on_assign=on_assign,
                        enable_auto_commit=False, **FAST_GROUP)
    clients.append(consumer)
    records = poll_until([consumer], lambda got: len(got) >= 2)
    assert [(r.partition, r.offset) for r in records] == [(1, 4), (1, 5)]
    assert seen == [{("t", 0): None, ("t", 1): None}]


def test_errors_carry_kafka_codes(mock, clients):
    mock.create_topic("t", 2)
    producer = Producer(bootstrap=mock.bootstrap)
    clients.append(producer)
    with pytest.raises(RecordTooLargeError) as too_large:
        producer.send("t", b"x" * 2_000_000)
    assert too_large.value.error_code == 10
    with pytest.raises(LogbrokerError, match="partitions 0..1"):
        producer.send("t", b"x", partition=7)
    with pytest.raises(UnknownTopicOrPartitionError) as unknown:
        Consumer(bootstrap=mock.bootstrap, topics=["missing"])  # consumers do not create topics
    assert unknown.value.error_code == 3
    plain = Consumer(bootstrap=mock.bootstrap, topics=["t"])
    clients.append(plain)
    with pytest.raises(LogbrokerError, match="group="):
        plain.commit()
    with pytest.raises(ValueError, match="pattern"):
        plain.subscribe(pattern="t.*")
    strict = Consumer(bootstrap=mock.bootstrap, group="strict", topics=["t"], auto_offset_reset="error")
    clients.append(strict)
    with pytest.raises(OffsetOutOfRangeError) as no_offset:  # nothing committed: poll says so
        poll_until([strict], lambda _r: False)
    assert no_offset.value.error_code == 1


def test_unreachable_broker_fails_within_the_timeout():
    started = time.monotonic()
    with pytest.raises(LogbrokerError) as failed:
        Producer(bootstrap="127.0.0.1:1", request_timeout_ms=500).send("t", b"x")
    assert time.monotonic() - started < 10
    assert failed.value.error_code != 0


def test_commit_refused_by_the_group_is_commit_failed(mock, clients):
    """What the coordinator refuses (here: ILLEGAL_GENERATION, from a stand-in for librdkafka)
    raises CommitFailedError with the Kafka code, as the embedded consumer does."""
    from confluent_kafka import KafkaError, KafkaException

    mock.create_topic("t")
    consumer = Consumer(bootstrap=mock.bootstrap, group="g", topics=["t"], enable_auto_commit=False)
    clients.append(consumer)

    class Refusing:
        def __init__(self, real):
            self.real = real

        def commit(self, **_kwargs):
            raise KafkaException(KafkaError(22))

        def __getattr__(self, name):
            return getattr(self.real, name)

    consumer._ck = Refusing(consumer._ck)
    with pytest.raises(CommitFailedError) as refused:
        consumer.commit({("t", 0): 1})
    assert refused.value.error_code == 22 and refused.value.errors == {("t", 0): 22}
    consumer._ck = consumer._ck.real


def test_librdkafka_errors_map_to_logbroker_errors():
    from confluent_kafka import KafkaError, KafkaException

    exists = to_logbroker_error(KafkaError(36), "create")
    assert isinstance(exists, TopicAlreadyExistsError) and exists.error_code == 36
    assert exists.kafka_error.code() == 36 and str(exists).startswith("create: ")
    timed_out = to_logbroker_error(KafkaException(KafkaError(KafkaError._TIMED_OUT)))
    assert isinstance(timed_out, RequestTimedOutError) and timed_out.error_code == 7 and timed_out.retriable
    unknown_partition = to_logbroker_error(KafkaError(KafkaError._UNKNOWN_PARTITION))
    assert isinstance(unknown_partition, UnknownTopicOrPartitionError)
    other = to_logbroker_error(KafkaError(68))  # NON_EMPTY_GROUP: no logbroker class
    assert type(other) is RemoteKafkaError and other.error_code == 68 and isinstance(other, LogbrokerError)


# ---- admin -------------------------------------------------------------------------------------


def test_remote_admin_on_the_mock(mock, clients):
    mock.create_topic("t", 3)
    produce(mock.bootstrap, "t", [b"a", b"b"], partition=2)
    admin = RemoteAdmin(mock.bootstrap, request_timeout_ms=5000)
    clients.append(admin)
    assert "t" in admin.list_topics()
    assert admin.partition_count("t") == 3
    assert admin.list_offsets("t", 2, -2) == (0, -1)
    assert admin.list_offsets("t", 2, -1) == (2, -1)
    with pytest.raises(UnknownTopicOrPartitionError):
        admin.partition_count("missing")
    assert admin.commit_offsets("g", {("t", 2): 1}) == {("t", 2): 0}
    assert admin.fetch_offsets("g", [("t", 2), ("t", 0)]) == {("t", 2): (1, -1, "")}
    assert admin._timestamps_at({("t", 2): 1}).keys() == {("t", 2)}  # what lag_ms is computed from
    # what the mock does not serve fails with librdkafka's _UNSUPPORTED_FEATURE code
    with pytest.raises(RemoteKafkaError) as unsupported:
        admin.create_topic("new", 1)
    assert unsupported.value.error_code == -165
