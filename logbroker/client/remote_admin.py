"""Administration of a Kafka-protocol broker (``logbroker serve``, Kafka, Redpanda) over
``confluent_kafka.admin.AdminClient``: what the CLI needs when it talks to a server.

The methods mirror the embedded Broker's where the CLI uses both (``list_topics``, ``topic``,
``partition_count``, ``create_topic``, ``describe_topic``, ``alter_topic_config``, ``delete_topic``,
``create_partitions``, ``list_offsets``) and take the embedded group coordinator's shapes for groups
(``list_groups``, ``fetch_offsets``, ``lag``, ``delete_groups``), so one piece of CLI code formats
either.  ``group_configs`` / ``alter_group_configs`` read and change a group's configs (share groups:
``client.remote_queue``).  What the protocol does not carry is None: a group's generation and leader (DescribeGroups
has neither), a partition's segment count and size on disk.

Every call waits at most ``request_timeout_ms``; errors are logbroker errors carrying the Kafka
error code (``remote_common.to_logbroker_error``).  An API the broker does not serve fails with
RemoteKafkaError whose ``error_code`` is librdkafka's _UNSUPPORTED_FEATURE (-165).
"""

from __future__ import annotations

import concurrent.futures
import time
import uuid
import warnings
from typing import NamedTuple

from ..errors import InvalidPartitionsError, LogbrokerError, RequestTimedOutError
from ..storage.log import EARLIEST_TIMESTAMP, LATEST_TIMESTAMP
from .remote_common import UNSUPPORTED_FEATURE, base_config, partition_count, to_logbroker_error

_STATES = {"UNKNOWN": "Unknown", "PREPARING_REBALANCING": "PreparingRebalance",
           "COMPLETING_REBALANCING": "CompletingRebalance", "STABLE": "Stable", "DEAD": "Dead", "EMPTY": "Empty"}
_GROUP_ID_NOT_FOUND = 69
_RETRY_CODES = {-190, -188, 3, 5, 6}  # unknown partition / topic (stale metadata), no leader, not leader
_ZERO_UUID = "AAAAAAAAAAAAAAAAAAAAAA"


class RemoteTopic(NamedTuple):
    name: str
    partitions: int
    topic_id: str | None


class RemoteAdmin:
    """Topics, offsets and consumer groups of the broker at ``bootstrap`` (``host:port``)."""

    remote = True

    def __init__(self, bootstrap: str, *, request_timeout_ms: int = 30000, client_id: str = "logbroker",
                 config: dict | None = None):
        from confluent_kafka.admin import AdminClient

        self.bootstrap = bootstrap
        self._timeout = request_timeout_ms / 1000.0
        self._client_id = client_id
        self._config = dict(config or {})
        # an AdminClient is a producer inside librdkafka: without this its metadata requests would
        # create the topics they ask about on brokers that auto-create topics
        settings = {"allow.auto.create.topics": False, **self._config}
        try:
            self._admin = AdminClient(base_config(bootstrap, client_id, settings))
        except Exception as exc:  # noqa: BLE001 - KafkaException for bad settings
            raise to_logbroker_error(exc, "cannot create the admin client") from None
        self._consumer = None  # for reading a record's timestamp (group lag in ms)

    def __enter__(self) -> "RemoteAdmin":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._consumer is not None:
            try:
                self._consumer.close()
            finally:
                self._consumer = None

    def __repr__(self) -> str:
        return f"<RemoteAdmin bootstrap={self.bootstrap!r}>"

    # ---- plumbing ------------------------------------------------------------------------------

    def _wait(self, future, context: str):
        from confluent_kafka import KafkaException

        try:
            return future.result(timeout=self._timeout + 5)
        except KafkaException as exc:
            raise to_logbroker_error(exc.args[0] if exc.args else exc, context) from None
        except concurrent.futures.TimeoutError:
            raise RequestTimedOutError(
                f"{context}: no answer from {self.bootstrap} within {self._timeout:g} s") from None

    def _call(self, method: str, *args, **kwargs):
        from confluent_kafka import KafkaException

        kwargs.setdefault("request_timeout", self._timeout)
        try:
            return getattr(self._admin, method)(*args, **kwargs)
        except KafkaException as exc:
            raise to_logbroker_error(exc.args[0] if exc.args else exc, method) from None

    # ---- topics --------------------------------------------------------------------------------

    def list_topics(self) -> list[str]:
        try:
            metadata = self._admin.list_topics(timeout=self._timeout)
        except Exception as exc:  # noqa: BLE001 - KafkaException
            raise to_logbroker_error(exc, f"cannot list the topics of {self.bootstrap}") from None
        return sorted(metadata.topics)

    def partition_count(self, name: str) -> int:
        return partition_count(self._admin, name, self._timeout)

    def topic(self, name: str) -> RemoteTopic:
        """Name, partition count and topic id (None where the broker reports none)."""
        from confluent_kafka import TopicCollection

        futures = self._call("describe_topics", TopicCollection([name]))
        try:
            description = self._wait(futures[name], f"topic {name!r}")
        except LogbrokerError as exc:
            if getattr(exc, "error_code", None) != UNSUPPORTED_FEATURE:
                raise
            return RemoteTopic(name, self.partition_count(name), None)
        topic_id = str(description.topic_id) if description.topic_id is not None else None
        return RemoteTopic(name, len(description.partitions), None if topic_id in (None, "", _ZERO_UUID) else topic_id)

    def create_topic(self, name: str, partitions: int = 1, config: dict | None = None) -> RemoteTopic:
        from confluent_kafka.admin import NewTopic

        if not isinstance(partitions, int) or partitions < 1:
            raise InvalidPartitionsError(f"partitions must be a positive int, got {partitions!r}")
        futures = self._call("create_topics", [NewTopic(name, partitions, -1, config=dict(config or {}))],
                             operation_timeout=self._timeout)
        self._wait(futures[name], f"cannot create topic {name!r}")
        return RemoteTopic(name, partitions, None)

    def delete_topic(self, name: str) -> None:
        futures = self._call("delete_topics", [name], operation_timeout=self._timeout)
        self._wait(futures[name], f"cannot delete topic {name!r}")

    def create_partitions(self, name: str, total: int) -> None:
        from confluent_kafka.admin import NewPartitions

        futures = self._call("create_partitions", [NewPartitions(name, total)], operation_timeout=self._timeout)
        self._wait(futures[name], f"cannot create partitions of topic {name!r}")

    def topic_configs(self, name: str) -> tuple[dict[str, str], dict[str, str]]:
        """(effective config, overrides) of topic ``name`` (DescribeConfigs)."""
        from confluent_kafka.admin import ConfigResource, ConfigSource

        resource = ConfigResource("topic", name)
        futures = self._call("describe_configs", [resource])
        entries = self._wait(next(iter(futures.values())), f"cannot read the configs of topic {name!r}")
        config = {k: e.value for k, e in sorted(entries.items())}
        topic_level = int(ConfigSource.DYNAMIC_TOPIC_CONFIG.value)
        overrides = {k: e.value for k, e in sorted(entries.items())
                     if int(getattr(e.source, "value", e.source)) == topic_level and not e.is_default}
        return config, overrides

    def describe_topic(self, name: str) -> dict:
        """The embedded Broker's ``describe_topic`` shape; ``segments`` and ``size_bytes`` are None
        (not carried by the protocol), ``config`` / ``overrides`` None where DescribeConfigs is not served."""
        meta = self.topic(name)
        try:
            config, overrides = self.topic_configs(name)
        except LogbrokerError as exc:
            if getattr(exc, "error_code", None) != UNSUPPORTED_FEATURE:
                raise
            config = overrides = None
        wanted = [(name, p) for p in range(meta.partitions)]
        starts = self.list_offsets_many({tp: EARLIEST_TIMESTAMP for tp in wanted})
        ends = self.list_offsets_many({tp: LATEST_TIMESTAMP for tp in wanted})
        partitions = [{"partition": p, "log_start_offset": starts[tp][0], "log_end_offset": ends[tp][0],
                       "high_watermark": ends[tp][0], "segments": None, "size_bytes": None}
                      for tp in wanted for p in [tp[1]]]
        return {"name": meta.name, "topic_id": meta.topic_id, "partitions": partitions, "config": config,
                "overrides": overrides}

    def alter_topic_config(self, name: str, set: dict | None = None, delete: list | None = None) -> dict[str, str]:
        """Set and/or remove config overrides (IncrementalAlterConfigs, else AlterConfigs); return
        the topic's overrides afterwards."""
        from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

        changes = dict(set or {})
        removed = list(delete or ())
        entries = [ConfigEntry(k, str(v), incremental_operation=AlterConfigOpType.SET) for k, v in changes.items()]
        entries += [ConfigEntry(k, None, incremental_operation=AlterConfigOpType.DELETE) for k in removed]
        context = f"cannot change the configs of topic {name!r}"
        try:
            resource = ConfigResource("topic", name, incremental_configs=entries)
            futures = self._call("incremental_alter_configs", [resource])
            self._wait(next(iter(futures.values())), context)
        except LogbrokerError as exc:
            if getattr(exc, "error_code", None) != UNSUPPORTED_FEATURE:
                raise
            self._alter_configs_legacy(name, changes, removed, context)
        return self.topic_configs(name)[1]

    def _alter_configs_legacy(self, name: str, changes: dict, removed: list, context: str) -> None:
        """AlterConfigs replaces every override: read them, apply the change, send them all."""
        from confluent_kafka.admin import ConfigResource

        try:
            overrides = self.topic_configs(name)[1]
        except LogbrokerError as exc:
            if getattr(exc, "error_code", None) == UNSUPPORTED_FEATURE:
                raise self._no_config_change() from None
            raise
        for key in removed:
            overrides.pop(key, None)
        overrides.update({k: str(v) for k, v in changes.items()})
        try:
            with warnings.catch_warnings():  # deprecated in confluent-kafka, still what old brokers serve
                warnings.simplefilter("ignore", DeprecationWarning)
                futures = self._call("alter_configs", [ConfigResource("topic", name, set_config=overrides)])
            self._wait(next(iter(futures.values())), context)
        except LogbrokerError as exc:
            if getattr(exc, "error_code", None) == UNSUPPORTED_FEATURE:
                raise self._no_config_change() from None
            raise

    def _no_config_change(self) -> LogbrokerError:
        from .remote_common import RemoteKafkaError

        return RemoteKafkaError(f"the broker at {self.bootstrap} does not support changing topic configs "
                                f"(neither IncrementalAlterConfigs nor AlterConfigs); change them where the "
                                f"broker runs", UNSUPPORTED_FEATURE)

    # ---- share-group configs ---------------------------------------------------------------------

    def group_configs(self, group: str) -> dict[str, tuple[str | None, int]]:
        """The configs of group ``group`` (DescribeConfigs, resource type GROUP): name -> (value,
        config source), the source as Kafka numbers it (8 GROUP_CONFIG: set for the group, 5 DEFAULT_CONFIG)."""
        from confluent_kafka.admin import ConfigResource, ResourceType

        futures = self._call("describe_configs", [ConfigResource(ResourceType.GROUP, group)])
        entries = self._wait(next(iter(futures.values())), f"cannot read the configs of group {group!r}")
        return {name: (e.value, int(getattr(e.source, "value", e.source))) for name, e in sorted(entries.items())}

    def alter_group_configs(self, group: str, set: dict | None = None, delete: list | None = None) -> None:
        """Set and/or remove (back to the broker's default) configs of group ``group`` in one
        IncrementalAlterConfigs request, under Kafka's group config names (``share.auto.offset.reset``,
        ``share.record.lock.duration.ms``, ...)."""
        from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

        entries = [ConfigEntry(k, str(v), incremental_operation=AlterConfigOpType.SET) for k, v in (set or {}).items()]
        entries += [ConfigEntry(k, None, incremental_operation=AlterConfigOpType.DELETE) for k in delete or ()]
        if not entries:
            return
        resource = ConfigResource(ResourceType.GROUP, group, incremental_configs=entries)
        futures = self._call("incremental_alter_configs", [resource])
        self._wait(next(iter(futures.values())), f"cannot change the configs of group {group!r}")

    # ---- offsets -------------------------------------------------------------------------------

    def list_offsets(self, topic: str, partition: int, timestamp: int) -> tuple[int, int] | None:
        """As the embedded Broker: -2 gives (log start offset, -1), -1 (high watermark, -1), any other
        timestamp the first (offset, timestamp) at or after it, or None when there is none."""
        return self.list_offsets_many({(topic, partition): timestamp})[(topic, partition)]

    def list_offsets_many(self, wanted: dict[tuple[str, int], int]) -> dict[tuple[str, int], tuple[int, int] | None]:
        """``list_offsets`` for many partitions in one request per broker."""
        from confluent_kafka import TopicPartition
        from confluent_kafka.admin import OffsetSpec

        if not wanted:
            return {}
        out: dict[tuple[str, int], tuple[int, int] | None] = {}
        left = dict(wanted)
        deadline = time.monotonic() + self._timeout
        while True:
            specs = {}
            for (topic, partition), ts in left.items():
                spec = (OffsetSpec.earliest() if ts == EARLIEST_TIMESTAMP else OffsetSpec.latest()
                        if ts == LATEST_TIMESTAMP else OffsetSpec.for_timestamp(ts))
                specs[TopicPartition(topic, partition)] = spec
            futures = self._call("list_offsets", specs)
            retry = {}
            for tp, future in futures.items():
                key = (tp.topic, tp.partition)
                try:
                    info = self._wait(future, f"cannot list the offsets of {tp.topic}-{tp.partition}")
                except LogbrokerError as exc:
                    code = getattr(getattr(exc, "kafka_error", None), "code", lambda: None)()
                    if code in _RETRY_CODES and time.monotonic() < deadline:
                        retry[key] = left[key]  # metadata not yet caught up (a partition just created)
                        continue
                    raise
                out[key] = None if info.offset < 0 else (info.offset, info.timestamp)
            if not retry:
                return out
            left = retry
            time.sleep(0.1)

    # ---- consumer groups -----------------------------------------------------------------------

    def list_groups(self) -> list[tuple[str, str, str]]:
        """(group id, protocol type, state) per group, as the embedded coordinator's list_groups."""
        result = self._wait(self._call("list_consumer_groups"), "cannot list the consumer groups")
        if not result.valid and result.errors:
            raise to_logbroker_error(result.errors[0], "cannot list the consumer groups")
        groups = [(g.group_id, "" if g.is_simple_consumer_group else "consumer", _state_name(g.state))
                  for g in result.valid]
        if any(state == "Unknown" for _g, _t, state in groups):  # ListGroups before v4 has no states
            groups = [(g, t, self._state_or_unknown(g) if state == "Unknown" else state) for g, t, state in groups]
        return sorted(groups)

    def _state_or_unknown(self, group_id: str) -> str:
        try:
            return self.group_state(group_id)
        except LogbrokerError:  # DescribeGroups not served either
            return "Unknown"

    def group_state(self, group_id: str) -> str:
        return self._describe(group_id)["state"]

    def _describe(self, group_id: str) -> dict:
        futures = self._call("describe_consumer_groups", [group_id])
        try:
            d = self._wait(futures[group_id], f"cannot describe group {group_id!r}")
        except LogbrokerError as exc:
            if exc.error_code != _GROUP_ID_NOT_FOUND:
                raise
            return {"state": "Dead", "protocol_type": "", "protocol": "", "members": []}
        members = [{"member_id": m.member_id, "group_instance_id": m.group_instance_id, "client_id": m.client_id,
                    "client_host": m.host,
                    "assignment": sorted([tp.topic, tp.partition] for tp in
                                         (m.assignment.topic_partitions if m.assignment else ()))}
                   for m in d.members]
        return {"state": _state_name(d.state), "protocol_type": "" if d.is_simple_consumer_group else "consumer",
                "protocol": d.partition_assignor or "", "members": members}

    def describe_group(self, group_id: str) -> dict:
        """What ``logbroker group describe`` shows (the CLI's shape); ``generation`` and ``leader``
        are None: DescribeGroups does not carry them."""
        d = self._describe(group_id)
        owners = {(t, p): m["member_id"] for m in d["members"] for t, p in m["assignment"]}
        offsets = []
        for row in self.lag(group_id):
            row["member_id"] = owners.get((row["topic"], row["partition"]))
            offsets.append(row)
        committed = {(r["topic"], r["partition"]) for r in offsets}
        unassigned = [tp for tp in sorted(owners) if tp not in committed]
        ends = self.list_offsets_many({tp: LATEST_TIMESTAMP for tp in unassigned})
        for tp in unassigned:  # assigned, nothing committed yet
            end = ends.get(tp)
            offsets.append({"topic": tp[0], "partition": tp[1], "committed": None, "metadata": None,
                            "log_end_offset": None if end is None else end[0], "lag": None, "lag_ms": None,
                            "member_id": owners[tp]})
        offsets.sort(key=lambda r: (r["topic"], r["partition"]))
        return {"group": group_id, "state": d["state"], "protocol_type": d["protocol_type"],
                "protocol": d["protocol"], "generation": None, "leader": None, "members": d["members"],
                "offsets": offsets}

    def fetch_offsets(self, group_id: str, partitions: list[tuple[str, int]] | None = None
                      ) -> dict[tuple[str, int], tuple[int, int, str]]:
        """(topic, partition) -> (committed offset, leader epoch (-1), metadata), committed ones only."""
        from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition

        request = ConsumerGroupTopicPartitions(
            group_id, None if partitions is None else [TopicPartition(t, p) for t, p in partitions])
        futures = self._call("list_consumer_group_offsets", [request])
        result = self._wait(futures[group_id], f"cannot read the committed offsets of group {group_id!r}")
        out = {}
        for tp in result.topic_partitions or ():
            if tp.error is not None:
                raise to_logbroker_error(tp.error, f"committed offset of {tp.topic}-{tp.partition}")
            if tp.offset >= 0:
                out[(tp.topic, tp.partition)] = (tp.offset, -1, tp.metadata or "")
        return out

    def commit_offsets(self, group_id: str, offsets: dict[tuple[str, int], int]) -> dict[tuple[str, int], int]:
        """Set the group's committed offsets (AlterConsumerGroupOffsets: refused while it has
        members); per partition a Kafka error code (0 = stored)."""
        from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition

        if not offsets:
            return {}
        request = ConsumerGroupTopicPartitions(group_id, [TopicPartition(t, p, off) for (t, p), off in offsets.items()])
        futures = self._call("alter_consumer_group_offsets", [request])
        result = self._wait(futures[group_id], f"cannot set the offsets of group {group_id!r}")
        return {(tp.topic, tp.partition): (0 if tp.error is None else tp.error.code())
                for tp in result.topic_partitions or ()}

    def delete_groups(self, group_ids: list[str]) -> dict[str, int]:
        """Per group a Kafka error code (0 = deleted; 68 NON_EMPTY_GROUP, 69 GROUP_ID_NOT_FOUND)."""
        futures = self._call("delete_consumer_groups", list(group_ids))
        codes = {}
        for group_id, future in futures.items():
            try:
                self._wait(future, f"cannot delete group {group_id!r}")
                codes[group_id] = 0
            except LogbrokerError as exc:
                if getattr(exc, "kafka_error", None) is None or exc.error_code == UNSUPPORTED_FEATURE:
                    raise
                codes[group_id] = exc.error_code
        return codes

    def lag(self, group_id: str) -> list[dict]:
        """Per committed partition as the embedded coordinator's ``lag``: committed offset, log end
        offset, lag in records and the age in ms of the oldest record not yet consumed."""
        committed = self.fetch_offsets(group_id)
        wanted = sorted(committed)
        starts = self._offsets_or_none(wanted, EARLIEST_TIMESTAMP)
        ends = self._offsets_or_none(wanted, LATEST_TIMESTAMP)
        rows, positions = [], {}
        for tp in wanted:
            offset, _epoch, metadata = committed[tp]
            row = {"topic": tp[0], "partition": tp[1], "committed": offset, "metadata": metadata,
                   "log_end_offset": None, "lag": None, "lag_ms": None}
            rows.append(row)
            if starts.get(tp) is None or ends.get(tp) is None:
                continue  # the topic or partition is gone
            position = max(offset, starts[tp])
            row["log_end_offset"] = ends[tp]
            row["lag"] = max(0, ends[tp] - position)
            row["lag_ms"] = 0
            if position < ends[tp]:
                positions[tp] = position
        if positions:
            now = int(time.time() * 1000)
            timestamps = self._timestamps_at(positions)
            for row in rows:
                ts = timestamps.get((row["topic"], row["partition"]))
                if ts is not None and ts >= 0:
                    row["lag_ms"] = max(0, now - ts)
        return rows

    def _offsets_or_none(self, partitions, timestamp: int) -> dict[tuple[str, int], int | None]:
        out = {}
        for tp in partitions:
            try:
                found = self.list_offsets_many({tp: timestamp})[tp]
            except LogbrokerError:
                found = None
            out[tp] = None if found is None else found[0]
        return out

    def _timestamps_at(self, positions: dict[tuple[str, int], int], wait: float = 5.0) -> dict[tuple[str, int], int]:
        """The timestamp of the record at each (topic, partition) -> offset, read with a consumer
        that joins no group (bounded by ``wait`` seconds)."""
        from confluent_kafka import Consumer, TopicPartition

        if self._consumer is None:
            settings = {"group.id": f"logbroker-admin-{uuid.uuid4().hex}", "enable.auto.commit": False,
                        "enable.auto.offset.store": False, **self._config}
            self._consumer = Consumer(base_config(self.bootstrap, self._client_id, settings))
        consumer = self._consumer
        consumer.assign([TopicPartition(t, p, off) for (t, p), off in positions.items()])
        found: dict[tuple[str, int], int] = {}
        deadline = time.monotonic() + min(wait, self._timeout)
        try:
            while len(found) < len(positions) and time.monotonic() < deadline:
                for message in consumer.consume(len(positions), 0.1):
                    key = (message.topic(), message.partition())
                    if message.error() is None and key not in found and message.offset() >= positions.get(key, 0):
                        found[key] = message.timestamp()[1]
        finally:
            consumer.unassign()
        return found


def _state_name(state) -> str:
    name = getattr(state, "name", str(state))
    return _STATES.get(name, name)


__all__ = ["RemoteAdmin", "RemoteTopic"]
