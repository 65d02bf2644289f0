"""Keys and values of the ``__consumer_offsets`` records, byte for byte as Kafka writes them.

FORMAT.md §10.  A key opens with an int16 *key version* that doubles as the record type:

    0, 1   committed offset   group string, topic string, partition int32      (we write 1)
    2      group metadata     group string
    3+     newer record types (KIP-848 consumer groups, share groups): ``decode_key`` returns None

A value opens with an int16 value version; a null value is a tombstone (the offset or the group is
deleted).  Versions 0-3 use the classic encodings, version 4 is the first flexible one.

    OffsetCommitValue   v0 offset, metadata, commitTimestamp
                        v1 offset, metadata, commitTimestamp, expireTimestamp
                        v2 as v0
                        v3 offset, leaderEpoch, metadata, commitTimestamp        (we write v3,
                        v4 as v3, flexible                                        v1 with an expiry)
    GroupMetadataValue  protocolType, generation, protocol?, leader?, currentStateTimestamp (v2+),
                        members [memberId, groupInstanceId? (v3+), clientId, clientHost,
                                 rebalanceTimeout (v1+), sessionTimeout, subscription, assignment]
                                                                                  (we write v3)

Decoding is strict: a truncated record, a null where the schema has no null, or trailing bytes in a
non-flexible value raise ``CorruptRecordError``.  A group lives on partition
``partition_for_group(group)`` of the topic, which is Kafka's ``abs(String.hashCode) % 50``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .binary import Reader, Writer

OFFSETS_TOPIC = "__consumer_offsets"
OFFSETS_TOPIC_PARTITIONS = 50

OFFSET_KEY_VERSION = 1
GROUP_KEY_VERSION = 2
OFFSET_VALUE_VERSION = 3
OFFSET_VALUE_VERSION_WITH_EXPIRY = 1
GROUP_VALUE_VERSION = 3
MAX_VALUE_VERSION = 4  # the newest value layout this codec reads


@dataclass(frozen=True)
class OffsetKey:
    group: str
    topic: str
    partition: int


@dataclass(frozen=True)
class GroupKey:
    group: str


@dataclass(frozen=True)
class OffsetValue:
    offset: int
    leader_epoch: int = -1
    metadata: str = ""
    commit_timestamp: int = -1
    expire_timestamp: int | None = None  # only v1 carries one; -1 there reads as None


@dataclass(frozen=True)
class MemberMetadata:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    rebalance_timeout: int
    session_timeout: int
    subscription: bytes
    assignment: bytes


@dataclass(frozen=True)
class GroupMetadata:
    protocol_type: str
    generation: int
    protocol: str | None
    leader: str | None
    current_state_timestamp: int = -1
    members: tuple[MemberMetadata, ...] = field(default_factory=tuple)


def java_string_hash(text: str) -> int:
    """Java's ``String.hashCode()``: ``31*h + c`` over UTF-16 code units, wrapped to a signed int32."""
    units = text.encode("utf-16-be")
    h = 0
    for i in range(0, len(units), 2):
        h = (31 * h + ((units[i] << 8) | units[i + 1])) & 0xFFFFFFFF
    return h - (1 << 32) if h & 0x80000000 else h


def partition_for_group(group_id: str, partitions: int = OFFSETS_TOPIC_PARTITIONS) -> int:
    """The ``__consumer_offsets`` partition holding ``group_id`` (Kafka's abs maps -2**31 to 0)."""
    h = java_string_hash(group_id)
    return (0 if h == -(1 << 31) else abs(h)) % partitions


# ---- keys ---------------------------------------------------------------------------------------

def offset_commit_key(group: str, topic: str, partition: int) -> bytes:
    w = Writer()
    w.int16(OFFSET_KEY_VERSION)
    w.string(group)
    w.string(topic)
    w.int32(partition)
    return w.getvalue()


def group_metadata_key(group: str) -> bytes:
    w = Writer()
    w.int16(GROUP_KEY_VERSION)
    w.string(group)
    return w.getvalue()


def decode_key(data: bytes) -> OffsetKey | GroupKey | None:
    """The record a key names; None for record types newer than classic groups (versions 3+)."""
    r = Reader(data, "__consumer_offsets key")
    version = r.int16("key version")
    if version in (0, 1):
        key: OffsetKey | GroupKey = OffsetKey(r.string("group"), r.string("topic"), r.int32("partition"))
    elif version == GROUP_KEY_VERSION:
        key = GroupKey(r.string("group"))
    elif version > GROUP_KEY_VERSION:
        return None
    else:
        raise r.fail(f"negative key version {version}")
    r.expect_end()
    return key


# ---- offset commit values ------------------------------------------------------------------------

def offset_commit_value(offset: int, leader_epoch: int, metadata: str | None, commit_timestamp: int,
                        expire_timestamp: int | None = None, *, version: int | None = None) -> bytes:
    """Kafka's choice of version unless ``version`` forces one: v1 with an expiry, else v3."""
    if version is None:
        version = OFFSET_VALUE_VERSION if expire_timestamp is None else OFFSET_VALUE_VERSION_WITH_EXPIRY
    if not 0 <= version <= MAX_VALUE_VERSION:
        raise ValueError(f"OffsetCommitValue has versions 0-{MAX_VALUE_VERSION}, not {version}")
    compact = version >= 4
    w = Writer()
    w.int16(version)
    w.int64(offset)
    if version >= 3:
        w.int32(leader_epoch)
    w.string(metadata or "", compact=compact)
    w.int64(commit_timestamp)
    if version == 1:
        w.int64(-1 if expire_timestamp is None else expire_timestamp)
    if compact:
        w.no_tagged_fields()
    return w.getvalue()


def decode_offset_value(data: bytes) -> OffsetValue:
    r = Reader(data, "OffsetCommitValue")
    version = r.int16("version")
    if not 0 <= version <= MAX_VALUE_VERSION:
        raise r.fail(f"unsupported version {version}")
    compact = version >= 4
    offset = r.int64("offset")
    leader_epoch = r.int32("leaderEpoch") if version >= 3 else -1
    metadata = r.string("metadata", compact=compact)
    commit_timestamp = r.int64("commitTimestamp")
    expire = r.int64("expireTimestamp") if version == 1 else -1
    if compact:
        r.skip_tagged_fields("OffsetCommitValue")
    r.expect_end()
    return OffsetValue(offset, leader_epoch, metadata, commit_timestamp, None if expire == -1 else expire)


# ---- group metadata values -----------------------------------------------------------------------

def group_metadata_value(group: GroupMetadata, *, version: int = GROUP_VALUE_VERSION) -> bytes:
    if not 0 <= version <= MAX_VALUE_VERSION:
        raise ValueError(f"GroupMetadataValue has versions 0-{MAX_VALUE_VERSION}, not {version}")
    compact = version >= 4
    w = Writer()
    w.int16(version)
    w.string(group.protocol_type, compact=compact)
    w.int32(group.generation)
    w.string(group.protocol, compact=compact)
    w.string(group.leader, compact=compact)
    if version >= 2:
        w.int64(group.current_state_timestamp)
    w.array_length(len(group.members), compact=compact)
    for member in group.members:
        _write_member(w, member, version)
    if compact:
        w.no_tagged_fields()
    return w.getvalue()


def _write_member(w: Writer, m: MemberMetadata, version: int) -> None:
    compact = version >= 4
    w.string(m.member_id, compact=compact)
    if version >= 3:
        w.string(m.group_instance_id, compact=compact)
    w.string(m.client_id, compact=compact)
    w.string(m.client_host, compact=compact)
    if version >= 1:
        w.int32(m.rebalance_timeout)
    w.int32(m.session_timeout)
    w.bytes_(m.subscription, compact=compact)
    w.bytes_(m.assignment, compact=compact)
    if compact:
        w.no_tagged_fields()


def decode_group_value(data: bytes) -> GroupMetadata:
    r = Reader(data, "GroupMetadataValue")
    version = r.int16("version")
    if not 0 <= version <= MAX_VALUE_VERSION:
        raise r.fail(f"unsupported version {version}")
    compact = version >= 4
    protocol_type = r.string("protocolType", compact=compact)
    generation = r.int32("generation")
    protocol = r.string("protocol", nullable=True, compact=compact)
    leader = r.string("leader", nullable=True, compact=compact)
    timestamp = r.int64("currentStateTimestamp") if version >= 2 else -1
    members = tuple(_read_member(r, version) for _ in range(r.array_length("members", compact=compact)))
    if compact:
        r.skip_tagged_fields("GroupMetadataValue")
    r.expect_end()
    return GroupMetadata(protocol_type, generation, protocol, leader, timestamp, members)


def _read_member(r: Reader, version: int) -> MemberMetadata:
    compact = version >= 4
    member_id = r.string("memberId", compact=compact)
    instance_id = r.string("groupInstanceId", nullable=True, compact=compact) if version >= 3 else None
    client_id = r.string("clientId", compact=compact)
    client_host = r.string("clientHost", compact=compact)
    rebalance_timeout = r.int32("rebalanceTimeout") if version >= 1 else -1
    session_timeout = r.int32("sessionTimeout")
    subscription = r.bytes_("subscription", compact=compact)
    assignment = r.bytes_("assignment", compact=compact)
    if compact:
        r.skip_tagged_fields("MemberMetadata")
    return MemberMetadata(member_id, instance_id, client_id, client_host, rebalance_timeout,
                          session_timeout, subscription, assignment)


__all__ = [
    "OFFSETS_TOPIC", "OFFSETS_TOPIC_PARTITIONS", "OffsetKey", "GroupKey", "OffsetValue", "MemberMetadata",
    "GroupMetadata", "java_string_hash", "partition_for_group", "offset_commit_key", "group_metadata_key",
    "decode_key", "offset_commit_value", "decode_offset_value", "group_metadata_value", "decode_group_value",
]
