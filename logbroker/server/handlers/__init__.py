"""One module per API family; ``HANDLERS`` maps an API key to ``async handler(ctx, body) -> body | None``.

A handler receives the decoded request body (a dict with Kafka's field names in snake_case, as
``logbroker.protocol`` decodes it) and returns the response body for the same version (fields a
version lacks are ignored by the encoder), or None for "no response" (Produce with acks=0).
Errors that belong to one topic or partition become that entry's ``error_code`` (every
``LogbrokerError`` carries one); anything else escapes and closes the connection (connection.py).
"""

from __future__ import annotations

from . import admin, configs, fetch, groups, metadata, offsets, produce, producer, share, versions

PRODUCE, FETCH, LIST_OFFSETS, METADATA = 0, 1, 2, 3
OFFSET_COMMIT, OFFSET_FETCH, FIND_COORDINATOR, JOIN_GROUP, HEARTBEAT, LEAVE_GROUP, SYNC_GROUP = 8, 9, 10, 11, 12, 13, 14
DESCRIBE_GROUPS, LIST_GROUPS, API_VERSIONS = 15, 16, 18
CREATE_TOPICS, DELETE_TOPICS, DELETE_RECORDS, INIT_PRODUCER_ID = 19, 20, 21, 22
DESCRIBE_CONFIGS, CREATE_PARTITIONS, DELETE_GROUPS, INCREMENTAL_ALTER_CONFIGS = 32, 37, 42, 44
SHARE_GROUP_HEARTBEAT, SHARE_FETCH, SHARE_ACKNOWLEDGE = 76, 78, 79

HANDLERS = {
    PRODUCE: produce.handle_produce,
    FETCH: fetch.handle_fetch,
    LIST_OFFSETS: offsets.handle_list_offsets,
    METADATA: metadata.handle_metadata,
    OFFSET_COMMIT: groups.handle_offset_commit,
    OFFSET_FETCH: groups.handle_offset_fetch,
    FIND_COORDINATOR: groups.handle_find_coordinator,
    JOIN_GROUP: groups.handle_join_group,
    HEARTBEAT: groups.handle_heartbeat,
    LEAVE_GROUP: groups.handle_leave_group,
    SYNC_GROUP: groups.handle_sync_group,
    DESCRIBE_GROUPS: groups.handle_describe_groups,
    LIST_GROUPS: groups.handle_list_groups,
    API_VERSIONS: versions.handle_api_versions,
    CREATE_TOPICS: admin.handle_create_topics,
    DELETE_TOPICS: admin.handle_delete_topics,
    DELETE_RECORDS: offsets.handle_delete_records,
    INIT_PRODUCER_ID: producer.handle_init_producer_id,
    DESCRIBE_CONFIGS: admin.handle_describe_configs,
    CREATE_PARTITIONS: admin.handle_create_partitions,
    DELETE_GROUPS: groups.handle_delete_groups,
    INCREMENTAL_ALTER_CONFIGS: configs.handle_incremental_alter_configs,
    SHARE_GROUP_HEARTBEAT: share.handle_share_group_heartbeat,
    SHARE_FETCH: share.handle_share_fetch,
    SHARE_ACKNOWLEDGE: share.handle_share_acknowledge,
}

__all__ = ["HANDLERS", "API_VERSIONS"]
