"""The network Consumer: the embedded Consumer's API over confluent-kafka (librdkafka).

``Consumer(bootstrap="host:port", ...)`` returns a RemoteConsumer.  librdkafka fetches in the
background, keeps the group membership (join / sync / heartbeat in its own threads, so
``session_timeout_ms`` and ``max_poll_interval_ms`` work as in the embedded consumer) and runs the
assignor; this class turns its messages into logbroker ``Record`` tuples and keeps the embedded
semantics:

- ``topics=[...]`` without a group reads every partition of those topics; with ``group`` they (or
  ``pattern``, a regular expression matched against whole topic names) are the subscription.
- ``poll(timeout, max_records)`` returns as soon as records are there (at most ``max_records``).
- A partition's position is the offset after the last record returned (or where ``seek`` put it);
  ``commit()`` commits those positions, ``commit(offsets)`` exact ones; a commit the group refuses
  raises CommitFailedError with the Kafka error code.  ``enable_auto_commit`` is librdkafka's auto
  commit of the records returned (every ``auto_commit_interval_ms``, before a rebalance revokes
  partitions, and on ``close()``).
- ``on_assign(consumer, partitions)`` may ``seek`` the partitions it is given (the seek becomes
  the offset they are assigned at) and ask ``committed()``; ``on_revoke`` / ``on_lost`` as embedded.

Differences: ``partition_assignment_strategy`` keeps only the assignors of the first one's kind
(librdkafka cannot mix eager and cooperative ones; the default ``["range", "cooperative-sticky"]``
runs ``range``); ``max_poll_interval_ms`` is raised to ``session_timeout_ms`` if lower (librdkafka
requires it).  ``config`` passes further librdkafka settings as they are.
"""

from __future__ import annotations

import logging
import re
import threading
import uuid
from typing import Callable, Iterable, Iterator

from ..errors import BrokerClosedError, LogbrokerError, OffsetOutOfRangeError
from ..records.batch import Record
from ..storage.log import EARLIEST_TIMESTAMP, LATEST_TIMESTAMP
from .consumer import CommitFailedError, Consumer
from .group_member import TopicPartition
from .remote_common import base_config, partition_count, raise_from_kafka, to_logbroker_error

log = logging.getLogger("logbroker.client.remote")

_OFFSET_BEGINNING, _OFFSET_END, _OFFSET_INVALID = -2, -1, -1001
_PARTITION_EOF = -191
_MAX_POLL_EXCEEDED = -147
_COMMIT_LOCAL_CODES = {-142, -172, -168}  # _ASSIGNMENT_LOST, _STATE, _NO_OFFSET: the group's refusal
_EAGER = {"range", "roundrobin"}
_COOPERATIVE = {"cooperative-sticky"}
_LOG_APPEND_TIME = 2  # confluent_kafka.TIMESTAMP_LOG_APPEND_TIME


def _strategies(names: Iterable[str]) -> list[str]:
    names = list(names)
    for name in names:
        if name not in _EAGER | _COOPERATIVE:
            raise ValueError(f"unknown partition assignment strategy {name!r}; "
                             f"use range, roundrobin or cooperative-sticky")
    if not names:
        raise ValueError("partition_assignment_strategy needs at least one assignor")
    kind = _COOPERATIVE if names[0] in _COOPERATIVE else _EAGER
    return [n for n in names if n in kind]


class RemoteConsumer(Consumer):
    """Reads from a Kafka-protocol broker (``logbroker serve``, Kafka, Redpanda)."""

    def __init__(self, broker=None, *, bootstrap: str | None = None, group: str | None = None,
                 topics: Iterable[str] = (), pattern=None, auto_offset_reset: str = "earliest",
                 enable_auto_commit: bool = True, auto_commit_interval_ms: int = 5000,
                 on_assign: Callable | None = None, on_revoke: Callable | None = None,
                 on_lost: Callable | None = None, max_poll_records: int = 500, fetch_max_bytes: int = 1 << 20,
                 session_timeout_ms: int = 45000, heartbeat_interval_ms: int = 1000,
                 max_poll_interval_ms: int = 300000,
                 partition_assignment_strategy: Iterable[str] = ("range", "cooperative-sticky"),
                 client_id: str = "logbroker", group_instance_id: str | None = None,
                 request_timeout_ms: int = 30000, config: dict | None = None):
        from confluent_kafka import Consumer as KafkaConsumer

        if broker is not None:
            raise ValueError("give either a Broker or bootstrap='host:port', not both")
        if auto_offset_reset not in ("earliest", "latest", "error"):
            raise ValueError("auto_offset_reset must be 'earliest', 'latest' or 'error'")
        topics = list(topics)
        if topics and pattern is not None:
            raise ValueError("subscribe to topics or to a pattern, not both")
        strategies = _strategies(partition_assignment_strategy)
        self._bootstrap = bootstrap
        self.group = group
        self._reset = auto_offset_reset
        self._max_poll_records = max_poll_records
        self._timeout = request_timeout_ms / 1000.0
        self._cooperative = strategies[0] in _COOPERATIVE
        self._on_assign, self._on_revoke, self._on_lost = on_assign, on_revoke, on_lost
        self._positions: dict[TopicPartition, int | None] = {}
        self._assigning: dict[TopicPartition, int] | None = None  # seeks made inside on_assign
        self._assigning_tps: set[TopicPartition] = set()
        self._subscribed = False
        self._closed = False
        self._lock = threading.RLock()
        self._committer = None
        self._admin = None
        self._pending_error: BaseException | None = None
        self._client_id = client_id
        self._extra = dict(config or {})
        settings = {
            "group.id": group if group is not None else f"logbroker-nogroup-{uuid.uuid4().hex}",
            "enable.auto.commit": bool(enable_auto_commit and group is not None),
            "auto.commit.interval.ms": int(auto_commit_interval_ms),
            "auto.offset.reset": auto_offset_reset,
            "session.timeout.ms": int(session_timeout_ms),
            "heartbeat.interval.ms": int(min(heartbeat_interval_ms, max(1, session_timeout_ms // 3))),
            "max.poll.interval.ms": int(max(max_poll_interval_ms, session_timeout_ms)),
            "partition.assignment.strategy": ",".join(strategies),
            "fetch.max.bytes": int(fetch_max_bytes),
            "enable.partition.eof": False,
            "error_cb": self._error,
        }
        if group_instance_id is not None:
            settings["group.instance.id"] = group_instance_id
        settings.update(self._extra)
        try:
            self._ck = KafkaConsumer(base_config(bootstrap, client_id, settings))
        except Exception as exc:  # noqa: BLE001 - KafkaException / ValueError for bad settings
            if isinstance(exc, ValueError):
                raise
            raise_from_kafka(exc, "cannot create the consumer")
        try:
            if pattern is not None:
                self.subscribe(pattern=pattern)
            elif topics:
                self.subscribe(topics)
        except BaseException:
            self.close()  # librdkafka's threads go with it
            raise

    @property
    def bootstrap(self) -> str:
        return self._bootstrap

    def __repr__(self) -> str:
        return f"<RemoteConsumer bootstrap={self._bootstrap!r} group={self.group!r}>"

    def _error(self, error) -> None:  # librdkafka's error_cb: connection trouble is retried by itself
        if error.fatal():
            self._pending_error = to_logbroker_error(error, "the consumer failed")
        else:
            log.warning("consumer: %s", error.str())

    def _check_open(self) -> None:
        if self._closed:
            raise BrokerClosedError("the consumer is closed")

    # ---- assignment and positions ------------------------------------------------------------

    def _partition_count(self, topic: str) -> int:
        return partition_count(self._ck, topic, self._timeout)

    def subscribe(self, topics: Iterable[str] = (), *, pattern=None) -> None:
        """Without a group: assign every partition of ``topics``.  With a group: subscribe to
        ``topics`` or to the topics whose whole name matches ``pattern``."""
        self._check_open()
        if self.group is None:
            if pattern is not None:
                raise ValueError("a pattern subscription needs a group")
            self.assign([TopicPartition(t, p) for t in topics for p in range(self._partition_count(t))])
            return
        if pattern is not None:
            text = pattern.pattern if isinstance(pattern, re.Pattern) else str(pattern)
            wanted = [f"^({text})$"]
        else:
            wanted = sorted(set(topics))
            for topic in wanted:
                self._partition_count(topic)  # raises for unknown topics
        with self._lock:
            try:
                self._ck.subscribe(wanted, on_assign=self._assigned, on_revoke=self._revoked, on_lost=self._lost)
            except Exception as exc:  # noqa: BLE001
                raise_from_kafka(exc, "cannot subscribe")
            self._subscribed = True

    def assign(self, partitions: Iterable[tuple[str, int]]) -> None:
        """Read exactly these partitions; positions start at the group's committed offsets, if any,
        else per auto_offset_reset."""
        from confluent_kafka import TopicPartition as KafkaTopicPartition

        self._check_open()
        wanted = [TopicPartition(*tp) for tp in partitions]
        counts: dict[str, int] = {}
        for tp in wanted:
            if tp.topic not in counts:
                counts[tp.topic] = self._partition_count(tp.topic)
            if not 0 <= tp.partition < counts[tp.topic]:
                from ..errors import UnknownTopicOrPartitionError

                raise UnknownTopicOrPartitionError(f"topic {tp.topic!r} has no partition {tp.partition}")
        with self._lock:
            if self._subscribed:
                raise ValueError("this consumer has a group subscription; unsubscribe() before assign()")
            self._positions = {tp: self._positions.get(tp) for tp in wanted}
            start = _OFFSET_INVALID  # the committed offset, else auto.offset.reset
            if self.group is None:
                start = {"earliest": _OFFSET_BEGINNING, "latest": _OFFSET_END}.get(self._reset, _OFFSET_INVALID)
            parts = [KafkaTopicPartition(tp.topic, tp.partition, start if pos is None else pos)
                     for tp, pos in self._positions.items()]
            try:
                self._ck.assign(parts)
            except Exception as exc:  # noqa: BLE001
                raise_from_kafka(exc, "cannot assign partitions")

    def unsubscribe(self) -> None:
        with self._lock:
            try:
                if self._subscribed:
                    self._ck.unsubscribe()
                else:
                    self._ck.unassign()
            except Exception as exc:  # noqa: BLE001
                raise_from_kafka(exc, "cannot unsubscribe")
            self._subscribed = False
            self._positions = {}

    def assignment(self) -> set[TopicPartition]:
        return set(self._positions)

    # rebalance callbacks (librdkafka calls them from poll(), in the polling thread)

    def _assigned(self, _ck, partitions) -> None:
        from confluent_kafka import TopicPartition as KafkaTopicPartition

        tps = [TopicPartition(p.topic, p.partition) for p in partitions]
        if not self._cooperative:
            self._positions = {}
        for tp in tps:
            self._positions[tp] = None
        self._assigning = {}
        self._assigning_tps = set(tps)
        error = None
        try:
            if self._on_assign is not None and tps:
                self._on_assign(self, list(tps))
        except BaseException as exc:  # noqa: BLE001 - re-raised once the assignment is applied
            error = exc
        finally:
            seeks, self._assigning, self._assigning_tps = self._assigning, None, set()
        parts = [KafkaTopicPartition(tp.topic, tp.partition, seeks.get(tp, _OFFSET_INVALID)) for tp in tps]
        if self._cooperative:
            self._ck.incremental_assign(parts)
        else:
            self._ck.assign(parts)
        if error is not None:
            raise error

    def _revoked(self, _ck, partitions) -> None:
        self._give_up(partitions, self._on_revoke)

    def _lost(self, _ck, partitions) -> None:
        self._give_up(partitions, self._on_lost or self._on_revoke)

    def _give_up(self, partitions, callback) -> None:
        tps = [TopicPartition(p.topic, p.partition) for p in partitions]
        tps = [tp for tp in tps if tp in self._positions]
        try:
            if callback is not None and tps:
                callback(self, list(tps))
        finally:
            for tp in tps:
                self._positions.pop(tp, None)

    def _require_assigned(self, tp: TopicPartition) -> None:
        if tp not in self._positions:
            raise ValueError(f"{tp.topic}-{tp.partition} is not assigned to this consumer")

    def _offsets(self, partitions, timestamp: int) -> dict[TopicPartition, int]:
        """The log start (-2) or end (-1) offset of each partition.  Asked through the admin
        client's own connection: the consumer's connection may be parked in a long-poll fetch."""
        found = self._remote_admin().list_offsets_many({tuple(tp): timestamp for tp in partitions})
        return {TopicPartition(*tp): value[0] for tp, value in found.items() if value is not None}

    def position(self, topic: str, partition: int) -> int:
        """The offset of the next record this consumer returns for the partition."""
        from confluent_kafka import TopicPartition as KafkaTopicPartition

        tp = TopicPartition(topic, partition)
        self._require_assigned(tp)
        position = self._positions.get(tp)
        if position is not None:
            return position
        try:
            found = self._ck.position([KafkaTopicPartition(topic, partition)])[0].offset
        except Exception as exc:  # noqa: BLE001
            raise_from_kafka(exc, f"cannot read the position of {topic}-{partition}")
        if found >= 0:
            return found
        if self.group is not None:  # where librdkafka starts: the committed offset ...
            committed = self._committed_map([tp]).get(tp)
            if committed is not None:
                return committed
        if self._reset == "error":  # ... else auto_offset_reset
            raise OffsetOutOfRangeError(f"no valid position for {topic}-{partition} and auto_offset_reset='error'")
        return self._offsets([tp], EARLIEST_TIMESTAMP if self._reset == "earliest" else LATEST_TIMESTAMP)[tp]

    def seek(self, topic: str, partition: int, offset: int) -> None:
        from confluent_kafka import TopicPartition as KafkaTopicPartition

        tp = TopicPartition(topic, partition)
        self._require_assigned(tp)
        offset = int(offset)
        if self._assigning is not None and tp in self._assigning_tps:
            self._assigning[tp] = offset  # inside on_assign: the offset it is assigned at
        else:
            try:
                self._ck.seek(KafkaTopicPartition(topic, partition, offset))
            except Exception as exc:  # noqa: BLE001
                raise_from_kafka(exc, f"cannot seek {topic}-{partition} to {offset}")
        self._positions[tp] = offset

    def seek_to_beginning(self, *partitions: tuple[str, int]) -> None:
        self._seek_to(partitions, EARLIEST_TIMESTAMP)

    def seek_to_end(self, *partitions: tuple[str, int]) -> None:
        self._seek_to(partitions, LATEST_TIMESTAMP)

    def _seek_to(self, partitions, timestamp: int) -> None:
        wanted = [TopicPartition(*tp) for tp in partitions or list(self._positions)]
        for tp in wanted:
            self._require_assigned(tp)
        for tp, offset in self._offsets(wanted, timestamp).items():
            self.seek(tp.topic, tp.partition, offset)

    def _remote_admin(self):
        if self._admin is None:
            from .remote_admin import RemoteAdmin

            self._admin = RemoteAdmin(self._bootstrap, request_timeout_ms=int(self._timeout * 1000),
                                      client_id=self._client_id, config=self._extra)
        return self._admin

    def offsets_for_times(self, timestamps: dict[tuple[str, int], int]) -> dict[TopicPartition, tuple[int, int] | None]:
        """Per partition the first (offset, timestamp) at or after the timestamp, None if none
        (-2 / -1: the log start offset / the high watermark, with timestamp -1)."""
        found = self._remote_admin().list_offsets_many({tuple(tp): ts for tp, ts in timestamps.items()})
        return {TopicPartition(*tp): value for tp, value in found.items()}

    def end_offsets(self, partitions: Iterable[tuple[str, int]] | None = None) -> dict[TopicPartition, int]:
        return self._offsets(partitions or list(self._positions), LATEST_TIMESTAMP)

    def pause(self, *partitions: tuple[str, int]) -> None:
        self._kafka_call("pause", partitions)

    def resume(self, *partitions: tuple[str, int]) -> None:
        self._kafka_call("resume", partitions)

    def _kafka_call(self, method: str, partitions) -> None:
        from confluent_kafka import TopicPartition as KafkaTopicPartition

        parts = [KafkaTopicPartition(*tp) for tp in partitions if TopicPartition(*tp) in self._positions]
        if parts:
            try:
                getattr(self._ck, method)(parts)
            except Exception as exc:  # noqa: BLE001
                raise_from_kafka(exc, f"cannot {method}")

    def at_end(self) -> bool:
        """True when every assigned partition has been read up to its high watermark."""
        return all(self.position(*tp) >= end for tp, end in self.end_offsets().items())

    # ---- committing ----------------------------------------------------------------------------

    def commit(self, offsets: dict[tuple[str, int], int] | None = None, *, asynchronous: bool = False):
        """Commit ``offsets`` ((topic, partition) -> next offset to read), by default the position of
        every assigned partition.  Synchronous: returns once the broker stored it, raises
        CommitFailedError if the group refused it.  ``asynchronous=True`` returns a Future."""
        if self.group is None:
            raise LogbrokerError("commit() needs a consumer created with group=...")
        self._check_open()
        if offsets is None:
            offsets = {tp: pos for tp, pos in self._positions.items() if pos is not None}
        offsets = {TopicPartition(*tp): int(off) for tp, off in offsets.items()}
        if not asynchronous:
            self._commit_now(offsets)
            return None
        return self._commit_in_background(offsets)

    def _commit_now(self, offsets: dict[TopicPartition, int]) -> None:
        from confluent_kafka import KafkaException
        from confluent_kafka import TopicPartition as KafkaTopicPartition

        if not offsets:
            return
        parts = [KafkaTopicPartition(tp.topic, tp.partition, off) for tp, off in offsets.items()]
        try:
            result = self._ck.commit(offsets=parts, asynchronous=False)
        except KafkaException as exc:
            error = exc.args[0]
            code = error.code()
            if code >= 0 or code in _COMMIT_LOCAL_CODES:
                raise CommitFailedError(f"group {self.group!r} refused the commit: {error.str()} "
                                        f"(Kafka error {error.name()}, code {code})", code,
                                        {tp: code for tp in offsets}) from None
            raise to_logbroker_error(error, f"commit for group {self.group!r} failed") from None
        failed = {TopicPartition(tp.topic, tp.partition): tp.error.code()
                  for tp in result or () if tp.error is not None}
        if failed:
            code = next(iter(failed.values()))
            raise CommitFailedError(f"group {self.group!r} refused the commit: Kafka error codes {failed}",
                                    code, failed)

    def _committed_map(self, wanted: list[TopicPartition]) -> dict[TopicPartition, int | None]:
        from confluent_kafka import TopicPartition as KafkaTopicPartition

        if not wanted:
            return {}
        try:
            found = self._ck.committed([KafkaTopicPartition(tp.topic, tp.partition) for tp in wanted],
                                       timeout=self._timeout)
        except Exception as exc:  # noqa: BLE001
            raise_from_kafka(exc, f"cannot read the committed offsets of group {self.group!r}")
        out = {}
        for tp in found:
            if tp.error is not None:
                raise to_logbroker_error(tp.error, f"committed offset of {tp.topic}-{tp.partition}")
            out[TopicPartition(tp.topic, tp.partition)] = tp.offset if tp.offset >= 0 else None
        return out

    def committed(self, partitions: Iterable[tuple[str, int]] | None = None) -> dict[TopicPartition, int | None]:
        """The group's committed offset per partition (None where nothing is committed)."""
        if self.group is None:
            raise LogbrokerError("committed() needs a consumer created with group=...")
        self._check_open()
        wanted = [TopicPartition(*tp) for tp in (partitions if partitions is not None else self.assignment())]
        found = self._committed_map(wanted)
        return {tp: found.get(tp) for tp in wanted}

    # ---- reading -------------------------------------------------------------------------------

    def poll(self, timeout: float = 0.0, max_records: int | None = None) -> list[Record]:
        """Up to ``max_records`` records, waiting at most ``timeout`` seconds for the first."""
        self._check_open()
        if self._pending_error is not None:
            error, self._pending_error = self._pending_error, None
            raise error
        limit = max_records or self._max_poll_records
        ck = self._ck
        try:
            first = ck.poll(max(0.0, timeout))
            if first is None:
                return []
            messages = [first]
            if limit > 1:
                messages += ck.consume(limit - 1, 0)
        except Exception as exc:  # noqa: BLE001 - KafkaException; callback errors pass through
            raise_from_kafka(exc, "poll failed")
        out: list[Record] = []
        positions = self._positions
        for message in messages:
            error = message.error()
            if error is not None:
                code = error.code()
                if code == _PARTITION_EOF:
                    continue
                if code == _MAX_POLL_EXCEEDED:
                    log.warning("consumer of group %s did not poll within max.poll.interval.ms; it left the group",
                                self.group)
                    continue
                exc = to_logbroker_error(error, "consume failed")
                if out:
                    self._pending_error = exc  # hand out what was read first
                    break
                raise exc
            ts_type, timestamp = message.timestamp()
            topic, partition, offset = message.topic(), message.partition(), message.offset()
            out.append(Record(topic, partition, offset, timestamp, 1 if ts_type == _LOG_APPEND_TIME else 0,
                              message.key(), message.value(), tuple(message.headers() or ())))
            positions[TopicPartition(topic, partition)] = offset + 1
        return out

    def __iter__(self) -> Iterator[Record]:
        while not self._closed:
            yield from self.poll(timeout=1.0)

    def close(self) -> None:
        """Commit (with auto-commit), leave the group so the partitions move at once, stop."""
        if self._closed:
            return
        try:
            self._ck.close()
        except Exception as exc:  # noqa: BLE001
            log.warning("closing the consumer: %s", exc)
        finally:
            self._closed = True
            if self._committer is not None:
                self._committer.shutdown(wait=True)
            if self._admin is not None:
                self._admin.close()


__all__ = ["RemoteConsumer"]
