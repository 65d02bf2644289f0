"""The embedded Consumer (no groups yet): reads assigned partitions from their positions.

Subscribing to ``topics`` assigns every partition of those topics.  A partition's position is the
offset of the next record to hand out; it starts per ``auto_offset_reset`` ("earliest", "latest",
or "error" to raise) and moves past every record returned.  ``poll()`` fetches raw batches from the
broker, decodes them in one pass (control batches are skipped) and returns up to ``max_records``
records, waiting up to ``timeout`` seconds for new data.
"""

from __future__ import annotations

import time
from typing import Iterable, Iterator, NamedTuple

from ..errors import BrokerClosedError, OffsetOutOfRangeError
from ..records.batch import Record, decode_records, iter_batches
from ..storage.log import EARLIEST_TIMESTAMP, LATEST_TIMESTAMP


class TopicPartition(NamedTuple):
    topic: str
    partition: int


class Consumer:
    def __init__(self, broker, *, topics: Iterable[str] = (), auto_offset_reset: str = "earliest",
                 max_poll_records: int = 500, fetch_max_bytes: int = 1 << 20):
        if auto_offset_reset not in ("earliest", "latest", "error"):
            raise ValueError("auto_offset_reset must be 'earliest', 'latest' or 'error'")
        self._broker = broker
        self._reset = auto_offset_reset
        self._max_poll_records = max_poll_records
        self._fetch_max_bytes = fetch_max_bytes
        self._positions: dict[TopicPartition, int] = {}
        self._buffers: dict[TopicPartition, tuple[list[Record], int]] = {}  # fetched, not yet returned
        self._paused: set[TopicPartition] = set()
        self._next = 0
        self._closed = False
        if topics:
            self.subscribe(topics)

    def __enter__(self) -> "Consumer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- assignment and positions ------------------------------------------------------------

    def subscribe(self, topics: Iterable[str]) -> None:
        """Assign every partition of ``topics``."""
        parts = []
        for topic in topics:
            parts += [TopicPartition(topic, p) for p in range(self._broker.partition_count(topic))]
        self.assign(parts)

    def assign(self, partitions: Iterable[tuple[str, int]]) -> None:
        """Read exactly these partitions (positions start per auto_offset_reset)."""
        wanted = [TopicPartition(*tp) for tp in partitions]
        for tp in wanted:
            self._broker.log(tp.topic, tp.partition)  # raises for unknown partitions
        self._positions = {tp: self._positions.get(tp) for tp in wanted}
        self._buffers = {tp: buf for tp, buf in self._buffers.items() if tp in self._positions}

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

    # ---- reading -----------------------------------------------------------------------------

    def poll(self, timeout: float = 0.0, max_records: int | None = None) -> list[Record]:
        """Up to ``max_records`` records, waiting at most ``timeout`` seconds for the first."""
        if self._closed:
            raise BrokerClosedError("the consumer is closed")
        limit = max_records or self._max_poll_records
        deadline = time.monotonic() + timeout
        while True:
            out = self._collect(limit)
            if out:
                return out
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            if self._broker.read_only:
                time.sleep(min(remaining, 0.05))
            else:
                self._broker.wait_for_data(min(remaining, 0.5))

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
        self._closed = True


__all__ = ["Consumer", "TopicPartition"]
