"""Consumer-protocol blobs: layouts, every version's round trip, forward compatibility, and agreement
with kafka-python's independent schema-driven codec in both directions."""

from __future__ import annotations

import struct
import warnings

import pytest
from hypothesis import given
from hypothesis import strategies as st

from logbroker.errors import InvalidRequestError
from logbroker.groups.consumer_protocol import (
    Assignment,
    Subscription,
    decode_assignment,
    decode_subscription,
    encode_assignment,
    encode_subscription,
    group_by_topic,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka.protocol.consumer.metadata import ConsumerProtocolAssignment as KAssignment
    from kafka.protocol.consumer.metadata import ConsumerProtocolSubscription as KSubscription


def test_subscription_v0_layout():
    assert encode_subscription(["t"], version=0) == bytes.fromhex("0000 00000001 000174 ffffffff")
    assert encode_subscription(["t"], b"ud", version=0) == bytes.fromhex("0000 00000001 000174 00000002 7564")


def test_subscription_v3_layout():
    data = encode_subscription(["a", "b"], None, [("a", 0), ("a", 2)], 7, "rack", version=3)
    assert data == bytes.fromhex(
        "0003 00000002 000161 000162 ffffffff"  # topics, null user data
        "00000001 000161 00000002 00000000 00000002"  # owned: a [0, 2]
        "00000007 0004 7261636b")  # generation, rack id


def test_assignment_layout():
    data = encode_assignment([("t", 0), ("u", 1), ("t", 2)])
    assert data == bytes.fromhex("0001 00000002 000174 00000002 00000000 00000002 000175 00000001 00000001 ffffffff")
    assert decode_assignment(data) == Assignment((("t", 0), ("t", 2), ("u", 1)), None, 1)


topic = st.text(alphabet="abcdefgh._-", min_size=1, max_size=6)
user_data = st.one_of(st.none(), st.binary(max_size=12))
grouped_partitions = st.dictionaries(topic, st.lists(st.integers(0, 2 ** 31 - 1), max_size=4), max_size=4).map(
    lambda d: tuple((t, p) for t, ps in d.items() for p in ps))


@given(topics=st.lists(topic, max_size=5).map(tuple), user=user_data, owned=grouped_partitions,
       generation=st.integers(-(2 ** 31), 2 ** 31 - 1), rack=st.one_of(st.none(), topic), version=st.integers(0, 3))
def test_subscription_round_trips_every_version(topics, user, owned, generation, rack, version):
    decoded = decode_subscription(encode_subscription(topics, user, owned, generation, rack, version))
    assert decoded == Subscription(topics, user, owned if version >= 1 else (), generation if version >= 2 else -1,
                                   rack if version >= 3 else None, version)


@given(partitions=grouped_partitions, user=user_data, version=st.integers(0, 3))
def test_assignment_round_trips_every_version(partitions, user, version):
    assert decode_assignment(encode_assignment(partitions, user, version)) == Assignment(partitions, user, version)


def test_newer_versions_are_read_as_the_newest_known():
    v3 = encode_subscription(["t"], b"x", [("t", 1)], 4, "r", version=3)
    v9 = struct.pack(">h", 9) + v3[2:] + b"\x00\x00fields from the future"
    assert decode_subscription(v9) == Subscription(("t",), b"x", (("t", 1),), 4, "r", 9)
    assignment = struct.pack(">h", 5) + encode_assignment([("t", 3)])[2:] + b"more"
    assert decode_assignment(assignment) == Assignment((("t", 3),), None, 5)


def test_older_versions_ignore_trailing_bytes_too():
    # a v1 writer that appended more (as a buggy or newer client might) still reads
    assert decode_subscription(encode_subscription(["t"], version=1) + b"\x00").topics == ("t",)


@pytest.mark.parametrize("version", range(4))
def test_truncated_blobs_raise(version):
    data = encode_subscription(["t", "u"], b"ud", [("t", 0)], 3, "r", version)
    for cut in range(len(data)):
        with pytest.raises(InvalidRequestError):
            decode_subscription(data[:cut])
    data = encode_assignment([("t", 0), ("u", 5)], b"ud", version)
    for cut in range(len(data)):
        with pytest.raises(InvalidRequestError):
            decode_assignment(data[:cut])


def test_negative_version_and_null_topics_raise():
    with pytest.raises(InvalidRequestError, match="version"):
        decode_subscription(b"\xff\xff" + encode_subscription(["t"])[2:])
    with pytest.raises(InvalidRequestError, match="topics"):
        decode_subscription(bytes.fromhex("0000 ffffffff ffffffff"))


def test_writer_refuses_unknown_versions():
    with pytest.raises(ValueError):
        encode_subscription(["t"], version=4)
    with pytest.raises(ValueError):
        encode_assignment([], version=-1)


def test_group_by_topic_keeps_first_appearance_order():
    assert group_by_topic([("b", 1), ("a", 0), ("b", 0)]) == {"b": [1, 0], "a": [0]}


# ---- kafka-python agreement --------------------------------------------------------------------

@given(topics=st.lists(topic, max_size=4, unique=True), user=user_data, owned=grouped_partitions,
       generation=st.integers(-1, 1000), rack=st.one_of(st.none(), topic), version=st.integers(0, 3))
def test_subscription_agrees_with_kafka_python(topics, user, owned, generation, rack, version):
    ours = encode_subscription(topics, user, owned, generation, rack, version)
    fields = {"topics": list(topics), "user_data": user}
    if version >= 1:
        fields["owned_partitions"] = [KSubscription.TopicPartition(topic=t, partitions=ps)
                                      for t, ps in group_by_topic(owned).items()]
    if version >= 2:
        fields["generation_id"] = generation
    if version >= 3:
        fields["rack_id"] = rack
    theirs = KSubscription(version=version, **fields).encode(version=version)
    assert ours == theirs
    decoded = KSubscription.decode(ours, version=version)
    assert list(decoded.topics) == list(topics) and decoded.user_data == user


@given(partitions=grouped_partitions, user=user_data, version=st.integers(0, 3))
def test_assignment_agrees_with_kafka_python(partitions, user, version):
    ours = encode_assignment(partitions, user, version)
    theirs = KAssignment(version=version, user_data=user, assigned_partitions=[
        KAssignment.TopicPartition(topic=t, partitions=ps) for t, ps in group_by_topic(partitions).items()
    ]).encode(version=version)
    assert ours == theirs
    decoded = KAssignment.decode(ours, version=version)
    assert [(tp.topic, tp.partition) for tp in decoded.partitions()] == list(partitions)
