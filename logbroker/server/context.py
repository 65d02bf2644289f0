"""What a handler gets for one request: the broker, the thread pools, and its place in the order.

**Ordering.**  Clients pipeline (librdkafka keeps up to 5 Produce requests in flight per connection),
and Kafka guarantees that one connection's requests take effect in the order they were sent.  So each
request has an *ordered phase*: it starts only when the previous request of the same connection has
left its own ordered phase.  A handler does its side effects (the append, the offset commit, the
join) inside that phase and calls ``release()`` before it starts waiting for something slow that
needs no order -- an fsync, a long-poll, the rest of a consumer group -- so that the next request's
append can join the same fsync (group commit).  The phase ends by itself when the handler returns.
Responses are written in request order regardless (connection.py).
"""

from __future__ import annotations

import asyncio
import functools
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from .app import Server
    from .connection import Connection


class RequestContext:
    __slots__ = ("server", "connection", "header", "_ordered")

    def __init__(self, server: Server, connection: Connection, header, ordered: asyncio.Event):
        self.server = server
        self.connection = connection
        self.header = header
        self._ordered = ordered  # set when this request's ordered phase is over

    @property
    def broker(self):
        return self.server.broker

    @property
    def api_version(self) -> int:
        return self.header.api_version

    @property
    def client_id(self) -> str:
        return self.header.client_id or ""

    def release(self) -> None:
        """End the ordered phase: the connection's next request may start its side effects."""
        self._ordered.set()

    async def run(self, fn, *args, **kwargs):
        """Run blocking broker work (appends, reads, group calls) in the work pool."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.server.executor, functools.partial(fn, *args, **kwargs))

    async def run_durable(self, fn, *args, **kwargs):
        """Run an fsync wait in its own pool, so waiting producers never starve appends and reads."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.server.durable_executor, functools.partial(fn, *args, **kwargs))


__all__ = ["RequestContext"]
