"""The embedded Consumer: reads partitions from their positions, alone or as a member of a group.

Without ``group``, ``topics`` (or ``assign()``) name the partitions read, every partition of each
topic.  With ``group``, ``topics`` or ``pattern`` is a subscription: the group's members split the
partitions (``group_member.py`` drives Kafka's join / sync / heartbeat protocol from ``poll()``),
each partition has one owner per generation, and positions start at the group's committed offsets.

A partition's position is the offset of the next record to hand out; without a committed offset it
starts per ``auto_offset_reset`` ("earliest", "latest", or "error" to raise) and moves past every
record returned.  ``poll()`` fetches raw batches from the broker, decodes them in one pass (control
batches are skipped) and returns up to ``max_records`` records, waiting up to ``timeout`` seconds.

Delivery: ``commit()`` after processing gives at-least-once (a crash in between redelivers from the
last commit); committing before processing gives at-most-once.  ``enable_auto_commit`` commits the
positions of records returned by earlier polls, every ``auto_commit_interval_ms``, before a
rebalance takes partitions away and on ``close()``.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from concurrent.futures import Future
from typing import Callable, Iterable, Iterator

from ..errors import BrokerClosedError, LogbrokerError, OffsetOutOfRangeError
from ..records.batch import Record, decode_records, iter_batches
from ..storage.log import EARLIEST_TIMESTAMP, LATEST_TIMESTAMP
from .group_member import GroupError, GroupMember, TopicPartition

log = logging.getLogger(__name__)

_COMMIT_REJOIN_CODES = {22, 25, 27, 82}  # ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID, REBALANCE_IN_PROGRESS, FENCED


def _monotonic_ms() -> int:
    """The member's own time for heartbeats (the coordinator keeps the broker's clock)."""
    return int(time.monotonic() * 1000)


class CommitFailedError(LogbrokerError):
    """The group refused the commit (a rebalance took the partitions away, or the member was fenced)."""

    def __init__(self, message: str, error_code: int = -1, errors: dict | None = None):
        super().__init__(message)
        self.error_code = error_code
        self.errors = errors or {}


class Consumer:
    """Reads records of an embedded Broker's partitions, alone or as a member of a group.

    ``Consumer(bootstrap="host:port", ...)`` instead of a Broker returns the network consumer
    (``remote_consumer.RemoteConsumer``, a subclass with the same methods) talking Kafka's protocol
    to ``logbroker serve`` or a Kafka cluster."""

    def __new__(cls, broker=None, *args, bootstrap: str | None = None, **kwargs):
        if bootstrap is not None and cls is Consumer:
            from .remote_consumer import RemoteConsumer

            cls = RemoteConsumer
        return object.__new__(cls)

    def __init__(self, broker=None, *, bootstrap: str | None = None, group: str | None = None,
                 topics: Iterable[str] = (), pattern=None,
                 auto_offset_reset: str = "earliest", enable_auto_commit: bool = True,
                 auto_commit_interval_ms: int = 5000, on_assign: Callable | None = None,
                 on_revoke: Callable | None = None, on_lost: Callable | None = None,
                 max_poll_records: int = 500, fetch_max_bytes: int = 1 << 20,
                 session_timeout_ms: int = 45000, heartbeat_interval_ms: int = 1000,
                 max_poll_interval_ms: int = 300000,
                 partition_assignment_strategy: Iterable[str] = ("range", "cooperative-sticky"),
                 client_id: str = "logbroker", group_instance_id: str | None = None):
        if broker is None:
            raise TypeError("Consumer needs a Broker (embedded) or bootstrap='host:port' (network)")
        if bootstrap is not None:
            raise ValueError("give either a Broker or bootstrap='host:port', not both")
        if auto_offset_reset not in ("earliest", "latest", "error"):
            raise ValueError("auto_offset_reset must be 'earliest', 'latest' or 'error'")
        if topics and pattern is not None:
            raise ValueError("subscribe to topics or to a pattern, not both")
        self._broker = broker
        self._reset = auto_offset_reset
        self._max_poll_records = max_poll_records
        self._fetch_max_bytes = fetch_max_bytes
        self._positions: dict[TopicPartition, int | None] = {}
        self._buffers: dict[TopicPartition, tuple[list[Record], int]] = {}  # fetched, not yet returned
        self._paused: set[TopicPartition] = set()
        self._next = 0
        self._closed = False
        self.group = group
        self._on_assign, self._on_revoke, self._on_lost = on_assign, on_revoke, on_lost
        self._auto_commit = enable_auto_commit and group is not None
        self._auto_commit_interval = auto_commit_interval_ms / 1000.0
        self._last_auto_commit = time.monotonic()
        self._max_poll_interval = max_poll_interval_ms / 1000.0
        self._last_poll = time.monotonic()
        self._lock = threading.RLock()  # the poll thread and the heartbeat thread
        self._member: GroupMember | None = None
        self._subscribed: list[str] | None = None
        self._pattern = None
        self._subscription_checked = 0.0
        self._committer = None
        self._heartbeat_thread = None
        self._stopping = threading.Event()
        self._counts_at_join: dict[str, int] = {}
        self._lost_by_timeout: list[TopicPartition] = []  # set by the heartbeat thread, handled by poll
        if group is not None:
            self._member = GroupMember(
                broker.groups, group, subscription=self._current_subscription, partition_count=broker.partition_count,
                assignors=list(partition_assignment_strategy), session_timeout_ms=session_timeout_ms,
                rebalance_timeout_ms=max_poll_interval_ms, heartbeat_interval_ms=heartbeat_interval_ms,
                client_id=client_id, group_instance_id=group_instance_id)
        if pattern is not None:
            self.subscribe(pattern=pattern)
        elif topics:
            self.subscribe(topics)

    def __enter__(self) -> "Consumer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- assignment and positions ------------------------------------------------------------

    def subscribe(self, topics: Iterable[str] = (), *, pattern=None) -> None:
        """Without a group: assign every partition of ``topics``.  With a group: subscribe to
        ``topics`` or to the topics matching ``pattern`` (a regex, checked as topics come and go);
        the group decides which partitions this consumer reads."""
        if self._member is None:
            if pattern is not None:
                raise ValueError("a pattern subscription needs a group")
            parts = []
            for topic in topics:
                parts += [TopicPartition(topic, p) for p in range(self._broker.partition_count(topic))]
            self.assign(parts)
            return
        with self._lock:
            self._pattern = re.compile(pattern) if isinstance(pattern, str) else pattern
            self._subscribed = None if pattern is not None else sorted(set(topics))
            for topic in self._subscribed or ():
                self._broker.topic(topic)  # raises for invalid or unknown topics
            self._member.rejoin_needed = True
            self._start_heartbeat_thread()

    def _current_subscription(self) -> list[str]:
        if self._pattern is not None:
            return sorted(t for t in self._broker.list_topics()
                          if not t.startswith("__") and self._pattern.fullmatch(t))
        return list(self._subscribed or ())

    def assign(self, partitions: Iterable[tuple[str, int]]) -> None:
        """Read exactly these partitions (positions start at the group's committed offsets, if any,
        else per auto_offset_reset).  A consumer with a group commits with generation -1 then."""
        wanted = [TopicPartition(*tp) for tp in partitions]
        for tp in wanted:
            self._broker.log(tp.topic, tp.partition)  # raises for unknown partitions
        with self._lock:
            if self._subscribed is not None or self._pattern is not None:
                raise ValueError("this consumer has a group subscription; unsubscribe() before assign()")
            self._set_assignment(wanted)

    def unsubscribe(self) -> None:
        with self._lock:
            if self._member is not None and (self._subscribed is not None or self._pattern is not None):
                self._give_up(self._member.leave(), commit=True)
            self._subscribed = self._pattern = None
            self._set_assignment([])

    def _set_assignment(self, wanted: list[TopicPartition]) -> None:
        committed = self._committed_offsets(wanted)
        self._positions = {tp: self._positions.get(tp, committed.get(tp)) for tp in wanted}
        self._buffers = {tp: buf for tp, buf in self._buffers.items() if tp in self._positions}

    def _committed_offsets(self, partitions) -> dict[TopicPartition, int]:
        if self.group is None or not partitions:
            return {}
        found = self._broker.groups.fetch_offsets(self.group, [tuple(tp) for tp in partitions])
        return {TopicPartition(*tp): value[0] for tp, value in found.items() if value[0] >= 0}

    def assignment(self) -> set[TopicPartition]:
        return set(self._positions)

    def _reset_position(self, tp: TopicPartition) -> int:
        if self._reset == "error":
            raise OffsetOutOfRangeError(f"no valid position for {tp.topic}-{tp.partition} and auto_offset_reset='error'")
        target = EARLIEST_TIMESTAMP if self._reset == "earliest" else LATEST_TIMESTAMP
        offset = self._broker.list_offsets(tp.topic, tp.partition, target)[0]
        self._positions[tp] = offset
        return offset

    def position(self, topic: str, partition: int) -> int:
        tp = TopicPartition(topic, partition)
        self._require_assigned(tp)
        position = self._positions[tp]
        return self._reset_position(tp) if position is None else position

    def _require_assigned(self, tp: TopicPartition) -> None:
        if tp not in self._positions:
            raise ValueError(f"{tp.topic}-{tp.partition} is not assigned to this consumer")

    def seek(self, topic: str, partition: int, offset: int) -> None:
        tp = TopicPartition(topic, partition)
        self._require_assigned(tp)
        self._positions[tp] = offset
        self._buffers.pop(tp, None)

    def seek_to_beginning(self, *partitions: tuple[str, int]) -> None:
        for tp in partitions or list(self._positions):
            self.seek(*tp, self._broker.list_offsets(tp[0], tp[1], EARLIEST_TIMESTAMP)[0])

    def seek_to_end(self, *partitions: tuple[str, int]) -> None:
        for tp in partitions or list(self._positions):
            self.seek(*tp, self._broker.list_offsets(tp[0], tp[1], LATEST_TIMESTAMP)[0])

    def offsets_for_times(self, timestamps: dict[tuple[str, int], int]) -> dict[TopicPartition, tuple[int, int] | None]:
        return {TopicPartition(*tp): self._broker.list_offsets(tp[0], tp[1], ts) for tp, ts in timestamps.items()}

    def end_offsets(self, partitions: Iterable[tuple[str, int]] | None = None) -> dict[TopicPartition, int]:
        return {TopicPartition(*tp): self._broker.list_offsets(tp[0], tp[1], LATEST_TIMESTAMP)[0]
                for tp in (partitions or self._positions)}

    def pause(self, *partitions: tuple[str, int]) -> None:
        self._paused.update(TopicPartition(*tp) for tp in partitions)

    def resume(self, *partitions: tuple[str, int]) -> None:
        self._paused.difference_update(TopicPartition(*tp) for tp in partitions)

    def at_end(self) -> bool:
        """True when every assigned partition has been read up to its high watermark."""
        ends = self.end_offsets()
        return all(tp not in self._buffers and self.position(*tp) >= end for tp, end in ends.items())

    # ---- committing ----------------------------------------------------------------------------

    def commit(self, offsets: dict[tuple[str, int], int] | None = None, *, asynchronous: bool = False):
        """Commit ``offsets`` (topic, partition) -> next offset to read, by default the position of
        every assigned partition (everything returned so far).  Synchronous: returns once the commit
        is fsynced, raises CommitFailedError if the group refused it.  ``asynchronous=True`` returns a
        Future instead (commits stay in order)."""
        if self.group is None:
            raise LogbrokerError("commit() needs a consumer created with group=...")
        if offsets is None:
            with self._lock:
                offsets = {tp: pos for tp, pos in self._positions.items() if pos is not None}
        offsets = {TopicPartition(*tp): int(off) for tp, off in offsets.items()}
        if not asynchronous:
            self._commit_now(offsets)
            return None
        return self._commit_in_background(offsets)

    def _commit_in_background(self, offsets: dict[TopicPartition, int]) -> Future:
        """Run ``_commit_now`` on one committer thread (commits stay in order); a Future of it."""
        future: Future = Future()
        with self._lock:
            if self._committer is None:
                from concurrent.futures import ThreadPoolExecutor

                self._committer = ThreadPoolExecutor(1, thread_name_prefix="logbroker-commit")
            committer = self._committer

        def run():
            try:
                self._commit_now(offsets)
                future.set_result(offsets)
            except BaseException as exc:  # noqa: BLE001 - it belongs to the future
                future.set_exception(exc)

        committer.submit(run)
        return future

    def _commit_now(self, offsets: dict[TopicPartition, int]) -> None:
        if not offsets:
            return
        with self._lock:
            member = self._member
            if member is not None and (self._subscribed is not None or self._pattern is not None):
                # the coordinator judges the generation: during PreparingRebalance it is still valid
                generation, member_id, instance = member.generation_id, member.member_id, member.group_instance_id
            else:
                generation, member_id, instance = -1, "", None
        codes = self._broker.groups.commit_offsets(self.group, generation, member_id, instance,
                                                   {tuple(tp): (off, -1, "") for tp, off in offsets.items()})
        failed = {tp: code for tp, code in codes.items() if code}
        if failed:
            code = next(iter(failed.values()))
            if code in _COMMIT_REJOIN_CODES and member is not None:
                member.rejoin_needed = True
            raise CommitFailedError(f"group {self.group!r} refused the commit: Kafka error codes {failed}", code, failed)

    def committed(self, partitions: Iterable[tuple[str, int]] | None = None) -> dict[TopicPartition, int | None]:
        """The group's committed offset per partition (None where nothing is committed)."""
        if self.group is None:
            raise LogbrokerError("committed() needs a consumer created with group=...")
        wanted = [TopicPartition(*tp) for tp in (partitions if partitions is not None else self.assignment())]
        found = self._committed_offsets(wanted)
        return {tp: found.get(tp) for tp in wanted}

    # ---- group membership ----------------------------------------------------------------------

    def _drive_group(self) -> bool:
        """One non-blocking step of the membership; True once the member is stable."""
        member = self._member
        if member is None or (self._subscribed is None and self._pattern is None):
            return True
        now = time.monotonic()
        if now - self._subscription_checked >= 1.0 and member.stable:
            self._subscription_checked = now
            if self._subscription_changed():
                member.rejoin_needed = True
        if member.rejoin_needed and member.stable and self._auto_commit:
            self._try_commit()
        change = member.step(_monotonic_ms())
        if change.revoked or change.lost or change.assigned:
            self._apply(change)
        return member.stable and not member.rejoin_needed

    def _subscription_changed(self) -> bool:
        """Topics matching the pattern came or went, or a subscribed topic got more partitions."""
        topics = self._current_subscription()
        return topics != self._member.joined_topics or self._partition_counts(topics) != self._counts_at_join

    def _partition_counts(self, topics) -> dict[str, int]:
        counts = {}
        for topic in topics:
            try:
                counts[topic] = self._broker.partition_count(topic)
            except LogbrokerError:  # deleted meanwhile
                pass
        return counts

    def _apply(self, change) -> None:
        if change.revoked:
            self._give_up(change.revoked, commit=self._auto_commit)
        if change.lost:
            self._give_up(change.lost, commit=False, lost=True)
        if change.assigned:
            committed = self._committed_offsets(change.assigned)
            for tp in change.assigned:
                self._positions[tp] = committed.get(tp)
            if self._on_assign is not None:
                self._on_assign(self, list(change.assigned))
        if self._member.stable:
            self._counts_at_join = self._partition_counts(self._member.joined_topics)

    def _give_up(self, partitions, *, commit: bool, lost: bool = False) -> None:
        """Stop reading ``partitions``: commit their positions first (unless lost: another member
        may own them already), tell on_revoke / on_lost."""
        partitions = [tp for tp in partitions if tp in self._positions]
        if commit and partitions:
            offsets = {tp: self._positions[tp] for tp in partitions if self._positions[tp] is not None}
            member = self._member
            try:
                codes = self._broker.groups.commit_offsets(
                    self.group, member.generation_id, member.member_id, member.group_instance_id,
                    {tuple(tp): (off, -1, "") for tp, off in offsets.items()})
                if any(codes.values()):
                    log.info("commit before revoking %s was refused: %s", partitions, codes)
            except LogbrokerError as exc:
                log.warning("commit before revoking %s failed: %s", partitions, exc)
        callback = (self._on_lost or self._on_revoke) if lost else self._on_revoke
        if callback is not None and partitions:
            callback(self, list(partitions))
        for tp in partitions:
            self._positions.pop(tp, None)
            self._buffers.pop(tp, None)
            self._paused.discard(tp)

    def _try_commit(self) -> None:
        try:
            self.commit()
        except LogbrokerError as exc:
            log.info("auto-commit for group %s failed: %s", self.group, exc)
        self._last_auto_commit = time.monotonic()

    def _start_heartbeat_thread(self) -> None:
        if self._heartbeat_thread is None:
            self._heartbeat_thread = threading.Thread(target=self._heartbeat_loop, name="logbroker-heartbeat",
                                                      daemon=True)
            self._heartbeat_thread.start()

    def _heartbeat_loop(self) -> None:
        """Keeps the session alive while the application works between polls; leaves the group when
        it has not polled for ``max_poll_interval_ms`` (the partitions then go to live members)."""
        member = self._member
        interval = max(0.01, member.heartbeat_interval_ms / 1000.0 / 2)
        while not self._stopping.wait(interval):
            with self._lock:
                if self._closed:
                    return
                try:
                    if time.monotonic() - self._last_poll > self._max_poll_interval and member.stable:
                        log.warning("consumer of group %s did not poll within max.poll.interval.ms; leaving the group",
                                    self.group)
                        self._lost_by_timeout = member.leave()
                    else:
                        member.heartbeat_if_due(_monotonic_ms())
                except BrokerClosedError:
                    return
                except LogbrokerError as exc:
                    log.warning("heartbeat for group %s failed: %s", self.group, exc)

    # ---- reading -------------------------------------------------------------------------------

    def poll(self, timeout: float = 0.0, max_records: int | None = None) -> list[Record]:
        """Up to ``max_records`` records, waiting at most ``timeout`` seconds for the first."""
        if self._closed:
            raise BrokerClosedError("the consumer is closed")
        limit = max_records or self._max_poll_records
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                self._last_poll = time.monotonic()
                if self._lost_by_timeout:
                    lost, self._lost_by_timeout = self._lost_by_timeout, []
                    self._give_up(lost, commit=False, lost=True)
                ready = self._drive_group()
                if ready and self._auto_commit and time.monotonic() - self._last_auto_commit >= self._auto_commit_interval:
                    self._try_commit()
                out = self._collect(limit) if ready else []
            if out:
                return out
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            member = self._member
            if not ready and member is not None and member.waiting_for:
                member.service.wait_for_response(min(remaining, 0.1))
            elif not ready:
                time.sleep(min(remaining, 0.01))
            elif self._broker.read_only:
                time.sleep(min(remaining, 0.05))
            else:
                self._broker.wait_for_data(min(remaining, 0.1 if member is not None else 0.5))

    def _collect(self, limit: int) -> list[Record]:
        out: list[Record] = []
        partitions = [tp for tp in self._positions if tp not in self._paused]
        if not partitions:
            return out
        start = self._next % len(partitions)
        self._next += 1
        for tp in partitions[start:] + partitions[:start]:
            if len(out) >= limit:
                break
            buffered = self._buffers.pop(tp, None)
            if buffered is None:
                records = self._fetch(tp)
                if not records:
                    continue
                buffered = (records, 0)
            records, index = buffered
            end = min(len(records), index + limit - len(out))
            if index == 0 and end == len(records) and not out:
                out = records
            else:
                out += records[index:end]
            if end < len(records):
                self._buffers[tp] = (records, end)  # an index, not a copy of the rest
            self._positions[tp] = records[end - 1].offset + 1
        return out

    def _fetch(self, tp: TopicPartition) -> list[Record]:
        position = self._positions.get(tp)
        if position is None:
            position = self._reset_position(tp)
        try:
            info = self._broker.fetch(tp.topic, tp.partition, position, self._fetch_max_bytes)
        except OffsetOutOfRangeError:
            self._reset_position(tp)
            return []
        data = info.records
        records: list[Record] = []
        next_position = position
        for pos, header in iter_batches(data):
            next_position = header.next_offset
            if header.is_control:
                continue
            batch = decode_records(data, pos, header, topic=tp.topic, partition=tp.partition)
            if header.base_offset < position:
                batch = [r for r in batch if r.offset >= position]
            records += batch
        if not records and next_position > position:
            self._positions[tp] = next_position  # only control batches or gaps: step over them
        return records

    def __iter__(self) -> Iterator[Record]:
        while not self._closed:
            yield from self.poll(timeout=1.0)

    def close(self) -> None:
        """Commit (with auto-commit), leave the group so the partitions move at once, stop."""
        if self._closed:
            return
        try:
            with self._lock:
                member = self._member
                if member is not None and member.member_id:
                    if member.stable and not member.rejoin_needed:
                        self._give_up(list(member.owned), commit=self._auto_commit)
                    member.leave()
        except BrokerClosedError:
            pass
        finally:
            self._closed = True
            self._stopping.set()
            if self._committer is not None:
                self._committer.shutdown(wait=True)
            if self._heartbeat_thread is not None and self._heartbeat_thread is not threading.current_thread():
                self._heartbeat_thread.join()


__all__ = ["CommitFailedError", "Consumer", "GroupError", "TopicPartition"]
