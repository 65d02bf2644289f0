"""Time as an injectable dependency: code below the server never calls ``time`` directly."""

from __future__ import annotations

import time


class SystemClock:
    """Wall-clock milliseconds for timestamps, monotonic seconds for timeouts."""

    def time_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def monotonic(self) -> float:
        return time.monotonic()


class ManualClock:
    """A clock that moves only when a test says so."""

    def __init__(self, start_ms: int = 1_700_000_000_000):
        self._now_ms = start_ms
        self._monotonic = 0.0

    def time_ms(self) -> int:
        return self._now_ms

    def monotonic(self) -> float:
        return self._monotonic

    def advance(self, ms: int) -> None:
        self._now_ms += ms
        self._monotonic += ms / 1000.0


SYSTEM_CLOCK = SystemClock()
