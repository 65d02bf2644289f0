"""Metadata (3), v0-12: one broker (node 0, the address the client reached), every topic led by it.

Topics are asked for by name, or from v10 by topic id (a non-zero ``topic_id``; librdkafka's share
consumer does this with v12 to resolve the ids its assignment carries, SHARE_GROUPS.md §2.1).  Topic
ids are the real ones, stored with each topic as base64url (``storage.log_manager.new_topic_id``) and
sent as the 16 bytes they encode.  A lookup by id answers with the topic's name, or with
UNKNOWN_TOPIC_ID (100) and a null name (v10/v11 cannot carry null: an empty name there); it never
creates a topic.

Topics a request names but that do not exist are created with the server's default partition count
when auto-creation is on and the request allows it (``allow_auto_topic_creation``, v4+; older
versions always allow it, as in Kafka) -- and answered at once, not LEADER_NOT_AVAILABLE first:
the topic is complete before the answer leaves.  Invalid names get INVALID_TOPIC_EXCEPTION (17),
unknown ones UNKNOWN_TOPIC_OR_PARTITION (3) with the all-zero id.  Topics whose names start with
``__`` are internal.

Leader epochs (v7+) are -1, "unknown" (PROTOCOL.md §8, SHARE_GROUPS.md §1.2): a known epoch makes
librdkafka and kafka-python validate their positions with OffsetForLeaderEpoch (23), which this broker
does not serve; both skip that validation when the epoch is unknown.  Authorized operations (v8+) are
never computed: -2147483648, as Kafka sends when they were not asked for.
"""

from __future__ import annotations

import base64
import binascii
import uuid

from ...broker.core import INTERNAL_TOPICS
from ...errors import LogbrokerError, TopicAlreadyExistsError, UnknownTopicOrPartitionError
from .common import NONE, UNKNOWN_TOPIC_OR_PARTITION, error_code

NODE_ID = 0
NO_AUTHORIZED_OPERATIONS = -2147483648
UNKNOWN_LEADER_EPOCH = -1
UNKNOWN_TOPIC_ID = 100
ZERO_TOPIC_ID = uuid.UUID(int=0)


def broker_entry(ctx) -> dict:
    conn = ctx.connection
    return {"node_id": NODE_ID, "host": conn.local_host, "port": conn.local_port, "rack": None}


def topic_uuid(topic_id: str) -> uuid.UUID:
    """A stored topic id (base64url of 16 bytes, unpadded) as the UUID the wire carries."""
    try:
        return uuid.UUID(bytes=base64.urlsafe_b64decode(topic_id + "=" * (-len(topic_id) % 4)))
    except (binascii.Error, ValueError):  # not written by new_topic_id: no id rather than no answer
        return ZERO_TOPIC_ID


def auto_create(broker, name: str, partitions: int):
    """Create ``name`` (another request may have just done it); returns its TopicMetadata."""
    try:
        return broker.create_topic(name, partitions=partitions)
    except TopicAlreadyExistsError:
        return broker.topic(name)


def topic_entry(name: str | None, meta=None, error: int = NONE, topic_id: uuid.UUID = ZERO_TOPIC_ID) -> dict:
    partitions = []
    if meta is not None:
        topic_id = topic_uuid(meta.topic_id)
        partitions = [{"error_code": NONE, "partition_index": p, "leader_id": NODE_ID,
                       "leader_epoch": UNKNOWN_LEADER_EPOCH, "replica_nodes": [NODE_ID], "isr_nodes": [NODE_ID],
                       "offline_replicas": []}
                      for p in range(meta.partitions)]
    return {"error_code": error, "name": name, "topic_id": topic_id,
            "is_internal": name is not None and name.startswith("__"), "partitions": partitions,
            "topic_authorized_operations": NO_AUTHORIZED_OPERATIONS}


def by_name(broker, name: str | None, create: bool, partitions: int) -> dict:
    if name is None:  # neither a name nor an id
        return topic_entry(None, error=UNKNOWN_TOPIC_OR_PARTITION)
    try:
        return topic_entry(name, broker.topic(name))
    except UnknownTopicOrPartitionError:
        if not create or name in INTERNAL_TOPICS:
            return topic_entry(name, error=UNKNOWN_TOPIC_OR_PARTITION)
        try:
            return topic_entry(name, auto_create(broker, name, partitions))
        except LogbrokerError as exc:
            return topic_entry(name, error=exc.error_code)
    except Exception as exc:  # InvalidTopicError (17) and friends
        return topic_entry(name, error=error_code(exc))


def names_by_id(broker) -> dict[uuid.UUID, str]:
    out = {}
    for name in broker.list_topics():
        try:
            out[topic_uuid(broker.topic(name).topic_id)] = name
        except UnknownTopicOrPartitionError:  # deleted meanwhile
            continue
    return out


def describe_topics(broker, requested: list[dict] | None, create: bool, partitions: int) -> list[dict]:
    """One entry per requested topic (``{"name", "topic_id"?}``, duplicates once); None: every topic."""
    if requested is None:
        return [by_name(broker, name, False, partitions) for name in broker.list_topics()]
    ids = None
    out, seen = [], set()
    for topic in requested:
        topic_id, name = topic.get("topic_id", ZERO_TOPIC_ID), topic.get("name")
        key = (topic_id, None) if topic_id != ZERO_TOPIC_ID else (None, name)
        if key in seen:
            continue
        seen.add(key)
        if topic_id == ZERO_TOPIC_ID:
            out.append(by_name(broker, name, create, partitions))
            continue
        if ids is None:
            ids = names_by_id(broker)
        found = ids.get(topic_id)
        entry = by_name(broker, found, False, partitions) if found is not None else None
        if entry is None or entry["error_code"] != NONE or entry["topic_id"] != topic_id:
            entry = topic_entry(None, error=UNKNOWN_TOPIC_ID, topic_id=topic_id)
        out.append(entry)
    return out


async def handle_metadata(ctx, body: dict) -> dict:
    version = ctx.api_version
    requested = body.get("topics")
    if version == 0 and not requested:
        requested = None  # v0: an empty list means every topic
    allow = body.get("allow_auto_topic_creation", True) if version >= 4 else True
    server = ctx.server
    topics = await ctx.run(describe_topics, ctx.broker, requested, bool(allow and server.auto_create_topics),
                           server.default_partitions)
    if version < 12:  # names are nullable from v12 only
        for topic in topics:
            if topic["name"] is None:
                topic["name"] = ""
    return {"throttle_time_ms": 0, "brokers": [broker_entry(ctx)], "cluster_id": server.cluster_id,
            "controller_id": NODE_ID, "topics": topics,
            "cluster_authorized_operations": NO_AUTHORIZED_OPERATIONS}
