"""Share-group membership for ShareGroupHeartbeat (SHARE_GROUPS.md §3.10), in memory, sans-I/O.

Epoch 0 joins (or rejoins with the same member id), -1 leaves, N > 0 heartbeats: an unknown member is
UNKNOWN_MEMBER_ID (25, the client rejoins), a wrong epoch FENCED_MEMBER_EPOCH (110; the previous epoch
is accepted in case a response was lost).  Every member is assigned every partition of its subscribed
topics that exist: the record locks, not the assignment, keep two members from one record.  A change
of subscription or of the assignment (a topic made, partitions added) bumps the member's epoch.
Remote members that send no heartbeat for ``session_timeout_ms`` are removed; embedded ones (a
``Queue``) only leave.  Nothing here is durable: after a restart clients rejoin (§3.13's rule).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Callable, NamedTuple

from .errors import NONE, UNKNOWN_MEMBER_ID

INVALID_REQUEST = 42
FENCED_MEMBER_EPOCH = 110
HEARTBEAT_INTERVAL_MS = 5000
SESSION_TIMEOUT_MS = 45000


class HeartbeatResult(NamedTuple):
    error_code: int
    member_epoch: int
    heartbeat_interval_ms: int
    assignment: dict[str, list[int]] | None


@dataclass
class ShareMember:
    member_id: str
    epoch: int
    topics: list[str]
    embedded: bool
    last_seen_ms: int
    assignment: dict[str, list[int]] | None = None


class ShareMembership:
    def __init__(self, partition_count: Callable[[str], int | None], *, session_timeout_ms: int = SESSION_TIMEOUT_MS,
                 heartbeat_interval_ms: int = HEARTBEAT_INTERVAL_MS):
        """``partition_count(topic)`` is None for a topic that does not exist."""
        self._partition_count = partition_count
        self.session_timeout_ms = session_timeout_ms
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self._members: dict[str, dict[str, ShareMember]] = defaultdict(dict)
        self._group_epochs: dict[str, int] = defaultdict(int)

    def members(self, group: str) -> list[ShareMember]:
        return list(self._members.get(group, {}).values())

    def groups(self) -> list[str]:
        return [g for g, members in self._members.items() if members]

    def heartbeat(self, now_ms: int, group: str, member_id: str, member_epoch: int, topics: list[str] | None,
                  embedded: bool = False) -> HeartbeatResult:
        interval = self.heartbeat_interval_ms
        if not member_id or member_epoch < -1 or (member_epoch == 0 and not topics):
            return HeartbeatResult(INVALID_REQUEST, member_epoch, interval, None)
        self.expire(now_ms)
        members = self._members[group]
        member = members.get(member_id)
        if member_epoch == -1:
            self.leave(group, member_id)
            return HeartbeatResult(NONE, -1, interval, None)
        if member_epoch == 0:
            member = ShareMember(member_id, self._bump(group), list(topics), embedded, now_ms)
            members[member_id] = member
        elif member is None:
            return HeartbeatResult(UNKNOWN_MEMBER_ID, member_epoch, interval, None)
        elif member_epoch not in (member.epoch, member.epoch - 1):
            return HeartbeatResult(FENCED_MEMBER_EPOCH, member_epoch, interval, None)
        changed = False
        if member_epoch > 0:
            member.last_seen_ms = now_ms
            if topics is not None and list(topics) != member.topics:
                member.topics = list(topics)
                changed = True
        assignment = self._assignment(member.topics)
        if assignment != member.assignment:
            changed = changed or member.assignment is not None
            member.assignment = assignment
        if changed and member_epoch > 0:
            member.epoch = self._bump(group)
        return HeartbeatResult(NONE, member.epoch, interval, assignment)

    def leave(self, group: str, member_id: str) -> bool:
        if self._members.get(group, {}).pop(member_id, None) is None:
            return False
        self._bump(group)
        return True

    def expire(self, now_ms: int) -> None:
        for group, members in self._members.items():
            for member in [m for m in members.values()
                           if not m.embedded and now_ms - m.last_seen_ms > self.session_timeout_ms]:
                del members[member.member_id]
                self._bump(group)

    def _bump(self, group: str) -> int:
        self._group_epochs[group] += 1
        return self._group_epochs[group]

    def _assignment(self, topics: list[str]) -> dict[str, list[int]]:
        out = {}
        for topic in topics:
            count = self._partition_count(topic)
            if count is not None:
                out[topic] = list(range(count))
        return out
