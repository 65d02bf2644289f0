"""Committed offsets: who may commit, when offsets expire, and DeleteGroups / OffsetDelete.

**Commits** (Kafka's ClassicGroup.validateOffsetCommit).  Generation -1 is a standalone commit (the
admin client, or a consumer using ``assign()``): accepted while the group has no members (Empty, or
only offsets, or unknown).  Otherwise the member must be valid (UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID)
and of the group's current generation (ILLEGAL_GENERATION); during CompletingRebalance the answer is
REBALANCE_IN_PROGRESS.  A commit from the current generation during PreparingRebalance is accepted:
members commit what they processed before rejoining.  A group that does not exist answers
ILLEGAL_GENERATION to a commit carrying a generation.

**Expiry** (Kafka's offsetExpirationCondition), checked every
``offsets_retention_check_interval_ms``.  Offsets may expire in an Empty group, in a group without
protocol type (offsets only, standalone commits), and in a Stable consumer group for topics no member
subscribes to; never otherwise.  Such an offset expires at its explicit expire timestamp if it has
one (OffsetCommit v2-4), else ``offsets_retention_ms`` after a base time: when the group became Empty
for an Empty group, the commit time otherwise.  An Empty group (or an offsets-only group) left with
no offsets is deleted: a tombstone for its metadata, if it has any.
"""

from __future__ import annotations

from typing import Callable

from .consumer_protocol import PROTOCOL_TYPE
from .errors import (GROUP_ID_NOT_FOUND, GROUP_SUBSCRIBED_TO_TOPIC, ILLEGAL_GENERATION, INVALID_GROUP_ID,
                     NON_EMPTY_GROUP, NONE, REBALANCE_IN_PROGRESS, UNKNOWN_MEMBER_ID)
from .offsets_log import OffsetValue, group_metadata_key, offset_commit_key
from .rebalance import Effects
from .state import COMPLETING, EMPTY, STABLE, Group


def commit_error(group: Group | None, known: bool, generation_id: int, member_id: str,
                 group_instance_id: str | None) -> int:
    """``known``: the group has committed offsets even though it has no live group state."""
    if group is None:
        if generation_id < 0:
            return NONE
        return UNKNOWN_MEMBER_ID if known else ILLEGAL_GENERATION
    if generation_id < 0 and group.state is EMPTY:
        return NONE
    if generation_id >= 0 or member_id or group_instance_id is not None:
        error = group.validate_member(member_id, group_instance_id)
        if error != NONE:
            return error
        if generation_id != group.generation:
            return ILLEGAL_GENERATION
    elif group.state is not EMPTY:
        return UNKNOWN_MEMBER_ID
    return REBALANCE_IN_PROGRESS if group.state is COMPLETING else NONE


def is_expired(group: Group | None, topic: str, value: OffsetValue, now: int, retention_ms: int) -> bool:
    if group is None or group.protocol_type is None:
        base = value.commit_timestamp
    elif group.state is EMPTY:
        base = group.state_timestamp if group.state_timestamp >= 0 else value.commit_timestamp
    elif group.protocol_type == PROTOCOL_TYPE and group.subscribed_topics is not None and group.state is STABLE:
        if topic in group.subscribed_topics:
            return False
        base = value.commit_timestamp
    else:
        return False
    if value.expire_timestamp is not None:
        return now >= value.expire_timestamp
    return now - base >= retention_ms


def expired_offsets(group: Group | None, offsets: dict[tuple[str, int], OffsetValue], now: int,
                    retention_ms: int) -> list[tuple[str, int]]:
    return sorted(tp for tp, value in offsets.items() if is_expired(group, tp[0], value, now, retention_ms))


def deletable(group: Group | None) -> bool:
    """A group that may be removed once it has no offsets left."""
    return group is None or (group.state is EMPTY and not group.pending_members)


def expire_offsets(groups: dict[str, Group], offsets: dict, stored: dict, now: int, retention_ms: int,
                   effects_for: Callable[[str], Effects]) -> None:
    """The periodic retention check: tombstones for expired offsets, then for groups left empty."""
    for group_id in sorted(set(groups) | set(offsets)):
        group = groups.get(group_id)
        for topic, partition in expired_offsets(group, offsets.get(group_id, {}), now, retention_ms):
            effects_for(group_id).emit(offset_commit_key(group_id, topic, partition), None)
        if deletable(group) and group_id not in offsets:
            if group_id in stored:
                effects_for(group_id).emit(group_metadata_key(group_id), None)
            else:
                groups.pop(group_id, None)  # never written: nothing to tombstone


def delete_groups(groups: dict[str, Group], offsets: dict, group_ids: list[str], fx: Effects) -> dict[str, int]:
    """DeleteGroups: only Empty (or offsets-only) groups; every offset and the metadata get tombstones."""
    codes = {}
    for group_id in group_ids:
        group = groups.get(group_id)
        if not group_id:
            codes[group_id] = INVALID_GROUP_ID
        elif group is None and group_id not in offsets:
            codes[group_id] = GROUP_ID_NOT_FOUND
        elif group is not None and group.state is not EMPTY:
            codes[group_id] = NON_EMPTY_GROUP
        else:
            for topic, partition in sorted(offsets.get(group_id, {})):
                fx.emit(offset_commit_key(group_id, topic, partition), None)
            fx.emit(group_metadata_key(group_id), None)
            codes[group_id] = NONE
    return codes


def delete_offsets(group: Group | None, committed: dict | None, group_id: str, partitions: list[tuple[str, int]],
                   fx: Effects) -> tuple[int, dict[tuple[str, int], int]]:
    """OffsetDelete: refused for topics a live consumer group subscribes to, and for other live groups."""
    if group is None and not committed:
        return GROUP_ID_NOT_FOUND, {}
    active = group is not None and group.state is not EMPTY
    if active and group.protocol_type != PROTOCOL_TYPE:
        return NON_EMPTY_GROUP, {}
    codes = {}
    for topic, partition in partitions:
        if active and group.subscribed_topics is not None and topic in group.subscribed_topics:
            codes[(topic, partition)] = GROUP_SUBSCRIBED_TO_TOPIC
            continue
        if committed and (topic, partition) in committed:
            fx.emit(offset_commit_key(group_id, topic, partition), None)
        codes[(topic, partition)] = NONE
    return NONE, codes
