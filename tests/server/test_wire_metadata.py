"""Metadata v0-12 at the byte level, over real sockets against an in-process Server.

One test per version a client lands on or that changes the layout: 0 (empty list = every topic), 1
(is_internal, controller, null = every topic), 4 (allow_auto_topic_creation; kcat), 9 (flexible),
10 (topic ids), 12 (nullable names; librdkafka, kafka-python and the share consumer).  Then lookups
by topic id (SHARE_GROUPS.md §2.1): the real id answers with the name, an unknown id gets 100 and a
null name and creates nothing, an unknown name gets 3 and the all-zero id.
"""

from __future__ import annotations

import base64
import uuid

import pytest

from .support import InProcessServer, WireClient

METADATA, OFFSET_COMMIT = 3, 8
ZERO = uuid.UUID(int=0)
NO_OPERATIONS = -2147483648


def stored_id(server, name: str) -> uuid.UUID:
    """The topic id the broker keeps (base64url of 16 bytes), as a UUID."""
    text = server.broker.describe_topic(name)["topic_id"]
    return uuid.UUID(bytes=base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))


def request(version: int, names=None, *, ids=None, auto_create: bool = False) -> dict:
    """A Metadata request body of ``version``: by name, by id (v10+), or every topic (both None)."""
    if names is None and ids is None:
        topics = [] if version == 0 else None
    else:
        topics = [{"topic_id": ZERO, "name": n} for n in names or ()]
        topics += [{"topic_id": i, "name": None} for i in ids or ()]
    return {"topics": topics, "allow_auto_topic_creation": auto_create, "include_cluster_authorized_operations": False,
            "include_topic_authorized_operations": False}


def commit_an_offset(client: WireClient) -> None:
    """Creates __consumer_offsets (the group coordinator does so on first use)."""
    body = client.call(OFFSET_COMMIT, 3, {"group_id": "g", "generation_id_or_member_epoch": -1, "member_id": "",
                                          "retention_time_ms": -1, "topics": [{"name": "t", "partitions": [
                                              {"partition_index": 0, "committed_offset": 1,
                                               "committed_metadata": None}]}]})
    assert body["topics"][0]["partitions"][0]["error_code"] == 0


def expected_partition(version: int, index: int) -> dict:
    partition = {"error_code": 0, "partition_index": index, "leader_id": 0, "replica_nodes": [0], "isr_nodes": [0]}
    if version >= 5:
        partition["offline_replicas"] = []
    if version >= 7:
        partition["leader_epoch"] = -1  # unknown: no OffsetForLeaderEpoch validation (PROTOCOL.md §8)
    return partition


@pytest.mark.parametrize("version", [0, 1, 4, 9, 10, 12])
def test_every_topic_in_each_version(inproc, version):
    inproc.broker.create_topic("t", partitions=2)
    with WireClient(inproc.port) as client:
        commit_an_offset(client)
        body = client.call(METADATA, version, request(version))
    assert body["brokers"] == [{"node_id": 0, "host": "127.0.0.1", "port": inproc.port,
                                **({"rack": None} if version >= 1 else {})}]
    assert body.get("controller_id", 0) == 0 and body.get("throttle_time_ms", 0) == 0
    assert ("cluster_id" in body) == (version >= 2) and body.get("cluster_id", inproc.broker.cluster_id()) == \
        inproc.broker.cluster_id()
    assert ("cluster_authorized_operations" in body) == (8 <= version <= 10)
    topics = {t["name"]: t for t in body["topics"]}
    assert sorted(topics) == ["__consumer_offsets", "t"]
    t = topics["t"]
    assert t["error_code"] == 0
    assert sorted(t["partitions"], key=lambda p: p["partition_index"]) == [
        expected_partition(version, 0), expected_partition(version, 1)]
    if version >= 1:
        assert t["is_internal"] is False and topics["__consumer_offsets"]["is_internal"] is True
    else:
        assert "is_internal" not in t
    if version >= 8:
        assert t["topic_authorized_operations"] == NO_OPERATIONS
    if version >= 10:
        assert t["topic_id"] == stored_id(inproc, "t") != ZERO
        assert topics["__consumer_offsets"]["topic_id"] == stored_id(inproc, "__consumer_offsets")
    else:
        assert "topic_id" not in t


@pytest.mark.parametrize("version", [0, 1, 4, 9, 10, 12])
def test_by_name_in_each_version(inproc, version):
    inproc.broker.create_topic("t", partitions=1)
    with WireClient(inproc.port) as client:
        body = client.call(METADATA, version, request(version, ["t", "missing", "t"]))
    if version < 4:  # before v4 every request may auto-create, as in Kafka
        assert [(t["name"], t["error_code"], len(t["partitions"])) for t in body["topics"]] == [
            ("t", 0, 1), ("missing", 0, 1)]
        assert "missing" in inproc.broker.list_topics()
        return
    assert [(t["name"], t["error_code"]) for t in body["topics"]] == [("t", 0), ("missing", 3)]
    missing = body["topics"][1]
    assert missing["partitions"] == [] and "missing" not in inproc.broker.list_topics()
    if version >= 10:
        assert body["topics"][0]["topic_id"] == stored_id(inproc, "t")
        assert missing["topic_id"] == ZERO


def test_v12_auto_creates_by_name_and_answers_with_the_new_id(inproc):
    with WireClient(inproc.port) as client:
        body = client.call(METADATA, 12, request(12, ["fresh"], auto_create=True))
    [topic] = body["topics"]
    assert (topic["name"], topic["error_code"], len(topic["partitions"])) == ("fresh", 0, 1)
    assert topic["topic_id"] == stored_id(inproc, "fresh") != ZERO


def test_v12_lookups_by_id(inproc):
    inproc.broker.create_topic("a", partitions=1)
    inproc.broker.create_topic("b", partitions=3)
    a, b, unknown = stored_id(inproc, "a"), stored_id(inproc, "b"), uuid.uuid4()
    with WireClient(inproc.port) as client:
        body = client.call(METADATA, 12, request(12, ids=[b, unknown, a, b], auto_create=True))
        assert [(t["name"], t["topic_id"], t["error_code"]) for t in body["topics"]] == [
            ("b", b, 0), (None, unknown, 100), ("a", a, 0)]
        assert len(body["topics"][0]["partitions"]) == 3 and body["topics"][1]["partitions"] == []
        assert body["topics"][1]["is_internal"] is False
        assert inproc.broker.list_topics() == ["a", "b"]  # an id lookup never creates a topic

        # ids and names mixed in one request (librdkafka never does, but Kafka's schema allows it)
        body = client.call(METADATA, 12, request(12, ["a", "nope"], ids=[b]))
        assert [(t["name"], t["topic_id"], t["error_code"]) for t in body["topics"]] == [
            ("a", a, 0), ("nope", ZERO, 3), ("b", b, 0)]

        # neither a name nor an id
        body = client.call(METADATA, 12, {"topics": [{"topic_id": ZERO, "name": None}]})
        assert [(t["name"], t["topic_id"], t["error_code"]) for t in body["topics"]] == [(None, ZERO, 3)]

        inproc.broker.delete_topic("a")
        body = client.call(METADATA, 12, request(12, ids=[a]))
        assert [(t["name"], t["error_code"]) for t in body["topics"]] == [(None, 100)]


def test_v10_lookups_by_id_answer_an_unknown_id_with_an_empty_name(inproc):
    inproc.broker.create_topic("a", partitions=1)
    a, unknown = stored_id(inproc, "a"), uuid.uuid4()
    with WireClient(inproc.port) as client:
        body = client.call(METADATA, 10, request(10, ids=[a, unknown]))
    assert [(t["name"], t["topic_id"], t["error_code"]) for t in body["topics"]] == [("a", a, 0), ("", unknown, 100)]


def test_topic_ids_survive_a_restart(tmp_path):
    server = InProcessServer(tmp_path / "data")
    try:
        server.broker.create_topic("kept", partitions=1)
        with WireClient(server.port) as client:
            first = client.call(METADATA, 12, request(12, ["kept"]))["topics"][0]["topic_id"]
    finally:
        server.close()
    server = InProcessServer(tmp_path / "data")
    try:
        with WireClient(server.port) as client:
            body = client.call(METADATA, 12, request(12, ids=[first]))
        assert [(t["name"], t["topic_id"], t["error_code"]) for t in body["topics"]] == [("kept", first, 0)]
    finally:
        server.close()
