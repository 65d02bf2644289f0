"""The data directory: every partition log, topic metadata, checkpoints, the lock and the marker.

Layout of ``<data>/``::

    .lock                               owner pid (lock.py)
    .kafka_cleanshutdown                present only after a clean shutdown (skips recovery)
    recovery-point-offset-checkpoint    Kafka's text format: "0", count, "topic partition offset"
    log-start-offset-checkpoint         same format
    cleaner-offset-checkpoint           same format: below it a compacted log may have offset gaps
    .metadata/topics/<name>.json        {"name", "topic_id" (16 random bytes, base64url), "partitions", "config"}
    .metadata/producer-ids              "version: 0" and "block_end: N": producer ids below N may have been
                                        handed out; the next block starts there
    <topic>-<partition>/                one PartitionLog each (log.py)

Invariants: topic metadata is written atomically (temp file, fsync, rename, fsync directory) before
any partition directory exists, and removed only after its partition directories were renamed to
``*-delete`` (which startup finishes deleting), so a crash never leaves a half-made or half-deleted
topic visible.  The marker is removed as soon as a writer opens the directory and rewritten last at
close, after the checkpoints.  Producer ids are handed out in blocks of 1000: the end of a new block
is written (atomically) before its first id is returned, so no id is ever handed out twice, across
crashes too (a crash only skips the rest of a block).  Topic names reaching this module were
validated by the caller.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import shutil
import threading
import uuid

from ..clock import SYSTEM_CLOCK
from ..config import PRODUCER_ID_EXPIRATION_MS, LogConfig, validate_topic_name
from ..errors import (InvalidPartitionsError, KafkaStorageError, OffsetOutOfRangeError, ReadOnlyError,
                      TopicAlreadyExistsError, UnknownTopicOrPartitionError)
from .files import atomic_write, fsync_dir, read_checkpoint, write_checkpoint
from .lock import DataDirLock
from .log import PartitionLog, RecoveryReport, partition_dir_name

log = logging.getLogger(__name__)

CLEAN_SHUTDOWN_MARKER = ".kafka_cleanshutdown"
RECOVERY_POINT_CHECKPOINT = "recovery-point-offset-checkpoint"
LOG_START_OFFSET_CHECKPOINT = "log-start-offset-checkpoint"
CLEANER_OFFSET_CHECKPOINT = "cleaner-offset-checkpoint"
METADATA_DIR = os.path.join(".metadata", "topics")
PRODUCER_IDS_FILE = os.path.join(".metadata", "producer-ids")
PRODUCER_ID_BLOCK_SIZE = 1000
DELETE_SUFFIX = "-delete"


def new_topic_id() -> str:
    """A random 16-byte topic id, written as Kafka writes Uuids: URL-safe base64 without padding."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


class TopicMetadata:
    __slots__ = ("name", "topic_id", "partitions", "config")

    def __init__(self, name: str, topic_id: str, partitions: int, config: dict[str, str]):
        self.name = name
        self.topic_id = topic_id
        self.partitions = partitions
        self.config = dict(config)

    def to_json(self) -> dict:
        return {"name": self.name, "topic_id": self.topic_id, "partitions": self.partitions, "config": self.config}

    @classmethod
    def from_json(cls, data: dict) -> "TopicMetadata":
        return cls(validate_topic_name(data["name"]), str(data["topic_id"]), int(data["partitions"]),
                   {str(k): str(v) for k, v in data.get("config", {}).items()})

    @property
    def log_config(self) -> LogConfig:
        return LogConfig.from_overrides(self.config)


def _raise_open_file_limit() -> None:
    """Lift the soft limit on open files to the hard limit, as Kafka's start scripts advise."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ImportError, ValueError, OSError):
        pass


class LogManager:
    """Opens, creates and deletes partition logs under one data directory."""

    def __init__(self, data_dir: str, *, read_only: bool = False, clock=SYSTEM_CLOCK, listen: str | None = None,
                 force_recovery: bool = False, producer_id_expiration_ms: int = PRODUCER_ID_EXPIRATION_MS):
        """``force_recovery`` recovers every segment of every partition, as after an unclean shutdown
        with no checkpoint (``logbroker inspect repair``).  ``producer_id_expiration_ms`` is Kafka's
        ``producer.id.expiration.ms`` for every partition."""
        self.force_recovery = force_recovery and not read_only
        self.data_dir = os.path.abspath(data_dir)
        self.read_only = read_only
        self.clock = clock
        self.topics: dict[str, TopicMetadata] = {}
        self.logs: dict[tuple[str, int], PartitionLog] = {}
        self.recovery_reports: list[RecoveryReport] = []
        self.producer_id_expiration_ms = producer_id_expiration_ms
        self._next_producer_id = self._producer_id_block_end = 0  # no block yet: read the file first
        self._lock = threading.RLock()
        # guards only the checkpoint files; never held while taking a partition's lock (a partition
        # calls back into _checkpoint_changed with its own lock held)
        self._checkpoint_lock = threading.Lock()
        self._dir_lock = None
        _raise_open_file_limit()  # every segment keeps its .log open
        if not read_only:
            os.makedirs(os.path.join(self.data_dir, METADATA_DIR), exist_ok=True)
            self._dir_lock = DataDirLock(self.data_dir)
            self._dir_lock.acquire(listen=listen)
        try:
            self._open_all()
        except BaseException:
            if self._dir_lock:
                self._dir_lock.release()
            raise

    def _path(self, *parts: str) -> str:
        return os.path.join(self.data_dir, *parts)

    def _open_all(self) -> None:
        marker = self._path(CLEAN_SHUTDOWN_MARKER)
        # A read-only open never recovers (it may sit next to a running owner, whose tail is in
        # motion): it loads every segment as trusted, which still checks indexes and each tail.
        clean = (os.path.exists(marker) or self.read_only) and not self.force_recovery
        if not self.read_only:
            if os.path.exists(marker):
                os.unlink(marker)
                fsync_dir(self.data_dir)
            for name in os.listdir(self.data_dir):
                if name.endswith(DELETE_SUFFIX) and os.path.isdir(self._path(name)):
                    shutil.rmtree(self._path(name), ignore_errors=True)
        self.clean_start = clean
        recovery_points = {} if self.force_recovery else read_checkpoint(self._path(RECOVERY_POINT_CHECKPOINT))
        start_offsets = read_checkpoint(self._path(LOG_START_OFFSET_CHECKPOINT))
        cleaner_offsets = read_checkpoint(self._path(CLEANER_OFFSET_CHECKPOINT))
        meta_dir = self._path(METADATA_DIR)
        names = sorted(os.listdir(meta_dir)) if os.path.isdir(meta_dir) else []
        for name in names:
            if not name.endswith(".json"):
                continue
            with open(os.path.join(meta_dir, name), encoding="utf-8") as fh:
                meta = TopicMetadata.from_json(json.load(fh))
            self.topics[meta.name] = meta
            config = meta.log_config
            for partition in range(meta.partitions):
                key = (meta.name, partition)
                try:
                    partition_log, report = PartitionLog.open(
                        self._path(partition_dir_name(meta.name, partition)), meta.name, partition, config,
                        clock=self.clock, writable=not self.read_only, clean=clean,
                        recovery_point=recovery_points.get(key, 0), log_start_offset=start_offsets.get(key, 0),
                        cleaner_offset=cleaner_offsets.get(key, 0), on_checkpoint_change=self._checkpoint_changed,
                        producer_id_expiration_ms=self.producer_id_expiration_ms)
                except OffsetOutOfRangeError as exc:
                    if not self.read_only:
                        raise
                    # the owner is still creating it (or it was damaged): read what is there
                    log.warning("skipping %s-%d: %s", meta.name, partition, exc)
                    continue
                except OSError as exc:
                    raise KafkaStorageError(
                        f"cannot open partition {meta.name}-{partition} in {self.data_dir}: {exc.strerror or exc}") from exc
                self.logs[key] = partition_log
                if report is not None:
                    self.recovery_reports.append(report)
        if not self.read_only:
            try:
                self.checkpoint()
            except OSError as exc:  # a hint only: a full disk must not stop the broker from serving
                log.warning("could not write checkpoints in %s: %s", self.data_dir, exc)

    def refresh_log(self, partition_log: PartitionLog) -> None:
        """Read-only opens: catch ``partition_log`` up with the owner, log start offset included."""
        key = (partition_log.topic, partition_log.partition)
        starts = read_checkpoint(self._path(LOG_START_OFFSET_CHECKPOINT))
        cleaned = read_checkpoint(self._path(CLEANER_OFFSET_CHECKPOINT))
        partition_log.refresh(starts.get(key), cleaned.get(key, 0))

    # ---- topics ------------------------------------------------------------------------------

    def _require_writable(self) -> None:
        if self.read_only:
            raise ReadOnlyError(f"{self.data_dir} was opened read-only")

    def create_topic(self, name: str, partitions: int, config: dict[str, str]) -> TopicMetadata:
        """Create the partition directories, then write the metadata (the commit point); on any
        failure remove what was made and raise KafkaStorageError."""
        self._require_writable()
        with self._lock:
            if name in self.topics:  # checked under the lock: a racing create must not wipe this one
                raise TopicAlreadyExistsError(f"topic {name!r} already exists")
            meta = TopicMetadata(name, new_topic_id(), partitions, config)
            log_config = meta.log_config
            try:
                self._open_partitions(meta, range(partitions), log_config)
                fsync_dir(self.data_dir)
                self._write_metadata(meta)
            except OSError as exc:
                for partition in range(partitions):
                    partition_log = self.logs.pop((name, partition), None)
                    if partition_log is not None:
                        partition_log.delete()
                    shutil.rmtree(self._path(partition_dir_name(name, partition)), ignore_errors=True)
                raise KafkaStorageError(f"cannot create topic {name!r}: {exc.strerror or exc}") from exc
            self.topics[name] = meta
            return meta

    def _open_partitions(self, meta: TopicMetadata, partitions, log_config: LogConfig, *,
                         reopen: dict[int, PartitionLog] | None = None) -> None:
        """Open new partitions (fresh directories), or ``reopen`` closed ones with their offsets."""
        for partition in partitions:
            directory = self._path(partition_dir_name(meta.name, partition))
            previous = (reopen or {}).get(partition)
            if previous is None and os.path.exists(directory):  # left over from a crash in a delete
                shutil.rmtree(directory)
            partition_log, _ = PartitionLog.open(
                directory, meta.name, partition, log_config, clock=self.clock,
                log_start_offset=previous.log_start_offset if previous else 0,
                cleaner_offset=previous.cleaner_offset if previous else 0,
                recovery_point=previous.recovery_point if previous else 0,
                on_checkpoint_change=self._checkpoint_changed,
                producer_id_expiration_ms=self.producer_id_expiration_ms)
            if previous is None:
                partition_log.write_partition_metadata(meta.topic_id)
            self.logs[(meta.name, partition)] = partition_log

    def add_partitions(self, name: str, total: int) -> TopicMetadata:
        self._require_writable()
        with self._lock:
            meta = self.topic(name)
            old = meta.partitions
            if total <= old:
                raise InvalidPartitionsError(
                    f"topic {name!r} has {old} partitions; the new count must be larger, got {total}")
            updated = TopicMetadata(name, meta.topic_id, total, meta.config)
            self._open_partitions(updated, range(old, total), updated.log_config)
            self._write_metadata(updated)
            self.topics[name] = updated
            return updated

    def alter_config(self, name: str, config: dict[str, str]) -> TopicMetadata:
        self._require_writable()
        with self._lock:
            meta = self.topic(name)
            updated = TopicMetadata(name, meta.topic_id, meta.partitions, config)
            log_config = updated.log_config
            self._write_metadata(updated)
            self.topics[name] = updated
            for partition in range(updated.partitions):
                self.logs[(name, partition)].set_config(log_config)
            return updated

    def delete_topic(self, name: str) -> None:
        """Close the partitions, rename their directories aside, remove the metadata (the commit
        point), then delete the data.  If a rename fails, everything is put back and reopened, and
        KafkaStorageError is raised."""
        self._require_writable()
        with self._lock:
            meta = self.topic(name)
            closed = {p: self.logs[(name, p)] for p in range(meta.partitions)}
            for partition_log in closed.values():
                partition_log.close()
            renamed: list[tuple[str, str]] = []
            try:
                for partition in range(meta.partitions):
                    directory = self.logs[(name, partition)].directory
                    # a short name: topic names may be 249 characters, file names only 255
                    target = self._path(f"{uuid.uuid4().hex}{DELETE_SUFFIX}")
                    os.rename(directory, target)
                    renamed.append((directory, target))
                fsync_dir(self.data_dir)
                os.unlink(self._metadata_path(name))
                fsync_dir(self._path(METADATA_DIR))
            except OSError as exc:
                for directory, target in reversed(renamed):
                    os.rename(target, directory)
                self._open_partitions(meta, range(meta.partitions), meta.log_config, reopen=closed)
                raise KafkaStorageError(f"cannot delete topic {name!r}: {exc.strerror or exc}") from exc
            del self.topics[name]
            for partition in range(meta.partitions):
                del self.logs[(name, partition)]
            for _, target in renamed:
                shutil.rmtree(target, ignore_errors=True)
            self.checkpoint()

    def topic(self, name: str) -> TopicMetadata:
        try:
            return self.topics[name]
        except KeyError:
            raise UnknownTopicOrPartitionError(f"topic {name!r} does not exist") from None

    def get_log(self, topic: str, partition: int) -> PartitionLog:
        try:
            return self.logs[(topic, partition)]
        except KeyError:
            if topic in self.topics:
                raise UnknownTopicOrPartitionError(
                    f"topic {topic!r} has {self.topics[topic].partitions} partition(s); there is no partition {partition}") from None
            raise UnknownTopicOrPartitionError(f"topic {topic!r} does not exist") from None

    def _metadata_path(self, name: str) -> str:
        return self._path(METADATA_DIR, f"{name}.json")

    def _write_metadata(self, meta: TopicMetadata) -> None:
        atomic_write(self._metadata_path(meta.name), json.dumps(meta.to_json(), indent=1, sort_keys=True).encode())

    # ---- producer ids ------------------------------------------------------------------------

    def allocate_producer_id(self) -> int:
        """A producer id never handed out before from this data directory (Kafka's InitProducerId
        for a non-transactional producer).  Raises KafkaStorageError if the block cannot be recorded."""
        self._require_writable()
        with self._lock:
            if self._next_producer_id >= self._producer_id_block_end:
                start = self._read_producer_id_block_end()
                end = start + PRODUCER_ID_BLOCK_SIZE
                try:
                    atomic_write(self._path(PRODUCER_IDS_FILE), f"version: 0\nblock_end: {end}\n".encode())
                except OSError as exc:
                    raise KafkaStorageError(f"cannot record producer ids in {self._path(PRODUCER_IDS_FILE)}: "
                                            f"{exc.strerror or exc}") from exc
                self._next_producer_id, self._producer_id_block_end = start, end
            producer_id = self._next_producer_id
            self._next_producer_id += 1
            return producer_id

    def _read_producer_id_block_end(self) -> int:
        path = self._path(PRODUCER_IDS_FILE)
        try:
            with open(path, encoding="ascii") as fh:
                text = fh.read()
        except FileNotFoundError:
            return 0
        except (OSError, UnicodeDecodeError) as exc:
            raise KafkaStorageError(f"cannot read {path}: {exc}") from exc
        fields = dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)
        try:
            if fields.get("version") != "0" or int(fields["block_end"]) < 0:
                raise ValueError
            return int(fields["block_end"])
        except (KeyError, ValueError):
            raise KafkaStorageError(f"{path} is damaged ({text[:60]!r}); it must say which producer ids were "
                                    f"handed out, so no id is reused") from None

    # ---- checkpoints and shutdown --------------------------------------------------------------

    def _checkpoint_changed(self, partition_log: PartitionLog) -> None:
        """A partition's log start offset or cleaner offset moved: persist both files now."""
        with self._checkpoint_lock:
            self._write_offset_checkpoints()

    def _write_offset_checkpoints(self) -> None:
        logs = list(self.logs.items())
        write_checkpoint(self._path(LOG_START_OFFSET_CHECKPOINT), {key: lg.log_start_offset for key, lg in logs})
        write_checkpoint(self._path(CLEANER_OFFSET_CHECKPOINT),
                         {key: lg.cleaner_offset for key, lg in logs if lg.cleaner_offset})

    def checkpoint(self) -> None:
        """Write the recovery points, log start offsets and cleaner offsets of every partition."""
        if self.read_only:
            return
        with self._checkpoint_lock:
            write_checkpoint(self._path(RECOVERY_POINT_CHECKPOINT),
                             {key: lg.recovery_point for key, lg in list(self.logs.items())})
            self._write_offset_checkpoints()

    def close(self) -> None:
        """Close every log, checkpoint, leave the clean-shutdown marker, release the lock.

        If the disk refuses (full, failing), the marker is not written, so the next open recovers
        from the last good checkpoint instead of trusting files that may be incomplete.
        """
        with self._lock:
            clean = True
            for partition_log in self.logs.values():
                if partition_log.failed:
                    clean = False  # its files cannot be trusted without recovery
                try:
                    partition_log.close()
                except OSError as exc:
                    clean = False
                    log.error("closing %s failed: %s", partition_log.directory, exc)
            try:
                if not self.read_only and clean:
                    self.checkpoint()
                    atomic_write(self._path(CLEAN_SHUTDOWN_MARKER), b"")
            except OSError as exc:
                log.error("could not finish a clean shutdown of %s (%s); the next open will recover",
                          self.data_dir, exc)
            finally:
                if self._dir_lock:
                    self._dir_lock.release()
