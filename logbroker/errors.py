"""The one exception tree.

Every error carries the Kafka error code a wire client would see for it (``error_code``), so the
server (and the CLI) translate exceptions in exactly one place.  Codes are Kafka's; -1 is
UNKNOWN_SERVER_ERROR for conditions Kafka has no code for.  ``retriable`` says whether a producer
may send the same batch again (same producer id, epoch and sequence) and hope for another answer.
"""

from __future__ import annotations


class LogbrokerError(Exception):
    """Root of every error logbroker raises on purpose."""

    error_code = -1  # UNKNOWN_SERVER_ERROR
    retriable = False


class OffsetOutOfRangeError(LogbrokerError):
    error_code = 1


class CorruptRecordError(LogbrokerError):
    """A batch failed its CRC or structural checks (CORRUPT_MESSAGE)."""

    error_code = 2


class UnknownTopicOrPartitionError(LogbrokerError):
    error_code = 3


class RequestTimedOutError(LogbrokerError):
    """No answer in time: the request may or may not have taken effect (a lost acknowledgement)."""

    error_code = 7
    retriable = True


class RecordTooLargeError(LogbrokerError):
    """A batch is larger than the topic's ``max.message.bytes`` (MESSAGE_TOO_LARGE)."""

    error_code = 10


class InvalidTopicError(LogbrokerError):
    """A topic name breaks Kafka's rules (INVALID_TOPIC_EXCEPTION)."""

    error_code = 17


class TopicAlreadyExistsError(LogbrokerError):
    error_code = 36


class InvalidPartitionsError(LogbrokerError):
    error_code = 37


class InvalidConfigError(LogbrokerError):
    error_code = 40


class InvalidRequestError(LogbrokerError):
    error_code = 42


class OutOfOrderSequenceError(LogbrokerError):
    """An idempotent batch's sequence does not follow the producer's last one (OUT_OF_ORDER_SEQUENCE_NUMBER)."""

    error_code = 45


class DuplicateSequenceError(LogbrokerError):
    """DUPLICATE_SEQUENCE_NUMBER: older brokers' answer to a retried batch; clients treat it as success.
    logbroker answers a duplicate with the original offsets instead (``AppendInfo.duplicate``)."""

    error_code = 46


class InvalidProducerEpochError(LogbrokerError):
    """The batch's producer epoch is older than the one the partition knows: the producer was fenced."""

    error_code = 47


class KafkaStorageError(LogbrokerError):
    """The disk said no (EIO, ENOSPC, ...): the partition cannot take the write."""

    error_code = 56


class UnknownProducerIdError(LogbrokerError):
    """UNKNOWN_PRODUCER_ID: what brokers before Kafka 2.5 answered when a producer's state was gone."""

    error_code = 59


class InvalidRecordError(LogbrokerError):
    """A well-formed batch that Kafka would still refuse (INVALID_RECORD)."""

    error_code = 87


class DataDirLockedError(LogbrokerError):
    """Another process owns the data directory."""

    def __init__(self, message: str, *, owner_pid: int | None = None, listen: str | None = None):
        super().__init__(message)
        self.owner_pid = owner_pid
        self.listen = listen


class CorruptSnapshotError(LogbrokerError):
    """A producer-state ``.snapshot`` file failed its checks (length, version, CRC); it is rebuilt from the log."""


class ReadOnlyError(LogbrokerError):
    """A write was attempted through a read-only open of a data directory."""


class BrokerClosedError(LogbrokerError):
    """The broker (or client) was already closed."""
