"""One client connection: frames in, handler tasks, responses out in request order.

Reading: ``FrameDecoder`` cuts the stream into frames; each frame is decoded and handed to its API's
handler as a task at once, so a client that pipelines (librdkafka) has several requests in progress.
Each task first waits for the previous request's *ordered phase* (context.py), so side effects happen
in request order; at most ``max_in_flight`` requests are unanswered before the reader stops reading
(backpressure through TCP).

Writing: one writer task awaits the tasks in the order their requests arrived and writes each
response as soon as it and every earlier one are done: responses go out in request order however
the handlers finish (kafka-python and aiokafka match responses to requests by position).  A Produce
with ``acks=0`` returns None: no response.

What closes a connection, with one log line: a bad length prefix or a frame above the limit, a frame
the codec cannot parse, an API key or version this broker does not serve (ApiVersions excepted: it is
answered UNSUPPORTED_VERSION with the supported list, PROTOCOL.md §5), or a handler's unexpected
exception.  The requests before it still take effect (their ordered phases finish); nothing else on
the server is affected.  When the client hangs up, requests already read still take effect too (an
``acks=0`` produce right before a close must not be lost) but nothing waits for their answers.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from ..protocol import API_NAMES, FrameDecoder, ProtocolError, UnsupportedVersionError, decode_request, encode_response
from .context import RequestContext
from .handlers import API_VERSIONS, HANDLERS
from .handlers.versions import unsupported_api_versions

log = logging.getLogger(__name__)

READ_CHUNK = 256 * 1024
ORDERED_DRAIN_TIMEOUT_S = 10.0


class Connection:
    def __init__(self, server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.server = server
        self.reader = reader
        self.writer = writer
        peer = writer.get_extra_info("peername") or ("?", 0)
        local = writer.get_extra_info("sockname") or (server.host, server.port)
        self.peer_host, self.peer_port = peer[0], peer[1]
        self.local_host, self.local_port = local[0], local[1]
        self.name = f"{_fmt(self.peer_host, self.peer_port)}"
        # (header, handler task, raw answer): one entry per request read, in order; (None, None, None)
        # marks the end at shutdown
        self._pending: deque[tuple[object, asyncio.Task | None, object]] = deque()
        self._ready = asyncio.Event()
        self._slots = asyncio.Semaphore(server.max_in_flight)
        self._last_ordered = asyncio.Event()
        self._last_ordered.set()
        self._reading = True
        self._reader_task: asyncio.Task | None = None
        self._writer_task: asyncio.Task | None = None
        self.closed = False

    # ---- lifecycle -----------------------------------------------------------------------------------

    async def serve(self) -> None:
        self._writer_task = asyncio.create_task(self._write_loop(), name=f"write {self.name}")
        self._reader_task = asyncio.current_task()
        try:
            await self._read_loop()  # returns when the client hangs up
        except _Violation as exc:
            log.warning("closing connection from %s: %s", self.name, exc)
        except asyncio.CancelledError:
            if self.closed:  # the writer gave up on the connection
                return
            if not self.server.closing:
                self._abort()
                raise
            await self._drain(self.server.shutdown_grace_s)
            return
        except (ConnectionError, OSError) as exc:
            log.debug("connection from %s lost: %s", self.name, exc)
        finally:
            self._reading = False
        # Requests already read still take effect (an acks=0 produce right before a close must not be
        # lost), then whatever is left waiting for an answer nobody will read is dropped.
        await self._finish_ordered()
        self._abort()

    def stop(self) -> None:
        """Server shutdown: stop reading; ``serve`` then answers what was read and closes."""
        if self._reader_task is not None and self._reading:
            self._reader_task.cancel()

    async def _finish_ordered(self) -> None:
        """Wait until every request already read has had its side effects (bounded)."""
        try:
            await asyncio.wait_for(self._last_ordered.wait(), ORDERED_DRAIN_TIMEOUT_S)
        except asyncio.TimeoutError:
            log.warning("connection from %s: requests still in their ordered phase after %ss", self.name,
                        ORDERED_DRAIN_TIMEOUT_S)

    async def _drain(self, timeout: float) -> None:
        """Shutdown: answer what was read (parked requests are woken by the server), then close."""
        self._pending.append((None, None, None))  # end marker
        self._ready.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._writer_task), timeout)
        except (asyncio.TimeoutError, asyncio.CancelledError):
            log.warning("connection from %s: requests unanswered after %ss of shutdown", self.name, timeout)
        except Exception:  # the writer logged it
            pass
        self._abort(graceful=True)

    def _abort(self, *, graceful: bool = False) -> None:
        """Close now: cancel what is still pending; ``graceful`` lets written responses reach the client."""
        if self.closed:
            return
        self.closed = True
        for _, task, _ in self._pending:
            if task is not None:
                task.cancel()
        self._pending.clear()
        self._ready.set()
        current = asyncio.current_task()
        if self._writer_task is not None and self._writer_task is not current:
            self._writer_task.cancel()
        if self._reader_task is not None and self._reader_task is not current and self._reading:
            self._reader_task.cancel()
        transport = self.writer.transport
        if transport.is_closing():
            pass
        elif graceful:
            transport.close()  # after the buffered responses
        else:
            transport.abort()
        self.server._connection_closed(self)

    # ---- reading -------------------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        """Read and dispatch until EOF; a protocol violation raises _Violation."""
        decoder = FrameDecoder(self.server.max_frame_bytes)
        while True:
            data = await self.reader.read(READ_CHUNK)
            if not data:
                return
            try:
                frames = decoder.feed(data)
            except ProtocolError as exc:
                raise _Violation(f"bad frame ({exc})") from None
            for frame in frames:
                await self._slots.acquire()
                if self.closed:
                    return
                violation = self._dispatch(frame)
                if violation is not None:
                    self._slots.release()
                    raise _Violation(violation)

    def _dispatch(self, frame) -> str | None:
        try:
            header, body = decode_request(frame)
        except UnsupportedVersionError as exc:
            header = getattr(exc, "header", None)
            if header is not None and header.api_key == API_VERSIONS:
                self._queue(header, None, unsupported_api_versions(header))
                return None
            return f"unsupported request ({exc})"
        except ProtocolError as exc:
            return f"malformed request ({exc})"
        handler = HANDLERS.get(header.api_key)
        if handler is None:
            return f"unsupported API key {header.api_key} (version {header.api_version})"
        previous, ordered = self._last_ordered, asyncio.Event()
        self._last_ordered = ordered
        ctx = RequestContext(self.server, self, header, ordered)
        task = asyncio.create_task(self._handle(handler, ctx, body, previous),
                                   name=f"{header.api_key}v{header.api_version}#{header.correlation_id}")
        self._queue(header, task, None)
        return None

    def _queue(self, header, task, raw) -> None:
        self._pending.append((header, task, raw))
        self._ready.set()

    async def _handle(self, handler, ctx: RequestContext, body: dict, previous: asyncio.Event):
        try:
            await previous.wait()
            return await handler(ctx, body)
        finally:
            ctx.release()

    # ---- writing -------------------------------------------------------------------------------------

    async def _write_loop(self) -> None:
        writer = self.writer
        try:
            while True:
                while not self._pending:
                    self._ready.clear()
                    await self._ready.wait()
                header, task, raw = self._pending[0]
                if header is None and task is None:  # shutdown end marker
                    await writer.drain()
                    return
                if task is not None:
                    try:
                        response = await asyncio.shield(task)
                    except asyncio.CancelledError:
                        if self.closed or not task.cancelled():
                            raise  # the writer itself is being stopped
                        self._pending.popleft()  # a request nobody waits for any more
                        self._slots.release()
                        continue
                    except Exception as exc:
                        log.exception("closing connection from %s: %s v%d failed: %s", self.name,
                                      _api_name(header.api_key), header.api_version, exc)
                        self._abort()
                        return
                    try:
                        buffers = encode_response(header, response) if response is not None else None
                    except Exception as exc:  # a handler built a body its version cannot carry: a bug here
                        log.exception("closing connection from %s: cannot encode the %s v%d response: %s",
                                      self.name, _api_name(header.api_key), header.api_version, exc)
                        self._abort()
                        return
                else:
                    buffers = raw
                if self._pending and self._pending[0][1] is task:
                    self._pending.popleft()
                self._slots.release()
                if buffers:
                    if isinstance(buffers, (bytes, bytearray, memoryview)):
                        writer.write(buffers)
                    else:
                        writer.writelines(buffers)
                if not self._pending or (self._pending[0][1] is not None and not self._pending[0][1].done()):
                    await writer.drain()
        except (ConnectionError, OSError):
            self._abort()
        except asyncio.CancelledError:
            raise


class _Violation(Exception):
    """The client broke the protocol: the connection is closed."""


def _api_name(api_key: int) -> str:
    return API_NAMES.get(api_key, f"api {api_key}")


def _fmt(host, port) -> str:
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


__all__ = ["Connection"]
