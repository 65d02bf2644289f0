"""The codec API the server codes against: version gating, headers, ApiVersions rules, zero-copy output."""

from __future__ import annotations

import struct

import pytest

from logbroker.errors import InvalidRequestError, LogbrokerError
from logbroker.protocol import (API_NAMES, SERVED, SUPPORTED, EncodeError, ProtocolError, RequestHeader,
                                UnsupportedVersionError, api_versions_entries, decode_request, decode_request_header,
                                decode_response, encode_request, encode_response, encode_response_bytes, is_flexible,
                                response_expected, unsupported_version_response)
from logbroker.protocol.primitives import INLINE_RECORDS

from .test_golden import API_VERSIONS_V3_REQUEST, METADATA_V4_REQUEST, UNSUPPORTED_API_VERSIONS_RESPONSE

PROTOCOL_MD_SECTION_8 = {  # the "advertise" column
    18: (0, 4), 3: (0, 4), 0: (0, 7), 1: (4, 11), 2: (1, 2), 10: (0, 1), 11: (0, 5), 14: (0, 3), 12: (0, 1),
    13: (0, 1), 8: (2, 3), 9: (1, 3), 22: (0, 1), 19: (2, 4), 20: (1, 3), 37: (0, 1), 21: (0, 1), 42: (0, 1),
    32: (1, 2), 15: (0, 3), 16: (0, 2),
}
SHARE_GROUPS_MD_SECTION_1_2 = {  # what the share consumer needs on top: Metadata to v12, the share APIs at v1,
    3: (0, 12), 76: (1, 1), 78: (1, 1), 79: (1, 1),  # and (§1.1, §3.12) IncrementalAlterConfigs for group configs
    44: (0, 1),
}


def test_supported_is_protocol_md_section_8_raised_for_share_groups():
    assert SUPPORTED == {**PROTOCOL_MD_SECTION_8, **SHARE_GROUPS_MD_SECTION_1_2}
    assert SERVED == {**SUPPORTED, 0: (3, 7)}  # Produce v0-2: advertised, refused (KAFKA-18659)
    assert [e["api_key"] for e in api_versions_entries()] == sorted(SUPPORTED)
    assert api_versions_entries({18: (0, 4)}) == [{"api_key": 18, "min_version": 0, "max_version": 4}]


def test_api_names():
    assert API_NAMES[0] == "Produce" and API_NAMES[18] == "ApiVersions" and API_NAMES[42] == "DeleteGroups"
    assert set(SUPPORTED) <= set(API_NAMES)


def test_error_classes_sit_in_the_one_tree():
    assert issubclass(ProtocolError, InvalidRequestError) and ProtocolError("x").error_code == 42
    assert issubclass(UnsupportedVersionError, LogbrokerError) and UnsupportedVersionError("x").error_code == 35
    assert issubclass(EncodeError, ValueError)


# -- version gating ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("api_key, version", [(0, 2), (0, 8), (1, 3), (3, 13), (18, 5), (76, 0), (78, 2), (99, 0),
                                               (-1, 0)])
def test_unsupported_versions_raise_with_the_header(api_key, version):
    frame = encode_request(18, 0, 77, "cid", {})[4:]
    frame = struct.pack(">hh", api_key, version) + frame[4:]
    with pytest.raises(UnsupportedVersionError) as info:
        decode_request(frame)
    assert info.value.error_code == 35
    assert info.value.header == RequestHeader(api_key, version, 77, "cid")


def test_served_can_be_widened_per_call():
    frame = encode_request(1, 12, 1, None, {"topics": []})[4:]
    with pytest.raises(UnsupportedVersionError):
        decode_request(frame)
    header, body = decode_request(frame, served={**SERVED, 1: (4, 12)})
    assert header.api_version == 12 and body["topics"] == []
    with pytest.raises(UnsupportedVersionError, match="not defined"):  # served but never defined
        decode_request(struct.pack(">hhih", 3, 99, 1, -1) + b"\x00", served={3: (0, 100)})


def test_unknown_api_versions_request_gets_the_v0_refusal():
    # kafka-python would send v4; pretend a future client sends v7 with a flexible header and body
    frame = struct.pack(">hhih", 18, 7, 1, 7) + b"rdkafka" + b"\x00" + b"\x05whatever-v7-body"
    with pytest.raises(UnsupportedVersionError) as info:
        decode_request(frame)
    assert b"".join(unsupported_version_response(info.value.header)) == UNSUPPORTED_API_VERSIONS_RESPONSE
    assert unsupported_version_response(RequestHeader(3, 99, 1, None)) is None


def test_decode_request_header_needs_no_api_knowledge():
    assert decode_request_header(struct.pack(">hhih", 1234, 5, 9, -1)) == RequestHeader(1234, 5, 9, None)
    assert decode_request_header(memoryview(API_VERSIONS_V3_REQUEST)[4:]) == RequestHeader(18, 3, 1, "rdkafka")
    for cut in range(10):
        with pytest.raises(ProtocolError, match="^request header: "):
            decode_request_header(struct.pack(">hhih", 3, 4, 2, 0)[:cut])


def test_request_header_v2_tags_are_skipped():
    plain = API_VERSIONS_V3_REQUEST[4:]
    at = 4 + 4 + 2 + 7  # api key, version, correlation id, client id "rdkafka"; then the header's tag section
    tagged = plain[:at] + b"\x01\x09\x02hi" + plain[at + 1:]
    assert decode_request(tagged) == decode_request(plain)


# librdkafka 2.16's Metadata v12 request for every topic, as sent: its null topics array is an unshrunk
# INT32 placeholder, 3 stray zero bytes before the fields it meant (librdkafka issue #5049)
LIBRDKAFKA_ALL_TOPICS_V12 = bytes.fromhex("0003 000c 00000003 0007 72646b61666b61 00  00 000000 01 00 00")
HEADER_BYTES = 18  # api key, version, correlation id, client id "rdkafka", tag section


@pytest.mark.parametrize("version, meant", [(12, "00 01 00 00"), (11, "00 01 01 00"), (10, "00 00 00 01 00"),
                                            (9, "00 01 01 01 00")])
def test_librdkafkas_all_topics_metadata_request_is_read_as_meant(version, meant):
    header = struct.pack(">hhih", 3, version, 3, 7) + b"rdkafka\x00"
    meant = bytes.fromhex(meant)
    expected = decode_request(header + meant)[1]
    assert expected["topics"] is None
    assert decode_request(header + meant[:1] + bytes(3) + meant[1:]) == (RequestHeader(3, version, 3, "rdkafka"),
                                                                          expected)


def test_librdkafka_all_topics_quirk_as_captured_and_nothing_else_tolerated():
    _, body = decode_request(LIBRDKAFKA_ALL_TOPICS_V12)
    assert body == {"topics": None, "allow_auto_topic_creation": True, "include_topic_authorized_operations": False}
    _, plain = decode_request(LIBRDKAFKA_ALL_TOPICS_V12[:HEADER_BYTES] + bytes(4))  # a real all-zero body
    assert plain == {"topics": None, "allow_auto_topic_creation": False, "include_topic_authorized_operations": False}
    for body in (bytes.fromhex("01 00 00 00 00"), bytes(10)):
        with pytest.raises(ProtocolError, match="left over"):
            decode_request(LIBRDKAFKA_ALL_TOPICS_V12[:HEADER_BYTES] + body)
    with pytest.raises(ProtocolError, match="3 bytes left over"):  # only flexible versions
        decode_request(struct.pack(">hhih", 3, 8, 3, -1) + bytes(4) + bytes.fromhex("01 00 00") + bytes(3))


def test_is_flexible():
    assert is_flexible(18, 3) and not is_flexible(18, 2)
    assert is_flexible(3, 9) and not is_flexible(3, 8)
    assert not is_flexible(17, 1) and not is_flexible(999, 0)


# -- responses ----------------------------------------------------------------------------------------------

def test_response_header_v1_only_for_flexible_non_api_versions():
    metadata9 = encode_response_bytes(RequestHeader(3, 9, 0x01020304, None), {})
    assert metadata9[4:9] == b"\x01\x02\x03\x04\x00"  # correlation id, empty header tag section
    metadata8 = encode_response_bytes(RequestHeader(3, 8, 0x01020304, None), {})
    assert metadata8[4:12] == b"\x01\x02\x03\x04\x00\x00\x00\x00"  # correlation id, throttle_time_ms
    api_versions3 = encode_response_bytes(RequestHeader(18, 3, 0x01020304, None), {})
    assert api_versions3[4:10] == b"\x01\x02\x03\x04\x00\x00"  # correlation id, error_code: no tag section
    assert decode_response(3, 9, metadata9[4:])[0] == 0x01020304


class FileRegion:
    """What the server might pass as records: not bytes, only a length (it would os.sendfile it)."""

    def __init__(self, size):
        self.size = size

    def __len__(self):
        return self.size


def fetch_body(*records):
    return {"responses": [{"topic": "t", "partitions": [
        {"partition_index": i, "high_watermark": 10, "records": r} for i, r in enumerate(records)]}]}


def test_records_pass_through_as_is_and_everything_else_is_bytes():
    region, big, small = FileRegion(10_000), memoryview(b"B" * INLINE_RECORDS), b"s" * 10
    parts = encode_response(RequestHeader(1, 11, 5, None), fetch_body(region, big, small, None))
    assert parts[1] is region and parts[3] is big
    assert [type(p) for p in parts] == [bytes, FileRegion, bytes, memoryview, bytes]
    size = sum(len(p) for p in parts) - 4
    assert parts[0][:4] == struct.pack(">i", size)
    assert small in parts[4]  # small records are copied in line
    with pytest.raises(TypeError, match="use encode_response"):
        encode_response_bytes(RequestHeader(1, 11, 5, None), fetch_body(region))


def test_passed_through_records_decode_in_place():
    big = bytes(range(256)) * 40
    parts = encode_response(RequestHeader(1, 11, 5, None), fetch_body(big, b"", None))
    assert any(p is big for p in parts)
    _, body = decode_response(1, 11, b"".join(parts)[4:])
    assert [p["records"] for p in body["responses"][0]["partitions"]] == [big, b"", None]


def test_response_expected_only_false_for_acks_zero_produce():
    assert not response_expected(RequestHeader(0, 7, 1, None), {"acks": 0})
    assert response_expected(RequestHeader(0, 7, 1, None), {"acks": -1})
    assert response_expected(RequestHeader(3, 4, 1, None), {"acks": 0})


# -- error messages -----------------------------------------------------------------------------------------

def test_protocol_errors_name_api_version_and_field_path():
    frame = bytearray(METADATA_V4_REQUEST[4:])
    with pytest.raises(ProtocolError) as info:
        decode_request(bytes(frame[:-2]))
    assert str(info.value).startswith("Metadata v4 request: topics[0].name: string of length 1")
    assert info.value.header == RequestHeader(3, 4, 2, "rdkafka")
    assert info.value.path == ["topics", "[0]", "name"]


def test_encode_errors_name_the_field():
    header = RequestHeader(0, 7, 1, None)
    bad = {"responses": [{"name": "t", "partition_responses": [{"index": 0, "error_code": 70000}]}]}
    with pytest.raises(EncodeError, match=r"^Produce v7 response: responses\[0\]\.partition_responses\[0\]"
                                          r"\.error_code: cannot encode 70000: 'h' format requires"):
        encode_response(header, bad)
    with pytest.raises(EncodeError, match=r"responses\[0\]\.name: null is not allowed"):
        encode_response(header, {"responses": [{"name": None}]})
    with pytest.raises(EncodeError, match="throttle_time_ms: cannot encode 'soon'"):
        encode_response(header, {"throttle_time_ms": "soon"})
    with pytest.raises(EncodeError, match="longer than 32767"):
        encode_request(3, 4, 1, None, {"topics": [{"name": "x" * 40000}]})
    with pytest.raises(UnsupportedVersionError):
        encode_response(RequestHeader(3, 99, 1, None), {})
