"""Consumer-group coordination and the ``__consumer_offsets`` record codec; sans-I/O.

Nothing here touches files, sockets, threads or the clock: requests come in with ``now_ms`` and
results go out as records to append plus responses (DESIGN.md decisions 5 and 7).  Reading order:

    binary.py             Kafka's classic / flexible primitives (strings, bytes, arrays, tagged fields)
    offsets_log.py        __consumer_offsets keys and values, partition_for_group
    consumer_protocol.py  the subscription / assignment blobs inside JoinGroup and SyncGroup
    assignors.py          range, roundrobin; sticky.py: cooperative-sticky
    state.py              GroupState and its transition table; Group and Member bookkeeping
    rebalance.py          when groups change state, and their timers
    join.py               JoinGroup; membership.py: SyncGroup, Heartbeat, LeaveGroup
    offsets.py            who may commit, offset expiry, group and offset deletion
    coordinator.py        GroupCoordinator: the API, replay() and durable_state()
    responses.py          Result and the response shapes; errors.py: Kafka error codes
"""

from .assignors import ASSIGNORS, assign, partitions_to_revoke
from .consumer_protocol import (PROTOCOL_TYPE, Assignment, Subscription, decode_assignment, decode_subscription,
                                encode_assignment, encode_subscription)
from .coordinator import GroupCoordinator
from .offsets_log import (OFFSETS_TOPIC, OFFSETS_TOPIC_PARTITIONS, GroupKey, GroupMetadata, MemberMetadata,
                          OffsetKey, OffsetValue, decode_group_value, decode_key, decode_offset_value,
                          group_metadata_key, group_metadata_value, offset_commit_key, offset_commit_value,
                          partition_for_group)
from .responses import (DurableState, GroupDescription, JoinGroupResponse, JoinMember, LeaveGroupResponse,
                        LeaveMemberResponse, MemberDescription, Result, SyncGroupResponse)
from .state import GroupState

__all__ = [
    "ASSIGNORS", "assign", "partitions_to_revoke",
    "PROTOCOL_TYPE", "Assignment", "Subscription", "decode_assignment", "decode_subscription", "encode_assignment",
    "encode_subscription",
    "GroupCoordinator",
    "OFFSETS_TOPIC", "OFFSETS_TOPIC_PARTITIONS", "GroupKey", "GroupMetadata", "MemberMetadata", "OffsetKey",
    "OffsetValue", "decode_group_value", "decode_key", "decode_offset_value", "group_metadata_key",
    "group_metadata_value", "offset_commit_key", "offset_commit_value", "partition_for_group",
    "DurableState", "GroupDescription", "JoinGroupResponse", "JoinMember", "LeaveGroupResponse",
    "LeaveMemberResponse", "MemberDescription", "Result", "SyncGroupResponse",
    "GroupState",
]
