"""Producer edge cases (bad timestamps, big headers, close racing send, errors in the linger thread,
futures after flush) and produced chunks the broker must refuse whole (offset spans, record counts).

Real brokers in temporary directories and real threads; every wait is bounded.
"""

from __future__ import annotations

import os
import struct
import threading
import time

import pytest
from crc32c import crc32c

from logbroker.client import Producer
from logbroker.errors import (BrokerClosedError, CorruptRecordError, InvalidRecordError, RecordTooLargeError,
                              UnknownTopicOrPartitionError)
from logbroker.records import GZIP, decode_all, encode_batch, iter_batches

JOIN_TIMEOUT_S = 20


def stored(broker, topic: str, partition: int = 0) -> list:
    """Every record of the partition, log start to high watermark (bounded loop)."""
    offset = broker.list_offsets(topic, partition, -2)[0]
    end = broker.list_offsets(topic, partition, -1)[0]
    out = []
    for _ in range(100_000):
        if offset >= end:
            break
        data = broker.fetch(topic, partition, offset).records
        headers = [h for _, h in iter_batches(data)]
        assert headers, f"empty fetch at {offset} below the high watermark {end}"
        out += [r for r in decode_all(data) if r.offset >= offset]
        offset = headers[-1].next_offset
    return out


def wait_until(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()


# ---- timestamps ------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [-1, -(2**63), 1.5, 1000.0, "1000", b"1000", 2**62, 2**63, 2**64],
                         ids=lambda v: repr(v))
def test_bad_timestamp_raises_at_send_and_spoils_nothing_else(broker, bad):
    broker.create_topic("t")
    with Producer(broker, linger_ms=60_000) as producer:
        before = producer.send("t", b"before", timestamp=1_000)
        with pytest.raises(InvalidRecordError):
            producer.send("t", b"bad", timestamp=bad)
        after = producer.send("t", b"after", timestamp=2_000)
        producer.flush()
        assert before.done() and after.done()
        assert (before.result().offset, after.result().offset) == (0, 1)
        assert (before.result().timestamp, after.result().timestamp) == (1_000, 2_000)
    assert [(r.offset, r.value, r.timestamp) for r in stored(broker, "t")] == [(0, b"before", 1_000),
                                                                               (1, b"after", 2_000)]


def test_extreme_valid_timestamps_share_a_batch(broker):
    """0 and 2**62 - 1 are both valid, and fit one batch (their delta fits a varlong)."""
    broker.create_topic("t")
    with Producer(broker, linger_ms=60_000) as producer:
        futures = [producer.send("t", b"a", timestamp=0), producer.send("t", b"b", timestamp=2**62 - 1),
                   producer.send("t", b"c", timestamp=5)]
        producer.flush()
        assert [f.result().offset for f in futures] == [0, 1, 2]
    assert [(r.value, r.timestamp) for r in stored(broker, "t")] == [(b"a", 0), (b"b", 2**62 - 1), (b"c", 5)]


# ---- headers count toward the batch size -------------------------------------------------------


@pytest.mark.parametrize("batch_size", [65536, 16 << 20], ids=["default-batch-size", "huge-batch-size"])
def test_records_with_big_headers_are_split_into_batches_that_fit(broker, batch_size):
    """Five records with 300 KB of headers each: ~1.5 MB together, over the topic's default
    max.message.bytes (1048588); counted right they go in batches that fit, and all succeed."""
    broker.create_topic("h")
    big = bytes(range(256)) * 1172  # 300,032 bytes
    with Producer(broker, linger_ms=60_000, batch_size=batch_size) as producer:
        futures = [producer.send("h", b"v%d" % i, key=b"k%d" % i, headers={"big": big, "i": b"%d" % i}, partition=0)
                   for i in range(5)]
        producer.flush()
        assert all(f.done() for f in futures)
        assert [f.exception() for f in futures] == [None] * 5
        assert [f.result().offset for f in futures] == [0, 1, 2, 3, 4]
    records = stored(broker, "h")
    assert [(r.offset, r.key, r.value) for r in records] == [(i, b"k%d" % i, b"v%d" % i) for i in range(5)]
    assert [r.headers for r in records] == [(("big", big), ("i", b"%d" % i)) for i in range(5)]
    batches = [h for _, h in iter_batches(broker.fetch("h", 0, 0, max_bytes=16 << 20).records)]
    assert len(batches) >= 2 and all(h.size <= 1048588 for h in batches)


def test_a_record_whose_headers_alone_are_too_large_is_refused_at_send(broker):
    broker.create_topic("h")
    with Producer(broker, linger_ms=60_000) as producer:
        ok = producer.send("h", b"ok")
        with pytest.raises(RecordTooLargeError):
            producer.send("h", b"v", headers=[("a", b"x" * 600_000), ("b", b"y" * 600_000)])
        producer.flush()
        assert ok.result().offset == 0
    assert [r.value for r in stored(broker, "h")] == [b"ok"]


# ---- close() racing send() ----------------------------------------------------------------------


SENDERS = 4
CLOSE_ROUNDS = 4


@pytest.mark.parametrize("linger_ms", [0, 2])
def test_close_racing_sends_loses_nothing(broker, linger_ms):
    """Threads send until the producer is closed under them.  Each send either raises
    BrokerClosedError or its record is stored and its future resolved; once close() returns every
    future is already done (close flushed it) and nothing is left unsent."""
    broker.create_topic("c", 3)
    for round_ in range(CLOSE_ROUNDS):
        producer = Producer(broker, linger_ms=linger_ms, batch_size=4096)
        accepted: list[list] = [[] for _ in range(SENDERS)]
        refused = [0] * SENDERS
        errors: list[BaseException] = []
        warmed = [threading.Event() for _ in range(SENDERS)]

        def sender(index: int):
            try:
                deadline = time.monotonic() + 10
                for i in range(200_000):
                    if time.monotonic() > deadline:
                        break
                    value = b"%d-%d-%d" % (round_, index, i)
                    try:
                        future = producer.send("c", value, key=value if i % 3 else None)
                    except BrokerClosedError:
                        refused[index] += 1
                        break
                    accepted[index].append((value, future))
                    if i == 200:
                        warmed[index].set()
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)
            finally:
                warmed[index].set()

        threads = [threading.Thread(target=sender, args=(i,), daemon=True) for i in range(SENDERS)]
        for thread in threads:
            thread.start()
        for event in warmed:
            assert event.wait(JOIN_TIMEOUT_S)
        producer.close()
        for thread in threads:
            thread.join(timeout=JOIN_TIMEOUT_S)
        assert not [t for t in threads if t.is_alive()]
        assert not errors, errors
        assert refused == [1] * SENDERS, "every sender must have been stopped by BrokerClosedError"
        with pytest.raises(BrokerClosedError):
            producer.send("c", b"late")
        futures = [f for sent in accepted for _, f in sent]
        assert all(f.done() for f in futures), \
            f"{sum(not f.done() for f in futures)} future(s) still pending after close()"
        # stored exactly once each, where the futures say
        where = {}
        for partition in range(3):
            for record in stored(broker, "c", partition):
                if record.value.startswith(b"%d-" % round_):
                    assert record.value not in where, f"{record.value!r} stored twice"
                    where[record.value] = (partition, record.offset)
        sent = {value: future for sent in accepted for value, future in sent}
        assert set(where) == set(sent)
        for value, future in sent.items():
            meta = future.result()
            assert (meta.partition, meta.offset) == where[value]


# ---- the linger thread survives errors ---------------------------------------------------------


def test_linger_thread_keeps_sending_after_errors(broker):
    """A lingering batch whose append fails (its topic was deleted; its records grew past a lowered
    max.message.bytes) fails its own futures only: the linger thread carries on and sends later
    records by itself (nobody calls flush() or result())."""
    broker.create_topic("gone")
    broker.create_topic("ok")
    with Producer(broker, linger_ms=10) as producer:
        producer.partitions_for("gone")  # the producer knows the topic, which is then deleted
        broker.delete_topic("gone")
        doomed = producer.send("gone", b"x")
        assert wait_until(doomed.done), "the linger thread never sent the doomed batch"
        assert isinstance(doomed.exception(), UnknownTopicOrPartitionError)

        first = producer.send("ok", b"first")
        assert wait_until(first.done), "the linger thread stopped after an error"
        assert first.exception() is None

        # the producer cached max.message.bytes; the broker now refuses the batch
        broker.alter_topic_config("ok", set={"max.message.bytes": "1024"})
        too_big = producer.send("ok", b"z" * 5_000)
        assert wait_until(too_big.done), "the linger thread never sent the oversized batch"
        assert isinstance(too_big.exception(), RecordTooLargeError)

        later = [producer.send("ok", b"later-%d" % i) for i in range(3)]
        assert wait_until(lambda: all(f.done() for f in later)), "the linger thread stopped after an error"
        assert [f.exception() for f in later] == [None] * 3
        assert [f.result().offset for f in later] == [1, 2, 3]
    assert [r.value for r in stored(broker, "ok")] == [b"first", b"later-0", b"later-1", b"later-2"]


# ---- futures are done after flush() -------------------------------------------------------------


@pytest.mark.parametrize("acks", ["all", 0])
def test_every_future_is_done_after_flush(broker, acks):
    broker.create_topic("a", 3)
    broker.create_topic("b", 2)
    with Producer(broker, acks=acks, linger_ms=60_000, batch_size=2048) as producer:
        futures = []
        for i in range(300):  # some batches fill up (sent at once), others stay open until flush
            futures.append(producer.send("a", b"a%d" % i + b"." * (i % 50), key=b"k%d" % (i % 7)))
            futures.append(producer.send("b", b"b%d" % i, partition=i % 2))
        futures.append(producer.send("b", b"last", partition=1))
        assert not all(f.done() for f in futures)
        producer.flush()
        assert all(f.done() for f in futures), f"{sum(not f.done() for f in futures)} future(s) pending after flush()"
        assert all(f.exception() is None for f in futures)
        # a second round on the same producer behaves the same
        more = [producer.send("a", b"again-%d" % i, partition=i % 3) for i in range(20)]
        producer.flush()
        assert all(f.done() for f in more)

    def total():
        return (sum(len(stored(broker, "a", p)) for p in range(3))
                + sum(len(stored(broker, "b", p)) for p in range(2)))

    # acks=all: durable (so visible) once flush() returned; acks=0: the broker's flusher fsyncs soon
    assert wait_until(lambda: total() == len(futures) + len(more), timeout=0 if acks == "all" else 5)


def test_futures_of_a_failed_batch_are_done_after_flush(broker):
    broker.create_topic("gone")
    broker.create_topic("ok")
    with Producer(broker, linger_ms=60_000) as producer:
        producer.partitions_for("gone")
        broker.delete_topic("gone")
        doomed = [producer.send("gone", b"x%d" % i) for i in range(3)]
        fine = producer.send("ok", b"fine")
        producer.flush()
        assert all(f.done() for f in doomed) and fine.done()
        assert all(isinstance(f.exception(), UnknownTopicOrPartitionError) for f in doomed)
        assert fine.result().offset == 0


# ---- produced chunks the broker refuses whole ----------------------------------------------------


def lying_batch(records_count: int, last_offset_delta: int, *, compression: int = 0, values=(b"x",)) -> bytes:
    """A real batch with its record count and last offset delta patched and its CRC redone."""
    data = bytearray(encode_batch([(None, v, None, 1_000) for v in values], compression_type=compression))
    struct.pack_into(">i", data, 23, last_offset_delta)
    struct.pack_into(">i", data, 57, records_count)
    struct.pack_into(">I", data, 17, crc32c(bytes(data[21:])))
    return bytes(data)


def partition_state(broker, topic: str):
    partition_log = broker.log(topic, 0)
    return (partition_log.log_end_offset, partition_log.high_watermark, len(partition_log.segments),
            [os.path.getsize(s.log_path) for s in partition_log.segments])


def test_a_chunk_spanning_more_than_2_31_offsets_is_refused_and_nothing_written(broker):
    broker.create_topic("t")
    broker.produce("t", 0, encode_batch([(None, b"first", None, 1_000)]))
    before = partition_state(broker, "t")
    # Each batch alone is a legal span; together they span 2**31 + 1 offsets.  Honest batches that
    # large cannot be built (2**31 records), so these claim counts their compressed records do not
    # have: the broker refuses them (for the count, or for the span) and writes nothing.
    chunk = lying_batch(2**30 + 1, 2**30, compression=GZIP) + lying_batch(2**30, 2**30 - 1, compression=GZIP)
    with pytest.raises((InvalidRecordError, CorruptRecordError)):
        broker.produce("t", 0, chunk)
    assert partition_state(broker, "t") == before
    # the same chunk straight into the log, with only the batches' own checks (CRC, lengths) done:
    # the span rule alone refuses it
    partition_log = broker.log("t", 0)
    with pytest.raises(InvalidRecordError, match="2\\*\\*31"):
        partition_log.append(chunk, batches=list(iter_batches(chunk)))
    assert partition_state(broker, "t") == before
    # the log goes on where it was
    assert broker.produce("t", 0, encode_batch([(None, b"second", None, 1_000)])).base_offset == 1
    assert [(r.offset, r.value) for r in stored(broker, "t")] == [(0, b"first"), (1, b"second")]


@pytest.mark.parametrize("claimed,real", [(4, 3), (1000, 2), (2**31 - 1, 1)])
def test_an_uncompressed_batch_claiming_more_records_than_it_holds_is_refused(broker, claimed, real):
    """Records take at least 7 bytes each: three null-key, null-value records fill exactly 21 bytes,
    so claiming a fourth is already impossible."""
    broker.create_topic("t")
    broker.produce("t", 0, encode_batch([(None, b"first", None, 1_000)]))
    before = partition_state(broker, "t")
    bad = lying_batch(claimed, claimed - 1, values=[None] * real)
    with pytest.raises(InvalidRecordError):
        broker.produce("t", 0, bad)
    with pytest.raises(InvalidRecordError):  # in a chunk after a good batch: the whole chunk goes
        broker.produce("t", 0, encode_batch([(None, b"good", None, 1_000)]) + bad)
    assert partition_state(broker, "t") == before
    honest = lying_batch(real, real - 1, values=[None] * real)  # the same bytes, counted right
    assert broker.produce("t", 0, honest).last_offset == real
    assert [r.offset for r in stored(broker, "t")] == list(range(real + 1))


def test_a_compressed_batch_claiming_more_records_than_it_holds_is_refused(broker):
    """The same lie inside a compressed batch (one record, five claimed; or 2**31 - 1 claimed, which
    would burn that many offsets).  Kafka refuses it at produce time; accepted, it would take the
    offsets and every later fetch of it would fail to decode."""
    broker.create_topic("t")
    broker.produce("t", 0, encode_batch([(None, b"first", None, 1_000)]))
    before = partition_state(broker, "t")
    for claimed in (5, 2**31 - 1):
        with pytest.raises((InvalidRecordError, CorruptRecordError)):
            broker.produce("t", 0, lying_batch(claimed, claimed - 1, compression=GZIP))
        assert partition_state(broker, "t") == before
    assert broker.produce("t", 0, encode_batch([(None, b"second", None, 1_000)])).base_offset == 1
