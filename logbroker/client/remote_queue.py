"""The network Queue: a member of a share group of a Kafka-protocol broker (``logbroker serve``, Kafka
4.2+), over confluent-kafka's ``ShareConsumer`` (librdkafka 2.16, KIP-932).

``Queue(bootstrap="host:port", group=..., topics=[...])`` returns a RemoteQueue.  It has the embedded
Queue's methods and ``Message`` type: ``receive`` acquires records (each with its ``delivery_count``),
``ack`` / ``release`` / ``reject`` settle them, ``messages()`` acks what its loop body finishes and
releases the message whose body raises, ``close()`` sends what is buffered and leaves the group (the
broker releases whatever this member still holds at once).

The group's settings are written before the consumer joins, with IncrementalAlterConfigs under
Kafka's group config names: ``visibility_timeout`` -> ``share.record.lock.duration.ms``,
``max_deliveries`` -> ``share.delivery.count.limit``, ``dead_letter_topic`` ->
``errors.deadletterqueue.topic.name`` ("" for none), ``auto_offset_reset`` ->
``share.auto.offset.reset``.  Settings not given are left as they are, except that a group whose
``share.auto.offset.reset`` follows the broker's default (DescribeConfigs shows it with source
DEFAULT_CONFIG, not GROUP_CONFIG) is set to ``earliest``, as the embedded Queue starts a new group:
records produced before the group existed are delivered.

What differs from the embedded Queue, because Kafka's share protocol v1 (all librdkafka 2.16 speaks)
says so:

- every message of a ``receive`` must be settled (ack, release or reject) before the next
  ``receive``: librdkafka's explicit acknowledgement mode refuses to fetch again before that.
  RemoteQueue raises UnsettledMessagesError, naming the messages, instead of fetching;
- ``release(delay=...)`` with a delay and ``extend()`` raise UnsupportedOperationError: v1 has no
  release delay and no RENEW acknowledgement.  The lock duration is the group's
  (``visibility_timeout`` sets it for every member), not one Queue's;
- ``ack`` / ``release`` / ``reject`` acknowledge and then ``commit_sync``: one ShareAcknowledge round
  trip per call (``messages()`` buffers its acks and sends them in one commit before the next fetch).
  A partition's acknowledgements are applied all or nothing, so AcknowledgementError lists every
  message of a refused partition in that call (121 INVALID_RECORD_STATE: the lock had expired and
  the record may be with another consumer);
- librdkafka chooses the member id (``member_id`` is None); ``max_records`` is also the size of
  each fetch (``max.poll.records``): a ``receive(max_records=n)`` with a smaller n hands out n and
  keeps the rest, locked to this member, for the next ``receive``.

confluent-kafka's errors become logbroker errors as for the network Consumer (``remote_common``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Iterable

from ..errors import LogbrokerError
from ..groups.share_partition import RELEASE
from .queue import AcknowledgementError, Message, Queue, _name, check_queue_arguments
from .remote_common import UNSUPPORTED_FEATURE, RemoteKafkaError, base_config, raise_from_kafka, to_logbroker_error

log = logging.getLogger("logbroker.client.remote")

INVALID_RECORD_STATE = 121
GROUP_CONFIG_SOURCE = 8  # DescribeConfigs' ConfigSource GROUP_CONFIG: set for the group itself
CONFIG_NAMES = {  # Queue argument's setting -> Kafka's group config
    "lock_duration_ms": "share.record.lock.duration.ms",
    "delivery_count_limit": "share.delivery.count.limit",
    "dead_letter_topic": "errors.deadletterqueue.topic.name",
    "auto_offset_reset": "share.auto.offset.reset",
}
_POLL_SLICE = 0.5  # longest single poll, so that close() from another thread is not kept waiting
_LOG_APPEND_TIME = 2  # confluent_kafka.TIMESTAMP_LOG_APPEND_TIME
_RECORD_PROBLEMS = {-188, -190, 3, 2, -144, -170}  # unknown topic/partition, corrupt or bad-format records


class UnsupportedOperationError(LogbrokerError):
    """What the embedded Queue does but Kafka's share protocol v1 (librdkafka 2.16) cannot: a release
    delay, extending a lock."""


class UnsettledMessagesError(LogbrokerError):
    """``receive`` before every message of the previous ``receive`` was settled; ``messages`` are those."""

    def __init__(self, message: str, messages: list[Message]):
        super().__init__(message)
        self.messages = messages


class RemoteQueue(Queue):
    """A member of share group ``group`` of the broker at ``bootstrap``, reading ``topics``."""

    def __init__(self, broker=None, *, bootstrap: str | None = None, group: str, topics: Iterable[str],
                 visibility_timeout: float | None = None, max_deliveries: int | None = None,
                 dead_letter_topic: str | None = None, auto_offset_reset: str | None = None,
                 member_id: str | None = None, max_records: int = 500, client_id: str = "logbroker",
                 request_timeout_ms: int = 30000, config: dict | None = None):
        if broker is not None:
            raise ValueError("give either a Broker or bootstrap='host:port', not both")
        if member_id is not None:
            raise ValueError("over the network librdkafka chooses the member id: leave member_id out")
        if not isinstance(group, str) or not group:
            raise ValueError("a Queue needs a non-empty group")
        topics = check_queue_arguments(topics, visibility_timeout, auto_offset_reset, max_records)
        from confluent_kafka import ShareConsumer

        self.group = group
        self.topics = topics
        self.member_id = None
        self._bootstrap = bootstrap
        self._max_records = max_records
        self._timeout = request_timeout_ms / 1000.0
        self._closed = False
        self._consumer_closed = False
        self._lock = threading.Lock()         # the buffered acks (as the embedded Queue's)
        self._io = threading.RLock()          # one ShareConsumer call at a time (it is not thread-safe)
        self._to_ack: list[Message] = []      # accepted by messages(), sent before the next receive
        self._in_hand: Message | None = None  # yielded by messages(), not settled yet
        self._outstanding: dict[tuple[str, int, int], tuple[Message, object]] = {}  # handed out, not settled
        self._buffer: deque[tuple[Message, object]] = deque()  # fetched, not handed out yet
        self._deliveries = 0
        self._pending_error: BaseException | None = None
        self._ack_failures: dict[tuple[str, int, int], int] = {}
        extra = dict(config or {})
        settings: dict = {}
        if visibility_timeout is not None:
            settings[CONFIG_NAMES["lock_duration_ms"]] = max(1, round(visibility_timeout * 1000))
        if max_deliveries is not None:
            settings[CONFIG_NAMES["delivery_count_limit"]] = int(max_deliveries)
        if dead_letter_topic is not None:
            settings[CONFIG_NAMES["dead_letter_topic"]] = dead_letter_topic
        if auto_offset_reset is not None:
            settings[CONFIG_NAMES["auto_offset_reset"]] = auto_offset_reset
        self._configure_group(settings, auto_offset_reset is None, client_id, request_timeout_ms, extra)
        consumer_settings = {"group.id": group, "share.acknowledgement.mode": "explicit",
                             "max.poll.records": max_records, "error_cb": self._error, **extra}
        try:
            self._ck = ShareConsumer(base_config(bootstrap, client_id, consumer_settings))
        except Exception as exc:  # noqa: BLE001 - KafkaException / ValueError for bad settings
            if isinstance(exc, (ValueError, TypeError)):
                raise
            raise_from_kafka(exc, "cannot create the share consumer")
        try:
            self._ck.set_acknowledgement_commit_callback(self._acknowledged)
            self._ck.subscribe(topics)
        except BaseException as exc:
            self._closed = self._consumer_closed = True
            try:
                self._ck.close()
            except Exception:  # noqa: BLE001 - the first error is the one to report
                pass
            raise_from_kafka(exc, f"cannot subscribe to {topics}")

    def _configure_group(self, settings: dict, default_reset: bool, client_id: str, request_timeout_ms: int,
                         extra: dict) -> None:
        """Write the given settings; a group following the default offset reset starts at earliest."""
        from .remote_admin import RemoteAdmin

        with RemoteAdmin(self._bootstrap, request_timeout_ms=request_timeout_ms, client_id=client_id,
                         config=extra) as admin:
            if default_reset:
                try:
                    current = admin.group_configs(self.group)
                except RemoteKafkaError as exc:
                    if exc.error_code != UNSUPPORTED_FEATURE:
                        raise
                    current = None  # the broker has no group configs: leave it as it is
                    log.warning("share group %s: the broker at %s does not describe group configs; "
                                "share.auto.offset.reset stays as it is", self.group, self._bootstrap)
                if current is not None:
                    reset = current.get(CONFIG_NAMES["auto_offset_reset"])
                    if reset is None or reset[1] != GROUP_CONFIG_SOURCE:
                        settings[CONFIG_NAMES["auto_offset_reset"]] = "earliest"
            admin.alter_group_configs(self.group, set=settings)

    @property
    def bootstrap(self) -> str:
        return self._bootstrap

    def __repr__(self) -> str:
        return f"<RemoteQueue bootstrap={self._bootstrap!r} group={self.group!r} topics={self.topics!r}>"

    # ---- librdkafka's callbacks (called from inside poll / commit_sync / close, this thread) -------

    def _error(self, error) -> None:
        if error.fatal():
            self._pending_error = to_logbroker_error(error, f"the share consumer of group {self.group!r} failed")
        else:
            log.warning("share consumer of group %s: %s", self.group, error.str())

    def _acknowledged(self, offsets, exc) -> None:
        if exc is None:
            return
        error = exc.args[0] if getattr(exc, "args", None) else None
        code = error.code() if hasattr(error, "code") else -1
        for tp, acked in (offsets or {}).items():
            for offset in acked:
                self._ack_failures[(tp.topic, tp.partition, offset)] = code

    def _raise_pending(self) -> None:
        if self._pending_error is not None:
            error, self._pending_error = self._pending_error, None
            raise error

    # ---- receiving -----------------------------------------------------------------------------

    def receive(self, max_records: int | None = None, timeout: float = 1.0) -> list[Message]:
        """Up to ``max_records`` records across every partition of the topics, waiting at most
        ``timeout`` seconds for the first.  Sends the acknowledgements ``messages()`` buffered first;
        raises UnsettledMessagesError while a message of the previous receive is not settled."""
        self._check_open()
        self._raise_pending()
        self.flush()
        if self._outstanding:
            held = [m for m, _ in self._outstanding.values()]
            names = ", ".join(_name(m) for m in held[:5]) + (" ..." if len(held) > 5 else "")
            raise UnsettledMessagesError(
                f"{len(held)} message(s) of the previous receive are not settled ({names}): Kafka's share "
                f"protocol (explicit acknowledgement) needs every message of a receive acknowledged with ack, "
                f"release or reject before the next receive", held)
        limit = max_records or self._max_records
        if not self._buffer:
            self._fetch(timeout)
        out = [self._buffer.popleft() for _ in range(min(limit, len(self._buffer)))]
        for message, raw in out:
            self._outstanding[(message.topic, message.partition, message.offset)] = (message, raw)
        return [message for message, _ in out]

    def _fetch(self, timeout: float) -> None:
        """Poll until records come or ``timeout`` passes, in slices (close() may come from another thread)."""
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            with self._io:
                if self._closed:
                    return
                remaining = deadline - time.monotonic()
                try:
                    batch = self._ck.poll(max(0.0, min(remaining, _POLL_SLICE)))
                except Exception as exc:  # noqa: BLE001 - KafkaException / IllegalStateException
                    raise_from_kafka(exc, f"receive from share group {self.group!r} failed")
            self._take(batch)
            if not self._buffer:
                self._raise_pending()  # with records in hand, the error waits for the next receive
            if self._buffer or deadline - time.monotonic() <= 0:
                return

    def _take(self, batch) -> None:
        for raw in batch or ():
            error = raw.error()
            if error is not None:
                if error.code() in _RECORD_PROBLEMS:  # librdkafka settled those records itself, or a topic is missing
                    log.warning("share group %s: %s", self.group, error.str())
                    continue
                if self._pending_error is None:
                    self._pending_error = to_logbroker_error(error, f"receive from share group {self.group!r}")
                continue
            ts_type, timestamp = raw.timestamp()
            self._deliveries += 1
            message = Message(raw.topic(), raw.partition(), raw.offset(), timestamp,
                              1 if ts_type == _LOG_APPEND_TIME else 0, raw.key(), raw.value(),
                              tuple(raw.headers() or ()), raw.delivery_count() or 1, self._deliveries)
            self._buffer.append((message, raw))

    # ---- settling --------------------------------------------------------------------------------

    def release(self, *messages: Message, delay: float = 0.0) -> None:
        """Give back: delivered again at once (to any member), or dead-lettered if this was the last
        delivery allowed.  Kafka's share protocol has no release delay: ``delay`` > 0 raises."""
        if delay < 0:
            raise ValueError(f"delay must be >= 0 seconds, not {delay!r}")
        if delay > 0:
            raise UnsupportedOperationError(
                "release(delay=...) is not possible over the network: Kafka's share protocol (v1) has no "
                "release delay; release without one (the record is available again at once)")
        self._settle(messages, RELEASE)

    def extend(self, message: Message, seconds: float) -> None:
        raise UnsupportedOperationError(
            "extend() is not possible over the network: Kafka's share protocol v1 (librdkafka 2.16) has no "
            "RENEW acknowledgement; give the group a longer visibility_timeout (share.record.lock.duration.ms)")

    def _settle(self, messages: Iterable[Message], ack_type: int, delay_ms: int = 0) -> None:
        """Acknowledge ``messages`` and send them in one commit; AcknowledgementError names those
        that did not take effect (every other one did)."""
        messages = list(messages)
        if not messages:
            return
        self._check_open()
        for m in messages:
            if not isinstance(m, Message):
                raise TypeError(f"expected Messages from receive(), not {type(m).__name__}")
        if self._in_hand is not None and self._in_hand in messages:
            self._in_hand = None
        from confluent_kafka import IllegalStateException

        errors: dict[tuple[str, int], int] = {}
        refused: list[Message] = []
        acked: list[Message] = []
        with self._io:
            for m in messages:
                key = (m.topic, m.partition, m.offset)
                entry = self._outstanding.get(key)
                if entry is None or entry[0].delivery_id != m.delivery_id:  # settled already, or not this delivery
                    errors[(m.topic, m.partition)] = INVALID_RECORD_STATE
                    refused.append(m)
                    continue
                del self._outstanding[key]
                try:
                    self._ck.acknowledge(entry[1], ack_type)
                except IllegalStateException:  # librdkafka no longer holds it (its session was reset)
                    errors[(m.topic, m.partition)] = INVALID_RECORD_STATE
                    refused.append(m)
                    continue
                except Exception as exc:  # noqa: BLE001
                    raise_from_kafka(exc, f"cannot acknowledge {_name(m)}")
                acked.append(m)
            if acked:
                self._commit(acked, errors, refused)
        if refused:
            names = ", ".join(_name(m) for m in refused[:5]) + (" ..." if len(refused) > 5 else "")
            raise AcknowledgementError(
                f"share group {self.group!r} refused {len(refused)} acknowledgement(s) ({names}); Kafka error codes "
                f"{ {f'{t}-{p}': c for (t, p), c in errors.items()} }: the visibility timeout may have expired and "
                f"the record may be with another consumer", errors, refused)

    def _commit(self, acked: list[Message], errors: dict, refused: list) -> None:
        """commit_sync the acknowledgements made (under ``_io``); failures into ``errors`` / ``refused``."""
        from confluent_kafka import KafkaException

        self._ack_failures = {}
        try:
            result = self._ck.commit_sync(self._timeout)
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            code = error.code() if hasattr(error, "code") else -1
            for m in acked:
                errors[(m.topic, m.partition)] = code
            refused += acked
            return
        except Exception as exc:  # noqa: BLE001 - IllegalStateException (closed meanwhile)
            raise_from_kafka(exc, f"cannot commit the acknowledgements of share group {self.group!r}")
        by_partition = {}
        for tp, exc in (result or {}).items():
            if exc is not None:
                error = exc.args[0] if exc.args else None
                by_partition[(tp.topic, tp.partition)] = error.code() if hasattr(error, "code") else -1
        failures, self._ack_failures = self._ack_failures, {}
        for m in acked:
            code = failures.get((m.topic, m.partition, m.offset)) or by_partition.get((m.topic, m.partition))
            if code:
                errors[(m.topic, m.partition)] = code
                refused.append(m)

    # ---- lifecycle -------------------------------------------------------------------------------

    def _leave(self) -> None:
        """Closing the ShareConsumer leaves the group; the broker releases what it still holds."""
        with self._io:  # a receive in another thread finishes its poll slice first
            if not self._consumer_closed:
                self._consumer_closed = True
                self._buffer.clear()
                self._outstanding.clear()
                try:
                    self._ck.close()
                except Exception as exc:  # noqa: BLE001
                    log.warning("closing the share consumer of group %s: %s", self.group, exc)


__all__ = ["CONFIG_NAMES", "RemoteQueue", "UnsettledMessagesError", "UnsupportedOperationError"]
