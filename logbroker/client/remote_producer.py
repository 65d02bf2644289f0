"""The network Producer: the embedded Producer's API over confluent-kafka (librdkafka).

``Producer(bootstrap="host:port", ...)`` returns a RemoteProducer: ``send()`` hands the record to
librdkafka, which batches per partition (``batch_size``, ``linger_ms``), compresses, retries and
(with ``idempotent=True``) numbers the batches itself; the future a send returns is completed by the
delivery report, and waiting on it (``result()``) drives ``poll()`` so that it completes without a
background thread.  ``flush()`` waits for every record sent so far.

Keyed records pick their partition exactly as the embedded Producer does (murmur3 of the key modulo
the partition count, read once per topic from the broker's metadata), so the same key lands on the
same partition whichever way it was produced.  Keyless records use librdkafka's sticky partitioner.
``partitioner=`` names another librdkafka partitioner instead (e.g. ``"murmur2_random"``, the Java
client's), which then also places keyed records.

Errors: a record the broker refuses fails its future with the logbroker exception for the Kafka
error code (``remote_errors``); a record not acknowledged within ``delivery_timeout_ms`` fails with
RequestTimedOutError.  With ``acks=0`` nothing is acknowledged: offsets come back as -1.  librdkafka
reads a timestamp of 0 as "now" (the embedded producer stores 0).
"""

from __future__ import annotations

import threading
import time

from ..errors import BrokerClosedError, InvalidRecordError, LogbrokerError, RequestTimedOutError
from ..records.compression import CODEC_NAMES, codec_from_name
from .producer import (_MAX_TIMESTAMP, Producer, RecordMetadata, _check_headers, _to_bytes, check_producer_settings,
                       partition_for_key)
from .remote_common import base_config, partition_count, raise_from_kafka, to_logbroker_error



class RemoteSendFuture:
    """The outcome of one ``send()``: ``result()`` gives RecordMetadata or raises the error."""

    __slots__ = ("_producer", "_topic", "_partition", "_offset", "_timestamp", "_error", "_done")

    def __init__(self, producer: "RemoteProducer", topic: str):
        self._producer = producer
        self._topic = topic
        self._partition = -1
        self._offset = -1
        self._timestamp = -1
        self._error: BaseException | None = None
        self._done = False

    def _deliver(self, err, msg) -> None:  # librdkafka's delivery report, from poll()/flush()
        if err is not None:
            self._error = to_logbroker_error(err, f"sending to topic {self._topic!r} failed")
        else:
            self._partition = msg.partition()
            self._offset = msg.offset() if msg.offset() is not None and msg.offset() >= 0 else -1
            self._timestamp = msg.timestamp()[1]
        self._done = True

    def done(self) -> bool:
        return self._done

    def result(self, timeout: float | None = None) -> RecordMetadata:
        if not self._done:
            self._producer._wait_for(self, timeout)
        if self._error is not None:
            raise self._error
        return RecordMetadata(self._topic, self._partition, self._offset, self._timestamp)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        try:
            self.result(timeout)
        except BaseException as exc:  # noqa: BLE001 - the point is to return it
            return exc
        return None


class RemoteProducer(Producer):
    """Sends records to a Kafka-protocol broker (``logbroker serve``, Kafka, Redpanda).  Thread-safe."""

    def __init__(self, broker=None, *, bootstrap: str | None = None, idempotent: bool = False,
                 acks: int | str = "all", linger_ms: float = 5, batch_size: int = 65536,
                 compression: str | None = None, retries: int = 5, retry_backoff_ms: float = 100,
                 delivery_timeout_ms: int = 120000, request_timeout_ms: int = 30000,
                 partitioner: str | None = None, client_id: str = "logbroker", config: dict | None = None):
        """Same arguments as the embedded Producer, plus: ``delivery_timeout_ms`` (how long a record
        may wait for its acknowledgement, retries included), ``request_timeout_ms`` (metadata
        look-ups), ``partitioner`` (a librdkafka partitioner name; default: murmur3 as embedded),
        ``client_id`` and ``config`` (further librdkafka settings, passed as they are)."""
        from confluent_kafka import Producer as KafkaProducer

        if broker is not None:
            raise ValueError("give either a Broker or bootstrap='host:port', not both")
        check_producer_settings(acks, linger_ms, batch_size, retries, retry_backoff_ms, idempotent)
        codec = CODEC_NAMES[codec_from_name(compression)]  # InvalidRecordError for unknown names
        settings = {
            "acks": "0" if acks in (0, "0") else "1" if acks in (1, "1") else "all",
            "enable.idempotence": bool(idempotent),
            "linger.ms": linger_ms,
            "batch.size": batch_size,
            "compression.type": codec,
            "retries": retries if not idempotent else max(retries, 1),
            "retry.backoff.ms": int(retry_backoff_ms),
            "delivery.timeout.ms": int(delivery_timeout_ms),
        }
        if partitioner is not None:
            settings["partitioner"] = partitioner
        settings.update(config or {})
        self._bootstrap = bootstrap
        self._murmur3 = partitioner is None
        self._request_timeout = request_timeout_ms / 1000.0
        self._delivery_timeout = delivery_timeout_ms / 1000.0
        self._acks = 0 if acks in (0, "0") else -1
        self._idempotent = bool(idempotent)
        try:
            self._rk = KafkaProducer(base_config(bootstrap, client_id, settings))
        except Exception as exc:  # noqa: BLE001 - KafkaException (bad settings) becomes a logbroker error
            raise_from_kafka(exc, "cannot create the producer")
        self._partition_counts: dict[str, int] = {}
        self._lock = threading.Lock()
        self._closed = False

    @property
    def bootstrap(self) -> str:
        return self._bootstrap

    # ---- metadata ------------------------------------------------------------------------------

    def _partition_count(self, topic: str) -> int:
        count = self._partition_counts.get(topic)
        if count is None:
            count = partition_count(self._rk, topic, self._request_timeout)
            with self._lock:
                self._partition_counts[topic] = count
        return count

    def partitions_for(self, topic: str) -> list[int]:
        return list(range(self._partition_count(topic)))

    @property
    def producer_id(self) -> int:
        """librdkafka keeps the producer id to itself: -1."""
        return -1

    @property
    def producer_epoch(self) -> int:
        return -1

    # ---- sending -------------------------------------------------------------------------------

    def send(self, topic: str, value: bytes | str | None, key: bytes | str | None = None, *,
             headers: dict | list | None = None, partition: int | None = None,
             timestamp: int | None = None) -> RemoteSendFuture:
        """Queue one record; return a future for its metadata (topic, partition, offset, timestamp)."""
        if self._closed:
            raise BrokerClosedError("the producer is closed")
        if value is not None and value.__class__ is not bytes:
            value = _to_bytes(value, "value")
        if key is not None and key.__class__ is not bytes:
            key = _to_bytes(key, "key")
        if headers:
            headers = _check_headers(headers)
        else:
            headers = None
        if timestamp is None:
            timestamp = 0  # librdkafka: now
        elif timestamp.__class__ is not int or not 0 <= timestamp < _MAX_TIMESTAMP:
            raise InvalidRecordError(f"timestamp must be milliseconds since the epoch (an int >= 0), not {timestamp!r}")
        count = self._partition_count(topic)
        if partition is None:
            if key is not None and self._murmur3:
                partition = partition_for_key(key, count)
            else:
                partition = -1  # librdkafka's partitioner decides
        elif partition.__class__ is not int or not 0 <= partition < count:
            raise LogbrokerError(f"topic {topic!r} has partitions 0..{count - 1}, not {partition!r}")
        future = RemoteSendFuture(self, topic)
        deadline = None
        while True:
            try:
                self._rk.produce(topic, value, key, partition=partition, on_delivery=future._deliver,
                                 timestamp=timestamp, headers=headers)
                break
            except BufferError:  # librdkafka's queue is full: let deliveries drain it
                if deadline is None:
                    deadline = time.monotonic() + self._delivery_timeout
                elif time.monotonic() >= deadline:
                    raise RequestTimedOutError(
                        "the producer's queue stayed full: the broker does not keep up") from None
                self._rk.poll(0.05)
            except Exception as exc:  # noqa: BLE001 - KafkaException
                raise_from_kafka(exc, f"cannot send to topic {topic!r}")
        self._rk.poll(0)
        return future

    def _wait_for(self, future: RemoteSendFuture, timeout: float | None) -> None:
        """Serve delivery reports until ``future`` is done (or ``timeout`` seconds pass)."""
        limit = self._delivery_timeout + self._request_timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        while not future._done:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RequestTimedOutError(
                    f"no acknowledgement for a record of topic {future._topic!r} within {limit:g} s")
            self._rk.poll(min(remaining, 0.05))

    def flush(self, timeout: float | None = None) -> None:
        """Send everything queued and wait for every acknowledgement (or failure) of what was sent so
        far; RequestTimedOutError if some are still missing after ``timeout`` seconds."""
        limit = self._delivery_timeout + self._request_timeout if timeout is None else timeout
        left = self._rk.flush(limit)
        if left:
            raise RequestTimedOutError(f"{left} record(s) still unacknowledged after {limit:g} s")

    def close(self) -> None:
        """Flush; later sends raise BrokerClosedError."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self.flush()

    def __repr__(self) -> str:
        return f"<RemoteProducer bootstrap={self._bootstrap!r}>"


__all__ = ["RemoteProducer", "RemoteSendFuture"]
