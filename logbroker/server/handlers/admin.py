"""Admin: CreateTopics (19), DeleteTopics (20), CreatePartitions (37), DescribeConfigs (32) for topics,
the broker and share groups (IncrementalAlterConfigs and the group entries: ``configs.py``).

A single node can hold one replica: replication factor 1 (or -1, "the broker's default") only,
else INVALID_REPLICATION_FACTOR (38); explicit replica assignments must name broker 0 alone
(INVALID_REPLICA_ASSIGNMENT, 39).  ``validate_only`` runs the same checks and creates nothing.
A created topic is visible to Metadata before the answer leaves (admin clients poll right after).
"""

from __future__ import annotations

from ...broker.core import MAX_PARTITIONS, OFFSETS_TOPIC
from ...config import LogConfig, validate_overrides, validate_topic_name
from ...errors import (InvalidPartitionsError, InvalidRequestError, InvalidTopicError, LogbrokerError,
                       TopicAlreadyExistsError, UnknownTopicOrPartitionError)
from .common import NONE, error_code, error_message
from .configs import (BROKER, GROUP, SOURCE_DEFAULT, SOURCE_DYNAMIC_TOPIC, SOURCE_STATIC_BROKER, TOPIC, config_entry,
                      group_entries)
from .metadata import NODE_ID

INVALID_REPLICATION_FACTOR = 38
INVALID_REPLICA_ASSIGNMENT = 39


class _Refused(LogbrokerError):
    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.error_code = code


# ---- CreateTopics ---------------------------------------------------------------------------------------

def _check_new_topic(broker, name: str, partitions: int, configs: dict) -> None:
    """What ``Broker.create_topic`` checks, without creating anything (validate_only)."""
    validate_topic_name(name)
    if name == OFFSETS_TOPIC:
        raise InvalidTopicError(f"cannot create the internal topic {OFFSETS_TOPIC}")
    if name in broker.list_topics():
        raise TopicAlreadyExistsError(f"topic {name!r} already exists")
    if not 1 <= partitions <= MAX_PARTITIONS:
        raise InvalidPartitionsError(f"partitions must be between 1 and {MAX_PARTITIONS}, got {partitions}")
    LogConfig.from_overrides(validate_overrides(configs))


def create_all(broker, topics: list[dict], validate_only: bool, default_partitions: int) -> list[dict]:
    names = [t["name"] for t in topics]
    out = []
    for topic in topics:
        name = topic["name"]
        partitions = topic.get("num_partitions", -1)
        replication = topic.get("replication_factor", -1)
        assignments = topic.get("assignments") or []
        configs = {c["name"]: c["value"] for c in topic.get("configs") or [] if c.get("value") is not None}
        try:
            if names.count(name) > 1:
                raise InvalidRequestError(f"topic {name!r} appears more than once in the request")
            if assignments:
                if partitions != -1 or replication != -1:
                    raise InvalidRequestError("give either num_partitions/replication_factor or assignments")
                if any(list(a.get("broker_ids") or []) != [NODE_ID] for a in assignments):
                    raise _Refused(INVALID_REPLICA_ASSIGNMENT, f"this single-node broker is node {NODE_ID}; "
                                                               f"every partition must be assigned to [{NODE_ID}]")
                partitions = len(assignments)
            elif replication not in (-1, 1):
                raise _Refused(INVALID_REPLICATION_FACTOR,
                               f"replication factor {replication} is impossible on a single broker (use 1 or -1)")
            if partitions == -1:
                partitions = default_partitions
            if validate_only:
                _check_new_topic(broker, name, partitions, configs)
            else:
                broker.create_topic(name, partitions=partitions, config=configs)
            out.append({"name": name, "error_code": NONE, "error_message": None, "num_partitions": partitions,
                        "replication_factor": 1, "configs": []})
        except Exception as exc:
            out.append({"name": name, "error_code": error_code(exc), "error_message": error_message(exc),
                        "num_partitions": -1, "replication_factor": -1, "configs": []})
    return out


async def handle_create_topics(ctx, body: dict) -> dict:
    topics = await ctx.run(create_all, ctx.broker, body.get("topics") or [], bool(body.get("validate_only")),
                           ctx.server.default_partitions)
    return {"throttle_time_ms": 0, "topics": topics}


# ---- DeleteTopics -----------------------------------------------------------------------------------------

def delete_all(broker, names: list[str]) -> list[dict]:
    out = []
    for name in names:
        try:
            broker.delete_topic(name)
            out.append({"name": name, "error_code": NONE, "error_message": None})
        except Exception as exc:
            out.append({"name": name, "error_code": error_code(exc), "error_message": error_message(exc)})
    return out


async def handle_delete_topics(ctx, body: dict) -> dict:
    names = list(body.get("topic_names") or [])
    names += [t["name"] for t in body.get("topics") or [] if t.get("name")]  # v6+
    responses = await ctx.run(delete_all, ctx.broker, names)
    return {"throttle_time_ms": 0, "responses": responses}


# ---- CreatePartitions ---------------------------------------------------------------------------------------

def grow_all(broker, topics: list[dict], validate_only: bool) -> list[dict]:
    out = []
    for topic in topics:
        name, count = topic["name"], topic["count"]
        try:
            assignments = topic.get("assignments")
            if assignments and any(list(a.get("broker_ids") or []) != [NODE_ID] for a in assignments):
                raise _Refused(INVALID_REPLICA_ASSIGNMENT, f"every partition must be assigned to [{NODE_ID}]")
            current = broker.topic(name).partitions
            if validate_only:
                if count <= current:
                    raise InvalidPartitionsError(
                        f"topic {name!r} has {current} partitions; the new count must be larger, got {count}")
                if count > MAX_PARTITIONS:
                    raise InvalidPartitionsError(f"at most {MAX_PARTITIONS} partitions, got {count}")
            else:
                broker.create_partitions(name, count)
            out.append({"name": name, "error_code": NONE, "error_message": None})
        except Exception as exc:
            out.append({"name": name, "error_code": error_code(exc), "error_message": error_message(exc)})
    return out


async def handle_create_partitions(ctx, body: dict) -> dict:
    results = await ctx.run(grow_all, ctx.broker, body.get("topics") or [], bool(body.get("validate_only")))
    return {"throttle_time_ms": 0, "results": results}


# ---- DescribeConfigs ------------------------------------------------------------------------------------------

def describe_all(broker, server, resources: list[dict], include_synonyms: bool) -> list[dict]:
    out = []
    for resource in resources:
        rtype, rname = resource["resource_type"], resource["resource_name"]
        keys = resource.get("configuration_keys")
        result = {"error_code": NONE, "error_message": None, "resource_type": rtype, "resource_name": rname,
                  "configs": []}
        try:
            if rtype == TOPIC:
                described = broker.describe_topic(rname)
                overrides = described["overrides"]
                entries = [config_entry(k, v, SOURCE_DYNAMIC_TOPIC if k in overrides else SOURCE_DEFAULT,
                                        include_synonyms) for k, v in sorted(described["config"].items())]
            elif rtype == BROKER:
                if rname not in ("", str(NODE_ID)):
                    raise InvalidRequestError(f"this broker is node {NODE_ID}, not {rname!r}")
                entries = [config_entry(k, v, SOURCE_STATIC_BROKER, include_synonyms, read_only=True)
                           for k, v in sorted(server.broker_configs().items())]
            elif rtype == GROUP:
                entries = group_entries(broker, rname, include_synonyms)
            else:
                raise InvalidRequestError(f"resource type {rtype} is not supported (2 = topic, 4 = broker, "
                                          f"32 = group)")
            if keys is not None:
                wanted = set(keys)
                entries = [e for e in entries if e["name"] in wanted]
            result["configs"] = entries
        except UnknownTopicOrPartitionError as exc:
            result.update(error_code=exc.error_code, error_message=str(exc))
        except Exception as exc:
            result.update(error_code=error_code(exc), error_message=error_message(exc))
        out.append(result)
    return out


async def handle_describe_configs(ctx, body: dict) -> dict:
    results = await ctx.run(describe_all, ctx.broker, ctx.server, body.get("resources") or [],
                            bool(body.get("include_synonyms")))
    return {"throttle_time_ms": 0, "results": results}
