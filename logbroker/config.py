"""Topic configuration under Kafka's names, validated once at the edge.

A topic stores its overrides as strings (as Kafka does); ``LogConfig.from_overrides`` parses and
checks them against ``TOPIC_CONFIGS`` and yields a frozen object the storage layer reads.  Unknown
names and bad values raise ``InvalidConfigError`` naming the key and what is allowed.

One deliberate difference from Kafka's defaults: ``flush.messages`` defaults to 1, which means an
append is acknowledged only once it is fsynced (with group commit).  Kafka relies on replication
instead and never fsyncs on the produce path; a single-node broker cannot.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Callable

from .errors import InvalidConfigError

LONG_MAX = 9_223_372_036_854_775_807

# Kafka's broker config ``producer.id.expiration.ms``: an idempotent producer's state in a partition
# is forgotten after this long without writes (retention never forgets it).  A broker-wide setting,
# not a topic config: PartitionLog and LogManager take it as ``producer_id_expiration_ms``.
PRODUCER_ID_EXPIRATION_MS = 86_400_000


def _int_parser(minimum: int, maximum: int = LONG_MAX) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(str(text).strip())
        if not minimum <= value <= maximum:
            raise ValueError(f"must be between {minimum} and {maximum}")
        return value

    return parse


def _float_parser(minimum: float, maximum: float) -> Callable[[str], float]:
    def parse(text: str) -> float:
        value = float(str(text).strip())
        if not minimum <= value <= maximum:
            raise ValueError(f"must be between {minimum} and {maximum}")
        return value

    return parse


def _choice_parser(*choices: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = str(text).strip()
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return value

    return parse


def _cleanup_policy(text: str) -> str:
    parts = sorted(p.strip() for p in str(text).split(",") if p.strip())
    if not parts or any(p not in ("delete", "compact") for p in parts) or len(set(parts)) != len(parts):
        raise ValueError("must be delete, compact or delete,compact")
    return ",".join(sorted(parts, key=["delete", "compact"].index))


# name -> (attribute, parser, default as Kafka writes it)
TOPIC_CONFIGS: dict[str, tuple[str, Callable[[str], object], str]] = {
    "segment.bytes": ("segment_bytes", _int_parser(1024, 2**31 - 1), "1073741824"),
    "segment.ms": ("segment_ms", _int_parser(1), "604800000"),
    "segment.index.bytes": ("segment_index_bytes", _int_parser(8, 2**31 - 1), "10485760"),
    "index.interval.bytes": ("index_interval_bytes", _int_parser(0, 2**31 - 1), "4096"),
    "retention.ms": ("retention_ms", _int_parser(-1), "604800000"),
    "retention.bytes": ("retention_bytes", _int_parser(-1), "-1"),
    "cleanup.policy": ("cleanup_policy", _cleanup_policy, "delete"),
    "delete.retention.ms": ("delete_retention_ms", _int_parser(0), "86400000"),
    "min.cleanable.dirty.ratio": ("min_cleanable_dirty_ratio", _float_parser(0.0, 1.0), "0.5"),
    "max.message.bytes": ("max_message_bytes", _int_parser(0, 2**31 - 1), "1048588"),
    "message.timestamp.type": (
        "message_timestamp_type",
        _choice_parser("CreateTime", "LogAppendTime"),
        "CreateTime",
    ),
    "flush.messages": ("flush_messages", _int_parser(1), "1"),
    "flush.ms": ("flush_ms", _int_parser(0), str(LONG_MAX)),
    # Batches are stored as the producer compressed them; recompressing on the broker is not
    # implemented, so the other values Kafka knows are refused rather than silently ignored.
    "compression.type": ("compression_type", _choice_parser("producer"), "producer"),
}


@dataclass(frozen=True)
class LogConfig:
    segment_bytes: int
    segment_ms: int
    segment_index_bytes: int
    index_interval_bytes: int
    retention_ms: int
    retention_bytes: int
    cleanup_policy: str
    delete_retention_ms: int
    min_cleanable_dirty_ratio: float
    max_message_bytes: int
    message_timestamp_type: str
    flush_messages: int
    flush_ms: int
    compression_type: str

    @classmethod
    def from_overrides(cls, overrides: dict[str, str] | None = None) -> "LogConfig":
        """Defaults, then ``overrides`` (Kafka names, string or number values), all validated."""
        values = {attr: parse(default) for attr, parse, default in TOPIC_CONFIGS.values()}
        for name, raw in validate_overrides(overrides or {}).items():
            attr, parse, _ = TOPIC_CONFIGS[name]
            values[attr] = parse(raw)
        return cls(**values)

    @property
    def compact(self) -> bool:
        return "compact" in self.cleanup_policy

    @property
    def delete(self) -> bool:
        return "delete" in self.cleanup_policy

    @property
    def sync_on_append(self) -> bool:
        """True when an acknowledgement must wait for fsync (``flush.messages=1`` or ``flush.ms=0``)."""
        return self.flush_messages <= 1 or self.flush_ms == 0

    @property
    def log_append_time(self) -> bool:
        return self.message_timestamp_type == "LogAppendTime"


def validate_overrides(overrides: dict[str, object]) -> dict[str, str]:
    """Check every override; return them normalised to strings.  Raises InvalidConfigError."""
    result: dict[str, str] = {}
    for name, raw in overrides.items():
        if name not in TOPIC_CONFIGS:
            raise InvalidConfigError(
                f"unknown topic config {name!r}; known: {', '.join(sorted(TOPIC_CONFIGS))}"
            )
        _, parse, _ = TOPIC_CONFIGS[name]
        try:
            parse(str(raw))
        except ValueError as exc:
            raise InvalidConfigError(f"invalid value {raw!r} for {name}: {exc}") from None
        result[name] = str(raw).strip()
    return result


def default_config_strings() -> dict[str, str]:
    return {name: default for name, (_, _, default) in TOPIC_CONFIGS.items()}


assert {f.name for f in fields(LogConfig)} == {a for a, _, _ in TOPIC_CONFIGS.values()}


# Kafka's topic-name rules: ASCII letters, digits, '.', '_' and '-'; 1 to 249 characters; not '.'
# or '..'.  Checked before anything touches the file system (a name is part of directory names).
TOPIC_NAME_MAX_LENGTH = 249
_TOPIC_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def validate_topic_name(name: object) -> str:
    """Return ``name`` if Kafka would accept it as a topic name; raise InvalidTopicError if not."""
    from .errors import InvalidTopicError

    if not isinstance(name, str) or not name:
        raise InvalidTopicError("topic name must be a non-empty string")
    if name in (".", ".."):
        raise InvalidTopicError(f"topic name cannot be {name!r}")
    if len(name) > TOPIC_NAME_MAX_LENGTH:
        raise InvalidTopicError(
            f"topic name is {len(name)} characters long; the limit is {TOPIC_NAME_MAX_LENGTH}")
    bad = sorted(set(name) - _TOPIC_NAME_CHARS)
    if bad:
        raise InvalidTopicError(
            f"topic name {name!r} contains {''.join(bad)!r}; only ASCII letters, digits, '.', '_' and '-' are allowed")
    return name
