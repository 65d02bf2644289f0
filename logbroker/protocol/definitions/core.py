"""ApiVersions, Metadata and the SASL handshake, written from the facts in ../shared/kafka/.

ApiVersions is the one API with special rules (PROTOCOL.md §5): flexible from v3, its response
header is always v0, and an error answer is always a v0 body.  ``codec.py`` applies those rules;
these are only the layouts.  Metadata is defined through v12 (flexible from v9, topic ids from v10),
ahead of what the broker advertises, so raising the advertised maximum needs no new definitions.
"""

from __future__ import annotations

from ..schema import Api, Array, Field

API_VERSIONS = Api(
    18, "ApiVersions", "0-4", "3+",
    request=(
        Field("client_software_name", "string", "3+"),
        Field("client_software_version", "string", "3+"),
    ),
    response=(
        Field("error_code", "int16"),
        Field("api_keys", Array(
            Field("api_key", "int16"),
            Field("min_version", "int16"),
            Field("max_version", "int16"),
        )),
        Field("throttle_time_ms", "int32", "1+"),
        Field("supported_features", Array(
            Field("name", "string", "3+"),
            Field("min_version", "int16", "3+"),
            Field("max_version", "int16", "3+"),
        ), "3+", tag=0),
        Field("finalized_features_epoch", "int64", "3+", tag=1, default=-1),
        Field("finalized_features", Array(
            Field("name", "string", "3+"),
            Field("max_version_level", "int16", "3+"),
            Field("min_version_level", "int16", "3+"),
        ), "3+", tag=2),
        Field("zk_migration_ready", "bool", "3+", tag=3),
    ),
)

METADATA = Api(
    3, "Metadata", "0-12", "9+",
    request=(
        # v0: an empty array means every topic; v1+: null means every topic, empty means none
        Field("topics", Array(
            Field("topic_id", "uuid", "10+"),
            Field("name", "string", nullable_versions="10+"),
        ), nullable_versions="1+"),
        Field("allow_auto_topic_creation", "bool", "4+", default=True),
        Field("include_cluster_authorized_operations", "bool", "8-10"),
        Field("include_topic_authorized_operations", "bool", "8+"),
    ),
    response=(
        Field("throttle_time_ms", "int32", "3+"),
        Field("brokers", Array(
            Field("node_id", "int32"),
            Field("host", "string"),
            Field("port", "int32"),
            Field("rack", "string", "1+", nullable_versions="1+", default=None),
        )),
        Field("cluster_id", "string", "2+", nullable_versions="2+", default=None),
        Field("controller_id", "int32", "1+", default=-1),
        Field("topics", Array(
            Field("error_code", "int16"),
            Field("name", "string", nullable_versions="12+"),
            Field("topic_id", "uuid", "10+"),
            Field("is_internal", "bool", "1+"),
            Field("partitions", Array(
                Field("error_code", "int16"),
                Field("partition_index", "int32"),
                Field("leader_id", "int32"),
                Field("leader_epoch", "int32", "7+", default=-1),
                Field("replica_nodes", "[]int32"),
                Field("isr_nodes", "[]int32"),
                Field("offline_replicas", "[]int32", "5+"),
            )),
            Field("topic_authorized_operations", "int32", "8+", default=-2**31),
        )),
        Field("cluster_authorized_operations", "int32", "8-10", default=-2**31),
    ),
)

SASL_HANDSHAKE = Api(
    17, "SaslHandshake", "0-1", "none",
    request=(
        Field("mechanism", "string"),
    ),
    response=(
        Field("error_code", "int16"),
        Field("mechanisms", "[]string"),
    ),
)

SASL_AUTHENTICATE = Api(
    36, "SaslAuthenticate", "0-2", "2+",
    request=(
        Field("auth_bytes", "bytes"),
    ),
    response=(
        Field("error_code", "int16"),
        Field("error_message", "string", nullable_versions="0+"),
        Field("auth_bytes", "bytes"),
        Field("session_lifetime_ms", "int64", "1+"),
    ),
)

APIS = (API_VERSIONS, METADATA, SASL_HANDSHAKE, SASL_AUTHENTICATE)
