"""InitProducerId (22): a fresh producer id, epoch 0, for idempotent producers.

Transactions are not implemented: a request carrying a ``transactional_id`` is refused with
INVALID_REQUEST (42) -- a clean error, not a dropped connection (PROTOCOL.md §10).  A request that
asks to bump the epoch of an existing producer (v3+, ``producer_id`` >= 0) simply gets a new id.
"""

from __future__ import annotations

from .common import INVALID_REQUEST, NONE, error_code


async def handle_init_producer_id(ctx, body: dict) -> dict:
    if body.get("transactional_id") is not None:
        return {"throttle_time_ms": 0, "error_code": INVALID_REQUEST, "producer_id": -1, "producer_epoch": -1}
    try:
        producer_id, epoch = await ctx.run(ctx.broker.init_producer_id)
    except Exception as exc:
        return {"throttle_time_ms": 0, "error_code": error_code(exc), "producer_id": -1, "producer_epoch": -1}
    return {"throttle_time_ms": 0, "error_code": NONE, "producer_id": producer_id, "producer_epoch": epoch}
