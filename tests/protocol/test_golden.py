"""PROTOCOL.md §13's golden byte vectors, byte for byte, in both directions."""

from __future__ import annotations

import pytest

from logbroker.protocol import (RequestHeader, decode_request, decode_response, encode_request, encode_response_bytes,
                                unsupported_version_response)


def hexbytes(dump: str) -> bytes:
    """Bytes from a hexdump in §13's layout (``0000: 00 00 ...``), offsets ignored."""
    return bytes.fromhex(" ".join(line.split(":", 1)[-1] for line in dump.strip().splitlines()))


API_VERSIONS_V0_REQUEST = hexbytes("""
0000: 00 00 00 12 00 12 00 00 00 00 00 01 00 08 61 69
0010: 6f 6b 61 66 6b 61
""")

API_VERSIONS_V3_REQUEST = hexbytes("""
0000: 00 00 00 25 00 12 00 03 00 00 00 01 00 07 72 64
0010: 6b 61 66 6b 61 00 0b 6c 69 62 72 64 6b 61 66 6b
0020: 61 07 32 2e 31 36 2e 30 00
""")

UNSUPPORTED_API_VERSIONS_RESPONSE = hexbytes("""
0000: 00 00 00 10 00 00 00 01 00 23 00 00 00 01 00 12
0010: 00 00 00 04
""")

API_VERSIONS_V3_RESPONSE = hexbytes("""
0000: 00 00 00 1a 00 00 00 01 00 00 03 00 00 00 00 00
0010: 07 00 00 12 00 00 00 04 00 00 00 00 00 00
""")

API_VERSIONS_V0_RESPONSE = bytes.fromhex(  # "The same answer as v0"
    "00 00 00 16 | 00 00 00 01 | 00 00 | 00 00 00 02 | 00 00 00 00 00 07 | 00 12 00 00 00 04".replace("|", ""))

METADATA_V4_REQUEST = hexbytes("""
0000: 00 00 00 19 00 03 00 04 00 00 00 02 00 07 72 64
0010: 6b 61 66 6b 61 00 00 00 01 00 01 74 01
""")

PRODUCE_V7_REQUEST = hexbytes("""
0000: 00 00 00 72 00 00 00 07 00 00 00 03 00 07 72 64
0010: 6b 61 66 6b 61 ff ff ff ff 00 00 75 30 00 00 00
0020: 01 00 01 74 00 00 00 01 00 00 00 00 00 00 00 46
0030: 00 00 00 00 00 00 00 00 00 00 00 3a 00 00 00 00
0040: 02 e9 9b 8d d8 00 00 00 00 00 00 00 00 01 8b cf
0050: e5 68 00 00 00 01 8b cf e5 68 00 ff ff ff ff ff
0060: ff ff ff ff ff ff ff ff ff 00 00 00 01 10 00 00
0070: 00 02 6b 02 76 00
""")
BATCH = PRODUCE_V7_REQUEST[-70:]  # FORMAT.md §4.1's 70-byte batch

PRODUCE_V7_RESPONSE = hexbytes("""
0000: 00 00 00 31 00 00 00 03 00 00 00 01 00 01 74 00
0010: 00 00 01 00 00 00 00 00 00 00 00 00 00 00 00 00
0020: 00 ff ff ff ff ff ff ff ff 00 00 00 00 00 00 00
0030: 00 00 00 00 00
""")

TWO_APIS = [{"api_key": 0, "min_version": 0, "max_version": 7}, {"api_key": 18, "min_version": 0, "max_version": 4}]

REQUESTS = [
    # (frame, header, body)
    (API_VERSIONS_V0_REQUEST, RequestHeader(18, 0, 1, "aiokafka"), {}),
    (API_VERSIONS_V3_REQUEST, RequestHeader(18, 3, 1, "rdkafka"),
     {"client_software_name": "librdkafka", "client_software_version": "2.16.0"}),
    (METADATA_V4_REQUEST, RequestHeader(3, 4, 2, "rdkafka"),
     {"topics": [{"name": "t"}], "allow_auto_topic_creation": True}),
    (PRODUCE_V7_REQUEST, RequestHeader(0, 7, 3, "rdkafka"),
     {"transactional_id": None, "acks": -1, "timeout_ms": 30000,
      "topic_data": [{"name": "t", "partition_data": [{"index": 0, "records": BATCH}]}]}),
]

RESPONSES = [
    # (frame, request header, body as the broker would pass it, body as decoded)
    (API_VERSIONS_V3_RESPONSE, RequestHeader(18, 3, 1, "rdkafka"), {"api_keys": TWO_APIS},
     {"error_code": 0, "api_keys": TWO_APIS, "throttle_time_ms": 0, "supported_features": [],
      "finalized_features_epoch": -1, "finalized_features": [], "zk_migration_ready": False}),
    (API_VERSIONS_V0_RESPONSE, RequestHeader(18, 0, 1, "aiokafka"), {"error_code": 0, "api_keys": TWO_APIS},
     {"error_code": 0, "api_keys": TWO_APIS}),
    (PRODUCE_V7_RESPONSE, RequestHeader(0, 7, 3, "rdkafka"),
     {"responses": [{"name": "t", "partition_responses": [{"index": 0, "base_offset": 0, "log_start_offset": 0}]}]},
     {"responses": [{"name": "t", "partition_responses": [
         {"index": 0, "error_code": 0, "base_offset": 0, "log_append_time_ms": -1, "log_start_offset": 0}]}],
      "throttle_time_ms": 0}),
]


@pytest.mark.parametrize("frame, header, body", REQUESTS, ids=["apiversions-v0", "apiversions-v3", "metadata-v4",
                                                                 "produce-v7"])
def test_golden_requests_decode(frame, header, body):
    assert decode_request(frame[4:]) == (header, body)


@pytest.mark.parametrize("frame, header, body", REQUESTS, ids=["apiversions-v0", "apiversions-v3", "metadata-v4",
                                                                 "produce-v7"])
def test_golden_requests_encode(frame, header, body):
    assert encode_request(header.api_key, header.api_version, header.correlation_id, header.client_id, body) == frame


@pytest.mark.parametrize("frame, header, body, decoded", RESPONSES, ids=["apiversions-v3", "apiversions-v0",
                                                                          "produce-v7"])
def test_golden_responses(frame, header, body, decoded):
    assert encode_response_bytes(header, body) == frame
    assert decode_response(header.api_key, header.api_version, frame[4:]) == (header.correlation_id, decoded)


def test_golden_unsupported_api_versions_reply():
    # librdkafka sends v3, kafka-python v4; a broker that knew only v0-2 would answer like this.
    # Here any version outside 0-4 gets it, and the header may be v2 (flexible) or not.
    header = RequestHeader(18, 5, 1, "rdkafka")
    assert b"".join(unsupported_version_response(header)) == UNSUPPORTED_API_VERSIONS_RESPONSE
    correlation_id, body = decode_response(18, 5, UNSUPPORTED_API_VERSIONS_RESPONSE[4:])
    assert correlation_id == 1
    assert body == {"error_code": 35, "api_keys": [{"api_key": 18, "min_version": 0, "max_version": 4}]}


def test_failed_api_versions_answer_is_always_a_v0_body():
    # kafka-python decodes every ApiVersions answer with a non-zero error as v0 (PROTOCOL.md §5)
    body = {"error_code": 35, "api_keys": [{"api_key": 18, "min_version": 0, "max_version": 4}],
            "throttle_time_ms": 99}
    assert encode_response_bytes(RequestHeader(18, 3, 1, None), body) == UNSUPPORTED_API_VERSIONS_RESPONSE
