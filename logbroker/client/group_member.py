"""One consumer's membership of a group: Kafka's classic consumer protocol, driven without blocking.

``GroupMember.step()`` moves the member along

    unjoined --JoinGroup--> joining --(leader assigns)--SyncGroup--> syncing --> stable
        ^                                                                          |
        +----- heartbeat says REBALANCE_IN_PROGRESS / subscription changed --------+

one request at a time, never waiting: a pending JoinGroup or SyncGroup is picked up on a later step
(``GroupService.take_response``), so several consumers of one group can live in one thread.  The
leader runs the assignor (``logbroker.groups.assignors``) on the members' subscriptions, exactly as
a Kafka client leader does, and the assignment travels as the consumer protocol's bytes.

Eager assignors ("range", "roundrobin") revoke everything before rejoining; "cooperative-sticky"
keeps its partitions through the rebalance and revokes only those the new assignment takes away,
then rejoins once more so they can be handed to their new owner (KIP-429).
"""

from __future__ import annotations

import logging
from typing import Callable, NamedTuple

from ..errors import LogbrokerError
from ..groups.assignors import assign
from ..groups.consumer_protocol import decode_assignment, decode_subscription, encode_assignment, encode_subscription

log = logging.getLogger(__name__)

NONE = 0
ILLEGAL_GENERATION = 22
UNKNOWN_MEMBER_ID = 25
REBALANCE_IN_PROGRESS = 27
MEMBER_ID_REQUIRED = 79
FENCED_INSTANCE_ID = 82
_REJOIN = {ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID, REBALANCE_IN_PROGRESS, FENCED_INSTANCE_ID}
COOPERATIVE = "cooperative-sticky"


class TopicPartition(NamedTuple):
    topic: str
    partition: int


class GroupError(LogbrokerError):
    """The group refused this member for a reason a rejoin cannot fix (e.g. inconsistent protocols)."""

    def __init__(self, message: str, error_code: int):
        super().__init__(message)
        self.error_code = error_code


class Change(NamedTuple):
    """What a step did to the member's partitions: revoked ones (stop, commit), lost ones (another
    member may own them already: do not commit), assigned ones (start)."""

    revoked: list[TopicPartition]
    lost: list[TopicPartition]
    assigned: list[TopicPartition]


class GroupMember:
    def __init__(self, service, group_id: str, *, subscription: Callable[[], list[str]], partition_count,
                 assignors: list[str], session_timeout_ms: int, rebalance_timeout_ms: int,
                 heartbeat_interval_ms: int, client_id: str, group_instance_id: str | None = None):
        self.service = service
        self.group_id = group_id
        self._subscription = subscription  # () -> sorted topic names now subscribed
        self._partition_count = partition_count  # topic -> partition count
        self.assignors = list(assignors)
        self.session_timeout_ms = session_timeout_ms
        self.rebalance_timeout_ms = rebalance_timeout_ms
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.client_id = client_id
        self.group_instance_id = group_instance_id
        self.member_id = ""
        self.generation_id = -1
        self.protocol: str | None = None
        self.state = "unjoined"
        self.owned: list[TopicPartition] = []
        self.rejoin_needed = True
        self.last_heartbeat_ms = 0
        self.joined_topics: list[str] = []

    @property
    def stable(self) -> bool:
        return self.state == "stable"

    @property
    def cooperative(self) -> bool:
        return self.protocol == COOPERATIVE

    # ---- driving -------------------------------------------------------------------------------

    def step(self, now_ms: int) -> Change:
        """Do what the current state calls for, without waiting; return the partition changes."""
        change = Change([], [], [])
        if self.state == "stable" and not self.rejoin_needed and now_ms - self.last_heartbeat_ms >= self.heartbeat_interval_ms:
            self._heartbeat(now_ms, change)
        if self.state == "unjoined" or (self.state == "stable" and self.rejoin_needed):
            self._prepare_rejoin(change)
            self._join(now_ms, change)
        elif self.state == "joining":
            response = self.service.take_response(self.member_id, "join")
            if response is not None:
                self._joined(response, now_ms, change)
        elif self.state == "syncing":
            response = self.service.take_response(self.member_id, "sync")
            if response is not None:
                self._synced(response, now_ms, change)
        return change

    def _prepare_rejoin(self, change: Change) -> None:
        if self.owned and not self.cooperative:  # eager: give everything up before joining
            change.revoked.extend(self.owned)
            self.owned = []
        self.state = "unjoined"

    def _join(self, now_ms: int, change: Change) -> None:
        self.rejoin_needed = False
        topics = self._subscription()
        self.joined_topics = topics
        owned = [(tp.topic, tp.partition) for tp in self.owned]
        protocols = [(name, encode_subscription(topics, owned_partitions=owned if name == COOPERATIVE else (),
                                                generation_id=self.generation_id, version=1 if name != COOPERATIVE else 3))
                     for name in self.assignors]
        for _attempt in range(2):  # the second time with the member id the coordinator handed out
            response = self.service.join_group(self.group_id, self.member_id, self.group_instance_id, "consumer",
                                               protocols, self.session_timeout_ms, self.rebalance_timeout_ms,
                                               self.client_id, "localhost")
            if response is None:
                if not self.member_id and self.group_instance_id is not None:
                    self.member_id = self.service.static_member_id(self.group_id, self.group_instance_id)
                self.state = "joining"
                return
            if response.error_code == MEMBER_ID_REQUIRED:
                self.member_id = response.member_id
                continue
            self._joined(response, now_ms, change)
            return
        self.state = "unjoined"

    def _joined(self, response, now_ms: int, change: Change) -> None:
        if response.error_code != NONE:
            self._rejoin_after(response.error_code, change, "JoinGroup")
            return
        self.member_id = response.member_id
        self.generation_id = response.generation_id
        self.protocol = response.protocol_name
        assignments = {}
        if response.leader == self.member_id:
            assignments = self._assign(response.members)
        self.state = "syncing"
        response = self.service.sync_group(self.group_id, self.generation_id, self.member_id, self.group_instance_id,
                                           "consumer", self.protocol, assignments)
        if response is not None:
            self._synced(response, now_ms, change)

    def _assign(self, members) -> dict[str, bytes]:
        """The leader's work: run the chosen assignor over every member's subscription."""
        subscriptions = {m.member_id: decode_subscription(m.metadata) for m in members}
        topics = sorted({t for s in subscriptions.values() for t in s.topics})
        counts = {}
        for topic in topics:
            try:
                counts[topic] = self._partition_count(topic)
            except LogbrokerError:  # subscribed but not (or no longer) there: nothing to assign
                pass
        result = assign(self.protocol, subscriptions, counts)
        return {member_id: encode_assignment(sorted(partitions)) for member_id, partitions in result.items()}

    def _synced(self, response, now_ms: int, change: Change) -> None:
        if response.error_code != NONE:
            self._rejoin_after(response.error_code, change, "SyncGroup")
            return
        new = [TopicPartition(t, p) for t, p in decode_assignment(response.assignment).partitions] \
            if response.assignment else []
        old = set(self.owned)
        revoked = [tp for tp in self.owned if tp not in set(new)]
        change.revoked.extend(revoked)
        change.assigned.extend(tp for tp in new if tp not in old)
        self.owned = new
        self.state = "stable"
        self.last_heartbeat_ms = now_ms
        if revoked and self.cooperative:
            self.rejoin_needed = True  # so the revoked partitions can go to their new owner

    def _heartbeat(self, now_ms: int, change: Change) -> None:
        self.last_heartbeat_ms = now_ms
        code = self.service.heartbeat(self.group_id, self.generation_id, self.member_id, self.group_instance_id)
        if code == REBALANCE_IN_PROGRESS:
            self.rejoin_needed = True
        elif code != NONE:
            self._rejoin_after(code, change, "Heartbeat")

    def _rejoin_after(self, code: int, change: Change, what: str) -> None:
        if code not in _REJOIN:
            self.state = "unjoined"
            raise GroupError(f"{what} for group {self.group_id!r} failed with Kafka error code {code}", code)
        if code in (UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION, FENCED_INSTANCE_ID):
            # our generation is over: the partitions may be someone else's already
            change.lost.extend(self.owned)
            self.owned = []
            if code != ILLEGAL_GENERATION:
                self.member_id = ""
            self.generation_id = -1
        self.state = "unjoined"
        self.rejoin_needed = True

    def heartbeat_if_due(self, now_ms: int) -> None:
        """For a background thread: keep the session alive while the application processes."""
        if self.state == "stable" and not self.rejoin_needed and now_ms - self.last_heartbeat_ms >= self.heartbeat_interval_ms:
            self.last_heartbeat_ms = now_ms
            code = self.service.heartbeat(self.group_id, self.generation_id, self.member_id, self.group_instance_id)
            if code != NONE:
                self.rejoin_needed = True  # the poll thread finds out what happened on its next step

    def leave(self) -> list[TopicPartition]:
        """Leave the group (close, or max.poll.interval.ms exceeded); returns the partitions given up."""
        given_up, self.owned = self.owned, []
        if self.member_id:
            try:
                self.service.leave_group(self.group_id, [(self.member_id, self.group_instance_id)])
            except LogbrokerError as exc:
                log.warning("leaving group %s failed: %s", self.group_id, exc)
        self.member_id = ""
        self.generation_id = -1
        self.state = "unjoined"
        self.rejoin_needed = True
        return given_up

    @property
    def waiting_for(self) -> str | None:
        """"join"/"sync" while a request is pending, else None."""
        return {"joining": "join", "syncing": "sync"}.get(self.state)
