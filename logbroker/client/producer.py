"""The embedded Producer: per-partition batching over a Broker, a future per record.

``send()`` only appends the record's fields to its partition's open batch (parallel lists: keys,
values, headers, timestamps); a batch is encoded (one ``encode_batch_columns`` call) and appended to
the log when it reaches ``batch_size`` bytes, when it is ``linger_ms`` old (a background thread
checks), on ``flush()`` / ``close()``, or when somebody asks one of its futures for its result.
``result()`` returns once the batch is durable by the topic's rule (fsynced, by default), so many
batches share one fsync; ``flush()`` waits for every batch sent so far.

Keys choose partitions with murmur3 (``mmh3.hash(key, 0, False) % partitions``).  Keyless records
are sticky, as in Kafka (KIP-480): they all go to one partition until its batch is sent, then to the
next partition, so keyless traffic makes full batches instead of one small batch per partition.

An append that fails with a retriable error (``error.retriable``, e.g. RequestTimedOutError: the
acknowledgement was lost, the write may have happened) is sent again, the same bytes, up to
``retries`` times, ``retry_backoff_ms`` apart.  Appends are synchronous and in order under the
producer's lock, so a retry never overtakes a later batch.

``idempotent=True`` makes those retries safe (FORMAT.md §9): the producer gets a producer id and
epoch from ``broker.init_producer_id()`` and stamps every batch with them and a per-partition
sequence (records numbered from 0, wrapping after 2147483647).  The broker answers a batch it already
has with the original offsets (``AppendInfo.duplicate``), which is success.  When a batch fails for
good, what the broker holds of it is unknown: the producer takes a fresh producer id (sequences
restart at 0 for every partition) before sending anything else, as Kafka's idempotent producer does.
"""

from __future__ import annotations

import random
import threading
import time
from typing import NamedTuple

import mmh3

from ..clock import SystemClock
from ..errors import BrokerClosedError, InvalidRecordError, LogbrokerError, RecordTooLargeError
from ..records.batch import encode_batch_columns
from ..records.compression import codec_from_name

_BATCH_OVERHEAD = 61
# Timestamps below 2**62 keep every delta within a batch inside a signed 64-bit varlong.
_MAX_TIMESTAMP = 2**62


def _system_now_ms(_time_ns=time.time_ns) -> int:
    return _time_ns() // 1_000_000
_RECORD_OVERHEAD = 24  # varints and attributes per record, a generous estimate
_SEQUENCE_MODULUS = 2**31  # sequences run 0..2147483647, then wrap to 0


class RecordMetadata(NamedTuple):
    topic: str
    partition: int
    offset: int
    timestamp: int


def partition_for_key(key: bytes, partitions: int) -> int:
    """The partition murmur3 picks for ``key`` (the same on every run and machine)."""
    return mmh3.hash(key, 0, False) % partitions


def check_producer_settings(acks, linger_ms, batch_size, retries, retry_backoff_ms, idempotent) -> None:
    """The arguments the embedded and the network Producer share; ValueError for a bad one."""
    if acks not in (0, 1, -1, "0", "1", "-1", "all"):
        raise ValueError(f"acks must be 0, 1 or 'all', got {acks!r}")
    if batch_size <= 0 or linger_ms < 0:
        raise ValueError("batch_size must be positive and linger_ms non-negative")
    if retries.__class__ is not int or retries < 0 or retry_backoff_ms < 0:
        raise ValueError("retries must be an int >= 0 and retry_backoff_ms non-negative")
    if idempotent and acks not in (-1, "-1", "all"):
        raise ValueError(f"an idempotent producer needs acks='all', got {acks!r}")


class _Batch:
    __slots__ = ("topic", "partition", "keys", "values", "headers", "timestamps", "size", "created",
                 "base_offset", "log_append_time", "error", "appended", "durable", "producer")

    def __init__(self, producer, topic: str, partition: int, created: float):
        self.producer = producer
        self.topic = topic
        self.partition = partition
        self.keys: list | None = None  # None while every key is null
        self.values: list = []
        self.headers: list | None = None  # None while no record has headers
        self.timestamps: list[int] = []
        self.size = _BATCH_OVERHEAD
        self.created = created
        self.base_offset = -1
        self.log_append_time = -1
        self.error: BaseException | None = None
        self.appended = False
        self.durable = False


class _TopicState:
    __slots__ = ("partitions", "max_bytes", "open", "sticky")

    def __init__(self, partitions: int, max_bytes: int):
        self.partitions = partitions
        self.max_bytes = max_bytes
        self.open: list[_Batch | None] = [None] * partitions
        self.sticky = random.randrange(partitions)  # where keyless records go until its batch is sent


class SendFuture(tuple):
    """The outcome of one ``send()``: ``result()`` gives RecordMetadata or raises the error.

    A tuple (batch, index): sending a record creates nothing heavier than this.
    """

    __slots__ = ()

    def done(self) -> bool:
        batch = self[0]
        return batch.durable or batch.error is not None

    def result(self, timeout: float | None = None) -> RecordMetadata:
        batch, index = self
        if not batch.durable and batch.error is None:
            batch.producer._complete(batch)
        if batch.error is not None:
            raise batch.error
        timestamp = batch.log_append_time if batch.log_append_time >= 0 else batch.timestamps[index]
        return RecordMetadata(batch.topic, batch.partition, batch.base_offset + index, timestamp)

    def exception(self) -> BaseException | None:
        try:
            self.result()
        except BaseException as exc:  # noqa: BLE001 - the point is to return it
            return exc
        return None


_new_future = tuple.__new__


class Producer:
    """Sends records to topics of an embedded Broker.  Thread-safe.

    ``Producer(bootstrap="host:port", ...)`` instead of a Broker returns the network producer
    (``remote_producer.RemoteProducer``, a subclass with the same methods) talking Kafka's protocol
    to ``logbroker serve`` or a Kafka cluster."""

    def __new__(cls, broker=None, *args, bootstrap: str | None = None, **kwargs):
        if bootstrap is not None and cls is Producer:
            from .remote_producer import RemoteProducer

            cls = RemoteProducer
        return object.__new__(cls)

    def __init__(self, broker=None, *, bootstrap: str | None = None, idempotent: bool = False,
                 acks: int | str = "all", linger_ms: float = 5, batch_size: int = 65536,
                 compression: str | None = None, retries: int = 5, retry_backoff_ms: float = 100):
        """``idempotent`` needs ``acks="all"`` (ValueError otherwise) and a broker with
        ``init_producer_id()``; ``retries`` / ``retry_backoff_ms`` govern resending a batch whose
        append failed with a retriable error."""
        if broker is None:
            raise TypeError("Producer needs a Broker (embedded) or bootstrap='host:port' (network)")
        if bootstrap is not None:
            raise ValueError("give either a Broker or bootstrap='host:port', not both")
        check_producer_settings(acks, linger_ms, batch_size, retries, retry_backoff_ms, idempotent)
        self._broker = broker
        self._acks = 0 if acks in (0, "0") else -1
        self._linger = linger_ms / 1000.0
        self._batch_size = batch_size
        self._codec = codec_from_name(compression)
        self._clock = broker.clock
        # the system clock's milliseconds without two method calls per record
        self._now_ms = _system_now_ms if isinstance(broker.clock, SystemClock) else broker.clock.time_ms
        self._topics: dict[str, _TopicState] = {}
        self._in_flight: dict[tuple[str, int], list[_Batch]] = {}  # appended, durability not yet waited for
        self._retries = retries
        self._retry_backoff = retry_backoff_ms / 1000.0
        self._idempotent = bool(idempotent)
        self._producer_id = self._producer_epoch = -1
        self._sequences: dict[tuple[str, int], int] = {}  # next sequence per partition (idempotent only)
        if self._idempotent:
            self._init_producer_id()
        self._lock = threading.Lock()
        self._closed = False
        self._wake = threading.Event()
        self._linger_thread = None
        if linger_ms > 0:
            self._linger_thread = threading.Thread(target=self._linger_loop, name="logbroker-producer-linger",
                                                   daemon=True)
            self._linger_thread.start()

    def __enter__(self) -> "Producer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _topic_state(self, topic: str) -> _TopicState:
        state = self._topics.get(topic)
        if state is None:
            meta = self._broker.topic(topic)
            state = self._topics[topic] = _TopicState(meta.partitions, meta.log_config.max_message_bytes)
        return state

    def partitions_for(self, topic: str) -> list[int]:
        return list(range(self._topic_state(topic).partitions))

    def send(self, topic: str, value: bytes | str | None, key: bytes | str | None = None, *,
             headers: dict | list | None = None, partition: int | None = None,
             timestamp: int | None = None) -> SendFuture:
        """Queue one record; return a future for its metadata (topic, partition, offset, timestamp)."""
        # The hot path of the embedded API: a few list operations per record, nothing more.
        if value.__class__ is bytes:
            size = _RECORD_OVERHEAD + len(value)
        elif value is None:
            size = _RECORD_OVERHEAD
        else:
            value = _to_bytes(value, "value")
            size = _RECORD_OVERHEAD + len(value)
        if key is not None:
            if key.__class__ is not bytes:
                key = _to_bytes(key, "key")
            size += len(key)
        if headers:
            headers = _check_headers(headers)
            size += sum(len(k.encode()) + (len(v) if v else 0) + 10 for k, v in headers)
        if timestamp is None:
            timestamp = self._now_ms()
        elif timestamp.__class__ is not int or not 0 <= timestamp < _MAX_TIMESTAMP:
            raise InvalidRecordError(f"timestamp must be milliseconds since the epoch (an int >= 0), not {timestamp!r}")
        lock = self._lock
        lock.acquire()
        try:
            if self._closed:
                raise BrokerClosedError("the producer is closed")
            state = self._topics.get(topic) or self._topic_state(topic)
            if partition is None:
                if key is not None:
                    partition = mmh3.hash(key, 0, False) % state.partitions
                else:
                    partition = state.sticky
            elif partition.__class__ is not int or not 0 <= partition < state.partitions:
                raise LogbrokerError(f"topic {topic!r} has partitions 0..{state.partitions - 1}, not {partition!r}")
            batch = state.open[partition]
            if batch is None or batch.size + size > state.max_bytes:
                if size + _BATCH_OVERHEAD > state.max_bytes:
                    raise RecordTooLargeError(
                        f"a record of about {size} bytes cannot fit max.message.bytes={state.max_bytes} of topic {topic!r}")
                if batch is not None:
                    self._send(batch)
                batch = state.open[partition] = _Batch(self, topic, partition, self._clock.monotonic())
            values = batch.values
            index = len(values)
            values.append(value)
            batch.timestamps.append(timestamp)
            if key is not None or batch.keys is not None:
                if batch.keys is None:
                    batch.keys = [None] * index
                batch.keys.append(key)
            if headers or batch.headers is not None:
                if batch.headers is None:
                    batch.headers = [None] * index
                batch.headers.append(headers or None)
            batch.size += size
            if batch.size >= self._batch_size:
                self._send(batch)
        finally:
            lock.release()
        return _new_future(SendFuture, (batch, index))

    @property
    def producer_id(self) -> int:
        """The producer id an idempotent producer stamps on its batches (-1 otherwise)."""
        return self._producer_id

    @property
    def producer_epoch(self) -> int:
        return self._producer_epoch

    def _init_producer_id(self) -> None:
        """A fresh producer id: every partition's sequence starts again at 0."""
        self._producer_id = self._producer_epoch = -1
        self._sequences.clear()
        self._producer_id, self._producer_epoch = self._broker.init_producer_id()

    def _send(self, batch: _Batch) -> None:
        """Encode and append one batch (lock held); errors land on the batch's futures."""
        state = self._topics[batch.topic]
        if state.open[batch.partition] is batch:
            state.open[batch.partition] = None
            if state.sticky == batch.partition:  # the sticky batch is sent: keyless records move on
                state.sticky = (state.sticky + 1) % state.partitions
        if batch.appended:
            return
        batch.appended = True
        try:
            if self._idempotent:
                info = self._append_idempotent(batch)
            else:
                data = encode_batch_columns(batch.keys, batch.values, batch.headers, batch.timestamps,
                                            compression_type=self._codec)
                info = self._append(batch, data)
            batch.base_offset = info.base_offset
            batch.log_append_time = info.log_append_time
            if self._acks == 0:
                batch.durable = True  # nobody waits; the broker fsyncs it soon all the same
                self._broker.flush_soon(batch.topic, batch.partition)
            else:
                self._in_flight.setdefault((batch.topic, batch.partition), []).append(batch)
        except Exception as exc:  # whatever it is, it belongs to this batch's futures
            batch.error = exc

    def _append(self, batch: _Batch, data: bytes):
        """Append ``data``; on a retriable error send the same bytes again, up to ``retries`` times."""
        attempt = 0
        while True:
            try:
                return self._broker.append(batch.topic, batch.partition, data)
            except LogbrokerError as exc:
                if not exc.retriable or attempt >= self._retries:
                    raise
            attempt += 1
            time.sleep(self._retry_backoff)

    def _append_idempotent(self, batch: _Batch):
        """Stamp the producer id, epoch and the partition's next sequence, then append (with retries:
        a duplicate answer carries the original offsets).  A batch that fails for good leaves the
        broker's view of the sequence unknown, so the producer id is replaced."""
        if self._producer_id < 0:  # the last replacement failed: try again
            self._init_producer_id()
        key = (batch.topic, batch.partition)
        sequence = self._sequences.get(key, 0)
        data = encode_batch_columns(batch.keys, batch.values, batch.headers, batch.timestamps,
                                    compression_type=self._codec, producer_id=self._producer_id,
                                    producer_epoch=self._producer_epoch, base_sequence=sequence)
        self._sequences[key] = (sequence + len(batch.values)) % _SEQUENCE_MODULUS
        try:
            return self._append(batch, data)
        except BaseException:
            try:
                self._init_producer_id()
            except Exception:  # noqa: BLE001 - the batch's own error is the one to report
                pass
            raise

    def _complete(self, batch: _Batch) -> None:
        """Make ``batch`` appended and durable (called from a future's result())."""
        with self._lock:
            self._send(batch)
        if batch.error is None and not batch.durable:
            try:
                self._broker.wait_durable(batch.topic, batch.partition, batch.base_offset + len(batch.values))
                batch.durable = True
            except LogbrokerError as exc:
                batch.error = exc

    def flush(self, timeout: float | None = None) -> None:
        """Send every open batch and wait until everything sent so far is durable.

        With ``acks=0`` nothing is waited for: the batches are appended and the broker's flusher
        fsyncs them moments later (only then do consumers see them)."""
        with self._lock:
            for state in self._topics.values():
                for batch in state.open:
                    if batch is not None:
                        self._send(batch)
            in_flight, self._in_flight = self._in_flight, {}
        for (topic, partition), batches in in_flight.items():
            try:
                self._broker.wait_durable(topic, partition)
            except LogbrokerError as exc:
                for batch in batches:
                    batch.error = batch.error or exc
                raise
            for batch in batches:
                batch.durable = True

    def _linger_loop(self) -> None:
        while not self._wake.wait(self._linger):
            try:
                self._send_stale()
            except Exception:  # keep lingering; the batches carry their own errors
                pass

    def _send_stale(self) -> None:
        """Send the batches older than linger_ms and wait for their durability."""
        now = self._clock.monotonic()
        with self._lock:
            stale = [b for state in self._topics.values() for b in state.open
                     if b is not None and now - b.created >= self._linger]
            for batch in stale:
                self._send(batch)
        for batch in stale:
            if batch.error is None and self._acks != 0:
                self._complete(batch)

    def close(self) -> None:
        """Flush, stop the linger thread; later sends raise BrokerClosedError."""
        with self._lock:
            if self._closed:
                return
            self._closed = True  # under the lock: no send() slips in after the final flush
        try:
            self.flush()
        finally:
            self._wake.set()
            if self._linger_thread is not None:
                self._linger_thread.join()


def _to_bytes(value, what: str) -> bytes:
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise InvalidRecordError(f"record {what} must be bytes, str or None, not {type(value).__name__}")


def _check_headers(headers) -> list:
    items = list(headers.items()) if isinstance(headers, dict) else list(headers)
    out = []
    for hkey, hvalue in items:
        if not isinstance(hkey, str):
            raise InvalidRecordError(f"header keys must be str, not {type(hkey).__name__}")
        if hvalue is not None and type(hvalue) is not bytes:
            hvalue = _to_bytes(hvalue, "header value")
        out.append((hkey, hvalue))
    return out


__all__ = ["Producer", "RecordMetadata", "SendFuture", "partition_for_key"]
