"""Admin APIs, written from the facts in ../shared/kafka/.

CreateTopics, DeleteTopics, CreatePartitions, DeleteRecords, DescribeConfigs, DescribeGroups,
ListGroups and DeleteGroups, each for every version of the reference schemas; IncrementalAlterConfigs
(key 44, versions 0-1, v1 flexible; the same fields in both) from Kafka's published message schema,
which the pack does not carry (SHARE_GROUPS.md §1.1 names it as the way to configure share groups).
"""

from __future__ import annotations

from ..schema import Api, Array, Field

CREATE_TOPICS = Api(
    19, "CreateTopics", "0-7", "5+",
    request=(
        Field("topics", Array(
            Field("name", "string"),
            Field("num_partitions", "int32"),  # -1 (v4+): the broker's default
            Field("replication_factor", "int16"),
            Field("assignments", Array(
                Field("partition_index", "int32"),
                Field("broker_ids", "[]int32"),
            )),
            Field("configs", Array(
                Field("name", "string"),
                Field("value", "string", nullable_versions="0+"),
            )),
        )),
        Field("timeout_ms", "int32", default=60000),
        Field("validate_only", "bool", "1+"),
    ),
    response=(
        Field("throttle_time_ms", "int32", "2+"),
        Field("topics", Array(
            Field("name", "string"),
            Field("topic_id", "uuid", "7+"),
            Field("error_code", "int16"),
            Field("error_message", "string", "1+", nullable_versions="0+"),
            Field("topic_config_error_code", "int16", "5+", tag=0),
            Field("num_partitions", "int32", "5+", default=-1),
            Field("replication_factor", "int16", "5+", default=-1),
            Field("configs", Array(
                Field("name", "string", "5+"),
                Field("value", "string", "5+", nullable_versions="5+"),
                Field("read_only", "bool", "5+"),
                Field("config_source", "int8", "5+", default=-1),
                Field("is_sensitive", "bool", "5+"),
            ), "5+", nullable_versions="5+"),
        )),
    ),
)

DELETE_TOPICS = Api(
    20, "DeleteTopics", "0-6", "4+",
    request=(
        Field("topics", Array(
            Field("name", "string", "6+", nullable_versions="6+"),
            Field("topic_id", "uuid", "6+"),
        ), "6+"),
        Field("topic_names", "[]string", "0-5"),
        Field("timeout_ms", "int32"),
    ),
    response=(
        Field("throttle_time_ms", "int32", "1+"),
        Field("responses", Array(
            Field("name", "string", nullable_versions="6+"),
            Field("topic_id", "uuid", "6+"),
            Field("error_code", "int16"),
            Field("error_message", "string", "5+", nullable_versions="5+"),
        )),
    ),
)

CREATE_PARTITIONS = Api(
    37, "CreatePartitions", "0-3", "2+",
    request=(
        Field("topics", Array(
            Field("name", "string"),
            Field("count", "int32"),
            Field("assignments", Array(
                Field("broker_ids", "[]int32"),
            ), nullable_versions="0+"),
        )),
        Field("timeout_ms", "int32"),
        Field("validate_only", "bool"),
    ),
    response=(
        Field("throttle_time_ms", "int32"),
        Field("results", Array(
            Field("name", "string"),
            Field("error_code", "int16"),
            Field("error_message", "string", nullable_versions="0+"),
        )),
    ),
)

DELETE_RECORDS = Api(
    21, "DeleteRecords", "0-2", "2+",
    request=(
        Field("topics", Array(
            Field("name", "string"),
            Field("partitions", Array(
                Field("partition_index", "int32"),
                Field("offset", "int64"),
            )),
        )),
        Field("timeout_ms", "int32"),
    ),
    response=(
        Field("throttle_time_ms", "int32"),
        Field("topics", Array(
            Field("name", "string"),
            Field("partitions", Array(
                Field("partition_index", "int32"),
                Field("low_watermark", "int64"),
                Field("error_code", "int16"),
            )),
        )),
    ),
)

DESCRIBE_CONFIGS = Api(
    32, "DescribeConfigs", "0-4", "4+",
    request=(
        Field("resources", Array(
            Field("resource_type", "int8"),  # 2 topic, 4 broker, 32 group
            Field("resource_name", "string"),
            Field("configuration_keys", "[]string", nullable_versions="0+"),  # null: every key
        )),
        Field("include_synonyms", "bool", "1+"),
        Field("include_documentation", "bool", "3+"),
    ),
    response=(
        Field("throttle_time_ms", "int32"),
        Field("results", Array(
            Field("error_code", "int16"),
            Field("error_message", "string", nullable_versions="0+"),
            Field("resource_type", "int8"),
            Field("resource_name", "string"),
            Field("configs", Array(
                Field("name", "string"),
                Field("value", "string", nullable_versions="0+"),
                Field("read_only", "bool"),
                Field("is_default", "bool", "0"),
                Field("config_source", "int8", "1+", default=-1),
                Field("is_sensitive", "bool"),
                Field("synonyms", Array(
                    Field("name", "string", "1+"),
                    Field("value", "string", "1+", nullable_versions="0+"),
                    Field("source", "int8", "1+"),
                ), "1+"),
                Field("config_type", "int8", "3+"),
                Field("documentation", "string", "3+", nullable_versions="0+"),
            )),
        )),
    ),
)

INCREMENTAL_ALTER_CONFIGS = Api(
    44, "IncrementalAlterConfigs", "0-1", "1+",
    request=(
        Field("resources", Array(
            Field("resource_type", "int8"),  # 2 topic, 4 broker, 32 group
            Field("resource_name", "string"),
            Field("configs", Array(
                Field("name", "string"),
                Field("config_operation", "int8"),  # 0 SET, 1 DELETE, 2 APPEND, 3 SUBTRACT
                Field("value", "string", nullable_versions="0+"),
            )),
        )),
        Field("validate_only", "bool"),
    ),
    response=(
        Field("throttle_time_ms", "int32"),
        Field("responses", Array(
            Field("error_code", "int16"),
            Field("error_message", "string", nullable_versions="0+"),
            Field("resource_type", "int8"),
            Field("resource_name", "string"),
        )),
    ),
)

DESCRIBE_GROUPS = Api(
    15, "DescribeGroups", "0-5", "5+",
    request=(
        Field("groups", "[]string"),
        Field("include_authorized_operations", "bool", "3+"),
    ),
    response=(
        Field("throttle_time_ms", "int32", "1+"),
        Field("groups", Array(
            Field("error_code", "int16"),
            Field("group_id", "string"),
            Field("group_state", "string"),
            Field("protocol_type", "string"),
            Field("protocol_data", "string"),
            Field("members", Array(
                Field("member_id", "string"),
                Field("group_instance_id", "string", "4+", nullable_versions="4+"),
                Field("client_id", "string"),
                Field("client_host", "string"),
                Field("member_metadata", "bytes"),
                Field("member_assignment", "bytes"),
            )),
            Field("authorized_operations", "int32", "3+", default=-2**31),
        )),
    ),
)

LIST_GROUPS = Api(
    16, "ListGroups", "0-5", "3+",
    request=(
        Field("states_filter", "[]string", "4+"),
        Field("types_filter", "[]string", "5+"),
    ),
    response=(
        Field("throttle_time_ms", "int32", "1+"),
        Field("error_code", "int16"),
        Field("groups", Array(
            Field("group_id", "string"),
            Field("protocol_type", "string"),
            Field("group_state", "string", "4+"),
            Field("group_type", "string", "5+"),
        )),
    ),
)

DELETE_GROUPS = Api(
    42, "DeleteGroups", "0-2", "2+",
    request=(
        Field("groups_names", "[]string"),
    ),
    response=(
        Field("throttle_time_ms", "int32"),
        Field("results", Array(
            Field("group_id", "string"),
            Field("error_code", "int16"),
        )),
    ),
)

APIS = (CREATE_TOPICS, DELETE_TOPICS, CREATE_PARTITIONS, DELETE_RECORDS, DESCRIBE_CONFIGS, INCREMENTAL_ALTER_CONFIGS,
        DESCRIBE_GROUPS, LIST_GROUPS, DELETE_GROUPS)
