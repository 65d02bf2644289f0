"""Fixtures for the server tests: real sockets on 127.0.0.1 only."""

from __future__ import annotations

import gc

import pytest

from .support import InProcessServer, ServeProcess


@pytest.fixture(autouse=True)
def _collect_client_garbage():
    """Finalize each test's client objects (librdkafka handles, event loops, sockets) before the next
    test starts, so that none of their finalizers runs in the middle of a later, unrelated test."""
    yield
    gc.collect()


@pytest.fixture
def inproc(tmp_path):
    """A Server on an embedded Broker in this process (port picked by the kernel)."""
    server = InProcessServer(tmp_path / "data", group_tick_interval_s=0.05)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """One ``logbroker serve`` child shared by a module's client tests (each test uses its own topics)."""
    root = tmp_path_factory.mktemp("serve")
    process = ServeProcess(root / "data", "--default-partitions", "1").start()
    try:
        yield process
    finally:
        code = process.terminate()
        assert code == 0, process.stderr()
        assert "Traceback" not in process.stderr(), process.stderr()
