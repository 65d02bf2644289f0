"""ListOffsets (2) and DeleteRecords (21).

ListOffsets: timestamp -2 -> the log start offset, -1 -> the high watermark (the last stable offset
too: there are no transactions), t >= 0 -> the first offset whose timestamp is >= t and that
timestamp, or offset -1 / timestamp -1 when there is none.  DeleteRecords moves a partition's log
start offset (-1 = up to the high watermark) and answers the new one as ``low_watermark``.
"""

from __future__ import annotations

from .common import NONE, error_code


def list_all(broker, topics: list[dict]) -> list[dict]:
    out = []
    for topic in topics:
        name = topic["name"]
        parts = []
        for part in topic["partitions"]:
            index = part["partition_index"]
            try:
                found = broker.list_offsets(name, index, part["timestamp"])
                offset, timestamp = found if found is not None else (-1, -1)
                parts.append({"partition_index": index, "error_code": NONE, "timestamp": timestamp,
                              "offset": offset, "old_style_offsets": [offset] if offset >= 0 else [],
                              "leader_epoch": -1})
            except Exception as exc:
                parts.append({"partition_index": index, "error_code": error_code(exc), "timestamp": -1,
                              "offset": -1, "old_style_offsets": [], "leader_epoch": -1})
        out.append({"name": name, "partitions": parts})
    return out


async def handle_list_offsets(ctx, body: dict) -> dict:
    topics = await ctx.run(list_all, ctx.broker, body.get("topics") or [])
    return {"throttle_time_ms": 0, "topics": topics}


def delete_all(broker, topics: list[dict]) -> list[dict]:
    out = []
    for topic in topics:
        name = topic["name"]
        parts = []
        for part in topic["partitions"]:
            index = part["partition_index"]
            try:
                low = broker.delete_records(name, index, part["offset"])
                parts.append({"partition_index": index, "low_watermark": low, "error_code": NONE})
            except Exception as exc:
                parts.append({"partition_index": index, "low_watermark": -1, "error_code": error_code(exc)})
        out.append({"name": name, "partitions": parts})
    return out


async def handle_delete_records(ctx, body: dict) -> dict:
    topics = await ctx.run(delete_all, ctx.broker, body.get("topics") or [])
    return {"throttle_time_ms": 0, "topics": topics}
