"""Share-group configs through confluent-kafka's AdminClient against a real ``logbroker serve`` child, the
way librdkafka's own tests prepare share groups (SHARE_GROUPS.md §3.7): IncrementalAlterConfigs on a
GROUP resource sets ``share.auto.offset.reset=earliest``, then a ShareConsumer reads records produced
before it started; DescribeConfigs shows each setting's source (GROUP_CONFIG / DEFAULT_CONFIG); the
lock duration set the same way makes an unacknowledged record come back.  The server runs with
Kafka's defaults (no --share-auto-offset-reset).  Every loop is bounded in polls and in time.
"""

from __future__ import annotations

import time

import pytest

from confluent_kafka import AcknowledgeType, KafkaException, ShareConsumer
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                   ConfigSource, ResourceType)

from .conftest import Serve, _stop_checked, unique
from .test_share_consumer import SHARE, make_topic


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Serve(tmp_path_factory.mktemp("share-configs") / "data").start()
    try:
        yield s
    finally:
        _stop_checked(s)
        assert "Traceback" not in s.log(), s.log()


def set_group_configs(admin: AdminClient, group: str, **configs) -> None:
    entries = [ConfigEntry(name.replace("_", "."), value, incremental_operation=AlterConfigOpType.SET)
               for name, value in configs.items()]
    for future in admin.incremental_alter_configs([ConfigResource(ResourceType.GROUP, group,
                                                                  incremental_configs=entries)]).values():
        future.result(10)


def describe_group(admin: AdminClient, group: str) -> dict:
    [future] = admin.describe_configs([ConfigResource(ResourceType.GROUP, group)]).values()
    return {name: (entry.value, ConfigSource(int(getattr(entry.source, "value", entry.source))))
            for name, entry in future.result(10).items()}


def poll_all(c: ShareConsumer, want: int, seconds: float = 30.0, ack=AcknowledgeType.ACCEPT) -> list:
    got = []
    deadline = time.monotonic() + seconds
    rounds = 0
    while len(got) < want and time.monotonic() < deadline and rounds < 200:
        rounds += 1
        for m in c.poll(0.5):
            assert m.error() is None, m.error()
            got.append(m)
            if ack is not None:
                c.acknowledge(m, ack)
    return got


def test_earliest_set_with_incremental_alter_configs_reads_what_was_there(server):
    topic, produced = make_topic(server.bootstrap, 2, 10)
    group = unique("configured")
    admin = AdminClient({"bootstrap.servers": server.bootstrap, "log_level": 2})
    defaults = describe_group(admin, group)
    assert defaults["share.auto.offset.reset"] == ("latest", ConfigSource.DEFAULT_CONFIG)
    c = ShareConsumer({"bootstrap.servers": server.bootstrap, "group.id": group, **SHARE})
    try:
        set_group_configs(admin, group, share_auto_offset_reset="earliest")  # after creating, before subscribing
        c.subscribe([topic])
        got = poll_all(c, len(produced))
        c.commit_sync(10)
        assert {(m.partition(), m.offset()): m.value() for m in got} == produced
        assert {m.delivery_count() for m in got} == {1}
    finally:
        c.close()
    described = describe_group(admin, group)
    assert described["share.auto.offset.reset"] == ("earliest", ConfigSource.GROUP_CONFIG)
    assert described["share.record.lock.duration.ms"] == ("30000", ConfigSource.DEFAULT_CONFIG)


def test_without_the_config_a_new_group_starts_at_the_end(server):
    topic, _ = make_topic(server.bootstrap, 1, 3)
    c = ShareConsumer({"bootstrap.servers": server.bootstrap, "group.id": unique("latest"), **SHARE})
    try:
        c.subscribe([topic])
        assert poll_all(c, 1, seconds=3) == []
    finally:
        c.close()


def test_lock_duration_and_delivery_limit_set_over_the_wire_apply(server):
    topic, produced = make_topic(server.bootstrap, 1, 1)
    group = unique("short-lock")
    admin = AdminClient({"bootstrap.servers": server.bootstrap, "log_level": 2})
    set_group_configs(admin, group, share_auto_offset_reset="earliest", share_record_lock_duration_ms="1000",
                      share_delivery_count_limit="2", errors_deadletterqueue_topic_name=f"{topic}.dlq")
    c = ShareConsumer({"bootstrap.servers": server.bootstrap, "group.id": group, **SHARE})
    try:
        c.subscribe([topic])
        [first] = poll_all(c, 1, ack=None)
        assert first.delivery_count() == 1
        time.sleep(1.5)  # the lock expires: delivered again
        c.acknowledge(first, AcknowledgeType.ACCEPT)  # too late: refused for the partition
        failed = {tp.partition: exc for tp, exc in c.commit_sync(10).items()}
        assert isinstance(failed[0], KafkaException) and failed[0].args[0].code() == 121
        [again] = poll_all(c, 1, ack=AcknowledgeType.RELEASE)  # the last delivery allowed: dead-lettered
        assert (again.offset(), again.delivery_count()) == (first.offset(), 2)
        c.commit_sync(10)
        assert poll_all(c, 1, seconds=2) == []
    finally:
        c.close()
    from logbroker import Consumer

    with Consumer(bootstrap=server.bootstrap, topics=[f"{topic}.dlq"]) as dlq:
        letters = []
        deadline = time.monotonic() + 10
        while not letters and time.monotonic() < deadline:
            letters += dlq.poll(timeout=0.2)
    assert [letter.value for letter in letters] == [produced[(0, first.offset())]]
    assert ("logbroker.dlq.reason", b"delivery_count_limit") in letters[0].headers
    bad = ConfigResource(ResourceType.GROUP, group, incremental_configs=[
        ConfigEntry("share.delivery.count.limit", "many", incremental_operation=AlterConfigOpType.SET)])
    with pytest.raises(KafkaException) as info:
        admin.incremental_alter_configs([bad])[bad].result(10)
    assert info.value.args[0].code() == 40  # INVALID_CONFIG
