"""IncrementalAlterConfigs (44) and DescribeConfigs (32) of share groups at the byte level, over a real
socket with logbroker's own codec: topic SET / DELETE / APPEND / SUBTRACT, per-resource errors,
validate_only, share-group configs under Kafka's names with their config sources (8 set for the group,
5 following the default), and a classic consumer group's id refused."""

from __future__ import annotations

import pytest

from logbroker.protocol import SUPPORTED, decode_body, encode_body

from .support import WireClient
from .test_wire_groups import join_alone

DESCRIBE_CONFIGS, INCREMENTAL_ALTER_CONFIGS, API_VERSIONS = 32, 44, 18
TOPIC, BROKER, GROUP = 2, 4, 32
SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3
INVALID_CONFIG, INVALID_REQUEST, UNKNOWN_TOPIC = 40, 42, 3


def alter(client: WireClient, *resources, validate_only: bool = False, version: int = 1) -> list[tuple]:
    body = client.call(INCREMENTAL_ALTER_CONFIGS, version, {"validate_only": validate_only, "resources": [
        {"resource_type": rtype, "resource_name": name,
         "configs": [{"name": k, "config_operation": op, "value": v} for k, op, v in configs]}
        for rtype, name, configs in resources]})
    return [(r["resource_type"], r["resource_name"], r["error_code"], r["error_message"]) for r in body["responses"]]


def codes(answers) -> list[int]:
    return [code for _, _, code, _ in answers]


def group_configs(client: WireClient, group: str, version: int = 1) -> dict[str, tuple]:
    body = client.call(DESCRIBE_CONFIGS, version, {"include_synonyms": False, "resources": [
        {"resource_type": GROUP, "resource_name": group, "configuration_keys": None}]})
    [result] = body["results"]
    assert result["error_code"] == 0, result
    assert (result["resource_type"], result["resource_name"]) == (GROUP, group)
    return {c["name"]: (c["value"], c["config_source"]) for c in result["configs"]}


def test_advertised_and_both_versions_round_trip():
    assert SUPPORTED[INCREMENTAL_ALTER_CONFIGS] == (0, 1)
    request = {"validate_only": True, "resources": [{"resource_type": 32, "resource_name": "g", "configs": [
        {"name": "share.auto.offset.reset", "config_operation": 0, "value": "earliest"},
        {"name": "share.delivery.count.limit", "config_operation": 1, "value": None}]}]}
    response = {"throttle_time_ms": 0, "responses": [
        {"error_code": 40, "error_message": "bad", "resource_type": 32, "resource_name": "g"}]}
    for version in (0, 1):
        assert decode_body(44, "request", version, encode_body(44, "request", version, request)) == request
        assert decode_body(44, "response", version, encode_body(44, "response", version, response)) == response
    # v1 is flexible: compact strings and tag sections (one byte shorter per string/array here, plus tags)
    v0 = encode_body(44, "request", 0, request)
    v1 = encode_body(44, "request", 1, request)
    assert v0[:4] == b"\x00\x00\x00\x01" and v1[:1] == b"\x02"  # INT32 count vs varint count + 1


def test_api_versions_lists_incremental_alter_configs(inproc):
    with WireClient(inproc.port) as client:
        keys = {k["api_key"]: (k["min_version"], k["max_version"])
                for k in client.call(API_VERSIONS, 3, {"client_software_name": "t", "client_software_version": "1"})
                ["api_keys"]}
    assert keys[INCREMENTAL_ALTER_CONFIGS] == (0, 1)


@pytest.mark.parametrize("version", [0, 1])
def test_topic_set_delete_append_subtract_and_per_resource_errors(inproc, version):
    broker = inproc.broker
    broker.create_topic("a", config={"retention.ms": "1000"})
    broker.create_topic("b")
    with WireClient(inproc.port) as client:
        answers = alter(client, (TOPIC, "a", [("retention.bytes", SET, "4096"), ("retention.ms", DELETE, None)]),
                        (TOPIC, "b", [("retention.ms", SET, "nope")]),
                        (TOPIC, "missing", [("retention.ms", SET, "1")]),
                        (TOPIC, "b", [("no.such.config", SET, "1")]), version=version)
        assert answers[0] == (TOPIC, "a", 0, None)
        assert codes(answers[1:]) == [INVALID_REQUEST, UNKNOWN_TOPIC, INVALID_REQUEST]  # b named twice
        assert broker.topic("a").config == {"retention.bytes": "4096"}
        assert broker.topic("b").config == {}
        answers = alter(client, (TOPIC, "b", [("retention.ms", SET, "nope")]), version=version)
        assert codes(answers) == [INVALID_CONFIG] and "retention.ms" in answers[0][3]
        # cleanup.policy is a list: APPEND / SUBTRACT work on it (from the default "delete"); not on others
        assert codes(alter(client, (TOPIC, "b", [("cleanup.policy", APPEND, "compact")]), version=version)) == [0]
        assert broker.topic("b").config == {"cleanup.policy": "delete,compact"}
        assert codes(alter(client, (TOPIC, "b", [("cleanup.policy", SUBTRACT, "delete")]), version=version)) == [0]
        assert broker.topic("b").config == {"cleanup.policy": "compact"}
        answers = alter(client, (TOPIC, "b", [("retention.ms", APPEND, "5")]), version=version)
        assert codes(answers) == [INVALID_CONFIG] and "not a list config" in answers[0][3]
        # a config named twice in one resource
        assert codes(alter(client, (TOPIC, "b", [("retention.ms", SET, "5"), ("retention.ms", DELETE, None)]),
                           version=version)) == [INVALID_REQUEST]
        # the broker's configs are serve's options; unknown resource types are refused
        assert codes(alter(client, (BROKER, "0", [("num.partitions", SET, "3")]), (7, "x", []),
                           version=version)) == [INVALID_CONFIG, INVALID_REQUEST]
        # validate_only: checked, not applied
        assert codes(alter(client, (TOPIC, "b", [("retention.ms", SET, "5")]), validate_only=True,
                           version=version)) == [0]
        assert codes(alter(client, (TOPIC, "b", [("retention.ms", SET, "x")]), validate_only=True,
                           version=version)) == [INVALID_CONFIG]
        assert broker.topic("b").config == {"cleanup.policy": "compact"}


@pytest.mark.parametrize("version", [0, 1])
def test_share_group_configs_set_delete_and_describe_with_their_sources(inproc, version):
    shares = inproc.broker.shares
    with WireClient(inproc.port) as client:
        before = group_configs(client, "g")
        assert before == {"share.auto.offset.reset": ("latest", 5), "share.record.lock.duration.ms": ("30000", 5),
                          "share.delivery.count.limit": ("5", 5), "errors.deadletterqueue.topic.name": ("", 5)}
        assert "g" not in shares.list_groups()  # describing makes no group
        answers = alter(client, (GROUP, "g", [("share.auto.offset.reset", SET, "earliest"),
                                              ("share.record.lock.duration.ms", SET, "1500"),
                                              ("share.delivery.count.limit", SET, "3"),
                                              ("errors.deadletterqueue.topic.name", SET, "g.dlq")]), version=version)
        assert answers == [(GROUP, "g", 0, None)]
        config = shares.config("g")
        assert (config.auto_offset_reset, config.lock_duration_ms, config.delivery_count_limit,
                config.dead_letter_topic) == ("earliest", 1500, 3, "g.dlq")
        assert group_configs(client, "g") == {
            "share.auto.offset.reset": ("earliest", 8), "share.record.lock.duration.ms": ("1500", 8),
            "share.delivery.count.limit": ("3", 8), "errors.deadletterqueue.topic.name": ("g.dlq", 8)}
        # DELETE: back to the default; "" for the dead-letter topic: none (still the group's own setting)
        assert codes(alter(client, (GROUP, "g", [("share.record.lock.duration.ms", DELETE, None),
                                                 ("errors.deadletterqueue.topic.name", SET, "")]),
                           version=version)) == [0]
        described = group_configs(client, "g")
        assert described["share.record.lock.duration.ms"] == ("30000", 5)
        assert described["errors.deadletterqueue.topic.name"] == ("", 5)
        assert described["share.delivery.count.limit"] == ("3", 8)
        assert shares.config("g").dead_letter_topic is None
        # the broker's default moves (serve --share-...): groups following it follow
        shares.default_config = type(shares.default_config)(lock_duration_ms=20000)
        assert group_configs(client, "g")["share.record.lock.duration.ms"] == ("20000", 5)


def test_share_group_config_errors(inproc):
    shares = inproc.broker.shares
    with WireClient(inproc.port) as client:
        bad = alter(client, (GROUP, "g", [("share.auto.offset.reset", SET, "by_duration:PT1H")]),
                    (GROUP, "h", [("share.record.lock.duration.ms", SET, "soon")]),
                    (GROUP, "i", [("share.delivery.count.limit", SET, "0")]),
                    (GROUP, "j", [("share.session.timeout.ms", SET, "45000")]),
                    (GROUP, "k", [("share.auto.offset.reset", APPEND, "earliest")]),
                    (GROUP, "l", [("errors.deadletterqueue.topic.name", SET, "bad/name")]),
                    (GROUP, "m", [("errors.deadletterqueue.topic.name", SET, "__internal")]),
                    (GROUP, "n", [("share.auto.offset.reset", SET, None)]))
        assert codes(bad) == [INVALID_CONFIG] * 8
        assert "by_duration" in bad[0][3] and "share.session.timeout.ms" in bad[3][3]
        assert not {"g", "h", "i", "j", "k", "l", "m", "n"} & set(shares.list_groups())  # nothing was made
        # validate_only checks the values and changes nothing
        assert codes(alter(client, (GROUP, "v", [("share.delivery.count.limit", SET, "4")]),
                           validate_only=True)) == [0]
        assert codes(alter(client, (GROUP, "v", [("share.delivery.count.limit", SET, "-4")]),
                           validate_only=True)) == [INVALID_CONFIG]
        assert "v" not in shares.list_groups()
        # a classic consumer group is no share group: its configs are refused, both ways
        join_alone(client, group="classic")
        refused = alter(client, (GROUP, "classic", [("share.auto.offset.reset", SET, "earliest")]))
        assert codes(refused) == [INVALID_CONFIG] and "consumer group" in refused[0][3]
        body = client.call(DESCRIBE_CONFIGS, 1, {"include_synonyms": False, "resources": [
            {"resource_type": GROUP, "resource_name": "classic", "configuration_keys": None}]})
        assert body["results"][0]["error_code"] == INVALID_CONFIG
        assert "classic" not in shares.list_groups()


def test_describe_configs_of_a_group_honours_configuration_keys_and_synonyms(inproc):
    inproc.broker.shares.configure("g", delivery_count_limit=7)
    with WireClient(inproc.port) as client:
        body = client.call(DESCRIBE_CONFIGS, 2, {"include_synonyms": True, "resources": [
            {"resource_type": GROUP, "resource_name": "g", "configuration_keys": ["share.delivery.count.limit"]}]})
    [entry] = body["results"][0]["configs"]
    assert (entry["name"], entry["value"], entry["config_source"], entry["read_only"]) == \
        ("share.delivery.count.limit", "7", 8, False)
    assert entry["synonyms"] == [{"name": "share.delivery.count.limit", "value": "7", "source": 8}]
