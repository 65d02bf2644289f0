"""The embedded Queue: a member of a share group (KIP-932, "queues on the log").

A share group hands the records of its topics out one by one rather than partition by partition:
any number of Queues of one group read the same partitions, and the broker's share-group service
(``broker.shares``, ``broker/shares.py``) makes sure a record is held by at most one of them at a
time.  ``receive()`` *acquires* records: each comes with a lock of ``visibility_timeout`` seconds and
its ``delivery_count`` (1 the first time).  The holder then settles it:

- ``ack``: done, never delivered again;
- ``release`` (optionally after ``delay`` seconds): delivered again, to any member;
- ``reject``: never delivered again, copied to the ``dead_letter_topic`` if the group has one;
- nothing before the lock expires: delivered again, as after a release.

``for message in queue.messages():`` does that for you: a message whose loop body finishes is acked (the
acks are buffered and sent together before the next receive), one whose body raises is released.

A record delivered ``max_deliveries`` times whose last delivery was released or expired is archived
(and dead-lettered) instead of being delivered again.  Delivery counts are durable: a restart redelivers
what was held (count + 1) and never what was acknowledged.

``max_deliveries``, ``dead_letter_topic`` and ``auto_offset_reset`` are the *group's* settings (durable,
in ``__share_group_state``): a Queue writes those it is given (the last writer wins) and leaves the others
as they are; a group's first Queue starts it at ``auto_offset_reset="earliest"`` unless told otherwise
(Kafka's share groups default to "latest": records produced before the group existed are skipped), with
5 deliveries, no dead-letter topic and a ``visibility_timeout`` (the lock on each received record) of
30 s; a Queue given a ``visibility_timeout`` also uses it for its own receives whatever later writers say.

``Queue(bootstrap="host:port", ...)`` returns a ``RemoteQueue`` (remote_queue.py): the same methods and
Message type over confluent-kafka's ShareConsumer against ``logbroker serve`` or Kafka, minus what
Kafka's share protocol v1 lacks (a release delay, extend); ``__new__`` plugs it in, as for Consumer and
Producer.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from typing import Iterable, Iterator, NamedTuple

from ..errors import BrokerClosedError, LogbrokerError, UnknownTopicOrPartitionError
from ..groups.share_partition import ACCEPT, GAP, RELEASE, REJECT

log = logging.getLogger(__name__)

_WAIT_SLICE = 0.5  # longest single wait_for_records, so close() from another thread is noticed


class Message(NamedTuple):
    """A received record (the fields of ``logbroker.Record``) and the delivery it belongs to."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    timestamp_type: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]
    delivery_count: int  # 1 on the first delivery
    delivery_id: int     # identifies this delivery in acknowledgements (a later one never matches)


class AcknowledgementError(LogbrokerError):
    """The broker refused acknowledgements: the member no longer holds those deliveries (the visibility
    timeout expired and the record may be with another consumer, or it was already settled).

    ``errors`` maps (topic, partition) to Kafka's error code (121 INVALID_RECORD_STATE, 42
    INVALID_REQUEST); ``messages`` are the messages whose acknowledgement did not take effect.
    Every other message of the call was settled."""

    def __init__(self, message: str, errors: dict[tuple[str, int], int], messages: list[Message]):
        super().__init__(message)
        self.errors = errors
        self.messages = messages
        self.error_code = next(iter(errors.values()), -1)


def _remote_queue_class():
    from .remote_queue import RemoteQueue

    return RemoteQueue


def check_queue_arguments(topics, visibility_timeout, auto_offset_reset, max_records) -> list[str]:
    """The checks both Queues make of their arguments; returns the topics as a list."""
    topics = [topics] if isinstance(topics, str) else list(topics)
    if not topics:
        raise ValueError("a Queue needs at least one topic")
    if visibility_timeout is not None and not visibility_timeout > 0:
        raise ValueError(f"visibility_timeout must be > 0 seconds, not {visibility_timeout!r}")
    if auto_offset_reset not in (None, "earliest", "latest"):
        raise ValueError("auto_offset_reset must be 'earliest' or 'latest'")
    if not isinstance(max_records, int) or max_records < 1:
        raise ValueError(f"max_records must be a positive int, not {max_records!r}")
    return topics


class Queue:
    """A member of share group ``group`` reading ``topics`` of an embedded Broker, record by record
    (``bootstrap="host:port"`` instead of a Broker: a RemoteQueue, over the network).

    Create it with the broker and the group's name; ``close()`` (or ``with``) releases what it still
    holds at once and leaves the group.  Not meant to be shared between threads, except ``close()``."""

    def __new__(cls, broker=None, *args, bootstrap: str | None = None, **kwargs):
        if bootstrap is not None and cls is Queue:
            cls = _remote_queue_class()
        return object.__new__(cls)

    def __init__(self, broker=None, *, group: str, topics: Iterable[str], visibility_timeout: float | None = None,
                 max_deliveries: int | None = None, dead_letter_topic: str | None = None,
                 auto_offset_reset: str | None = None, member_id: str | None = None, max_records: int = 500,
                 bootstrap: str | None = None):
        if broker is None:
            raise TypeError("Queue needs a Broker (embedded)")
        if bootstrap is not None:
            raise ValueError("give either a Broker or bootstrap='host:port', not both")
        topics = check_queue_arguments(topics, visibility_timeout, auto_offset_reset, max_records)
        self._broker = broker
        self._shares = broker.shares
        self.group = group
        self.topics = topics
        self.member_id = member_id or uuid.uuid4().hex
        self._lock_ms = None if visibility_timeout is None else max(1, round(visibility_timeout * 1000))
        self._max_records = max_records
        self._lock = threading.Lock()
        self._to_ack: list[Message] = []     # accepted by messages(), sent before the next receive
        self._in_hand: Message | None = None  # yielded by messages(), not settled yet
        self._closed = False
        settings: dict = {}
        if self._lock_ms is not None:
            settings["lock_duration_ms"] = self._lock_ms
        if max_deliveries is not None:
            settings["delivery_count_limit"] = max_deliveries
        if dead_letter_topic is not None:
            settings["dead_letter_topic"] = dead_letter_topic
        new_group = group not in self._shares.list_groups()
        if auto_offset_reset is not None or new_group:
            settings["auto_offset_reset"] = auto_offset_reset or "earliest"
        if settings:
            self._shares.configure(group, **settings)
        self._shares.join(group, self.member_id, topics)

    def __enter__(self) -> "Queue":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- receiving ---------------------------------------------------------------------------

    def receive(self, max_records: int | None = None, timeout: float = 1.0) -> list[Message]:
        """Acquire up to ``max_records`` records across every partition of the topics, waiting at most
        ``timeout`` seconds for the first.  Sends the acknowledgements ``messages()`` buffered first."""
        self._check_open()
        self.flush()
        limit = max_records or self._max_records
        deadline = time.monotonic() + timeout
        while True:
            messages, gaps = self._acquire(limit)
            if messages:
                return messages
            remaining = deadline - time.monotonic()
            if gaps:
                continue  # only offsets without records: the next ones may have some
            if remaining <= 0:
                return []
            self._shares.wait_for_records(min(remaining, _WAIT_SLICE))
            self._check_open()

    def _partitions(self) -> list[tuple[str, int]]:
        """Every partition of the topics, counted again each time (partitions may be added)."""
        out = []
        for topic in self.topics:
            try:
                out += [(topic, p) for p in range(self._broker.partition_count(topic))]
            except UnknownTopicOrPartitionError:  # deleted meanwhile
                continue
        return out

    def _acquire(self, limit: int) -> tuple[list[Message], int]:
        """One acquisition: the messages, and how many acquired offsets had no record (compacted
        away); those are acknowledged as gaps at once."""
        messages: list[Message] = []
        gaps: dict[tuple[str, int], list[tuple[int, int, int]]] = {}
        partitions = self._partitions()
        with self._lock:  # no acquisition slips in after close() released everything
            self._check_open()
            acquired = self._shares.acquire(self.group, self.member_id, partitions, limit,
                                            lock_duration_ms=self._lock_ms)
        for part in acquired:
            records = {r.offset: r for r in self._shares.read(part.topic, part.partition, part.acquired)}
            for a in part.acquired:
                r = records.get(a.offset)
                if r is None:
                    gaps.setdefault((part.topic, part.partition), []).append((a.offset, a.delivery_id, GAP))
                else:
                    messages.append(Message(part.topic, part.partition, r.offset, r.timestamp, r.timestamp_type,
                                            r.key, r.value, r.headers, a.delivery_count, a.delivery_id))
        if gaps:
            codes = self._shares.acknowledge(self.group, self.member_id, gaps)
            if any(codes.values()):
                log.warning("share group %s refused the gap acknowledgements %s: %s", self.group, gaps, codes)
        return messages, sum(len(g) for g in gaps.values())

    def messages(self, timeout: float | None = None, max_records: int | None = None) -> Iterator[Message]:
        """Yield messages one by one; ack each one whose loop body finishes, release the one whose body
        raises (the exception propagates).

        Acks of processed messages are buffered and sent in one ``acknowledge`` call before the next
        ``receive`` (and when the loop ends), for throughput; an ``AcknowledgementError`` then comes
        out of the loop (those messages were processed, but their locks had expired: they may be
        delivered again).  A loop cannot tell ``break`` from an exception: leaving the loop either way
        releases the message in hand unless the body settled it itself (``ack``, ``release``,
        ``reject``), and releases the rest of the received batch (their delivery count stays counted).
        ``timeout=None`` runs until ``close()``; otherwise the loop ends after ``timeout`` seconds
        without messages."""
        batch: deque[Message] = deque()
        idle_since = time.monotonic()
        try:
            while not self._closed:
                wait = _WAIT_SLICE if timeout is None else timeout - (time.monotonic() - idle_since)
                if wait < 0:
                    return
                batch.extend(self._receive_unless_closed(max_records, wait))
                if batch:
                    idle_since = time.monotonic()
                while batch:
                    message = self._in_hand = batch.popleft()
                    yield message
                    if self._closed:  # closed by the body: close() released the rest
                        return
                    if self._in_hand is message:  # the body finished without settling it
                        self._to_ack.append(message)
                    self._in_hand = None
        finally:
            self._leave_loop(batch)

    def _receive_unless_closed(self, max_records: int | None, timeout: float) -> list[Message]:
        try:
            return self.receive(max_records, timeout)
        except BrokerClosedError:
            if self._closed:  # close() from another thread
                return []
            raise

    def _leave_loop(self, unyielded: deque[Message]) -> None:
        """The end of a messages() loop: send the buffered acks, release what was not processed.  Runs
        while the generator closes, where an exception could not reach the caller: failures are logged."""
        in_hand, self._in_hand = self._in_hand, None
        unprocessed = ([in_hand] if in_hand is not None else []) + list(unyielded)
        if self._closed:  # close() acknowledged the buffer and released everything else
            return
        try:
            self.flush()
        except LogbrokerError as exc:
            log.warning("share group %s: %s", self.group, exc)
        try:
            self.release(*unprocessed)
        except LogbrokerError as exc:
            log.warning("share group %s: could not release unprocessed messages: %s", self.group, exc)

    # ---- settling ----------------------------------------------------------------------------

    def ack(self, *messages: Message) -> None:
        """Processed: never delivered again.  Raises AcknowledgementError for messages this member no
        longer holds (all the others are acknowledged)."""
        self._settle(messages, ACCEPT)

    def release(self, *messages: Message, delay: float = 0.0) -> None:
        """Give back: delivered again (to any member) after ``delay`` seconds, or dead-lettered if this
        was the last delivery allowed."""
        if delay < 0:
            raise ValueError(f"delay must be >= 0 seconds, not {delay!r}")
        self._settle(messages, RELEASE, round(delay * 1000))

    def reject(self, *messages: Message) -> None:
        """Unprocessable: never delivered again; copied to the group's dead-letter topic, if any."""
        self._settle(messages, REJECT)

    def extend(self, message: Message, seconds: float) -> None:
        """Push the lock deadline of ``message`` back by ``seconds``, to work on it longer."""
        self._check_open()
        if seconds < 0:
            raise ValueError(f"seconds must be >= 0, not {seconds!r}")
        code = self._shares.extend(self.group, self.member_id, message.topic, message.partition,
                                   message.offset, message.delivery_id, round(seconds * 1000))
        if code:
            tp = (message.topic, message.partition)
            raise AcknowledgementError(f"cannot extend {_name(message)}: this member no longer holds that delivery "
                                       f"(Kafka error code {code})", {tp: code}, [message])

    def flush(self) -> None:
        """Send the acks ``messages()`` buffered now rather than before the next receive."""
        with self._lock:
            pending, self._to_ack = self._to_ack, []
        self._settle(pending, ACCEPT)

    def _settle(self, messages: Iterable[Message], ack_type: int, delay_ms: int = 0) -> None:
        """One acknowledge call for all ``messages``.  A partition's acks are all or nothing, so where a
        partition refuses, its acks are sent again one by one: every valid one takes effect and the
        error names exactly the messages that did not."""
        messages = list(messages)
        if not messages:
            return
        self._check_open()
        if self._in_hand is not None and self._in_hand in messages:
            self._in_hand = None
        by_partition: dict[tuple[str, int], list[Message]] = {}
        for m in messages:
            if not isinstance(m, Message):
                raise TypeError(f"expected Messages from receive(), not {type(m).__name__}")
            by_partition.setdefault((m.topic, m.partition), []).append(m)
        codes = self._acknowledge(by_partition, ack_type, delay_ms)
        errors: dict[tuple[str, int], int] = {}
        refused: list[Message] = []
        for tp, code in codes.items():
            if not code:
                continue
            errors[tp] = code
            if len(by_partition[tp]) == 1:
                refused += by_partition[tp]
                continue
            for m in by_partition[tp]:
                if self._acknowledge({tp: [m]}, ack_type, delay_ms).get(tp):
                    refused.append(m)
        if refused:
            names = ", ".join(_name(m) for m in refused[:5]) + (" ..." if len(refused) > 5 else "")
            raise AcknowledgementError(
                f"share group {self.group!r} refused {len(refused)} acknowledgement(s) ({names}); Kafka error codes "
                f"{ {f'{t}-{p}': c for (t, p), c in errors.items()} }: the visibility timeout may have expired and "
                f"the record may be with another consumer", errors, refused)

    def _acknowledge(self, by_partition: dict[tuple[str, int], list[Message]], ack_type: int,
                     delay_ms: int) -> dict[tuple[str, int], int]:
        acks = {tp: [(m.offset, m.delivery_id, ack_type) for m in ms] for tp, ms in by_partition.items()}
        return self._shares.acknowledge(self.group, self.member_id, acks, delay_ms=delay_ms)

    # ---- lifecycle ---------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise BrokerClosedError("the queue is closed")

    def close(self) -> None:
        """Send buffered acks, release every record this member still holds (others get them at once)
        and leave the group.  Idempotent."""
        with self._lock:
            if self._closed:
                return
        try:
            self.flush()
        except LogbrokerError as exc:
            log.warning("share group %s: %s", self.group, exc)
        finally:
            with self._lock:
                self._closed = True
            self._leave()

    def _leave(self) -> None:
        """The end of ``close()``: what this member holds goes back at once, and it leaves."""
        try:
            self._shares.release_member(self.group, self.member_id)
            self._shares.leave(self.group, self.member_id)
        except BrokerClosedError:
            pass


def _name(message: Message) -> str:
    return f"{message.topic}-{message.partition}@{message.offset}"


__all__ = ["AcknowledgementError", "Message", "Queue"]
