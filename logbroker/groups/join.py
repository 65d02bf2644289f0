"""JoinGroup, following Kafka's classic coordinator case by case.

An **unknown member** (empty member id) is given a member id ``<client id or instance id>-<uuid>``:

* dynamic, ``require_known_member_id`` (JoinGroup v4+): answered MEMBER_ID_REQUIRED at once with the
  new id and remembered as *pending*; its next JoinGroup, carrying the id, adds it to the group;
* dynamic otherwise: added at once;
* static (group instance id) and new: added;
* static and known: the new member id **replaces** the old one, whose waiting requests are answered
  FENCED_INSTANCE_ID.  In Stable, when the protocol vote would not change, the group is written with
  the new id and the member answered at once (the leader with ``skip_assignment``); otherwise the
  group rebalances.

A **known member** rejoining: during PreparingRebalance it is marked as joined; during
CompletingRebalance or Stable, the same protocols (and, in Stable, not the leader) get the current
generation back at once, while changed protocols, or the leader rejoining in Stable, start a
rebalance.  Adding a member to an Empty, Stable or CompletingRebalance group starts a rebalance.

Answers: a response object, or ``Pending`` when the request waits for the join phase to complete.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

from .errors import (FENCED_INSTANCE_ID, GROUP_MAX_SIZE_REACHED, INCONSISTENT_GROUP_PROTOCOL, MEMBER_ID_REQUIRED,
                     NONE, REBALANCE_IN_PROGRESS, UNKNOWN_MEMBER_ID)
from .rebalance import (Effects, Pending, Settings, join_response, maybe_complete_join, prepare_rebalance,
                        rebalance_or_complete_join, remove_members)
from .responses import JoinGroupResponse, SyncGroupResponse
from .state import COMPLETING, EMPTY, PREPARING, STABLE, Group, Member


class JoinRequest(NamedTuple):
    member_id: str
    group_instance_id: str | None
    protocol_type: str
    protocols: list[tuple[str, bytes]]
    session_timeout_ms: int
    rebalance_timeout_ms: int
    client_id: str
    client_host: str
    require_known_member_id: bool


def join(group: Group, req: JoinRequest, fx: Effects, now: int, settings: Settings,
         new_suffix: Callable[[], str]) -> object:
    if not _accepts(group, req.member_id, settings.max_group_size):
        member = group.members.get(req.member_id)
        if member is not None:
            remove_members(group, [member], fx, now, settings)
        return JoinGroupResponse(GROUP_MAX_SIZE_REACHED)
    if not req.member_id:
        return _join_new(group, req, fx, now, settings, new_suffix)
    return _join_known(group, req, fx, now, settings)


def _accepts(group: Group, member_id: str, max_size: int) -> bool:
    if group.state is PREPARING:
        member = group.members.get(member_id)
        waiting = sum(1 for m in group.members.values() if m.awaiting_join)
        return (member is not None and member.awaiting_join) or waiting < max_size
    if group.state in (COMPLETING, STABLE):
        return member_id in group.members or len(group.members) < max_size
    return True


def _join_new(group: Group, req: JoinRequest, fx: Effects, now: int, settings: Settings,
              new_suffix: Callable[[], str]) -> object:
    if not group.supports_protocols(req.protocol_type, req.protocols):
        return JoinGroupResponse(INCONSISTENT_GROUP_PROTOCOL)
    member_id = f"{req.group_instance_id or req.client_id}-{new_suffix()}"
    if req.group_instance_id is not None:
        existing = group.static.get(req.group_instance_id)
        if existing is not None:
            return _replace_static(group, existing, member_id, req, fx, now, settings)
    elif req.require_known_member_id:
        group.pending_members[member_id] = now + req.session_timeout_ms
        return JoinGroupResponse(MEMBER_ID_REQUIRED, member_id=member_id)
    return _add(group, member_id, req, fx, now, settings)


def _add(group: Group, member_id: str, req: JoinRequest, fx: Effects, now: int, settings: Settings) -> Pending:
    member = Member(member_id, req.group_instance_id, req.client_id, req.client_host, req.rebalance_timeout_ms,
                    req.session_timeout_ms, list(req.protocols), is_new=True,
                    deadline=now + settings.new_member_join_timeout_ms)
    member.join_token = fx.token()
    group.add(member, req.protocol_type)
    if group.state is PREPARING and group.initial_delay:
        group.new_member_added = True
    token = member.join_token
    rebalance_or_complete_join(group, fx, now, settings)
    return Pending(token)


def _update(member: Member, req: JoinRequest, fx: Effects) -> Pending:
    """Record a rejoin; a JoinGroup the member already had waiting is superseded (answered 27)."""
    if member.awaiting_join:
        fx.complete_join(member, JoinGroupResponse(REBALANCE_IN_PROGRESS, member_id=member.member_id))
    member.protocols = list(req.protocols)
    member.rebalance_timeout_ms = req.rebalance_timeout_ms
    member.session_timeout_ms = req.session_timeout_ms
    member.join_token = fx.token()
    return Pending(member.join_token)


def _join_known(group: Group, req: JoinRequest, fx: Effects, now: int, settings: Settings) -> object:
    if not group.supports_protocols(req.protocol_type, req.protocols):
        return JoinGroupResponse(INCONSISTENT_GROUP_PROTOCOL, member_id=req.member_id)
    if req.member_id in group.pending_members and req.group_instance_id is None:
        return _add(group, req.member_id, req, fx, now, settings)
    error = group.validate_member(req.member_id, req.group_instance_id)
    if error != NONE or group.state is EMPTY:
        return JoinGroupResponse(error or UNKNOWN_MEMBER_ID, member_id=req.member_id)
    member = group.members[req.member_id]
    member.deadline = now + req.session_timeout_ms
    if group.state is PREPARING:
        pending = _update(member, req, fx)
        maybe_complete_join(group, fx, now)
        return pending
    unchanged = member.matches(list(req.protocols))
    if unchanged and (group.state is COMPLETING or group.leader != member.member_id):
        return join_response(group, member)
    pending = _update(member, req, fx)
    prepare_rebalance(group, fx, now, settings)
    return pending


def _replace_static(group: Group, old_id: str, new_id: str, req: JoinRequest, fx: Effects, now: int,
                    settings: Settings) -> object:
    old = group.members[old_id]
    if old.awaiting_join:
        fx.complete_join(old, JoinGroupResponse(FENCED_INSTANCE_ID, member_id=old_id))
    if old.awaiting_sync:
        fx.complete_sync(old, SyncGroupResponse(FENCED_INSTANCE_ID))
    member = group.replace_static(old_id, new_id)
    member.deadline = now + req.session_timeout_ms
    pending = _update(member, req, fx)
    if group.state is STABLE:
        if group.select_protocol() == group.protocol_name:
            fx.emit_group(group)  # persist the new member id; the assignment stays as it is
            member.join_token = None
            return join_response(group, member, skip_assignment=group.leader == new_id)
        prepare_rebalance(group, fx, now, settings)
    elif group.state is COMPLETING:
        prepare_rebalance(group, fx, now, settings)  # the leader may be assigning to the old member id
    else:
        maybe_complete_join(group, fx, now)
    return pending
