"""When a group moves between states: the rebalance protocol's transitions and its timers.

Theory of operation.  A rebalance opens with ``prepare_rebalance`` (state PreparingRebalance): members
learn of it from a heartbeat answered REBALANCE_IN_PROGRESS, or from a SyncGroup that was waiting, and
send JoinGroup again.  The join phase closes (``complete_join``) once every member has rejoined, or
when the join deadline passes: members that did not rejoin are dropped (static members excepted, as
in Kafka), the generation goes up, a protocol is voted, and every waiting JoinGroup is answered, the
leader's with all members' metadata.  The group then waits in CompletingRebalance for the leader's
SyncGroup; its assignment is written as a GroupMetadataValue record and handed to every member that is
waiting in SyncGroup (Stable).  A group that loses its last member closes the join phase with no
members: it becomes Empty with a new generation, and that too is written, so a restart does not bring
old members back.

Timers, all deadlines in ``now_ms`` terms kept on the group and its members; ``run_timers`` fires the
due ones in deadline order, each at its own deadline, so the outcome does not depend on how often the
caller ticks:

* member session: no heartbeat, join, sync or commit for ``session_timeout_ms`` -> removed (a member
  waiting in JoinGroup or SyncGroup needs no heartbeats, except a member new to this rebalance, which
  gets ``new_member_join_timeout_ms``);
* pending member: told MEMBER_ID_REQUIRED but never came back within its session timeout;
* join deadline: the largest rebalance timeout of the members (or, for a brand-new group, the initial
  rebalance delay, extended while members keep arriving, up to the rebalance timeout; during that
  delay the phase never closes early.  Kafka arms the delay timer even at 0 ms; here a delay of 0
  means none, so a lone embedded consumer's first JoinGroup completes in the same call);
* pending sync: members that got their JoinGroup answer but did not send SyncGroup within the
  rebalance timeout are removed, and the group rebalances again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, NamedTuple

from .errors import NONE, REBALANCE_IN_PROGRESS, UNKNOWN_MEMBER_ID
from .offsets_log import group_metadata_key, group_metadata_value
from .responses import JoinGroupResponse, JoinMember, Result, SyncGroupResponse
from .state import COMPLETING, EMPTY, PREPARING, STABLE, VALID_PREVIOUS, Group, Member


@dataclass(frozen=True)
class Settings:
    """The coordinator's configuration (Kafka's ``group.*`` and ``offsets.*`` broker settings)."""

    initial_rebalance_delay_ms: int = 0
    min_session_timeout_ms: int = 6000
    max_session_timeout_ms: int = 1_800_000
    max_group_size: int = 1000
    offsets_retention_ms: int = 7 * 24 * 3600 * 1000
    offsets_retention_check_interval_ms: int = 600_000
    offset_metadata_max_bytes: int = 4096
    new_member_join_timeout_ms: int = 300_000


class Pending(NamedTuple):
    """A JoinGroup or SyncGroup left waiting; ``token`` identifies it among later completions."""

    token: int


class Effects:
    """One call's output: records (replayed as they are emitted) and completed waiting requests."""

    def __init__(self, group_id: str | None, apply: Callable[[bytes, bytes | None], None], tokens: Iterator[int]):
        self.result = Result(group_id=group_id)
        self._apply = apply
        self._tokens = tokens
        self._completed_tokens: list[int | None] = []

    def token(self) -> int:
        return next(self._tokens)

    def emit(self, key: bytes, value: bytes | None) -> None:
        self._apply(key, value)
        self.result.records.append((key, value))

    def emit_group(self, group: Group, assignments: dict[str, bytes] | None = None) -> None:
        self.emit(group_metadata_key(group.group_id), group_metadata_value(group.to_metadata(assignments)))

    def complete_join(self, member: Member, response: JoinGroupResponse) -> None:
        token, member.join_token = member.join_token, None
        self._complete(member.member_id, "join", response, token)

    def complete_sync(self, member: Member, response: SyncGroupResponse) -> None:
        token, member.sync_token = member.sync_token, None
        self._complete(member.member_id, "sync", response, token)

    def _complete(self, member_id: str, kind: str, response: object, token: int | None) -> None:
        self.result.completed.append((member_id, kind, response))
        self._completed_tokens.append(token)

    def finish(self, outcome: object) -> Result:
        """Close the call: a ``Pending`` completed within this call becomes its response."""
        if isinstance(outcome, Pending):
            if outcome.token in self._completed_tokens:
                i = self._completed_tokens.index(outcome.token)
                del self._completed_tokens[i]
                self.result.response = self.result.completed.pop(i)[2]
        else:
            self.result.response = outcome
        return self.result


def join_response(group: Group, member: Member, *, skip_assignment: bool = False) -> JoinGroupResponse:
    """The current generation as ``member`` sees it; only the leader gets the members' metadata."""
    members = []
    if group.leader == member.member_id:
        members = [JoinMember(m.member_id, m.group_instance_id, m.metadata(group.protocol_name))
                   for m in group.members.values()]
    return JoinGroupResponse(NONE, group.generation, group.protocol_type, group.protocol_name, group.leader or "",
                             member.member_id, members, skip_assignment)


def prepare_rebalance(group: Group, fx: Effects, now: int, settings: Settings) -> None:
    if group.state is COMPLETING:  # members waiting in SyncGroup must rejoin instead
        for member in group.members.values():
            member.assignment = b""
        propagate_assignment(group, fx, REBALANCE_IN_PROGRESS, now)
    group.pending_sync.clear()
    group.sync_deadline = None
    delay = settings.initial_rebalance_delay_ms
    group.initial_delay = group.state is EMPTY and delay > 0
    if group.initial_delay:
        group.join_deadline = now + delay
        group.initial_remaining = max(group.rebalance_timeout_ms() - delay, 0)
        group.new_member_added = False
    else:
        group.join_deadline = now + group.rebalance_timeout_ms()
    group.transition(PREPARING, now)
    maybe_complete_join(group, fx, now)


def rebalance_or_complete_join(group: Group, fx: Effects, now: int, settings: Settings) -> None:
    if group.state in VALID_PREVIOUS[PREPARING]:
        prepare_rebalance(group, fx, now, settings)
    else:
        maybe_complete_join(group, fx, now)


def maybe_complete_join(group: Group, fx: Effects, now: int) -> None:
    """Close the join phase early once everyone has rejoined (a new group waits out its delay)."""
    if group.state is PREPARING and group.all_joined() and not group.initial_delay:
        complete_join(group, fx, now)


def complete_join(group: Group, fx: Effects, now: int) -> None:
    for member in list(group.members.values()):
        if not member.awaiting_join and member.group_instance_id is None:
            group.remove(member.member_id)  # did not rejoin in time; nothing of it is waiting
    group.initial_delay = False
    if group.members and not _elect_joined_leader(group):
        # Only static members that have not rejoined remain: wait for them, or for their sessions to end.
        group.join_deadline = now + max(group.rebalance_timeout_ms(), 1)
        return
    group.join_deadline = None
    group.generation += 1
    if not group.members:
        group.protocol_name = None
        group.transition(EMPTY, now)
        group.compute_subscribed_topics()
        fx.emit_group(group)
        return
    group.protocol_name = group.select_protocol()
    group.transition(COMPLETING, now)
    group.compute_subscribed_topics()
    for member in group.members.values():
        if member.awaiting_join:
            fx.complete_join(member, join_response(group, member))
            member.is_new = False
            member.deadline = now + member.session_timeout_ms
    group.pending_sync = set(group.members)
    group.sync_deadline = now + group.rebalance_timeout_ms()


def _elect_joined_leader(group: Group) -> bool:
    """Keep the leader if it rejoined, else promote the first member that did; False if none did."""
    leader = group.members.get(group.leader)
    if leader is not None and leader.awaiting_join:
        return True
    joined = next((m.member_id for m in group.members.values() if m.awaiting_join), None)
    if joined is None:
        return False
    group.leader = joined
    return True


def propagate_assignment(group: Group, fx: Effects, error: int, now: int) -> None:
    """Answer every waiting SyncGroup (with its assignment when ``error`` is NONE) and restart sessions."""
    for member in group.members.values():
        if member.awaiting_sync:
            fx.complete_sync(member, SyncGroupResponse(error, group.protocol_type, group.protocol_name,
                                                       member.assignment if error == NONE else b""))
            member.deadline = now + member.session_timeout_ms


def remove_members(group: Group, members: list[Member], fx: Effects, now: int, settings: Settings) -> None:
    """Drop ``members`` (answering what they had waiting with UNKNOWN_MEMBER_ID), then rebalance."""
    for member in members:
        if member.awaiting_join:
            fx.complete_join(member, JoinGroupResponse(UNKNOWN_MEMBER_ID))
        if member.awaiting_sync:
            fx.complete_sync(member, SyncGroupResponse(UNKNOWN_MEMBER_ID))
        group.remove(member.member_id)
    if group.state in (STABLE, COMPLETING):
        prepare_rebalance(group, fx, now, settings)
    elif group.state is PREPARING:
        maybe_complete_join(group, fx, now)


# ---- timers --------------------------------------------------------------------------------------------

def arm(group: Group, now: int) -> None:
    """Give members restored by a load their first session deadline."""
    for member in group.members.values():
        if member.deadline is None:
            member.deadline = now + member.session_timeout_ms


def _timers(group: Group) -> Iterator[tuple[int, int, str]]:
    for member_id, deadline in group.pending_members.items():
        yield deadline, 0, member_id
    for member in group.members.values():
        if member.deadline is not None and not member.heartbeat_satisfied():
            yield member.deadline, 1, member.member_id
    if group.state is PREPARING and group.join_deadline is not None:
        yield group.join_deadline, 2, ""
    if group.sync_deadline is not None and group.pending_sync:
        yield group.sync_deadline, 3, ""


def next_deadline(group: Group) -> int | None:
    return min((t[0] for t in _timers(group)), default=None)


def run_timers(group: Group, now: int, fx: Effects, settings: Settings) -> None:
    """Fire every timer due at ``now``, earliest first, each at its own deadline."""
    for _ in range(4 * (len(group.members) + len(group.pending_members)) + 16):
        due = min(_timers(group), default=None)
        if due is None or due[0] > now:
            return
        _fire(group, *due, fx, settings)
    # Still due: a later call (next_deadline() is now in the past) carries on; no call runs unbounded.


def _fire(group: Group, at: int, kind: int, member_id: str, fx: Effects, settings: Settings) -> None:
    if kind == 0:  # a member told MEMBER_ID_REQUIRED never came back
        del group.pending_members[member_id]
        maybe_complete_join(group, fx, at)
    elif kind == 1:  # session expired
        remove_members(group, [group.members[member_id]], fx, at, settings)
    elif kind == 2:  # join phase deadline
        if group.initial_delay and group.new_member_added and group.initial_remaining > 0:
            step = min(settings.initial_rebalance_delay_ms, group.initial_remaining)
            group.initial_remaining = max(group.initial_remaining - step, 0)
            group.new_member_added = False
            group.join_deadline = at + step
        else:
            complete_join(group, fx, at)
    else:  # members that never sent SyncGroup
        expired = [group.members[m] for m in sorted(group.pending_sync) if m in group.members]
        group.sync_deadline = None
        group.pending_sync.clear()
        if expired and group.state in (COMPLETING, STABLE):
            remove_members(group, expired, fx, at, settings)
