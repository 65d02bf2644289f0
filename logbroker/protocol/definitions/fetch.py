"""Fetch, ListOffsets and OffsetForLeaderEpoch, written from the facts in ../shared/kafka/.

Fetch is defined for v0-17: sessions from v7, rack_id at v11, flexible with tagged leader hints from
v12, topic ids instead of names from v13.  A fetch response's ``records`` defaults to ``b""`` rather
than null: PROTOCOL.md §10 advises zero-length records for partitions without data, which every
client decodes.
"""

from __future__ import annotations

from ..schema import Api, Array, Field, Struct

_NODE_ENDPOINT = Array(
    Field("node_id", "int32", "16+"),
    Field("host", "string", "16+"),
    Field("port", "int32", "16+"),
    Field("rack", "string", "16+", nullable_versions="16+"),
)

FETCH = Api(
    1, "Fetch", "0-17", "12+",
    request=(
        Field("cluster_id", "string", "12+", nullable_versions="12+", tag=0),
        Field("replica_id", "int32", "0-14", default=-1),
        Field("replica_state", Struct(
            Field("replica_id", "int32", "15+", default=-1),
            Field("replica_epoch", "int64", "15+", default=-1),
        ), "15+", tag=1),
        Field("max_wait_ms", "int32"),
        Field("min_bytes", "int32"),
        Field("max_bytes", "int32", "3+", default=0x7FFFFFFF),
        Field("isolation_level", "int8", "4+"),
        Field("session_id", "int32", "7+"),
        Field("session_epoch", "int32", "7+", default=-1),
        Field("topics", Array(
            Field("topic", "string", "0-12"),
            Field("topic_id", "uuid", "13+"),
            Field("partitions", Array(
                Field("partition", "int32"),
                Field("current_leader_epoch", "int32", "9+", default=-1),
                Field("fetch_offset", "int64"),
                Field("last_fetched_epoch", "int32", "12+", default=-1),
                Field("log_start_offset", "int64", "5+", default=-1),
                Field("partition_max_bytes", "int32"),
                Field("replica_directory_id", "uuid", "17+", tag=0),
            )),
        )),
        Field("forgotten_topics_data", Array(
            Field("topic", "string", "7-12"),
            Field("topic_id", "uuid", "13+"),
            Field("partitions", "[]int32", "7+"),
        ), "7+"),
        Field("rack_id", "string", "11+"),
    ),
    response=(
        Field("throttle_time_ms", "int32", "1+"),
        Field("error_code", "int16", "7+"),
        Field("session_id", "int32", "7+"),
        Field("responses", Array(
            Field("topic", "string", "0-12"),
            Field("topic_id", "uuid", "13+"),
            Field("partitions", Array(
                Field("partition_index", "int32"),
                Field("error_code", "int16"),
                Field("high_watermark", "int64"),
                Field("last_stable_offset", "int64", "4+", default=-1),
                Field("log_start_offset", "int64", "5+", default=-1),
                Field("diverging_epoch", Struct(
                    Field("epoch", "int32", "12+", default=-1),
                    Field("end_offset", "int64", "12+", default=-1),
                ), "12+", tag=0),
                Field("current_leader", Struct(
                    Field("leader_id", "int32", "12+", default=-1),
                    Field("leader_epoch", "int32", "12+", default=-1),
                ), "12+", tag=1),
                Field("snapshot_id", Struct(
                    Field("end_offset", "int64", default=-1),
                    Field("epoch", "int32", default=-1),
                ), "12+", tag=2),
                Field("aborted_transactions", Array(
                    Field("producer_id", "int64", "4+"),
                    Field("first_offset", "int64", "4+"),
                ), "4+", nullable_versions="4+"),
                Field("preferred_read_replica", "int32", "11+", default=-1),
                Field("records", "records", nullable_versions="0+", default=b""),
            )),
        )),
        Field("node_endpoints", _NODE_ENDPOINT, "16+", tag=0),
    ),
)

LIST_OFFSETS = Api(
    2, "ListOffsets", "0-10", "6+",
    request=(
        Field("replica_id", "int32"),
        Field("isolation_level", "int8", "2+"),
        Field("topics", Array(
            Field("name", "string"),
            Field("partitions", Array(
                Field("partition_index", "int32"),
                Field("current_leader_epoch", "int32", "4+", default=-1),
                Field("timestamp", "int64"),
                Field("max_num_offsets", "int32", "0", default=1),
            )),
        )),
        Field("timeout_ms", "int32", "10+"),
    ),
    response=(
        Field("throttle_time_ms", "int32", "2+"),
        Field("topics", Array(
            Field("name", "string"),
            Field("partitions", Array(
                Field("partition_index", "int32"),
                Field("error_code", "int16"),
                Field("old_style_offsets", "[]int64", "0"),
                Field("timestamp", "int64", "1+", default=-1),
                Field("offset", "int64", "1+", default=-1),
                Field("leader_epoch", "int32", "4+", default=-1),
            )),
        )),
    ),
)

OFFSET_FOR_LEADER_EPOCH = Api(
    23, "OffsetForLeaderEpoch", "0-4", "4+",
    request=(
        Field("replica_id", "int32", "3+", default=-2),
        Field("topics", Array(
            Field("topic", "string"),
            Field("partitions", Array(
                Field("partition", "int32"),
                Field("current_leader_epoch", "int32", "2+", default=-1),
                Field("leader_epoch", "int32"),
            )),
        )),
    ),
    response=(
        Field("throttle_time_ms", "int32", "2+"),
        Field("topics", Array(
            Field("topic", "string"),
            Field("partitions", Array(
                Field("error_code", "int16"),
                Field("partition", "int32"),
                Field("leader_epoch", "int32", "1+", default=-1),
                Field("end_offset", "int64", default=-1),
            )),
        )),
    ),
)

APIS = (FETCH, LIST_OFFSETS, OFFSET_FOR_LEADER_EPOCH)
