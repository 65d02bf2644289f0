"""The one exception tree.

Every error carries the Kafka error code a wire client would see for it (``error_code``), so the
server (and the CLI) translate exceptions in exactly one place.  Codes are Kafka's; -1 is
UNKNOWN_SERVER_ERROR for conditions Kafka has no code for.
"""

from __future__ import annotations


class LogbrokerError(Exception):
    """Root of every error logbroker raises on purpose."""

    error_code = -1  # UNKNOWN_SERVER_ERROR


class OffsetOutOfRangeError(LogbrokerError):
    error_code = 1


class CorruptRecordError(LogbrokerError):
    """A batch failed its CRC or structural checks (CORRUPT_MESSAGE)."""

    error_code = 2


class UnknownTopicOrPartitionError(LogbrokerError):
    error_code = 3


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


class KafkaStorageError(LogbrokerError):
    """The disk said no (EIO, ENOSPC, ...): the partition cannot take the write."""

    error_code = 56


class InvalidRecordError(LogbrokerError):
    """A well-formed batch that Kafka would still refuse (INVALID_RECORD)."""

    error_code = 87


class DataDirLockedError(LogbrokerError):
    """Another process owns the data directory."""

    def __init__(self, message: str, *, owner_pid: int | None = None, listen: str | None = None):
        super().__init__(message)
        self.owner_pid = owner_pid
        self.listen = listen


class ReadOnlyError(LogbrokerError):
    """A write was attempted through a read-only open of a data directory."""


class BrokerClosedError(LogbrokerError):
    """The broker (or client) was already closed."""
