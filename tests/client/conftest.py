from __future__ import annotations

import time

import pytest

from logbroker.broker import Broker


@pytest.fixture
def broker(tmp_path):
    with Broker.open(str(tmp_path / "data"), housekeeping=False) as b:
        yield b


def poll_until(consumer, count: int, timeout: float = 10.0) -> list:
    """Poll until ``count`` records arrived or ``timeout`` seconds passed; return what came."""
    deadline = time.monotonic() + timeout
    got: list = []
    while len(got) < count and time.monotonic() < deadline:
        got += consumer.poll(timeout=min(0.2, max(0.0, deadline - time.monotonic())))
    return got


def drain(consumer, timeout: float = 10.0) -> list:
    """Everything up to the current end of every assigned partition (bounded in time)."""
    deadline = time.monotonic() + timeout
    got: list = []
    while time.monotonic() < deadline:
        batch = consumer.poll(timeout=0)
        got += batch
        if not batch and consumer.at_end():
            return got
    raise AssertionError(f"not at the end after {timeout}s; got {len(got)} records")
