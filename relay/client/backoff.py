"""Reconnect delays: exponential backoff with full jitter and a cap.

After the n-th failure in a row the delay is drawn uniformly from
``[0, min(cap, base * 2**n))``.  The jitter is what matters when a relay
restarts: thousands of phones lose their connection in the same instant, and
without it they would all come back in the same instant too, again and again.
(See "Exponential Backoff And Jitter", AWS Architecture Blog, 2015.)

The count is reset only once a connection is fully working (authenticated and
its streams re-attached), not merely when a socket opens, so a relay that
accepts connections and drops them at once still sees the delays grow.
"""

from __future__ import annotations

import random
from collections.abc import Callable


class Backoff:
    """Delays for successive reconnect attempts; see the module docstring."""

    def __init__(self, base: float = 0.5, cap: float = 30.0, *, rng: Callable[[], float] = random.random) -> None:
        if base <= 0 or cap < base:
            raise ValueError("backoff needs 0 < base <= cap")
        self.base = base
        self.cap = cap
        self.failures = 0
        self._rng = rng

    def ceiling(self) -> float:
        """The largest delay the next attempt may draw."""
        return min(self.cap, self.base * 2.0 ** min(self.failures, 62))

    def next_delay(self) -> float:
        """The delay before the next attempt; counts one more failure."""
        delay = self._rng() * self.ceiling()
        self.failures += 1
        return delay

    def reset(self) -> None:
        """A connection works again: the next failure starts from ``base``."""
        self.failures = 0
