"""The share-group service: queues on the log (KIP-932), SharePartitions kept in ``__share_group_state``.

SHARE_GROUPS.md §3.  One ``SharePartition`` per (share group, topic, partition) holds which records are
Available, Acquired (locked to one member until a deadline), Acknowledged or Archived, and how often
each was delivered.  Its durable state is written to the internal compacted topic
``__share_group_state`` (50 partitions, the group's partition chosen as for ``__consumer_offsets``)
as one **full snapshot per share-partition per call**, so compaction keeps exactly the latest state
of each key; replaying the topic from its start on first use rebuilds every share-partition, with
Acquired records Available again and their delivery counts kept.  Record layout: groups/share_state_log.py.

Every call appends what it changed and waits for fsync before it hands out records or answers an
acknowledgement (acquisitions are written before delivery, so a crash never forgets one).  Dead
letters (a reject, or a delivery count at the limit) of a group with a dead-letter topic go through
three durable steps: ARCHIVING in the state log, the copy in the dead-letter topic, then ARCHIVED; a
restart finishes pending ones after looking for copies already made, so each is copied exactly once.

Membership (who is subscribed, epochs, assignments for ShareGroupHeartbeat) lives in memory only, as
SHARE_GROUPS.md §3.14 allows: every member is assigned every partition of its subscribed topics; the
record locks, not the assignment, keep two members from getting the same record.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from dataclasses import asdict, replace
from typing import NamedTuple

from ..errors import InvalidConfigError, InvalidRequestError, KafkaStorageError, LogbrokerError
from ..groups.errors import GROUP_ID_NOT_FOUND, NONE
from ..groups.offsets_log import OFFSETS_TOPIC, partition_for_group
from ..groups.share_membership import HeartbeatResult, ShareMembership
from ..groups.share_partition import (ACCEPT, GAP, INVALID_RECORD_STATE, RELEASE, REJECT, Acquired,
                                      SharePartition)
from ..groups.share_state_log import (SHARE_STATE_CONFIG, SHARE_STATE_PARTITIONS, SHARE_STATE_TOPIC, ShareGroupConfig,
                                      config_key, dead_letter_headers, decode_key, state_key)
from ..records.batch import Record, encode_batch_columns
from .share_reads import copy_dead_letters, dead_letters_in, read_batches, read_records
from ..storage.log import LATEST_TIMESTAMP

log = logging.getLogger(__name__)

_UNCHANGED = object()

__all__ = ["ACCEPT", "GAP", "RELEASE", "REJECT", "HeartbeatResult", "PartitionAcquisition", "SHARE_STATE_TOPIC",
           "ShareGroupConfig", "ShareGroupService", "dead_letter_headers"]


class PartitionAcquisition(NamedTuple):
    topic: str
    partition: int
    acquired: list[Acquired]


class ShareGroupService:
    """Share groups of one Broker.  Thread-safe: one lock; fsync waits happen outside it."""

    def __init__(self, broker):
        self._broker = broker
        self._lock = threading.RLock()
        self._available = threading.Condition()
        self._loaded = False
        self._overrides: dict[str, dict] = {}  # group -> the settings someone set (the rest: default_config)
        self._partitions: dict[tuple[str, str, int], SharePartition] = {}  # (group, topic, partition)
        self._topic_ids: dict[tuple[str, str, int], str] = {}
        self._membership = ShareMembership(self._partition_count)
        self._rotation = 0
        self._listeners: list = []
        self.default_config = ShareGroupConfig()  # for groups nobody configured (``serve`` may change it)
        # per call, under the lock:
        self._dirty: set[tuple[str, str, int]] = set()
        self._config_records: list[tuple[str, bytes | None]] = []  # None: the group is deleted
        self._tombstones: list[tuple[str, bytes]] = []  # (group, state key) of share-partitions forgotten
        self._new_dead_letters: set[tuple[str, str, int]] = set()  # this call made dead letters to copy
        self._retry_dead_letters: set[tuple[str, str, int]] = set()  # copies that failed: retried by tick()
        self._freed = False
        broker.add_data_listener(self._notify_available)

    # ---- plumbing ----------------------------------------------------------------------------

    def _now(self) -> int:
        return self._broker.clock.time_ms()

    def _load_locked(self) -> None:
        if self._loaded:
            return
        broker = self._broker
        states: dict[tuple[str, str, int], tuple[str, bytes]] = {}
        if SHARE_STATE_TOPIC in broker.list_topics():
            for key, value in self._state_records():
                try:
                    decoded = decode_key(key)
                except ValueError:
                    log.warning("skipping a malformed key in %s", SHARE_STATE_TOPIC)
                    continue
                if decoded[0] == "config":
                    if value is None:
                        self._overrides.pop(decoded[1], None)
                        continue
                    try:
                        overrides = ShareGroupConfig.decode_overrides(value)
                        replace(ShareGroupConfig(), **overrides).check()
                    except (ValueError, TypeError, LogbrokerError) as exc:
                        log.warning("ignoring bad settings of share group %r: %s", decoded[1], exc)
                        continue
                    self._overrides[decoded[1]] = overrides
                else:
                    _, group, topic, topic_id, partition = decoded
                    if value is None:
                        states.pop((group, topic, partition), None)
                    else:
                        states[(group, topic, partition)] = (topic_id, value)
        for (group, topic, partition), (topic_id, value) in states.items():
            if topic_id != self._topic_id(topic):  # the topic was deleted (and maybe made again)
                continue
            sp = self._new_partition(group, 0)
            sp.replay(value)
            self._partitions[(group, topic, partition)] = sp
            self._topic_ids[(group, topic, partition)] = topic_id
        self._loaded = True
        if not broker.read_only:
            self._finish_dead_letters_after_restart()

    def _state_records(self):
        broker = self._broker
        for partition in range(broker.partition_count(SHARE_STATE_TOPIC)):
            for record in broker.iter_records(SHARE_STATE_TOPIC, partition):
                if record.key is not None:
                    yield record.key, record.value

    def _topic_id(self, topic: str) -> str | None:
        try:
            return self._broker.topic(topic).topic_id
        except LogbrokerError:
            return None

    def _new_partition(self, group: str, start_offset: int) -> SharePartition:
        config = self._config_of(group)
        return SharePartition(start_offset=start_offset, delivery_count_limit=config.delivery_count_limit,
                              dead_letter_queue=config.dead_letter_topic is not None)

    def _partition_locked(self, group: str, topic: str, partition: int) -> SharePartition:
        """The share-partition, made on first use at the group's auto-offset-reset position."""
        key = (group, topic, partition)
        sp = self._partitions.get(key)
        broker = self._broker
        topic_id = broker.topic(topic).topic_id
        if sp is not None and self._topic_ids.get(key) != topic_id:
            sp = None  # the topic was deleted and made again
        if sp is None:
            config = self._config_of(group)
            when = -2 if config.auto_offset_reset == "earliest" else LATEST_TIMESTAMP
            start = broker.list_offsets(topic, partition, when)[0]
            sp = self._new_partition(group, start)
            self._partitions[key] = sp
            self._topic_ids[key] = topic_id
            self._dirty.add(key)  # the starting point itself is durable
        return sp

    def _append_locked(self, keys) -> list[tuple[int, int]]:
        """Append a snapshot of each share-partition in ``keys`` (and pending config records)."""
        by_partition: dict[int, list[tuple[bytes, bytes | None]]] = defaultdict(list)
        for group, topic, partition in sorted(keys):
            sp = self._partitions[(group, topic, partition)]
            key = state_key(group, topic, self._topic_ids[(group, topic, partition)], partition)
            by_partition[partition_for_group(group)].append((key, sp.snapshot_record()))
        for group, value in self._config_records:
            by_partition[partition_for_group(group)].append((config_key(group), value))
        for group, key in self._tombstones:
            by_partition[partition_for_group(group)].append((key, None))
        self._config_records = []
        self._tombstones = []
        if not by_partition:
            return []
        broker = self._broker
        if SHARE_STATE_TOPIC not in broker.list_topics():
            broker._manager.create_topic(SHARE_STATE_TOPIC, SHARE_STATE_PARTITIONS, dict(SHARE_STATE_CONFIG))
        now = self._now()
        durable = []
        for partition, records in by_partition.items():
            data = encode_batch_columns([k for k, _ in records], [v for _, v in records], None,
                                        [now] * len(records))
            info = broker.log(SHARE_STATE_TOPIC, partition).append(data)
            durable.append((partition, info.last_offset + 1))
        return durable

    def _wait_durable(self, durable) -> None:
        for partition, offset in durable:
            try:
                self._broker.wait_durable(SHARE_STATE_TOPIC, partition, offset)
            except LogbrokerError as exc:
                raise KafkaStorageError(f"the share-group state log could not be written: {exc}") from exc

    def _begin_locked(self) -> None:
        self._load_locked()
        self._dirty: set = set()
        self._config_records: list = []
        self._new_dead_letters = set()
        self._freed = False
        now = self._now()
        self._membership.expire(now)
        self._fire_due_locked(now)

    def _absorb(self, key, result) -> None:
        """Note what a SharePartition call changed; dead letters are copied before the call ends."""
        if result.records:
            self._dirty.add(key)
        if result.dead_letters and self._partitions[key].dead_letter_queue:
            self._new_dead_letters.add(key)

    def _end_locked(self, retry: bool = False):
        """Append the changed state (dead letters copied first), return what to wait for."""
        keys = self._new_dead_letters | (self._retry_dead_letters if retry else set())
        if keys:
            self._settle_dead_letters_locked(keys)
        durable = self._append_locked(self._dirty)
        self._dirty = set()
        return durable

    def _fire_due_locked(self, now: int) -> None:
        for key, sp in list(self._partitions.items()):
            deadline = sp.next_deadline()
            if deadline is not None and deadline <= now:
                result = sp.tick(now)
                self._absorb(key, result)
                self._freed = True

    def _run(self, fn, retry: bool = False):
        """Run ``fn()`` under the lock between _begin and _end; wait for fsync; wake waiters.
        ``retry``: also retry dead-letter copies that failed before (tick)."""
        with self._lock:
            self._begin_locked()
            try:
                answer = fn()
            finally:
                durable = self._end_locked(retry)
                freed = self._freed
        self._wait_durable(durable)
        if freed:
            self._notify_available()
        return answer

    # ---- dead letters ----------------------------------------------------------------------------

    def _settle_dead_letters_locked(self, keys, check_existing: bool = False) -> None:
        """ARCHIVING durable -> copies in the dead-letter topic durable -> ARCHIVED (appended by the
        caller).  A copy that fails (a storage error) stays ARCHIVING and is retried by ``tick``,
        after looking for what the failed attempt did copy; so is every copy a restart finds pending."""
        keys = [k for k in keys if k in self._partitions]
        self._wait_durable(self._append_locked(self._dirty | set(keys)))
        self._dirty = set()
        copied: dict[str, set] = {}
        for key in keys:
            group, topic, partition = key
            sp = self._partitions[key]
            letters = sp.pending_dead_letters()
            dlq = self._config_of(group).dead_letter_topic
            try:
                if dlq is not None and (check_existing or key in self._retry_dead_letters):
                    if dlq not in copied:
                        copied[dlq] = dead_letters_in(self._broker, dlq)
                    letters = [d for d in letters if (group, topic, partition, d.offset) not in copied[dlq]]
                if dlq is not None and letters:
                    copy_dead_letters(self._broker, group, topic, partition, dlq, letters)
            except (LogbrokerError, OSError) as exc:
                log.error("share group %s: could not copy dead letters of %s-%d to %s (retried): %s",
                          group, topic, partition, dlq, exc)
                self._retry_dead_letters.add(key)
                continue
            self._retry_dead_letters.discard(key)
            self._absorb(key, sp.archive([d.offset for d in sp.pending_dead_letters()]))

    def _finish_dead_letters_after_restart(self) -> None:
        """Dead letters that were ARCHIVING at the crash: copy those the dead-letter topic lacks."""
        pending = [key for key, sp in self._partitions.items() if sp.pending_dead_letters()]
        if not pending:
            return
        self._dirty = set()
        self._config_records = []
        self._settle_dead_letters_locked(pending, check_existing=True)
        self._wait_durable(self._append_locked(self._dirty))
        self._dirty = set()

    # ---- configuration ---------------------------------------------------------------------------

    def configure(self, group: str, *, lock_duration_ms: int | None = None, delivery_count_limit: int | None = None,
                  dead_letter_topic=_UNCHANGED, auto_offset_reset: str | None = None,
                  unset: tuple[str, ...] = (), validate_only: bool = False) -> ShareGroupConfig:
        """Change the given settings of ``group`` (durably); the others keep their values.  ``unset``
        names settings (ShareGroupConfig fields) that go back to following the defaults.
        ``validate_only`` runs every check and returns the settings the group would get, changing
        nothing (IncrementalAlterConfigs' validate_only)."""
        _check_group(group)
        unknown = set(unset) - set(ShareGroupConfig.__dataclass_fields__)
        if unknown:
            raise InvalidConfigError(f"unknown share group settings {sorted(unknown)}")
        if self._is_classic_group(group):
            raise InvalidRequestError(f"{group!r} is a consumer group, not a share group")
        changes = {}
        if lock_duration_ms is not None:
            changes["lock_duration_ms"] = int(lock_duration_ms)
        if delivery_count_limit is not None:
            changes["delivery_count_limit"] = int(delivery_count_limit)
        if dead_letter_topic is not _UNCHANGED:
            changes["dead_letter_topic"] = dead_letter_topic or None
        if auto_offset_reset is not None:
            changes["auto_offset_reset"] = auto_offset_reset
        if changes.get("dead_letter_topic") is not None:
            from ..config import validate_topic_name

            validate_topic_name(changes["dead_letter_topic"])
            if changes["dead_letter_topic"].startswith("__"):
                raise InvalidConfigError("a dead-letter topic cannot be an internal topic")

        def call():
            overrides = {k: v for k, v in self._overrides.get(group, {}).items() if k not in unset}
            overrides.update(changes)
            if overrides.get("dead_letter_topic", "") is None:
                del overrides["dead_letter_topic"]  # none: as the default says
            new = replace(self.default_config, **overrides).check()
            if validate_only:
                return new
            if overrides != self._overrides.get(group):
                self._overrides[group] = overrides
                self._config_records.append((group, ShareGroupConfig.encode_overrides(overrides)))
                for (g, _t, _p), sp in self._partitions.items():
                    if g == group:
                        sp.delivery_count_limit = new.delivery_count_limit
                        sp.dead_letter_queue = new.dead_letter_topic is not None
            return new

        return self._run(call)

    def config(self, group: str) -> ShareGroupConfig:
        """The group's settings: those set for it, the service's ``default_config`` for the rest."""
        with self._lock:
            self._load_locked()
            return self._config_of(group)

    def overrides(self, group: str) -> dict:
        """The settings set for ``group`` itself (ShareGroupConfig field names); the others follow
        ``default_config``.  Empty for a group nobody configured."""
        with self._lock:
            self._load_locked()
            return dict(self._overrides.get(group, {}))

    def _config_of(self, group: str) -> ShareGroupConfig:
        return replace(self.default_config, **self._overrides.get(group, {}))

    # ---- membership ------------------------------------------------------------------------------

    def heartbeat(self, group: str, member_id: str, member_epoch: int, topics: list[str] | None,
                  *, embedded: bool = False) -> HeartbeatResult:
        """ShareGroupHeartbeat (SHARE_GROUPS.md §3.10, share_membership.py)."""
        _check_group(group, member_id)
        if self._is_classic_group(group):
            return HeartbeatResult(GROUP_ID_NOT_FOUND, member_epoch, self._membership.heartbeat_interval_ms, None)
        if member_epoch == 0 and topics and group not in self.list_groups():
            self.configure(group)  # the group exists (durably) from its first member on
        with self._lock:
            return self._membership.heartbeat(self._now(), group, member_id, member_epoch, topics, embedded)

    def is_consumer_group(self, group: str) -> bool:
        """Whether ``group`` is a classic consumer group of this broker (then it is no share group)."""
        return self._is_classic_group(group)

    def _is_classic_group(self, group: str) -> bool:
        broker = self._broker
        if broker._groups is None and OFFSETS_TOPIC not in broker.list_topics():
            return False  # no consumer group was ever stored: no need to start the group service
        return any(g == group for g, _, _ in broker.groups.list_groups())

    def _partition_count(self, topic: str) -> int | None:
        try:
            return self._broker.partition_count(topic)
        except LogbrokerError:
            return None

    def join(self, group: str, member_id: str, topics: list[str]) -> None:
        """An embedded member (a ``Queue``): it never expires; ``leave`` ends it."""
        result = self.heartbeat(group, member_id, 0, list(topics), embedded=True)
        if result.error_code == GROUP_ID_NOT_FOUND:
            raise InvalidRequestError(f"{group!r} is a consumer group, not a share group")
        if result.error_code:
            raise InvalidRequestError(f"cannot join share group {group!r} (error {result.error_code})")

    def leave(self, group: str, member_id: str) -> None:
        self.release_member(group, member_id)
        with self._lock:
            self._membership.leave(group, member_id)

    # ---- delivery --------------------------------------------------------------------------------

    def acquire(self, group: str, member_id: str, partitions: list[tuple[str, int]], max_records: int,
                lock_duration_ms: int | None = None, session: object = None) -> list[PartitionAcquisition]:
        """Acquire up to ``max_records`` Available records across ``partitions``; durable before return.
        ``session`` tags the locks (a share session's token) for ``release_member``."""
        _check_group(group, member_id)
        if max_records <= 0 or not member_id:
            raise InvalidRequestError("acquire needs a member id and max_records > 0")
        broker = self._broker
        for topic, partition in partitions:
            broker.log(topic, partition)  # UnknownTopicOrPartitionError before anything changes
        if self._is_classic_group(group):
            raise InvalidRequestError(f"{group!r} is a consumer group, not a share group")

        def call():
            config = self._config_of(group)
            lock_ms = config.lock_duration_ms if lock_duration_ms is None else int(lock_duration_ms)
            now = self._now()
            out = []
            remaining = max_records
            if not partitions:
                return out
            self._rotation = (self._rotation + 1) % len(partitions)
            for topic, partition in partitions[self._rotation:] + partitions[:self._rotation]:
                if remaining <= 0:
                    break
                key = (group, topic, partition)
                try:
                    sp = self._partition_locked(group, topic, partition)
                    log_start = broker.list_offsets(topic, partition, -2)[0]
                    high_watermark = broker.list_offsets(topic, partition, LATEST_TIMESTAMP)[0]
                except LogbrokerError as exc:  # deleted since the check above: skip it
                    log.warning("share group %s: %s-%d is gone: %s", group, topic, partition, exc)
                    continue
                if log_start > sp.start_offset:
                    self._absorb(key, sp.advance_start(log_start))
                result = sp.acquire(now, member_id, range(sp.start_offset, high_watermark), remaining, lock_ms,
                                    session)
                self._absorb(key, result)
                if result.error_code:  # the arguments were checked above: not expected
                    log.error("acquire on %s-%d refused with error %d", topic, partition, result.error_code)
                if result.acquired:
                    out.append(PartitionAcquisition(topic, partition, result.acquired))
                    remaining -= len(result.acquired)
            return out

        return self._run(call)

    def read(self, topic: str, partition: int, acquired: list[Acquired]) -> list[Record]:
        """The records at the acquired offsets that have one (compacted-away offsets have none)."""
        return read_records(self._broker, topic, partition, [a.offset for a in acquired])

    def read_batches(self, topic: str, partition: int, acquired: list[Acquired], max_bytes: int = 1 << 26) -> bytes:
        """The stored batches holding the acquired offsets, as they are on disk (for ShareFetch)."""
        return read_batches(self._broker, topic, partition, [a.offset for a in acquired], max_bytes)

    def acknowledge(self, group: str, member_id: str, acks: dict[tuple[str, int], list[tuple[int, int | None, int]]],
                    delay_ms: int = 0) -> dict[tuple[str, int], int]:
        """Per partition 0, INVALID_RECORD_STATE (121) or INVALID_REQUEST (42); all or nothing per
        partition; durable (and dead letters copied) before it returns."""
        _check_group(group)

        def call():
            now = self._now()
            codes = {}
            for (topic, partition), items in acks.items():
                sp = self._partitions.get((group, topic, partition))
                if sp is None:
                    codes[(topic, partition)] = INVALID_RECORD_STATE
                    continue
                result = sp.acknowledge_many(now, member_id, items, delay_ms)
                self._absorb((group, topic, partition), result)
                codes[(topic, partition)] = result.error_code
                if result.error_code == NONE:
                    self._freed = True  # a release, or a start offset moving past a full window
            return codes

        return self._run(call)

    def return_unsent(self, group: str, member_id: str, topic: str, partition: int, offsets) -> None:
        """Acquired records the member was never sent (no room in a response): Available again at once,
        without counting the delivery."""
        def call():
            sp = self._partitions.get((group, topic, partition))
            if sp is not None:
                self._absorb((group, topic, partition), sp.unacquire(self._now(), member_id, offsets))
                self._freed = True

        self._run(call)

    def extend(self, group: str, member_id: str, topic: str, partition: int, offset: int, delivery_id: int | None,
               extra_ms: int) -> int:
        def call():
            sp = self._partitions.get((group, topic, partition))
            if sp is None:
                return INVALID_RECORD_STATE
            return sp.extend(self._now(), member_id, offset, delivery_id, int(extra_ms)).error_code

        return self._run(call)

    def release_member(self, group: str, member_id: str, partitions: list[tuple[str, int]] | None = None,
                       session: object = None) -> None:
        """The member's share session ended (or it forgot ``partitions``): every record it holds there
        (acquired by ``session``, if given: a late release never touches a newer session's) is released."""
        wanted = None if partitions is None else set(partitions)

        def call():
            now = self._now()
            for (g, topic, partition), sp in list(self._partitions.items()):
                if g == group and (wanted is None or (topic, partition) in wanted):
                    if sp.holds_any(member_id, session):
                        self._absorb((g, topic, partition), sp.release_member(now, member_id, session))
                        self._freed = True

        self._run(call)

    def tick(self) -> None:
        """Fire expired locks and ended release delays, retry failed dead-letter copies (housekeeping
        calls this every second)."""
        if self._broker.read_only:
            return
        self._run(lambda: None, retry=True)

    def next_deadline(self) -> int | None:
        with self._lock:
            times = [d for d in (sp.next_deadline() for sp in self._partitions.values()) if d is not None]
            return min(times, default=None)

    # ---- waiting ---------------------------------------------------------------------------------

    def add_listener(self, listener) -> None:
        """Call ``listener()`` when records may have become available (quick, thread-safe)."""
        with self._available:
            self._listeners.append(listener)

    def remove_listener(self, listener) -> None:
        with self._available:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def _notify_available(self) -> None:
        with self._available:
            self._available.notify_all()
            listeners = list(self._listeners)
        for listener in listeners:
            listener()

    def wait_for_records(self, timeout: float) -> None:
        """Sleep until records may be available (new data, a release, a lock expiry) or ``timeout``."""
        deadline = self.next_deadline()
        if deadline is not None:
            timeout = min(timeout, max(0.0, (deadline - self._now()) / 1000.0) + 0.001)
        with self._available:
            self._available.wait(max(0.0, timeout))
        if deadline is not None and deadline <= self._now():
            self.tick()

    def delete_group(self, group: str) -> None:
        """Forget a share group: its settings and the state of its partitions (tombstones in the state
        log, which compaction then drops).  Refused while it has members or holds records."""
        _check_group(group)

        def call():
            if group not in self.list_groups():
                raise InvalidRequestError(f"no share group {group!r}")
            keys = [k for k in self._partitions if k[0] == group]
            if self._membership.members(group) or any(self._partitions[k].held_offsets() for k in keys):
                raise InvalidRequestError(f"share group {group!r} has members or records in flight; "
                                          f"close its consumers first")
            for key in keys:
                self._tombstones.append((group, state_key(group, key[1], self._topic_ids.pop(key), key[2])))
                del self._partitions[key]
                self._dirty.discard(key)
                self._retry_dead_letters.discard(key)
            self._overrides.pop(group, None)
            self._config_records.append((group, None))

        self._run(call)

    # ---- reporting -------------------------------------------------------------------------------

    def list_groups(self) -> list[str]:
        with self._lock:
            self._load_locked()
            names = set(self._overrides) | {g for g, _, _ in self._partitions} | set(self._membership.groups())
            return sorted(names)

    def describe(self, group: str) -> dict:
        with self._lock:
            self._load_locked()
            if group not in self.list_groups():
                raise InvalidRequestError(f"no share group {group!r}")
            now = self._now()
            config = self._config_of(group)
            members = [{"member_id": m.member_id, "member_epoch": m.epoch, "topics": list(m.topics),
                        "embedded": m.embedded} for m in self._membership.members(group)]
            keys = sorted(k for k in self._partitions if k[0] == group)
            snapshot = [(k, self._partitions[k]) for k in keys]
        broker = self._broker
        partitions = []
        for (_, topic, partition), sp in snapshot:
            try:
                log_end = broker.list_offsets(topic, partition, LATEST_TIMESTAMP)[0]
            except LogbrokerError:
                continue
            with self._lock:
                summary = sp.summary(log_end, now)
                start = sp.start_offset
            first = summary.pop("first_available_offset")
            age = None
            if first is not None:
                records = self.read(topic, partition, [Acquired(first, 0, 0)])
                age = max(0, now - records[0].timestamp) if records else None
            partitions.append({"topic": topic, "partition": partition, "start_offset": start,
                               "log_end_offset": log_end,
                               "lag": max(0, log_end - start) - summary["acknowledged"] - summary["archived"],
                               "oldest_available_offset": first, "oldest_available_age_ms": age, **summary})
        return {"group": group, "config": asdict(config), "members": members, "partitions": partitions}


MAX_ID_BYTES = 32767  # group and member ids are Kafka strings (int16 length)


def _check_group(group: str, member_id: str | None = None) -> None:
    if not isinstance(group, str) or not group or len(group.encode()) > MAX_ID_BYTES:
        raise InvalidRequestError(f"a share group id is 1..{MAX_ID_BYTES} bytes of UTF-8")
    if member_id is not None and (not isinstance(member_id, str) or len(member_id.encode()) > MAX_ID_BYTES):
        raise InvalidRequestError(f"a member id is at most {MAX_ID_BYTES} bytes of UTF-8")
