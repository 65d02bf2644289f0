"""The records of ``__share_group_state``: keys, the group settings, dead-letter headers (sans-I/O).

The share-group service (broker/shares.py) writes one full state snapshot per share-partition per
change, so the topic is compacted and the latest value of each key is the whole truth::

    key    int16 0, group string16, topic string16, topic id string16, partition int32
           -> value: SharePartition's state record (share_partition.py), null = forgotten
    key    int16 1, group string16
           -> value: the settings set for the group, as a JSON object (ShareGroupConfig's field
              names; the others follow the broker's defaults), null = group deleted

(string16 = int16 length + UTF-8 bytes.)  The topic id in the key tells a deleted-and-recreated topic's
state from the current one's.  A dead letter copied to a dead-letter topic carries the original key,
value, timestamp and headers plus the ``logbroker.dlq.*`` headers below (ASCII values): group, topic,
partition, offset, delivery.count, reason and topic.id (the source topic's id).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, fields

from ..errors import InvalidConfigError
from .share_partition import DeadLetter

SHARE_STATE_TOPIC = "__share_group_state"
SHARE_STATE_PARTITIONS = 50
SHARE_STATE_CONFIG = {"cleanup.policy": "compact", "segment.bytes": str(100 * 1024 * 1024)}
DLQ_HEADER_PREFIX = "logbroker.dlq."

_STATE_KEY, _CONFIG_KEY = 0, 1


@dataclass(frozen=True)
class ShareGroupConfig:
    lock_duration_ms: int = 30000  # group.share.record.lock.duration.ms: the visibility timeout
    delivery_count_limit: int = 5  # group.share.delivery.count.limit
    dead_letter_topic: str | None = None
    auto_offset_reset: str = "latest"  # share.auto.offset.reset: "earliest" | "latest"

    def check(self) -> "ShareGroupConfig":
        if not 1 <= self.lock_duration_ms <= 3_600_000:
            raise InvalidConfigError(f"lock duration must be 1 ms .. 1 h, got {self.lock_duration_ms} ms")
        if not 1 <= self.delivery_count_limit <= 100:
            raise InvalidConfigError(f"delivery count limit must be 1..100, got {self.delivery_count_limit}")
        if self.auto_offset_reset not in ("earliest", "latest"):
            raise InvalidConfigError(f"auto offset reset must be 'earliest' or 'latest', got {self.auto_offset_reset!r}")
        return self

    @staticmethod
    def encode_overrides(overrides: dict) -> bytes:
        """A group's record holds only the settings someone set; the others follow the broker's
        defaults of the moment (as Kafka's group configs do)."""
        return json.dumps(overrides, sort_keys=True).encode()

    @staticmethod
    def decode_overrides(value: bytes) -> dict:
        """The settings of a config record (unknown names are dropped); ValueError if not JSON."""
        data = json.loads(value)
        if not isinstance(data, dict):
            raise ValueError("a share group's settings are a JSON object")
        return {k: v for k, v in data.items() if k in _FIELDS}


_FIELDS = {f.name for f in fields(ShareGroupConfig)}


def _str16(value: str) -> bytes:
    data = value.encode()
    return struct.pack(">h", len(data)) + data


def _read_str16(data: bytes, pos: int) -> tuple[str, int]:
    (n,) = struct.unpack_from(">h", data, pos)
    if n < 0 or pos + 2 + n > len(data):
        raise ValueError("bad string")
    return data[pos + 2:pos + 2 + n].decode(), pos + 2 + n


def state_key(group: str, topic: str, topic_id: str, partition: int) -> bytes:
    return (struct.pack(">h", _STATE_KEY) + _str16(group) + _str16(topic) + _str16(topic_id)
            + struct.pack(">i", partition))


def config_key(group: str) -> bytes:
    return struct.pack(">h", _CONFIG_KEY) + _str16(group)


def decode_key(key: bytes) -> tuple:
    """("state", group, topic, topic_id, partition) or ("config", group); ValueError if malformed."""
    try:
        (kind,) = struct.unpack_from(">h", key, 0)
        group, pos = _read_str16(key, 2)
        if kind == _CONFIG_KEY and pos == len(key):
            return ("config", group)
        if kind == _STATE_KEY:
            topic, pos = _read_str16(key, pos)
            topic_id, pos = _read_str16(key, pos)
            (partition,) = struct.unpack_from(">i", key, pos)
            if pos + 4 == len(key):
                return ("state", group, topic, topic_id, partition)
    except (struct.error, UnicodeDecodeError):
        pass
    raise ValueError("malformed share state key")


def dead_letter_headers(group: str, topic: str, partition: int, letter: DeadLetter,
                        topic_id: str | None = None) -> list[tuple[str, bytes]]:
    p = DLQ_HEADER_PREFIX
    headers = [(p + "group", group.encode()), (p + "topic", topic.encode()), (p + "partition", str(partition).encode()),
               (p + "offset", str(letter.offset).encode()), (p + "delivery.count", str(letter.delivery_count).encode()),
               (p + "reason", letter.reason.encode())]
    if topic_id is not None:
        headers.append((p + "topic.id", topic_id.encode()))
    return headers


def dead_letter_topic_id(headers) -> str | None:
    """The source topic's id (tells a deleted-and-recreated topic's records apart), None if absent."""
    value = dict(headers).get(DLQ_HEADER_PREFIX + "topic.id")
    try:
        return value.decode() if value is not None else None
    except (AttributeError, UnicodeDecodeError):
        return None


def dead_letter_source(headers) -> tuple[str, str, int, int] | None:
    """(group, topic, partition, offset) a dead letter was copied from, None if the headers lack it."""
    h = dict(headers)
    p = DLQ_HEADER_PREFIX
    try:
        return (h[p + "group"].decode(), h[p + "topic"].decode(), int(h[p + "partition"]), int(h[p + "offset"]))
    except (KeyError, ValueError, AttributeError, UnicodeDecodeError):
        return None
