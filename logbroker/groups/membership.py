"""SyncGroup, Heartbeat and LeaveGroup for a live group (Kafka's classic coordinator rules).

Every request naming a member is first validated the same way: an unknown member id, or a group
instance id that is unknown, answers UNKNOWN_MEMBER_ID; an instance id mapped to another member id
answers FENCED_INSTANCE_ID (a newer incarnation of that static member replaced this one); then a
generation other than the group's answers ILLEGAL_GENERATION.

* SyncGroup during CompletingRebalance waits; the leader's carries the assignment, which is written
  (GroupMetadataValue) and then handed to every waiting member; the group is Stable.  In Stable the
  member's current assignment is returned at once; during PreparingRebalance, REBALANCE_IN_PROGRESS.
* Heartbeat keeps the session alive; during PreparingRebalance it answers REBALANCE_IN_PROGRESS.
* LeaveGroup removes each named member (by member id, or by instance id for static members) and
  rebalances the rest.
"""

from __future__ import annotations

from .errors import (FENCED_INSTANCE_ID, ILLEGAL_GENERATION, INCONSISTENT_GROUP_PROTOCOL, NONE,
                     REBALANCE_IN_PROGRESS, UNKNOWN_MEMBER_ID)
from .rebalance import Effects, Pending, Settings, maybe_complete_join, propagate_assignment, remove_members
from .responses import LeaveGroupResponse, LeaveMemberResponse, SyncGroupResponse
from .state import EMPTY, PREPARING, STABLE, Group, Member


def check_member(group: Group | None, member_id: str, group_instance_id: str | None, generation_id: int) -> int:
    if group is None:
        return UNKNOWN_MEMBER_ID
    error = group.validate_member(member_id, group_instance_id)
    if error == NONE and generation_id != group.generation:
        return ILLEGAL_GENERATION
    return error


def sync(group: Group | None, generation_id: int, member_id: str, group_instance_id: str | None,
         protocol_type: str | None, protocol_name: str | None, assignments: dict[str, bytes], fx: Effects,
         now: int) -> object:
    error = check_member(group, member_id, group_instance_id, generation_id)
    if error == NONE and ((protocol_type and protocol_type != group.protocol_type)
                          or (protocol_name and protocol_name != group.protocol_name)):
        error = INCONSISTENT_GROUP_PROTOCOL
    if error == NONE and group.state in (EMPTY, PREPARING):
        error = UNKNOWN_MEMBER_ID if group.state is EMPTY else REBALANCE_IN_PROGRESS
    if error != NONE:
        return SyncGroupResponse(error)
    member = group.members[member_id]
    member.deadline = now + member.session_timeout_ms
    group.pending_sync.discard(member_id)
    if not group.pending_sync:
        group.sync_deadline = None
    if group.state is STABLE:
        return SyncGroupResponse(NONE, group.protocol_type, group.protocol_name, member.assignment)
    if member.awaiting_sync:  # a second SyncGroup from the same member supersedes the first
        fx.complete_sync(member, SyncGroupResponse(REBALANCE_IN_PROGRESS))
    member.sync_token = token = fx.token()
    if group.leader == member_id:
        _install_assignment(group, assignments, fx, now)
    return Pending(token)


def _install_assignment(group: Group, assignments: dict[str, bytes], fx: Effects, now: int) -> None:
    """Write the leader's assignment (members it left out get empty bytes), then deliver it."""
    complete = {m: bytes(assignments.get(m, b"")) for m in group.members}
    fx.emit_group(group, complete)
    for member_id, assignment in complete.items():
        group.members[member_id].assignment = assignment
    propagate_assignment(group, fx, NONE, now)
    group.transition(STABLE, now)


def heartbeat(group: Group | None, generation_id: int, member_id: str, group_instance_id: str | None,
              now: int) -> int:
    error = check_member(group, member_id, group_instance_id, generation_id)
    if error != NONE:
        return error  # an Empty group has no members, so it answers UNKNOWN_MEMBER_ID here
    member = group.members[member_id]
    member.deadline = now + member.session_timeout_ms
    return REBALANCE_IN_PROGRESS if group.state is PREPARING else NONE


def leave(group: Group | None, members: list[tuple[str, str | None]], fx: Effects, now: int,
          settings: Settings) -> LeaveGroupResponse:
    if group is None:
        return LeaveGroupResponse(NONE, [LeaveMemberResponse(m, i, UNKNOWN_MEMBER_ID) for m, i in members])
    leaving: dict[str, Member] = {}
    answers = []
    pending_left = False
    for member_id, instance_id in members:
        if instance_id is None and member_id in group.pending_members:
            del group.pending_members[member_id]
            pending_left, code = True, NONE
        else:
            found = _find_leaving(group, member_id, instance_id)
            code = found if isinstance(found, int) else NONE
            if isinstance(found, Member):
                leaving[found.member_id] = found
        answers.append(LeaveMemberResponse(member_id, instance_id, code))
    if leaving:
        remove_members(group, list(leaving.values()), fx, now, settings)
    elif pending_left:
        maybe_complete_join(group, fx, now)
    return LeaveGroupResponse(NONE, answers)


def _find_leaving(group: Group, member_id: str, instance_id: str | None) -> Member | int:
    if instance_id is None:
        return group.members.get(member_id, UNKNOWN_MEMBER_ID)
    existing = group.static.get(instance_id)
    if existing is None:
        return UNKNOWN_MEMBER_ID
    if member_id and member_id != existing:
        return FENCED_INSTANCE_ID
    return group.members[existing]
