"""Share groups (KIP-932): ShareGroupHeartbeat, ShareFetch and ShareAcknowledge, written from
SHARE_GROUPS.md §2.3-2.5 in ../shared/kafka/.

Exactly v1 of each, the first stable version (Kafka 4.1) and the only one librdkafka 2.16 sends;
all three are flexible in every version, so their requests use header v2 and their responses
header v1.  Everything is addressed by topic id.  Points that differ from the look-alike Fetch:

* the heartbeat's ``assignment`` is a nullable struct (INT8 -1 null / 1 present, see ``schema.py``);
* ShareFetch's ``records`` is never null: empty records are a zero-length value (varint 1), because
  librdkafka discards the whole response on a null (§2.4; the 4.2 schemas agree);
* ``current_leader`` is a plain in-line struct (with its own tag section) and ``node_endpoints`` a
  plain array, not tagged fields; ``current_leader`` defaults to -1/-1, what §2.4 says to send when
  there is no error.
"""

from __future__ import annotations

from ..schema import Api, Array, Field, Struct

_ACKNOWLEDGEMENT_BATCH = Array(
    Field("first_offset", "int64"),
    Field("last_offset", "int64"),
    Field("acknowledge_types", "[]int8"),  # one per offset, or one for the whole range
)

_CURRENT_LEADER = Struct(
    Field("leader_id", "int32", default=-1),
    Field("leader_epoch", "int32", default=-1),
)

_NODE_ENDPOINT = Array(
    Field("node_id", "int32"),
    Field("host", "string"),
    Field("port", "int32"),
    Field("rack", "string", nullable_versions="1+"),
)

SHARE_GROUP_HEARTBEAT = Api(
    76, "ShareGroupHeartbeat", "1", "1+",
    request=(
        Field("group_id", "string"),
        Field("member_id", "string"),
        Field("member_epoch", "int32"),  # 0 join, -1 leave, else the current epoch
        Field("rack_id", "string", nullable_versions="1+"),
        Field("subscribed_topic_names", "[]string", nullable_versions="1+"),  # null: unchanged
    ),
    response=(
        Field("throttle_time_ms", "int32"),
        Field("error_code", "int16"),
        Field("error_message", "string", nullable_versions="1+"),
        Field("member_id", "string", nullable_versions="1+"),
        Field("member_epoch", "int32"),
        Field("heartbeat_interval_ms", "int32"),
        Field("assignment", Struct(
            Field("topic_partitions", Array(
                Field("topic_id", "uuid"),
                Field("partitions", "[]int32"),
            )),
        ), nullable_versions="1+"),
    ),
)

SHARE_FETCH = Api(
    78, "ShareFetch", "1", "1+",
    request=(
        Field("group_id", "string", nullable_versions="1+"),
        Field("member_id", "string", nullable_versions="1+"),
        Field("share_session_epoch", "int32"),  # 0 opens a session, -1 closes it
        Field("max_wait_ms", "int32"),
        Field("min_bytes", "int32"),
        Field("max_bytes", "int32", default=0x7FFFFFFF),
        Field("max_records", "int32"),
        Field("batch_size", "int32"),
        Field("topics", Array(
            Field("topic_id", "uuid"),
            Field("partitions", Array(
                Field("partition_index", "int32"),
                Field("acknowledgement_batches", _ACKNOWLEDGEMENT_BATCH),
            )),
        )),
        Field("forgotten_topics_data", Array(
            Field("topic_id", "uuid"),
            Field("partitions", "[]int32"),
        )),
    ),
    response=(
        Field("throttle_time_ms", "int32"),
        Field("error_code", "int16"),
        Field("error_message", "string", nullable_versions="1+"),
        Field("acquisition_lock_timeout_ms", "int32"),
        Field("responses", Array(
            Field("topic_id", "uuid"),
            Field("partitions", Array(
                Field("partition_index", "int32"),
                Field("error_code", "int16"),
                Field("error_message", "string", nullable_versions="1+"),
                Field("acknowledge_error_code", "int16"),
                Field("acknowledge_error_message", "string", nullable_versions="1+"),
                Field("current_leader", _CURRENT_LEADER),
                Field("records", "records", default=b""),  # never null, see the module docstring
                Field("acquired_records", Array(
                    Field("first_offset", "int64"),
                    Field("last_offset", "int64"),
                    Field("delivery_count", "int16"),
                )),
            )),
        )),
        Field("node_endpoints", _NODE_ENDPOINT),
    ),
)

SHARE_ACKNOWLEDGE = Api(
    79, "ShareAcknowledge", "1", "1+",
    request=(
        Field("group_id", "string", nullable_versions="1+"),
        Field("member_id", "string", nullable_versions="1+"),
        Field("share_session_epoch", "int32"),  # never 0; -1 closes the session
        Field("topics", Array(
            Field("topic_id", "uuid"),
            Field("partitions", Array(
                Field("partition_index", "int32"),
                Field("acknowledgement_batches", _ACKNOWLEDGEMENT_BATCH),
            )),
        )),
    ),
    response=(
        Field("throttle_time_ms", "int32"),
        Field("error_code", "int16"),
        Field("error_message", "string", nullable_versions="1+"),
        Field("responses", Array(
            Field("topic_id", "uuid"),
            Field("partitions", Array(
                Field("partition_index", "int32"),
                Field("error_code", "int16"),
                Field("error_message", "string", nullable_versions="1+"),
                Field("current_leader", _CURRENT_LEADER),
            )),
        )),
        Field("node_endpoints", _NODE_ENDPOINT),
    ),
)

APIS = (SHARE_GROUP_HEARTBEAT, SHARE_FETCH, SHARE_ACKNOWLEDGE)
