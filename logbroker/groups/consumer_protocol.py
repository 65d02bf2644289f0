"""The consumer protocol's embedded blobs: what a JoinGroup's metadata and a SyncGroup's assignment hold.

For protocol type ``"consumer"`` the coordinator treats these bytes as opaque; clients (and the
leader's assignor) read them.  Both open with an int16 version and use the classic encodings:

    ConsumerProtocolSubscription  v0 topics [string], userData bytes?
                                  v1 + ownedPartitions [topic string, partitions [int32]]
                                  v2 + generationId int32
                                  v3 + rackId string?
    ConsumerProtocolAssignment    v0-v3 assignedPartitions [topic string, partitions [int32]],
                                  userData bytes?   (v2 and v3 only mirror the subscription's bumps)

Kafka's forward-compatibility rule: a reader meeting a version newer than it knows reads the fields it
knows and ignores whatever follows, so trailing bytes are accepted.  Partitions are flattened to
``(topic, partition)`` pairs here; encoding groups them by topic in order of first appearance.
Malformed bytes raise ``InvalidRequestError``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from ..errors import InvalidRequestError
from .binary import Reader, Writer

PROTOCOL_TYPE = "consumer"
MAX_VERSION = 3  # newest layout known here; newer blobs are read as this one


@dataclass(frozen=True)
class Subscription:
    topics: tuple[str, ...]
    user_data: bytes | None = None
    owned_partitions: tuple[tuple[str, int], ...] = ()
    generation_id: int = -1
    rack_id: str | None = None
    version: int = 1


@dataclass(frozen=True)
class Assignment:
    partitions: tuple[tuple[str, int], ...]
    user_data: bytes | None = None
    version: int = 1


def encode_subscription(topics: Iterable[str], user_data: bytes | None = None,
                        owned_partitions: Iterable[tuple[str, int]] = (), generation_id: int = -1,
                        rack_id: str | None = None, version: int = 1) -> bytes:
    """Fields a version lacks are dropped silently, as Kafka's writer drops ignorable fields."""
    _check_version(version)
    w = Writer()
    w.int16(version)
    topics = list(topics)
    w.array_length(len(topics))
    for topic in topics:
        w.string(topic)
    w.bytes_(user_data)
    if version >= 1:
        _write_topic_partitions(w, owned_partitions)
    if version >= 2:
        w.int32(generation_id)
    if version >= 3:
        w.string(rack_id)
    return w.getvalue()


def decode_subscription(data: bytes) -> Subscription:
    r = Reader(data, "ConsumerProtocolSubscription", InvalidRequestError)
    version = _read_version(r)
    topics = tuple(r.string("topic") for _ in range(r.array_length("topics")))
    user_data = r.bytes_("userData", nullable=True)
    owned = _read_topic_partitions(r, "ownedPartitions") if version >= 1 else ()
    generation_id = r.int32("generationId") if version >= 2 else -1
    rack_id = r.string("rackId", nullable=True) if version >= 3 else None
    return Subscription(topics, user_data, owned, generation_id, rack_id, version)


def encode_assignment(partitions: Iterable[tuple[str, int]], user_data: bytes | None = None,
                      version: int = 1) -> bytes:
    _check_version(version)
    w = Writer()
    w.int16(version)
    _write_topic_partitions(w, partitions)
    w.bytes_(user_data)
    return w.getvalue()


def decode_assignment(data: bytes) -> Assignment:
    r = Reader(data, "ConsumerProtocolAssignment", InvalidRequestError)
    version = _read_version(r)
    partitions = _read_topic_partitions(r, "assignedPartitions")
    user_data = r.bytes_("userData", nullable=True)
    return Assignment(partitions, user_data, version)


def group_by_topic(partitions: Iterable[tuple[str, int]]) -> dict[str, list[int]]:
    """``{topic: [partition, ...]}`` in order of first appearance (the wire's TopicPartition array)."""
    grouped: dict[str, list[int]] = {}
    for topic, partition in partitions:
        grouped.setdefault(topic, []).append(partition)
    return grouped


def _check_version(version: int) -> None:
    if not 0 <= version <= MAX_VERSION:
        raise ValueError(f"consumer protocol versions are 0-{MAX_VERSION}, not {version}")


def _read_version(r: Reader) -> int:
    version = r.int16("version")
    if version < 0:
        raise r.fail(f"unsupported version {version}")
    return version


def _write_topic_partitions(w: Writer, partitions: Iterable[tuple[str, int]]) -> None:
    grouped = group_by_topic(partitions)
    w.array_length(len(grouped))
    for topic, numbers in grouped.items():
        w.string(topic)
        w.array_length(len(numbers))
        for number in numbers:
            w.int32(number)


def _read_topic_partitions(r: Reader, name: str) -> tuple[tuple[str, int], ...]:
    out: list[tuple[str, int]] = []
    for _ in range(r.array_length(name)):
        topic = r.string(f"{name} topic")
        out += [(topic, r.int32(f"{name} partition")) for _ in range(r.array_length(f"{name} partitions"))]
    return tuple(out)


__all__ = [
    "PROTOCOL_TYPE", "Subscription", "Assignment", "encode_subscription", "decode_subscription",
    "encode_assignment", "decode_assignment", "group_by_topic",
]
