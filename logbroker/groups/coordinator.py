"""GroupCoordinator: Kafka's classic consumer-group protocol for many groups, sans-I/O.

Requests go in as method calls with the time (``now_ms``); each returns a ``Result`` (responses.py):
the ``__consumer_offsets`` records it emitted, its response (None while a JoinGroup or SyncGroup waits
for the rest of the group) and the waiting requests it completed.  The caller appends the records to
``partition_for_group(group)`` durably *before* passing on any response or completion.  Callers
resolve ``completed`` before registering the call's own pending request: a member that sends a second
JoinGroup (or SyncGroup) while one waits gets the first answered REBALANCE_IN_PROGRESS in that list.

**Durable state changes only in ``replay``** (DESIGN.md decision 5): committed offsets, and per group
the last GroupMetadataValue (protocol type, generation, protocol, leader, members with subscriptions
and assignments).  The methods emit records and apply them through ``replay`` as they go; startup
replays the whole topic through the same method.  A GroupMetadataValue replayed from outside (a load)
also rebuilds the group's live state, as Kafka's load does: its members come back Stable, and their
session deadlines start at ``loaded(now_ms)``, or the first call that names the group, or ``tick``.

Live state (who is waiting in JoinGroup or SyncGroup, deadlines, the state machine of state.py) is
kept in memory only, as in Kafka: after a restart, members simply rejoin.

Timers never run by themselves: every call on a group first fires that group's due timers, and
``tick(now_ms)`` fires everyone's; ``next_deadline()`` says when ``tick`` next has work.  ``tick``
returns **a list of Results, one per group** that emitted records or completed requests, each with
``group_id`` set.  ``delete_groups`` returns a single Result spanning its groups (``group_id`` None);
``Result.records_by_group()`` splits its records.
"""

from __future__ import annotations

import itertools
import uuid
from typing import Callable

from . import join as joining
from . import membership
from .errors import INVALID_GROUP_ID, INVALID_SESSION_TIMEOUT, NONE, OFFSET_METADATA_TOO_LARGE, UNKNOWN_MEMBER_ID
from .offsets import commit_error, delete_groups, delete_offsets, expire_offsets
from .offsets_log import GroupKey, OffsetKey, decode_group_value, decode_key, decode_offset_value
from .offsets_log import offset_commit_key, offset_commit_value
from .rebalance import Effects, Settings, arm, next_deadline, run_timers
from .responses import (DurableState, GroupDescription, JoinGroupResponse, LeaveGroupResponse, MemberDescription,
                        Result, SyncGroupResponse)
from .state import STABLE, Group

Offsets = dict[tuple[str, int], tuple[int, int, "str | None"]]


class GroupCoordinator:
    def __init__(self, *, initial_rebalance_delay_ms: int = 0, min_session_timeout_ms: int = 6000,
                 max_session_timeout_ms: int = 1_800_000, max_group_size: int = 1000,
                 offsets_retention_ms: int = 7 * 24 * 3600 * 1000,
                 offsets_retention_check_interval_ms: int = 600_000, offset_metadata_max_bytes: int = 4096,
                 new_member_join_timeout_ms: int = 300_000,
                 member_id_suffix: Callable[[], str] | None = None):
        """``member_id_suffix`` makes generated member ids deterministic in tests (default: uuid4)."""
        self.settings = Settings(initial_rebalance_delay_ms, min_session_timeout_ms, max_session_timeout_ms,
                                 max_group_size, offsets_retention_ms, offsets_retention_check_interval_ms,
                                 offset_metadata_max_bytes, new_member_join_timeout_ms)
        self._suffix = member_id_suffix or (lambda: str(uuid.uuid4()))
        self._groups: dict[str, Group] = {}  # live state
        self._stored = {}  # group id -> GroupMetadata: durable, written only by replay
        self._offsets = {}  # group id -> {(topic, partition): OffsetValue}: durable, written only by replay
        self._emitting = False
        self._tokens = itertools.count(1)
        self._next_cleanup: int | None = None

    # ---- durable state ------------------------------------------------------------------------------

    def replay(self, key: bytes, value: bytes | None) -> None:
        """Apply one ``__consumer_offsets`` record; keys of newer record types are ignored."""
        decoded = decode_key(key)
        if isinstance(decoded, OffsetKey):
            offsets = self._offsets.setdefault(decoded.group, {})
            if value is None:
                offsets.pop((decoded.topic, decoded.partition), None)
            else:
                offsets[(decoded.topic, decoded.partition)] = decode_offset_value(value)
            if not offsets:
                del self._offsets[decoded.group]
        elif isinstance(decoded, GroupKey):
            if value is None:
                self._stored.pop(decoded.group, None)
                self._groups.pop(decoded.group, None)
                return
            record = decode_group_value(value)
            self._stored[decoded.group] = record
            if not self._emitting:
                self._groups[decoded.group] = Group.from_metadata(decoded.group, record)

    def durable_state(self) -> DurableState:
        return DurableState(dict(self._stored), {g: dict(o) for g, o in self._offsets.items()})

    def loaded(self, now_ms: int) -> None:
        """Call once the log is replayed: restored members' sessions start now."""
        for group in self._groups.values():
            arm(group, now_ms)
        self._arm_cleanup(now_ms)

    # ---- membership ---------------------------------------------------------------------------------

    def join_group(self, now_ms: int, group_id: str, member_id: str, group_instance_id: str | None,
                   protocol_type: str, protocols: list[tuple[str, bytes]], session_timeout_ms: int,
                   rebalance_timeout_ms: int, client_id: str = "", client_host: str = "",
                   require_known_member_id: bool = True) -> Result:
        """JoinGroup (join.py); ``rebalance_timeout_ms`` -1 (JoinGroup v0) means the session timeout."""
        fx = self._effects(group_id)
        s = self.settings
        if not group_id:
            return fx.finish(JoinGroupResponse(INVALID_GROUP_ID, member_id=member_id))
        if not s.min_session_timeout_ms <= session_timeout_ms <= s.max_session_timeout_ms:
            return fx.finish(JoinGroupResponse(INVALID_SESSION_TIMEOUT, member_id=member_id))
        req = joining.JoinRequest(member_id, group_instance_id, protocol_type,
                                  [(name, bytes(data)) for name, data in protocols], session_timeout_ms,
                                  rebalance_timeout_ms if rebalance_timeout_ms >= 0 else session_timeout_ms,
                                  client_id, client_host, require_known_member_id)
        group = self._live(group_id, now_ms, fx)
        if group is None:
            if member_id:
                return fx.finish(JoinGroupResponse(UNKNOWN_MEMBER_ID, member_id=member_id))
            group = self._groups[group_id] = Group(group_id, state_timestamp=now_ms)
        outcome = joining.join(group, req, fx, now_ms, self.settings, self._suffix)
        if group.has_no_members() and group_id not in self._stored and self._groups.get(group_id) is group:
            del self._groups[group_id]  # nothing joined (an error answer): leave no trace
        return fx.finish(outcome)

    def sync_group(self, now_ms: int, group_id: str, generation_id: int, member_id: str,
                   group_instance_id: str | None, protocol_type: str | None, protocol_name: str | None,
                   assignments: dict[str, bytes]) -> Result:
        fx = self._effects(group_id)
        if not group_id:
            return fx.finish(SyncGroupResponse(INVALID_GROUP_ID))
        group = self._live(group_id, now_ms, fx)
        return fx.finish(membership.sync(group, generation_id, member_id, group_instance_id, protocol_type,
                                         protocol_name, assignments, fx, now_ms))

    def heartbeat(self, now_ms: int, group_id: str, generation_id: int, member_id: str,
                  group_instance_id: str | None = None) -> Result:
        fx = self._effects(group_id)
        if not group_id:
            return fx.finish(INVALID_GROUP_ID)
        group = self._live(group_id, now_ms, fx)
        return fx.finish(membership.heartbeat(group, generation_id, member_id, group_instance_id, now_ms))

    def leave_group(self, now_ms: int, group_id: str, members: list[tuple[str, str | None]]) -> Result:
        """LeaveGroup v3+ shape; for v0-2 the wire layer reports the single member's code at top level."""
        fx = self._effects(group_id)
        if not group_id:
            return fx.finish(LeaveGroupResponse(INVALID_GROUP_ID))
        group = self._live(group_id, now_ms, fx)
        return fx.finish(membership.leave(group, list(members), fx, now_ms, self.settings))

    # ---- offsets ------------------------------------------------------------------------------------

    def commit_offsets(self, now_ms: int, group_id: str, generation_id: int, member_id: str,
                       group_instance_id: str | None, offsets: Offsets, *, retention_ms: int | None = None) -> Result:
        """OffsetCommit: ``{(topic, partition): (offset, leader_epoch, metadata)}`` -> per-partition codes.

        ``retention_ms`` (OffsetCommit v2-4; None or -1 = the broker's retention) writes an expiry."""
        fx = self._effects(group_id)
        group = self._live(group_id, now_ms, fx)
        error = commit_error(group, group_id in self._offsets, generation_id, member_id, group_instance_id)
        expire = now_ms + retention_ms if retention_ms is not None and retention_ms >= 0 else None
        codes = {}
        for (topic, partition), (offset, leader_epoch, metadata) in offsets.items():
            if error == NONE and metadata is not None and len(metadata) > self.settings.offset_metadata_max_bytes:
                codes[(topic, partition)] = OFFSET_METADATA_TOO_LARGE
                continue
            if error == NONE:
                fx.emit(offset_commit_key(group_id, topic, partition),
                        offset_commit_value(offset, leader_epoch, metadata, now_ms, expire))
            codes[(topic, partition)] = error
        if error == NONE and group is not None and member_id in group.members:
            member = group.members[member_id]
            member.deadline = now_ms + member.session_timeout_ms
        return fx.finish(codes)

    def fetch_offsets(self, group_id: str, partitions: list[tuple[str, int]] | None
                      ) -> dict[tuple[str, int], tuple[int, int, str]]:
        """Committed (offset, leader epoch, metadata); (-1, -1, "") for partitions asked for but unknown."""
        stored = self._offsets.get(group_id, {})
        if partitions is None:
            return {tp: (v.offset, v.leader_epoch, v.metadata) for tp, v in sorted(stored.items())}
        out = {}
        for tp in partitions:
            v = stored.get(tuple(tp))
            out[tuple(tp)] = (v.offset, v.leader_epoch, v.metadata) if v is not None else (-1, -1, "")
        return out

    def delete_offsets(self, now_ms: int, group_id: str, partitions: list[tuple[str, int]]) -> Result:
        """OffsetDelete: response ``(error_code, {(topic, partition): error_code})``."""
        fx = self._effects(group_id)
        group = self._live(group_id, now_ms, fx)
        return fx.finish(delete_offsets(group, self._offsets.get(group_id), group_id, partitions, fx))

    # ---- groups -------------------------------------------------------------------------------------

    def list_groups(self) -> list[tuple[str, str, str]]:
        """(group id, protocol type, state) of every group, offsets-only groups as ("", "Empty")."""
        out = []
        for group_id in sorted(set(self._groups) | set(self._offsets)):
            group = self._groups.get(group_id)
            out.append((group_id, group.protocol_type or "", group.state.value) if group else (group_id, "", "Empty"))
        return out

    def describe_group(self, group_id: str) -> GroupDescription:
        """DescribeGroups; protocol, metadata and assignments are filled only when Stable, as in Kafka."""
        group = self._groups.get(group_id)
        if group is None:
            if group_id in self._offsets:
                return GroupDescription(group_id, "Empty", "", "", 0, "", [])
            return GroupDescription(group_id, "Dead", "", "", -1, "", [])
        stable = group.state is STABLE
        members = [MemberDescription(m.member_id, m.group_instance_id, m.client_id, m.client_host,
                                     m.metadata(group.protocol_name) if stable else b"",
                                     m.assignment if stable else b"") for m in group.members.values()]
        return GroupDescription(group_id, group.state.value, group.protocol_type or "",
                                (group.protocol_name or "") if stable else "", group.generation, group.leader or "",
                                members)

    def delete_groups(self, now_ms: int, group_ids: list[str]) -> Result:
        """DeleteGroups: ``{group_id: error_code}``; tombstones for the metadata and every offset."""
        fx = self._effects(None)
        for group_id in group_ids:
            self._live(group_id, now_ms, fx)
        return fx.finish(delete_groups(self._groups, self._offsets, group_ids, fx))

    # ---- time ---------------------------------------------------------------------------------------

    def tick(self, now_ms: int) -> list[Result]:
        """Fire every due timer, and expire offsets when the retention check is due."""
        self._arm_cleanup(now_ms)
        results: dict[str, Effects] = {}
        for group_id in list(self._groups):
            fx = results[group_id] = self._effects(group_id)
            self._live(group_id, now_ms, fx)
        if now_ms >= self._next_cleanup:
            self._next_cleanup = now_ms + self.settings.offsets_retention_check_interval_ms
            expire_offsets(self._groups, self._offsets, self._stored, now_ms, self.settings.offsets_retention_ms,
                           lambda g: results.get(g) or results.setdefault(g, self._effects(g)))
        return [fx.finish(None) for fx in results.values() if fx.result.records or fx.result.completed]

    def next_deadline(self) -> int | None:
        times = [t for t in (next_deadline(g) for g in self._groups.values()) if t is not None]
        if self._next_cleanup is not None and (self._offsets or any(
                g.has_no_members() for g in self._groups.values())):
            times.append(self._next_cleanup)
        return min(times, default=None)

    # ---- internals ----------------------------------------------------------------------------------

    def _apply(self, key: bytes, value: bytes | None) -> None:
        self._emitting = True
        try:
            self.replay(key, value)
        finally:
            self._emitting = False

    def _effects(self, group_id: str | None) -> Effects:
        return Effects(group_id, self._apply, self._tokens)

    def _arm_cleanup(self, now_ms: int) -> None:
        if self._next_cleanup is None:
            self._next_cleanup = now_ms + self.settings.offsets_retention_check_interval_ms

    def _live(self, group_id: str, now_ms: int, fx: Effects) -> Group | None:
        """The group's live state with its due timers fired, or None if it has none."""
        self._arm_cleanup(now_ms)
        group = self._groups.get(group_id)
        if group is not None:
            arm(group, now_ms)
            run_timers(group, now_ms, fx, self.settings)
        return group
