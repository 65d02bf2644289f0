"""Classic consumer-group coordination, written from the facts in ../shared/kafka/.

FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit and OffsetFetch, each for
every version of the reference schemas.  The subscription and assignment blobs (JoinGroup
``metadata``, SyncGroup ``assignment``) are opaque ``bytes`` here.
"""

from __future__ import annotations

from ..schema import Api, Array, Field

FIND_COORDINATOR = Api(
    10, "FindCoordinator", "0-6", "3+",
    request=(
        Field("key", "string", "0-3"),
        Field("key_type", "int8", "1+"),  # 0 group, 1 transaction
        Field("coordinator_keys", "[]string", "4+"),
    ),
    response=(
        Field("throttle_time_ms", "int32", "1+"),
        Field("error_code", "int16", "0-3"),
        Field("error_message", "string", "1-3", nullable_versions="1-3"),
        Field("node_id", "int32", "0-3"),
        Field("host", "string", "0-3"),
        Field("port", "int32", "0-3"),
        Field("coordinators", Array(
            Field("key", "string", "4+"),
            Field("node_id", "int32", "4+"),
            Field("host", "string", "4+"),
            Field("port", "int32", "4+"),
            Field("error_code", "int16", "4+"),
            Field("error_message", "string", "4+", nullable_versions="4+"),
        ), "4+"),
    ),
)

JOIN_GROUP = Api(
    11, "JoinGroup", "0-9", "6+",
    request=(
        Field("group_id", "string"),
        Field("session_timeout_ms", "int32"),
        Field("rebalance_timeout_ms", "int32", "1+", default=-1),
        Field("member_id", "string"),
        Field("group_instance_id", "string", "5+", nullable_versions="5+"),
        Field("protocol_type", "string"),
        Field("protocols", Array(
            Field("name", "string"),
            Field("metadata", "bytes"),
        )),
        Field("reason", "string", "8+", nullable_versions="8+"),
    ),
    response=(
        Field("throttle_time_ms", "int32", "2+"),
        Field("error_code", "int16"),
        Field("generation_id", "int32", default=-1),
        Field("protocol_type", "string", "7+", nullable_versions="7+"),
        Field("protocol_name", "string", nullable_versions="7+"),
        Field("leader", "string"),
        Field("skip_assignment", "bool", "9+"),
        Field("member_id", "string"),
        Field("members", Array(
            Field("member_id", "string"),
            Field("group_instance_id", "string", "5+", nullable_versions="5+"),
            Field("metadata", "bytes"),
        )),
    ),
)

SYNC_GROUP = Api(
    14, "SyncGroup", "0-5", "4+",
    request=(
        Field("group_id", "string"),
        Field("generation_id", "int32"),
        Field("member_id", "string"),
        Field("group_instance_id", "string", "3+", nullable_versions="3+"),
        Field("protocol_type", "string", "5+", nullable_versions="5+"),
        Field("protocol_name", "string", "5+", nullable_versions="5+"),
        Field("assignments", Array(
            Field("member_id", "string"),
            Field("assignment", "bytes"),
        )),
    ),
    response=(
        Field("throttle_time_ms", "int32", "1+"),
        Field("error_code", "int16"),
        Field("protocol_type", "string", "5+", nullable_versions="5+"),
        Field("protocol_name", "string", "5+", nullable_versions="5+"),
        Field("assignment", "bytes"),
    ),
)

HEARTBEAT = Api(
    12, "Heartbeat", "0-4", "4+",
    request=(
        Field("group_id", "string"),
        Field("generation_id", "int32"),
        Field("member_id", "string"),
        Field("group_instance_id", "string", "3+", nullable_versions="3+"),
    ),
    response=(
        Field("throttle_time_ms", "int32", "1+"),
        Field("error_code", "int16"),
    ),
)

LEAVE_GROUP = Api(
    13, "LeaveGroup", "0-5", "4+",
    request=(
        Field("group_id", "string"),
        Field("member_id", "string", "0-2"),
        Field("members", Array(  # v3+: batch leave (KIP-345)
            Field("member_id", "string", "3+"),
            Field("group_instance_id", "string", "3+", nullable_versions="3+"),
            Field("reason", "string", "5+", nullable_versions="5+"),
        ), "3+"),
    ),
    response=(
        Field("throttle_time_ms", "int32", "1+"),
        Field("error_code", "int16"),
        Field("members", Array(
            Field("member_id", "string", "3+"),
            Field("group_instance_id", "string", "3+", nullable_versions="3+"),
            Field("error_code", "int16", "3+"),
        ), "3+"),
    ),
)

OFFSET_COMMIT = Api(
    8, "OffsetCommit", "0-9", "8+",
    request=(
        Field("group_id", "string"),
        Field("generation_id_or_member_epoch", "int32", "1+", default=-1),
        Field("member_id", "string", "1+"),
        Field("group_instance_id", "string", "7+", nullable_versions="7+"),
        Field("retention_time_ms", "int64", "2-4", default=-1),
        Field("topics", Array(
            Field("name", "string"),
            Field("partitions", Array(
                Field("partition_index", "int32"),
                Field("committed_offset", "int64"),
                Field("committed_leader_epoch", "int32", "6+", default=-1),
                Field("commit_timestamp", "int64", "1", default=-1),
                Field("committed_metadata", "string", nullable_versions="0+"),
            )),
        )),
    ),
    response=(
        Field("throttle_time_ms", "int32", "3+"),
        Field("topics", Array(
            Field("name", "string"),
            Field("partitions", Array(
                Field("partition_index", "int32"),
                Field("error_code", "int16"),
            )),
        )),
    ),
)

OFFSET_FETCH = Api(
    9, "OffsetFetch", "0-9", "6+",
    request=(
        Field("group_id", "string", "0-7"),
        Field("topics", Array(  # null (v2+) = every partition the group has committed
            Field("name", "string", "0-7"),
            Field("partition_indexes", "[]int32", "0-7"),
        ), "0-7", nullable_versions="2-7"),
        Field("groups", Array(
            Field("group_id", "string", "8+"),
            Field("member_id", "string", "9+", nullable_versions="9+"),
            Field("member_epoch", "int32", "9+", default=-1),
            Field("topics", Array(
                Field("name", "string", "8+"),
                Field("partition_indexes", "[]int32", "8+"),
            ), "8+", nullable_versions="8+"),
        ), "8+"),
        Field("require_stable", "bool", "7+"),
    ),
    response=(
        Field("throttle_time_ms", "int32", "3+"),
        Field("topics", Array(
            Field("name", "string", "0-7"),
            Field("partitions", Array(
                Field("partition_index", "int32", "0-7"),
                Field("committed_offset", "int64", "0-7"),
                Field("committed_leader_epoch", "int32", "5-7", default=-1),
                Field("metadata", "string", "0-7", nullable_versions="0-7"),
                Field("error_code", "int16", "0-7"),
            ), "0-7"),
        ), "0-7"),
        Field("error_code", "int16", "2-7"),
        Field("groups", Array(
            Field("group_id", "string", "8+"),
            Field("topics", Array(
                Field("name", "string", "8+"),
                Field("partitions", Array(
                    Field("partition_index", "int32", "8+"),
                    Field("committed_offset", "int64", "8+"),
                    Field("committed_leader_epoch", "int32", "8+", default=-1),
                    Field("metadata", "string", "8+", nullable_versions="8+"),
                    Field("error_code", "int16", "8+"),
                ), "8+"),
            ), "8+"),
            Field("error_code", "int16", "8+"),
        ), "8+"),
    ),
)

APIS = (FIND_COORDINATOR, JOIN_GROUP, SYNC_GROUP, HEARTBEAT, LEAVE_GROUP, OFFSET_COMMIT, OFFSET_FETCH)
