"""The consumer-group service: the sans-I/O GroupCoordinator driven over the ``__consumer_offsets`` log.

Every coordinator call runs under one lock: the coordinator answers with the records it emitted
(already applied through its ``replay``), this service appends them to the group's partition of
``__consumer_offsets`` (``partition_for_group``), waits until they are durable and only then hands
out responses, its own and the ones of pending JoinGroup / SyncGroup requests the call completed.
On first use the coordinator is rebuilt by replaying that topic from its start: the same code path.

Pending responses are kept for pickup (``take_response``) by the embedded Consumer, which drives its
membership from ``poll()`` without blocking, and are passed to listeners (the network server).
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from typing import Callable

from ..errors import KafkaStorageError, LogbrokerError
from ..groups.consumer_protocol import decode_assignment
from ..groups.coordinator import GroupCoordinator
from ..groups.offsets_log import OFFSETS_TOPIC, OFFSETS_TOPIC_PARTITIONS, decode_key, partition_for_group
from ..records.batch import decode_records, encode_batch_columns, iter_batches
from ..storage.log import LATEST_TIMESTAMP

log = logging.getLogger(__name__)

# Kafka's offsets.topic.* defaults: compacted, 100 MiB segments
OFFSETS_TOPIC_CONFIG = {"cleanup.policy": "compact", "segment.bytes": str(100 * 1024 * 1024)}


class GroupService:
    """Consumer groups of one Broker.  Thread-safe."""

    def __init__(self, broker, *, initial_rebalance_delay_ms: int = 0, members_survive_restart: bool = False):
        """``members_survive_restart``: keep the members a restart finds in the log (remote clients
        that reconnect, as with a Kafka coordinator failover).  Embedded members died with the
        process that hosted them, so by default they are removed at load, as if they had left:
        a new member need not wait out their session timeouts."""
        self._broker = broker
        self._members_survive_restart = members_survive_restart
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._coordinator: GroupCoordinator | None = None
        self._initial_rebalance_delay_ms = initial_rebalance_delay_ms
        self._responses: dict[tuple[str, str], object] = {}  # (member id, "join"|"sync") -> response
        self._listeners: list[Callable[[str, str, object], None]] = []

    # ---- plumbing ----------------------------------------------------------------------------

    def _now(self) -> int:
        return self._broker.clock.time_ms()

    def _coordinator_locked(self) -> GroupCoordinator:
        if self._coordinator is None:
            coordinator = GroupCoordinator(initial_rebalance_delay_ms=self._initial_rebalance_delay_ms)
            if OFFSETS_TOPIC in self._broker.list_topics():
                for key, value in self._offsets_records():
                    coordinator.replay(key, value)
            coordinator.loaded(self._now())
            self._coordinator = coordinator
            if not self._members_survive_restart and not self._broker.read_only:
                self._remove_loaded_members(coordinator)
        return self._coordinator

    def _remove_loaded_members(self, coordinator) -> None:
        now = self._now()
        results = []
        for group_id, _protocol_type, _state in coordinator.list_groups():
            members = [(m.member_id, m.group_instance_id) for m in coordinator.describe_group(group_id).members]
            if members:
                results.append(coordinator.leave_group(now, group_id, members))
        if results:
            self._finish(results, self._append_locked(results))

    def _offsets_records(self):
        """(key, value) of every record in ``__consumer_offsets``, partition by partition."""
        broker = self._broker
        for partition in range(broker.partition_count(OFFSETS_TOPIC)):
            for record in broker.iter_records(OFFSETS_TOPIC, partition):
                if record.key is not None:
                    yield record.key, record.value

    def _run(self, method: str, *args, own: tuple[str, str] | None = None):
        """Call the coordinator, make its records durable, publish completions; return the response.

        ``own`` is (member id, "join"|"sync") of a request that may wait: while it waits, a
        completion for that key in this call's results answers the member's *previous* request
        (superseded), not this one, and is dropped."""
        with self._lock:
            coordinator = self._coordinator_locked()
            now = self._now()
            results = self._tick_locked(coordinator, now)
            result = getattr(coordinator, method)(now, *args)
            if own is not None and result.response is None:
                result.completed = [c for c in result.completed if (c[0], c[1]) != own]
            results.append(result)
            durable = self._append_locked(results)
        self._finish(results, durable)
        return result.response

    def _tick_locked(self, coordinator, now: int) -> list:
        if self._broker.read_only:  # a read-only view shows the persisted state; it expires nobody
            return []
        deadline = coordinator.next_deadline()
        if deadline is None or deadline > now:
            return []
        ticked = coordinator.tick(now)
        return list(ticked) if isinstance(ticked, (list, tuple)) else [ticked]

    def _append_locked(self, results) -> list[tuple[str, int, int]]:
        """Append the results' records, one batch per offsets partition, in emission order."""
        by_partition: dict[int, list] = defaultdict(list)
        for result in results:
            for key, value in result.records:
                by_partition[partition_for_group(decode_key(key).group)].append((key, value))
        if not by_partition:
            return []
        broker = self._broker
        if OFFSETS_TOPIC not in broker.list_topics():
            broker._manager.create_topic(OFFSETS_TOPIC, OFFSETS_TOPIC_PARTITIONS, dict(OFFSETS_TOPIC_CONFIG))
        now = self._now()
        durable = []
        for partition, records in by_partition.items():
            keys = [k for k, _ in records]
            values = [v for _, v in records]
            data = encode_batch_columns(keys, values, None, [now] * len(records))
            info = broker.log(OFFSETS_TOPIC, partition).append(data)
            durable.append((OFFSETS_TOPIC, partition, info.last_offset + 1))
        return durable

    def _finish(self, results, durable) -> None:
        for topic, partition, offset in durable:
            try:
                self._broker.wait_durable(topic, partition, offset)
            except LogbrokerError as exc:
                log.error("could not make group records durable (%s); responses withheld", exc)
                raise KafkaStorageError(f"the offsets log could not be written: {exc}") from exc
        completed = [item for result in results for item in result.completed]
        if not completed:
            return
        with self._cond:
            for member_id, kind, response in completed:
                self._responses[(member_id, kind)] = response
            self._cond.notify_all()
            listeners = list(self._listeners)
        for listener in listeners:
            for member_id, kind, response in completed:
                listener(member_id, kind, response)

    # ---- the group API -------------------------------------------------------------------------

    def join_group(self, group_id: str, member_id: str, group_instance_id: str | None, protocol_type: str,
                   protocols: list[tuple[str, bytes]], session_timeout_ms: int, rebalance_timeout_ms: int,
                   client_id: str = "", client_host: str = "", require_known_member_id: bool = True):
        """JoinGroup; None while the rebalance waits for other members (see ``take_response``)."""
        with self._lock:
            self._responses.pop((member_id, "join"), None)
            self._responses.pop((member_id, "sync"), None)
        return self._run("join_group", group_id, member_id, group_instance_id, protocol_type, protocols,
                         session_timeout_ms, rebalance_timeout_ms, client_id, client_host, require_known_member_id,
                         own=(member_id, "join"))

    def static_member_id(self, group_id: str, group_instance_id: str) -> str:
        """The member id the coordinator gave a static member (its JoinGroup may still be pending:
        a new static member is not asked to rejoin with an id first, unlike a dynamic one)."""
        with self._lock:
            for member in self._coordinator_locked().describe_group(group_id).members:
                if member.group_instance_id == group_instance_id:
                    return member.member_id
        return ""

    def sync_group(self, group_id: str, generation_id: int, member_id: str, group_instance_id: str | None,
                   protocol_type: str | None, protocol_name: str | None, assignments: dict[str, bytes]):
        """SyncGroup; None while a follower waits for the leader's assignment."""
        return self._run("sync_group", group_id, generation_id, member_id, group_instance_id, protocol_type,
                         protocol_name, assignments, own=(member_id, "sync"))

    def heartbeat(self, group_id: str, generation_id: int, member_id: str, group_instance_id: str | None = None) -> int:
        return self._run("heartbeat", group_id, generation_id, member_id, group_instance_id)

    def leave_group(self, group_id: str, members: list[tuple[str, str | None]]):
        return self._run("leave_group", group_id, members)

    def commit_offsets(self, group_id: str, generation_id: int, member_id: str, group_instance_id: str | None,
                       offsets: dict[tuple[str, int], tuple[int, int, str | None]]) -> dict[tuple[str, int], int]:
        """Commit; per partition a Kafka error code (0 = stored and fsynced)."""
        codes = {}
        checked = {}
        for (topic, partition), value in offsets.items():
            try:
                self._broker.log(topic, partition)
            except LogbrokerError as exc:
                codes[(topic, partition)] = exc.error_code
                continue
            checked[(topic, partition)] = value
        if checked:
            codes.update(self._run("commit_offsets", group_id, generation_id, member_id, group_instance_id, checked))
        return codes

    def fetch_offsets(self, group_id: str, partitions: list[tuple[str, int]] | None = None):
        with self._lock:
            return self._coordinator_locked().fetch_offsets(group_id, partitions)

    def list_groups(self) -> list[tuple[str, str, str]]:
        with self._lock:
            coordinator = self._coordinator_locked()
            self._finish_tick_locked(coordinator)
            return coordinator.list_groups()

    def describe_group(self, group_id: str):
        with self._lock:
            coordinator = self._coordinator_locked()
            self._finish_tick_locked(coordinator)
            return coordinator.describe_group(group_id)

    def delete_groups(self, group_ids: list[str]) -> dict[str, int]:
        return self._run("delete_groups", group_ids)

    def tick(self) -> None:
        """Expire sessions, finish timed-out rebalances (called by housekeeping and by every call)."""
        with self._lock:
            if self._coordinator is None:
                return
            results = self._tick_locked(self._coordinator, self._now())
            durable = self._append_locked(results)
        self._finish(results, durable)

    def _finish_tick_locked(self, coordinator) -> None:
        results = self._tick_locked(coordinator, self._now())
        if results:
            durable = self._append_locked(results)
            self._finish(results, durable)

    # ---- pending responses -----------------------------------------------------------------------

    def take_response(self, member_id: str, kind: str, timeout: float = 0.0):
        """The completed response of ``member_id``'s pending ``kind`` ("join"/"sync") request, or None."""
        self.tick()
        with self._cond:
            response = self._responses.pop((member_id, kind), None)
            if response is None and timeout > 0:
                self._cond.wait(timeout)
                response = self._responses.pop((member_id, kind), None)
            return response

    def wait_for_response(self, timeout: float) -> None:
        """Sleep until some pending request completes, or ``timeout`` seconds pass."""
        self.tick()
        with self._cond:
            self._cond.wait(timeout)

    def add_listener(self, listener: Callable[[str, str, object], None]) -> None:
        """Call ``listener(member_id, kind, response)`` whenever a pending request completes."""
        with self._lock:
            self._listeners.append(listener)

    # ---- reporting -------------------------------------------------------------------------------

    def lag(self, group_id: str) -> list[dict]:
        """Per committed partition: committed offset, log end offset (high watermark), lag in records
        and the age in ms of the oldest record not yet consumed (0 when there is none)."""
        broker = self._broker
        now = self._now()
        out = []
        for (topic, partition), (offset, _epoch, metadata) in sorted(self.fetch_offsets(group_id).items()):
            row = {"topic": topic, "partition": partition, "committed": offset, "metadata": metadata,
                   "log_end_offset": None, "lag": None, "lag_ms": None}
            try:
                end = broker.list_offsets(topic, partition, LATEST_TIMESTAMP)[0]
                start = broker.list_offsets(topic, partition, -2)[0]
            except LogbrokerError:  # the topic or partition is gone
                out.append(row)
                continue
            position = max(offset, start)
            row["log_end_offset"] = end
            row["lag"] = max(0, end - position)
            row["lag_ms"] = 0
            if position < end:
                timestamp = self._timestamp_at(topic, partition, position)
                if timestamp is not None:
                    row["lag_ms"] = max(0, now - timestamp)
            out.append(row)
        return out

    def _timestamp_at(self, topic: str, partition: int, offset: int) -> int | None:
        info = self._broker.fetch(topic, partition, offset, 1)
        for pos, header in iter_batches(info.records):
            if header.is_control:
                continue
            for record in decode_records(info.records, pos, header):
                if record.offset >= offset:
                    return record.timestamp
        return None

    def assignments(self, group_id: str) -> dict[str, list[tuple[str, int]]]:
        """Member id -> assigned partitions, for groups of protocol type "consumer"."""
        description = self.describe_group(group_id)
        out = {}
        for member in description.members:
            try:
                out[member.member_id] = list(decode_assignment(member.assignment).partitions) if member.assignment else []
            except LogbrokerError:
                out[member.member_id] = []
        return out


__all__ = ["GroupService", "OFFSETS_TOPIC"]
