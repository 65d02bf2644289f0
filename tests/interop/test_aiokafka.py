"""aiokafka against a real ``logbroker serve`` child (each test runs its own ``asyncio.run``).

aiokafka sends ApiVersions v0 and old fixed versions of everything else (PROTOCOL.md §6): Produce 7,
Fetch 11, Metadata 5 capped to 4, JoinGroup 5, SyncGroup 3, OffsetCommit/OffsetFetch 3, InitProducerId 0.
"""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import OffsetAndMetadata

from .conftest import unique

TEST_TIMEOUT_S = 40


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, TEST_TIMEOUT_S))


async def getmany_until(consumer: AIOKafkaConsumer, count: int, timeout: float = 20.0) -> list:
    got: list = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while len(got) < count and loop.time() < deadline:
        for records in (await consumer.getmany(timeout_ms=500, max_records=count - len(got))).values():
            got.extend(records)
    return got


def consumer_for(bootstrap: str, topic: str, group: str, **options) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                            auto_offset_reset="earliest", session_timeout_ms=6000, heartbeat_interval_ms=200,
                            fetch_max_wait_ms=100, **options)


@pytest.mark.parametrize("idempotent", [False, True])
def test_send_and_wait_then_group_consume_commit_and_resume(bootstrap, idempotent):
    topic, group = unique("aio"), unique("aio-group")

    async def scenario():
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=idempotent,
                                    compression_type="gzip", request_timeout_ms=10000)
        await producer.start()
        try:
            offsets = []
            for i in range(30):
                meta = await producer.send_and_wait(topic, value=b"aio-%d" % i, key=b"k%d" % i,
                                                    headers=[("i", b"%d" % i)])
                offsets.append((meta.topic, meta.partition, meta.offset))
            batch = [await producer.send(topic, value=b"aio-%d" % i, key=b"k%d" % i) for i in range(30, 50)]
            offsets += [(m.topic, m.partition, m.offset) for m in await asyncio.gather(*batch)]
        finally:
            await producer.stop()
        assert offsets == [(topic, 0, i) for i in range(50)]

        consumer = consumer_for(bootstrap, topic, group)
        await consumer.start()
        try:
            got = await getmany_until(consumer, 20)
            assert [(r.offset, r.key, r.value) for r in got] == [(i, b"k%d" % i, b"aio-%d" % i) for i in range(20)]
            assert list(got[5].headers) == [("i", b"5")]
            await consumer.commit()
            assert await consumer.committed(TopicPartition(topic, 0)) == 20
        finally:
            await consumer.stop()

        consumer = consumer_for(bootstrap, topic, group)
        await consumer.start()
        try:
            rest = await getmany_until(consumer, 30)
            assert [r.offset for r in rest] == list(range(20, 50))
            await consumer.commit({TopicPartition(topic, 0): OffsetAndMetadata(50, "end")})
            assert await consumer.committed(TopicPartition(topic, 0)) == 50
        finally:
            await consumer.stop()

    run(scenario())


def test_admin_create_topic_and_two_members_split_it(bootstrap):
    topic, group = unique("aio-split"), unique("aio-group")

    async def scenario():
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
            assert topic in await admin.list_topics()
        finally:
            await admin.close()

        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:
            sends = [await producer.send(topic, value=b"%d" % i, partition=i % 2) for i in range(40)]
            await asyncio.gather(*sends)
        finally:
            await producer.stop()

        a, b = consumer_for(bootstrap, topic, group), consumer_for(bootstrap, topic, group)
        await a.start()
        await b.start()
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 20
            got_a: list = []
            got_b: list = []
            while len(got_a) + len(got_b) < 40 and loop.time() < deadline:
                for member, sink in ((a, got_a), (b, got_b)):
                    for records in (await member.getmany(timeout_ms=200)).values():
                        sink.extend(records)
            assert len(got_a) + len(got_b) == 40
            parts_a = {tp.partition for tp in a.assignment()}
            parts_b = {tp.partition for tp in b.assignment()}
            assert sorted(parts_a | parts_b) == [0, 1] and not parts_a & parts_b
            assert {r.partition for r in got_a} == parts_a and {r.partition for r in got_b} == parts_b
        finally:
            await a.stop()
            await b.stop()

    run(scenario())
