"""IncrementalAlterConfigs (44), and the share-group configs DescribeConfigs (32) shows.

Resource types (Kafka's ConfigResource.Type): 2 TOPIC, 4 BROKER, 32 GROUP.  Operations: 0 SET,
1 DELETE (back to the default), 2 APPEND, 3 SUBTRACT (list configs only).  Each resource is answered
on its own (error code and message); ``validate_only`` runs every check and changes nothing.

* **TOPIC**: SET and DELETE become one ``broker.alter_topic_config`` call per topic (all or nothing).
  APPEND / SUBTRACT work on ``cleanup.policy``, the one list config served (starting from the
  override, else the default, as Kafka does); on any other config they are INVALID_CONFIG (40).
* **GROUP**: the settings of *share* groups (``broker.shares``), under Kafka's group config names
  (Kafka 4.4): ``share.auto.offset.reset`` (latest | earliest), ``share.record.lock.duration.ms``,
  ``share.delivery.count.limit`` and ``errors.deadletterqueue.topic.name`` ("" = none).  SET changes
  the group's setting, DELETE makes it follow the broker's default again (``configure(unset=...)``);
  all of one request's changes to a group are one ``configure`` call.  A group nobody knows becomes
  a share group with those settings (Kafka, too, stores group configs before the group exists).
  Other names, APPEND / SUBTRACT and bad values are INVALID_CONFIG; a classic consumer group's id
  is INVALID_CONFIG as well (this broker keeps configs for share groups only).
* **BROKER**: this broker's configs come from ``serve``'s options and cannot change: INVALID_CONFIG.
* A resource named twice in one request, or a config named twice in one resource: INVALID_REQUEST
  (42), as Kafka answers.  Unknown resource types: INVALID_REQUEST.

DescribeConfigs for GROUP (``group_entries``) lists the four settings with their effective values:
config_source 8 (GROUP_CONFIG) where the group has its own value, else 5 (DEFAULT_CONFIG), Kafka's
DescribeConfigsResponse.ConfigSource numbering (0 unknown, 1 dynamic topic, 2 dynamic broker,
3 dynamic default broker, 4 static broker, 5 default, 6 dynamic broker logger, 7 client metrics,
8 group).
"""

from __future__ import annotations

from collections import Counter

from ...config import LogConfig, TOPIC_CONFIGS, validate_overrides
from ...errors import InvalidConfigError, InvalidRequestError, InvalidTopicError, LogbrokerError
from .common import NONE, error_code, error_message

TOPIC, BROKER, GROUP = 2, 4, 32
SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3
SOURCE_DYNAMIC_TOPIC, SOURCE_STATIC_BROKER, SOURCE_DEFAULT, SOURCE_GROUP = 1, 4, 5, 8
LIST_CONFIGS = {"cleanup.policy"}

# Kafka's group config name -> the ShareGroupConfig field it sets
SHARE_GROUP_CONFIGS = {
    "share.auto.offset.reset": "auto_offset_reset",
    "share.record.lock.duration.ms": "lock_duration_ms",
    "share.delivery.count.limit": "delivery_count_limit",
    "errors.deadletterqueue.topic.name": "dead_letter_topic",
}


def config_entry(name: str, value, source: int, include_synonyms: bool, read_only: bool = False) -> dict:
    """One DescribeConfigs entry (every version's fields; the encoder keeps those of the version)."""
    return {"name": name, "value": value, "read_only": read_only, "is_default": source == SOURCE_DEFAULT,
            "config_source": source, "is_sensitive": False,
            "synonyms": [{"name": name, "value": value, "source": source}] if include_synonyms else [],
            "config_type": 0, "documentation": None}


# ---- share groups ----------------------------------------------------------------------------------------

def _check_share_group(broker, group: str) -> None:
    if not group:
        raise InvalidRequestError("a group config needs a group id")
    if broker.shares.is_consumer_group(group):
        raise InvalidConfigError(f"{group!r} is a consumer group, not a share group: this broker keeps group "
                                 f"configs for share groups only")


def _format(field: str, value) -> str:
    if field == "dead_letter_topic":
        return value or ""
    return str(value)


def group_entries(broker, group: str, include_synonyms: bool) -> list[dict]:
    """DescribeConfigs entries of share group ``group``: 8 where set for it, 5 where following the default."""
    _check_share_group(broker, group)
    shares = broker.shares
    config = shares.config(group)
    own = shares.overrides(group)
    return [config_entry(name, _format(field, getattr(config, field)),
                         SOURCE_GROUP if field in own else SOURCE_DEFAULT, include_synonyms)
            for name, field in sorted(SHARE_GROUP_CONFIGS.items())]


def _parse_group_value(name: str, field: str, value) -> object:
    if value is None:
        raise InvalidConfigError(f"{name} needs a value")
    text = value.strip()
    if field in ("lock_duration_ms", "delivery_count_limit"):
        try:
            return int(text)
        except ValueError:
            raise InvalidConfigError(f"invalid value {value!r} for {name}: not an integer") from None
    if field == "auto_offset_reset":
        if text not in ("latest", "earliest"):
            raise InvalidConfigError(f"invalid value {value!r} for {name}: this broker serves 'latest' and "
                                     f"'earliest' (not by_duration)")
        return text
    return text  # dead_letter_topic: "" = none; the name is checked by configure


def _alter_group(broker, group: str, configs: list[dict], validate_only: bool) -> None:
    _check_share_group(broker, group)
    changes: dict = {}
    unset: list[str] = []
    for config in configs:
        name, op = config["name"], config["config_operation"]
        field = SHARE_GROUP_CONFIGS.get(name)
        if field is None:
            raise InvalidConfigError(f"unknown group config {name!r}; served: {', '.join(sorted(SHARE_GROUP_CONFIGS))}")
        if op == SET:
            changes[field] = _parse_group_value(name, field, config.get("value"))
        elif op == DELETE:
            unset.append(field)
        elif op in (APPEND, SUBTRACT):
            raise InvalidConfigError(f"{name} is not a list config: APPEND and SUBTRACT do not apply")
        else:
            raise InvalidRequestError(f"unknown config operation {op} for {name}")
    try:
        broker.shares.configure(group, **changes, unset=tuple(unset), validate_only=validate_only)
    except InvalidTopicError as exc:
        raise InvalidConfigError(f"invalid errors.deadletterqueue.topic.name: {exc}") from None


# ---- topics ------------------------------------------------------------------------------------------------

def _alter_topic(broker, name: str, configs: list[dict], validate_only: bool) -> None:
    meta = broker.topic(name)  # UnknownTopicOrPartitionError first
    current = dict(meta.config)
    sets: dict[str, str] = {}
    deletes: list[str] = []
    for config in configs:
        key, op, value = config["name"], config["config_operation"], config.get("value")
        if key not in TOPIC_CONFIGS:
            raise InvalidConfigError(f"unknown topic config {key!r}; known: {', '.join(sorted(TOPIC_CONFIGS))}")
        if op == SET:
            if value is None:
                raise InvalidConfigError(f"{key} needs a value")
            sets[key] = value
        elif op == DELETE:
            deletes.append(key)
        elif op in (APPEND, SUBTRACT):
            if key not in LIST_CONFIGS:
                raise InvalidConfigError(f"{key} is not a list config: APPEND and SUBTRACT do not apply")
            sets[key] = _list_op(current.get(key, TOPIC_CONFIGS[key][2]), value, op)
        else:
            raise InvalidRequestError(f"unknown config operation {op} for {key}")
    if validate_only:
        overrides = {k: v for k, v in current.items() if k not in deletes}
        overrides.update(validate_overrides(sets))
        LogConfig.from_overrides(overrides)
        return
    broker.alter_topic_config(name, set=sets, delete=deletes)


def _list_op(current: str, value, op: int) -> str:
    items = [v.strip() for v in (current or "").split(",") if v.strip()]
    given = [v.strip() for v in (value or "").split(",") if v.strip()]
    if op == APPEND:
        return ",".join(items + [v for v in given if v not in items])
    return ",".join(v for v in items if v not in given)


# ---- IncrementalAlterConfigs -------------------------------------------------------------------------------

def alter_all(broker, resources: list[dict], validate_only: bool) -> list[dict]:
    seen: dict[tuple[int, str], int] = {}
    for resource in resources:
        key = (resource["resource_type"], resource["resource_name"])
        seen[key] = seen.get(key, 0) + 1
    out = []
    for resource in resources:
        rtype, rname = resource["resource_type"], resource["resource_name"]
        configs = list(resource.get("configs") or [])
        result = {"error_code": NONE, "error_message": None, "resource_type": rtype, "resource_name": rname}
        try:
            if seen[(rtype, rname)] > 1:
                raise InvalidRequestError(f"resource {rname!r} (type {rtype}) appears more than once in the request")
            names = [c["name"] for c in configs]
            duplicated = sorted(n for n, times in Counter(names).items() if times > 1)
            if duplicated:
                raise InvalidRequestError(f"configs named more than once for {rname!r}: {', '.join(duplicated)}")
            if rtype == TOPIC:
                _alter_topic(broker, rname, configs, validate_only)
            elif rtype == GROUP:
                _alter_group(broker, rname, configs, validate_only)
            elif rtype == BROKER:
                raise InvalidConfigError("this broker's configs come from logbroker serve's options and cannot "
                                         "be changed over the network")
            else:
                raise InvalidRequestError(f"resource type {rtype} is not supported (2 = topic, 32 = group)")
        except LogbrokerError as exc:
            result.update(error_code=exc.error_code, error_message=str(exc))
        except Exception as exc:
            result.update(error_code=error_code(exc), error_message=error_message(exc))
        out.append(result)
    return out


async def handle_incremental_alter_configs(ctx, body: dict) -> dict:
    responses = await ctx.run(alter_all, ctx.broker, body.get("resources") or [], bool(body.get("validate_only")))
    return {"throttle_time_ms": 0, "responses": responses}


__all__ = ["GROUP", "SHARE_GROUP_CONFIGS", "alter_all", "config_entry", "group_entries",
           "handle_incremental_alter_configs"]
