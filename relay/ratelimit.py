"""Token buckets for the relay's rate limits (frames, alerts, REST calls)."""

from __future__ import annotations

import time


class TokenBucket:
    """Allows ``rate`` events per second on average and bursts of up to ``burst``.

    A rate of 0 or less means no limit.  Cheap enough for the frame path: one
    clock read and a few float operations per event.
    """

    __slots__ = ("_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate)
        self._tokens = self.burst
        self._last = time.monotonic()

    def allow(self) -> bool:
        """Take one token if there is one; False means the event is over the limit."""
        if self.rate <= 0:
            return True
        now = time.monotonic()
        tokens = self._tokens + (now - self._last) * self.rate
        self._last = now
        if tokens > self.burst:
            tokens = self.burst
        if tokens < 1.0:
            self._tokens = tokens
            return False
        self._tokens = tokens - 1.0
        return True


class Throttle:
    """At most one event per ``interval`` seconds: for warning a client once, not per frame."""

    __slots__ = ("_next", "interval")

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self._next = 0.0

    def ready(self) -> bool:
        now = time.monotonic()
        if now < self._next:
            return False
        self._next = now + self.interval
        return True
