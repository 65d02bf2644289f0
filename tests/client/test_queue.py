"""The embedded Queue over a real Broker: acquire, settle, lock expiry, dead letters, restarts.

Time-driven behaviour (visibility timeouts, release delays) runs on a ManualClock the broker and its
share-group service read, so no test sleeps through a timeout."""

from __future__ import annotations

import threading

import pytest

from logbroker import AcknowledgementError, Broker, Message, Producer, Queue
from logbroker.clock import ManualClock
from logbroker.errors import BrokerClosedError
from logbroker.groups.share_partition import INVALID_RECORD_STATE


@pytest.fixture
def clock():
    return ManualClock()


@pytest.fixture
def broker(tmp_path, clock):
    with Broker.open(str(tmp_path / "data"), clock=clock, housekeeping=False) as b:
        b.create_topic("t", partitions=1)
        yield b


def produce(broker, topic: str, values, *, partition: int | None = 0, key: bytes | None = None, headers=None) -> None:
    with Producer(broker, linger_ms=0) as producer:
        for value in values:
            producer.send(topic, value, key, partition=partition, headers=headers)


def read_all(broker, topic: str) -> list:
    from logbroker import Consumer

    with Consumer(broker, topics=[topic]) as consumer:
        return consumer.poll(timeout=0.5)


def values(messages) -> list[bytes]:
    return [m.value for m in messages]


def test_receive_returns_messages_and_ack_settles_them(broker):
    produce(broker, "t", [b"a", b"b", b"c"], key=b"k", headers={"h": b"1"})
    with Queue(broker, group="g", topics=["t"]) as q:
        got = q.receive(timeout=1.0)
        assert values(got) == [b"a", b"b", b"c"]
        first = got[0]
        assert isinstance(first, Message)
        assert (first.topic, first.partition, first.offset) == ("t", 0, 0)
        assert (first.key, first.headers) == (b"k", (("h", b"1"),))
        assert first.timestamp == broker.clock.time_ms() and first.timestamp_type == 0
        assert [m.delivery_count for m in got] == [1, 1, 1]
        assert q.receive(timeout=0) == []  # all held by this member
        q.ack(*got)
        assert q.receive(timeout=0) == []  # and now settled for good
    [part] = broker.shares.describe("g")["partitions"]
    assert (part["start_offset"], part["lag"], part["acquired"]) == (3, 0, 0)


def test_receive_honours_max_records_and_spans_partitions(broker):
    broker.create_topic("wide", partitions=3)
    for p in range(3):
        produce(broker, "wide", [f"{p}:{i}".encode() for i in range(4)], partition=p)
    with Queue(broker, group="g", topics=["wide"], max_records=5) as q:
        first = q.receive(timeout=0)
        assert len(first) == 5
        rest = q.receive(max_records=100, timeout=0)
        assert len(rest) == 7
        assert sorted(values(first + rest)) == sorted(f"{p}:{i}".encode() for p in range(3) for i in range(4))


def test_receive_waits_for_new_records_and_gives_up_after_the_timeout(broker):
    with Queue(broker, group="g", topics=["t"]) as q:
        assert q.receive(timeout=0.05) == []
        timer = threading.Timer(0.05, produce, (broker, "t", [b"late"]))
        timer.start()
        try:
            assert values(q.receive(timeout=2.0)) == [b"late"]
        finally:
            timer.join()


def test_receive_picks_up_partitions_added_later(broker):
    with Queue(broker, group="g", topics=["t"]) as q:
        broker.create_partitions("t", 2)
        produce(broker, "t", [b"new"], partition=1)
        assert [(m.partition, m.value) for m in q.receive(timeout=1.0)] == [(1, b"new")]


def test_released_message_comes_back_with_delivery_count_2(broker):
    produce(broker, "t", [b"a"])
    with Queue(broker, group="g", topics=["t"]) as q:
        [m] = q.receive()
        q.release(m)
        [again] = q.receive(timeout=1.0)
        assert (again.offset, again.value, again.delivery_count) == (0, b"a", 2)
        assert again.delivery_id != m.delivery_id
        q.ack(again)


def test_release_with_delay_keeps_the_message_away_until_the_delay_ends(broker, clock):
    produce(broker, "t", [b"a"])
    with Queue(broker, group="g", topics=["t"]) as q:
        [m] = q.receive()
        q.release(m, delay=10.0)
        assert q.receive(timeout=0) == []
        clock.advance(9_000)
        assert q.receive(timeout=0) == []
        clock.advance(1_000)
        [again] = q.receive(timeout=0.5)
        assert again.delivery_count == 2
        with pytest.raises(ValueError):
            q.release(again, delay=-1)


def test_rejected_message_never_comes_back(broker, clock):
    produce(broker, "t", [b"bad", b"good"])
    topics = broker.list_topics()
    with Queue(broker, group="g", topics=["t"]) as q:
        bad, good = q.receive()
        q.reject(bad)
        q.release(good)
        clock.advance(3_600_000)
        assert values(q.receive(timeout=0.2)) == [b"good"]
        assert q.receive(timeout=0) == []
    assert set(broker.list_topics()) - set(topics) <= {"__share_group_state"}  # no dead-letter topic made


def test_expired_visibility_timeout_redelivers_to_another_member_and_the_late_ack_fails(broker, clock):
    produce(broker, "t", [b"a", b"b"])
    slow = Queue(broker, group="g", topics=["t"], visibility_timeout=5.0)
    fast = Queue(broker, group="g", topics=["t"], visibility_timeout=5.0)
    try:
        held = slow.receive()
        assert fast.receive(timeout=0) == []
        slow.ack(held[1])
        clock.advance(5_001)
        [again] = fast.receive(timeout=0.5)
        assert (again.offset, again.delivery_count) == (0, 2)
        with pytest.raises(AcknowledgementError) as caught:
            slow.ack(held[0])
        assert caught.value.errors == {("t", 0): INVALID_RECORD_STATE}
        assert caught.value.messages == [held[0]]
        assert caught.value.error_code == INVALID_RECORD_STATE
        assert "another consumer" in str(caught.value)
        fast.ack(again)  # the current holder settles it
    finally:
        slow.close()
        fast.close()


def test_a_refused_message_does_not_block_the_others_of_its_partition(broker, clock):
    produce(broker, "t", [b"a", b"b", b"c"])
    with Queue(broker, group="g", topics=["t"], visibility_timeout=5.0) as q:
        [a] = q.receive(max_records=1)
        clock.advance(5_001)  # a's lock expires
        a2, b, c = q.receive(max_records=3, timeout=0.5)
        assert (a2.value, a2.delivery_count, b.value, c.value) == (b"a", 2, b"b", b"c")
        with pytest.raises(AcknowledgementError) as caught:
            q.ack(a, b, c)
        assert caught.value.messages == [a]
        assert q.receive(timeout=0) == []  # b and c acknowledged; a held again (second delivery)
    with Queue(broker, group="g", topics=["t"]) as q:
        assert [(m.value, m.delivery_count) for m in q.receive(timeout=0.5)] == [(b"a", 3)]


def test_extend_keeps_the_lock(broker, clock):
    produce(broker, "t", [b"a"])
    with Queue(broker, group="g", topics=["t"], visibility_timeout=5.0) as q, \
            Queue(broker, group="g", topics=["t"], visibility_timeout=5.0) as other:
        [m] = q.receive()
        clock.advance(4_000)
        q.extend(m, 10.0)
        clock.advance(6_000)  # 10 s after the receive: past the first deadline, within the extended one
        assert other.receive(timeout=0) == []
        q.ack(m)
        with pytest.raises(AcknowledgementError):
            q.extend(m, 1.0)  # settled: nothing to extend


def test_max_deliveries_dead_letters_the_record_exactly_once_with_its_headers(broker, clock):
    produce(broker, "t", [b"poison"], key=b"k", headers={"trace": b"x"})
    with Queue(broker, group="g", topics=["t"], visibility_timeout=5.0, max_deliveries=2,
               dead_letter_topic="t.dlq") as q:
        [m] = q.receive()
        q.release(m)
        [m2] = q.receive(timeout=0.5)
        assert m2.delivery_count == 2
        clock.advance(5_001)  # the last delivery allowed expires
        assert q.receive(timeout=0.1) == []
        clock.advance(60_000)
        assert q.receive(timeout=0.1) == []
    letters = read_all(broker, "t.dlq")
    assert len(letters) == 1
    [letter] = letters
    assert (letter.key, letter.value, letter.timestamp) == (b"k", b"poison", m.timestamp)
    headers = dict(letter.headers)
    assert headers == {"trace": b"x", "logbroker.dlq.group": b"g", "logbroker.dlq.topic": b"t",
                       "logbroker.dlq.partition": b"0", "logbroker.dlq.offset": b"0",
                       "logbroker.dlq.delivery.count": b"2", "logbroker.dlq.reason": b"delivery_count_limit",
                       "logbroker.dlq.topic.id": broker.topic("t").topic_id.encode()}


def test_reject_with_a_dead_letter_topic_copies_the_record(broker):
    produce(broker, "t", [b"a", b"b"])
    with Queue(broker, group="g", topics=["t"], dead_letter_topic="dlq") as q:
        a, b = q.receive()
        q.reject(b)
        q.ack(a)
    [letter] = read_all(broker, "dlq")
    assert letter.value == b"b"
    assert dict(letter.headers)["logbroker.dlq.reason"] == b"rejected"


def test_two_members_never_hold_the_same_record_and_together_get_each_once(broker):
    broker.create_topic("many", partitions=3)
    produce(broker, "many", [str(i).encode() for i in range(60)], partition=None)
    q1 = Queue(broker, group="g", topics=["many"])
    q2 = Queue(broker, group="g", topics=["many"])
    try:
        h1 = q1.receive(max_records=7, timeout=0)
        h2 = q2.receive(max_records=7, timeout=0)
        assert h1 and h2
        assert not {(m.partition, m.offset) for m in h1} & {(m.partition, m.offset) for m in h2}
        q1.ack(*h1)
        q2.ack(*h2)
        seen = values(h1 + h2)
        errors = []

        def work(q):
            try:
                while True:
                    got = q.receive(max_records=4, timeout=0.2)
                    if not got:
                        return
                    seen.extend(values(got))
                    q.ack(*got)
            except Exception as exc:  # noqa: BLE001 - reported by the assertion below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(q,)) for q in (q1, q2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert not errors
        assert sorted(seen, key=int) == [str(i).encode() for i in range(60)]
    finally:
        q1.close()
        q2.close()


def test_close_releases_held_records_at_once(broker):
    produce(broker, "t", [b"a", b"b"])
    q1 = Queue(broker, group="g", topics=["t"], visibility_timeout=3600)
    assert len(q1.receive()) == 2
    q1.close()
    q1.close()  # idempotent
    with pytest.raises(BrokerClosedError):
        q1.receive()
    with Queue(broker, group="g", topics=["t"]) as q2:
        assert [(m.value, m.delivery_count) for m in q2.receive(timeout=0)] == [(b"a", 2), (b"b", 2)]
    assert broker.shares.describe("g")["members"] == []


def test_messages_acks_processed_messages_and_releases_the_one_that_raised(broker):
    produce(broker, "t", [b"a", b"b", b"c"])
    processed = []
    with Queue(broker, group="g", topics=["t"]) as q:
        with pytest.raises(ValueError):
            for m in q.messages(timeout=0.5):
                if m.value == b"b":
                    raise ValueError("cannot handle b")
                processed.append(m.value)
        # a acked; b released; c, received but never handed out, released too
        assert [(m.value, m.delivery_count) for m in q.receive(timeout=0)] == [(b"b", 2), (b"c", 2)]
    assert processed == [b"a"]


def test_messages_buffers_acks_until_the_next_receive_and_stops_when_idle(broker):
    produce(broker, "t", [b"a", b"b"])
    with Queue(broker, group="g", topics=["t"]) as q:
        loop = q.messages(timeout=0.1)
        assert next(loop).value == b"a"
        assert next(loop).value == b"b"
        assert broker.shares.describe("g")["partitions"][0]["acquired"] == 2  # a's ack is still buffered
        assert list(loop) == []  # the ack went out before the next receive, then the loop idled out
        part = broker.shares.describe("g")["partitions"][0]
        assert part["acquired"] == 0 and part["lag"] == 0
    with Queue(broker, group="g", topics=["t"]) as again:
        assert again.receive(timeout=0) == []


def test_leaving_the_loop_releases_the_message_in_hand_unless_settled(broker):
    produce(broker, "t", [b"a", b"b", b"c"])
    with Queue(broker, group="g", topics=["t"]) as q:
        for m in q.messages(timeout=0.5):
            if m.value == b"a":
                q.reject(m)  # settled by the body: not acked again
                continue
            break  # at b: released with c
        assert [(m.value, m.delivery_count) for m in q.receive(timeout=0)] == [(b"b", 2), (b"c", 2)]


def test_messages_runs_until_close_without_a_timeout(broker):
    produce(broker, "t", [b"a", b"b"])
    q = Queue(broker, group="g", topics=["t"])
    got = []
    for m in q.messages():
        got.append(m.value)
        if len(got) == 2:
            q.close()
    assert got == [b"a", b"b"]


def test_a_restart_redelivers_unacknowledged_records_with_a_higher_count(tmp_path, clock):
    path = str(tmp_path / "data")
    with Broker.open(path, clock=clock, housekeeping=False) as broker:
        broker.create_topic("t")
        produce(broker, "t", [b"a", b"b"])
        q = Queue(broker, group="g", topics=["t"], visibility_timeout=3600)
        a, b = q.receive()
        q.ack(a)
        # the process "dies" holding b: the broker closes without the Queue closing
    with Broker.open(path, clock=clock, housekeeping=False) as broker:
        with Queue(broker, group="g", topics=["t"], visibility_timeout=3600) as q:
            [again] = q.receive(timeout=0.5)
            assert (again.value, again.delivery_count) == (b"b", 2)
            q.ack(again)
    with Broker.open(path, clock=clock, housekeeping=False) as broker:
        with Queue(broker, group="g", topics=["t"]) as q:
            assert q.receive(timeout=0.1) == []


def test_auto_offset_reset_latest_skips_what_was_there_and_earliest_reads_it(broker):
    produce(broker, "t", [b"old1", b"old2"])
    with Queue(broker, group="late", topics=["t"], auto_offset_reset="latest") as late, \
            Queue(broker, group="early", topics=["t"], auto_offset_reset="earliest") as early:
        assert late.receive(timeout=0) == []
        produce(broker, "t", [b"new"])
        assert values(late.receive(timeout=0.5)) == [b"new"]
        assert values(early.receive(timeout=0.5)) == [b"old1", b"old2", b"new"]


def test_offsets_compacted_away_are_skipped(broker):
    broker.create_topic("c", config={"cleanup.policy": "compact"})
    produce(broker, "c", [b"1", b"2", b"3"], key=b"a")
    produce(broker, "c", [b"only"], key=b"b")
    broker.log("c", 0).roll()
    broker.run_housekeeping(force=True)
    with Queue(broker, group="g", topics=["c"]) as q:
        got = q.receive(timeout=0.5)
        assert [(m.offset, m.value) for m in got] == [(2, b"3"), (3, b"only")]
        q.ack(*got)
        assert broker.shares.describe("g")["partitions"][0]["lag"] == 0


def test_a_queue_writes_the_group_settings_it_is_given(broker):
    with Queue(broker, group="g", topics=["t"], visibility_timeout=2.5, max_deliveries=3, dead_letter_topic="d"):
        config = broker.shares.config("g")
        assert (config.lock_duration_ms, config.delivery_count_limit, config.dead_letter_topic,
                config.auto_offset_reset) == (2500, 3, "d", "earliest")
    with Queue(broker, group="g", topics=["t"]):  # settings not given stay as they are
        assert broker.shares.config("g") == config
    with Queue(broker, group="g", topics=["t"], max_deliveries=4, dead_letter_topic=""):  # the last writer wins
        config = broker.shares.config("g")
        assert (config.delivery_count_limit, config.dead_letter_topic, config.lock_duration_ms) == (4, None, 2500)


def test_bad_arguments(broker):
    with pytest.raises(ValueError, match="not both"):  # bootstrap= is a RemoteQueue (test_remote_queue.py)
        Queue(broker, group="g", topics=["t"], bootstrap="127.0.0.1:9092")
    with pytest.raises(TypeError):
        Queue(group="g", topics=["t"])
    with pytest.raises(ValueError):
        Queue(broker, group="g", topics=[])
    with pytest.raises(ValueError):
        Queue(broker, group="g", topics=["t"], visibility_timeout=0)
    with pytest.raises(ValueError):
        Queue(broker, group="g", topics=["t"], auto_offset_reset="error")
    with Queue(broker, group="g", topics="t") as q:  # one topic as a string
        assert q.topics == ["t"]
        with pytest.raises(TypeError):
            q.ack(("t", 0, 0))
