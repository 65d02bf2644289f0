"""redrive(): dead letters of a share group back to a topic, once, at a bounded rate."""

from __future__ import annotations

import time

import pytest

from logbroker import Broker, Consumer, Producer, Queue
from logbroker.client.redrive import TokenBucket, default_group, redrive
from logbroker.errors import UnknownTopicOrPartitionError


@pytest.fixture
def broker(tmp_path):
    with Broker.open(str(tmp_path / "data"), housekeeping=False) as b:
        b.create_topic("t")
        yield b


def dead_letters(broker, count: int) -> None:
    """``count`` records of "t" rejected by share group "g" into "t.dlq"."""
    with Producer(broker, linger_ms=0) as producer:
        for i in range(count):
            producer.send("t", f"v{i}".encode(), key=f"k{i}".encode(), headers=[("trace", b"%d" % i)])
    with Queue(broker, group="g", topics=["t"], dead_letter_topic="t.dlq") as q:
        got = q.receive(timeout=1.0)
        assert len(got) == count
        q.reject(*got)


def records_of(broker, topic: str) -> list:
    with Consumer(broker, topics=[topic]) as consumer:
        return consumer.poll(timeout=0.5)


def test_redrive_moves_each_dead_letter_back_once_without_the_dlq_headers(broker):
    dead_letters(broker, 3)
    before = time.time() * 1000
    assert redrive(broker, "t.dlq", "t", rate=10_000) == 3
    moved = records_of(broker, "t")[3:]
    assert [(r.key, r.value, r.headers) for r in moved] == [
        (f"k{i}".encode(), f"v{i}".encode(), (("trace", b"%d" % i),)) for i in range(3)]
    assert all(r.timestamp >= before - 1 for r in moved)  # the time of the redrive
    assert redrive(broker, "t.dlq", "t", rate=10_000) == 0  # the first run completed: nothing twice
    assert len(records_of(broker, "t")) == 6
    with Queue(broker, group="g", topics=["t"]) as q:  # the share group gets them as new records
        again = q.receive(timeout=1.0)
        assert [(m.value, m.delivery_count) for m in again] == [(b"v0", 1), (b"v1", 1), (b"v2", 1)]


def test_a_second_redrive_continues_where_max_stopped_the_first(broker):
    dead_letters(broker, 5)
    assert redrive(broker, "t.dlq", "t", rate=10_000, max_records=2) == 2
    assert redrive(broker, "t.dlq", "t", rate=10_000) == 3
    assert redrive(broker, "t.dlq", "t", rate=10_000) == 0
    assert [r.value for r in records_of(broker, "t")[5:]] == [f"v{i}".encode() for i in range(5)]
    committed = broker.groups.fetch_offsets(default_group("t.dlq"))
    assert committed[("t.dlq", 0)][0] == 5


def test_an_own_group_keeps_its_own_position(broker):
    dead_letters(broker, 2)
    assert redrive(broker, "t.dlq", "t", rate=10_000, group="mine") == 2
    assert redrive(broker, "t.dlq", "t", rate=10_000, group="mine") == 0
    assert default_group("t.dlq") not in [g for g, _, _ in broker.groups.list_groups()]


def test_an_empty_dead_letter_topic_moves_nothing(broker):
    broker.create_topic("empty.dlq")
    assert redrive(broker, "empty.dlq", "t") == 0
    assert redrive(broker, "empty.dlq", "t", max_records=0) == 0


def test_unknown_topics_are_refused_before_anything_moves(broker):
    dead_letters(broker, 1)
    with pytest.raises(UnknownTopicOrPartitionError):
        redrive(broker, "t.dlq", "nowhere")
    with pytest.raises(UnknownTopicOrPartitionError):
        redrive(broker, "missing.dlq", "t")
    assert redrive(broker, "t.dlq", "t", rate=10_000) == 1


def test_the_rate_bounds_the_speed(broker):
    dead_letters(broker, 5)
    started = time.monotonic()
    assert redrive(broker, "t.dlq", "t", rate=20) == 5
    assert time.monotonic() - started >= 0.15  # 1 at once, 4 more at 20 per second


def test_token_bucket_waits_for_tokens_and_caps_the_burst():
    now = [0.0]
    slept = []

    def sleep(seconds):
        slept.append(seconds)
        now[0] += seconds

    bucket = TokenBucket(100, clock=lambda: now[0], sleep=sleep)
    assert bucket.capacity == 10
    assert bucket.take(50) == 1  # starts with one token
    assert bucket.take(50) == 1 and slept == [pytest.approx(0.01)]
    now[0] += 10.0  # a long pause saves up no more than the capacity
    assert bucket.take(50) == 10
    bucket.give_back(3)
    assert bucket.take(50) == 3
    with pytest.raises(ValueError):
        TokenBucket(0)
