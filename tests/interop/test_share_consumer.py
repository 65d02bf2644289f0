"""confluent-kafka's ShareConsumer (KIP-932, librdkafka 2.16) against a real ``logbroker serve`` child.

SHARE_GROUPS.md §4: two share consumers of one group split a topic's records; explicit
acknowledgements (ACCEPT, RELEASE, REJECT) piggyback on the next poll or go out with commit_sync;
released records come back with delivery count 2, rejected ones never; a record whose lock expires is
redelivered; a consumer that closes releases what it holds at once.  The servers start with
``--share-auto-offset-reset earliest`` (records are produced before the consumers join); the lock
expiry test has its own server with a 2 s lock.  Every loop is bounded in polls and in time.
"""

from __future__ import annotations

import time

import pytest

from confluent_kafka import AcknowledgeType, Producer, ShareConsumer
from confluent_kafka.admin import AdminClient, NewTopic

from .conftest import Serve, _stop_checked, unique

ACCEPT, RELEASE, REJECT = AcknowledgeType.ACCEPT, AcknowledgeType.RELEASE, AcknowledgeType.REJECT
SHARE = {"share.acknowledgement.mode": "explicit", "fetch.wait.max.ms": 200, "socket.timeout.ms": 10000,
         "log_level": 4}
POLL_S = 0.5


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Serve(tmp_path_factory.mktemp("share") / "data", "--share-auto-offset-reset", "earliest").start()
    try:
        yield s
    finally:
        _stop_checked(s)
        assert "Traceback" not in s.log(), s.log()


def make_topic(bootstrap: str, partitions: int, count: int) -> tuple[str, dict]:
    """A new topic holding ``count`` records spread over its partitions; {(partition, offset): value}."""
    topic = unique("share")
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(topic, partitions, 1)]).values():
        future.result(10)
    reports = {}
    errors = []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(err)
        else:
            reports[(msg.partition(), msg.offset())] = msg.value()

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    for i in range(count):
        producer.produce(topic, value=b"value-%d" % i, partition=i % partitions, on_delivery=on_delivery)
        producer.poll(0)
    assert producer.flush(20) == 0 and not errors and len(reports) == count
    return topic, reports


def consumer(bootstrap: str, group: str, topic: str, **config) -> ShareConsumer:
    c = ShareConsumer({"bootstrap.servers": bootstrap, "group.id": group, **SHARE, **config})
    c.subscribe([topic])
    return c


def poll(c: ShareConsumer) -> list:
    messages = []
    for m in c.poll(POLL_S):
        assert m.error() is None, m.error()
        messages.append(m)
    return messages


def close_all(*consumers) -> None:
    for c in consumers:
        try:
            c.close()
        except Exception:  # a consumer closed already, or one left with unacknowledged records
            pass


def test_two_consumers_split_a_topic_and_every_record_is_delivered_once(server):
    topic, produced = make_topic(server.bootstrap, 2, 60)
    group = unique("share-group")
    a = consumer(server.bootstrap, group, topic, **{"max.poll.records": 7})
    b = consumer(server.bootstrap, group, topic, **{"max.poll.records": 7})
    seen: dict[tuple[int, int], list] = {}
    try:
        deadline = time.monotonic() + 60
        rounds = 0
        while len(seen) < len(produced) and time.monotonic() < deadline and rounds < 400:
            rounds += 1
            for name, c in (("a", a), ("b", b)):
                for m in poll(c):
                    seen.setdefault((m.partition(), m.offset()), []).append((name, m.value(), m.delivery_count()))
                    c.acknowledge(m, ACCEPT)
        for c in (a, b):
            c.commit_sync(10)
        assert set(seen) == set(produced)
        assert all(len(v) == 1 for v in seen.values()), {k: v for k, v in seen.items() if len(v) > 1}
        assert all(v[0][1] == produced[k] and v[0][2] == 1 for k, v in seen.items())
        assert {v[0][0] for v in seen.values()} == {"a", "b"}, "one consumer got everything"
        # everything is accepted: nothing more comes
        extra = []
        end = time.monotonic() + 2
        while time.monotonic() < end:
            extra += poll(a) + poll(b)
        assert extra == []
    finally:
        close_all(a, b)


def test_released_records_come_back_and_rejected_ones_never(server):
    topic, produced = make_topic(server.bootstrap, 2, 30)
    group = unique("share-group")
    a = consumer(server.bootstrap, group, topic)
    b = consumer(server.bootstrap, group, topic)
    deliveries: dict[tuple[int, int], list[int]] = {}
    accepted, rejected = set(), set()
    try:
        deadline = time.monotonic() + 60
        rounds = 0
        while len(accepted) + len(rejected) < len(produced) and time.monotonic() < deadline and rounds < 400:
            rounds += 1
            for c in (a, b):
                for m in poll(c):
                    key = (m.partition(), m.offset())
                    assert key not in accepted and key not in rejected, f"{key} delivered after it was done"
                    deliveries.setdefault(key, []).append(m.delivery_count())
                    if m.offset() % 3 == 0 and len(deliveries[key]) == 1:
                        c.acknowledge(m, RELEASE)  # comes back
                    elif m.offset() % 3 == 1:
                        c.acknowledge(m, REJECT)  # never again
                        rejected.add(key)
                    else:
                        c.acknowledge(m, ACCEPT)
                        accepted.add(key)
        for c in (a, b):
            c.commit_sync(10)
        assert accepted | rejected == set(produced)
        released = {k for k in produced if k[1] % 3 == 0}
        assert {k: v for k, v in deliveries.items() if k in released} == {k: [1, 2] for k in released}
        assert all(v == [1] for k, v in deliveries.items() if k not in released)
        extra = []
        end = time.monotonic() + 2
        while time.monotonic() < end:
            extra += poll(a) + poll(b)
        assert extra == []
    finally:
        close_all(a, b)


def test_commit_sync_reports_per_partition_and_implicit_mode_accepts_on_commit(server):
    topic, produced = make_topic(server.bootstrap, 1, 5)
    group = unique("share-group")
    c = consumer(server.bootstrap, group, topic, **{"share.acknowledgement.mode": "implicit"})
    got = []
    try:
        deadline = time.monotonic() + 30
        while len(got) < 5 and time.monotonic() < deadline:
            got += [(m.offset(), m.value()) for m in poll(c)]
        assert sorted(got) == [(o, produced[(0, o)]) for o in range(5)]
        result = c.commit_sync(10)
        assert len(result) == 1 and all(error is None for error in result.values()), result
        (tp,) = result
        assert (tp.topic, tp.partition) == (topic, 0)
    finally:
        close_all(c)
    # a new member of the group sees nothing: everything was accepted
    again = consumer(server.bootstrap, group, topic)
    try:
        extra = []
        end = time.monotonic() + 2.5
        while time.monotonic() < end:
            extra += poll(again)
        assert extra == []
    finally:
        close_all(again)


def test_closing_a_consumer_releases_its_records_at_once(server):
    """The lock is 30 s: the other consumer gets the records long before that, with delivery count 2."""
    topic, produced = make_topic(server.bootstrap, 1, 4)
    group = unique("share-group")
    a = consumer(server.bootstrap, group, topic)
    b = consumer(server.bootstrap, group, topic)
    try:
        held = []
        deadline = time.monotonic() + 30
        while len(held) < 4 and time.monotonic() < deadline:
            held += poll(a)
        assert sorted(m.offset() for m in held) == [0, 1, 2, 3]
        for m in held:
            if m.offset() == 0:
                a.acknowledge(m, ACCEPT)  # sent by close(); the others are simply not acknowledged
        started = time.monotonic()
        a.close()
        redelivered = {}
        deadline = time.monotonic() + 15
        while len(redelivered) < 3 and time.monotonic() < deadline:
            for m in poll(b):
                redelivered[m.offset()] = (m.value(), m.delivery_count())
                b.acknowledge(m, ACCEPT)
        assert redelivered == {o: (produced[(0, o)], 2) for o in (1, 2, 3)}
        assert time.monotonic() - started < 15  # well before the 30 s lock would have expired
        b.commit_sync(10)
    finally:
        close_all(a, b)


def test_an_expired_lock_redelivers_the_record(tmp_path):
    server = Serve(tmp_path / "data", "--share-auto-offset-reset", "earliest",
                   "--share-record-lock-duration-ms", "2000").start()
    a = b = None
    try:
        topic, produced = make_topic(server.bootstrap, 1, 3)
        group = unique("share-group")
        a = consumer(server.bootstrap, group, topic)
        b = consumer(server.bootstrap, group, topic)
        held = []
        deadline = time.monotonic() + 30
        while len(held) < 3 and time.monotonic() < deadline:
            held += poll(a)
        assert [(m.offset(), m.delivery_count()) for m in held] == [(0, 1), (1, 1), (2, 1)]
        got_at = time.monotonic()
        # a sits on its records (no acknowledge, no poll): after 2 s they are b's
        redelivered = {}
        deadline = time.monotonic() + 20
        while len(redelivered) < 3 and time.monotonic() < deadline:
            for m in poll(b):
                redelivered[m.offset()] = (m.value(), m.delivery_count(), time.monotonic() - got_at)
                b.acknowledge(m, ACCEPT)
        assert {o: v[:2] for o, v in redelivered.items()} == {o: (produced[(0, o)], 2) for o in (0, 1, 2)}
        assert all(1.5 <= v[2] < 15 for v in redelivered.values()), redelivered
        assert all(error is None for error in b.commit_sync(10).values())
        # a's late acknowledgements are refused: the records are no longer its own
        for m in held:
            a.acknowledge(m, ACCEPT)
        results = a.commit_sync(10)
        assert results and all(error is not None for error in results.values()), results
    finally:
        close_all(*(c for c in (a, b) if c is not None))
        _stop_checked(server)
        assert "Traceback" not in server.log(), server.log()
