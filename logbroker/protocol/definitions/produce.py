"""Produce and InitProducerId, written from the facts in ../shared/kafka/.

Produce is defined for v0-11 (flexible from v9); request bytes are identical for v3-8 and the
response only grows (log_append_time_ms at v2, log_start_offset at v5, per-record errors at v8,
tagged leader hints at v10).  ``records`` stays raw: a memoryview of the frame on decode, passed
through untouched on encode.
"""

from __future__ import annotations

from ..schema import Api, Array, Field, Struct

PRODUCE = Api(
    0, "Produce", "0-11", "9+",
    request=(
        Field("transactional_id", "string", "3+", nullable_versions="3+", default=None),
        Field("acks", "int16"),
        Field("timeout_ms", "int32"),
        Field("topic_data", Array(
            Field("name", "string"),
            Field("partition_data", Array(
                Field("index", "int32"),
                Field("records", "records", nullable_versions="0+"),
            )),
        )),
    ),
    response=(
        Field("responses", Array(
            Field("name", "string"),
            Field("partition_responses", Array(
                Field("index", "int32"),
                Field("error_code", "int16"),
                Field("base_offset", "int64"),
                Field("log_append_time_ms", "int64", "2+", default=-1),
                Field("log_start_offset", "int64", "5+", default=-1),
                Field("record_errors", Array(
                    Field("batch_index", "int32", "8+"),
                    Field("batch_index_error_message", "string", "8+", nullable_versions="8+", default=None),
                ), "8+"),
                Field("error_message", "string", "8+", nullable_versions="8+", default=None),
                Field("current_leader", Struct(
                    Field("leader_id", "int32", "10+", default=-1),
                    Field("leader_epoch", "int32", "10+", default=-1),
                ), "10+", tag=0),
            )),
        )),
        Field("throttle_time_ms", "int32", "1+"),
        Field("node_endpoints", Array(
            Field("node_id", "int32", "10+"),
            Field("host", "string", "10+"),
            Field("port", "int32", "10+"),
            Field("rack", "string", "10+", nullable_versions="10+", default=None),
        ), "10+", tag=0),
    ),
)

INIT_PRODUCER_ID = Api(
    22, "InitProducerId", "0-5", "2+",
    request=(
        Field("transactional_id", "string", nullable_versions="0+"),
        Field("transaction_timeout_ms", "int32"),
        Field("producer_id", "int64", "3+", default=-1),
        Field("producer_epoch", "int16", "3+", default=-1),
    ),
    response=(
        Field("throttle_time_ms", "int32"),
        Field("error_code", "int16"),
        Field("producer_id", "int64", default=-1),
        Field("producer_epoch", "int16"),
    ),
)

APIS = (PRODUCE, INIT_PRODUCER_ID)
