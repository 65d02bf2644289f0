"""Fetch (1): whole stored batches from the one holding ``fetch_offset``, with a long poll.

* The first read happens in the request's ordered phase; if it found fewer than ``min_bytes`` (and no
  partition failed), the handler waits -- holding no thread -- on the server's ``DataSignal`` until
  some high watermark may have moved or ``max_wait_ms`` passed.  On a wakeup it first checks, on the
  loop and without I/O, whether any of its partitions has a high watermark past its position, and
  reads again (in the work pool) only then.
* Limits: ``partition_max_bytes`` per partition and ``max_bytes`` in all, except that the first
  partition with data returns at least one whole batch (KIP-74).  Batches are served as stored.
* Offsets outside ``[log start, log end]``: OFFSET_OUT_OF_RANGE (1); a position between the high
  watermark and the log end (appended, not yet fsynced) just has nothing to read yet.
* No fetch sessions (KIP-227): the answer always says session 0 and lists exactly the partitions
  asked for; a request naming a session gets FETCH_SESSION_ID_NOT_FOUND (70).
"""

from __future__ import annotations

import asyncio

from ...errors import OffsetOutOfRangeError
from .common import NONE, error_code

OFFSET_OUT_OF_RANGE = 1
FETCH_SESSION_ID_NOT_FOUND = 70
MAX_INT32 = 2**31 - 1


def _partition(index: int, code: int, hw: int = -1, start: int = -1, records: bytes = b"") -> dict:
    return {"partition_index": index, "error_code": code, "high_watermark": hw, "last_stable_offset": hw,
            "log_start_offset": start, "aborted_transactions": None, "preferred_read_replica": -1,
            "records": records}


def read_all(broker, wanted: list[tuple[str, list[tuple[int, int, int]]]], max_bytes: int):
    """Read every partition once: (responses, bytes read, whether any partition failed)."""
    remaining = max_bytes
    total = 0
    failed = False
    responses = []
    for topic, partitions in wanted:
        out = []
        for index, offset, partition_max in partitions:
            try:
                log = broker.log(topic, index)
                start, hw, end = log.log_start_offset, log.high_watermark, log.log_end_offset
                if offset < start or offset > end:
                    raise OffsetOutOfRangeError(f"offset {offset} is outside [{start}, {end}]")
                records = b""
                limit = min(partition_max, remaining)
                if offset < hw and (limit > 0 or total == 0):
                    try:
                        info = broker.fetch(topic, index, offset, max(limit, 0))
                    except OffsetOutOfRangeError:
                        info = None  # retention moved the log start meanwhile: answer below
                        start = log.log_start_offset
                        if offset < start:
                            raise
                    if info is not None:
                        records, hw, start = info.records, info.high_watermark, info.log_start_offset
                        if total and len(records) > limit:
                            records = b""  # only the first partition with data may exceed the limits
                remaining -= len(records)
                total += len(records)
                out.append(_partition(index, NONE, hw, start, records))
            except OffsetOutOfRangeError:
                failed = True
                try:
                    log = broker.log(topic, index)
                    out.append(_partition(index, OFFSET_OUT_OF_RANGE, log.high_watermark, log.log_start_offset))
                except Exception as exc:
                    out.append(_partition(index, error_code(exc)))
            except Exception as exc:
                failed = True
                out.append(_partition(index, error_code(exc)))
        responses.append({"topic": topic, "partitions": out})
    return responses, total, failed


def has_news(broker, wanted) -> bool:
    """Cheap check on the loop (attribute reads, no I/O): might a read now find something new?"""
    for topic, partitions in wanted:
        for index, offset, _ in partitions:
            try:
                log = broker.log(topic, index)
                if log.high_watermark > offset or offset < log.log_start_offset:
                    return True
            except Exception:
                return True  # the topic went away, or the broker closed: a read reports it
    return False


async def handle_fetch(ctx, body: dict) -> dict:
    server = ctx.server
    if body.get("session_id", 0) not in (0, None):
        return {"throttle_time_ms": 0, "error_code": FETCH_SESSION_ID_NOT_FOUND, "session_id": 0, "responses": []}
    wanted = [(t["topic"], [(p["partition"], p["fetch_offset"], max(p.get("partition_max_bytes", MAX_INT32), 0))
                            for p in t["partitions"]])
              for t in body.get("topics") or []]
    max_bytes = body.get("max_bytes", MAX_INT32)
    if max_bytes is None or max_bytes < 0:
        max_bytes = MAX_INT32
    min_bytes = body.get("min_bytes", 1)
    max_wait_s = max(body.get("max_wait_ms", 0), 0) / 1000
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max_wait_s
    signal = server.data_signal
    broker = ctx.broker
    version = signal.version
    responses, total, failed = await ctx.run(read_all, broker, wanted, max_bytes)
    ctx.release()
    while total < min_bytes and not failed and not server.closing and not ctx.connection.closed:
        remaining = deadline - loop.time()
        if remaining <= 0:
            break
        await signal.wait(version, remaining)
        if signal.version == version:
            continue  # timed out: the loop condition ends it
        version = signal.version
        if not has_news(broker, wanted):
            continue
        responses, total, failed = await ctx.run(read_all, broker, wanted, max_bytes)
    return {"throttle_time_ms": 0, "error_code": NONE, "session_id": 0, "responses": responses}
