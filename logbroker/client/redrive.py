"""Redrive: move the records of a dead-letter topic back to a topic to be processed again.

A share group with a ``dead_letter_topic`` copies there every record it gives up on (rejected, or
delivered ``max_deliveries`` times), with headers ``logbroker.dlq.*`` saying where it came from and why.
Once the cause is fixed, ``redrive()`` produces those records again to ``to_topic``:

- it reads the dead-letter topic as a classic consumer group (default ``logbroker-redrive.<DLQ>``),
  so a second redrive continues where the first stopped: a record moved by a run that completed is
  never moved again.  Each produced batch is durable before its offsets are committed; a crash in
  between moves that batch again (at-least-once);
- each record keeps its key, value and headers, minus the ``logbroker.dlq.*`` ones; its timestamp is
  the time of the redrive (the original one is in the dead letter, which stays in the DLQ until
  retention removes it); its partition is chosen as for any send (by key);
- over the network (``bootstrap="host:port"``) it does the same with the network Consumer and
  Producer (confluent-kafka) against ``logbroker serve``;
- it moves at most ``rate`` records per second (a token bucket holding a tenth of a second's worth),
  and stops at the end of the dead-letter topic as it was when it started (dead letters arriving
  meanwhile, perhaps of redriven records failing again, wait for the next run) or after
  ``max_records``.
"""

from __future__ import annotations

import time

from ..errors import LogbrokerError
from ..groups.share_state_log import DLQ_HEADER_PREFIX
from ..storage.log import LATEST_TIMESTAMP
from .consumer import Consumer
from .producer import Producer

JOIN_TIMEOUT = 30.0  # seconds to wait for the redrive group to assign the DLQ's partitions


def default_group(dlq_topic: str) -> str:
    return f"logbroker-redrive.{dlq_topic}"


class TokenBucket:
    """``rate`` tokens per second, at most ``capacity`` saved up (starts with one)."""

    def __init__(self, rate: float, capacity: float | None = None, *, clock=time.monotonic, sleep=time.sleep):
        if not rate > 0:
            raise ValueError(f"rate must be > 0 records per second, not {rate!r}")
        self.rate = float(rate)
        self.capacity = max(1.0, rate / 10 if capacity is None else capacity)
        self._tokens = 1.0
        self._clock, self._sleep = clock, sleep
        self._last = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
        self._last = now

    def take(self, most: int) -> int:
        """Wait until at least one token is there; take up to ``most`` whole tokens."""
        self._refill()
        if self._tokens < 1:
            self._sleep((1 - self._tokens) / self.rate)
            self._refill()
        taken = max(1, min(most, int(self._tokens)))
        self._tokens -= taken
        return taken

    def give_back(self, tokens: int) -> None:
        self._tokens = min(self.capacity, self._tokens + tokens)


def redrive(broker=None, dlq_topic: str | None = None, to_topic: str | None = None, *, rate: float = 100.0,
            max_records: int | None = None, group: str | None = None, bootstrap: str | None = None) -> int:
    """Move the records of ``dlq_topic`` to ``to_topic`` (see the module docstring); return how many.

    ``broker`` is an embedded Broker; or give ``bootstrap="host:port"`` (and no broker) to redrive
    through a Kafka-protocol broker (``logbroker serve``) with the network Consumer and Producer."""
    if dlq_topic is None or to_topic is None:
        raise TypeError("redrive needs dlq_topic and to_topic")
    if (broker is None) == (bootstrap is None):
        raise ValueError("give either a Broker or bootstrap='host:port'")
    if max_records is not None and max_records < 0:
        raise ValueError(f"max_records must be >= 0, not {max_records!r}")
    if bootstrap is not None:
        from .remote_admin import RemoteAdmin

        with RemoteAdmin(bootstrap) as admin:
            return _redrive(admin, {"bootstrap": bootstrap}, dlq_topic, to_topic, rate, max_records, group)
    return _redrive(broker, {"broker": broker}, dlq_topic, to_topic, rate, max_records, group)


def _redrive(broker, target: dict, dlq_topic: str, to_topic: str, rate: float, max_records: int | None,
             group: str | None) -> int:
    """``broker``: the embedded Broker or a RemoteAdmin (topics and offsets); ``target``: how the
    Consumer and Producer reach it."""
    broker.topic(to_topic)  # raises for an unknown target before anything moves
    partitions = range(broker.partition_count(dlq_topic))
    ends = {(dlq_topic, p): broker.list_offsets(dlq_topic, p, LATEST_TIMESTAMP)[0] for p in partitions}
    bucket = TokenBucket(rate)
    moved = 0
    with Consumer(**target, group=group or default_group(dlq_topic), topics=[dlq_topic], enable_auto_commit=False,
                  auto_offset_reset="earliest") as consumer, Producer(**target, linger_ms=0) as producer:
        joined_by = time.monotonic() + JOIN_TIMEOUT
        while max_records is None or moved < max_records:
            want = bucket.take(min(500, max_records - moved) if max_records is not None else 500)
            records = _before_ends(consumer, consumer.poll(timeout=0.1, max_records=want), ends)
            bucket.give_back(want - len(records))
            if records:
                _move(consumer, producer, to_topic, records)
                moved += len(records)
            elif _drained(consumer, ends):
                break
            elif not consumer.assignment() and time.monotonic() > joined_by:
                raise LogbrokerError(f"redrive group {consumer.group!r} was assigned no partition of {dlq_topic!r} "
                                     f"within {JOIN_TIMEOUT:.0f} s (is another redrive running?)")
    return moved


def _move(consumer, producer, to_topic: str, records) -> None:
    """Produce ``records`` to ``to_topic``, wait until durable, then commit them in the redrive group."""
    next_offsets = {}
    for record in records:
        headers = [(k, v) for k, v in record.headers if not k.startswith(DLQ_HEADER_PREFIX)]
        producer.send(to_topic, record.value, record.key, headers=headers)
        next_offsets[(record.topic, record.partition)] = record.offset + 1
    producer.flush()
    consumer.commit(next_offsets)


def _before_ends(consumer, records, ends: dict[tuple[str, int], int]) -> list:
    """The records below the ends of the start; a partition read past its end is set back and paused."""
    keep = [r for r in records if r.offset < ends.get((r.topic, r.partition), 0)]
    if len(keep) < len(records):
        for tp in {(r.topic, r.partition) for r in records if r.offset >= ends.get((r.topic, r.partition), 0)}:
            consumer.seek(*tp, ends.get(tp, 0))
            consumer.pause(tp)
    return keep


def _drained(consumer, ends: dict[tuple[str, int], int]) -> bool:
    """Every partition this member was assigned is read up to its end when the redrive started."""
    assigned = consumer.assignment()
    return bool(assigned) and all(consumer.position(*tp) >= ends.get(tuple(tp), 0) for tp in assigned)


__all__ = ["DLQ_HEADER_PREFIX", "TokenBucket", "default_group", "redrive"]
