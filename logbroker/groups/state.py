"""A classic group's live state: its state machine, its members, and the bookkeeping Kafka keeps.

States, with the states each may be entered from (Kafka's ClassicGroupState):

    Empty                 <- PreparingRebalance          no members (offsets may remain)
    PreparingRebalance    <- Empty, Stable, CompletingRebalance
                                                         waiting for members to (re)join
    CompletingRebalance   <- PreparingRebalance          generation chosen; waiting for the leader's
                                                         SyncGroup with the assignment
    Stable                <- CompletingRebalance         assignment delivered
    Dead                  <- any                         deleted (such groups are dropped, so describing
                                                         an unknown group answers Dead)

``Group`` is bookkeeping only (who is a member, who is the leader, which protocol wins the vote);
deciding *when* to move between states is ``rebalance.py``'s job.  What survives a restart is what the
group's GroupMetadataValue record holds; ``Group.from_metadata`` rebuilds a group from one.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ..errors import InvalidRequestError
from .consumer_protocol import PROTOCOL_TYPE, decode_subscription
from .errors import FENCED_INSTANCE_ID, NONE, UNKNOWN_MEMBER_ID
from .offsets_log import GroupMetadata, MemberMetadata


class GroupState(enum.Enum):
    EMPTY = "Empty"
    PREPARING_REBALANCE = "PreparingRebalance"
    COMPLETING_REBALANCE = "CompletingRebalance"
    STABLE = "Stable"
    DEAD = "Dead"


EMPTY, PREPARING, COMPLETING, STABLE, DEAD = GroupState

VALID_PREVIOUS: dict[GroupState, frozenset[GroupState]] = {
    EMPTY: frozenset({PREPARING}),
    PREPARING: frozenset({EMPTY, STABLE, COMPLETING}),
    COMPLETING: frozenset({PREPARING}),
    STABLE: frozenset({COMPLETING}),
    DEAD: frozenset(GroupState),
}


@dataclass(eq=False)
class Member:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    rebalance_timeout_ms: int
    session_timeout_ms: int
    protocols: list[tuple[str, bytes]]
    assignment: bytes = b""
    join_token: int | None = None  # set while a JoinGroup waits for the join phase to complete
    sync_token: int | None = None  # set while a SyncGroup waits for the leader's assignment
    is_new: bool = False  # joined in this rebalance: may expire even while awaiting join
    deadline: int | None = None  # session (or new-member join) deadline; None until armed after a load

    @property
    def awaiting_join(self) -> bool:
        return self.join_token is not None

    @property
    def awaiting_sync(self) -> bool:
        return self.sync_token is not None

    def heartbeat_satisfied(self) -> bool:
        """Members waiting on a rebalance need no heartbeats (new members excepted, as in Kafka)."""
        return not self.is_new and (self.awaiting_join or self.awaiting_sync)

    def metadata(self, protocol: str | None) -> bytes:
        return next((data for name, data in self.protocols if name == protocol), b"")

    def matches(self, protocols: list[tuple[str, bytes]]) -> bool:
        return self.protocols == protocols


class Group:
    def __init__(self, group_id: str, *, generation: int = 0, state: GroupState = EMPTY, state_timestamp: int = -1,
                 protocol_type: str | None = None, protocol_name: str | None = None, leader: str | None = None):
        self.group_id = group_id
        self.state = state
        self.state_timestamp = state_timestamp
        self.generation = generation
        self.protocol_type = protocol_type
        self.protocol_name = protocol_name
        self.leader = leader
        self.members: dict[str, Member] = {}
        self.static: dict[str, str] = {}  # group instance id -> member id
        self.pending_members: dict[str, int] = {}  # told MEMBER_ID_REQUIRED, not yet rejoined: deadline
        self.pending_sync: set[str] = set()  # got the JoinGroup response, have not synced yet
        self.join_deadline: int | None = None  # PreparingRebalance: when the join phase completes anyway
        self.sync_deadline: int | None = None  # when members still in pending_sync are removed
        self.initial_delay: bool = False  # the join phase of a new group (group.initial.rebalance.delay.ms)
        self.initial_remaining = 0
        self.new_member_added = False
        self.subscribed_topics: frozenset[str] | None = None

    # ---- transitions and membership ---------------------------------------------------------------

    def transition(self, state: GroupState, now_ms: int) -> None:
        if self.state not in VALID_PREVIOUS[state]:
            raise RuntimeError(f"group {self.group_id!r}: {self.state.value} -> {state.value} is not allowed")
        self.state = state
        self.state_timestamp = now_ms

    def add(self, member: Member, protocol_type: str | None = None) -> None:
        """Add ``member``; the first member of a group sets its protocol type, the first ever leads."""
        if member.group_instance_id is not None:
            self.static[member.group_instance_id] = member.member_id
        if not self.members and protocol_type is not None:
            self.protocol_type = protocol_type
        if self.leader is None:
            self.leader = member.member_id
        self.members[member.member_id] = member
        self.pending_members.pop(member.member_id, None)

    def remove(self, member_id: str) -> Member | None:
        member = self.members.pop(member_id, None)
        if member is not None and member.group_instance_id is not None:
            self.static.pop(member.group_instance_id, None)
        if self.leader == member_id:
            self.leader = next(iter(self.members), None)
        self.pending_members.pop(member_id, None)
        self.pending_sync.discard(member_id)
        return member

    def replace_static(self, old_id: str, new_id: str) -> Member:
        """Give a static member a new member id, keeping its place in the assignment (fencing the old)."""
        member = self.members.pop(old_id)
        member.member_id = new_id
        self.members[new_id] = member
        self.static[member.group_instance_id] = new_id
        if self.leader == old_id:
            self.leader = new_id
        if old_id in self.pending_sync:
            self.pending_sync.discard(old_id)
            self.pending_sync.add(new_id)
        return member

    def validate_member(self, member_id: str, group_instance_id: str | None) -> int:
        """NONE, UNKNOWN_MEMBER_ID, or FENCED_INSTANCE_ID when the instance id maps to another member."""
        if group_instance_id is not None:
            existing = self.static.get(group_instance_id)
            if existing is None:
                return UNKNOWN_MEMBER_ID
            if existing != member_id:
                return FENCED_INSTANCE_ID
        return NONE if member_id in self.members else UNKNOWN_MEMBER_ID

    # ---- protocols ----------------------------------------------------------------------------------

    def candidate_protocols(self) -> set[str]:
        names = [{name for name, _ in m.protocols} for m in self.members.values()]
        return set.intersection(*names) if names else set()

    def supports_protocols(self, protocol_type: str, protocols: list[tuple[str, bytes]]) -> bool:
        if self.state is EMPTY or not self.members:
            return bool(protocol_type) and bool(protocols)
        candidates = self.candidate_protocols()
        return protocol_type == self.protocol_type and any(name in candidates for name, _ in protocols)

    def select_protocol(self) -> str | None:
        """Each member votes for its first candidate; most votes wins (ties: the leader's preference)."""
        candidates = self.candidate_protocols()
        votes: dict[str, int] = {}
        for member in self.members.values():
            choice = next((name for name, _ in member.protocols if name in candidates), None)
            if choice is not None:
                votes[choice] = votes.get(choice, 0) + 1
        if not votes:
            return None  # only for members restored from a record without a protocol
        leader = self.members.get(self.leader) or next(iter(self.members.values()))
        preference = [name for name, _ in leader.protocols]
        return max(votes, key=lambda name: (votes[name], -preference.index(name)))

    def compute_subscribed_topics(self) -> None:
        """The union of the consumers' topics (None when unknown), used by offset expiry and deletion."""
        self.subscribed_topics = frozenset() if not self.members else None
        if not self.members or self.protocol_type != PROTOCOL_TYPE or self.protocol_name is None:
            return
        topics: set[str] = set()
        try:
            for member in self.members.values():
                topics.update(decode_subscription(member.metadata(self.protocol_name)).topics)
        except InvalidRequestError:  # a client's malformed blob: the coordinator cannot tell what it reads
            return
        self.subscribed_topics = frozenset(topics)

    # ---- state queries --------------------------------------------------------------------------------

    def all_joined(self) -> bool:
        return all(m.awaiting_join for m in self.members.values()) and not self.pending_members

    def rebalance_timeout_ms(self) -> int:
        return max((m.rebalance_timeout_ms for m in self.members.values()), default=0)

    def has_no_members(self) -> bool:
        return not self.members and not self.pending_members

    # ---- the durable record -----------------------------------------------------------------------------

    def to_metadata(self, assignments: dict[str, bytes] | None = None) -> GroupMetadata:
        members = tuple(
            MemberMetadata(m.member_id, m.group_instance_id, m.client_id, m.client_host, m.rebalance_timeout_ms,
                           m.session_timeout_ms, m.metadata(self.protocol_name),
                           m.assignment if assignments is None else assignments.get(m.member_id, b""))
            for m in self.members.values())
        return GroupMetadata(self.protocol_type or "", self.generation, self.protocol_name, self.leader,
                             self.state_timestamp, members)

    @classmethod
    def from_metadata(cls, group_id: str, record: GroupMetadata) -> "Group":
        """Kafka's load: members restored Stable with their stored subscription and assignment."""
        group = cls(group_id, generation=record.generation, state=STABLE if record.members else EMPTY,
                    state_timestamp=record.current_state_timestamp, protocol_type=record.protocol_type or None,
                    protocol_name=record.protocol, leader=record.leader if record.members else None)
        for m in record.members:
            protocols = [(record.protocol, m.subscription)] if record.protocol is not None else []
            rebalance_timeout = m.rebalance_timeout if m.rebalance_timeout >= 0 else m.session_timeout
            group.add(Member(m.member_id, m.group_instance_id, m.client_id, m.client_host, rebalance_timeout,
                             m.session_timeout, protocols, assignment=m.assignment))
        if group.leader not in group.members:
            group.leader = next(iter(group.members), None)
        group.compute_subscribed_topics()
        return group
