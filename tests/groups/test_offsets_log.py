"""The __consumer_offsets codec: FORMAT.md §10's bytes, every version round trip, strict decoding."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from logbroker.errors import CorruptRecordError
from logbroker.groups.offsets_log import (
    OFFSETS_TOPIC,
    OFFSETS_TOPIC_PARTITIONS,
    GroupKey,
    GroupMetadata,
    MemberMetadata,
    OffsetKey,
    OffsetValue,
    decode_group_value,
    decode_key,
    decode_offset_value,
    group_metadata_key,
    group_metadata_value,
    java_string_hash,
    offset_commit_key,
    offset_commit_value,
    partition_for_group,
)

TS = 0x18BCFE56800  # FORMAT.md's example timestamp


def test_format_md_worked_example_byte_for_byte():
    assert offset_commit_key("g", "t", 0) == bytes.fromhex("0001 000167 000174 00000000")
    assert offset_commit_value(42, -1, "", TS) == bytes.fromhex(
        "0003 000000000000002a ffffffff 0000 0000018bcfe56800")
    assert group_metadata_key("g") == bytes.fromhex("0002 000167")


def test_worked_example_decodes():
    assert decode_key(bytes.fromhex("0001000167000174 00000000")) == OffsetKey("g", "t", 0)
    assert decode_key(bytes.fromhex("0002000167")) == GroupKey("g")
    assert decode_offset_value(bytes.fromhex("0003000000000000002affffffff00000000018bcfe56800")) == OffsetValue(
        42, -1, "", TS, None)


def test_topic_constants():
    assert OFFSETS_TOPIC == "__consumer_offsets" and OFFSETS_TOPIC_PARTITIONS == 50


@pytest.mark.parametrize("group, partition", [("g", 3), ("test", 48), ("my-group", 12)])
def test_partition_for_group_examples(group, partition):
    assert partition_for_group(group) == partition


def test_java_hash_min_value_maps_to_partition_zero():
    # "polygenelubricants".hashCode() == Integer.MIN_VALUE; Kafka's Utils.abs maps it to 0
    assert java_string_hash("polygenelubricants") == -(2 ** 31)
    assert partition_for_group("polygenelubricants") == 0
    assert partition_for_group("polygenelubricants", 7) == 0


def test_java_hash_counts_utf16_code_units():
    assert java_string_hash("") == 0
    assert java_string_hash("\U0001F600") == 0xD83D * 31 + 0xDE00  # a surrogate pair: two code units
    assert java_string_hash("é") == 0xE9
    assert java_string_hash("hello world") == 1794106052  # Java: "hello world".hashCode()


def test_offset_key_version_0_decodes_like_1():
    v1 = offset_commit_key("grp", "topic", 7)
    assert decode_key(b"\x00\x00" + v1[2:]) == decode_key(v1) == OffsetKey("grp", "topic", 7)


@pytest.mark.parametrize("version", [3, 4, 5, 8, 9, 15, 300])
def test_newer_key_versions_are_skipped(version):
    assert decode_key(struct.pack(">h", version) + b"whatever follows") is None


@pytest.mark.parametrize("bad", [b"", b"\x00", b"\xff\xff\x00\x01g", b"\x00\x01\x00\x01g", b"\x00\x02\x00\x05g",
                                 b"\x00\x02\xff\xff", b"\x00\x02\x00\x01g!"])
def test_malformed_keys_raise(bad):
    with pytest.raises(CorruptRecordError):
        decode_key(bad)


# ---- offset values -------------------------------------------------------------------------------

int64 = st.integers(-(2 ** 63), 2 ** 63 - 1)
int32 = st.integers(-(2 ** 31), 2 ** 31 - 1)
text = st.text(max_size=30)


@given(offset=int64, epoch=int32, metadata=text, ts=int64, expire=st.one_of(st.none(), int64),
       version=st.integers(0, 4))
def test_offset_value_round_trips_every_version(offset, epoch, metadata, ts, expire, version):
    data = offset_commit_value(offset, epoch, metadata, ts, expire, version=version)
    decoded = decode_offset_value(data)
    assert data[:2] == struct.pack(">h", version)
    assert decoded.offset == offset and decoded.metadata == metadata and decoded.commit_timestamp == ts
    assert decoded.leader_epoch == (epoch if version >= 3 else -1)
    if version == 1:
        assert decoded.expire_timestamp == (None if expire in (None, -1) else expire)
    else:
        assert decoded.expire_timestamp is None


def test_offset_value_default_versions_follow_kafka():
    assert offset_commit_value(1, 5, "m", 2)[:2] == b"\x00\x03"
    with_expiry = offset_commit_value(1, 5, "m", 2, 99)
    assert with_expiry == bytes.fromhex("0001 0000000000000001 00016d 0000000000000002 0000000000000063")
    assert decode_offset_value(with_expiry) == OffsetValue(1, -1, "m", 2, 99)


def test_offset_value_v4_is_flexible():
    data = offset_commit_value(42, 3, "ab", 7, version=4)
    assert data == bytes.fromhex("0004 000000000000002a 00000003 03 6162 0000000000000007 00")
    # unknown tagged fields are skipped
    tagged = data[:-1] + bytes([1, 9, 2]) + b"zz"
    assert decode_offset_value(tagged) == OffsetValue(42, 3, "ab", 7, None)


def test_offset_value_null_metadata_is_written_as_empty():
    assert decode_offset_value(offset_commit_value(1, -1, None, 2)).metadata == ""


@pytest.mark.parametrize("version", range(5))
def test_truncated_offset_values_raise(version):
    data = offset_commit_value(42, 3, "meta", 7, 9, version=version)
    for cut in range(len(data)):
        with pytest.raises(CorruptRecordError):
            decode_offset_value(data[:cut])
    if version < 4:
        with pytest.raises(CorruptRecordError, match="trailing"):
            decode_offset_value(data + b"\x00")


@pytest.mark.parametrize("bad", [b"\xff\xff" + bytes(30), b"\x00\x05" + bytes(30),
                                 bytes.fromhex("0003 000000000000002a ffffffff ffff 0000018bcfe56800")])
def test_bad_offset_values_raise(bad):
    with pytest.raises(CorruptRecordError):
        decode_offset_value(bad)


# ---- group metadata values ------------------------------------------------------------------------

members = st.builds(MemberMetadata, text, st.one_of(st.none(), text), text, text, int32, int32,
                    st.binary(max_size=20), st.binary(max_size=20))
groups = st.builds(GroupMetadata, text, int32, st.one_of(st.none(), text), st.one_of(st.none(), text), int64,
                   st.lists(members, max_size=4).map(tuple))


def _as_version(group: GroupMetadata, version: int) -> GroupMetadata:
    """What a version keeps of ``group``: older layouts drop fields, which read back as defaults."""
    kept = tuple(MemberMetadata(m.member_id, m.group_instance_id if version >= 3 else None, m.client_id,
                                m.client_host, m.rebalance_timeout if version >= 1 else -1, m.session_timeout,
                                m.subscription, m.assignment) for m in group.members)
    return GroupMetadata(group.protocol_type, group.generation, group.protocol, group.leader,
                         group.current_state_timestamp if version >= 2 else -1, kept)


@given(group=groups, version=st.integers(0, 4))
def test_group_value_round_trips_every_version(group, version):
    data = group_metadata_value(group, version=version)
    assert data[:2] == struct.pack(">h", version)
    assert decode_group_value(data) == _as_version(group, version)


def test_group_value_v3_layout_written_independently():
    member = MemberMetadata("m-1", "inst", "cid", "/1.2.3.4", 30000, 10000, b"\x00\x01SUB", b"ASG")
    group = GroupMetadata("consumer", 5, "range", "m-1", 1234, (member,))

    def s(value: str) -> bytes:
        return struct.pack(">h", len(value)) + value.encode()

    expected = (struct.pack(">h", 3) + s("consumer") + struct.pack(">i", 5) + s("range") + s("m-1")
                + struct.pack(">q", 1234) + struct.pack(">i", 1)
                + s("m-1") + s("inst") + s("cid") + s("/1.2.3.4") + struct.pack(">ii", 30000, 10000)
                + struct.pack(">i", 5) + b"\x00\x01SUB" + struct.pack(">i", 3) + b"ASG")
    assert group_metadata_value(group) == expected
    assert decode_group_value(expected) == group


def test_empty_group_value_has_null_protocol_and_leader():
    data = group_metadata_value(GroupMetadata("consumer", 3, None, None, 77, ()))
    assert data == struct.pack(">h", 3) + b"\x00\x08consumer" + struct.pack(">i", 3) + b"\xff\xff\xff\xff" + \
        struct.pack(">q", 77) + struct.pack(">i", 0)


def test_truncated_group_values_raise():
    member = MemberMetadata("m", None, "c", "h", 1, 2, b"s", b"a")
    for version in range(5):
        data = group_metadata_value(GroupMetadata("consumer", 1, "range", "m", 5, (member,)), version=version)
        for cut in range(len(data)):
            with pytest.raises(CorruptRecordError):
                decode_group_value(data[:cut])


def test_group_value_errors_name_the_field():
    data = bytearray(group_metadata_value(GroupMetadata("consumer", 1, None, None, 5, ())))
    data[2:4] = b"\xff\xff"  # protocolType is not nullable
    with pytest.raises(CorruptRecordError, match="protocolType"):
        decode_group_value(bytes(data))
    with pytest.raises(CorruptRecordError, match="members"):
        decode_group_value(group_metadata_value(GroupMetadata("c", 1, None, None, 5, ()))[:-4] + b"\x7f\xff\xff\xff")
