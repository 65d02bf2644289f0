"""The share-group service over real files: durable state in ``__share_group_state``, restarts, dead letters
copied exactly once (also when a restart finds them half done), membership for ShareGroupHeartbeat,
lock expiry, lag, compaction of the state log."""

from __future__ import annotations

import threading
import time

import pytest

from logbroker import Broker
from logbroker.broker.shares import (ACCEPT, RELEASE, REJECT, SHARE_STATE_TOPIC, ShareGroupService,
                                     dead_letter_headers)
from logbroker.clock import ManualClock
from logbroker.errors import InvalidConfigError, InvalidRequestError, InvalidTopicError
from logbroker.records.batch import encode_batch_columns

P = [("t", 0)]


def produce(broker, n, topic="t", partition=0, start=0):
    values = [b"v%d" % i for i in range(start, start + n)]
    broker.produce(topic, partition, encode_batch_columns(None, values, None, [broker.clock.time_ms()] * n))


def dead_letters(broker, topic="dlq"):
    if topic not in broker.list_topics():
        return []
    return list(broker.iter_records(topic, 0))


@pytest.fixture
def clock():
    return ManualClock()


@pytest.fixture
def broker(tmp_path, clock):
    b = Broker.open(tmp_path / "d", clock=clock, housekeeping=False)
    b.create_topic("t", 1)
    yield b
    b.close()


def reopen(broker, clock):
    path = broker.data_dir
    broker.close()
    return Broker.open(path, clock=clock, housekeeping=False)


def offsets(acquisitions):
    return [a.offset for pa in acquisitions for a in pa.acquired]


def test_acquired_records_come_back_after_a_restart_with_their_delivery_count(broker, clock):
    produce(broker, 5)
    s = broker.shares
    s.configure("g", auto_offset_reset="earliest")
    got = s.acquire("g", "m1", P, 3)
    assert offsets(got) == [0, 1, 2]
    assert s.acknowledge("g", "m1", {("t", 0): [(0, got[0].acquired[0].delivery_id, ACCEPT)]}) == {("t", 0): 0}
    broker = reopen(broker, clock)
    again = broker.shares.acquire("g", "m2", P, 10)
    assert [(a.offset, a.delivery_count) for a in again[0].acquired] == [(1, 2), (2, 2), (3, 1), (4, 1)]
    broker.close()


def test_latest_starts_at_the_log_end_and_the_start_survives_a_restart(broker, clock):
    produce(broker, 3)
    s = broker.shares
    assert s.acquire("g", "m", P, 10) == []  # latest by default: nothing produced before first use
    produce(broker, 2, start=3)
    broker = reopen(broker, clock)
    assert offsets(broker.shares.acquire("g", "m", P, 10)) == [3, 4]
    broker.close()


def test_reject_copies_to_the_dead_letter_topic_once_with_headers(broker, clock):
    broker.produce("t", 0, encode_batch_columns([b"k"], [b"poison"], [[("h", b"1")]], [123]))
    s = broker.shares
    s.configure("g", auto_offset_reset="earliest", dead_letter_topic="dlq")
    a = s.acquire("g", "m", P, 1)[0].acquired[0]
    assert s.acknowledge("g", "m", {("t", 0): [(a.offset, a.delivery_id, REJECT)]}) == {("t", 0): 0}
    [letter] = dead_letters(broker)
    assert (letter.key, letter.value, letter.timestamp) == (b"k", b"poison", 123)
    assert dict(letter.headers) == {"h": b"1", "logbroker.dlq.group": b"g", "logbroker.dlq.topic": b"t",
                                    "logbroker.dlq.partition": b"0", "logbroker.dlq.offset": b"0",
                                    "logbroker.dlq.delivery.count": b"1", "logbroker.dlq.reason": b"rejected",
                                    "logbroker.dlq.topic.id": broker.topic("t").topic_id.encode()}
    assert s.acquire("g", "m", P, 1) == []
    broker = reopen(broker, clock)
    assert broker.shares.acquire("g", "m", P, 1) == []
    assert len(dead_letters(broker)) == 1
    broker.close()


def test_exhausted_deliveries_go_to_the_dead_letter_topic(broker, clock):
    produce(broker, 1)
    s = broker.shares
    s.configure("g", auto_offset_reset="earliest", dead_letter_topic="dlq", delivery_count_limit=2,
                lock_duration_ms=1000)
    a = s.acquire("g", "m", P, 1)[0].acquired[0]
    assert s.acknowledge("g", "m", {("t", 0): [(a.offset, None, RELEASE)]}) == {("t", 0): 0}
    b = s.acquire("g", "m", P, 1)[0].acquired[0]
    assert b.delivery_count == 2
    clock.advance(1000)  # the lock expires at the limit: archived and dead-lettered by the timer
    s.tick()
    assert s.acquire("g", "m", P, 1) == []
    [letter] = dead_letters(broker)
    assert dict(letter.headers)["logbroker.dlq.reason"] == b"delivery_count_limit"
    assert dict(letter.headers)["logbroker.dlq.delivery.count"] == b"2"


def _half_done_dead_letter(broker):
    """A reject whose ARCHIVING state is durable but whose copy was never made (a crash in between)."""
    s = broker.shares
    s.configure("g", auto_offset_reset="earliest", dead_letter_topic="dlq")
    a = s.acquire("g", "m", P, 1)[0].acquired[0]
    with s._lock:
        sp = s._partitions[("g", "t", 0)]
        result = sp.reject(clock_now(broker), "m", a.offset, a.delivery_id)
        assert [d.offset for d in sp.pending_dead_letters()] == [0]
        s._wait_durable(s._append_locked({("g", "t", 0)}))
    return result.dead_letters[0]


def clock_now(broker):
    return broker.clock.time_ms()


def test_a_restart_copies_a_pending_dead_letter_exactly_once(broker, clock):
    produce(broker, 1)
    _half_done_dead_letter(broker)
    assert dead_letters(broker) == []
    broker = reopen(broker, clock)
    assert broker.shares.acquire("g", "m", P, 1) == []
    assert [r.value for r in dead_letters(broker)] == [b"v0"]
    broker = reopen(broker, clock)
    broker.shares.list_groups()
    assert len(dead_letters(broker)) == 1
    broker.close()


def test_a_restart_does_not_copy_a_dead_letter_twice_when_the_copy_was_made(broker, clock):
    produce(broker, 1)
    letter = _half_done_dead_letter(broker)
    broker.create_topic("dlq", 1)  # the copy was made, the ARCHIVED state was not written
    broker.produce("dlq", 0, encode_batch_columns([None], [b"v0"], [dead_letter_headers("g", "t", 0, letter)], [1]))
    broker = reopen(broker, clock)
    assert broker.shares.acquire("g", "m", P, 1) == []
    assert len(dead_letters(broker)) == 1
    assert broker.shares.describe("g")["partitions"][0]["start_offset"] == 1
    broker.close()


def test_an_expired_lock_lets_another_member_take_the_record_and_fences_the_late_ack(broker, clock):
    produce(broker, 1)
    s = broker.shares
    s.configure("g", auto_offset_reset="earliest", lock_duration_ms=500)
    first = s.acquire("g", "m1", P, 1)[0].acquired[0]
    assert s.acquire("g", "m2", P, 1) == []
    clock.advance(500)
    second = s.acquire("g", "m2", P, 1)[0].acquired[0]
    assert second.delivery_count == 2
    assert s.acknowledge("g", "m1", {("t", 0): [(0, first.delivery_id, ACCEPT)]}) == {("t", 0): 121}
    assert s.acknowledge("g", "m1", {("t", 0): [(0, None, ACCEPT)]}) == {("t", 0): 121}
    assert s.extend("g", "m2", "t", 0, 0, second.delivery_id, 10_000) == 0
    clock.advance(600)
    assert s.acknowledge("g", "m2", {("t", 0): [(0, second.delivery_id, ACCEPT)]}) == {("t", 0): 0}


def test_acknowledgements_of_a_partition_are_all_or_nothing(broker):
    produce(broker, 3)
    s = broker.shares
    s.configure("g", auto_offset_reset="earliest")
    s.acquire("g", "m", P, 2)
    assert s.acknowledge("g", "m", {("t", 0): [(0, None, ACCEPT), (2, None, ACCEPT)]}) == {("t", 0): 121}
    assert s.acknowledge("g", "m", {("t", 0): [(0, None, ACCEPT), (0, None, ACCEPT)]}) == {("t", 0): 42}
    assert s.acknowledge("g", "m", {("t", 0): [(0, None, ACCEPT), (1, None, ACCEPT)]}) == {("t", 0): 0}


def test_release_with_a_delay(broker, clock):
    produce(broker, 1)
    s = broker.shares
    s.configure("g", auto_offset_reset="earliest")
    s.acquire("g", "m", P, 1)
    s.acknowledge("g", "m", {("t", 0): [(0, None, RELEASE)]}, delay_ms=2000)
    assert s.acquire("g", "m", P, 1) == []
    clock.advance(2000)
    assert offsets(s.acquire("g", "m", P, 1)) == [0]


def test_describe_counts_states_lag_and_the_oldest_available_age(broker, clock):
    produce(broker, 6)
    s = broker.shares
    s.configure("g", auto_offset_reset="earliest")
    s.join("g", "m", ["t"])
    s.acquire("g", "m", P, 3)
    s.acknowledge("g", "m", {("t", 0): [(1, None, ACCEPT), (2, None, RELEASE)]})
    clock.advance(700)
    d = s.describe("g")
    assert d["members"][0]["member_id"] == "m" and d["members"][0]["topics"] == ["t"]
    [p] = d["partitions"]
    assert (p["start_offset"], p["log_end_offset"], p["acquired"], p["acknowledged"], p["available"]) == (0, 6, 1, 1, 4)
    assert p["lag"] == 5 and p["oldest_available_offset"] == 2 and p["oldest_available_age_ms"] == 700
    assert p["delivery_counts"] == {1: 2}
    assert s.list_groups() == ["g"]
    with pytest.raises(InvalidRequestError):
        s.describe("nope")


def test_heartbeat_epochs_assignments_and_errors(broker, clock):
    broker.create_topic("u", 3)
    s = broker.shares
    join = s.heartbeat("g", "m1", 0, ["u", "missing"])
    assert join.error_code == 0 and join.member_epoch >= 1 and join.heartbeat_interval_ms > 0
    assert join.assignment == {"u": [0, 1, 2]}
    beat = s.heartbeat("g", "m1", join.member_epoch, None)
    assert (beat.error_code, beat.member_epoch) == (0, join.member_epoch)
    assert s.heartbeat("g", "ghost", 3, None).error_code == 25
    assert s.heartbeat("g", "m1", join.member_epoch + 5, None).error_code == 110
    assert s.heartbeat("g", "m1", 0, []).error_code == 42
    assert s.heartbeat("g", "", 0, ["u"]).error_code == 42
    broker.create_topic("missing", 1)
    moved = s.heartbeat("g", "m1", join.member_epoch, None)
    assert moved.assignment == {"u": [0, 1, 2], "missing": [0]} and moved.member_epoch > join.member_epoch
    clock.advance(46_000)  # no heartbeat for longer than the session timeout
    assert s.heartbeat("g", "m1", moved.member_epoch, None).error_code == 25
    assert s.heartbeat("g", "m2", 0, ["u"]).error_code == 0
    assert s.heartbeat("g", "m2", -1, None).member_epoch == -1


def test_a_consumer_group_id_is_not_a_share_group(broker):
    broker.groups.join_group("classic", "", None, "consumer", [("range", b"")], 10_000, 10_000,
                             require_known_member_id=False)
    assert broker.shares.heartbeat("classic", "m", 0, ["t"]).error_code == 69


def test_settings_are_checked_and_durable(broker, clock):
    s = broker.shares
    with pytest.raises(InvalidConfigError):
        s.configure("g", delivery_count_limit=0)
    with pytest.raises(InvalidConfigError):
        s.configure("g", auto_offset_reset="sometimes")
    with pytest.raises(InvalidConfigError):
        s.configure("g", dead_letter_topic="__consumer_offsets")
    with pytest.raises(InvalidTopicError):
        s.configure("g", dead_letter_topic="../etc")
    s.configure("g", lock_duration_ms=1234, dead_letter_topic="dlq")
    s.configure("g", delivery_count_limit=7)
    broker = reopen(broker, clock)
    config = broker.shares.config("g")
    assert (config.lock_duration_ms, config.delivery_count_limit, config.dead_letter_topic) == (1234, 7, "dlq")
    broker.shares.configure("g", dead_letter_topic=None)
    assert broker.shares.config("g").dead_letter_topic is None
    broker.close()


def test_users_cannot_write_the_state_log(broker):
    broker.shares.configure("g")
    with pytest.raises(InvalidTopicError):
        broker.produce(SHARE_STATE_TOPIC, 0, encode_batch_columns(None, [b"x"], None, [1]))
    with pytest.raises(InvalidTopicError):
        broker.delete_topic(SHARE_STATE_TOPIC)


def test_a_recreated_topic_starts_a_fresh_share_partition(broker, clock):
    produce(broker, 2)
    s = broker.shares
    s.configure("g", auto_offset_reset="earliest")
    s.acquire("g", "m", P, 2)
    s.acknowledge("g", "m", {("t", 0): [(0, None, ACCEPT), (1, None, ACCEPT)]})
    broker.delete_topic("t")
    broker.create_topic("t", 1)
    produce(broker, 1)
    assert offsets(s.acquire("g", "m", P, 5)) == [0]
    broker = reopen(broker, clock)
    assert offsets(broker.shares.acquire("g", "m2", P, 5)) == [0]  # still in flight: back with count 2
    broker.close()


def test_the_compacted_state_log_replays_to_the_same_state(broker, clock):
    produce(broker, 200)
    s = broker.shares
    s.configure("g", auto_offset_reset="earliest")
    for _ in range(20):
        got = s.acquire("g", "m", P, 7)
        acks = [(a.offset, a.delivery_id, ACCEPT if a.offset % 3 else RELEASE) for a in got[0].acquired]
        assert s.acknowledge("g", "m", {("t", 0): acks}) == {("t", 0): 0}
    before = s._partitions[("g", "t", 0)].durable_state()
    broker.run_housekeeping(force=True)
    broker = reopen(broker, clock)
    assert broker.shares.describe("g")["partitions"][0]["start_offset"] == before.start_offset
    assert broker.shares._partitions[("g", "t", 0)].durable_state() == before
    broker.close()


def test_wait_for_records_wakes_on_new_data(tmp_path):
    with Broker.open(tmp_path / "d", housekeeping=False) as broker:
        broker.create_topic("t", 1)
        s = broker.shares
        assert s.acquire("g", "m", P, 1) == []
        timer = threading.Timer(0.2, produce, (broker, 1))
        timer.start()
        started = time.monotonic()
        got = []
        while not got and time.monotonic() - started < 5:
            s.wait_for_records(5.0)
            got = s.acquire("g", "m", P, 1)
        timer.join()
        assert offsets(got) == [0] and time.monotonic() - started < 4


def test_service_is_one_per_broker(broker):
    assert isinstance(broker.shares, ShareGroupService) and broker.shares is broker.shares


def test_settings_not_set_follow_the_service_defaults_of_the_moment(broker, clock):
    import dataclasses

    s = broker.shares
    s.heartbeat("g", "m", 0, ["t"])  # a group made by its first member: nothing set
    s.configure("g", delivery_count_limit=2)
    s.default_config = dataclasses.replace(s.default_config, lock_duration_ms=999, auto_offset_reset="earliest")
    config = s.config("g")
    assert (config.lock_duration_ms, config.auto_offset_reset, config.delivery_count_limit) == (999, "earliest", 2)
    broker = reopen(broker, clock)
    assert broker.shares.config("g").lock_duration_ms == 30000 and broker.shares.config("g").delivery_count_limit == 2
    broker.close()


def test_release_member_on_some_partitions_only(broker):
    broker.create_topic("u", 2)
    for p in (0, 1):
        produce(broker, 2, topic="u", partition=p)
    s = broker.shares
    s.configure("g", auto_offset_reset="earliest")
    assert len(offsets(s.acquire("g", "m", [("u", 0), ("u", 1)], 10))) == 4
    s.release_member("g", "m", [("u", 1)])
    assert [(pa.partition, [a.offset for a in pa.acquired]) for pa in s.acquire("g", "x", [("u", 0), ("u", 1)], 10)] \
        == [(1, [0, 1])]


def test_unset_settings_follow_the_defaults_again(broker, clock):
    s = broker.shares
    s.configure("g", lock_duration_ms=1234, delivery_count_limit=3)
    assert s.configure("g", unset=("lock_duration_ms",)).lock_duration_ms == 30000
    broker = reopen(broker, clock)
    config = broker.shares.config("g")
    assert (config.lock_duration_ms, config.delivery_count_limit) == (30000, 3)
    with pytest.raises(InvalidConfigError):
        broker.shares.configure("g", unset=("colour",))
    broker.close()


def test_a_dead_letter_of_an_earlier_topic_of_the_same_name_does_not_count_as_the_copy(broker, clock):
    produce(broker, 1)
    old_id = broker.topic("t").topic_id
    broker.delete_topic("t")
    broker.create_topic("t", 1)
    produce(broker, 1)
    letter = _half_done_dead_letter(broker)
    broker.create_topic("dlq", 1)  # a copy of the old topic's record at the same coordinates
    broker.produce("dlq", 0, encode_batch_columns(
        [None], [b"old"], [dead_letter_headers("g", "t", 0, letter, old_id)], [1]))
    broker = reopen(broker, clock)
    broker.shares.list_groups()
    values = [r.value for r in dead_letters(broker)]
    assert values == [b"old", b"v0"]
    assert dict(dead_letters(broker)[1].headers)["logbroker.dlq.topic.id"] == broker.topic("t").topic_id.encode()
    broker.close()


def test_a_stored_consumer_group_is_no_share_group_after_a_restart(broker, clock):
    broker.groups.commit_offsets("classic", -1, "", None, {("t", 0): (0, -1, None)})
    broker = reopen(broker, clock)  # the group service has not started in this run
    assert broker.shares.heartbeat("classic", "m", 0, ["t"]).error_code == 69
    broker.close()


def test_dead_letters_go_in_batches_within_the_topics_limit_and_an_oversized_one_is_not_stuck(broker):
    broker.create_topic("dlq", 1, {"max.message.bytes": "2000"})
    values = [b"a" * 600, b"b" * 600, b"c" * 600, b"d" * 5000, b"e" * 10]
    broker.produce("t", 0, encode_batch_columns(None, values, None, [1] * 5))
    s = broker.shares
    s.configure("g", auto_offset_reset="earliest", dead_letter_topic="dlq")
    got = s.acquire("g", "m", P, 5)[0].acquired
    assert s.acknowledge("g", "m", {("t", 0): [(a.offset, a.delivery_id, REJECT) for a in got]}) == {("t", 0): 0}
    assert [r.value[:1] for r in dead_letters(broker)] == [b"a", b"b", b"c", b"e"]  # d is over the limit alone
    row = s.describe("g")["partitions"][0]
    assert (row["start_offset"], row["dead_lettering"], row["lag"]) == (5, 0, 0)


def test_records_a_member_was_never_sent_go_back_without_counting_a_delivery(broker):
    produce(broker, 2)
    s = broker.shares
    s.configure("g", auto_offset_reset="earliest")
    first = s.acquire("g", "m", P, 2)[0].acquired
    s.return_unsent("g", "m", "t", 0, [first[1].offset])
    again = s.acquire("g", "x", P, 2)[0].acquired
    assert [(a.offset, a.delivery_count) for a in again] == [(1, 1)]
    assert s.acknowledge("g", "m", {("t", 0): [(0, first[0].delivery_id, ACCEPT)]}) == {("t", 0): 0}


def test_internal_topics_cannot_be_reconfigured_or_truncated(broker):
    broker.shares.configure("g")
    with pytest.raises(InvalidTopicError):
        broker.alter_topic_config(SHARE_STATE_TOPIC, set={"retention.ms": "1"})
    with pytest.raises(InvalidTopicError):
        broker.delete_records(SHARE_STATE_TOPIC, 0, 1)


def test_group_and_member_ids_are_bounded(broker):
    with pytest.raises(InvalidRequestError):
        broker.shares.acquire("g" * 40_000, "m", P, 1)
    with pytest.raises(InvalidRequestError):
        broker.shares.heartbeat("g", "m" * 40_000, 0, ["t"])
    assert broker.shares.list_groups() == []


def test_a_consumer_group_id_gets_no_share_settings(broker):
    broker.groups.commit_offsets("classic", -1, "", None, {("t", 0): (0, -1, None)})
    with pytest.raises(InvalidRequestError):
        broker.shares.configure("classic", auto_offset_reset="earliest")
    with pytest.raises(InvalidRequestError):
        broker.shares.acquire("classic", "m", P, 1)
    assert broker.shares.list_groups() == []


def test_deleting_a_share_group_forgets_it_durably(broker, clock):
    produce(broker, 2)
    s = broker.shares
    s.configure("g", auto_offset_reset="earliest", delivery_count_limit=7)
    s.join("g", "m", ["t"])
    s.acquire("g", "m", P, 1)
    with pytest.raises(InvalidRequestError):
        s.delete_group("g")  # a member, and a record in flight
    s.leave("g", "m")
    s.delete_group("g")
    assert s.list_groups() == []
    with pytest.raises(InvalidRequestError):
        s.delete_group("g")
    broker = reopen(broker, clock)
    assert broker.shares.list_groups() == []
    assert broker.shares.config("g").delivery_count_limit == 5
    broker.shares.configure("g", auto_offset_reset="earliest")  # a new group of that name starts afresh
    assert [(a.offset, a.delivery_count) for a in broker.shares.acquire("g", "m", P, 5)[0].acquired] == [(0, 1), (1, 1)]
    broker.close()
