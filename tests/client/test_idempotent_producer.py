"""The idempotent Producer over a real Broker: ids, sequences, retries of lost acknowledgements.

Faults are injected by wrapping a real Broker's ``append`` (the real append runs, then the answer is
lost), not by mocking: what lands in the log is read back from the files.
"""

from __future__ import annotations

import pytest

from logbroker.broker import Broker
from logbroker.client import Producer
from logbroker.errors import KafkaStorageError, OutOfOrderSequenceError, ReadOnlyError, RequestTimedOutError
from logbroker.records import decode_all, iter_batches

SEQUENCE_MODULUS = 2**31


class FaultyBroker:
    """A real Broker whose ``append`` fails the next ``fail`` calls with ``error``: after the real
    append when ``after_write`` (a lost acknowledgement), before it otherwise.  Every real answer is
    kept in ``answers``."""

    def __init__(self, broker: Broker, *, fail: int = 1, error=RequestTimedOutError, after_write: bool = True):
        self._broker = broker
        self.fail = fail
        self.error = error
        self.after_write = after_write
        self.answers = []
        self.calls = 0

    def __getattr__(self, name):
        return getattr(self._broker, name)

    def append(self, topic: str, partition: int, records: bytes):
        self.calls += 1
        if self.fail and not self.after_write:
            self.fail -= 1
            raise self.error(f"injected failure before appending to {topic}-{partition}")
        info = self._broker.append(topic, partition, records)
        self.answers.append(info)
        if self.fail:
            self.fail -= 1
            raise self.error(f"injected: the acknowledgement of offsets {info.base_offset}..{info.last_offset} was lost")
        return info


def stored_batches(broker: Broker, topic: str, partition: int = 0) -> list:
    """(header, values) of every batch in the partition, read back from the log."""
    out, offset = [], broker.list_offsets(topic, partition, -2)[0]
    end = broker.list_offsets(topic, partition, -1)[0]
    while offset < end:
        data = broker.fetch(topic, partition, offset).records
        for pos, header in iter_batches(data):
            out.append((header, [r.value for r in decode_all(data[pos:pos + header.size])]))
            offset = header.next_offset
    return out


def test_idempotence_needs_acks_all(broker):
    for acks in (0, 1, "0", "1"):
        with pytest.raises(ValueError, match="acks='all'"):
            Producer(broker, idempotent=True, acks=acks)
    for acks in ("all", -1, "-1"):
        Producer(broker, idempotent=True, acks=acks, linger_ms=0).close()


def test_a_read_only_broker_cannot_hand_out_producer_ids(tmp_path):
    Broker.open(str(tmp_path / "data"), housekeeping=False).close()
    with Broker.open(str(tmp_path / "data"), read_only=True) as reader:
        with pytest.raises(ReadOnlyError):
            Producer(reader, idempotent=True)


def test_batches_carry_the_producer_id_epoch_and_per_partition_sequences(broker):
    broker.create_topic("t", partitions=2)
    with Producer(broker, idempotent=True, linger_ms=0) as producer, \
            Producer(broker, idempotent=True, linger_ms=0) as other:
        assert producer.producer_id >= 0 and other.producer_id > producer.producer_id
        assert producer.producer_epoch == 0
        for count in (3, 1, 4):
            futures = [producer.send("t", b"v", partition=p) for p in (0, 1) for _ in range(count)]
            producer.flush()
            assert all(f.result() for f in futures)
        other.send("t", b"w", partition=0).result()
    for partition in (0, 1):
        batches = stored_batches(broker, "t", partition)
        mine = [h for h, _ in batches if h.producer_id == producer.producer_id]
        assert [(h.producer_epoch, h.base_sequence, h.records_count) for h in mine] == [(0, 0, 3), (0, 3, 1), (0, 4, 4)]
    theirs = [h for h, _ in stored_batches(broker, "t", 0) if h.producer_id == other.producer_id]
    assert [h.base_sequence for h in theirs] == [0]


def test_a_lost_acknowledgement_is_retried_and_the_record_stored_once(broker):
    broker.create_topic("t")
    faulty = FaultyBroker(broker, fail=1)
    with Producer(faulty, idempotent=True, linger_ms=0, retry_backoff_ms=1) as producer:
        first = producer.send("t", b"once").result()
        second = producer.send("t", b"next").result()
    assert faulty.calls == 3  # the first batch went twice
    original, retry, _ = faulty.answers
    assert not original.duplicate and retry.duplicate
    assert (retry.base_offset, retry.last_offset) == (original.base_offset, original.last_offset)
    assert (first.offset, second.offset) == (0, 1)
    assert [values for _, values in stored_batches(broker, "t")] == [[b"once"], [b"next"]]


def test_without_idempotence_the_same_retry_stores_the_record_twice(broker):
    """Why idempotence exists: a plain producer retries too, and the lost acknowledgement duplicates."""
    broker.create_topic("t")
    faulty = FaultyBroker(broker, fail=1)
    with Producer(faulty, linger_ms=0, retry_backoff_ms=1) as producer:
        meta = producer.send("t", b"twice").result()
    assert meta.offset == 1
    assert [values for _, values in stored_batches(broker, "t")] == [[b"twice"], [b"twice"]]


def test_several_lost_acknowledgements_of_a_multi_record_batch(broker):
    broker.create_topic("t")
    faulty = FaultyBroker(broker, fail=3)
    with Producer(faulty, idempotent=True, linger_ms=60_000, retry_backoff_ms=1) as producer:
        futures = [producer.send("t", b"%d" % i) for i in range(5)]
        producer.flush()
        assert [f.result().offset for f in futures] == [0, 1, 2, 3, 4]
    assert faulty.calls == 4 and [a.duplicate for a in faulty.answers] == [False, True, True, True]
    assert [values for _, values in stored_batches(broker, "t")] == [[b"%d" % i for i in range(5)]]


def test_retries_run_out_then_the_producer_starts_over_with_a_new_id(broker):
    broker.create_topic("t")
    faulty = FaultyBroker(broker, fail=3, after_write=False)
    with Producer(faulty, idempotent=True, linger_ms=0, retries=2, retry_backoff_ms=1) as producer:
        first_id = producer.producer_id
        future = producer.send("t", b"lost")
        with pytest.raises(RequestTimedOutError):
            future.result()
        assert faulty.calls == 3  # one try and two retries
        assert producer.producer_id > first_id  # what the broker holds of that sequence is unknown
        assert producer.send("t", b"kept").result().offset == 0
    (header, values), = stored_batches(broker, "t")
    assert (header.producer_id, header.base_sequence, values) == (producer.producer_id, 0, [b"kept"])


def test_errors_that_are_not_retriable_are_not_retried(broker):
    broker.create_topic("t")
    faulty = FaultyBroker(broker, fail=1, error=KafkaStorageError, after_write=False)
    with Producer(faulty, idempotent=True, linger_ms=0, retry_backoff_ms=1) as producer:
        first_id = producer.producer_id
        with pytest.raises(KafkaStorageError):
            producer.send("t", b"refused").result()
        assert faulty.calls == 1
        assert producer.producer_id > first_id
        assert producer.send("t", b"ok").result().offset == 0


def test_sequences_wrap_after_the_maximum(broker):
    broker.create_topic("t")
    with Producer(broker, idempotent=True, linger_ms=60_000) as producer:
        producer._sequences[("t", 0)] = SEQUENCE_MODULUS - 2  # as if 2**31 - 2 records were sent before
        for i in range(3):
            producer.send("t", b"%d" % i)
        producer.flush()
        producer.send("t", b"after").result()
    headers = [h for h, _ in stored_batches(broker, "t")]
    assert [(h.base_sequence, h.last_sequence) for h in headers] == [(SEQUENCE_MODULUS - 2, 0), (1, 1)]
    with pytest.raises(OutOfOrderSequenceError):  # the broker followed the wrap: 1 is taken, 3 is a gap
        broker.append("t", 0, _batch_like(producer.producer_id, 3))


def _batch_like(producer_id: int, sequence: int) -> bytes:
    from logbroker.records import encode_batch

    return encode_batch([(None, b"x", None, 1_700_000_000_000)], producer_id=producer_id, producer_epoch=0,
                        base_sequence=sequence)


def test_producer_ids_are_not_reused_after_a_restart(tmp_path):
    data_dir = str(tmp_path / "data")
    with Broker.open(data_dir, housekeeping=False) as broker:
        broker.create_topic("t")
        with Producer(broker, idempotent=True, linger_ms=0) as producer:
            producer.send("t", b"a").result()
        before = producer.producer_id
    with Broker.open(data_dir, housekeeping=False) as broker:
        with Producer(broker, idempotent=True, linger_ms=0) as producer:
            assert producer.producer_id > before
            # a new producer id is unknown to the partition: its sequences start at 0 without trouble
            assert producer.send("t", b"b").result().offset == 1
