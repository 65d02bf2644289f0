"""The network Queue (``Queue(bootstrap=...)``, a RemoteQueue over confluent-kafka's ShareConsumer)
against real ``logbroker serve`` children on 127.0.0.1.

The module's server runs with Kafka's defaults (share.auto.offset.reset latest): a RemoteQueue starts a
group at earliest itself, through IncrementalAlterConfigs, as the embedded Queue does.  Each test uses
its own topics and groups; every loop is bounded in rounds and in time.
"""

from __future__ import annotations

import threading
import time

import pytest

from interop.conftest import Serve, _stop_checked, unique
from logbroker import AcknowledgementError, Consumer, Message, Producer, Queue
from logbroker.client.remote_admin import RemoteAdmin
from logbroker.client.remote_queue import (RemoteQueue, UnsettledMessagesError,
                                           UnsupportedOperationError)
from logbroker.errors import BrokerClosedError, InvalidConfigError

GROUP_CONFIG, DEFAULT_CONFIG = 8, 5


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Serve(tmp_path_factory.mktemp("remote-queue") / "data").start()
    try:
        yield s
    finally:
        _stop_checked(s)
        assert "Traceback" not in s.log(), s.log()


@pytest.fixture
def queues():
    """Closes every queue a test registers, even when the test fails."""
    made: list = []
    yield made
    for q in reversed(made):
        try:
            q.close()
        except Exception:  # noqa: BLE001 - cleanup
            pass


def topic_with(bootstrap: str, values: list[bytes], partitions: int = 1, prefix: str = "rq") -> str:
    """A new topic holding ``values``, spread round-robin over its partitions."""
    topic = unique(prefix)
    with RemoteAdmin(bootstrap) as admin:
        admin.create_topic(topic, partitions)
    with Producer(bootstrap=bootstrap, linger_ms=1) as producer:
        futures = [producer.send(topic, v, partition=i % partitions) for i, v in enumerate(values)]
        producer.flush()
        for f in futures:
            f.result()
    return topic


def open_queue(server, queues: list, topic: str, group: str, **kwargs) -> RemoteQueue:
    q = Queue(bootstrap=server.bootstrap, group=group, topics=[topic], **kwargs)
    queues.append(q)
    return q


def receive_n(q, n: int, seconds: float = 20.0, **kwargs) -> list[Message]:
    """Receive (and ack, unless ``settle`` says otherwise) until ``n`` messages or ``seconds``."""
    settle = kwargs.pop("settle", "ack")
    got: list[Message] = []
    deadline = time.monotonic() + seconds
    rounds = 0
    while len(got) < n and time.monotonic() < deadline and rounds < 200:
        rounds += 1
        batch = q.receive(timeout=0.5, **kwargs)
        got += batch
        if batch and settle:
            getattr(q, settle)(*batch)
    return got


def group_configs(server, group: str) -> dict:
    with RemoteAdmin(server.bootstrap) as admin:
        return admin.group_configs(group)


def read_topic(bootstrap: str, topic: str, n: int, seconds: float = 10.0) -> list:
    records = []
    with Consumer(bootstrap=bootstrap, topics=[topic]) as consumer:
        deadline = time.monotonic() + seconds
        while len(records) < n and time.monotonic() < deadline:
            records += consumer.poll(timeout=0.2)
    return records


def test_bootstrap_gives_a_remote_queue_that_reads_what_was_there_and_acks(server, queues):
    topic = topic_with(server.bootstrap, [b"a", b"b", b"c"])
    group = unique("g")
    q = open_queue(server, queues, topic, group)
    assert type(q) is RemoteQueue and isinstance(q, Queue) and q.bootstrap == server.bootstrap
    # a new group starts at earliest, written as the group's own setting
    assert group_configs(server, group)["share.auto.offset.reset"] == ("earliest", GROUP_CONFIG)
    got = receive_n(q, 3)
    assert [(m.topic, m.partition, m.offset, m.value, m.delivery_count) for m in got] == [
        (topic, 0, i, v, 1) for i, v in enumerate([b"a", b"b", b"c"])]
    assert all(isinstance(m, Message) and m.timestamp > 0 and m.headers == () for m in got)
    assert q.receive(timeout=1.0) == []  # acked: never again
    q.close()
    q.close()  # idempotent
    with pytest.raises(BrokerClosedError):
        q.receive()
    again = open_queue(server, queues, topic, group)
    assert again.receive(timeout=1.5) == []  # acknowledged for the group, not just for that member


def test_released_message_comes_back_with_delivery_count_2(server, queues):
    topic = topic_with(server.bootstrap, [b"x"])
    q = open_queue(server, queues, topic, unique("g"))
    [m] = receive_n(q, 1, settle=None)
    q.release(m)
    [again] = receive_n(q, 1, settle=None)
    assert (again.offset, again.value, again.delivery_count) == (m.offset, b"x", 2)
    assert again.delivery_id != m.delivery_id
    q.ack(again)
    assert q.receive(timeout=1.0) == []


def test_reject_goes_to_the_dead_letter_topic_given_to_the_queue(server, queues):
    topic = topic_with(server.bootstrap, [b"poison", b"fine"])
    dlq = f"{topic}.dlq"
    group = unique("g")
    q = open_queue(server, queues, topic, group, dead_letter_topic=dlq, max_deliveries=3)
    configs = group_configs(server, group)
    assert configs["errors.deadletterqueue.topic.name"] == (dlq, GROUP_CONFIG)
    assert configs["share.delivery.count.limit"] == ("3", GROUP_CONFIG)
    poison, fine = receive_n(q, 2, settle=None)
    q.reject(poison)
    q.ack(fine)
    assert q.receive(timeout=1.0) == []
    [letter] = read_topic(server.bootstrap, dlq, 1)
    headers = dict(letter.headers)
    assert letter.value == b"poison" and headers["logbroker.dlq.reason"] == b"rejected"
    assert headers["logbroker.dlq.group"] == group.encode() and headers["logbroker.dlq.offset"] == b"0"


def test_expired_visibility_timeout_redelivers_to_another_queue_and_the_late_ack_fails(server, queues):
    topic = topic_with(server.bootstrap, [b"slow"])
    group = unique("g")
    a = open_queue(server, queues, topic, group, visibility_timeout=1.0)
    assert group_configs(server, group)["share.record.lock.duration.ms"] == ("1000", GROUP_CONFIG)
    [m] = receive_n(a, 1, settle=None)
    b = open_queue(server, queues, topic, group)  # no settings given: the group's stay
    [again] = receive_n(b, 1, seconds=10, settle=None)  # after the 1 s lock expired
    assert (again.offset, again.delivery_count) == (m.offset, 2)
    with pytest.raises(AcknowledgementError) as info:
        a.ack(m)
    assert info.value.errors == {(topic, 0): 121} and info.value.messages == [m] and info.value.error_code == 121
    with pytest.raises(AcknowledgementError):
        a.ack(m)  # settled (refused) already: still not this member's
    b.ack(again)
    assert a.receive(timeout=0.5) == [] and b.receive(timeout=0.5) == []


def test_every_message_must_be_settled_before_the_next_receive(server, queues):
    topic = topic_with(server.bootstrap, [b"1", b"2", b"3"])
    q = open_queue(server, queues, topic, unique("g"))
    first = receive_n(q, 1, settle=None)
    with pytest.raises(UnsettledMessagesError, match="settled") as info:
        q.receive(timeout=0.1)
    assert info.value.messages == first
    with pytest.raises(UnsupportedOperationError, match="release delay"):
        q.release(*first, delay=1.0)
    with pytest.raises(UnsupportedOperationError, match="RENEW"):
        q.extend(first[0], 5.0)
    with pytest.raises(ValueError):
        q.release(*first, delay=-1)
    with pytest.raises(TypeError):
        q.ack((topic, 0, 0))
    q.ack(*first)
    rest = receive_n(q, 3 - len(first))
    assert sorted(m.value for m in first + rest) == [b"1", b"2", b"3"]


def test_max_records_and_a_smaller_receive_keep_the_rest_for_the_next(server, queues):
    topic = topic_with(server.bootstrap, [b"%d" % i for i in range(10)])
    q = open_queue(server, queues, topic, unique("g"), max_records=4)
    first = receive_n(q, 1, settle=None)
    assert 1 <= len(first) <= 4
    q.ack(*first)
    two = q.receive(max_records=2, timeout=5)
    assert 1 <= len(two) <= 2
    q.ack(*two)
    rest = receive_n(q, 10 - len(first) - len(two))
    assert sorted(int(m.value) for m in first + two + rest) == list(range(10))


def test_messages_acks_what_the_body_finishes_and_releases_what_raised(server, queues):
    topic = topic_with(server.bootstrap, [b"%d" % i for i in range(5)])
    q = open_queue(server, queues, topic, unique("g"))
    seen = []
    with pytest.raises(RuntimeError, match="boom"):
        for message in q.messages(timeout=5):
            seen.append(message)
            if message.value == b"2":
                raise RuntimeError("boom")
    assert [m.value for m in seen] == [b"0", b"1", b"2"]
    again = receive_n(q, 3)  # 2 released (count 2); 3 and 4 were received but never yielded: released too
    assert sorted((m.value, m.delivery_count) for m in again) == [(b"2", 2), (b"3", 2), (b"4", 2)]
    # a loop whose body settles by itself, ending when idle
    more = topic_with(server.bootstrap, [b"a", b"b"])
    q2 = open_queue(server, queues, more, unique("g"))
    values = []
    for message in q2.messages(timeout=2.0):
        values.append(message.value)
        if message.value == b"a":
            q2.reject(message)
    assert values == [b"a", b"b"]
    assert q2.receive(timeout=1.0) == []


def test_close_from_another_thread_ends_a_loop_without_timeout(server, queues):
    topic = topic_with(server.bootstrap, [b"only"])
    q = open_queue(server, queues, topic, unique("g"))
    got = []
    timer = threading.Timer(2.0, q.close)
    timer.start()
    started = time.monotonic()
    try:
        for message in q.messages():
            got.append(message.value)
    finally:
        timer.cancel()
    assert got == [b"only"] and time.monotonic() - started < 15


def test_two_queues_share_the_records_each_once(server, queues):
    topic = topic_with(server.bootstrap, [b"%d" % i for i in range(40)], partitions=2)
    group = unique("g")
    a = open_queue(server, queues, topic, group, max_records=5)
    b = open_queue(server, queues, topic, group, max_records=5)
    seen: dict[tuple[int, int], list[str]] = {}
    deadline = time.monotonic() + 30
    rounds = 0
    while len(seen) < 40 and time.monotonic() < deadline and rounds < 300:
        rounds += 1
        for name, q in (("a", a), ("b", b)):
            batch = q.receive(timeout=0.2)
            for m in batch:
                seen.setdefault((m.partition, m.offset), []).append(name)
            q.ack(*batch)
    assert len(seen) == 40
    assert all(len(names) == 1 for names in seen.values())
    assert {names[0] for names in seen.values()} == {"a", "b"}


def test_settings_are_the_groups_and_persist(server, queues, tmp_path):
    topic = topic_with(server.bootstrap, [b"r"])
    group = unique("g")
    open_queue(server, queues, topic, group, visibility_timeout=7, max_deliveries=4, dead_letter_topic="dead",
               auto_offset_reset="latest")
    expected = {"share.record.lock.duration.ms": ("7000", GROUP_CONFIG),
                "share.delivery.count.limit": ("4", GROUP_CONFIG),
                "errors.deadletterqueue.topic.name": ("dead", GROUP_CONFIG),
                "share.auto.offset.reset": ("latest", GROUP_CONFIG)}
    assert group_configs(server, group) == expected
    q = open_queue(server, queues, topic, group)  # no settings: the group keeps its own (latest stays latest)
    assert group_configs(server, group) == expected
    assert q.receive(timeout=1.5) == []  # latest: what was there is skipped
    open_queue(server, queues, topic, group, dead_letter_topic="")
    assert group_configs(server, group)["errors.deadletterqueue.topic.name"] == ("", DEFAULT_CONFIG)
    # durable: a restarted server has them
    own = Serve(tmp_path / "data").start()
    try:
        t2 = topic_with(own.bootstrap, [b"s"])
        open_queue(own, queues, t2, "kept", max_deliveries=2).close()
        own_port = own.port
        _stop_checked(own)
        own = Serve(tmp_path / "data", port=own_port).start()
        configs = group_configs(own, "kept")
        assert configs["share.delivery.count.limit"] == ("2", GROUP_CONFIG)
        assert configs["share.auto.offset.reset"] == ("earliest", GROUP_CONFIG)
    finally:
        for q in queues:
            q.close()
        _stop_checked(own)


def test_bad_arguments_and_a_consumer_group_id(server, queues):
    with pytest.raises(ValueError, match="member id"):
        Queue(bootstrap=server.bootstrap, group="g", topics=["t"], member_id="m")
    with pytest.raises(ValueError):
        Queue(bootstrap=server.bootstrap, group="g", topics=[])
    with pytest.raises(ValueError):
        Queue(bootstrap=server.bootstrap, group="g", topics=["t"], visibility_timeout=0)
    with pytest.raises(ValueError):
        Queue(bootstrap=server.bootstrap, group="g", topics=["t"], auto_offset_reset="error")
    topic = topic_with(server.bootstrap, [b"c"])
    with pytest.raises(InvalidConfigError, match="max_deliveries|delivery count"):
        Queue(bootstrap=server.bootstrap, group=unique("g"), topics=[topic], max_deliveries=1000)
    classic = unique("classic")
    with Consumer(bootstrap=server.bootstrap, group=classic, topics=[topic], enable_auto_commit=False) as consumer:
        deadline = time.monotonic() + 20
        while not consumer.poll(timeout=0.2) and time.monotonic() < deadline:
            pass
        consumer.commit()
    with pytest.raises(InvalidConfigError, match="consumer group"):
        Queue(bootstrap=server.bootstrap, group=classic, topics=[topic])


def test_redrive_over_the_network_moves_dead_letters_back_once(server, queues):
    from logbroker.client.redrive import redrive

    topic = topic_with(server.bootstrap, [b"p1", b"p2"])
    dlq = f"{topic}.dlq"
    group = unique("g")
    q = open_queue(server, queues, topic, group, dead_letter_topic=dlq)
    letters = receive_n(q, 2, settle="reject")
    assert sorted(m.value for m in letters) == [b"p1", b"p2"]
    assert redrive(bootstrap=server.bootstrap, dlq_topic=dlq, to_topic=topic, rate=1000) == 2
    assert redrive(None, dlq, topic, bootstrap=server.bootstrap) == 0  # the redrive group remembers
    back = receive_n(q, 2)
    assert sorted((m.value, m.offset) for m in back) == [(b"p1", 2), (b"p2", 3)]
    assert all(not k.startswith("logbroker.dlq.") for m in back for k, _ in m.headers)
    with pytest.raises(ValueError):
        redrive(dlq_topic=dlq, to_topic=topic)  # neither a Broker nor bootstrap
    with pytest.raises(TypeError):
        redrive(bootstrap=server.bootstrap, dlq_topic=dlq)
