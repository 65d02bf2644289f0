"""What the network clients share: librdkafka's errors as logbroker errors, base settings, metadata.

A ``confluent_kafka.KafkaError`` carries either a Kafka error code (>= 0, what the broker answered)
or one of librdkafka's local codes (negative: timeouts, transport failures, unknown partitions seen
in the client's metadata).  ``to_logbroker_error`` turns it into the logbroker exception for that
Kafka code where logbroker has one (``UnknownTopicOrPartitionError`` for 3, ``TopicAlreadyExistsError``
for 36, ...), a local code into its Kafka equivalent where there is one (a local timeout is
``RequestTimedOutError``), and anything else into ``RemoteKafkaError`` whose ``error_code`` is the
code librdkafka reported.  Every such exception keeps the original as ``.kafka_error``.
"""

from __future__ import annotations

import logging
import time

from .. import errors as _errors
from ..errors import LogbrokerError, OffsetOutOfRangeError, RequestTimedOutError, UnknownTopicOrPartitionError

log = logging.getLogger("logbroker.client.remote")


class RemoteKafkaError(LogbrokerError):
    """An error reported by librdkafka (or by the remote broker) that logbroker has no class for."""

    def __init__(self, message: str, error_code: int = -1, retriable: bool = False):
        super().__init__(message)
        self.error_code = error_code
        self.retriable = retriable


# Kafka error code -> the logbroker class that names it (only classes declaring their own code).
_BY_CODE: dict[int, type[LogbrokerError]] = {
    cls.__dict__["error_code"]: cls
    for cls in vars(_errors).values()
    if isinstance(cls, type) and issubclass(cls, LogbrokerError) and cls is not LogbrokerError
    and "error_code" in cls.__dict__
}

# librdkafka's local codes that mean a Kafka condition.
_LOCAL = {
    -192: RequestTimedOutError,   # _MSG_TIMED_OUT
    -185: RequestTimedOutError,   # _TIMED_OUT
    -166: RequestTimedOutError,   # _TIMED_OUT_QUEUE
    -188: UnknownTopicOrPartitionError,  # _UNKNOWN_TOPIC
    -190: UnknownTopicOrPartitionError,  # _UNKNOWN_PARTITION
    -140: OffsetOutOfRangeError,  # _AUTO_OFFSET_RESET (auto_offset_reset="error")
}

UNSUPPORTED_FEATURE = -165  # librdkafka's _UNSUPPORTED_FEATURE: the broker does not serve the API


def to_logbroker_error(kafka_error, context: str = "") -> LogbrokerError:
    """The logbroker exception for a ``confluent_kafka.KafkaError`` (or a KafkaException)."""
    if hasattr(kafka_error, "args") and kafka_error.args and not hasattr(kafka_error, "code"):
        kafka_error = kafka_error.args[0]  # a KafkaException wraps its KafkaError
    if not hasattr(kafka_error, "code"):
        return RemoteKafkaError(f"{context}: {kafka_error}" if context else str(kafka_error))
    code = kafka_error.code()
    text = kafka_error.str()
    name = kafka_error.name()
    message = f"{context}: {text}" if context else text
    if name and name not in text:
        message += f" ({name})"
    cls = _BY_CODE.get(code) if code >= 0 else _LOCAL.get(code)
    if cls is None:
        exc: LogbrokerError = RemoteKafkaError(message, code, bool(kafka_error.retriable()))
    else:
        exc = cls(message)
    exc.kafka_error = kafka_error
    return exc


def raise_from_kafka(exc: BaseException, context: str = "") -> None:
    """Re-raise a confluent_kafka exception as a logbroker one (other exceptions unchanged)."""
    from confluent_kafka import KafkaError, KafkaException

    if isinstance(exc, KafkaException):
        raise to_logbroker_error(exc.args[0] if exc.args else exc, context) from None
    if isinstance(exc, KafkaError):
        raise to_logbroker_error(exc, context) from None
    raise exc


def base_config(bootstrap: str, client_id: str, extra: dict | None) -> dict:
    """librdkafka settings common to every client: the address, a client id, and librdkafka's own
    log lines routed to Python logging (logger ``logbroker.client.remote``) instead of stderr."""
    if not isinstance(bootstrap, str) or not bootstrap.strip():
        raise ValueError(f"bootstrap must be 'host:port' (comma-separated for several), got {bootstrap!r}")
    config = {"bootstrap.servers": bootstrap, "client.id": client_id, "logger": log}
    config.update(extra or {})
    return config


_LEADER_NOT_AVAILABLE = 5


def partition_count(client, topic: str, timeout: float) -> int:
    """The partition count of ``topic`` from ``client.list_topics`` (a confluent Producer, Consumer
    or AdminClient); UnknownTopicOrPartitionError when the broker does not know it.  A topic just
    created may briefly have no leader: asked again until ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            metadata = client.list_topics(topic, timeout=max(0.1, deadline - time.monotonic()))
        except Exception as exc:  # noqa: BLE001 - KafkaException
            raise_from_kafka(exc, f"cannot read the metadata of topic {topic!r}")
        meta = metadata.topics.get(topic)
        error = None if meta is None else meta.error
        if meta is not None and error is None and meta.partitions:
            return len(meta.partitions)
        retry = meta is not None and (error is None or error.code() == _LEADER_NOT_AVAILABLE)
        if not retry or time.monotonic() >= deadline:
            if error is not None:
                raise to_logbroker_error(error, f"topic {topic!r}")
            raise UnknownTopicOrPartitionError(f"topic {topic!r} does not exist")
        time.sleep(0.05)


__all__ = ["RemoteKafkaError", "UNSUPPORTED_FEATURE", "base_config", "partition_count", "raise_from_kafka",
           "to_logbroker_error"]
