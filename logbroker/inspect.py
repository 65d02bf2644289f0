"""Offline inspection of a data directory or of single segment files: dump, verify, repair, producers,
offsets.

Everything here reads files directly (no broker, no lock), so it works on a copy of a data
directory or next to a running broker.  ``verify_data_dir`` checks what the storage layer promises:
every batch's CRC and structure, offsets increasing (contiguous except in compacted segments),
segments following each other, and index entries pointing at batch starts with consistent offsets.
Each problem names the file and byte position.  ``repair_data_dir`` is the one writing function:
it takes the directory's lock and runs full recovery (truncating damaged tails, rebuilding indexes).
``producer_states`` shows what each partition knows of its idempotent producers (newest snapshot,
then the batches after it), as the broker would rebuild it, without changing any file.
``offsets_log_state`` decodes ``__consumer_offsets``: the latest commit per group, topic and partition.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass

from .config import LogConfig
from .errors import CorruptRecordError, CorruptSnapshotError, LogbrokerError
from .records.batch import (CONTROL_TYPES, HEADER_SIZE, BatchHeader, IncompleteBatchError, check_batch,
                            decode_records, describe_control_record, iter_batches)
from .records.compression import CODEC_NAMES
from .storage.files import (INDEX_SUFFIX, LOG_SUFFIX, SNAPSHOT_SUFFIX, TIME_INDEX_SUFFIX, parse_offset_file_name,
                            read_checkpoint)
from .storage.index import read_offset_index, read_time_index
from .storage.log import PartitionLog
from .storage.log_manager import CLEANER_OFFSET_CHECKPOINT, LOG_START_OFFSET_CHECKPOINT, METADATA_DIR
from .storage.producer_state import ProducerEntry, decode_snapshot, list_snapshots

_PARTITION_DIR = re.compile(r"^(.+)-(\d+)$")


@dataclass(frozen=True)
class Problem:
    file: str
    position: int | None
    message: str

    def __str__(self) -> str:
        where = f" byte {self.position}" if self.position is not None else ""
        return f"{self.file}:{where} {self.message}"


# ---- dump -----------------------------------------------------------------------------------

def batch_to_dict(position: int, header: BatchHeader) -> dict:
    return {
        "position": position, "base_offset": header.base_offset, "last_offset": header.last_offset,
        "count": header.records_count, "size": header.size, "magic": header.magic, "crc": header.crc,
        "partition_leader_epoch": header.partition_leader_epoch,
        "compression": CODEC_NAMES.get(header.compression, str(header.compression)),
        "timestamp_type": "LogAppendTime" if header.timestamp_type else "CreateTime",
        "base_timestamp": header.base_timestamp, "max_timestamp": header.max_timestamp,
        "producer_id": header.producer_id, "producer_epoch": header.producer_epoch,
        "base_sequence": header.base_sequence, "is_transactional": header.is_transactional,
        "is_control": header.is_control,
    }


def bytes_to_json(data: bytes | None) -> str | None:
    """UTF-8 text as is; anything else as ``base64:<data>`` would be ambiguous, so callers flag it."""
    if data is None:
        return None
    return data.decode("utf-8", "backslashreplace")


def record_to_dict(record, *, control: bool = False) -> dict:
    out = {"offset": record.offset, "timestamp": record.timestamp,
           "key": bytes_to_json(record.key), "value": bytes_to_json(record.value),
           "headers": [[k, bytes_to_json(v)] for k, v in record.headers]}
    if control:
        out["control"] = describe_control_record(record)
    return out


def dump_log(path: str, *, records: bool = False):
    """Yield one dict per batch of a ``.log`` file (with "records" when asked); a damaged batch
    yields {"error": ..., "position": ...} and ends the dump."""
    with open(path, "rb") as fh:
        data = fh.read()
    pos = 0
    while pos < len(data):
        try:
            header = check_batch(data, pos)
        except CorruptRecordError as exc:
            yield {"position": pos, "error": str(exc),
                   "torn": isinstance(exc, IncompleteBatchError)}
            return
        item = batch_to_dict(pos, header)
        if records:
            try:
                item["records"] = [record_to_dict(r, control=header.is_control)
                                   for r in decode_records(data, pos, header)]
            except CorruptRecordError as exc:
                item["records_error"] = str(exc)
        yield item
        pos += header.size


def snapshot_entry_to_dict(entry: ProducerEntry) -> dict:
    """One producer-snapshot entry as its file holds it (the last batch only)."""
    last = entry.batches[-1] if entry.batches else None
    return {"producer_id": entry.producer_id, "epoch": entry.epoch,
            "first_sequence": last.first_seq if last else -1, "last_sequence": entry.last_seq,
            "last_offset": entry.last_offset, "offset_delta": last.offset_delta if last else 0,
            "timestamp": entry.last_timestamp, "coordinator_epoch": entry.coordinator_epoch,
            "current_txn_first_offset": entry.current_txn_first_offset}


def dump_snapshot(path: str) -> list[dict]:
    """The entries of a producer-state ``.snapshot`` file; a damaged one gives one {"error": ...}."""
    with open(path, "rb") as fh:
        data = fh.read()
    try:
        return [snapshot_entry_to_dict(entry) for entry in decode_snapshot(data, path)]
    except CorruptSnapshotError as exc:
        return [{"position": 0, "error": str(exc)}]


def dump_file(path: str, *, records: bool = False) -> list[dict]:
    """Dicts describing any segment-family file: batches, index or time-index entries, or the
    producer entries of a snapshot."""
    parsed = parse_offset_file_name(os.path.basename(path))
    base = parsed[0] if parsed else 0
    if path.endswith(LOG_SUFFIX):
        return list(dump_log(path, records=records))
    if path.endswith(INDEX_SUFFIX):
        return [{"offset": base + rel, "position": pos} for rel, pos in read_offset_index(path)]
    if path.endswith(TIME_INDEX_SUFFIX):
        return [{"timestamp": ts, "offset": base + rel} for ts, rel in read_time_index(path)]
    if path.endswith(SNAPSHOT_SUFFIX):
        return dump_snapshot(path)
    raise ValueError(f"{path}: not a .log, .index, .timeindex or .snapshot file")


def format_entry(path: str, item: dict) -> str:
    """One human-readable line per dumped item (Kafka's DumpLogSegments style)."""
    if "error" in item:
        return f"ERROR at position {item['position']}: {item['error']}"
    if path.endswith(INDEX_SUFFIX):
        return f"offset: {item['offset']} position: {item['position']}"
    if path.endswith(TIME_INDEX_SUFFIX):
        return f"timestamp: {item['timestamp']} offset: {item['offset']}"
    if path.endswith(SNAPSHOT_SUFFIX):
        return (f"producerId: {item['producer_id']} producerEpoch: {item['epoch']} "
                f"coordinatorEpoch: {item['coordinator_epoch']} currentTxnFirstOffset: {item['current_txn_first_offset']} "
                f"firstSequence: {item['first_sequence']} lastSequence: {item['last_sequence']} "
                f"lastOffset: {item['last_offset']} offsetDelta: {item['offset_delta']} timestamp: {item['timestamp']}")
    line = (f"baseOffset: {item['base_offset']} lastOffset: {item['last_offset']} count: {item['count']} "
            f"position: {item['position']} size: {item['size']} crc: {item['crc']:#010x} "
            f"compression: {item['compression']} {item['timestamp_type']}: {item['max_timestamp']} "
            f"producerId: {item['producer_id']} producerEpoch: {item['producer_epoch']} "
            f"baseSequence: {item['base_sequence']} isTransactional: {str(item['is_transactional']).lower()} "
            f"isControl: {str(item['is_control']).lower()}")
    for record in item.get("records", []):
        headers = ",".join(f"{k}={v}" for k, v in record["headers"])
        line += (f"\n| offset: {record['offset']} timestamp: {record['timestamp']} key: {record['key']} "
                 f"value: {record['value']} headers: {headers}")
        if "control" in record:
            line += f" control: {record['control']}"
    if "records_error" in item:
        line += f"\n| ERROR decoding records: {item['records_error']}"
    return line


# ---- verify ---------------------------------------------------------------------------------

def _topic_configs(data_dir: str) -> dict[str, LogConfig]:
    configs = {}
    meta_dir = os.path.join(data_dir, METADATA_DIR)
    if os.path.isdir(meta_dir):
        for name in os.listdir(meta_dir):
            if name.endswith(".json"):
                try:
                    with open(os.path.join(meta_dir, name), encoding="utf-8") as fh:
                        meta = json.load(fh)
                    configs[meta["name"]] = LogConfig.from_overrides(meta.get("config", {}))
                except (OSError, ValueError, KeyError, LogbrokerError) as exc:
                    configs[name[:-5]] = exc
    return configs


def partition_dirs(data_dir: str) -> list[tuple[str, str, int]]:
    """(path, topic, partition) of every partition directory, sorted."""
    out = []
    for name in sorted(os.listdir(data_dir)):
        path = os.path.join(data_dir, name)
        match = _PARTITION_DIR.match(name)
        if match and os.path.isdir(path) and not name.endswith("-delete"):
            out.append((path, match.group(1), int(match.group(2))))
    return out


def verify_partition(directory: str, *, compacted: bool = False, cleaner_offset: int = 0) -> list[Problem]:
    """Problems of one partition directory.  Segments below ``cleaner_offset`` (from the data
    directory's cleaner-offset-checkpoint), or every segment when ``compacted``, may have gaps
    between offsets; all others must be contiguous, within and across segments."""
    problems: list[Problem] = []
    bases = sorted(p[0] for p in (parse_offset_file_name(n) for n in os.listdir(directory))
                   if p and p[1] == LOG_SUFFIX)
    previous_next = None
    previous_strict = True
    for base in bases:
        log_path = os.path.join(directory, f"{base:020d}{LOG_SUFFIX}")
        strict = not compacted and base >= cleaner_offset
        if previous_next is not None and base < previous_next:
            problems.append(Problem(log_path, None, f"segment base offset {base} overlaps the previous segment, "
                                                    f"which ends at offset {previous_next - 1}"))
        elif previous_next is not None and previous_strict and base != previous_next:
            problems.append(Problem(log_path, None, f"offsets {previous_next}..{base - 1} are missing before "
                                                    f"this segment"))
        previous_strict = strict
        batch_starts: dict[int, BatchHeader] = {}
        with open(log_path, "rb") as fh:
            data = fh.read()
        pos, expected = 0, base
        while pos < len(data):
            try:
                header = check_batch(data, pos)
            except CorruptRecordError as exc:
                problems.append(Problem(log_path, pos, str(exc)))
                break
            if strict and header.base_offset != expected:
                problems.append(Problem(log_path, pos, f"batch base offset {header.base_offset}, expected {expected}"))
            elif header.base_offset < expected:
                problems.append(Problem(log_path, pos, f"batch base offset {header.base_offset} goes backwards "
                                                       f"(expected at least {expected})"))
            batch_starts[pos] = header
            expected = header.next_offset
            pos += header.size
        previous_next = expected
        problems += _verify_indexes(directory, base, batch_starts, expected)
    for offset in list_snapshots(directory):
        path = os.path.join(directory, f"{offset:020d}{SNAPSHOT_SUFFIX}")
        item = dump_snapshot(path)
        if item and "error" in item[0]:
            problems.append(Problem(path, 0, item[0]["error"]))
    return problems


def _verify_indexes(directory: str, base: int, batch_starts: dict[int, BatchHeader], next_offset: int) -> list[Problem]:
    problems = []
    last_offsets = {h.last_offset for h in batch_starts.values()}
    index_path = os.path.join(directory, f"{base:020d}{INDEX_SUFFIX}")
    if os.path.exists(index_path):
        size = os.path.getsize(index_path)
        if size % 8:
            problems.append(Problem(index_path, size - size % 8, f"file size {size} is not a multiple of 8"))
        last = (-1, -1)
        for i, (rel, position) in enumerate(read_offset_index(index_path)):
            offset = base + rel
            header = batch_starts.get(position)
            if (rel, position) <= last or rel <= last[0] or position <= last[1]:
                problems.append(Problem(index_path, i * 8, f"entry (offset {offset}, position {position}) does not increase"))
            elif header is None:
                problems.append(Problem(index_path, i * 8, f"entry (offset {offset}, position {position}) does not point at a batch"))
            elif not header.base_offset <= offset < next_offset or offset not in last_offsets:
                # Kafka's rule: an entry names the last offset of an appended chunk (one or more
                # batches) and the position where that chunk starts
                problems.append(Problem(index_path, i * 8, f"entry offset {offset} does not end a batch at or after "
                                                           f"position {position} (that batch holds offsets "
                                                           f"{header.base_offset}..{header.last_offset})"))
            last = (rel, position)
    time_path = os.path.join(directory, f"{base:020d}{TIME_INDEX_SUFFIX}")
    if os.path.exists(time_path):
        size = os.path.getsize(time_path)
        if size % 12:
            problems.append(Problem(time_path, size - size % 12, f"file size {size} is not a multiple of 12"))
        max_ts = max((h.max_timestamp for h in batch_starts.values()), default=-1)
        last_ts = None
        for i, (ts, rel) in enumerate(read_time_index(time_path)):
            if last_ts is not None and ts <= last_ts:
                problems.append(Problem(time_path, i * 12, f"timestamp {ts} does not increase"))
            elif ts > max_ts or not base <= base + rel < max(next_offset, base + 1):
                problems.append(Problem(time_path, i * 12, f"entry (timestamp {ts}, offset {base + rel}) is beyond the log "
                                                          f"(max timestamp {max_ts}, next offset {next_offset})"))
            last_ts = ts
    return problems


def verify_data_dir(data_dir: str) -> list[Problem]:
    """Every problem found under ``data_dir``; an empty list means the directory is clean."""
    if not os.path.isdir(data_dir):
        return [Problem(data_dir, None, "not a directory")]
    problems = []
    configs = _topic_configs(data_dir)
    for topic, config in configs.items():
        if isinstance(config, Exception):
            problems.append(Problem(os.path.join(data_dir, METADATA_DIR, f"{topic}.json"), None,
                                    f"unreadable topic metadata: {config}"))
    cleaner_offsets = read_checkpoint(os.path.join(data_dir, CLEANER_OFFSET_CHECKPOINT))
    for path, topic, partition in partition_dirs(data_dir):
        problems += verify_partition(path, cleaner_offset=cleaner_offsets.get((topic, partition), 0))
    return problems


# ---- producers -------------------------------------------------------------------------------

@dataclass(frozen=True)
class PartitionProducers:
    """What one partition knows of its idempotent producers (``error`` when it could not be read)."""

    topic: str
    partition: int
    producers: list[ProducerEntry]
    error: str | None = None


def producer_states(data_dir: str) -> list[PartitionProducers]:
    """Every partition's producer entries, rebuilt as an opening broker would (newest valid snapshot
    at or below the log end, then the batch headers after it), read-only and without the lock."""
    configs = _topic_configs(data_dir)
    starts = read_checkpoint(os.path.join(data_dir, LOG_START_OFFSET_CHECKPOINT))
    out = []
    for path, topic, partition in partition_dirs(data_dir):
        config = configs.get(topic)
        if not isinstance(config, LogConfig):
            config = LogConfig.from_overrides({})
        try:
            partition_log, _ = PartitionLog.open(path, topic, partition, config, writable=False,
                                                 log_start_offset=starts.get((topic, partition), 0))
            try:
                out.append(PartitionProducers(topic, partition, partition_log.producer_state))
            finally:
                partition_log.close()
        except (LogbrokerError, OSError) as exc:
            out.append(PartitionProducers(topic, partition, [], str(exc)))
    return out


@dataclass
class OffsetsLogState:
    """What ``__consumer_offsets`` holds once replayed: the latest commit per (group, topic,
    partition) and the latest metadata per group (tombstones remove both)."""

    commits: dict  # (group, topic, partition) -> OffsetValue
    groups: dict  # group -> GroupMetadata
    records: int
    errors: list[str]


def offsets_log_state(data_dir: str) -> OffsetsLogState:
    """Decode every partition of ``__consumer_offsets`` in ``data_dir`` (read-only, no lock)."""
    from .groups.offsets_log import (OFFSETS_TOPIC, GroupKey, OffsetKey, decode_group_value, decode_key,
                                     decode_offset_value)

    state = OffsetsLogState({}, {}, 0, [])
    starts = read_checkpoint(os.path.join(data_dir, LOG_START_OFFSET_CHECKPOINT))
    config = LogConfig.from_overrides({"cleanup.policy": "compact"})
    for path, topic, partition in partition_dirs(data_dir):
        if topic != OFFSETS_TOPIC:
            continue
        try:
            partition_log, _ = PartitionLog.open(path, topic, partition, config, writable=False,
                                                 log_start_offset=starts.get((topic, partition), 0))
        except (LogbrokerError, OSError) as exc:
            state.errors.append(f"{topic}-{partition}: {exc}")
            continue
        try:
            offset = partition_log.log_start_offset
            while offset < partition_log.log_end_offset:
                data = partition_log.read(offset, 1 << 20).records
                if not data:
                    break
                for pos, header in iter_batches(data):
                    offset = header.next_offset
                    if header.is_control:
                        continue
                    for record in decode_records(data, pos, header):
                        key = decode_key(record.key) if record.key is not None else None
                        state.records += 1
                        if isinstance(key, OffsetKey):
                            where = (key.group, key.topic, key.partition)
                            if record.value is None:
                                state.commits.pop(where, None)
                            else:
                                state.commits[where] = decode_offset_value(record.value)
                        elif isinstance(key, GroupKey):
                            if record.value is None:
                                state.groups.pop(key.group, None)
                            else:
                                state.groups[key.group] = decode_group_value(record.value)
        except (LogbrokerError, OSError) as exc:
            state.errors.append(f"{topic}-{partition}: {exc}")
        finally:
            partition_log.close()
    return state


def repair_data_dir(data_dir: str):
    """Take the lock and recover every partition from its first byte; return the recovery reports."""
    from .storage.log_manager import LogManager

    manager = LogManager(data_dir, force_recovery=True)
    try:
        return list(manager.recovery_reports)
    finally:
        manager.close()


__all__ = ["Problem", "OffsetsLogState", "PartitionProducers", "dump_file", "format_entry", "offsets_log_state",
           "producer_states", "verify_data_dir",
           "verify_partition", "repair_data_dir", "CONTROL_TYPES", "HEADER_SIZE"]
