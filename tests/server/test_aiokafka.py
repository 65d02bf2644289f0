"""aiokafka (ApiVersions v0, Produce v7, Fetch v11, InitProducerId v0) against a real ``logbroker serve``."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic


def run(coroutine, timeout: float = 40.0):
    return asyncio.run(asyncio.wait_for(coroutine, timeout))


def test_produce_consume_with_a_group_and_commit(served):
    topic, group = "aio-topic", "aio-group"

    async def scenario():
        admin = AIOKafkaAdminClient(bootstrap_servers=served.bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
        finally:
            await admin.close()
        producer = AIOKafkaProducer(bootstrap_servers=served.bootstrap, acks="all", enable_idempotence=True)
        await producer.start()
        try:
            sent = [await producer.send_and_wait(topic, b"a%d" % i, partition=i % 2) for i in range(20)]
        finally:
            await producer.stop()
        assert sorted(m.offset for m in sent if m.partition == 0) == list(range(10))

        consumer = AIOKafkaConsumer(topic, bootstrap_servers=served.bootstrap, group_id=group,
                                    auto_offset_reset="earliest", enable_auto_commit=False,
                                    heartbeat_interval_ms=100, session_timeout_ms=6000, fetch_max_wait_ms=100)
        await consumer.start()
        got = []
        try:
            while len(got) < 20:
                batches = await consumer.getmany(timeout_ms=1000)
                for records in batches.values():
                    got.extend(r.value for r in records)
            await consumer.commit()
            committed = {p: await consumer.committed(TopicPartition(topic, p)) for p in (0, 1)}
        finally:
            await consumer.stop()
        assert sorted(got) == sorted(b"a%d" % i for i in range(20))
        assert committed == {0: 10, 1: 10}

        # a new member of the same group starts from the commits: nothing left to read
        producer = AIOKafkaProducer(bootstrap_servers=served.bootstrap)
        await producer.start()
        await producer.send_and_wait(topic, b"after", partition=1)
        await producer.stop()
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=served.bootstrap, group_id=group,
                                    auto_offset_reset="earliest", heartbeat_interval_ms=100,
                                    session_timeout_ms=6000, fetch_max_wait_ms=100)
        await consumer.start()
        try:
            record = await consumer.getone()
        finally:
            await consumer.stop()
        assert record.value == b"after" and record.offset == 10

    run(scenario())
