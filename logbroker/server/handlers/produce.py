"""Produce (0): append each partition's batch in request order, answer once it is durable.

The append runs in the request's ordered phase (context.py), so one connection's batches land in
the order they were sent -- an idempotent producer with 5 requests in flight depends on it.  Then
the ordered phase ends and the handler waits for the topic's durability rule (``wait_durable``: an
fsync with ``flush.messages=1``, the default) in the durability pool; the connection's next request
appends meanwhile and shares the next fsync (group commit).

``acks=0``: append, ask the flusher thread to fsync soon, answer nothing.  ``acks`` other than
-1/0/1: INVALID_REQUIRED_ACKS (21) for every partition.  Idempotent batches fail per partition with
OUT_OF_ORDER_SEQUENCE_NUMBER (45), INVALID_PRODUCER_EPOCH (47), UNKNOWN_PRODUCER_ID (59); a retried
duplicate is answered with the offsets it got the first time.
"""

from __future__ import annotations

from ...errors import InvalidRecordError, UnknownTopicOrPartitionError
from .common import NONE, error_code, log
from .metadata import auto_create

INVALID_REQUIRED_ACKS = 21


def append_all(broker, topic_data: list[dict], create: bool, partitions: int, acks: int) -> list:
    """[(name, [(index, error_code, AppendInfo | None)])]; runs in the work pool."""
    out = []
    created: set[str] = set()
    for topic in topic_data:
        name = topic["name"]
        results = []
        for part in topic["partition_data"]:
            index = part["index"]
            try:
                records = part["records"]
                if records is None:
                    raise InvalidRecordError("a produce request without records")
                try:
                    info = broker.append(name, index, records)
                except UnknownTopicOrPartitionError:
                    if not create or name in created or name in broker.list_topics():
                        raise
                    auto_create(broker, name, partitions)
                    created.add(name)
                    info = broker.append(name, index, records)
                if acks == 0:
                    broker.flush_soon(name, index)
                results.append((index, NONE, info))
            except Exception as exc:
                results.append((index, error_code(exc), None))
        out.append((name, results))
    return out


def wait_all(broker, targets: list[tuple[str, int, int]]) -> dict[tuple[str, int], int]:
    """Wait until each (topic, partition) is durable below its offset; per-partition error codes."""
    codes = {}
    for name, index, offset in targets:
        try:
            broker.wait_durable(name, index, offset)
        except Exception as exc:
            codes[(name, index)] = error_code(exc)
    return codes


def _partition(index: int, code: int, info=None) -> dict:
    return {"index": index, "error_code": code,
            "base_offset": info.base_offset if info is not None else -1,
            "log_append_time_ms": info.log_append_time if info is not None else -1,
            "log_start_offset": info.log_start_offset if info is not None else -1,
            "record_errors": [], "error_message": None}


async def handle_produce(ctx, body: dict) -> dict | None:
    acks = body["acks"]
    topic_data = body.get("topic_data") or []
    if acks not in (-1, 0, 1):
        return {"responses": [{"name": t["name"],
                               "partition_responses": [_partition(p["index"], INVALID_REQUIRED_ACKS)
                                                       for p in t["partition_data"]]}
                              for t in topic_data], "throttle_time_ms": 0}
    server = ctx.server
    results = await ctx.run(append_all, ctx.broker, topic_data, server.auto_create_topics,
                            server.default_partitions, acks)
    if acks == 0:
        failed = [(name, index, code) for name, parts in results for index, code, _ in parts if code]
        if failed:
            log.debug("acks=0 produce from %s failed for %s", ctx.connection.name, failed)
        return None
    ctx.release()
    targets = [(name, index, info.last_offset + 1) for name, parts in results for index, code, info in parts
               if code == NONE]
    codes = await ctx.run_durable(wait_all, ctx.broker, targets) if targets else {}
    responses = []
    for name, parts in results:
        out = []
        for index, code, info in parts:
            late = codes.get((name, index))
            out.append(_partition(index, late, None) if late else _partition(index, code, info))
        responses.append({"name": name, "partition_responses": out})
    return {"responses": responses, "throttle_time_ms": 0}
