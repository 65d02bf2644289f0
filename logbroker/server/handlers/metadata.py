"""Metadata (3): one broker (node 0, the address the client reached), every topic led by it.

Topics a request names but that do not exist are created with the server's default partition count
when auto-creation is on and the request allows it (``allow_auto_topic_creation``, v4+; older
versions always allow it, as in Kafka) -- and answered at once, not LEADER_NOT_AVAILABLE first:
the topic is complete before the answer leaves.  Invalid names get INVALID_TOPIC_EXCEPTION (17),
unknown ones UNKNOWN_TOPIC_OR_PARTITION (3).  ``__consumer_offsets`` is marked internal.
"""

from __future__ import annotations

from ...broker.core import OFFSETS_TOPIC
from ...errors import LogbrokerError, TopicAlreadyExistsError, UnknownTopicOrPartitionError
from .common import NONE, UNKNOWN_TOPIC_OR_PARTITION, error_code

NODE_ID = 0
NO_AUTHORIZED_OPERATIONS = -2147483648


def broker_entry(ctx) -> dict:
    conn = ctx.connection
    return {"node_id": NODE_ID, "host": conn.local_host, "port": conn.local_port, "rack": None}


def auto_create(broker, name: str, partitions: int):
    """Create ``name`` (another request may have just done it); returns its TopicMetadata."""
    try:
        return broker.create_topic(name, partitions=partitions)
    except TopicAlreadyExistsError:
        return broker.topic(name)


def topic_entry(name: str, meta=None, error: int = NONE) -> dict:
    partitions = []
    if meta is not None:
        partitions = [{"error_code": NONE, "partition_index": p, "leader_id": NODE_ID, "leader_epoch": 0,
                       "replica_nodes": [NODE_ID], "isr_nodes": [NODE_ID], "offline_replicas": []}
                      for p in range(meta.partitions)]
    return {"error_code": error, "name": name, "is_internal": name == OFFSETS_TOPIC, "partitions": partitions,
            "topic_authorized_operations": NO_AUTHORIZED_OPERATIONS}


def describe_topics(broker, names: list[str] | None, create: bool, partitions: int) -> list[dict]:
    if names is None:
        names = broker.list_topics()
        create = False
    out = []
    for name in names:
        try:
            meta = broker.topic(name)
        except UnknownTopicOrPartitionError:
            if not create or name == OFFSETS_TOPIC:
                out.append(topic_entry(name, error=UNKNOWN_TOPIC_OR_PARTITION))
                continue
            try:
                meta = auto_create(broker, name, partitions)
            except LogbrokerError as exc:
                out.append(topic_entry(name, error=exc.error_code))
                continue
        except Exception as exc:  # InvalidTopicError (17) and friends
            out.append(topic_entry(name, error=error_code(exc)))
            continue
        out.append(topic_entry(name, meta))
    return out


async def handle_metadata(ctx, body: dict) -> dict:
    version = ctx.api_version
    requested = body.get("topics")
    if version == 0 and not requested:
        requested = None  # v0: an empty list means every topic
    names = None
    if requested is not None:
        names = list(dict.fromkeys(t["name"] for t in requested))
    allow = body.get("allow_auto_topic_creation", True) if version >= 4 else True
    server = ctx.server
    topics = await ctx.run(describe_topics, ctx.broker, names, bool(allow and server.auto_create_topics),
                           server.default_partitions)
    return {"throttle_time_ms": 0, "brokers": [broker_entry(ctx)], "cluster_id": server.cluster_id,
            "controller_id": NODE_ID, "topics": topics,
            "cluster_authorized_operations": NO_AUTHORIZED_OPERATIONS}
