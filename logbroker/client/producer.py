"""The embedded Producer: per-partition batching over a Broker, futures per record.

``send()`` only appends a tuple to the partition's open batch; a batch is encoded (one
``encode_batch`` call) and appended to the log when it reaches ``batch_size`` bytes, when it is
``linger_ms`` old (a background thread checks), on ``flush()`` / ``close()``, or when somebody asks
one of its futures for its result.  ``result()`` returns once the batch is durable by the topic's
rule (fsynced, by default), so many batches share one fsync.

Keys choose partitions with murmur3 (``mmh3.hash(key) % partitions``, unsigned); keyless records go
round-robin over the partitions.
"""

from __future__ import annotations

import threading
from typing import NamedTuple

import mmh3

from ..errors import BrokerClosedError, InvalidRecordError, LogbrokerError, RecordTooLargeError
from ..records.batch import LOG_APPEND_TIME, encode_batch
from ..records.compression import codec_from_name

_BATCH_OVERHEAD = 61
_RECORD_OVERHEAD = 24  # varints and attributes per record, a generous estimate


class RecordMetadata(NamedTuple):
    topic: str
    partition: int
    offset: int
    timestamp: int


def partition_for_key(key: bytes, partitions: int) -> int:
    """The partition murmur3 picks for ``key`` (the same on every run and machine)."""
    return mmh3.hash(key, 0, False) % partitions


class _Batch:
    __slots__ = ("topic", "partition", "records", "size", "created", "base_offset", "log_append_time", "error",
                 "appended", "durable", "producer")

    def __init__(self, producer, topic: str, partition: int, created: float):
        self.producer = producer
        self.topic = topic
        self.partition = partition
        self.records: list = []
        self.size = _BATCH_OVERHEAD
        self.created = created
        self.base_offset = -1
        self.log_append_time = -1
        self.error: BaseException | None = None
        self.appended = False
        self.durable = False


class SendFuture:
    """The outcome of one ``send()``: ``result()`` gives RecordMetadata or raises the error."""

    __slots__ = ("_batch", "_index")

    def __init__(self, batch: _Batch, index: int):
        self._batch = batch
        self._index = index

    def done(self) -> bool:
        return self._batch.durable or self._batch.error is not None

    def result(self, timeout: float | None = None) -> RecordMetadata:
        batch = self._batch
        if not batch.durable and batch.error is None:
            batch.producer._complete(batch)
        if batch.error is not None:
            raise batch.error
        timestamp = batch.log_append_time if batch.log_append_time >= 0 else batch.records[self._index][3]
        return RecordMetadata(batch.topic, batch.partition, batch.base_offset + self._index, timestamp)

    def exception(self) -> BaseException | None:
        try:
            self.result()
        except BaseException as exc:  # noqa: BLE001 - the point is to return it
            return exc
        return None


class Producer:
    """Sends records to topics of an embedded Broker.  Thread-safe."""

    def __init__(self, broker, *, acks: int | str = "all", linger_ms: float = 5, batch_size: int = 65536,
                 compression: str | None = None):
        if acks not in (0, 1, -1, "0", "1", "-1", "all"):
            raise ValueError(f"acks must be 0, 1 or 'all', got {acks!r}")
        if batch_size <= 0 or linger_ms < 0:
            raise ValueError("batch_size must be positive and linger_ms non-negative")
        self._broker = broker
        self._acks = 0 if acks in (0, "0") else -1
        self._linger = linger_ms / 1000.0
        self._batch_size = batch_size
        self._codec = codec_from_name(compression)
        self._clock = broker.clock
        self._open: dict[tuple[str, int], _Batch] = {}
        self._partitions: dict[str, tuple[int, int]] = {}  # topic -> (count, max batch bytes)
        self._round_robin = 0
        self._lock = threading.RLock()
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

    def _topic_info(self, topic: str) -> tuple[int, int]:
        info = self._partitions.get(topic)
        if info is None:
            meta = self._broker.topic(topic)
            info = (meta.partitions, meta.log_config.max_message_bytes)
            self._partitions[topic] = info
        return info

    def partitions_for(self, topic: str) -> list[int]:
        return list(range(self._topic_info(topic)[0]))

    def send(self, topic: str, value: bytes | str | None, key: bytes | str | None = None, *,
             headers: dict | list | None = None, partition: int | None = None,
             timestamp: int | None = None) -> SendFuture:
        """Queue one record; return a future for its metadata (topic, partition, offset, timestamp)."""
        if type(value) is not bytes and value is not None:
            value = _to_bytes(value, "value")
        if type(key) is not bytes and key is not None:
            key = _to_bytes(key, "key")
        if headers:
            headers = _check_headers(headers)
        if timestamp is None:
            timestamp = self._clock.time_ms()
        size = _RECORD_OVERHEAD + (len(value) if value else 0) + (len(key) if key else 0)
        with self._lock:
            if self._closed:
                raise BrokerClosedError("the producer is closed")
            count, max_bytes = self._topic_info(topic)
            if partition is None:
                if key is not None:
                    partition = mmh3.hash(key, 0, False) % count
                else:
                    partition = self._round_robin % count
                    self._round_robin += 1
            elif not 0 <= partition < count:
                raise LogbrokerError(f"topic {topic!r} has partitions 0..{count - 1}, not {partition}")
            if size + _BATCH_OVERHEAD > max_bytes:
                raise RecordTooLargeError(
                    f"a record of about {size} bytes cannot fit max.message.bytes={max_bytes} of topic {topic!r}")
            tp = (topic, partition)
            batch = self._open.get(tp)
            if batch is not None and batch.size + size > max_bytes:
                self._send(batch)
                batch = None
            if batch is None:
                batch = self._open[tp] = _Batch(self, topic, partition, self._clock.monotonic())
            index = len(batch.records)
            batch.records.append((key, value, headers, timestamp))
            batch.size += size
            if batch.size >= self._batch_size:
                self._send(batch)
        return SendFuture(batch, index)

    def _send(self, batch: _Batch) -> None:
        """Encode and append one batch (under the lock); errors land on the batch's futures."""
        if self._open.get((batch.topic, batch.partition)) is batch:
            del self._open[(batch.topic, batch.partition)]
        if batch.appended:
            return
        batch.appended = True
        try:
            data = encode_batch(batch.records, compression_type=self._codec)
            info = self._broker.append(batch.topic, batch.partition, data)
            batch.base_offset = info.base_offset
            batch.log_append_time = info.log_append_time
            if self._acks == 0:
                batch.durable = True
        except LogbrokerError as exc:
            batch.error = exc
        except OSError as exc:
            batch.error = exc

    def _complete(self, batch: _Batch) -> None:
        """Make ``batch`` appended and durable (called from a future's result())."""
        with self._lock:
            self._send(batch)
        if batch.error is None and not batch.durable:
            try:
                self._broker.wait_durable(batch.topic, batch.partition, batch.base_offset + len(batch.records))
                batch.durable = True
            except LogbrokerError as exc:
                batch.error = exc

    def flush(self, timeout: float | None = None) -> None:
        """Send every open batch and wait until all are durable."""
        with self._lock:
            batches = list(self._open.values())
            for batch in batches:
                self._send(batch)
        touched = {(b.topic, b.partition): b for b in batches if b.error is None}
        for (topic, partition), batch in touched.items():
            self._complete(batch)
        if self._acks != 0:
            for topic, partition in touched:
                self._broker.wait_durable(topic, partition)

    def _linger_loop(self) -> None:
        while not self._wake.wait(self._linger):
            now = self._clock.monotonic()
            with self._lock:
                stale = [b for b in self._open.values() if now - b.created >= self._linger]
                for batch in stale:
                    self._send(batch)
            for batch in stale:
                if batch.error is None and self._acks != 0:
                    try:
                        self._complete(batch)
                    except (LogbrokerError, OSError):
                        pass

    def close(self) -> None:
        """Flush, stop the linger thread; later sends raise BrokerClosedError."""
        if self._closed:
            return
        try:
            self.flush()
        finally:
            self._closed = True
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


__all__ = ["Producer", "RecordMetadata", "SendFuture", "partition_for_key", "LOG_APPEND_TIME"]
