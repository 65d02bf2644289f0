"""Shared by every test: no test may hang the suite."""

from __future__ import annotations

import signal

import pytest

TIME_LIMIT_S = 120


@pytest.fixture(autouse=True)
def _time_limit():
    """Fail (rather than hang) a test that runs past TIME_LIMIT_S."""

    def expire(signum, frame):
        raise TimeoutError(f"test still running after {TIME_LIMIT_S}s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(TIME_LIMIT_S)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
