"""Waiting without threads: long-poll fetches and pending JoinGroup / SyncGroup requests.

``DataSignal``: the broker calls ``Broker.add_data_listener`` callbacks from whichever thread moved a
high watermark (an append to a topic that does not fsync per append, an fsync that completed, the
flusher thread).  The callback only schedules ``fire`` on the loop -- at most one pending call at a
time, so a burst of appends costs one wakeup -- and ``fire`` bumps ``version`` and wakes every waiting
fetch.  A fetch reads ``version`` *before* it reads the log, and waits only if the version is still
the same afterwards, so no notification can slip between its read and its wait.

``GroupWaiters``: ``GroupService`` answers JoinGroup / SyncGroup with None while the request waits
for the rest of the group; the answer arrives later through a listener, called from whichever thread
finished the rebalance (another member's request, or the periodic ``tick``), as
``(member_id, kind, response)``.  A handler registers a future under ``(member_id, kind)`` *before* it
calls the service, so an answer that is ready before the call even returns is not lost.  A second
request for the same key (a client that gave up on a connection and came back on another) answers
the first one REBALANCE_IN_PROGRESS, as Kafka's coordinator does.  A static member joining with no
member id does not know the id the coordinator will give it (``<group.instance.id>-<uuid>``): its
future waits under that prefix.
"""

from __future__ import annotations

import asyncio
import logging
import re

from ..groups.responses import JoinGroupResponse, SyncGroupResponse

log = logging.getLogger(__name__)

REBALANCE_IN_PROGRESS = 27
NOT_COORDINATOR = 16
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")


class DataSignal:
    """Wakes long-poll fetches when some partition's high watermark may have moved."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self._loop = loop
        self.version = 0
        self._waiters: set[asyncio.Future] = set()
        self._scheduled = False
        self.closed = False

    def notify_threadsafe(self) -> None:
        """The broker's data listener: any thread, cheap, coalesced."""
        if self._scheduled or self.closed:
            return
        self._scheduled = True
        try:
            self._loop.call_soon_threadsafe(self.fire)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            self._scheduled = False

    def fire(self) -> None:
        self._scheduled = False  # first: a notification arriving from now on schedules another fire
        self.version += 1
        waiters, self._waiters = self._waiters, set()
        for future in waiters:
            if not future.done():
                future.set_result(None)

    async def wait(self, since: int, timeout: float) -> None:
        """Return once ``version`` differs from ``since``, or after ``timeout`` seconds."""
        if self.version != since or timeout <= 0 or self.closed:
            return
        future = self._loop.create_future()
        self._waiters.add(future)
        try:
            await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            pass
        finally:
            self._waiters.discard(future)

    def close(self) -> None:
        """Shutdown: every waiting fetch answers with what it has."""
        self.closed = True
        self.fire()


class GroupWaiters:
    """Futures of JoinGroup / SyncGroup requests parked until their group completes a rebalance."""

    def __init__(self, loop: asyncio.AbstractEventLoop, on_delivered=None):
        self._loop = loop
        self._exact: dict[tuple[str, str], asyncio.Future] = {}
        self._prefixed: dict[tuple[str, str], asyncio.Future] = {}  # (kind, "<instance id>-") -> future
        self._on_delivered = on_delivered  # (member_id, kind): drop the service's stashed copy
        self.closed = False

    # ---- any thread ----------------------------------------------------------------------------------

    def listener(self, member_id: str, kind: str, response) -> None:
        """GroupService listener: called from the thread that completed the request."""
        if self.closed:
            return
        try:
            self._loop.call_soon_threadsafe(self._deliver, member_id, kind, response)
        except RuntimeError:  # loop closed
            pass

    # ---- the loop ------------------------------------------------------------------------------------

    def _deliver(self, member_id: str, kind: str, response) -> None:
        future = self._exact.pop((member_id, kind), None)
        if future is None:
            for (k, prefix), candidate in list(self._prefixed.items()):
                if k == kind and member_id.startswith(prefix) and _UUID.match(member_id, len(prefix)):
                    future = self._prefixed.pop((k, prefix))
                    break
        if future is not None and not future.done():
            future.set_result(response)
        if self._on_delivered is not None:
            self._on_delivered(member_id, kind)

    def register(self, kind: str, member_id: str, *, instance_id: str | None = None) -> tuple[tuple, asyncio.Future]:
        """A future for the answer to ``member_id``'s pending ``kind`` request (or, with an empty member
        id, to static member ``instance_id``'s); a request already waiting under the key is answered
        REBALANCE_IN_PROGRESS."""
        future = self._loop.create_future()
        if member_id:
            table, key = self._exact, (member_id, kind)
        else:
            table, key = self._prefixed, (kind, f"{instance_id}-")
        old = table.get(key)
        if old is not None and not old.done():
            old.set_result(_error_response(kind, REBALANCE_IN_PROGRESS, member_id))
        table[key] = future
        return (table is self._exact, key), future

    def discard(self, token: tuple, future: asyncio.Future) -> None:
        exact, key = token
        table = self._exact if exact else self._prefixed
        if table.get(key) is future:
            del table[key]

    def close(self) -> None:
        """Shutdown: answer every parked request NOT_COORDINATOR; the clients find us again after a restart."""
        self.closed = True
        for table in (self._exact, self._prefixed):
            for key, future in list(table.items()):
                kind = key[1] if table is self._exact else key[0]
                if not future.done():
                    future.set_result(_error_response(kind, NOT_COORDINATOR, key[0] if table is self._exact else ""))
            table.clear()


def _error_response(kind: str, error_code: int, member_id: str):
    if kind == "join":
        return JoinGroupResponse(error_code, member_id=member_id)
    return SyncGroupResponse(error_code)


__all__ = ["DataSignal", "GroupWaiters"]
