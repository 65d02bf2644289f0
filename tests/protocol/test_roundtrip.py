"""decode(encode(body)) == body for every defined (api, version, request/response)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from logbroker.protocol import (RequestHeader, decode_body, decode_request, decode_response, encode_body,
                                encode_request, encode_response, encode_response_bytes)
from logbroker.protocol.definitions import APIS

from ._strategies import ALL_MESSAGES, body, examples, project

REQUESTS = [(k, v) for k, kind, v in ALL_MESSAGES if kind == "request"]
RESPONSES = [(k, v) for k, kind, v in ALL_MESSAGES if kind == "response"]


def ids(pairs):
    return [f"{APIS[k].name}-v{v}" for k, v in pairs]


@pytest.mark.parametrize("api_key, version", REQUESTS, ids=ids(REQUESTS))
def test_request_round_trip(api_key, version):
    @examples(api_key, version)
    @given(body(api_key, "request", version), st.integers(-2**31, 2**31 - 1), st.none() | st.text(max_size=8))
    def check(value, correlation_id, client_id):
        frame = encode_request(api_key, version, correlation_id, client_id, value)
        assert int.from_bytes(frame[:4], "big") == len(frame) - 4
        header, decoded = decode_request(frame[4:], served={api_key: (version, version)})
        assert header == RequestHeader(api_key, version, correlation_id, client_id)
        assert decoded == value
        assert frame.endswith(encode_body(api_key, "request", version, decoded))

    check()


@pytest.mark.parametrize("api_key, version", RESPONSES, ids=ids(RESPONSES))
def test_response_round_trip(api_key, version):
    @examples(api_key, version)
    @given(body(api_key, "response", version), st.integers(-2**31, 2**31 - 1))
    def check(value, correlation_id):
        header = RequestHeader(api_key, version, correlation_id, "client")
        frame = encode_response_bytes(header, value)
        assert b"".join(encode_response(header, value)) == frame
        got_id, decoded = decode_response(api_key, version, frame[4:])
        assert got_id == correlation_id
        if api_key == 18 and value["error_code"] != 0:  # failed ApiVersions answers are v0 bodies
            value = project(APIS[18].response, 0, value)
        assert decoded == value

    check()


@pytest.mark.parametrize("api_key, kind, version", ALL_MESSAGES,
                         ids=[f"{APIS[k].name}-{kind}-v{v}" for k, kind, v in ALL_MESSAGES])
def test_missing_keys_take_defaults_and_extra_keys_are_ignored(api_key, kind, version):
    defaults = decode_body(api_key, kind, version, encode_body(api_key, kind, version, {}))
    again = encode_body(api_key, kind, version, {**defaults, "no_such_field": object()})
    assert decode_body(api_key, kind, version, again) == defaults


def test_defaults_follow_the_schemas():
    produce = decode_body(0, "response", 7, encode_body(0, "response", 7, {
        "responses": [{"name": "t", "partition_responses": [{"index": 0}]}]}))
    assert produce["responses"][0]["partition_responses"][0] == {
        "index": 0, "error_code": 0, "base_offset": 0, "log_append_time_ms": -1, "log_start_offset": -1}
    metadata = decode_body(3, "request", 4, encode_body(3, "request", 4, {}))
    assert metadata == {"topics": None, "allow_auto_topic_creation": True}  # null = all topics (v1+)
    assert decode_body(3, "request", 0, encode_body(3, "request", 0, {})) == {"topics": []}  # v0: not nullable
    fetch = decode_body(1, "response", 11, encode_body(1, "response", 11, {
        "responses": [{"topic": "t", "partitions": [{"partition_index": 0}]}]}))
    part = fetch["responses"][0]["partitions"][0]
    assert part["records"] == b"" and part["aborted_transactions"] is None and part["preferred_read_replica"] == -1
    assert fetch["session_id"] == 0


def test_fields_outside_the_version_are_absent_on_decode():
    body11 = {"responses": [{"name": "t", "partition_responses": [{"index": 1, "log_start_offset": 5}]}]}
    v4 = decode_body(0, "response", 4, encode_body(0, "response", 4, body11))
    assert "log_start_offset" not in v4["responses"][0]["partition_responses"][0]
    assert "throttle_time_ms" not in decode_body(3, "response", 0, encode_body(3, "response", 0, {}))


def test_tagged_fields_round_trip_by_name():
    value = {"responses": [{"name": "t", "partition_responses": [
        {"index": 0, "current_leader": {"leader_id": 3, "leader_epoch": 9}}]}],
        "node_endpoints": [{"node_id": 3, "host": "h", "port": 9092, "rack": None}]}
    decoded = decode_body(0, "response", 10, encode_body(0, "response", 10, value))
    assert decoded["node_endpoints"] == value["node_endpoints"]
    assert decoded["responses"][0]["partition_responses"][0]["current_leader"] == {"leader_id": 3, "leader_epoch": 9}
    # a default-valued tagged field is not written at all (Kafka's rule), and decodes to its default
    plain = encode_body(0, "response", 10, {"node_endpoints": []})
    assert plain == encode_body(0, "response", 10, {})
    assert decode_body(0, "response", 10, plain)["node_endpoints"] == []
