"""Untrusted bytes: every failure is a ProtocolError (or UnsupportedVersionError), never anything else.

Truncations, random bytes, mutations of valid frames, lengths that claim far more than the frame
holds (which must fail before allocating), trailing garbage, nulls where none are allowed, broken
varints and tag sections.
"""

from __future__ import annotations

import struct
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logbroker.protocol import (SERVED, ProtocolError, RequestHeader, UnsupportedVersionError, decode_request,
                                decode_response, encode_request, encode_response_bytes)
from logbroker.protocol.definitions import APIS

from ._strategies import body
from .test_golden import (API_VERSIONS_V3_REQUEST, API_VERSIONS_V3_RESPONSE, METADATA_V4_REQUEST, PRODUCE_V7_REQUEST,
                          PRODUCE_V7_RESPONSE)

SERVED_PAIRS = [(k, v) for k, (lo, hi) in sorted(SERVED.items()) for v in range(lo, hi + 1)]
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def header_bytes(api_key: int, version: int, client_id: bytes = b"c") -> bytes:
    flexible = APIS[api_key].is_flexible(version)
    return struct.pack(">hhih", api_key, version, 1, len(client_id)) + client_id + (b"\x00" if flexible else b"")


def decode_or_refuse(frame):
    try:
        decode_request(frame)
    except (ProtocolError, UnsupportedVersionError):
        pass


# -- truncation ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("frame", [API_VERSIONS_V3_REQUEST, METADATA_V4_REQUEST, PRODUCE_V7_REQUEST],
                         ids=["apiversions-v3", "metadata-v4", "produce-v7"])
def test_every_truncation_of_a_golden_request_is_a_protocol_error(frame):
    body = frame[4:]
    decode_request(body)
    for cut in range(len(body)):
        with pytest.raises(ProtocolError):
            decode_request(body[:cut])


@pytest.mark.parametrize("api_key, version, frame", [(18, 3, API_VERSIONS_V3_RESPONSE), (0, 7, PRODUCE_V7_RESPONSE)],
                         ids=["apiversions-v3", "produce-v7"])
def test_every_truncation_of_a_golden_response_is_a_protocol_error(api_key, version, frame):
    for cut in range(len(frame) - 4):
        with pytest.raises(ProtocolError):
            decode_response(api_key, version, frame[4:4 + cut])


@pytest.mark.parametrize("api_key, version", SERVED_PAIRS, ids=[f"{APIS[k].name}-v{v}" for k, v in SERVED_PAIRS])
def test_every_truncation_of_any_served_request_is_a_protocol_error(api_key, version):
    @settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(body(api_key, "request", version))
    def check(value):
        frame = encode_request(api_key, version, 1, "c", value)[4:]
        for cut in range(len(frame)):
            with pytest.raises(ProtocolError):
                decode_request(frame[:cut])

    check()


@pytest.mark.parametrize("api_key, version", SERVED_PAIRS, ids=[f"{APIS[k].name}-v{v}" for k, v in SERVED_PAIRS])
def test_every_truncation_of_any_served_response_is_a_protocol_error(api_key, version):
    @settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(body(api_key, "response", version))
    def check(value):
        frame = encode_response_bytes(RequestHeader(api_key, version, 1, None), value)[4:]
        for cut in range(len(frame)):
            with pytest.raises(ProtocolError):
                decode_response(api_key, version, frame[:cut])

    check()


# -- random and mutated bytes ---------------------------------------------------------------------------

@FUZZ
@given(st.binary(max_size=200))
def test_random_frames_raise_nothing_but_protocol_errors(data):
    decode_or_refuse(data)


@FUZZ
@given(st.sampled_from(SERVED_PAIRS), st.binary(max_size=200))
def test_random_bodies_behind_a_valid_header_raise_nothing_but_protocol_errors(pair, data):
    decode_or_refuse(header_bytes(*pair) + data)


@FUZZ
@given(st.sampled_from(SERVED_PAIRS), st.data())
def test_mutated_valid_requests_raise_nothing_but_protocol_errors(pair, data):
    api_key, version = pair
    frame = bytearray(encode_request(api_key, version, 1, "c", data.draw(body(api_key, "request", version)))[4:])
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "insert", "delete"]))
        at = data.draw(st.integers(0, max(len(frame) - 1, 0)))
        if op == "flip" and frame:
            frame[at] = data.draw(st.integers(0, 255))
        elif op == "insert":
            frame[at:at] = data.draw(st.binary(min_size=1, max_size=4))
        elif frame:
            del frame[at]
    decode_or_refuse(bytes(frame))


@FUZZ
@given(st.sampled_from(sorted((k, v) for k, api in APIS.items() for v in api.versions())), st.binary(max_size=120))
def test_random_responses_raise_nothing_but_protocol_errors(pair, data):
    try:
        decode_response(*pair, data)
    except ProtocolError:
        pass


# -- lengths that lie -----------------------------------------------------------------------------------

def peak_allocation(fn) -> int:
    tracemalloc.start()
    try:
        fn()
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return peak


LYING = {  # name -> (decode, frame)
    "array of 2**31-1 topics": (decode_request, header_bytes(3, 4) + b"\x7f\xff\xff\xff" + b"\x00\x01t" * 4),
    "array of 2**31-1 strings": (decode_request, header_bytes(42, 1) + b"\x7f\xff\xff\xff\x00\x01g"),
    "array of 2**31-1 int32s": (lambda f: decode_response(3, 4, f), encode_response_bytes(
        RequestHeader(3, 4, 1, None), {"topics": [{"name": "t", "partitions": [{"replica_nodes": [7]}]}]})[4:].replace(
        b"\x00\x00\x00\x01\x00\x00\x00\x07", b"\x7f\xff\xff\xff\x00\x00\x00\x07")),
    "compact array of 2**32-2": (lambda f: decode_response(18, 3, f),
                                 b"\x00\x00\x00\x01\x00\x00\xff\xff\xff\xff\x0f" + b"\x00" * 8),
    "compact string of 2**32-2": (decode_request, header_bytes(18, 3) + b"\xff\xff\xff\xff\x0f" + b"\x00" * 8),
    "string of 32767 bytes": (decode_request, header_bytes(3, 4) + b"\x00\x00\x00\x01\x7f\xff" + b"t" * 10),
    "bytes of 2**31-1": (decode_request, header_bytes(11, 5)  # JoinGroup: group, timeouts, member, instance
                         + b"\x00\x01g\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00\xff\xff"
                         + b"\x00\x01c\x00\x00\x00\x01\x00\x01r\x7f\xff\xff\xff" + b"m" * 10),
    "records of 2**31-1": (decode_request, PRODUCE_V7_REQUEST[4:-74] + b"\x7f\xff\xff\xff" + PRODUCE_V7_REQUEST[-70:]),
    "client_id of 32767": (decode_request, b"\x00\x03\x00\x04\x00\x00\x00\x01\x7f\xff" + b"c" * 10),
    "tag section of 2**32-1 tags": (decode_request, header_bytes(18, 3) + b"\x02a\x02b" + b"\xff\xff\xff\xff\x0f"),
    "tagged field of 2**32-1 bytes": (decode_request,
                                      header_bytes(18, 3) + b"\x02a\x02b\x01\x00\xff\xff\xff\xff\x0f" + b"x" * 8),
}


@pytest.mark.parametrize("decode, frame", LYING.values(), ids=LYING.keys())
def test_huge_claimed_lengths_fail_without_allocating(decode, frame):
    def run():
        with pytest.raises(ProtocolError) as info:
            decode(frame)
        assert any(w in str(info.value) for w in ("does not fit", "runs past the end", "truncated")), str(info.value)

    assert peak_allocation(run) < 256 * 1024


def test_a_claimed_array_longer_than_the_bytes_left_is_refused_at_the_length():
    with pytest.raises(ProtocolError, match=r"topics: array of 2147483647 elements .* does not fit"):
        decode_request(LYING["array of 2**31-1 topics"][1])


# -- other malformations --------------------------------------------------------------------------------

def test_trailing_bytes_are_a_protocol_error():
    with pytest.raises(ProtocolError, match="1 bytes left over after the body"):
        decode_request(METADATA_V4_REQUEST[4:] + b"\x00")
    with pytest.raises(ProtocolError, match="left over"):
        decode_response(0, 7, PRODUCE_V7_RESPONSE[4:] + b"junk")


def test_null_in_a_non_nullable_field_names_the_field():
    frame = header_bytes(3, 4) + b"\x00\x00\x00\x01\xff\xff\x01"  # topics[0].name = null
    with pytest.raises(ProtocolError, match=r"^Metadata v4 request: topics\[0\]\.name: null string"):
        decode_request(frame)
    with pytest.raises(ProtocolError, match="null array in a non-nullable field"):
        decode_request(header_bytes(3, 0) + b"\xff\xff\xff\xff")  # v0 topics may not be null


def test_negative_lengths_other_than_null_are_protocol_errors():
    with pytest.raises(ProtocolError, match="negative array length -2"):
        decode_request(header_bytes(3, 4) + b"\xff\xff\xff\xfe\x01")
    with pytest.raises(ProtocolError, match="negative string length"):
        decode_request(header_bytes(3, 4) + b"\x00\x00\x00\x01\xff\xfe\x01")


def test_invalid_utf8_in_a_body_string_is_a_protocol_error_but_not_in_client_id():
    with pytest.raises(ProtocolError, match="not valid UTF-8"):
        decode_request(header_bytes(3, 4) + b"\x00\x00\x00\x01\x00\x01\xff\x01")
    header, _ = decode_request(header_bytes(3, 4, client_id=b"\xffid") + b"\xff\xff\xff\xff\x01")
    assert header.client_id == "\ufffdid"


def test_overlong_varint_is_a_protocol_error():
    with pytest.raises(ProtocolError, match="longer than 5 bytes"):
        decode_request(header_bytes(18, 3) + b"\x80\x80\x80\x80\x80\x01")


def test_tags_must_ascend_and_fit_their_size():
    ok = header_bytes(18, 3) + b"\x01\x01"  # empty software name and version
    decode_request(ok + b"\x02\x05\x01x\x07\x02yz")  # unknown tags 5 and 7 are skipped
    with pytest.raises(ProtocolError, match="strictly ascending"):
        decode_request(ok + b"\x02\x07\x01x\x05\x01y")
    with pytest.raises(ProtocolError, match="strictly ascending"):
        decode_request(ok + b"\x02\x05\x01x\x05\x01y")
    with pytest.raises(ProtocolError, match="tagged field 5 of length 9"):
        decode_request(ok + b"\x01\x05\x09x")
    # a known tag whose value does not fill its declared size
    response = encode_response_bytes(RequestHeader(18, 3, 1, None), {"zk_migration_ready": True})[4:]
    assert response.endswith(b"\x01\x03\x01\x01")
    with pytest.raises(ProtocolError, match=r"zk_migration_ready: 1 bytes left over inside tagged field 3"):
        decode_response(18, 3, response[:-4] + b"\x01\x03\x02\x01\x00")
