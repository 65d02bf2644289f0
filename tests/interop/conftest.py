"""Fixtures for the interop tests: real Kafka clients against a real ``logbroker serve`` child.

Each server is ``python -m logbroker serve --listen 127.0.0.1:0`` on a fresh data directory, started
from this working tree; the fixture waits (bounded) for its ``logbroker listening on HOST:PORT``
line and returns the address.  At teardown it sends SIGTERM to that one pid, waits (bounded), sends
SIGKILL only if it is still running, and asserts the exit status was 0.  Only loopback addresses
are ever used.
"""

from __future__ import annotations

import itertools
import os
import pathlib
import select
import signal
import subprocess
import sys
import time

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
LISTENING = "logbroker listening on "
START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 30.0

_names = itertools.count()


def subprocess_env() -> dict[str, str]:
    """Environment for child processes: this working tree's logbroker, no inherited data dir."""
    env = dict(os.environ)
    env.pop("LOGBROKER_DATA_DIR", None)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def unique(prefix: str) -> str:
    """A topic or group name no other test in this session uses."""
    return f"{prefix}-{os.getpid()}-{next(_names)}"


class Serve:
    """One ``logbroker serve`` child; only its own pid is ever signalled."""

    def __init__(self, data_dir, *args: str, port: int = 0):
        self.data_dir = str(data_dir)
        self.listen = f"127.0.0.1:{port}"
        self.args = ["--initial-rebalance-delay-ms", "0", *args]
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.stdout = b""
        self._log_path = pathlib.Path(self.data_dir).parent / f"serve-{time.monotonic_ns()}.log"
        self._log = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = START_TIMEOUT_S) -> "Serve":
        self._log = open(self._log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "logbroker", "serve", "--data-dir", self.data_dir,
             "--listen", self.listen, *self.args],
            stdout=subprocess.PIPE, stderr=self._log, stdin=subprocess.DEVNULL, env=subprocess_env())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            line = self.proc.stdout.readline()
            if not line:
                break
            self.stdout += line
            text = line.decode(errors="replace").strip()
            if text.startswith(LISTENING):
                self.port = int(text.rsplit(":", 1)[1])
                return self
        self.kill()
        raise AssertionError(f"serve never said it was listening within {timeout}s; "
                             f"stdout {self.stdout!r}; stderr {self.log()!r}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        try:
            return self._log_path.read_text(errors="replace")
        except OSError:
            return ""

    def _signal(self, signum: int) -> None:
        if self.alive():
            os.kill(self.proc.pid, signum)

    def terminate(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM, bounded wait, SIGKILL if still running; returns the exit status."""
        self._signal(signal.SIGTERM)
        try:
            return self._wait(timeout)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)
            self._wait(10)
            raise AssertionError(f"serve ignored SIGTERM for {timeout}s; log:\n{self.log()}") from None

    def kill(self) -> int:
        self._signal(signal.SIGKILL)
        return self._wait(10)

    def _wait(self, timeout: float) -> int:
        assert self.proc is not None
        code = self.proc.wait(timeout=timeout)
        if self.proc.stdout:
            self.proc.stdout.close()
        if self._log:
            self._log.close()
        return code


def _stop_checked(server: Serve) -> None:
    if server.proc is None or server.proc.returncode is not None:
        return
    code = server.terminate()
    assert code == 0, f"serve exited {code} on SIGTERM; log:\n{server.log()}"


@pytest.fixture(scope="module")
def serve_module(tmp_path_factory):
    """One server per test module (each test uses its own topic and group names)."""
    server = Serve(tmp_path_factory.mktemp("interop") / "data").start()
    try:
        yield server
    finally:
        _stop_checked(server)


@pytest.fixture(scope="module")
def bootstrap(serve_module) -> str:
    """``"127.0.0.1:PORT"`` of the module's server."""
    return serve_module.bootstrap


@pytest.fixture
def fresh_server(tmp_path):
    """``start(data_dir=None, *serve_args, port=0)`` starts a server of this test's own (on a fresh
    data dir unless given one); the test may kill it and start another on the same dir and port."""
    servers: list[Serve] = []

    def start(data_dir=None, *args: str, port: int = 0) -> Serve:
        server = Serve(data_dir or tmp_path / "data", *args, port=port).start()
        servers.append(server)
        return server

    try:
        yield start
    finally:
        for server in servers:
            _stop_checked(server)


def wait_until(predicate, timeout: float, interval: float = 0.05, what: str = "condition"):
    """Poll ``predicate`` until it returns something truthy (returned) or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} not reached within {timeout}s")
        time.sleep(interval)
