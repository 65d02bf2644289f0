"""Helpers for the server tests: a ``logbroker serve`` child process, an in-process server on a
background event loop, and a raw wire client built on logbroker's own codec."""

from __future__ import annotations

import asyncio
import os
import pathlib
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque

from logbroker.broker import Broker
from logbroker.protocol import FrameDecoder, decode_response, encode_request
from logbroker.server import Server

REPO = pathlib.Path(__file__).resolve().parents[2]
LISTENING = "logbroker listening on "


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("LOGBROKER_DATA_DIR", None)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


class ServeProcess:
    """``logbroker serve --listen 127.0.0.1:0`` in a child; only this child's pid is ever signalled."""

    def __init__(self, data_dir, *args: str, log_path=None, listen: str = "127.0.0.1:0"):
        self.data_dir = str(data_dir)
        self.listen = listen
        self.args = ["--initial-rebalance-delay-ms", "0", *args]
        self.log_path = str(log_path or pathlib.Path(self.data_dir).parent / f"serve-{time.monotonic_ns()}.log")
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.stdout = b""

    def start(self, timeout: float = 20.0) -> "ServeProcess":
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "logbroker", "serve", "--data-dir", self.data_dir, "--listen", self.listen,
             *self.args], stdout=subprocess.PIPE, stderr=self._log, env=subprocess_env())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            line = self.proc.stdout.readline()
            if not line:
                break
            self.stdout += line
            text = line.decode().strip()
            if text.startswith(LISTENING):
                self.port = int(text.rsplit(":", 1)[1])
                return self
        self.kill()
        raise AssertionError(f"serve never said it was listening; stdout {self.stdout!r}; stderr {self.stderr()!r}")

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stderr(self) -> str:
        try:
            return pathlib.Path(self.log_path).read_text(errors="replace")
        except OSError:
            return ""

    def signal(self, signum: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signum)

    def terminate(self, timeout: float = 30.0) -> int:
        self.signal(signal.SIGTERM)
        return self.wait(timeout)

    def kill(self) -> int:
        self.signal(signal.SIGKILL)
        return self.wait(10)

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(f"serve did not exit within {timeout}s; stderr: {self.stderr()}") from None
        if self.proc.stdout:
            self.proc.stdout.close()
        self._log.close()
        return code

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        if self.proc is not None and self.proc.poll() is None:
            self.kill()


class InProcessServer:
    """A Server over an embedded Broker, on an event loop in a background thread."""

    def __init__(self, data_dir, **server_options):
        self.broker = Broker.open(str(data_dir), housekeeping=False)
        server_options.setdefault("initial_rebalance_delay_ms", 0)
        server_options.setdefault("shutdown_grace_s", 5.0)
        self.server = Server(self.broker, **server_options)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="test-server-loop", daemon=True)
        self.thread.start()
        _, self.port = self.call(self.server.start("127.0.0.1", 0))

    def call(self, coroutine, timeout: float = 30.0):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def close(self) -> None:
        try:
            self.call(self.server.close())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()
            self.broker.close()


class WireClient:
    """Requests by hand over a real socket, with logbroker's codec; responses checked by correlation id."""

    def __init__(self, port: int, *, client_id: str | None = "wire-test", timeout: float = 10.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.client_id = client_id
        self.correlation_id = 0
        self.decoder = FrameDecoder()
        self.frames: deque[bytes] = deque()
        self.sent: deque[tuple[int, int, int]] = deque()

    def close(self) -> None:
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, api_key: int, version: int, body: dict, *, expect_response: bool = True) -> int:
        self.correlation_id += 1
        self.sock.sendall(encode_request(api_key, version, self.correlation_id, self.client_id, body))
        if expect_response:
            self.sent.append((self.correlation_id, api_key, version))
        return self.correlation_id

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv_frame(self, timeout: float = 10.0) -> bytes | None:
        """The next response frame, or None if the server closed the connection."""
        deadline = time.monotonic() + timeout
        while not self.frames:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no response")
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(1 << 20)
            except ConnectionResetError:
                return None
            if not data:
                return None
            self.frames.extend(self.decoder.feed(data))
        return self.frames.popleft()

    def recv(self, timeout: float = 10.0) -> tuple[int, dict]:
        """(correlation id, body) of the next response; asserts it answers the oldest request."""
        frame = self.recv_frame(timeout)
        assert frame is not None, "the server closed the connection"
        correlation_id, api_key, version = self.sent.popleft()
        got, body = decode_response(api_key, version, frame)
        assert got == correlation_id, f"response {got} arrived where {correlation_id} was due"
        return got, body

    def call(self, api_key: int, version: int, body: dict, timeout: float = 10.0) -> dict:
        self.send(api_key, version, body)
        return self.recv(timeout)[1]

    def closed_by_server(self, timeout: float = 5.0) -> bool:
        try:
            return self.recv_frame(timeout) is None
        except (TimeoutError, socket.timeout):
            return False
