"""The embedded broker: topics and partitions, produce / fetch / list-offsets as plain methods.

``Broker.open(path)`` owns a data directory (exclusive lock) unless opened ``read_only``; it is what
the Python API, the CLI and (later) the network server all call.  Every method validates its input
and raises errors from ``logbroker.errors``; nothing invalid reaches the file system.
"""

from __future__ import annotations

import logging
import os
import threading

from ..clock import SYSTEM_CLOCK
from ..config import TOPIC_CONFIGS, LogConfig, default_config_strings, validate_overrides, validate_topic_name
from ..errors import (BrokerClosedError, InvalidConfigError, InvalidPartitionsError, InvalidRequestError,
                      InvalidTopicError, LogbrokerError, ReadOnlyError)
from ..groups.share_state_log import SHARE_STATE_TOPIC  # the share-group service's log (broker/shares.py)
from ..records.batch import decode_records, iter_batches, validate_produced
from ..storage.cleaner import compact_log
from ..storage.files import atomic_write
from ..storage.log import EARLIEST_TIMESTAMP, LATEST_TIMESTAMP, AppendInfo, PartitionLog, ReadInfo
from ..storage.log_manager import METADATA_DIR, LogManager, TopicMetadata, new_topic_id

OFFSETS_TOPIC = "__consumer_offsets"  # the group coordinator's log (groups/offsets_log.py)
INTERNAL_TOPICS = (OFFSETS_TOPIC, SHARE_STATE_TOPIC)

log = logging.getLogger(__name__)

MAX_PARTITIONS = 10_000
CLUSTER_ID_FILE = os.path.join(os.path.dirname(METADATA_DIR), "cluster-id")  # .metadata/cluster-id
DEFAULT_RETENTION_CHECK_INTERVAL_MS = 300_000


class Broker:
    """One data directory, opened for writing (the default) or read-only."""

    def __init__(self, manager: LogManager, *, clock=SYSTEM_CLOCK, housekeeping: bool = False,
                 retention_check_interval_ms: int = DEFAULT_RETENTION_CHECK_INTERVAL_MS):
        self._manager = manager
        self.clock = clock
        self.data_dir = manager.data_dir
        self.read_only = manager.read_only
        self._data_cond = threading.Condition()
        self._data_listeners: list = []
        self._cluster_id: str | None = None
        self._closed = False
        self._retention_check_interval_ms = retention_check_interval_ms
        self._last_retention_check_ms = clock.time_ms()
        self._stop = threading.Event()
        self._flush_requests: set[PartitionLog] = set()
        self._flush_cond = threading.Condition()
        self._flusher: threading.Thread | None = None
        self._housekeeper = None
        self._groups = None
        self._shares = None
        self._shares_lock = threading.Lock()
        if housekeeping and not self.read_only:
            self._housekeeper = threading.Thread(target=self._housekeeping_loop, name="logbroker-housekeeping",
                                                 daemon=True)
            self._housekeeper.start()

    @classmethod
    def open(cls, path: str = "data", *, read_only: bool = False, clock=SYSTEM_CLOCK, housekeeping: bool = True,
             retention_check_interval_ms: int = DEFAULT_RETENTION_CHECK_INTERVAL_MS,
             listen: str | None = None) -> "Broker":
        """Open (creating if needed) the data directory at ``path``.

        A writer takes the directory's lock (DataDirLockedError names the owner if another process
        has it) and recovers every partition after an unclean shutdown; ``recovery_reports`` then
        says what was dropped.  ``read_only=True`` takes no lock and changes nothing on disk.
        """
        manager = LogManager(path, read_only=read_only, clock=clock, listen=listen)
        return cls(manager, clock=clock, housekeeping=housekeeping,
                   retention_check_interval_ms=retention_check_interval_ms)

    def __enter__(self) -> "Broker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def recovery_reports(self):
        return list(self._manager.recovery_reports)

    def _check_open(self) -> None:
        if self._closed:
            raise BrokerClosedError("the broker is closed")

    def _require_writable(self) -> None:
        self._check_open()
        if self.read_only:
            raise ReadOnlyError(f"{self.data_dir} was opened read-only")

    @property
    def groups(self):
        """The consumer-group service (GroupService), created on first use."""
        if self._groups is None:
            self.configure_groups()
        return self._groups

    def configure_groups(self, *, initial_rebalance_delay_ms: int = 0, members_survive_restart: bool = False):
        """Set up the group service before first use (the network server keeps the members a restart
        finds in the offsets log, since remote clients reconnect; embedded ones died with the process)."""
        from .groups import GroupService

        if self._groups is not None:
            raise InvalidRequestError("the group service is already running")
        self._groups = GroupService(self, initial_rebalance_delay_ms=initial_rebalance_delay_ms,
                                    members_survive_restart=members_survive_restart)
        return self._groups

    @property
    def shares(self):
        """The share-group service (ShareGroupService: queues on the log), created on first use."""
        if self._shares is None:
            from .shares import ShareGroupService

            with self._shares_lock:
                if self._shares is None:
                    self._shares = ShareGroupService(self)
        return self._shares

    # ---- topics ------------------------------------------------------------------------------

    def create_topic(self, name: str, partitions: int = 1, config: dict | None = None) -> TopicMetadata:
        """Create a topic with ``partitions`` partitions and config overrides (Kafka names)."""
        self._require_writable()
        validate_topic_name(name)
        _refuse_internal(name, "create")
        if not isinstance(partitions, int) or not 1 <= partitions <= MAX_PARTITIONS:
            raise InvalidPartitionsError(f"partitions must be between 1 and {MAX_PARTITIONS}, got {partitions!r}")
        overrides = validate_overrides(config or {})
        LogConfig.from_overrides(overrides)
        return self._manager.create_topic(name, partitions, overrides)

    def delete_topic(self, name: str) -> None:
        self._require_writable()
        validate_topic_name(name)
        _refuse_internal(name, "delete")
        self._manager.delete_topic(name)

    def list_topics(self) -> list[str]:
        self._check_open()
        return sorted(self._manager.topics)

    def topic(self, name: str) -> TopicMetadata:
        self._check_open()
        validate_topic_name(name)
        return self._manager.topic(name)

    def partition_count(self, name: str) -> int:
        return self.topic(name).partitions

    def describe_topic(self, name: str) -> dict:
        """Topic id, effective config and each partition's offsets and size."""
        meta = self.topic(name)
        effective = default_config_strings()
        effective.update(meta.config)
        partitions = []
        for p in range(meta.partitions):
            stats = self._manager.get_log(name, p).statistics()
            del stats["topic"]
            partitions.append(stats)
        return {"name": meta.name, "topic_id": meta.topic_id, "partitions": partitions,
                "config": effective, "overrides": dict(meta.config)}

    def alter_topic_config(self, name: str, set: dict | None = None, delete: list | None = None) -> dict[str, str]:
        """Set and/or remove config overrides; return the topic's overrides afterwards."""
        self._require_writable()
        _refuse_internal(name, "reconfigure")
        meta = self.topic(name)
        overrides = dict(meta.config)
        for key in delete or ():
            if key not in TOPIC_CONFIGS:
                raise InvalidConfigError(f"unknown topic config {key!r}")
            overrides.pop(key, None)
        overrides.update(validate_overrides(set or {}))
        LogConfig.from_overrides(overrides)
        return self._manager.alter_config(name, overrides).config

    def create_partitions(self, name: str, total: int) -> None:
        self._require_writable()
        self.topic(name)
        if not isinstance(total, int) or not 1 <= total <= MAX_PARTITIONS:
            raise InvalidPartitionsError(f"partition count must be between 1 and {MAX_PARTITIONS}, got {total!r}")
        self._manager.add_partitions(name, total)

    def log(self, topic: str, partition: int) -> PartitionLog:
        """The partition's log (raises UnknownTopicOrPartitionError)."""
        self._check_open()
        return self._manager.get_log(topic, partition)

    # ---- produce / fetch ---------------------------------------------------------------------

    def append(self, topic: str, partition: int, records: bytes) -> AppendInfo:
        """Validate and append a producer's batches without waiting for fsync."""
        self._require_writable()
        if topic in INTERNAL_TOPICS:
            _refuse_internal(topic, "append to")
        partition_log = self.log(topic, partition)
        batches = validate_produced(records, max_message_bytes=partition_log.config.max_message_bytes)
        info = partition_log.append(records, batches=batches)
        if not partition_log.config.sync_on_append:
            self._notify_data()
        return info

    def wait_durable(self, topic: str, partition: int, offset: int | None = None) -> None:
        """Block until the partition is fsynced below ``offset`` (the log end by default)."""
        partition_log = self.log(topic, partition)
        if partition_log.config.sync_on_append:
            partition_log.wait_durable(offset)
            self._notify_data()

    def produce(self, topic: str, partition: int, records: bytes, *, acks: int | str = -1) -> AppendInfo:
        """Append and, unless ``acks=0``, return only once the topic's durability rule holds.

        With ``acks=0`` the append is fsynced soon by the broker's flusher thread (group commit),
        so the records become visible to consumers without anyone waiting.
        """
        info = self.append(topic, partition, records)
        if acks in (0, "0"):
            self.flush_soon(topic, partition)
        else:
            self.wait_durable(topic, partition, info.last_offset + 1)
        return info

    def init_producer_id(self) -> tuple[int, int]:
        """A fresh (producer id, epoch) for an idempotent producer; ids are never reused."""
        self._require_writable()
        return self._manager.allocate_producer_id(), 0

    def flush_soon(self, topic: str, partition: int) -> None:
        """Ask the flusher thread to fsync the partition (nobody waits for it)."""
        partition_log = self.log(topic, partition)
        if not partition_log.config.sync_on_append:
            return
        with self._flush_cond:
            self._flush_requests.add(partition_log)
            if self._flusher is None:
                self._flusher = threading.Thread(target=self._flusher_loop, name="logbroker-flusher", daemon=True)
                self._flusher.start()
            self._flush_cond.notify()

    def _flusher_loop(self) -> None:
        while True:
            with self._flush_cond:
                while not self._flush_requests and not self._stop.is_set():
                    self._flush_cond.wait()
                if not self._flush_requests:
                    return
                logs, self._flush_requests = self._flush_requests, set()
            for partition_log in logs:
                try:
                    if not partition_log.closed:
                        partition_log.wait_durable()
                except Exception:  # the next request retries; appends report disk errors themselves
                    log.exception("background flush of %s failed", partition_log.directory)
            self._notify_data()

    def fetch(self, topic: str, partition: int, offset: int, max_bytes: int = 1 << 20) -> ReadInfo:
        """Raw batches from ``offset`` (the batch holding it first) up to about ``max_bytes``."""
        if max_bytes < 0:
            raise InvalidRequestError(f"max_bytes must be >= 0, got {max_bytes}")
        partition_log = self.log(topic, partition)
        if self.read_only:
            self._manager.refresh_log(partition_log)
        return partition_log.read(offset, max_bytes)

    def iter_records(self, topic: str, partition: int):
        """Every record (control records skipped) from the log start offset to the high watermark, in
        order: how the internal logs are replayed."""
        offset = self.list_offsets(topic, partition, -2)[0]
        end = self.list_offsets(topic, partition, LATEST_TIMESTAMP)[0]
        while offset < end:
            info = self.fetch(topic, partition, offset, 1 << 20)
            next_offset = offset
            for pos, header in iter_batches(info.records):
                next_offset = header.next_offset
                if header.is_control:
                    continue
                for record in decode_records(info.records, pos, header, topic=topic, partition=partition):
                    if record.offset >= offset:
                        yield record
            if next_offset <= offset:
                break
            offset = next_offset

    def list_offsets(self, topic: str, partition: int, timestamp: int) -> tuple[int, int] | None:
        """-2: (log start offset, -1); -1: (high watermark, -1); else the first (offset, timestamp)
        whose timestamp is >= ``timestamp``, or None when there is none."""
        partition_log = self.log(topic, partition)
        if self.read_only:
            self._manager.refresh_log(partition_log)
        return partition_log.offset_for_timestamp(timestamp)

    def delete_records(self, topic: str, partition: int, offset: int) -> int:
        """Move the log start offset up to ``offset``; return the new log start offset."""
        self._require_writable()
        _refuse_internal(topic, "delete records of")
        return self.log(topic, partition).delete_records(offset)

    def wait_for_data(self, timeout: float) -> None:
        """Sleep until some partition's high watermark may have moved, or ``timeout`` seconds pass."""
        with self._data_cond:
            self._data_cond.wait(timeout)

    def add_data_listener(self, listener) -> None:
        """Call ``listener()`` (from whichever thread moved it, so it must be quick and thread-safe)
        whenever some partition's high watermark may have moved: the network server's long-poll
        fetches wait on this instead of parking a thread in ``wait_for_data``."""
        with self._data_cond:
            self._data_listeners.append(listener)

    def remove_data_listener(self, listener) -> None:
        with self._data_cond:
            if listener in self._data_listeners:
                self._data_listeners.remove(listener)

    def _notify_data(self) -> None:
        with self._data_cond:
            self._data_cond.notify_all()
            listeners = list(self._data_listeners)
        for listener in listeners:
            listener()

    def cluster_id(self) -> str:
        """This data directory's stable cluster id (Kafka's ``cluster.id``: 16 random bytes in URL-safe
        base64), made and persisted in ``.metadata/cluster-id`` on first use."""
        if self._cluster_id is None:
            path = os.path.join(self.data_dir, CLUSTER_ID_FILE)
            try:
                with open(path, encoding="ascii") as fh:
                    self._cluster_id = fh.read().strip() or None
            except (FileNotFoundError, UnicodeDecodeError):
                pass
            if self._cluster_id is None:
                cluster_id = new_topic_id()
                if not self.read_only:
                    atomic_write(path, cluster_id.encode() + b"\n")
                self._cluster_id = cluster_id
        return self._cluster_id

    # ---- housekeeping ------------------------------------------------------------------------

    def run_housekeeping(self, now_ms: int | None = None, *, force: bool = False) -> dict:
        """Time-based flushes, retention and compaction.  Returns what was done, per partition."""
        self._require_writable()
        now_ms = self.clock.time_ms() if now_ms is None else now_ms
        done: dict = {"deleted_segments": {}, "compacted": {}}
        due = force or now_ms - self._last_retention_check_ms >= self._retention_check_interval_ms
        for key, partition_log in list(self._manager.logs.items()):
            if partition_log.closed:
                continue
            try:  # one partition's trouble must not stop the others' housekeeping
                partition_log.maybe_flush(now_ms)
                if not due:
                    continue
                deleted = partition_log.apply_retention(now_ms)
                if deleted:
                    done["deleted_segments"][key] = deleted
                if partition_log.config.compact:
                    stats = compact_log(partition_log, now_ms, force=force)
                    if stats is not None:
                        done["compacted"][key] = stats
            except (LogbrokerError, OSError) as exc:
                done.setdefault("errors", {})[key] = str(exc)
                log.warning("housekeeping of %s-%d failed: %s", key[0], key[1], exc)
        if due:
            self._last_retention_check_ms = now_ms
            try:
                self._manager.checkpoint()
            except OSError as exc:
                log.warning("could not write checkpoints: %s", exc)
        return done

    def _housekeeping_loop(self) -> None:
        while not self._stop.wait(1.0):
            for step in (self._tick_groups, self.run_housekeeping):
                try:  # one step's trouble must not stop the others
                    step()
                except BrokerClosedError:
                    return
                except Exception:  # keep the thread alive; the next round retries
                    log.exception("housekeeping failed")

    def _tick_groups(self) -> None:
        if self._groups is not None:
            self._groups.tick()
        if self._shares is not None:
            self._shares.tick()

    def close(self) -> None:
        """Flush and close every partition, checkpoint, write the clean-shutdown marker, unlock."""
        if self._closed:
            return
        self._stop.set()
        if self._housekeeper is not None:
            self._housekeeper.join()
        with self._flush_cond:
            self._flush_cond.notify_all()
        if self._flusher is not None:
            self._flusher.join()
        self._closed = True
        self._manager.close()
        self._notify_data()


def _refuse_internal(name: str, action: str) -> None:
    if name in INTERNAL_TOPICS:
        owner = "the group coordinator" if name == OFFSETS_TOPIC else "the share-group service"
        raise InvalidTopicError(f"cannot {action} the internal topic {name} ({owner} owns it)")


__all__ = ["Broker", "EARLIEST_TIMESTAMP", "LATEST_TIMESTAMP"]
