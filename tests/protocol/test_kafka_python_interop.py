"""Cross-checks against kafka-python 3.0's independent, schema-driven protocol classes (``kafka.protocol``).

Three kinds of check:

* Bytes: for every version both sides define, a hypothesis body is encoded by logbroker, decoded by
  kafka-python and re-encoded by kafka-python; the two frames must be identical.  Any disagreement
  in layout (a field missing, an extra field, a wrong width, classic vs compact, a tag buffer too
  many or too few) changes the bytes.  Requests and responses, headers and length prefixes included.
* Tables: field by field and version by version, our hand-written definitions agree with
  kafka-python's (which it loads from Kafka's JSON) on presence, name, type, nullability and tags.
* Examples: requests built the way kafka-python's client builds them decode with logbroker into the
  expected dicts, and logbroker's responses decode with kafka-python's response classes.
"""

from __future__ import annotations

import uuid
import warnings

import pytest
from hypothesis import given

with warnings.catch_warnings():  # kafka-python's protocol schemas use deprecated importlib calls
    warnings.simplefilter("ignore", DeprecationWarning)
    import kafka.protocol.admin  # noqa: F401  (registers the admin classes)
    import kafka.protocol.consumer  # noqa: F401
    import kafka.protocol.metadata  # noqa: F401
    import kafka.protocol.producer  # noqa: F401
    import kafka.protocol.sasl  # noqa: F401
    from kafka.protocol.api_message import ApiMessage
    from kafka.protocol.consumer import FetchRequest, FetchResponse, JoinGroupRequest, OffsetCommitRequest
    from kafka.protocol.metadata import ApiVersionsRequest, ApiVersionsResponse, MetadataRequest, MetadataResponse
    from kafka.protocol.producer import ProduceRequest, ProduceResponse

from logbroker.protocol import (SUPPORTED, RequestHeader, decode_request, encode_request, encode_response,
                                encode_response_bytes, unsupported_version_response)
from logbroker.protocol.definitions import APIS
from logbroker.protocol.schema import Array, Struct

from ._strategies import ALL_MESSAGES, body, examples
from .test_golden import BATCH


def _kafka_python_classes() -> dict:
    found = {}

    def walk(cls):
        for sub in cls.__subclasses__():
            if getattr(sub, "_class_version", None) is None and getattr(sub, "_json", None) is not None:
                found[(sub.API_KEY, sub.type)] = sub
            walk(sub)

    walk(ApiMessage)
    return found


KP = _kafka_python_classes()
COMMON = [(k, kind, v) for k, kind, v in ALL_MESSAGES if (k, kind) in KP and v <= KP[(k, kind)].max_version]
COMMON_IDS = [f"{APIS[k].name}-{kind}-v{v}" for k, kind, v in COMMON]
# The share-group RPCs (KIP-932): kafka-python 3.0 has no classes for them.  test_share_messages.py checks
# them byte for byte against SHARE_GROUPS.md §2.7 instead.
NOT_IN_KAFKA_PYTHON = {76, 78, 79}


def test_kafka_python_defines_every_api_we_do():
    ours = {(k, kind) for k, kind, _ in ALL_MESSAGES}
    assert {(k, kind) for k, kind in ours if k not in NOT_IN_KAFKA_PYTHON} <= set(KP)
    assert not {(k, kind) for k, kind in ours if k in NOT_IN_KAFKA_PYTHON} & set(KP)  # when it has them: compare
    # its schemas are newer: every version we define is there
    assert len(COMMON) == len([m for m in ALL_MESSAGES if m[0] not in NOT_IN_KAFKA_PYTHON])


@pytest.mark.parametrize("api_key, kind, version", COMMON, ids=COMMON_IDS)
def test_kafka_python_reencodes_our_bytes_identically(api_key, kind, version):
    cls = KP[(api_key, kind)]

    @examples(api_key, version, advertised=10, other=3)
    @given(body(api_key, kind, version))
    def check(value):
        if kind == "request":
            ours = encode_request(api_key, version, 7, "client", value)
        else:
            ours = encode_response_bytes(RequestHeader(api_key, version, 7, "client"), value)
        theirs = cls.decode(ours, version=version, header=True, framed=True)
        assert bytes(theirs.encode(header=True, framed=True)) == ours

    check()


# -- the definitions themselves -----------------------------------------------------------------------

KAFKA_PYTHON_RENAMES = {  # kafka-python's json_patch renames these (MetadataResponse)
    "topic_authorized_operations": "authorized_operations",
    "cluster_authorized_operations": "authorized_operations",
}


def _differences(fields, theirs, version: int, path: str = "") -> list:
    out = []
    for f in fields:
        if not f.present(version):
            continue
        k = theirs.fields.get(f.name) or theirs.fields.get(KAFKA_PYTHON_RENAMES.get(f.name, ""))
        where = path + f.name
        if k is None or not k.for_version_q(version):
            out.append(f"{where}: not in kafka-python's v{version}")
            continue
        if f.nullable(version) != k.nullable_for_version_q(version):
            out.append(f"{where}: nullable {f.nullable(version)} vs {k.nullable_for_version_q(version)}")
        k_tagged = k.tag is not None and k._tagged_versions[0] <= version <= k._tagged_versions[1]
        if f.tagged(version) != k_tagged or (k_tagged and f.tag != k.tag):
            out.append(f"{where}: tag {f.tag} vs {k.tag}")
        if isinstance(f.type, Struct):
            expected = k.is_struct_array() if isinstance(f.type, Array) else k.is_struct()
            if not expected:
                out.append(f"{where}: {type(f.type).__name__} vs {k.type_str}")
            else:
                out += _differences(tuple(f.type), k, version, where + ".")
        elif f.type != k.type_str and (f.type, k.type_str) != ("int32", "bitfield"):
            out.append(f"{where}: {f.type} vs {k.type_str}")
    extra = {name for name, k in theirs.fields.items() if k.for_version_q(version)} - {
        KAFKA_PYTHON_RENAMES.get(f.name, f.name) for f in fields if f.present(version)}
    out += [f"{path}{name}: only in kafka-python's v{version}" for name in sorted(extra)]
    return out


@pytest.mark.parametrize("api_key, kind", sorted({(k, kind) for k, kind, _ in ALL_MESSAGES if (k, kind) in KP}),
                         ids=lambda x: str(x))
def test_definitions_agree_with_kafka_pythons_schema_tables(api_key, kind):
    api = APIS[api_key]
    cls = KP[(api_key, kind)]
    for version in api.versions():
        assert _differences(getattr(api, kind), cls._struct, version) == [], f"{api.name} {kind} v{version}"
        assert api.is_flexible(version) == cls.flexible_version_q(version)


# -- kafka-python's requests decode with logbroker ------------------------------------------------------

def kp_frame(request, correlation_id=5, client_id="kafka-python"):
    request.with_header(correlation_id=correlation_id, client_id=client_id)
    return bytes(request.encode(header=True, framed=True))[4:]


def test_kafka_python_api_versions_v4_request():
    frame = kp_frame(ApiVersionsRequest[4](client_software_name="kafka-python", client_software_version="3.0.12"))
    header, body = decode_request(frame)
    assert header == RequestHeader(18, 4, 5, "kafka-python")
    assert body == {"client_software_name": "kafka-python", "client_software_version": "3.0.12"}


def test_kafka_python_metadata_v4_request_for_all_topics():
    header, body = decode_request(kp_frame(MetadataRequest[4](topics=None, allow_auto_topic_creation=False)))
    assert header.api_key == 3 and header.api_version == 4
    assert body == {"topics": None, "allow_auto_topic_creation": False}


def test_kafka_python_produce_v7_request_keeps_records_raw():
    request = ProduceRequest[7](transactional_id=None, acks=-1, timeout_ms=1500, topic_data=[
        ProduceRequest.TopicProduceData(name="orders", partition_data=[
            ProduceRequest.TopicProduceData.PartitionProduceData(index=2, records=BATCH)])])
    header, body = decode_request(kp_frame(request))
    assert body == {"transactional_id": None, "acks": -1, "timeout_ms": 1500, "topic_data": [
        {"name": "orders", "partition_data": [{"index": 2, "records": BATCH}]}]}
    assert isinstance(body["topic_data"][0]["partition_data"][0]["records"], memoryview)


def test_kafka_python_fetch_v11_request():
    request = FetchRequest[11](
        replica_id=-1, max_wait_ms=500, min_bytes=1, max_bytes=52428800, isolation_level=0, session_id=0,
        session_epoch=0, topics=[FetchRequest.FetchTopic(topic="t", partitions=[FetchRequest.FetchTopic.FetchPartition(
            partition=0, current_leader_epoch=-1, fetch_offset=42, log_start_offset=-1,
            partition_max_bytes=1048576)])], forgotten_topics_data=[], rack_id="")
    _, body = decode_request(kp_frame(request))
    assert body["topics"] == [{"topic": "t", "partitions": [{"partition": 0, "current_leader_epoch": -1,
                                                            "fetch_offset": 42, "log_start_offset": -1,
                                                            "partition_max_bytes": 1048576}]}]
    assert (body["max_wait_ms"], body["session_epoch"], body["rack_id"]) == (500, 0, "")


def test_kafka_python_join_group_v5_and_offset_commit_v3_requests():
    join = JoinGroupRequest[5](group_id="g", session_timeout_ms=30000, rebalance_timeout_ms=60000, member_id="",
                               group_instance_id=None, protocol_type="consumer", protocols=[
                                   JoinGroupRequest.JoinGroupRequestProtocol(name="range", metadata=b"\x00\x01")])
    _, body = decode_request(kp_frame(join))
    assert body["protocols"] == [{"name": "range", "metadata": b"\x00\x01"}] and body["group_instance_id"] is None
    commit = OffsetCommitRequest[3](group_id="g", generation_id_or_member_epoch=4, member_id="m",
                                    retention_time_ms=-1, topics=[OffsetCommitRequest.OffsetCommitRequestTopic(
                                        name="t", partitions=[OffsetCommitRequest.OffsetCommitRequestTopic
                                                              .OffsetCommitRequestPartition(
                                                                  partition_index=0, committed_offset=10,
                                                                  committed_metadata=None)])])
    _, body = decode_request(kp_frame(commit))
    assert body["topics"][0]["partitions"] == [
        {"partition_index": 0, "committed_offset": 10, "committed_metadata": None}]


# -- logbroker's responses decode with kafka-python -----------------------------------------------------

def test_our_api_versions_answers_decode_with_kafka_python():
    entries = [{"api_key": k, "min_version": lo, "max_version": hi} for k, (lo, hi) in sorted(SUPPORTED.items())]
    frame = encode_response_bytes(RequestHeader(18, 4, 9, "kafka-python"), {"api_keys": entries})
    got = ApiVersionsResponse.decode(frame, version=4, header=True, framed=True)
    assert got.header.correlation_id == 9 and got.error_code == 0
    assert {(e.api_key, e.min_version, e.max_version) for e in got.api_keys} == {
        (k, lo, hi) for k, (lo, hi) in SUPPORTED.items()}
    refusal = b"".join(unsupported_version_response(RequestHeader(18, 9, 10, "kafka-python")))
    got = ApiVersionsResponse.decode(refusal, version=4, header=True, framed=True)  # read as v0 on error
    assert got.error_code == 35 and [(e.api_key, e.min_version, e.max_version) for e in got.api_keys] == [(18, 0, 4)]


def test_our_metadata_v4_response_decodes_with_kafka_python():
    body = {"brokers": [{"node_id": 1, "host": "localhost", "port": 9092, "rack": None}], "cluster_id": "lb",
            "controller_id": 1, "topics": [{"error_code": 0, "name": "t", "is_internal": False, "partitions": [
                {"error_code": 0, "partition_index": 0, "leader_id": 1, "replica_nodes": [1], "isr_nodes": [1]}]}]}
    got = MetadataResponse.decode(encode_response_bytes(RequestHeader(3, 4, 2, None), body), version=4, header=True,
                                  framed=True)
    assert got.to_dict() == {"throttle_time_ms": 0, **body}


def test_our_fetch_v11_response_with_a_passed_through_records_object_decodes_with_kafka_python():
    class Region:  # stands in for a file region the server would os.sendfile
        def __init__(self, data):
            self.data = data

        def __len__(self):
            return len(self.data)

    records = BATCH * 100  # over the inline threshold: travels as its own part
    body = {"responses": [{"topic": "t", "partitions": [
        {"partition_index": 0, "high_watermark": 100, "last_stable_offset": 100, "log_start_offset": 0,
         "records": Region(records)}]}]}
    parts = encode_response(RequestHeader(1, 11, 3, None), body)
    frame = b"".join(p.data if isinstance(p, Region) else p for p in parts)
    got = FetchResponse.decode(frame, version=11, header=True, framed=True)
    partition = got.responses[0].partitions[0]
    assert (partition.high_watermark, partition.preferred_read_replica) == (100, -1)
    assert bytes(partition.records) == records


def test_our_produce_v10_response_tagged_fields_decode_with_kafka_python():
    body = {"responses": [{"name": "t", "partition_responses": [
        {"index": 0, "error_code": 6, "base_offset": -1, "current_leader": {"leader_id": 2, "leader_epoch": 7}}]}],
        "node_endpoints": [{"node_id": 2, "host": "b2", "port": 9093, "rack": "r1"}]}
    got = ProduceResponse.decode(encode_response_bytes(RequestHeader(0, 10, 1, None), body), version=10,
                                 header=True, framed=True)
    leader = got.responses[0].partition_responses[0].current_leader
    assert (leader.leader_id, leader.leader_epoch) == (2, 7)
    assert [(n.node_id, n.host, n.port, n.rack) for n in got.node_endpoints] == [(2, "b2", 9093, "r1")]


def test_topic_ids_travel_as_uuids():
    topic_id = uuid.uuid4()
    request = MetadataRequest[12](topics=[MetadataRequest.MetadataRequestTopic(topic_id=topic_id, name=None)],
                                  allow_auto_topic_creation=False, include_topic_authorized_operations=False)
    _, body = decode_request(kp_frame(request), served={3: (0, 12)})
    assert body["topics"] == [{"topic_id": topic_id, "name": None}]
