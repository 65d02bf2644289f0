"""Consumer groups through the embedded Consumer: several members in one process split the
partitions, rebalance as they come and go, resume from committed offsets."""

from __future__ import annotations

import time

import pytest

from logbroker import Broker, Consumer, Producer, TopicPartition
from logbroker.clock import ManualClock
from logbroker.errors import LogbrokerError, OffsetOutOfRangeError


def fill(broker, topic: str, partitions: int, per_partition: int) -> None:
    if topic not in broker.list_topics():
        broker.create_topic(topic, partitions=partitions)
    with Producer(broker, linger_ms=0) as producer:
        for p in range(partitions):
            for i in range(per_partition):
                producer.send(topic, f"{p}:{i}".encode(), partition=p)


def poll_until(consumers, predicate, *, timeout: float = 20.0, collected=None):
    """Poll every consumer in turn (one thread) until ``predicate()``; bounded in time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for consumer in consumers:
            records = consumer.poll(timeout=0.01)
            if collected is not None:
                collected.setdefault(id(consumer), []).extend(records)
        if predicate():
            return
    raise AssertionError("condition not reached in time; assignments: "
                         f"{[sorted(c.assignment()) for c in consumers]}")


def all_partitions(topic: str, n: int) -> set[TopicPartition]:
    return {TopicPartition(topic, p) for p in range(n)}


def test_one_member_reads_everything_commits_and_a_successor_resumes(tmp_path):
    with Broker.open(str(tmp_path)) as broker:
        fill(broker, "t", 3, 10)
        with Consumer(broker, group="g", topics=["t"], enable_auto_commit=False) as consumer:
            seen = []
            deadline = time.monotonic() + 20
            while len(seen) < 30 and time.monotonic() < deadline:
                seen += consumer.poll(timeout=0.1)
            assert sorted(r.value for r in seen) == sorted(f"{p}:{i}".encode() for p in range(3) for i in range(10))
            consumer.commit({("t", 0): 5, ("t", 1): 10})
            assert consumer.committed() == {TopicPartition("t", 0): 5, TopicPartition("t", 1): 10,
                                            TopicPartition("t", 2): None}
        with Consumer(broker, group="g", topics=["t"], enable_auto_commit=False) as successor:
            again = []
            deadline = time.monotonic() + 20
            while len(again) < 15 and time.monotonic() < deadline:
                again += successor.poll(timeout=0.1)
            values = sorted(r.value for r in again)
            assert values == sorted([f"0:{i}".encode() for i in range(5, 10)]
                                    + [f"2:{i}".encode() for i in range(10)])


def test_committed_offsets_survive_a_restart(tmp_path):
    with Broker.open(str(tmp_path)) as broker:
        fill(broker, "t", 2, 4)
        with Consumer(broker, group="g", topics=["t"]) as consumer:
            got = []
            deadline = time.monotonic() + 20
            while len(got) < 8 and time.monotonic() < deadline:
                got += consumer.poll(timeout=0.1)
            consumer.commit()
    with Broker.open(str(tmp_path)) as broker:
        assert broker.groups.fetch_offsets("g") == {("t", 0): (4, -1, ""), ("t", 1): (4, -1, "")}
        fill(broker, "t", 2, 1)
        with Consumer(broker, group="g", topics=["t"]) as consumer:
            got = []
            deadline = time.monotonic() + 20
            while len(got) < 2 and time.monotonic() < deadline:
                got += consumer.poll(timeout=0.1)
            assert sorted((r.partition, r.offset) for r in got) == [(0, 4), (1, 4)]


def test_two_members_in_one_thread_split_the_partitions_and_rebalance_when_one_leaves(tmp_path):
    with Broker.open(str(tmp_path)) as broker:
        fill(broker, "t", 4, 5)
        a = Consumer(broker, group="g", topics=["t"], heartbeat_interval_ms=50)
        b = Consumer(broker, group="g", topics=["t"], heartbeat_interval_ms=50)
        collected = {}
        poll_until([a, b], lambda: len(a.assignment()) == 2 and len(b.assignment()) == 2, collected=collected)
        assert a.assignment() | b.assignment() == all_partitions("t", 4)
        assert not a.assignment() & b.assignment()
        description = broker.groups.describe_group("g")
        assert description.state == "Stable" and len(description.members) == 2
        b.close()
        poll_until([a], lambda: a.assignment() == all_partitions("t", 4), collected=collected)
        a.close()


def test_each_partition_has_one_owner_per_generation_through_several_rebalances(tmp_path):
    with Broker.open(str(tmp_path)) as broker:
        fill(broker, "t", 6, 1)
        members = []
        owners_by_generation: dict[int, dict] = {}

        def check():
            for consumer in members:
                member = consumer._member
                if member.stable:
                    owners = owners_by_generation.setdefault(member.generation_id, {})
                    for tp in consumer.assignment():
                        assert owners.setdefault(tp, member.member_id) == member.member_id, "two owners"
            return False

        for _ in range(3):
            members.append(Consumer(broker, group="g", topics=["t"], heartbeat_interval_ms=20))
            poll_until(members, lambda: check() or (sum(len(c.assignment()) for c in members) == 6
                                                    and all(c._member.stable for c in members)
                                                    and len({c._member.generation_id for c in members}) == 1))
        assert len(owners_by_generation) >= 3
        for consumer in members:
            consumer.close()


def test_cooperative_sticky_members_keep_partitions_that_do_not_move(tmp_path):
    with Broker.open(str(tmp_path)) as broker:
        fill(broker, "t", 4, 1)
        revoked = []
        a = Consumer(broker, group="g", topics=["t"], heartbeat_interval_ms=20,
                     partition_assignment_strategy=["cooperative-sticky"],
                     on_revoke=lambda consumer, parts: revoked.extend(parts))
        poll_until([a], lambda: len(a.assignment()) == 4)
        b = Consumer(broker, group="g", topics=["t"], heartbeat_interval_ms=20,
                     partition_assignment_strategy=["cooperative-sticky"])
        poll_until([a, b], lambda: len(a.assignment()) == 2 and len(b.assignment()) == 2)
        assert len(revoked) == 2, revoked  # only the two that moved, never all four
        assert set(revoked) == b.assignment()
        a.close()
        b.close()


def test_callbacks_and_commit_on_revoke_with_auto_commit(tmp_path):
    with Broker.open(str(tmp_path)) as broker:
        fill(broker, "t", 2, 3)
        events = []
        a = Consumer(broker, group="g", topics=["t"], heartbeat_interval_ms=20,
                     on_assign=lambda c, parts: events.append(("assign", sorted(parts))),
                     on_revoke=lambda c, parts: events.append(("revoke", sorted(parts))))
        got = []
        deadline = time.monotonic() + 20
        while len(got) < 6 and time.monotonic() < deadline:
            got += a.poll(timeout=0.1)
        assert events == [("assign", sorted(all_partitions("t", 2)))]
        b = Consumer(broker, group="g", topics=["t"], heartbeat_interval_ms=20)
        poll_until([a, b], lambda: len(a.assignment()) == 1 and len(b.assignment()) == 1)
        assert events[1] == ("revoke", sorted(all_partitions("t", 2)))  # eager protocol: all of them
        # the positions of what was returned were committed before the partitions were given up
        assert broker.groups.fetch_offsets("g") == {("t", 0): (3, -1, ""), ("t", 1): (3, -1, "")}
        a.close()
        b.close()


def test_a_commit_from_an_old_generation_is_refused_and_moves_nothing(tmp_path):
    with Broker.open(str(tmp_path)) as broker:
        fill(broker, "t", 2, 1)
        a = Consumer(broker, group="g", topics=["t"], heartbeat_interval_ms=20, enable_auto_commit=False)
        poll_until([a], lambda: len(a.assignment()) == 2)
        a.commit({("t", 0): 1})
        old_generation, member_id = a._member.generation_id, a._member.member_id
        b = Consumer(broker, group="g", topics=["t"], heartbeat_interval_ms=20, enable_auto_commit=False)
        poll_until([a, b], lambda: len(a.assignment()) == 1 and len(b.assignment()) == 1)
        codes = broker.groups.commit_offsets("g", old_generation, member_id, None, {("t", 0): (0, -1, "")})
        assert codes == {("t", 0): 22}  # ILLEGAL_GENERATION
        assert broker.groups.fetch_offsets("g", [("t", 0)])[("t", 0)][0] == 1
        b.close()
        a.close()


def test_a_member_that_stops_heartbeating_is_removed_after_its_session_timeout(tmp_path):
    clock = ManualClock()
    with Broker.open(str(tmp_path), clock=clock, housekeeping=False) as broker:
        fill(broker, "t", 2, 1)
        a = Consumer(broker, group="g", topics=["t"], heartbeat_interval_ms=10, session_timeout_ms=6000)
        b = Consumer(broker, group="g", topics=["t"], heartbeat_interval_ms=10, session_timeout_ms=6000)
        poll_until([a, b], lambda: len(a.assignment()) == 1 and len(b.assignment()) == 1)
        b._closed = True  # b "crashes": it stops polling and heartbeating without leaving
        b._heartbeat_thread.join()
        clock.advance(7000)
        poll_until([a], lambda: len(a.assignment()) == 2)
        a.close()


def test_a_member_that_does_not_poll_within_max_poll_interval_leaves(tmp_path):
    with Broker.open(str(tmp_path)) as broker:
        fill(broker, "t", 2, 1)
        lost = []
        a = Consumer(broker, group="g", topics=["t"], heartbeat_interval_ms=20, max_poll_interval_ms=500,
                     on_lost=lambda c, parts: lost.extend(parts))
        b = Consumer(broker, group="g", topics=["t"], heartbeat_interval_ms=20, max_poll_interval_ms=60000)
        poll_until([a, b], lambda: len(a.assignment()) == 1 and len(b.assignment()) == 1)
        stuck_since = time.monotonic()
        poll_until([b], lambda: len(b.assignment()) == 2)  # a is "stuck" in its processing
        assert time.monotonic() - stuck_since >= 0.4
        a.poll(timeout=0.01)  # a finds out it was out, and rejoins
        assert len(lost) == 1
        poll_until([a, b], lambda: len(a.assignment()) == 1 and len(b.assignment()) == 1)
        a.close()
        b.close()


def test_pattern_subscription_picks_up_new_topics(tmp_path):
    with Broker.open(str(tmp_path)) as broker:
        fill(broker, "orders-eu", 1, 2)
        consumer = Consumer(broker, group="g", pattern=r"orders-.*", heartbeat_interval_ms=20)
        poll_until([consumer], lambda: consumer.assignment() == {TopicPartition("orders-eu", 0)})
        fill(broker, "orders-us", 2, 1)
        fill(broker, "payments", 1, 1)
        poll_until([consumer], lambda: consumer.assignment() == {TopicPartition("orders-eu", 0),
                                                                 TopicPartition("orders-us", 0),
                                                                 TopicPartition("orders-us", 1)})
        consumer.close()


def test_auto_offset_reset_applies_only_without_a_committed_offset(tmp_path):
    with Broker.open(str(tmp_path)) as broker:
        fill(broker, "t", 1, 5)
        broker.groups.commit_offsets("g", -1, "", None, {("t", 0): (2, -1, "")})
        with Consumer(broker, group="g", topics=["t"], auto_offset_reset="latest") as consumer:
            got = []
            deadline = time.monotonic() + 20
            while len(got) < 3 and time.monotonic() < deadline:
                got += consumer.poll(timeout=0.1)
            assert [r.offset for r in got] == [2, 3, 4]
        with Consumer(broker, group="other", topics=["t"], auto_offset_reset="latest") as consumer:
            poll_until([consumer], lambda: consumer.assignment())
            assert consumer.poll(timeout=0.2) == []
            assert consumer.position("t", 0) == 5
        with Consumer(broker, group="third", topics=["t"], auto_offset_reset="error") as consumer:
            with pytest.raises(OffsetOutOfRangeError):
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline:
                    consumer.poll(timeout=0.1)


def test_manual_assignment_with_a_group_commits_as_a_standalone_consumer(tmp_path):
    with Broker.open(str(tmp_path)) as broker:
        fill(broker, "t", 2, 3)
        with Consumer(broker, group="g", enable_auto_commit=False) as consumer:
            consumer.assign([("t", 1)])
            got = consumer.poll(timeout=1.0)
            assert [r.offset for r in got] == [0, 1, 2]
            consumer.commit()
        assert broker.groups.fetch_offsets("g") == {("t", 1): (3, -1, "")}
        with Consumer(broker, group="g") as consumer:
            consumer.assign([("t", 1)])
            assert consumer.position("t", 1) == 3


def test_lag_in_records_and_in_time(tmp_path):
    clock = ManualClock()
    with Broker.open(str(tmp_path), clock=clock, housekeeping=False) as broker:
        broker.create_topic("t", partitions=1)
        with Producer(broker, linger_ms=0) as producer:
            for i in range(4):
                producer.send("t", b"x", timestamp=clock.time_ms() + i * 1000)
        broker.groups.commit_offsets("g", -1, "", None, {("t", 0): (1, -1, "")})
        clock.advance(10_000)
        [row] = broker.groups.lag("g")
        assert (row["committed"], row["log_end_offset"], row["lag"]) == (1, 4, 3)
        assert row["lag_ms"] == 9_000  # the record at offset 1 was written 1 s after the start
        broker.groups.commit_offsets("g", -1, "", None, {("t", 0): (4, -1, "")})
        [row] = broker.groups.lag("g")
        assert (row["lag"], row["lag_ms"]) == (0, 0)


def test_a_commit_to_an_unknown_partition_is_refused_per_partition(tmp_path):
    with Broker.open(str(tmp_path)) as broker:
        fill(broker, "t", 1, 1)
        codes = broker.groups.commit_offsets("g", -1, "", None, {("t", 0): (1, -1, ""), ("t", 7): (1, -1, ""),
                                                                  ("nope", 0): (1, -1, "")})
        assert codes == {("t", 0): 0, ("t", 7): 3, ("nope", 0): 3}


def test_the_offsets_topic_is_internal(tmp_path):
    with Broker.open(str(tmp_path)) as broker:
        fill(broker, "t", 1, 1)
        broker.groups.commit_offsets("g", -1, "", None, {("t", 0): (1, -1, "")})
        assert "__consumer_offsets" in broker.list_topics()
        assert broker.topic("__consumer_offsets").config["cleanup.policy"] == "compact"
        for attempt in (lambda: broker.create_topic("__consumer_offsets"),
                        lambda: broker.delete_topic("__consumer_offsets"),
                        lambda: broker.append("__consumer_offsets", 0, b"")):
            with pytest.raises(LogbrokerError) as info:
                attempt()
            assert info.value.error_code == 17


def test_static_members_each_get_partitions_and_leave_cleanly(tmp_path):
    with Broker.open(str(tmp_path)) as broker:
        fill(broker, "t", 2, 1)
        a = Consumer(broker, group="g", topics=["t"], group_instance_id="a", heartbeat_interval_ms=20)
        b = Consumer(broker, group="g", topics=["t"], group_instance_id="b", heartbeat_interval_ms=20)
        poll_until([a, b], lambda: len(a.assignment()) == 1 and len(b.assignment()) == 1)
        members = broker.groups.describe_group("g").members
        assert sorted(m.group_instance_id for m in members) == ["a", "b"]
        a.close()
        b.close()
        assert broker.groups.delete_groups(["g"]) == {"g": 0}
