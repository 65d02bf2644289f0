"""Partition assignors as pure functions: subscriptions and topic sizes in, one assignment per member out.

In the classic protocol the group leader's client runs the assignor on the subscriptions the
coordinator handed it in its JoinGroup response, then sends every member's share in SyncGroup.

* ``range`` (Kafka's RangeAssignor): per topic, the subscribed members in order get contiguous ranges;
  with ``n`` partitions and ``c`` members, the first ``n % c`` get one extra.
* ``roundrobin`` (RoundRobinAssignor): every subscribed partition, sorted by topic then partition, goes
  to the next member in a cycle, skipping members not subscribed to its topic.
* ``cooperative-sticky`` (``sticky.py``): keeps owned partitions where that stays balanced and never
  hands a partition over in the same round its owner gives it up (the owner revokes, then rejoins).

Members are ordered as Kafka orders them: members with a group instance id first, by instance id,
then the others by member id.  Topics missing from ``partitions_per_topic`` are skipped (no metadata).
Every member appears in the result, possibly with no partitions; the output is deterministic.
"""

from __future__ import annotations

from typing import Callable, Iterable, Mapping

from .consumer_protocol import Subscription
from .sticky import cooperative_sticky

TopicPartition = tuple[str, int]
Assignments = dict[str, list[TopicPartition]]


def member_order(group_instance_ids: Mapping[str, str | None] | None = None) -> Callable[[str], tuple]:
    """Sort key for member ids: static members (by instance id) before dynamic ones (by member id)."""
    ids = group_instance_ids or {}

    def key(member_id: str) -> tuple:
        instance = ids.get(member_id)
        return (0, instance, member_id) if instance is not None else (1, member_id, "")

    return key


def range_assign(subscriptions: Mapping[str, Subscription], partitions_per_topic: Mapping[str, int],
                 order: Callable[[str], tuple]) -> Assignments:
    out: Assignments = {member: [] for member in sorted(subscriptions, key=order)}
    for topic in sorted({t for s in subscriptions.values() for t in s.topics}):
        count = partitions_per_topic.get(topic)
        if count is None:
            continue
        members = sorted((m for m, s in subscriptions.items() if topic in s.topics), key=order)
        per_member, extra = divmod(count, len(members))
        for i, member in enumerate(members):
            start = i * per_member + min(i, extra)
            length = per_member + (1 if i < extra else 0)
            out[member] += [(topic, p) for p in range(start, start + length)]
    return out


def round_robin_assign(subscriptions: Mapping[str, Subscription], partitions_per_topic: Mapping[str, int],
                       order: Callable[[str], tuple]) -> Assignments:
    members = sorted(subscriptions, key=order)
    out: Assignments = {member: [] for member in members}
    topics_of = {m: set(s.topics) for m, s in subscriptions.items()}
    cursor = 0
    for topic, partition in all_partitions_sorted(subscriptions, partitions_per_topic):
        while topic not in topics_of[members[cursor % len(members)]]:
            cursor += 1
        out[members[cursor % len(members)]].append((topic, partition))
        cursor += 1
    return out


def all_partitions_sorted(subscriptions: Mapping[str, Subscription],
                          partitions_per_topic: Mapping[str, int]) -> list[TopicPartition]:
    topics = sorted({t for s in subscriptions.values() for t in s.topics if t in partitions_per_topic})
    return [(t, p) for t in topics for p in range(partitions_per_topic[t])]


ASSIGNORS: dict[str, Callable[..., Assignments]] = {
    "range": range_assign,
    "roundrobin": round_robin_assign,
    "cooperative-sticky": cooperative_sticky,
}


def assign(name: str, subscriptions: Mapping[str, Subscription], partitions_per_topic: Mapping[str, int],
           *, group_instance_ids: Mapping[str, str | None] | None = None) -> Assignments:
    """Run assignor ``name``; raises ValueError for a name that is not in ``ASSIGNORS``."""
    try:
        assignor = ASSIGNORS[name]
    except KeyError:
        raise ValueError(f"unknown assignor {name!r}; known: {', '.join(ASSIGNORS)}") from None
    if not subscriptions:
        return {}
    return assignor(subscriptions, partitions_per_topic, member_order(group_instance_ids))


def partitions_to_revoke(old_owned: Mapping[str, Iterable[TopicPartition]],
                         new_assigned: Mapping[str, Iterable[TopicPartition]]) -> dict[str, list[TopicPartition]]:
    """Members that must give partitions up under the cooperative protocol, and which (sorted).

    A member revokes what it owned and was not assigned again, then rejoins so the next round can hand
    those partitions to their new owners.  Members with nothing to revoke are left out."""
    out = {}
    for member, owned in old_owned.items():
        lost = sorted(set(owned) - set(new_assigned.get(member, ())))
        if lost:
            out[member] = lost
    return out


__all__ = [
    "ASSIGNORS", "assign", "range_assign", "round_robin_assign", "cooperative_sticky", "partitions_to_revoke",
    "member_order", "all_partitions_sorted",
]
