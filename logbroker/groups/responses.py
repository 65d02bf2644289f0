"""What the coordinator hands back: a ``Result`` per call, and the response shapes inside it.

Kafka's CoordinatorResult carries the records to append and the response to send once they are
durable.  Here ``Result.records`` are ``__consumer_offsets`` (key, value) pairs, already applied
through ``GroupCoordinator.replay``; the caller appends them to ``partition_for_group(group)`` and
only then passes any response on.  JoinGroup and SyncGroup may wait for the rest of the group: their
``response`` is then None and the answer arrives later, in the ``completed`` list of whichever call
(or ``tick``) finishes the rebalance, as ``(member_id, "join" | "sync", response)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from .offsets_log import GroupMetadata, OffsetValue, decode_key

Record = tuple[bytes, "bytes | None"]


@dataclass
class Result:
    records: list[Record] = field(default_factory=list)
    response: object | None = None
    completed: list[tuple[str, str, object]] = field(default_factory=list)
    group_id: str | None = None

    def records_by_group(self) -> dict[str, list[Record]]:
        """The records split by the group their key names (``delete_groups`` spans several groups)."""
        out: dict[str, list[Record]] = {}
        for key, value in self.records:
            decoded = decode_key(key)
            out.setdefault(decoded.group, []).append((key, value))
        return out


class JoinMember(NamedTuple):
    member_id: str
    group_instance_id: str | None
    metadata: bytes


@dataclass
class JoinGroupResponse:
    error_code: int
    generation_id: int = -1
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader: str = ""
    member_id: str = ""
    members: list[JoinMember] = field(default_factory=list)
    skip_assignment: bool = False


@dataclass
class SyncGroupResponse:
    error_code: int
    protocol_type: str | None = None
    protocol_name: str | None = None
    assignment: bytes = b""


class LeaveMemberResponse(NamedTuple):
    member_id: str
    group_instance_id: str | None
    error_code: int


@dataclass
class LeaveGroupResponse:
    error_code: int
    members: list[LeaveMemberResponse] = field(default_factory=list)


class MemberDescription(NamedTuple):
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    metadata: bytes
    assignment: bytes


@dataclass
class GroupDescription:
    group_id: str
    state: str
    protocol_type: str
    protocol_name: str
    generation_id: int
    leader: str
    members: list[MemberDescription] = field(default_factory=list)


@dataclass(frozen=True)
class DurableState:
    """What ``replay`` builds: the last group metadata and the committed offsets of every group."""

    groups: dict[str, GroupMetadata]
    offsets: dict[str, dict[tuple[str, int], OffsetValue]]


__all__ = [
    "Result", "JoinMember", "JoinGroupResponse", "SyncGroupResponse", "LeaveMemberResponse",
    "LeaveGroupResponse", "MemberDescription", "GroupDescription", "DurableState",
]
