"""Reading what share groups hand out, and copying dead letters (the share-group service's log I/O).

``read_records`` decodes the records at given offsets (for the embedded Queue and dead letters),
``read_batches`` returns the stored batches holding them, byte for byte (for ShareFetch: whole
batches, the client drops the records outside its acquired ranges).  Offsets without a record
(compacted away, control records) and offsets outside the log (below its start, at or past the high
watermark) are simply absent from the answer.  ``copy_dead_letters`` appends
dead letters to a dead-letter topic with the ``logbroker.dlq.*`` headers and waits until they are
durable; ``dead_letters_in`` lists the sources of the dead letters a topic already holds.
"""

from __future__ import annotations

import bisect
import logging

from ..errors import UnknownTopicOrPartitionError
from ..groups.share_partition import DeadLetter
from ..groups.share_state_log import dead_letter_headers, dead_letter_source, dead_letter_topic_id
from ..records.batch import Record, decode_records, encode_batch_columns, iter_batches
from ..storage.log import LATEST_TIMESTAMP

log = logging.getLogger(__name__)

_READ_BYTES = 128 * 1024  # per fetch: a few hundred records of ordinary size; more fetches follow if needed


def _in_log(broker, topic: str, partition: int, offsets) -> list[int]:
    """``offsets`` sorted, without those below the log start (gone) or at/after the high watermark."""
    start = broker.list_offsets(topic, partition, -2)[0]
    end = broker.list_offsets(topic, partition, LATEST_TIMESTAMP)[0]
    return sorted(o for o in set(offsets) if start <= o < end)


def read_records(broker, topic: str, partition: int, offsets) -> list[Record]:
    """The records at ``offsets`` that have one, in offset order."""
    wanted = _in_log(broker, topic, partition, offsets)
    wanted_set = set(wanted)
    out = []
    i = 0
    while i < len(wanted):
        info = broker.fetch(topic, partition, wanted[i], _READ_BYTES)
        progressed = False
        for pos, header in iter_batches(info.records):
            if header.next_offset <= wanted[i]:
                continue
            if not header.is_control:
                out += [r for r in decode_records(info.records, pos, header, topic=topic, partition=partition)
                        if r.offset in wanted_set]
            i = bisect.bisect_left(wanted, header.next_offset, i)
            progressed = True
            if i >= len(wanted):
                break
        if not progressed:
            break  # past the log end
    return out


def read_batches(broker, topic: str, partition: int, offsets, max_bytes: int = 1 << 26) -> bytes:
    """The stored batches holding ``offsets``, each once, as they are on disk."""
    wanted = _in_log(broker, topic, partition, offsets)
    chunks = []
    seen_base = set()
    i = 0
    size = 0
    while i < len(wanted) and size < max_bytes:
        info = broker.fetch(topic, partition, wanted[i], _READ_BYTES)
        data = info.records
        progressed = False
        for pos, header in iter_batches(data):
            if header.next_offset <= wanted[i]:
                continue
            if header.base_offset not in seen_base:
                seen_base.add(header.base_offset)
                chunks.append(bytes(data[pos:pos + header.size]))
                size += header.size
            i = bisect.bisect_left(wanted, header.next_offset, i)
            progressed = True
            if i >= len(wanted):
                break
        if not progressed:
            break
    return b"".join(chunks)


def copy_dead_letters(broker, group: str, topic: str, partition: int, dlq: str, letters: list[DeadLetter]) -> None:
    """Append the records of ``letters`` to ``dlq`` (made with 1 partition if missing; partition =
    source partition modulo its count), in batches within its ``max.message.bytes``, and wait until
    they are durable.  A record that is gone from the log (retention, its topic deleted) or too large
    for the dead-letter topic even alone is logged and not copied: there is nothing that could be."""
    try:
        topic_id = broker.topic(topic).topic_id
        records = {r.offset: r for r in read_records(broker, topic, partition, [d.offset for d in letters])}
    except UnknownTopicOrPartitionError:
        log.warning("dead letters of %s-%d: the topic is gone; nothing to copy", topic, partition)
        return
    if dlq not in broker.list_topics():
        broker.create_topic(dlq, 1)
    target = partition % broker.partition_count(dlq)
    limit = broker.log(dlq, target).config.max_message_bytes
    batch: list[tuple] = []
    size = 0
    for letter in letters:
        record = records.get(letter.offset)
        if record is None:
            log.warning("dead letter %s-%d@%d is gone from the log; not copied", topic, partition, letter.offset)
            continue
        headers = list(record.headers) + dead_letter_headers(group, topic, partition, letter, topic_id)
        estimate = (len(record.key or b"") + len(record.value or b"")
                    + sum(len(k) + len(v or b"") + 10 for k, v in headers) + 40)
        if estimate + 100 > limit:
            log.error("dead letter %s-%d@%d (%d bytes) is over %s's max.message.bytes; not copied",
                      topic, partition, letter.offset, estimate, dlq)
            continue
        if batch and size + estimate + 100 > limit:
            _append_durably(broker, dlq, target, batch)
            batch, size = [], 0
        batch.append((record.key, record.value, headers, record.timestamp))
        size += estimate
    if batch:
        _append_durably(broker, dlq, target, batch)


def _append_durably(broker, topic: str, partition: int, records: list[tuple]) -> None:
    keys, values, headers, timestamps = (list(column) for column in zip(*records))
    info = broker.append(topic, partition, encode_batch_columns(keys, values, headers, timestamps))
    broker.wait_durable(topic, partition, info.last_offset + 1)


def dead_letters_in(broker, dlq: str) -> set[tuple[str, str, int, int]]:
    """(group, topic, partition, offset) of every dead letter ``dlq`` holds from a topic as it is now
    (copies from an earlier topic of the same name, deleted since, do not count)."""
    found = set()
    if dlq not in broker.list_topics():
        return found
    topic_ids: dict[str, str | None] = {}
    for partition in range(broker.partition_count(dlq)):
        for record in broker.iter_records(dlq, partition):
            source = dead_letter_source(record.headers)
            if source is None:
                continue
            if source[1] not in topic_ids:
                topic_ids[source[1]] = broker.topic(source[1]).topic_id if source[1] in broker.list_topics() else None
            copied_from = dead_letter_topic_id(record.headers)
            if copied_from is None or copied_from == topic_ids[source[1]]:
                found.add(source)
    return found
