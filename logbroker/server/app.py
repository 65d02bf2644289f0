"""The server: listening socket, connections, thread pools, the group ticker, shutdown.

```python
server = Server(broker, auto_create_topics=True, default_partitions=1)
host, port = await server.start("127.0.0.1", 9092)
await server.serve_forever()          # until close()
await server.close()                  # stop accepting, answer what was read, then return
```

The broker stays the caller's: ``close`` does not close it (``logbroker serve`` closes it after the
server, which fsyncs and leaves the clean-shutdown marker).

Thread pools: ``executor`` (appends, reads, group-coordinator calls, admin work) and
``durable_executor`` (waiting for fsyncs), so that producers waiting for a group commit never keep
appends or fetch reads from running.  Group sessions expire on time because a periodic task calls
``broker.groups.tick()`` every ``group_tick_interval_s``.

Share groups: the server holds the share sessions (``share_sessions``, SHARE_GROUPS.md §3.8) and ends
those a connection created when it closes, releasing their members' records
(``handlers/share.py``).  ``share_auto_offset_reset`` and ``share_record_lock_duration_ms`` set
``broker.shares.default_config``, the settings of share groups nobody configured.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
import socket
from concurrent.futures import ThreadPoolExecutor

from ..broker.shares import ShareGroupConfig
from ..errors import InvalidRequestError
from .connection import Connection
from .handlers import share as share_handlers
from .share_sessions import DEFAULT_MAX_SESSIONS, ShareSessionCache
from .waiters import DataSignal, GroupWaiters

log = logging.getLogger("logbroker.server")

DEFAULT_PORT = 9092
MAX_FRAME_BYTES = 100 * 1024 * 1024  # Kafka's socket.request.max.bytes
DEFAULT_INITIAL_REBALANCE_DELAY_MS = 3000  # Kafka's group.initial.rebalance.delay.ms


def parse_listen(text: str, *, default_port: int = DEFAULT_PORT) -> tuple[str, int]:
    """``HOST:PORT``, ``[v6]:PORT``, ``HOST`` or ``:PORT`` -> (host, port); ValueError if malformed."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else rest
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    elif text.count(":") > 1:  # a bare IPv6 address
        host, port_text = text, ""
    else:
        host, port_text = text, ""
    port = int(port_text) if port_text else default_port
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} is out of range")
    return host or "127.0.0.1", port


def format_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket (SO_REUSEADDR, as Kafka's acceptor): port 0 picks a free one."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(512)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class Server:
    def __init__(self, broker, *, auto_create_topics: bool = True, default_partitions: int = 1,
                 initial_rebalance_delay_ms: int = DEFAULT_INITIAL_REBALANCE_DELAY_MS,
                 max_frame_bytes: int = MAX_FRAME_BYTES, max_in_flight: int = 100, workers: int = 32,
                 durable_workers: int = 64, group_tick_interval_s: float = 0.2, shutdown_grace_s: float = 10.0,
                 max_share_sessions: int = DEFAULT_MAX_SESSIONS, share_auto_offset_reset: str | None = None,
                 share_record_lock_duration_ms: int | None = None):
        """``initial_rebalance_delay_ms`` applies only if the broker's group service is not running yet
        (it is configured here, keeping members across restarts as a Kafka coordinator does).
        ``share_auto_offset_reset`` ("earliest" or "latest") and ``share_record_lock_duration_ms``, when
        given, change ``broker.shares.default_config`` at ``start``: they apply to share groups whose
        settings were never stored (a group's settings are stored when its first member joins)."""
        self.broker = broker
        self.auto_create_topics = auto_create_topics
        self.default_partitions = default_partitions
        self.initial_rebalance_delay_ms = initial_rebalance_delay_ms
        self.max_frame_bytes = max_frame_bytes
        self.max_in_flight = max_in_flight
        self.group_tick_interval_s = group_tick_interval_s
        self.shutdown_grace_s = shutdown_grace_s
        self._workers = workers
        self._durable_workers = durable_workers
        self.executor: ThreadPoolExecutor | None = None
        self.durable_executor: ThreadPoolExecutor | None = None
        self.host = ""
        self.port = 0
        self.closing = False
        self.cluster_id = broker.cluster_id()
        self.data_signal: DataSignal | None = None
        self.group_waiters: GroupWaiters | None = None
        self.groups = None
        self.share_sessions = ShareSessionCache(max_share_sessions)
        self.share_releases: dict = {}  # (group, member) -> the task releasing an ended session's records
        self.share_signal: DataSignal | None = None
        self.share_listening = False
        self.share_topic_ids = None
        self._share_defaults = {k: v for k, v in (("auto_offset_reset", share_auto_offset_reset),
                                                  ("lock_duration_ms", share_record_lock_duration_ms))
                                if v is not None}
        if self._share_defaults:  # InvalidConfigError now rather than at start
            dataclasses.replace(ShareGroupConfig(), **self._share_defaults).check()
        self._server: asyncio.AbstractServer | None = None
        self._connections: dict[Connection, asyncio.Task] = {}
        self._tick_task: asyncio.Task | None = None
        self._closed = asyncio.Event()

    # ---- lifecycle -----------------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = DEFAULT_PORT, *,
                    sock: socket.socket | None = None) -> tuple[str, int]:
        """Listen on ``host:port`` (or on an already bound ``sock``); returns the real address."""
        loop = asyncio.get_running_loop()
        self.executor = ThreadPoolExecutor(self._workers, thread_name_prefix="logbroker-server")
        self.durable_executor = ThreadPoolExecutor(self._durable_workers, thread_name_prefix="logbroker-fsync-wait")
        self.data_signal = DataSignal(loop)
        self.group_waiters = GroupWaiters(loop, on_delivered=self._drop_stashed_response)
        self.share_signal = DataSignal(loop)
        if self._share_defaults:
            shares = self.broker.shares
            shares.default_config = dataclasses.replace(shares.default_config, **self._share_defaults).check()
        try:
            self.groups = self.broker.configure_groups(initial_rebalance_delay_ms=self.initial_rebalance_delay_ms,
                                                       members_survive_restart=True)
        except InvalidRequestError:  # already running (an embedded user configured it): use it as it is
            self.groups = self.broker.groups
        self.groups.add_listener(self.group_waiters.listener)
        self.broker.add_data_listener(self.data_signal.notify_threadsafe)
        if sock is None:
            sock = bind_socket(host, port)
        self._server = await asyncio.start_server(self._accept, sock=sock)
        self.host, self.port = sock.getsockname()[:2]
        self._tick_task = asyncio.create_task(self._tick_groups(), name="logbroker group ticker")
        log.info("listening on %s", format_address(self.host, self.port))
        return self.host, self.port

    async def serve_forever(self) -> None:
        await self._closed.wait()

    async def close(self) -> None:
        """Stop accepting; answer every request already read (long polls answer with what they have,
        parked JoinGroup/SyncGroup get NOT_COORDINATOR); then close the connections and the pools."""
        if self.closing:
            await self._closed.wait()
            return
        self.closing = True
        if self._server is not None:
            self._server.close()
        self.data_signal.close()
        self.share_signal.close()
        self.group_waiters.close()
        for connection in list(self._connections):
            connection.stop()
        tasks = list(self._connections.values())
        if tasks:
            done, pending = await asyncio.wait(tasks, timeout=self.shutdown_grace_s + 5)
            for task in pending:
                task.cancel()
        share_handlers.end_sessions(self, self.share_sessions.close_all())
        await share_handlers.drain_releases(self, self.shutdown_grace_s)
        if self._tick_task is not None:
            self._tick_task.cancel()
            try:
                await self._tick_task
            except asyncio.CancelledError:
                pass
        self.broker.remove_data_listener(self.data_signal.notify_threadsafe)
        if self.share_listening:
            self.broker.shares.remove_listener(self.share_signal.notify_threadsafe)
        loop = asyncio.get_running_loop()
        for pool in (self.executor, self.durable_executor):
            await loop.run_in_executor(None, pool.shutdown, True)
        if self._server is not None:
            await self._server.wait_closed()
        self._closed.set()
        log.info("stopped listening on %s", format_address(self.host, self.port))

    # ---- connections ---------------------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.closing:
            writer.transport.abort()
            return
        connection = Connection(self, reader, writer)
        self._connections[connection] = asyncio.current_task()
        log.debug("connection from %s", connection.name)
        try:
            await connection.serve()
        finally:
            self._connections.pop(connection, None)

    def _connection_closed(self, connection: Connection) -> None:
        log.debug("connection from %s closed", connection.name)
        ended = self.share_sessions.connection_closed(connection)
        if ended:  # the share sessions it created end: their members' records are released
            share_handlers.end_sessions(self, ended)

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    # ---- groups --------------------------------------------------------------------------------------

    async def _tick_groups(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.group_tick_interval_s)
            try:
                await loop.run_in_executor(self.executor, self.groups.tick)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("group coordinator tick failed")

    def _drop_stashed_response(self, member_id: str, kind: str) -> None:
        """The service keeps a copy of each completion for embedded consumers; the server has
        delivered it already."""
        if not self.closing:
            asyncio.get_running_loop().run_in_executor(self.executor, self._take_quietly, member_id, kind)

    def _take_quietly(self, member_id: str, kind: str) -> None:
        try:
            self.groups.take_response(member_id, kind)
        except Exception:  # the broker is closing; the copy goes with it
            log.debug("could not drop the stashed %s response of %s", kind, member_id, exc_info=True)

    def broker_configs(self) -> dict[str, str]:
        """What DescribeConfigs shows for the broker resource."""
        return {"broker.id": "0", "log.dirs": self.broker.data_dir,
                "auto.create.topics.enable": str(self.auto_create_topics).lower(),
                "num.partitions": str(self.default_partitions),
                "default.replication.factor": "1", "offsets.topic.replication.factor": "1",
                "group.initial.rebalance.delay.ms": str(self.initial_rebalance_delay_ms),
                "socket.request.max.bytes": str(self.max_frame_bytes)}


__all__ = ["Server", "bind_socket", "format_address", "parse_listen", "is_loopback"]
