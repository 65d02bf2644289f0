"""ShareGroupHeartbeat (76), ShareFetch (78) and ShareAcknowledge (79) v1, byte for byte.

kafka-python 3.0 has no classes for these APIs, so the independent check here is SHARE_GROUPS.md
§2.7: its computed examples (member id "A"*22, group "g", topic id bytes 01..10) encode and decode
exactly, bodies and the request header alike.  Then the points librdkafka is strict about (§2.4):
the nullable ``assignment`` struct, ``records`` never null, ``current_leader`` in line with its own
tag section, ``node_endpoints`` untagged; and hypothesis round trips of every share message.
"""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from logbroker.protocol import (API_NAMES, SERVED, SUPPORTED, EncodeError, ProtocolError, RequestHeader,
                                UnsupportedVersionError, decode_body, decode_request, decode_response, encode_body,
                                encode_request, encode_response, encode_response_bytes, is_flexible)
from logbroker.protocol.definitions import APIS

from ._strategies import body, examples

HEARTBEAT, SHARE_FETCH, SHARE_ACKNOWLEDGE = 76, 78, 79
MEMBER = "A" * 22
TOPIC_ID = uuid.UUID(bytes=bytes(range(1, 17)))


def hexbytes(text: str) -> bytes:
    """The notation of §2.7: hex with spaces and ``|`` separators, ``41×22`` for 22 bytes of 0x41."""
    return bytes.fromhex(text.replace("41×22", "41" * 22).replace("|", " "))


# -- §2.7, verbatim ------------------------------------------------------------------------------------------

HEARTBEAT_REQUEST = hexbytes("02 67 | 17 41×22 | 00000000 | 00 | 02 02 74 | 00")
HEARTBEAT_RESPONSE = hexbytes("""
    00000000 0000 00 | 17 41×22 | 00000001 | 00001388 |
    01 02 0102030405060708090a0b0c0d0e0f10 03 00000000 00000001 00 00 | 00""")
SHARE_FETCH_REQUEST = hexbytes("""
    02 67 | 17 41×22 | 00000000 000001f4 00000001 03200000 000001f4 000001f4 |
    02 0102030405060708090a0b0c0d0e0f10 02 00000000 01 00 00 | 01 | 00""")
SHARE_FETCH_RESPONSE = hexbytes("""
    00000000 0000 00 00007530 |
    02 0102030405060708090a0b0c0d0e0f10 02 00000000 0000 00 0000 00 ffffffff ffffffff 00 01 01 00 00 |
    01 | 00""")
SHARE_ACKNOWLEDGE_REQUEST = hexbytes("""
    02 67 | 17 41×22 | 00000003 |
    02 0102030405060708090a0b0c0d0e0f10 02 00000000 02 0000000000000000 0000000000000009 02 01 00 00 00 | 00""")
REQUEST_HEADER_76_V1 = hexbytes("004c 0001 00000007 0007 72646b61666b61 00")

HEARTBEAT_REQUEST_BODY = {"group_id": "g", "member_id": MEMBER, "member_epoch": 0, "rack_id": None,
                          "subscribed_topic_names": ["t"]}
HEARTBEAT_RESPONSE_BODY = {
    "throttle_time_ms": 0, "error_code": 0, "error_message": None, "member_id": MEMBER, "member_epoch": 1,
    "heartbeat_interval_ms": 5000,
    "assignment": {"topic_partitions": [{"topic_id": TOPIC_ID, "partitions": [0, 1]}]}}
SHARE_FETCH_REQUEST_BODY = {
    "group_id": "g", "member_id": MEMBER, "share_session_epoch": 0, "max_wait_ms": 500, "min_bytes": 1,
    "max_bytes": 52428800, "max_records": 500, "batch_size": 500,
    "topics": [{"topic_id": TOPIC_ID, "partitions": [{"partition_index": 0, "acknowledgement_batches": []}]}],
    "forgotten_topics_data": []}
SHARE_FETCH_RESPONSE_BODY = {
    "throttle_time_ms": 0, "error_code": 0, "error_message": None, "acquisition_lock_timeout_ms": 30000,
    "responses": [{"topic_id": TOPIC_ID, "partitions": [{
        "partition_index": 0, "error_code": 0, "error_message": None, "acknowledge_error_code": 0,
        "acknowledge_error_message": None, "current_leader": {"leader_id": -1, "leader_epoch": -1},
        "records": b"", "acquired_records": []}]}],
    "node_endpoints": []}
SHARE_ACKNOWLEDGE_REQUEST_BODY = {
    "group_id": "g", "member_id": MEMBER, "share_session_epoch": 3,
    "topics": [{"topic_id": TOPIC_ID, "partitions": [{"partition_index": 0, "acknowledgement_batches": [
        {"first_offset": 0, "last_offset": 9, "acknowledge_types": [1]}]}]}]}

EXAMPLES = [
    (HEARTBEAT, "request", HEARTBEAT_REQUEST, HEARTBEAT_REQUEST_BODY),
    (HEARTBEAT, "response", HEARTBEAT_RESPONSE, HEARTBEAT_RESPONSE_BODY),
    (SHARE_FETCH, "request", SHARE_FETCH_REQUEST, SHARE_FETCH_REQUEST_BODY),
    (SHARE_FETCH, "response", SHARE_FETCH_RESPONSE, SHARE_FETCH_RESPONSE_BODY),
    (SHARE_ACKNOWLEDGE, "request", SHARE_ACKNOWLEDGE_REQUEST, SHARE_ACKNOWLEDGE_REQUEST_BODY),
]
EXAMPLE_IDS = [f"{APIS[k].name}-{kind}" for k, kind, _, _ in EXAMPLES]


@pytest.mark.parametrize("api_key, kind, data, value", EXAMPLES, ids=EXAMPLE_IDS)
def test_section_2_7_examples_encode_byte_for_byte(api_key, kind, data, value):
    assert encode_body(api_key, kind, 1, value) == data


@pytest.mark.parametrize("api_key, kind, data, value", EXAMPLES, ids=EXAMPLE_IDS)
def test_section_2_7_examples_decode_field_for_field(api_key, kind, data, value):
    assert decode_body(api_key, kind, 1, data) == value


def test_section_2_7_request_header_v2_in_front_of_a_heartbeat():
    frame = encode_request(HEARTBEAT, 1, 7, "rdkafka", HEARTBEAT_REQUEST_BODY)
    assert frame == len(REQUEST_HEADER_76_V1 + HEARTBEAT_REQUEST).to_bytes(4, "big") + REQUEST_HEADER_76_V1 \
        + HEARTBEAT_REQUEST
    header, decoded = decode_request(frame[4:])
    assert header == RequestHeader(HEARTBEAT, 1, 7, "rdkafka")
    assert decoded == HEARTBEAT_REQUEST_BODY


@pytest.mark.parametrize("api_key, data, value", [
    (SHARE_FETCH, SHARE_FETCH_REQUEST, SHARE_FETCH_REQUEST_BODY),
    (SHARE_ACKNOWLEDGE, SHARE_ACKNOWLEDGE_REQUEST, SHARE_ACKNOWLEDGE_REQUEST_BODY),
], ids=["ShareFetch", "ShareAcknowledge"])
def test_every_share_request_uses_header_v2(api_key, data, value):
    header = api_key.to_bytes(2, "big") + REQUEST_HEADER_76_V1[2:]
    frame = len(header + data).to_bytes(4, "big") + header + data
    assert encode_request(api_key, 1, 7, "rdkafka", value) == frame
    assert decode_request(frame[4:]) == (RequestHeader(api_key, 1, 7, "rdkafka"), value)


@pytest.mark.parametrize("api_key, data, value", [
    (HEARTBEAT, HEARTBEAT_RESPONSE, HEARTBEAT_RESPONSE_BODY),
    (SHARE_FETCH, SHARE_FETCH_RESPONSE, SHARE_FETCH_RESPONSE_BODY),
], ids=["ShareGroupHeartbeat", "ShareFetch"])
def test_responses_use_header_v1(api_key, data, value):
    frame = encode_response_bytes(RequestHeader(api_key, 1, 7, "rdkafka"), value)
    assert frame == (len(data) + 5).to_bytes(4, "big") + bytes.fromhex("00000007 00") + data
    assert decode_response(api_key, 1, frame[4:]) == (7, value)


# -- what is advertised --------------------------------------------------------------------------------------

def test_share_apis_are_v1_only_flexible_and_named():
    for key, name in [(76, "ShareGroupHeartbeat"), (78, "ShareFetch"), (79, "ShareAcknowledge")]:
        assert SUPPORTED[key] == SERVED[key] == (1, 1)
        assert API_NAMES[key] == APIS[key].name == name
        assert list(APIS[key].versions()) == [1] and is_flexible(key, 1)


@pytest.mark.parametrize("version", [0, 2])
def test_other_versions_are_refused(version):
    frame = encode_request(HEARTBEAT, 1, 7, "rdkafka", HEARTBEAT_REQUEST_BODY)[4:]
    frame = frame[:2] + version.to_bytes(2, "big") + frame[4:]
    with pytest.raises(UnsupportedVersionError, match=r"ShareGroupHeartbeat v%d is not supported" % version):
        decode_request(frame)


# -- the heartbeat's nullable assignment ---------------------------------------------------------------------

def _heartbeat_response(assignment) -> bytes:
    return encode_body(HEARTBEAT, "response", 1, {**HEARTBEAT_RESPONSE_BODY, "assignment": assignment})


def test_a_null_assignment_is_the_marker_minus_one_alone():
    data = _heartbeat_response(None)
    assert data == HEARTBEAT_RESPONSE[:HEARTBEAT_RESPONSE.index(b"\x00\x00\x13\x88") + 4] + b"\xff\x00"
    assert decode_body(HEARTBEAT, "response", 1, data)["assignment"] is None
    assert decode_body(HEARTBEAT, "response", 1, encode_body(HEARTBEAT, "response", 1, {}))["assignment"] is None


def test_an_empty_assignment_is_present_with_its_own_tag_section():
    data = _heartbeat_response({"topic_partitions": []})
    assert data.endswith(b"\x01" + b"\x01" + b"\x00" + b"\x00")  # marker, empty array, struct tags, body tags
    assert decode_body(HEARTBEAT, "response", 1, data)["assignment"] == {"topic_partitions": []}
    assert decode_body(HEARTBEAT, "response", 1, _heartbeat_response({}))["assignment"] == {"topic_partitions": []}


def test_any_negative_marker_reads_as_null_as_in_kafka():
    data = _heartbeat_response(None)
    assert decode_body(HEARTBEAT, "response", 1, data[:-2] + b"\x80\x00")["assignment"] is None


def test_a_cut_assignment_is_a_protocol_error_naming_the_field():
    with pytest.raises(ProtocolError, match="assignment"):
        decode_body(HEARTBEAT, "response", 1, HEARTBEAT_RESPONSE[:-6])
    with pytest.raises(EncodeError, match="assignment"):
        _heartbeat_response(["not", "a", "struct"])


# -- ShareFetch records, current_leader and node_endpoints ---------------------------------------------------

def _one_partition(**fields) -> dict:
    partition = {**SHARE_FETCH_RESPONSE_BODY["responses"][0]["partitions"][0], **fields}
    return {**SHARE_FETCH_RESPONSE_BODY, "responses": [{"topic_id": TOPIC_ID, "partitions": [partition]}]}


def test_share_fetch_records_are_never_null():
    with pytest.raises(EncodeError, match="records: null is not allowed"):
        encode_body(SHARE_FETCH, "response", 1, _one_partition(records=None))
    default = encode_body(SHARE_FETCH, "response", 1, {"responses": [{"partitions": [{}]}]})
    assert b"\xff\xff\xff\xff\xff\xff\xff\xff\x00\x01\x01\x00\x00" in default  # leader -1/-1, tags, records ""
    null = SHARE_FETCH_RESPONSE.replace(bytes.fromhex("00 01 01 00 00"), bytes.fromhex("00 00 01 00 00"))
    with pytest.raises(ProtocolError, match="records"):
        decode_body(SHARE_FETCH, "response", 1, null)


def test_share_fetch_records_and_acquired_ranges_round_trip():
    records = bytes(range(256)) * 20  # over the inline threshold: travels as its own part
    value = _one_partition(records=records, current_leader={"leader_id": 0, "leader_epoch": 0},
                           acquired_records=[{"first_offset": 0, "last_offset": 9, "delivery_count": 1},
                                             {"first_offset": 12, "last_offset": 12, "delivery_count": 5}])
    parts = encode_response(RequestHeader(SHARE_FETCH, 1, 3, None), value)
    assert any(part is records for part in parts)
    _, decoded = decode_response(SHARE_FETCH, 1, b"".join(parts)[4:])
    assert decoded == value


def test_current_leader_is_in_line_with_its_own_tag_section():
    data = encode_body(SHARE_ACKNOWLEDGE, "response", 1, {"responses": [{"topic_id": TOPIC_ID, "partitions": [
        {"partition_index": 2, "error_code": 6, "current_leader": {"leader_id": 0, "leader_epoch": 7}}]}]})
    assert data == hexbytes("""
        00000000 0000 00 |
        02 0102030405060708090a0b0c0d0e0f10 02 00000002 0006 00 00000000 00000007 00 00 00 |
        01 | 00""")


def test_node_endpoints_are_a_plain_array_not_a_tagged_field():
    endpoint = {"node_id": 0, "host": "h", "port": 9092, "rack": None}
    data = encode_body(SHARE_FETCH, "response", 1, {"node_endpoints": [endpoint]})
    assert data == hexbytes("00000000 0000 00 00000000 01 | 02 00000000 02 68 00002384 00 00 | 00")
    assert decode_body(SHARE_FETCH, "response", 1, data)["node_endpoints"] == [endpoint]
    data = encode_body(SHARE_ACKNOWLEDGE, "response", 1, {"node_endpoints": [{**endpoint, "rack": "r"}]})
    assert data.endswith(hexbytes("02 00000000 02 68 00002384 02 72 00 | 00"))


def test_acknowledgement_batches_in_a_share_fetch_request():
    value = {**SHARE_FETCH_REQUEST_BODY, "share_session_epoch": 4, "topics": [{"topic_id": TOPIC_ID, "partitions": [
        {"partition_index": 0, "acknowledgement_batches": [
            {"first_offset": 0, "last_offset": 2, "acknowledge_types": [1, 2, 3]}]}]}],
        "forgotten_topics_data": [{"topic_id": TOPIC_ID, "partitions": [1, 2]}]}
    data = encode_body(SHARE_FETCH, "request", 1, value)
    assert data.endswith(hexbytes("""
        02 0102030405060708090a0b0c0d0e0f10 02 00000000
           02 0000000000000000 0000000000000002 04 01 02 03 00 00 00 |
        02 0102030405060708090a0b0c0d0e0f10 03 00000001 00000002 00 | 00"""))
    assert decode_body(SHARE_FETCH, "request", 1, data) == value


# -- round trips ---------------------------------------------------------------------------------------------

SHARE_MESSAGES = [(k, kind) for k in (HEARTBEAT, SHARE_FETCH, SHARE_ACKNOWLEDGE) for kind in ("request", "response")]


@pytest.mark.parametrize("api_key, kind", SHARE_MESSAGES, ids=[f"{APIS[k].name}-{kind}" for k, kind in SHARE_MESSAGES])
def test_share_messages_round_trip(api_key, kind):
    @examples(api_key, 1, advertised=60)
    @given(body(api_key, kind, 1), st.integers(-2**31, 2**31 - 1))
    def check(value, correlation_id):
        if kind == "request":
            frame = encode_request(api_key, 1, correlation_id, "rdkafka", value)
            header, decoded = decode_request(frame[4:])
            assert header == RequestHeader(api_key, 1, correlation_id, "rdkafka")
        else:
            frame = encode_response_bytes(RequestHeader(api_key, 1, correlation_id, None), value)
            got, decoded = decode_response(api_key, 1, frame[4:])
            assert got == correlation_id
        assert decoded == value
        assert frame.endswith(encode_body(api_key, kind, 1, decoded))

    check()
