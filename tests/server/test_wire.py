"""The server at the byte level: requests by hand over real sockets, against an in-process Server.

Covers what clients rely on (PROTOCOL.md §1, §5, §10): ApiVersions answers (including to versions it
does not know), request-order responses with pipelining and long polls, acks=0 silence, auto-creation,
error codes, fetch limits and long polls, and that a bad connection is closed without harming others.
"""

from __future__ import annotations

import struct
import threading
import time

import pytest

from logbroker.protocol import SUPPORTED
from logbroker.records.batch import decode_all, encode_batch
from logbroker.server.handlers import HANDLERS

from .support import WireClient

PRODUCE, FETCH, LIST_OFFSETS, METADATA, FIND_COORDINATOR = 0, 1, 2, 3, 10
API_VERSIONS, CREATE_TOPICS, DELETE_RECORDS, INIT_PRODUCER_ID, DESCRIBE_CONFIGS = 18, 19, 21, 22, 32


def batch(*values: bytes, **kwargs) -> bytes:
    now = int(time.time() * 1000)
    return encode_batch([(None, v, [], now) for v in values], **kwargs)


def produce_body(topic: str, records: bytes, *, acks: int = -1, partition: int = 0) -> dict:
    return {"transactional_id": None, "acks": acks, "timeout_ms": 30000,
            "topic_data": [{"name": topic, "partition_data": [{"index": partition, "records": records}]}]}


def fetch_body(topic: str, offset: int, *, partition: int = 0, max_wait_ms: int = 0, min_bytes: int = 1,
               max_bytes: int = 1 << 20, partition_max_bytes: int = 1 << 20) -> dict:
    return {"replica_id": -1, "max_wait_ms": max_wait_ms, "min_bytes": min_bytes, "max_bytes": max_bytes,
            "isolation_level": 0, "session_id": 0, "session_epoch": -1,
            "topics": [{"topic": topic, "partitions": [{"partition": partition, "fetch_offset": offset,
                                                        "partition_max_bytes": partition_max_bytes}]}]}


def produced(client: WireClient, topic: str, records: bytes, **kwargs) -> dict:
    body = client.call(PRODUCE, 7, produce_body(topic, records, **kwargs))
    return body["responses"][0]["partition_responses"][0]


def fetched(client: WireClient, topic: str, offset: int, **kwargs) -> dict:
    body = client.call(FETCH, 11, fetch_body(topic, offset, **kwargs), timeout=15)
    assert body["error_code"] == 0 and body["session_id"] == 0
    return body["responses"][0]["partitions"][0]


# ---- ApiVersions ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("version", [0, 1, 2, 3, 4])
def test_api_versions_lists_every_served_api(inproc, version):
    with WireClient(inproc.port) as client:
        body = client.call(API_VERSIONS, version, {"client_software_name": "test", "client_software_version": "1"})
    assert body["error_code"] == 0
    listed = {e["api_key"]: (e["min_version"], e["max_version"]) for e in body["api_keys"]}
    assert listed == {key: SUPPORTED[key] for key in SUPPORTED if key in HANDLERS}  # only what has a handler
    assert listed[METADATA] == (0, 12)
    assert all(lo <= hi for lo, hi in listed.values())


def test_api_versions_of_an_unknown_version_is_answered_with_error_35_not_closed(inproc):
    with WireClient(inproc.port) as client:
        # v9 does not exist: the header is all the broker can read; a v0 body comes back
        client.send_raw(struct.pack(">ihhih", 12, API_VERSIONS, 9, 7, -1) + b"\x00\x00")
        frame = client.recv_frame()
        assert frame == struct.pack(">ihih", 7, 35, 1, API_VERSIONS) + struct.pack(">hh", 0, 4)
        body = client.call(API_VERSIONS, 3, {})  # and the connection goes on
        assert body["error_code"] == 0


# ---- Metadata ---------------------------------------------------------------------------------------------

def test_metadata_describes_one_broker_and_auto_creates(inproc):
    with WireClient(inproc.port) as client:
        body = client.call(METADATA, 4, {"topics": [{"name": "auto"}], "allow_auto_topic_creation": True})
        assert body["brokers"] == [{"node_id": 0, "host": "127.0.0.1", "port": inproc.port, "rack": None}]
        assert body["controller_id"] == 0
        assert body["cluster_id"] and body["cluster_id"] == inproc.broker.cluster_id()
        [topic] = body["topics"]
        assert topic["error_code"] == 0 and topic["name"] == "auto" and not topic["is_internal"]
        assert [(p["partition_index"], p["leader_id"], p["replica_nodes"], p["isr_nodes"])
                for p in topic["partitions"]] == [(0, 0, [0], [0])]
        assert "auto" in inproc.broker.list_topics()

        body = client.call(METADATA, 4, {"topics": [{"name": "nope"}], "allow_auto_topic_creation": False})
        assert body["topics"][0]["error_code"] == 3 and body["topics"][0]["partitions"] == []
        body = client.call(METADATA, 4, {"topics": [{"name": "bad name!"}], "allow_auto_topic_creation": True})
        assert body["topics"][0]["error_code"] == 17
        body = client.call(METADATA, 1, {"topics": None})  # null: every topic
        assert [t["name"] for t in body["topics"]] == ["auto"]
        body = client.call(METADATA, 0, {"topics": []})  # v0: empty means every topic
        assert [t["name"] for t in body["topics"]] == ["auto"]
        assert "nope" not in inproc.broker.list_topics()


def test_metadata_without_auto_creation(tmp_path):
    from .support import InProcessServer

    server = InProcessServer(tmp_path / "data", auto_create_topics=False)
    try:
        with WireClient(server.port) as client:
            body = client.call(METADATA, 4, {"topics": [{"name": "t"}], "allow_auto_topic_creation": True})
            assert body["topics"][0]["error_code"] == 3
            body = client.call(PRODUCE, 7, produce_body("t", batch(b"x")))
            assert body["responses"][0]["partition_responses"][0]["error_code"] == 3
    finally:
        server.close()


def test_cluster_id_is_stable_per_data_directory(tmp_path):
    from logbroker.broker import Broker

    with Broker.open(str(tmp_path / "d"), housekeeping=False) as broker:
        first = broker.cluster_id()
    with Broker.open(str(tmp_path / "d"), housekeeping=False) as broker:
        assert broker.cluster_id() == first
    with Broker.open(str(tmp_path / "other"), housekeeping=False) as broker:
        assert broker.cluster_id() != first


# ---- Produce / Fetch ------------------------------------------------------------------------------------

def test_produce_then_fetch_serves_the_stored_batch(inproc):
    inproc.broker.create_topic("t", partitions=2)
    with WireClient(inproc.port) as client:
        first = produced(client, "t", batch(b"a", b"b"))
        assert (first["error_code"], first["base_offset"], first["log_append_time_ms"], first["log_start_offset"]) == (0, 0, -1, 0)
        assert produced(client, "t", batch(b"c"), acks=1)["base_offset"] == 2
        part = fetched(client, "t", 0)
        assert part["error_code"] == 0 and part["high_watermark"] == 3 and part["last_stable_offset"] == 3
        assert part["log_start_offset"] == 0
        assert [r.value for r in decode_all(bytes(part["records"]))] == [b"a", b"b", b"c"]
        assert bytes(part["records"]) == inproc.broker.fetch("t", 0, 0).records  # bytes as stored
        empty = fetched(client, "t", 3)
        assert empty["error_code"] == 0 and bytes(empty["records"]) == b""
        assert fetched(client, "t", 4)["error_code"] == 1  # past the log end: OFFSET_OUT_OF_RANGE
        assert fetched(client, "nope", 0)["error_code"] == 3
        bad = client.call(PRODUCE, 7, produce_body("t", batch(b"x"), acks=2))
        assert bad["responses"][0]["partition_responses"][0]["error_code"] == 21
        corrupt = bytearray(batch(b"x"))
        corrupt[-1] ^= 0xFF
        assert produced(client, "t", bytes(corrupt))["error_code"] == 2
        assert produced(client, "t", batch(b"x"), partition=5)["error_code"] == 3


def test_acks_0_gets_no_response_and_is_still_written(inproc):
    inproc.broker.create_topic("t")
    with WireClient(inproc.port) as client:
        client.send(PRODUCE, 7, produce_body("t", batch(b"fire"), acks=0), expect_response=False)
        client.send(PRODUCE, 7, produce_body("t", batch(b"and forget"), acks=0), expect_response=False)
        body = client.call(METADATA, 4, {"topics": None})  # the next frame answers this one
        assert [t["name"] for t in body["topics"]] == ["t"]
        deadline = time.monotonic() + 5
        while inproc.broker.list_offsets("t", 0, -1)[0] < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [r.value for r in decode_all(inproc.broker.fetch("t", 0, 0).records)] == [b"fire", b"and forget"]


def test_acks_0_right_before_hanging_up_is_not_lost(inproc):
    inproc.broker.create_topic("t")
    client = WireClient(inproc.port)
    for i in range(20):
        client.send(PRODUCE, 7, produce_body("t", batch(b"%d" % i), acks=0), expect_response=False)
    client.close()
    deadline = time.monotonic() + 5
    while inproc.broker.list_offsets("t", 0, -1)[0] < 20 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert inproc.broker.list_offsets("t", 0, -1)[0] == 20


def test_pipelined_requests_are_applied_and_answered_in_order(inproc):
    inproc.broker.create_topic("t")
    with WireClient(inproc.port) as client:
        for i in range(50):
            client.send(PRODUCE, 7, produce_body("t", batch(b"%d" % i)))
            if i % 10 == 0:
                client.send(METADATA, 4, {"topics": [{"name": "t"}], "allow_auto_topic_creation": False})
        offsets = []
        while client.sent:
            _, api_key, _ = client.sent[0]
            _, body = client.recv()  # asserts the correlation id of each response in turn
            if api_key == PRODUCE:
                offsets.append(body["responses"][0]["partition_responses"][0]["base_offset"])
        assert offsets == list(range(50))
    assert [r.value for r in decode_all(inproc.broker.fetch("t", 0, 0).records)] == [b"%d" % i for i in range(50)]


def test_long_poll_waits_for_data_and_later_requests_wait_behind_it(inproc):
    inproc.broker.create_topic("t")
    with WireClient(inproc.port) as consumer, WireClient(inproc.port) as producer:
        started = time.monotonic()
        consumer.send(FETCH, 11, fetch_body("t", 0, max_wait_ms=10_000))
        consumer.send(METADATA, 4, {"topics": None})  # must come back after the fetch
        timer = threading.Timer(0.3, lambda: produced(producer, "t", batch(b"late")))
        timer.start()
        try:
            _, body = consumer.recv(timeout=15)
            waited = time.monotonic() - started
            part = body["responses"][0]["partitions"][0]
            assert [r.value for r in decode_all(bytes(part["records"]))] == [b"late"]
            assert 0.25 < waited < 5
            _, meta = consumer.recv()
            assert meta["topics"][0]["name"] == "t"
        finally:
            timer.join()


def test_long_poll_times_out_with_empty_records(inproc):
    inproc.broker.create_topic("t")
    with WireClient(inproc.port) as client:
        started = time.monotonic()
        part = fetched(client, "t", 0, max_wait_ms=300)
        assert 0.25 < time.monotonic() - started < 3
        assert part["error_code"] == 0 and bytes(part["records"]) == b""


def test_fetch_min_bytes_waits_for_enough(inproc):
    inproc.broker.create_topic("t")
    with WireClient(inproc.port) as consumer, WireClient(inproc.port) as producer:
        one = batch(b"x" * 100)
        consumer.send(FETCH, 11, fetch_body("t", 0, max_wait_ms=10_000, min_bytes=len(one) * 3))
        for _ in range(3):
            time.sleep(0.05)
            produced(producer, "t", one)
        _, body = consumer.recv(timeout=15)
        records = bytes(body["responses"][0]["partitions"][0]["records"])
        assert len(records) >= len(one) * 3


def test_fetch_limits_and_the_first_batch_exception(inproc):
    inproc.broker.create_topic("t", partitions=2)
    with WireClient(inproc.port) as client:
        for i in range(5):
            produced(client, "t", batch(bytes(1000)))
            produced(client, "t", batch(bytes(1000)), partition=1)
        size = len(inproc.broker.fetch("t", 0, 0, 1).records)
        assert size > 1000
        # partition_max_bytes smaller than one batch: still one whole batch (KIP-74)
        assert len(bytes(fetched(client, "t", 0, partition_max_bytes=10)["records"])) == size
        assert len(bytes(fetched(client, "t", 0, partition_max_bytes=size * 2 + 10)["records"])) == size * 2
        body = fetch_body("t", 0, max_bytes=size * 3)
        body["topics"][0]["partitions"].append({"partition": 1, "fetch_offset": 0, "partition_max_bytes": 1 << 20})
        parts = client.call(FETCH, 11, body)["responses"][0]["partitions"]
        assert [len(bytes(p["records"])) for p in parts] == [size * 3, 0]  # max_bytes across partitions
        body["max_bytes"] = size * 4
        parts = client.call(FETCH, 11, body)["responses"][0]["partitions"]
        assert [len(bytes(p["records"])) for p in parts] == [size * 4, 0]  # partition 0 reached 4 batches
        body["topics"][0]["partitions"][0]["partition_max_bytes"] = size
        parts = client.call(FETCH, 11, body)["responses"][0]["partitions"]
        assert [len(bytes(p["records"])) for p in parts] == [size, size * 3]


def test_fetch_with_a_session_id_is_refused(inproc):
    with WireClient(inproc.port) as client:
        body = fetch_body("t", 0)
        body["session_id"] = 12
        assert client.call(FETCH, 11, body)["error_code"] == 70


# ---- idempotence, offsets, admin --------------------------------------------------------------------------

def test_idempotent_produce_errors_per_partition(inproc):
    inproc.broker.create_topic("t")
    with WireClient(inproc.port) as client:
        init = client.call(INIT_PRODUCER_ID, 1, {"transactional_id": None, "transaction_timeout_ms": 60000})
        assert init["error_code"] == 0 and init["producer_id"] >= 0 and init["producer_epoch"] == 0
        pid = init["producer_id"]
        first = batch(b"a", b"b", producer_id=pid, producer_epoch=0, base_sequence=0)
        assert produced(client, "t", first)["base_offset"] == 0
        assert produced(client, "t", batch(b"c", producer_id=pid, producer_epoch=0, base_sequence=2))["base_offset"] == 2
        again = produced(client, "t", first)  # a retry: the original offsets, nothing written
        assert (again["error_code"], again["base_offset"]) == (0, 0)
        gap = produced(client, "t", batch(b"d", producer_id=pid, producer_epoch=0, base_sequence=9))
        assert gap["error_code"] == 45
        assert inproc.broker.list_offsets("t", 0, -1)[0] == 3
        txn = client.call(INIT_PRODUCER_ID, 1, {"transactional_id": "tx", "transaction_timeout_ms": 60000})
        assert txn["error_code"] == 42


def test_list_offsets_and_delete_records(inproc):
    inproc.broker.create_topic("t")
    with WireClient(inproc.port) as client:
        for i in range(4):
            produced(client, "t", encode_batch([(None, b"v", [], 1000 * (i + 1))]))

        def offsets(timestamp):
            body = client.call(LIST_OFFSETS, 2, {"replica_id": -1, "isolation_level": 0, "topics": [
                {"name": "t", "partitions": [{"partition_index": 0, "timestamp": timestamp}]}]})
            part = body["topics"][0]["partitions"][0]
            return part["error_code"], part["offset"], part["timestamp"]

        assert offsets(-2) == (0, 0, -1)
        assert offsets(-1) == (0, 4, -1)
        assert offsets(2500) == (0, 2, 3000)
        assert offsets(9999) == (0, -1, -1)
        body = client.call(DELETE_RECORDS, 1, {"timeout_ms": 1000, "topics": [
            {"name": "t", "partitions": [{"partition_index": 0, "offset": 2}, {"partition_index": 7, "offset": 0}]}]})
        assert [(p["low_watermark"], p["error_code"]) for p in body["topics"][0]["partitions"]] == [(2, 0), (-1, 3)]
        assert offsets(-2) == (0, 2, -1)
        assert fetched(client, "t", 1)["error_code"] == 1


def test_create_topics_validation(inproc):
    with WireClient(inproc.port) as client:
        def create(topics, validate_only=False):
            body = client.call(CREATE_TOPICS, 4, {"topics": topics, "timeout_ms": 1000, "validate_only": validate_only})
            return [(t["name"], t["error_code"]) for t in body["topics"]]

        topic = {"num_partitions": 3, "replication_factor": 1, "assignments": [], "configs": []}
        assert create([{**topic, "name": "dry"}], validate_only=True) == [("dry", 0)]
        assert "dry" not in inproc.broker.list_topics()
        assert create([{**topic, "name": "a"}, {**topic, "name": "b", "num_partitions": -1},
                       {**topic, "name": "c", "replication_factor": 3}, {**topic, "name": "bad/name"},
                       {**topic, "name": "d", "configs": [{"name": "retention.ms", "value": "nope"}]},
                       {**topic, "name": "e", "num_partitions": 0}]) == [
            ("a", 0), ("b", 0), ("c", 38), ("bad/name", 17), ("d", 40), ("e", 37)]
        assert create([{**topic, "name": "a"}]) == [("a", 36)]
        assert create([{**topic, "name": "a"}], validate_only=True) == [("a", 36)]
        assert inproc.broker.partition_count("a") == 3 and inproc.broker.partition_count("b") == 1
        body = client.call(DESCRIBE_CONFIGS, 1, {"include_synonyms": False, "resources": [
            {"resource_type": 2, "resource_name": "a", "configuration_keys": ["retention.ms", "cleanup.policy"]},
            {"resource_type": 2, "resource_name": "zzz", "configuration_keys": None}]})
        first, missing = body["results"]
        broker_configs = client.call(DESCRIBE_CONFIGS, 2, {"include_synonyms": True, "resources": [
            {"resource_type": 4, "resource_name": "0", "configuration_keys": None}]})["results"][0]
        assert broker_configs["error_code"] == 0
        assert {c["name"]: c["value"] for c in broker_configs["configs"]}["num.partitions"] == "1"
        assert first["error_code"] == 0 and {c["name"] for c in first["configs"]} == {"retention.ms", "cleanup.policy"}
        assert missing["error_code"] == 3


def test_find_coordinator(inproc):
    with WireClient(inproc.port) as client:
        body = client.call(FIND_COORDINATOR, 1, {"key": "g", "key_type": 0})
        assert (body["error_code"], body["node_id"], body["host"], body["port"]) == (0, 0, "127.0.0.1", inproc.port)
        assert client.call(FIND_COORDINATOR, 0, {"key": "g"})["node_id"] == 0
        assert client.call(FIND_COORDINATOR, 1, {"key": "tx", "key_type": 1})["error_code"] == 15


# ---- bad input closes one connection only ------------------------------------------------------------------

BAD_INPUTS = {
    "garbage": b"\x00\x00\x00\x08" + b"\xde\xad\xbe\xef" * 2,
    "huge length prefix": struct.pack(">i", 2**31 - 1) + b"xx",
    "negative length prefix": struct.pack(">i", -5),
    "unknown api key": struct.pack(">ihhih", 12, 999, 0, 1, -1) + b"\x00\x00",
    "unsupported produce version": struct.pack(">ihhih", 10, PRODUCE, 2, 1, -1),
    "truncated body": struct.pack(">ihhih", 16, METADATA, 4, 1, -1) + b"\x00\x00\x00\x05\x00\x01",
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_closes_only_that_connection(inproc, name, caplog):
    inproc.broker.create_topic("t")
    with WireClient(inproc.port) as bystander, WireClient(inproc.port) as offender:
        bystander.send(FETCH, 11, fetch_body("t", 0, max_wait_ms=3000))  # parked meanwhile
        offender.send_raw(BAD_INPUTS[name])
        assert offender.closed_by_server()
        with WireClient(inproc.port) as later:
            assert produced(later, "t", batch(b"still fine"))["error_code"] == 0
        _, body = bystander.recv(timeout=10)
        assert bytes(body["responses"][0]["partitions"][0]["records"])
    assert any("closing connection" in r.getMessage() for r in caplog.records)


def test_truncated_frame_then_hang_up_is_harmless(inproc):
    with WireClient(inproc.port) as client:
        client.send_raw(struct.pack(">i", 100) + b"\x00\x03")
    with WireClient(inproc.port) as client:
        assert client.call(METADATA, 4, {"topics": None})["controller_id"] == 0
